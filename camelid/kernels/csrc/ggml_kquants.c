/* K-quant matmuls with ggml's CPU arithmetic (AVX2 dot products): activations as Q8_K blocks of 256, integer
 * sums per 8 lanes exactly as ggml's vector code forms them, one fused multiply-add per lane and super-block,
 * then ggml's hsum of the 8 lanes.
 *
 * Q6_K (ggml_vec_dot_q6_K_q8_K): lane m collects the elements e with (e mod 32) / 4 == m of every super-block:
 *   sumi[m] = sum sc[e/16] * q6(e) * q8(e)  -  32 * (sc[2m] * bsum[2m] + sc[2m+1] * bsum[2m+1])
 * with q6 the unsigned 6-bit value; acc[m] = fma(d8 * fp16(d6), (float) sumi[m], acc[m]).
 *
 * Q4_K: llama.cpp repacks Q4_K weights into 8-row interleaved blocks on AVX2 machines (ggml_gemv/gemm_q4_K_8x8_q8_K,
 * for decode and prefill alike). Per row and super-block they form two exact integer sums,
 *   isum = sum sc[s] * q4(e) * q8(e)     imin = sum m[s] * (bsum[2s] + bsum[2s+1])
 * and accumulate acc = fma(isum, fp16(d) * d8, acc), accmin = fma(imin, fp16(dmin) * d8, accmin); out = acc - accmin.
 * The single-row kernel (gemv) does that once per super-block; the 4-row kernel (gemm), which takes the first
 * n - n % 4 activation rows of a batch, once per pair of sub-blocks (64 values).
 */
#include <string.h>

#include "ggml_common.h"

typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } block_q8_K; /* 292 bytes */
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } block_q6_K; /* 210 bytes */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } block_q4_K;        /* 144 bytes */

/* quantize_row_q8_K_ref: iscale = -127 / (the value of largest magnitude, first one wins), q = min(127, rint) */
void camelid_quantize_q8_K(const float *x, void *out, int64_t n) {
    block_q8_K *y = (block_q8_K *) out;
    for (int64_t b = 0; b < n / 256; ++b, x += 256) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < 256; ++j) {
            const float ax = fabsf(x[j]);
            if (ax > amax) { amax = ax; max = x[j]; }
        }
        if (amax == 0.0f) { memset(&y[b], 0, sizeof(block_q8_K)); continue; }
        const float iscale = -127.0f / max;
        for (int j = 0; j < 256; ++j) {
            const int v = (int) nearbyintf(iscale * x[j]);
            y[b].qs[j] = (int8_t) (v < 127 ? v : 127);
        }
        for (int g = 0; g < 16; ++g) {
            int sum = 0;
            for (int j = 0; j < 16; ++j) sum += y[b].qs[16 * g + j];
            y[b].bsums[g] = (int16_t) sum;
        }
        y[b].d = 1 / iscale;
    }
}

static float dot_q6_K_q8_K(int64_t n_blocks, const block_q6_K *x, const block_q8_K *y) {
    float acc[8] = {0};
    for (int64_t b = 0; b < n_blocks; ++b) {
        const float d = y[b].d * half_to_float(x[b].d);
        int32_t sumi[8] = {0};
        for (int half = 0; half < 2; ++half) {
            const uint8_t *ql = x[b].ql + 64 * half, *qh = x[b].qh + 32 * half;
            for (int l = 0; l < 32; ++l) {
                const int e = 128 * half + l;
                const int q[4] = {(ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4, (ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4,
                                  (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4, (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4};
                for (int c = 0; c < 4; ++c) /* element e + 32c, lane (l / 4) */
                    sumi[l / 4] += x[b].scales[(e + 32 * c) / 16] * q[c] * y[b].qs[e + 32 * c];
            }
        }
        for (int m = 0; m < 8; ++m) {
            sumi[m] -= 32 * (x[b].scales[2 * m] * y[b].bsums[2 * m] + x[b].scales[2 * m + 1] * y[b].bsums[2 * m + 1]);
            acc[m] = fmaf(d, (float) sumi[m], acc[m]);
        }
    }
    return hsum_float_8(_mm256_loadu_ps(acc));
}

/* ggml's tiled K-quant matmul (batches of 8 or more rows): per super-block the exact integer
 * s1 = sum sc[s] * (sum q6 * q8 - 32 * bsum[s]), then acc = fma((float) s1 * fp16(d6), d8, acc) (the source
 * writes a multiply and an add; GCC fuses them, and only the fused form matches llama.cpp's output) */
static float dot_q6_K_q8_K_tiled(int64_t n_blocks, const block_q6_K *x, const block_q8_K *y) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n_blocks; ++b) {
        int32_t raw[16] = {0};
        for (int half = 0; half < 2; ++half) {
            const uint8_t *ql = x[b].ql + 64 * half, *qh = x[b].qh + 32 * half;
            for (int l = 0; l < 32; ++l) {
                const int e = 128 * half + l;
                const int q[4] = {(ql[l] & 0xF) | ((qh[l] >> 0) & 3) << 4, (ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4,
                                  (ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4, (ql[l + 32] >> 4) | ((qh[l] >> 6) & 3) << 4};
                for (int c = 0; c < 4; ++c) raw[(e + 32 * c) / 16] += q[c] * y[b].qs[e + 32 * c];
            }
        }
        int32_t s1 = 0;
        for (int g = 0; g < 16; ++g) s1 += x[b].scales[g] * (raw[g] - 32 * y[b].bsums[g]);
        const float result = (float) s1 * half_to_float(x[b].d);
        acc = fmaf(result, y[b].d, acc);
    }
    return acc;
}

/* Q6_K in the order llama.cpp uses for a batch of n_tokens rows: vec_dot below 8 rows, the tiled kernel from 8 */
float camelid_dot_q6_K(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens) {
    (void) t;
    const block_q6_K *x = (const block_q6_K *) w;
    const block_q8_K *y = (const block_q8_K *) a;
    return n_tokens >= 8 ? dot_q6_K_q8_K_tiled(n_in / 256, x, y) /* ggml_tiled_min_batch */
                         : dot_q6_K_q8_K(n_in / 256, x, y);
}

/* the 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4) */
static inline void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* pairs = 1: sums per super-block (gemv); pairs = 4: per pair of sub-blocks (gemm) */
static float dot_q4_K_q8_K(int64_t n_blocks, const block_q4_K *x, const block_q8_K *y, int pairs) {
    float acc = 0.0f, acc_min = 0.0f;
    for (int64_t b = 0; b < n_blocks; ++b) {
        const float scale = half_to_float(x[b].d) * y[b].d, scale_min = half_to_float(x[b].dmin) * y[b].d;
        for (int part = 0; part < pairs; ++part) {
            int32_t isum = 0, imin = 0;
            for (int s = part * 8 / pairs; s < (part + 1) * 8 / pairs; ++s) {
                int sc, m;
                scale_min_k4(s, x[b].scales, &sc, &m);
                const uint8_t *qs = x[b].qs + 32 * (s / 2);
                const int8_t *q8 = y[b].qs + 32 * s;
                int32_t dot = 0;
                for (int l = 0; l < 32; ++l) dot += (s % 2 ? qs[l] >> 4 : qs[l] & 0xF) * q8[l];
                isum += sc * dot;
                imin += m * (y[b].bsums[2 * s] + y[b].bsums[2 * s + 1]);
            }
            acc = fmaf((float) isum, scale, acc);
            acc_min = fmaf((float) imin, scale_min, acc_min);
        }
    }
    return acc - acc_min;
}

/* Q4_K as llama.cpp's repacked kernels: gemm for the first n - n % 4 rows of a batch, gemv for the rest */
float camelid_dot_q4_K(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens) {
    return dot_q4_K_q8_K(n_in / 256, (const block_q4_K *) w, (const block_q8_K *) a,
                         t < n_tokens - n_tokens % 4 ? 4 : 1);
}
