/* Attention and the gated activations with ggml's CPU arithmetic (the AVX-512 build that made the golden files),
 * so that camelid reproduces llama.cpp's tensors bit for bit. Plain scalar C; each step is named after the ggml
 * routine it follows.
 *
 * Attention, llama.cpp's non-flash path, per query token and head:
 *   kq    = K·q with q rounded to fp16 and the cache in fp16. With two or more tokens in the batch ggml hands the
 *           product to llamafile's tinyBLAS: 16 float lanes, lane i accumulating elements i, i+16, ... by fused
 *           multiply-adds, then the lanes halved until one is left. With a single token it uses ggml_vec_dot_f16:
 *           four such 16-lane accumulators over blocks of 64, combined (a0+a2)+(a1+a3), then halved.
 *   soft  = ggml_soft_max_ext: kq*scale, masked, minus the row max, exponentiated by ggml_v_expf in chunks of 16
 *           whose halved sums are added in double; every value times (float)(1/sum).
 *   kqv   = V·soft with soft rounded to fp16: the same two dot orders, over the cache cells.
 * The cache cells of a sequence are its positions, as in a llama.cpp context holding one sequence.
 */
#include <stdlib.h>
#include <string.h>

#include "ggml_common.h"

/* ggml_v_expf, AVX-512 variant: the Arm optimized-routines polynomial, lane by lane */
static inline float ggml_expf(float x) {
    const float r = 0x1.8p23f;
    const float z = fmaf(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
    if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                         u, fmaf(0x1.ffffecp-1f, b, 1.0f));
    return ldexpf(j, (int) n); /* _mm512_scalef_ps: j * 2^n, rounded once */
}

/* y = silu(g) * u over rows of n (ggml_vec_swiglu_f32): chunks of 16 through ggml_v_silu, the tail through expf */
void camelid_swiglu(const float *g, const float *u, float *y, int64_t rows, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
        const float *gr = g + r * n, *ur = u + r * n;
        float *yr = y + r * n;
        const int64_t vectorized = n & ~(int64_t) 15;
        int64_t i = 0;
        for (; i < vectorized; ++i) yr[i] = gr[i] / (1.0f + ggml_expf(0.0f - gr[i])) * ur[i];
        for (; i < n; ++i) yr[i] = gr[i] / (1.0f + expf(-gr[i])) * ur[i];
    }
}

/* ggml's GELU table: for every fp16 input, fp16(0.5x(1 + tanhf(sqrt(2/pi) x (1 + 0.044715 x^2)))) in float32,
 * with the one fused multiply-add GCC contracts in ggml's build (1 + (0.044715 x) x); all 64 Ki entries then
 * agree with llama.cpp's GEGLU output (without it, ~0.04 % of them differ) */
static uint16_t gelu_table[1 << 16];
static int gelu_table_ready;

static void build_gelu_table(void) {
    #pragma omp critical(camelid_gelu_table)
    if (!gelu_table_ready) {
        const float coef_a = 0.044715f, sqrt_2_over_pi = 0.79788456080286535587989211986876f;
        for (int i = 0; i < (1 << 16); ++i) {
            const float x = half_to_float((uint16_t) i);
            gelu_table[i] = float_to_half(0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * x * fmaf(coef_a * x, x, 1.0f))));
        }
        gelu_table_ready = 1;
    }
}

/* y = gelu(g) * u over rows of n (ggml_vec_geglu_f32 with GGML_GELU_FP16): the table, 0 below -10, x above 10 */
void camelid_geglu(const float *g, const float *u, float *y, int64_t rows, int64_t n) {
    if (!gelu_table_ready) build_gelu_table();
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows * n; ++i) {
        const float x = g[i];
        y[i] = x <= -10.0f ? 0.0f : x >= 10.0f ? x * u[i] : half_to_float(gelu_table[float_to_half(x)]) * u[i];
    }
}

/* ggml_vec_dot_f16 on AVX-512 (x, y already widened from fp16) */
static float dot_vec_f16(const float *x, const float *y, int64_t n) {
    float acc[4][16] = {{0}};
    const int64_t np = n & ~(int64_t) 63;
    for (int64_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 16; ++l) acc[j][l] = fmaf(x[i + 16 * j + l], y[i + 16 * j + l], acc[j][l]);
    float lanes[16];
    for (int l = 0; l < 16; ++l) lanes[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
    double sum = tree_sum_16(lanes);
    for (int64_t i = np; i < n; ++i) sum += (double) (x[i] * y[i]);
    return (float) sum;
}

/* tinyBLAS<16, __m512>'s dot: one 16-lane accumulator, n a multiple of 16 */
static float dot_tiny_f16(const float *x, const float *y, int64_t n) {
    float acc[16] = {0};
    for (int64_t i = 0; i < n; i += 16)
        for (int l = 0; l < 16; ++l) acc[l] = fmaf(x[i + l], y[i + l], acc[l]);
    return tree_sum_16(acc);
}

static inline int visible(int64_t key, int64_t query, int64_t window) {
    return key <= query && (window <= 0 || query - key < window);
}

/* q [n_q, H, Dk] float32 (n_q = B*T tokens, positions [n_q], -1 = padding), caches [n_slots, Hkv, n_ctx, D] fp16,
 * slots [B]; out [n_q, H, Dv]. tiny != 0: the batch holds two or more tokens (tinyBLAS order). k_new/v_new
 * [n_q, Hkv, D] float32 (or NULL): first stored in the cache at their positions, rounded to fp16. */
void camelid_attention_f16(const float *q, uint16_t *k_cache, uint16_t *v_cache, const int64_t *slots,
                           const int64_t *positions, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t Dk,
                           int64_t Dv, int64_t n_ctx, int64_t n_keys, int64_t window, float scale, int tiny,
                           float *out, const float *k_new, const float *v_new) {
    const int64_t group = H / Hkv;
    if (k_new && v_new)
        for (int64_t token = 0; token < B * T; ++token) {
            const int64_t p = positions[token], slot = slots[token / T];
            if (p < 0) continue;
            for (int64_t g = 0; g < Hkv; ++g) {
                uint16_t *kd = k_cache + ((slot * Hkv + g) * n_ctx + p) * Dk;
                uint16_t *vd = v_cache + ((slot * Hkv + g) * n_ctx + p) * Dv;
                for (int64_t d = 0; d < Dk; ++d) kd[d] = float_to_half(k_new[(token * Hkv + g) * Dk + d]);
                for (int64_t d = 0; d < Dv; ++d) vd[d] = float_to_half(v_new[(token * Hkv + g) * Dv + d]);
            }
        }
    const int64_t padded = (n_keys + 63) & ~(int64_t) 63;
    const int tiny_kq = tiny && Dk % 16 == 0;
    #pragma omp parallel
    {
        float *buffer = malloc(sizeof(float) * (size_t) (Dk + Dk + 2 * padded + 64 * Dv + Dv));
        float *qh = buffer, *kh = qh + Dk, *score = kh + Dk, *prob = score + padded, *acc = prob + padded;
        float *vrow = acc + 64 * Dv;
        #pragma omp for schedule(static) collapse(2)
        for (int64_t token = 0; token < B * T; ++token) {
            for (int64_t h = 0; h < H; ++h) {
                const int64_t p = positions[token];
                float *o = out + (token * H + h) * Dv;
                if (p < 0) { memset(o, 0, sizeof(float) * (size_t) Dv); continue; }
                const int64_t g = h / group, slot = slots[token / T];
                const uint16_t *keys = k_cache + ((slot * Hkv + g) * n_ctx) * Dk;
                const uint16_t *values = v_cache + ((slot * Hkv + g) * n_ctx) * Dv;
                const float *qt = q + (token * H + h) * Dk;
                for (int64_t d = 0; d < Dk; ++d) qh[d] = round_to_half(qt[d]);
                float max = -INFINITY;
                for (int64_t c = 0; c < padded; ++c) {
                    if (c >= n_keys || !visible(c, p, window)) { score[c] = -INFINITY; continue; }
                    for (int64_t d = 0; d < Dk; ++d) kh[d] = half_to_float(keys[c * Dk + d]);
                    const float dot = tiny_kq ? dot_tiny_f16(kh, qh, Dk) : dot_vec_f16(kh, qh, Dk);
                    score[c] = dot * scale;
                    max = fmaxf(max, score[c]);
                }
                double sum = 0.0;
                for (int64_t c = 0; c < padded; c += 16) {
                    float chunk[16];
                    for (int l = 0; l < 16; ++l) {
                        const float s = score[c + l];
                        prob[c + l] = s == -INFINITY ? 0.0f : ggml_expf(s - max);
                        chunk[l] = prob[c + l];
                    }
                    sum += (double) tree_sum_16(chunk);
                }
                const float inv = (float) (1.0 / sum);
                for (int64_t c = 0; c < padded; ++c) prob[c] = round_to_half(prob[c] * inv);
                /* kqv: lane (c mod 64) of the accumulators; tinyBLAS uses only c mod 16, folded below */
                memset(acc, 0, sizeof(float) * (size_t) (64 * Dv));
                for (int64_t c = 0; c < n_keys; ++c) {
                    if (prob[c] == 0.0f) continue; /* fma(0, v, a) == a */
                    float *a = acc + (tiny ? c % 16 : c % 64) * Dv;
                    for (int64_t d = 0; d < Dv; ++d) vrow[d] = half_to_float(values[c * Dv + d]);
                    for (int64_t d = 0; d < Dv; ++d) a[d] = fmaf(vrow[d], prob[c], a[d]);
                }
                for (int64_t d = 0; d < Dv; ++d) {
                    float lanes[16];
                    for (int l = 0; l < 16; ++l)
                        lanes[l] = tiny ? acc[l * Dv + d]
                                        : (acc[l * Dv + d] + acc[(32 + l) * Dv + d])
                                          + (acc[(16 + l) * Dv + d] + acc[(48 + l) * Dv + d]);
                    o[d] = tree_sum_16(lanes);
                }
            }
        }
        free(buffer);
    }
}
