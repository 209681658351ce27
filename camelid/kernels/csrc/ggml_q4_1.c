/* Q4_1 x Q8_1 matmul with ggml's CPU arithmetic, operation for operation (AVX2 path), so its results are
 * bit-identical to llama.cpp's. Plain C with x86 intrinsics, called through ctypes; no Python or torch ABI.
 *
 * ggml's order, which is what makes the result exact rather than merely close:
 *   activations -> Q8_1 blocks of 32: d = amax/127, q = rint(x * 127/amax), stored d = fp16(d), s = fp16(d * sum q)
 *   per block:   8 float lanes, lane i = int sum of the products of elements 4i..4i+3,
 *                acc = fma(fp16(d_w) * fp16(d_a), lanes, acc);  mins += fp16(m_w) * fp16(s_a)
 *   per row:     ((acc[0]+acc[4]) + (acc[2]+acc[6])) + ((acc[1]+acc[5]) + (acc[3]+acc[7])) + mins
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

typedef struct { uint16_t d, m; uint8_t qs[16]; } block_q4_1; /* 20 bytes */
typedef struct { uint16_t d, s; int8_t qs[32]; } block_q8_1;  /* 36 bytes */

static inline float half_to_float(uint16_t h) { return _cvtsh_ss(h); }
static inline uint16_t float_to_half(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

void camelid_quantize_q8_1(const float *x, block_q8_1 *y, int64_t n) {
    for (int64_t b = 0; b < n / 32; ++b, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = fmaxf(amax, fabsf(x[j]));
        const float d = amax / 127.0f;
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            const int q = (int) nearbyintf(x[j] * id); /* round half to even, as _mm256_round_ps */
            y[b].qs[j] = (int8_t) q;
            sum += q;
        }
        y[b].d = float_to_half(d);
        y[b].s = float_to_half(d * (float) sum);
    }
}

static inline float hsum_float_8(__m256 x) {
    __m128 res = _mm256_extractf128_ps(x, 1);
    res = _mm_add_ps(res, _mm256_castps256_ps128(x));
    res = _mm_add_ps(res, _mm_movehl_ps(res, res));
    res = _mm_add_ss(res, _mm_movehdup_ps(res));
    return _mm_cvtss_f32(res);
}

static float dot_q4_1_q8_1(int64_t n_blocks, const block_q4_1 *x, const block_q8_1 *y, int fused_mins) {
    __m256 acc = _mm256_setzero_ps();
    float mins = 0.0f;
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < n_blocks; ++b) {
        const float dw = half_to_float(x[b].d), da = half_to_float(y[b].d);
        const float mw = half_to_float(x[b].m), sa = half_to_float(y[b].s);
        mins = fused_mins ? fmaf(mw, sa, mins) : mins + mw * sa;
        const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(dw), _mm256_set1_ps(da));
        const __m128i packed = _mm_loadu_si128((const __m128i *) x[b].qs);
        __m256i qw = _mm256_insertf128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
        qw = _mm256_and_si256(low_nibbles, qw); /* elements 0..15 low nibbles, 16..31 high nibbles */
        const __m256i qa = _mm256_loadu_si256((const __m256i *) y[b].qs);
        const __m256i pairs = _mm256_maddubs_epi16(qw, qa);
        const __m256 lanes = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
        acc = _mm256_fmadd_ps(scale, lanes, acc);
    }
    return hsum_float_8(acc) + mins;
}

/* out[t, o] = dot(W row o, x row t); x [n_tokens, n_in] float32, W [n_out, n_in/32 blocks], out [n_tokens, n_out] */
void camelid_matmul_q4_1(const float *x, const void *weight, float *out, int64_t n_tokens, int64_t n_in,
                         int64_t n_out, void *scratch, int fused_mins) {
    block_q8_1 *xq = (block_q8_1 *) scratch; /* n_tokens * n_in/32 blocks */
    const int64_t n_blocks = n_in / 32;
    for (int64_t t = 0; t < n_tokens; ++t) camelid_quantize_q8_1(x + t * n_in, xq + t * n_blocks, n_in);
    const block_q4_1 *w = (const block_q4_1 *) weight;
    #pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < n_out; ++o)
        for (int64_t t = 0; t < n_tokens; ++t)
            out[t * n_out + o] = dot_q4_1_q8_1(n_blocks, w + o * n_blocks, xq + t * n_blocks, fused_mins);
}

int camelid_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
