/* Q8_0 weight rows (or Q4_0/Q5_0 rows unpacked to Q8_0 blocks, ggml_legacy.c) against eight activation rows packed
 * as two block_q8_0x4 groups, with AVX-512 VNNI (its 32 vector registers hold the eight accumulators): the same
 * operations per result as dot_x4p_q0, so the results are bit-identical, but each weight block and its sign pattern
 * are read once for eight rows (Q5_0 at 512 tokens: 154 -> 180 GOPS on 2 threads here).
 * Tried and slower on this CPU: 16 rows (no gain), the block scales broadcast from memory (store forwarding), and
 * unsigned weights (value + 128) with the -128 * sum(a) correction preloaded as dpbusd's accumulator. */
#include <string.h>

#include "ggml_common.h"

int camelid_has_vnni(void) {
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
    }
    return has;
}

__attribute__((target("avx512vnni,avx512vl"))) void camelid_dot_x8p_q8_0(
        const uint8_t *w, const uint8_t *packed, int64_t group_bytes, int64_t n_in, float *out, int64_t out_stride) {
    const block_q8_0x4 *y0 = (const block_q8_0x4 *) packed, *y1 = (const block_q8_0x4 *) (packed + group_bytes);
    __m256 acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n_in / 32; ++b, w += 34) {
        uint16_t d;
        memcpy(&d, w, 2);
        const __m128 dw = _mm_set1_ps(half_to_float(d));
        const __m256 s0 = _mm256_castps128_ps256(_mm_mul_ps(dw, _mm_loadu_ps(y0[b].d)));
        const __m256 s1 = _mm256_castps128_ps256(_mm_mul_ps(dw, _mm_loadu_ps(y1[b].d)));
        const __m256i qw = _mm256_loadu_si256((const __m256i *) (w + 2));
        const __m256i uw = _mm256_sign_epi8(qw, qw);
        #pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const __m256i a0 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *) y0[b].qs[j]), qw);
            const __m256i a1 = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *) y1[b].qs[j]), qw);
            acc[j] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s0, _mm256_set1_epi32(j)),
                                     _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), uw, a0)), acc[j]);
            acc[4 + j] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s1, _mm256_set1_epi32(j)),
                                         _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), uw, a1)),
                                         acc[4 + j]);
        }
    }
    for (int j = 0; j < 8; ++j) out[j * out_stride] = hsum_float_8(acc[j]);
}
