/* What every camelid kernel shares: fp16 conversion, ggml's 8-bit activation blocks and its float reductions.
 *
 * The reductions are written out lane by lane in plain C so that their rounding is ggml's whatever the compiler
 * does (the library is built with -ffp-contract=off: every fmaf below is one fused operation, every other
 * product and sum is rounded on its own).
 */
#ifndef CAMELID_GGML_COMMON_H
#define CAMELID_GGML_COMMON_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* ggml's Q8_0 / Q8_1 activation blocks, with the fp16 fields kept as the float values they stand for (converted
 * once when the activations are quantized, instead of in every dot product that reads them) */
typedef struct { float d; int8_t qs[32]; } block_q8_0;    /* 36 bytes; d = fp16(amax / 127) */
typedef struct { float d, s; int8_t qs[32]; } block_q8_1; /* 40 bytes; s = fp16(d * sum q) */
typedef struct { float d[4], s[4]; int8_t qs[4][32]; } block_q8_1x4; /* one block of 4 activation rows, packed */
typedef struct { float d[4]; int8_t qs[4][32]; } block_q8_0x4;        /* the same for Q8_0 rows */

/* CAMELID_NO_AVX512=1 in the environment: the AVX2 paths even where AVX-512 is there (they compute the same
 * values; tests compare the two) */
static inline int avx512_allowed(void) {
    const char *off = getenv("CAMELID_NO_AVX512");
    return !(off && *off && *off != '0');
}

/* AVX-512 VNNI with 256-bit vectors (VL): the variants that use dpbusd/dpwssd and 32 vector registers */
static inline int cpu_has_vnni(void) {
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = avx512_allowed() && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
    }
    return has;
}

static inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t float_to_half(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
static inline float round_to_half(float f) { return half_to_float(float_to_half(f)); }

/* ggml's hsum of 8 float lanes: (l0+l4)+(l2+l6) + (l1+l5)+(l3+l7), in this association */
static inline float hsum_float_8(__m256 x) {
    __m128 res = _mm256_extractf128_ps(x, 1);
    res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    return _mm_cvtss_f32(res);
}

/* _mm512_reduce_add_ps as compilers expand it: halves added until one lane is left. Destroys v. */
static inline float tree_sum_16(float *v) {
    for (int half = 8; half > 0; half >>= 1)
        for (int i = 0; i < half; ++i) v[i] = v[i] + v[i + half];
    return v[0];
}

/* One activation block of 32 as quantize_row_q8_0/q8_1 make it: d = amax/127, q = rint(x * 127/amax) (round half
 * to even, as ggml's _mm256_round_ps). Returns the sum of the q (Q8_1 stores fp16(d * sum)). */
static inline int quantize_block_q8(const float *x, int8_t *qs, float *d_out) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4], amax8 = _mm256_setzero_ps();
    for (int i = 0; i < 4; ++i) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        amax8 = _mm256_max_ps(amax8, _mm256_andnot_ps(sign, v[i]));
    }
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax8, 1), _mm256_castps256_ps128(amax8));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float amax = _mm_cvtss_f32(m4);
    const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
    __m256i q[4], total = _mm256_setzero_si256();
    for (int i = 0; i < 4; ++i) {
        q[i] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[i], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        total = _mm256_add_epi32(total, q[i]);
    }
    int32_t lanes[8];
    _mm256_storeu_si256((__m256i *) lanes, total);
    int sum = 0;
    for (int i = 0; i < 8; ++i) sum += lanes[i];
    for (int i = 0; i < 4; ++i) {
        int32_t values[8];
        _mm256_storeu_si256((__m256i *) values, q[i]);
        for (int j = 0; j < 8; ++j) qs[8 * i + j] = (int8_t) values[j];
    }
    *d_out = amax / 127.0f;
    return sum;
}

#endif
