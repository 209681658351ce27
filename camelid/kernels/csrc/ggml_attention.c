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

static inline __m256 ggml_expf_8(__m256 x);

/* y = silu(g) * u over rows of n (ggml_vec_swiglu_f32): chunks of 16 through ggml_v_silu, the tail through expf */
void camelid_swiglu(const float *g, const float *u, float *y, int64_t rows, int64_t n) {
    #pragma omp parallel for schedule(static) if (rows * n > 65536)
    for (int64_t r = 0; r < rows; ++r) {
        const float *gr = g + r * n, *ur = u + r * n;
        float *yr = y + r * n;
        const int64_t vectorized = n & ~(int64_t) 15;
        int64_t i = 0;
        for (; i < vectorized; i += 8) {
            const __m256 gv = _mm256_loadu_ps(gr + i);
            const __m256 e = ggml_expf_8(_mm256_sub_ps(_mm256_setzero_ps(), gv));
            const __m256 silu = _mm256_div_ps(gv, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
            _mm256_storeu_ps(yr + i, _mm256_mul_ps(silu, _mm256_loadu_ps(ur + i)));
        }
        for (; i < n; ++i) yr[i] = gr[i] / (1.0f + expf(-gr[i])) * ur[i];
    }
}

/* ggml's GELU table: for every fp16 input, fp16(0.5x(1 + tanhf(sqrt(2/pi) x (1 + 0.044715 x^2)))) in float32,
 * with the one fused multiply-add GCC contracts in ggml's build (1 + (0.044715 x) x); all 64 Ki entries then
 * agree with llama.cpp's GEGLU output (without it, ~0.04 % of them differ) */
static uint16_t gelu_table[(1 << 16) + 2]; /* two more: the 32-bit gathers below read one entry past */
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

static inline float geglu_one(float x, float u) {
    return x <= -10.0f ? 0.0f : x >= 10.0f ? x * u : half_to_float(gelu_table[float_to_half(x)]) * u;
}

/* y = gelu(g) * u over rows of n (ggml_vec_geglu_f32 with GGML_GELU_FP16): the table, 0 below -10, x above 10.
 * Eight at a time: the fp16 keys, a gather from the table, the same products and choices as geglu_one */
void camelid_geglu(const float *g, const float *u, float *y, int64_t rows, int64_t n) {
    if (!gelu_table_ready) build_gelu_table();
    const int64_t total = rows * n, vectorized = total & ~(int64_t) 7;
    #pragma omp parallel for schedule(static) if (total > 8192)
    for (int64_t i = 0; i < vectorized; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i), ux = _mm256_loadu_ps(u + i);
        const __m256i keys = _mm256_cvtepu16_epi32(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
        const __m256i entries = _mm256_and_si256(_mm256_i32gather_epi32((const int *) gelu_table, keys, 2),
                                                 _mm256_set1_epi32(0xFFFF));
        const __m128i halves = _mm_packus_epi32(_mm256_castsi256_si128(entries), _mm256_extracti128_si256(entries, 1));
        const __m256 gelu_u = _mm256_mul_ps(_mm256_cvtph_ps(halves), ux);
        const __m256 high = _mm256_cmp_ps(x, _mm256_set1_ps(10.0f), _CMP_GE_OQ);
        const __m256 low = _mm256_cmp_ps(x, _mm256_set1_ps(-10.0f), _CMP_LE_OQ);
        const __m256 result = _mm256_blendv_ps(gelu_u, _mm256_mul_ps(x, ux), high);
        _mm256_storeu_ps(y + i, _mm256_andnot_ps(low, result));
    }
    for (int64_t i = vectorized; i < total; ++i) y[i] = geglu_one(g[i], u[i]);
}

/* 16 float lanes as two __m256 (lanes 0-7, 8-15), halved until one is left: _mm512_reduce_add_ps's order */
static inline float tree_16(__m256 lo, __m256 hi) { return hsum_float_8(_mm256_add_ps(lo, hi)); }

static inline __m256 load_half_8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p)); }

/* ggml_vec_dot_f16 on AVX-512 (the fp16 row k against q, already rounded to fp16 values): four 16-lane
 * accumulators over blocks of 64, combined (a0+a2)+(a1+a3), halved; a tail of n % 64 added in double */
static float dot_vec_f16(const uint16_t *k, const float *q, int64_t n) {
    __m256 lo[4], hi[4];
    for (int j = 0; j < 4; ++j) lo[j] = hi[j] = _mm256_setzero_ps();
    const int64_t np = n & ~(int64_t) 63;
    for (int64_t i = 0; i < np; i += 64)
        for (int j = 0; j < 4; ++j) {
            lo[j] = _mm256_fmadd_ps(load_half_8(k + i + 16 * j), _mm256_loadu_ps(q + i + 16 * j), lo[j]);
            hi[j] = _mm256_fmadd_ps(load_half_8(k + i + 16 * j + 8), _mm256_loadu_ps(q + i + 16 * j + 8), hi[j]);
        }
    double sum = tree_16(_mm256_add_ps(_mm256_add_ps(lo[0], lo[2]), _mm256_add_ps(lo[1], lo[3])),
                         _mm256_add_ps(_mm256_add_ps(hi[0], hi[2]), _mm256_add_ps(hi[1], hi[3])));
    for (int64_t i = np; i < n; ++i) sum += (double) (half_to_float(k[i]) * q[i]);
    return (float) sum;
}

/* tinyBLAS<16, __m512>'s dot: one 16-lane accumulator, n a multiple of 16 */
static float dot_tiny_f16(const uint16_t *k, const float *q, int64_t n) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        lo = _mm256_fmadd_ps(load_half_8(k + i), _mm256_loadu_ps(q + i), lo);
        hi = _mm256_fmadd_ps(load_half_8(k + i + 8), _mm256_loadu_ps(q + i + 8), hi);
    }
    return tree_16(lo, hi);
}

/* the same with the row already widened to float */
static float dot_tiny_f32(const float *k, const float *q, int64_t n) {
    __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        lo = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), _mm256_loadu_ps(q + i), lo);
        hi = _mm256_fmadd_ps(_mm256_loadu_ps(k + i + 8), _mm256_loadu_ps(q + i + 8), hi);
    }
    return tree_16(lo, hi);
}

/* four consecutive rows of k (row length n) against q: the dot_tiny_f32 of each, interleaved */
static void dot_tiny_f32_x4(const float *k, int64_t n, const float *q, float *out) {
    __m256 lo[4], hi[4];
    for (int r = 0; r < 4; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __m256 q_lo = _mm256_loadu_ps(q + i), q_hi = _mm256_loadu_ps(q + i + 8);
        for (int r = 0; r < 4; ++r) {
            lo[r] = _mm256_fmadd_ps(_mm256_loadu_ps(k + r * n + i), q_lo, lo[r]);
            hi[r] = _mm256_fmadd_ps(_mm256_loadu_ps(k + r * n + i + 8), q_hi, hi[r]);
        }
    }
    for (int r = 0; r < 4; ++r) out[r] = tree_16(lo[r], hi[r]);
}

/* ggml_expf on 8 lanes: the same operations; 2^n applied by building the power of two when every |n| <= 126
 * (exact, like _mm512_scalef_ps), lane by lane otherwise */
static inline __m256 ggml_expf_8(__m256 x) {
    const __m256 r = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
    const __m256 n = _mm256_sub_ps(z, r);
    const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                      _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
    const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 mid = _mm256_andnot_ps(big, _mm256_cmp_ps(abs_n, _mm256_set1_ps(126.0f), _CMP_GT_OQ));
    if (_mm256_movemask_ps(mid)) {
        float xs[8], ys[8];
        _mm256_storeu_ps(xs, x);
        for (int l = 0; l < 8; ++l) ys[l] = ggml_expf(xs[l]);
        return _mm256_loadu_ps(ys);
    }
    const __m256i exponent = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 scaled = _mm256_mul_ps(j, _mm256_castsi256_ps(exponent));
    const __m256 limit = _mm256_blendv_ps(_mm256_set1_ps(INFINITY), _mm256_setzero_ps(),
                                          _mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ));
    return _mm256_blendv_ps(scaled, limit, big);
}

static inline __m256 round_to_half_8(__m256 x) {
    return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
}

static inline int visible(int64_t key, int64_t query, int64_t window) {
    return key <= query && (window <= 0 || query - key < window);
}

/* q [n_q, H, Dk] float32 (n_q = B*T tokens, positions [n_q], -1 = padding), caches [n_slots, Hkv, n_ctx, D] fp16,
 * slots [B]; out [n_q, H, Dv]. tiny != 0: the batch holds two or more tokens (tinyBLAS order). k_new/v_new
 * [n_q, Hkv, D] float32 (or NULL): first stored in the cache at their positions, rounded to fp16. */
static inline void to_half(const float *x, uint16_t *h, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *) (h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; ++i) h[i] = float_to_half(x[i]);
}

static inline void from_half(const uint16_t *h, float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, load_half_8(h + i));
    for (; i < n; ++i) x[i] = half_to_float(h[i]);
}

static inline __attribute__((always_inline)) void attention_impl(const float *q, uint16_t *k_cache, uint16_t *v_cache, const int64_t *slots,
                           const int64_t *positions, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t Dk,
                           int64_t Dv, int64_t n_ctx, int64_t n_keys, int64_t window, float scale, int tiny,
                           float *out, const float *k_new, const float *v_new) {
    const int64_t group = H / Hkv;
    if (k_new && v_new) { /* into the cache, rounded to fp16 (8 at a time: the same rounding as one at a time) */
        #pragma omp parallel for schedule(static) if (B * T > 63)
        for (int64_t token = 0; token < B * T; ++token) {
            const int64_t p = positions[token], slot = slots[token / T];
            if (p < 0) continue;
            for (int64_t g = 0; g < Hkv; ++g) {
                to_half(k_new + (token * Hkv + g) * Dk, k_cache + ((slot * Hkv + g) * n_ctx + p) * Dk, Dk);
                to_half(v_new + (token * Hkv + g) * Dv, v_cache + ((slot * Hkv + g) * n_ctx + p) * Dv, Dv);
            }
        }
    }
    const int64_t padded = (n_keys + 63) & ~(int64_t) 63;
    const int tiny_kq = tiny && Dk % 16 == 0;
    const int64_t lanes = tiny ? 16 : 64; /* kqv accumulators: cell mod 16 (tinyBLAS) or mod 64 (vec_dot_f16) */
    /* a batch of one sequence reads every cached row many times: widen the slot's K/V to float once */
    /* rows padded to a multiple of 16 with zeros, so that whole 16-key chunks can be read */
    const int64_t rows = (n_keys + 15) & ~(int64_t) 15;
    float *wide = NULL;
    if (tiny && B == 1 && T >= 16 && Dv % 8 == 0)
        wide = aligned_alloc(64, sizeof(float) * (size_t) ((Hkv * rows * (Dk + Dv) + 15) / 16 * 16));
    if (wide) {
        #pragma omp parallel for schedule(static) collapse(2)
        for (int64_t g = 0; g < Hkv; ++g)
            for (int64_t c = 0; c < rows; ++c) {
                const int64_t row = (slots[0] * Hkv + g) * n_ctx + c;
                /* V rows lane-major: key c at (c mod 16) * (rows / 16) + c / 16, so that the keys one lane sums are
                 * consecutive rows */
                float *kd = wide + (g * rows + c) * Dk;
                float *vd = wide + Hkv * rows * Dk + (g * rows + (c % 16) * (rows / 16) + c / 16) * Dv;
                if (c < n_keys) {
                    from_half(k_cache + row * Dk, kd, Dk);
                    from_half(v_cache + row * Dv, vd, Dv);
                } else {
                    memset(kd, 0, sizeof(float) * (size_t) Dk);
                    memset(vd, 0, sizeof(float) * (size_t) Dv);
                }
            }
    }
    #pragma omp parallel
    {
        float *buffer = aligned_alloc(64, sizeof(float) * (size_t) ((Dk + 2 * padded + 64 * Dv + 15) / 16 * 16 + 16));
        float *qh = buffer, *score = qh + Dk, *prob = score + padded, *acc = prob + padded;
        #pragma omp for schedule(dynamic, 1) collapse(2)
        for (int64_t token = 0; token < B * T; ++token) {
            for (int64_t h = 0; h < H; ++h) {
                const int64_t p = positions[token];
                float *o = out + (token * H + h) * Dv;
                if (p < 0) { memset(o, 0, sizeof(float) * (size_t) Dv); continue; }
                const int64_t g = h / group, slot = slots[token / T];
                const uint16_t *keys = k_cache + ((slot * Hkv + g) * n_ctx) * Dk;
                const uint16_t *values = v_cache + ((slot * Hkv + g) * n_ctx) * Dv;
                const float *wide_k = wide ? wide + g * rows * Dk : NULL;
                const float *wide_v = wide ? wide + Hkv * rows * Dk + g * rows * Dv : NULL;
                const float *qt = q + (token * H + h) * Dk;
                for (int64_t d = 0; d < Dk; ++d) qh[d] = round_to_half(qt[d]);
                /* visible keys lie in [first, last); chunks of 16 outside it hold only zeros after the softmax,
                 * which add nothing to its sum nor to the output: they are skipped */
                const int64_t first = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
                const int64_t last = p + 1 < n_keys ? p + 1 : n_keys;
                const int64_t c_begin = first & ~(int64_t) 15, c_end = (last + 15) & ~(int64_t) 15;
                float max = -INFINITY;
                int64_t c = c_begin;
                if (wide_k && tiny_kq) /* four keys at a time: four independent chains, each in its own order */
                    for (; c + 4 <= c_end; c += 4) {
                        if (c < first || c + 4 > last) break;
                        float dots[4];
                        dot_tiny_f32_x4(wide_k + c * Dk, Dk, qh, dots);
                        for (int i = 0; i < 4; ++i) {
                            score[c + i] = dots[i] * scale;
                            max = score[c + i] > max ? score[c + i] : max;
                        }
                    }
                for (; c < c_end; ++c) {
                    if (c < first || c >= last) { score[c] = -INFINITY; continue; }
                    const float dot = wide_k && tiny_kq ? dot_tiny_f32(wide_k + c * Dk, qh, Dk)
                                      : tiny_kq ? dot_tiny_f16(keys + c * Dk, qh, Dk) : dot_vec_f16(keys + c * Dk, qh, Dk);
                    score[c] = dot * scale;
                    max = score[c] > max ? score[c] : max;
                }
                double sum = 0.0;
                const __m256 max8 = _mm256_set1_ps(max);
                for (int64_t c = c_begin; c < c_end; c += 16) {
                    const __m256 lo = ggml_expf_8(_mm256_sub_ps(_mm256_loadu_ps(score + c), max8));
                    const __m256 hi = ggml_expf_8(_mm256_sub_ps(_mm256_loadu_ps(score + c + 8), max8));
                    _mm256_storeu_ps(prob + c, lo);
                    _mm256_storeu_ps(prob + c + 8, hi);
                    sum += (double) tree_16(lo, hi);
                }
                const __m256 inv = _mm256_set1_ps((float) (1.0 / sum));
                for (int64_t c = c_begin; c < c_end; c += 8)
                    _mm256_storeu_ps(prob + c, round_to_half_8(_mm256_mul_ps(_mm256_loadu_ps(prob + c), inv)));
                if (wide_v) { /* tinyBLAS order: lane l sums the keys c = l (mod 16) in increasing order. One lane at a
                               * time over a tile of 64 values: each key row's tile is read in one piece and its
                               * probability broadcast once (the loads per multiply-add drop from two to one). The
                               * masked keys of the chunks carry probability 0 and a finite (or zero) row: no-ops */
                    for (int64_t d0 = 0; d0 < Dv; d0 += 64) {
                        const int nd = Dv - d0 < 64 ? (int) ((Dv - d0) / 8) : 8;
                        for (int l = 0; l < 16; ++l) {
                            __m256 a[8];
                            for (int k = 0; k < 8; ++k) a[k] = _mm256_setzero_ps();
                            if (nd == 8)
                                for (int64_t c = c_begin + l; c < c_end; c += 16) {
                                    const __m256 pc = _mm256_set1_ps(prob[c]);
                                    const float *v = wide_v + (l * (rows / 16) + c / 16) * Dv + d0;
                                    #pragma GCC unroll 8
                                    for (int k = 0; k < 8; ++k) a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(v + 8 * k), pc, a[k]);
                                }
                            else
                                for (int64_t c = c_begin + l; c < c_end; c += 16) {
                                    const __m256 pc = _mm256_set1_ps(prob[c]);
                                    const float *v = wide_v + (l * (rows / 16) + c / 16) * Dv + d0;
                                    for (int k = 0; k < nd; ++k) a[k] = _mm256_fmadd_ps(_mm256_loadu_ps(v + 8 * k), pc, a[k]);
                                }
                            for (int k = 0; k < nd; ++k) _mm256_storeu_ps(acc + l * Dv + d0 + 8 * k, a[k]);
                        }
                    }
                } else {
                    memset(acc, 0, sizeof(float) * (size_t) (lanes * Dv));
                    for (int64_t c = first; c < last; ++c) {
                        if (prob[c] == 0.0f) continue; /* fma(0, v, a) == a */
                        float *a = acc + (c % lanes) * Dv;
                        const uint16_t *v = values + c * Dv;
                        const __m256 pc = _mm256_set1_ps(prob[c]);
                        int64_t d = 0;
                        for (; d + 8 <= Dv; d += 8)
                            _mm256_storeu_ps(a + d, _mm256_fmadd_ps(load_half_8(v + d), pc, _mm256_loadu_ps(a + d)));
                        for (; d < Dv; ++d) a[d] = fmaf(half_to_float(v[d]), prob[c], a[d]);
                    }
                }
                /* fold the lanes of every output value: (a0 + a2) + (a1 + a3) for vec_dot_f16's four accumulators,
                 * then the 16 lanes halved; 8 output values at a time */
                int64_t d = 0;
                for (; d + 8 <= Dv; d += 8) {
                    __m256 lane[16];
                    for (int l = 0; l < 16; ++l) {
                        const __m256 a0 = _mm256_loadu_ps(acc + l * Dv + d);
                        lane[l] = tiny ? a0 : _mm256_add_ps(_mm256_add_ps(a0, _mm256_loadu_ps(acc + (32 + l) * Dv + d)),
                                                            _mm256_add_ps(_mm256_loadu_ps(acc + (16 + l) * Dv + d),
                                                                          _mm256_loadu_ps(acc + (48 + l) * Dv + d)));
                    }
                    for (int half = 8; half > 0; half >>= 1)
                        for (int l = 0; l < half; ++l) lane[l] = _mm256_add_ps(lane[l], lane[l + half]);
                    _mm256_storeu_ps(o + d, lane[0]);
                }
                for (; d < Dv; ++d) {
                    float lane[16];
                    for (int l = 0; l < 16; ++l)
                        lane[l] = tiny ? acc[l * Dv + d]
                                       : (acc[l * Dv + d] + acc[(32 + l) * Dv + d]) + (acc[(16 + l) * Dv + d] + acc[(48 + l) * Dv + d]);
                    o[d] = tree_sum_16(lane);
                }
            }
        }
        free(buffer);
    }
    free(wide);
}

/* The same function compiled twice: with AVX-512 VL's 32 vector registers the 16 lane accumulators and the 16 row
 * offsets of the tinyBLAS-order products stay in registers (AVX2 spills them); the instructions are the same
 * operations in the same order, so the results are identical. */
__attribute__((target("avx512f,avx512vl"))) static void attention_avx512(const float *q, uint16_t *k_cache, uint16_t *v_cache, const int64_t *slots,
                           const int64_t *positions, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t Dk,
                           int64_t Dv, int64_t n_ctx, int64_t n_keys, int64_t window, float scale, int tiny,
                           float *out, const float *k_new, const float *v_new) {
    attention_impl(q, k_cache, v_cache, slots, positions, B, T, H, Hkv, Dk, Dv, n_ctx, n_keys, window, scale, tiny, out, k_new, v_new);
}

static void attention_avx2(const float *q, uint16_t *k_cache, uint16_t *v_cache, const int64_t *slots,
                           const int64_t *positions, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t Dk,
                           int64_t Dv, int64_t n_ctx, int64_t n_keys, int64_t window, float scale, int tiny,
                           float *out, const float *k_new, const float *v_new) {
    attention_impl(q, k_cache, v_cache, slots, positions, B, T, H, Hkv, Dk, Dv, n_ctx, n_keys, window, scale, tiny, out, k_new, v_new);
}

void camelid_attention_f16(const float *q, uint16_t *k_cache, uint16_t *v_cache, const int64_t *slots,
                           const int64_t *positions, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t Dk,
                           int64_t Dv, int64_t n_ctx, int64_t n_keys, int64_t window, float scale, int tiny,
                           float *out, const float *k_new, const float *v_new) {
    static int wide = -1;
    if (wide < 0) {
        __builtin_cpu_init();
        wide = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    }
    (wide ? attention_avx512 : attention_avx2)(q, k_cache, v_cache, slots, positions, B, T, H, Hkv, Dk, Dv, n_ctx, n_keys, window, scale, tiny, out, k_new, v_new);
}
