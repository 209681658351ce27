/* Q8_0 weight rows (or Q4_0/Q5_0 rows unpacked to Q8_0 blocks, ggml_legacy.c) against eight activation rows packed
 * as two block_q8_0x4 groups, with AVX-512 VNNI (its 32 vector registers hold the eight accumulators). Per result
 * the same integer lanes, the same rounded scale d_w * d_a and the same fused multiply-adds in the same order as
 * dot_x4p_q0 (ggml's arithmetic), so the results are bit-identical; but each weight block is read once for eight
 * rows, and the activations come as unsigned bytes so that no sign instruction is needed (below).
 * Q5_0 512 x 640 x 2048 on 2 threads here: 154 GOPS (four rows, sign trick) -> 180 (eight rows) -> 196 (unsigned).
 * Tried and slower on this CPU: 16 rows (no gain over 8), block scales broadcast from memory (store forwarding),
 * and the offset on the weights' side (its correction is per activation block: an extra load per product). */
#include <string.h>

#include "ggml_common.h"

/* The activations' side of the offset: the packed rows once more as unsigned bytes (value + 128), their scales as
 * they are. dpbusd(-128 * lane sums of w, a + 128, w) is then exactly the lane sums of a * w, with the correction
 * formed once per weight block for all eight rows: one vector operation per block and row fewer than the sign
 * trick, and no extra load. */
void camelid_pack_q8_0x4_unsigned(const uint8_t *packed, int64_t n_blocks, uint8_t *out) {
    const block_q8_0x4 *y = (const block_q8_0x4 *) packed;
    block_q8_0x4 *u = (block_q8_0x4 *) out;
    for (int64_t b = 0; b < n_blocks; ++b) {
        memcpy(u[b].d, y[b].d, sizeof(y[b].d));
        for (int j = 0; j < 4; ++j)
            _mm256_storeu_si256((__m256i *) u[b].qs[j], _mm256_xor_si256(_mm256_loadu_si256((const __m256i *) y[b].qs[j]),
                                                                           _mm256_set1_epi8((char) 0x80)));
    }
}

/* the corrections -128 * (lane sums of w) of a Q8_0 row's blocks, [n_blocks][8], for camelid_dot_x8pu_q8_0 */
__attribute__((target("avx512vnni,avx512vl"))) void camelid_q8_0_corrections(const uint8_t *w, int64_t n_blocks,
                                                                              int32_t *corr) {
    for (int64_t b = 0; b < n_blocks; ++b, w += 34)
        _mm256_storeu_si256((__m256i *) (corr + 8 * b), _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(),
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), _mm256_loadu_si256((const __m256i *) (w + 2)))), 7));
}

/* corr: the row's corrections (camelid_q8_0_corrections), computed once for all the row's tiles of eight */
__attribute__((target("avx512vnni,avx512vl"))) void camelid_dot_x8pu_q8_0(
        const uint8_t *w, const int32_t *corr, const uint8_t *packed_u, int64_t group_bytes, int64_t n_in, float *out,
        int64_t out_stride) {
    const block_q8_0x4 *y0 = (const block_q8_0x4 *) packed_u, *y1 = (const block_q8_0x4 *) (packed_u + group_bytes);
    __m256 acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n_in / 32; ++b, w += 34) {
        uint16_t d;
        memcpy(&d, w, 2);
        const __m128 dw = _mm_set1_ps(half_to_float(d));
        const __m256 s0 = _mm256_castps128_ps256(_mm_mul_ps(dw, _mm_loadu_ps(y0[b].d)));
        const __m256 s1 = _mm256_castps128_ps256(_mm_mul_ps(dw, _mm_loadu_ps(y1[b].d)));
        const __m256i qw = _mm256_loadu_si256((const __m256i *) (w + 2));
        const __m256i correction = _mm256_loadu_si256((const __m256i *) (corr + 8 * b));
        #pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const __m256i l0 = _mm256_dpbusd_epi32(correction, _mm256_loadu_si256((const __m256i *) y0[b].qs[j]), qw);
            const __m256i l1 = _mm256_dpbusd_epi32(correction, _mm256_loadu_si256((const __m256i *) y1[b].qs[j]), qw);
            acc[j] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s0, _mm256_set1_epi32(j)), _mm256_cvtepi32_ps(l0), acc[j]);
            acc[4 + j] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s1, _mm256_set1_epi32(j)), _mm256_cvtepi32_ps(l1),
                                         acc[4 + j]);
        }
    }
    for (int j = 0; j < 8; ++j) out[j * out_stride] = hsum_float_8(acc[j]);
}
