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

/* ggml's Q8_0 / Q8_1 activation blocks, with the fp16 fields kept as the float values they stand for (converted
 * once when the activations are quantized, instead of in every dot product that reads them) */
typedef struct { float d; int8_t qs[32]; } block_q8_0;    /* 36 bytes; d = fp16(amax / 127) */
typedef struct { float d, s; int8_t qs[32]; } block_q8_1; /* 40 bytes; s = fp16(d * sum q) */

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

/* One activation block of 32 as quantize_row_q8_0/q8_1 make it: d = amax/127, q = rint(x * 127/amax).
 * Returns the sum of the q (Q8_1 stores fp16(d * sum)). */
static inline int quantize_block_q8(const float *x, int8_t *qs, float *d_out) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = fmaxf(amax, fabsf(x[j]));
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < 32; ++j) {
        const int q = (int) nearbyintf(x[j] * id); /* round half to even, as _mm256_round_ps */
        qs[j] = (int8_t) q;
        sum += q;
    }
    *d_out = amax / 127.0f;
    return sum;
}

#endif
