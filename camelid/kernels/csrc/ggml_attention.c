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

/* two consecutive rows of k (row length n) against the nh query rows qh (n apart): dot_tiny_f32 of each pair, all
 * interleaved (the key loads shared by the heads); dots[2 * head + key] */
static inline __attribute__((always_inline)) void dot_tiny_f32_heads(const float *k, int64_t n, const float *qh, int nh,
                                                                     float *dots) {
    __m256 lo[4][2], hi[4][2];
    for (int j = 0; j < nh; ++j) lo[j][0] = lo[j][1] = hi[j][0] = hi[j][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __m256 k0l = _mm256_loadu_ps(k + i), k0h = _mm256_loadu_ps(k + i + 8);
        const __m256 k1l = _mm256_loadu_ps(k + n + i), k1h = _mm256_loadu_ps(k + n + i + 8);
        for (int j = 0; j < nh; ++j) {
            const __m256 ql = _mm256_loadu_ps(qh + j * n + i), qu = _mm256_loadu_ps(qh + j * n + i + 8);
            lo[j][0] = _mm256_fmadd_ps(k0l, ql, lo[j][0]);
            hi[j][0] = _mm256_fmadd_ps(k0h, qu, hi[j][0]);
            lo[j][1] = _mm256_fmadd_ps(k1l, ql, lo[j][1]);
            hi[j][1] = _mm256_fmadd_ps(k1h, qu, hi[j][1]);
        }
    }
    for (int j = 0; j < nh; ++j)
        for (int r = 0; r < 2; ++r) dots[2 * j + r] = tree_16(lo[j][r], hi[j][r]);
}

/* tinyBLAS order for the value sums of nh heads at once: lane l of head j sums prob[j][c] * v[c] over the keys
 * c = l (mod 16) in increasing order, into acc[(j * 16 + l) * Dv + d]. 32 values at a time, each key row's tile read
 * once for the heads (V rows lane-major, see below). Masked keys carry probability 0 and a finite row: no-ops */
static inline __attribute__((always_inline)) void value_sums_heads(const float *wide_v, int64_t rows, int64_t Dv,
                                                                   const float *prob, int64_t padded, int nh,
                                                                   int64_t c_begin, int64_t c_end, float *acc) {
    for (int64_t d0 = 0; d0 + 32 <= Dv; d0 += 32)
        for (int l = 0; l < 16; ++l) {
            __m256 a[4][4];
            for (int j = 0; j < nh; ++j)
                for (int k = 0; k < 4; ++k) a[j][k] = _mm256_setzero_ps();
            for (int64_t c = c_begin + l; c < c_end; c += 16) {
                const float *v = wide_v + (l * (rows / 16) + c / 16) * Dv + d0;
                __m256 vk[4];
                for (int k = 0; k < 4; ++k) vk[k] = _mm256_loadu_ps(v + 8 * k);
                for (int j = 0; j < nh; ++j) {
                    const __m256 pc = _mm256_set1_ps(prob[j * padded + c]);
                    for (int k = 0; k < 4; ++k) a[j][k] = _mm256_fmadd_ps(vk[k], pc, a[j][k]);
                }
            }
            for (int j = 0; j < nh; ++j)
                for (int k = 0; k < 4; ++k) _mm256_storeu_ps(acc + (j * 16 + l) * Dv + d0 + 8 * k, a[j][k]);
        }
    for (int64_t d0 = Dv & ~(int64_t) 31; d0 < Dv; d0 += 8) /* Dv % 32 values left: 8 at a time */
        for (int j = 0; j < nh; ++j)
            for (int l = 0; l < 16; ++l) {
                __m256 a = _mm256_setzero_ps();
                for (int64_t c = c_begin + l; c < c_end; c += 16)
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(wide_v + (l * (rows / 16) + c / 16) * Dv + d0),
                                        _mm256_set1_ps(prob[j * padded + c]), a);
                _mm256_storeu_ps(acc + (j * 16 + l) * Dv + d0, a);
            }
}

/* The same two loops with 512-bit registers (the AVX-512 build only): a 16-lane accumulator is one register,
 * tinyBLAS's own __m512, so 4 keys x 4 heads of scores, or 64 values x 4 heads of value sums, stay in registers;
 * the same operations on the same lanes as the loops above. */
#define AVX512 __attribute__((target("avx512f,avx512vl")))
AVX512 static inline __attribute__((always_inline)) void scores_4x(const float *k, int64_t n, const float *qh, int nh,
                                                                  float *dots) {
    __m512 acc[4][4];
    for (int j = 0; j < nh; ++j)
        for (int r = 0; r < 4; ++r) acc[j][r] = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        __m512 kr[4];
        for (int r = 0; r < 4; ++r) kr[r] = _mm512_loadu_ps(k + r * n + i);
        for (int j = 0; j < nh; ++j) {
            const __m512 q = _mm512_loadu_ps(qh + j * n + i);
            for (int r = 0; r < 4; ++r) acc[j][r] = _mm512_fmadd_ps(kr[r], q, acc[j][r]);
        }
    }
    for (int j = 0; j < nh; ++j)
        for (int r = 0; r < 4; ++r)
            dots[4 * j + r] = tree_16(_mm512_castps512_ps256(acc[j][r]),
                                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[j][r]), 1)));
}

/* scores of the visible keys c, c + 1, ... below `last`, four at a time: score[j * padded + c] and the heads' maxima;
 * returns the first key not done */
AVX512 __attribute__((noinline)) static int64_t scores_512(const float *wide_k, int64_t Dk, const float *qh, int nh,
                                                           int64_t c, int64_t last, float scale, float *score,
                                                           int64_t padded, float *max) {
    for (; c + 4 <= last; c += 4) {
        float dots[16];
        switch (nh) { /* constant head counts, for registers */
        case 4: scores_4x(wide_k + c * Dk, Dk, qh, 4, dots); break;
        case 3: scores_4x(wide_k + c * Dk, Dk, qh, 3, dots); break;
        case 2: scores_4x(wide_k + c * Dk, Dk, qh, 2, dots); break;
        default: scores_4x(wide_k + c * Dk, Dk, qh, 1, dots); break;
        }
        for (int j = 0; j < nh; ++j)
            for (int r = 0; r < 4; ++r) {
                const float s = dots[4 * j + r] * scale;
                score[j * padded + c + r] = s;
                max[j] = s > max[j] ? s : max[j];
            }
    }
    return c;
}

AVX512 static inline __attribute__((always_inline)) void value_tile_512(const float *wide_v, int64_t rows, int64_t Dv,
                                                                       const float *prob, int64_t padded, int nh,
                                                                       int64_t c_begin, int64_t c_end, int l,
                                                                       int64_t d0, float *acc) {
    __m512 a[4][4];
    for (int j = 0; j < nh; ++j)
        for (int k = 0; k < 4; ++k) a[j][k] = _mm512_setzero_ps();
    for (int64_t c = c_begin + l; c < c_end; c += 16) {
        const float *v = wide_v + (l * (rows / 16) + c / 16) * Dv + d0;
        __m512 vk[4];
        for (int k = 0; k < 4; ++k) vk[k] = _mm512_loadu_ps(v + 16 * k);
        for (int j = 0; j < nh; ++j) {
            const __m512 pc = _mm512_set1_ps(prob[j * padded + c]);
            for (int k = 0; k < 4; ++k) a[j][k] = _mm512_fmadd_ps(vk[k], pc, a[j][k]);
        }
    }
    for (int j = 0; j < nh; ++j)
        for (int k = 0; k < 4; ++k) _mm512_storeu_ps(acc + (j * 16 + l) * Dv + d0 + 16 * k, a[j][k]);
}

/* value_sums_heads for Dv a multiple of 64, 64 values at a time */
AVX512 __attribute__((noinline)) static void value_sums_512(const float *wide_v, int64_t rows, int64_t Dv,
                                                            const float *prob, int64_t padded, int nh, int64_t c_begin,
                                                            int64_t c_end, float *acc) {
    for (int64_t d0 = 0; d0 < Dv; d0 += 64)
        for (int l = 0; l < 16; ++l)
            switch (nh) {
            case 4: value_tile_512(wide_v, rows, Dv, prob, padded, 4, c_begin, c_end, l, d0, acc); break;
            case 3: value_tile_512(wide_v, rows, Dv, prob, padded, 3, c_begin, c_end, l, d0, acc); break;
            case 2: value_tile_512(wide_v, rows, Dv, prob, padded, 2, c_begin, c_end, l, d0, acc); break;
            default: value_tile_512(wide_v, rows, Dv, prob, padded, 1, c_begin, c_end, l, d0, acc); break;
            }
}

/* the lanes of every output value folded: (a0 + a2) + (a1 + a3) for vec_dot_f16's four accumulators, then the 16
 * lanes halved; 8 output values at a time */
static inline __attribute__((always_inline)) void fold_lanes(const float *acc, int64_t Dv, int tiny, float *o) {
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

typedef struct {
    const float *q, *wide; /* wide: the slot's K and V widened to float (or NULL), see camelid_attention_f16 */
    const uint16_t *k_cache, *v_cache;
    const int64_t *slots, *positions;
    float *out;
    int64_t T, H, Hkv, Dk, Dv, n_ctx, n_keys, window, rows;
    float scale;
    int tiny;
} attention_args;

/* floats of the per-thread buffer attend_group needs */
static int64_t attend_buffer(const attention_args *a) {
    const int64_t padded = (a->n_keys + 63) & ~(int64_t) 63;
    return (4 * a->Dk + 8 * padded + 64 * a->Dv + 15) / 16 * 16 + 16;
}

/* Query heads h0 .. h0 + nh - 1 (nh <= 4) of KV group g for one query token: they see the same keys, so each key and
 * value row is loaded once for all of them (with the widened cache). Every score, sum and output is computed exactly
 * as for one head alone. */
static inline __attribute__((always_inline)) void attend_heads(const attention_args *a, int64_t token, int64_t g,
                                                               int64_t h0, int nh, float *buffer, int avx512) {
    const int64_t H = a->H, Hkv = a->Hkv, Dk = a->Dk, Dv = a->Dv, group = H / Hkv, rows = a->rows;
    const int64_t padded = (a->n_keys + 63) & ~(int64_t) 63, p = a->positions[token];
    const int tiny = a->tiny, tiny_kq = tiny && Dk % 16 == 0;
    const int64_t lanes = tiny ? 16 : 64; /* kqv accumulators: cell mod 16 (tinyBLAS) or mod 64 (vec_dot_f16) */
    float *qh = buffer, *score = qh + 4 * Dk, *prob = score + 4 * padded, *acc = prob + 4 * padded;
    const int64_t head0 = token * H + g * group + h0;
    if (p < 0) {
        memset(a->out + head0 * Dv, 0, sizeof(float) * (size_t) (nh * Dv));
        return;
    }
    const int64_t slot = a->slots[token / a->T];
    const uint16_t *keys = a->k_cache + ((slot * Hkv + g) * a->n_ctx) * Dk;
    const uint16_t *values = a->v_cache + ((slot * Hkv + g) * a->n_ctx) * Dv;
    const float *wide_k = a->wide ? a->wide + g * rows * Dk : NULL;
    const float *wide_v = a->wide ? a->wide + Hkv * rows * Dk + g * rows * Dv : NULL;
    /* visible keys lie in [first, last); chunks of 16 outside it hold only zeros after the softmax, which add nothing
     * to its sum nor to the output: they are skipped */
    const int64_t first = a->window > 0 && p - a->window + 1 > 0 ? p - a->window + 1 : 0;
    const int64_t last = p + 1 < a->n_keys ? p + 1 : a->n_keys;
    const int64_t c_begin = first & ~(int64_t) 15, c_end = (last + 15) & ~(int64_t) 15;
    float max[4];
    for (int j = 0; j < nh; ++j) {
        const float *qj = a->q + (head0 + j) * Dk;
        int64_t d = 0;
        for (; d + 8 <= Dk; d += 8) _mm256_storeu_ps(qh + j * Dk + d, round_to_half_8(_mm256_loadu_ps(qj + d)));
        for (; d < Dk; ++d) qh[j * Dk + d] = round_to_half(qj[d]);
        max[j] = -INFINITY;
    }
    int64_t c = c_begin;
    for (; c < c_end && c < first; ++c)
        for (int j = 0; j < nh; ++j) score[j * padded + c] = -INFINITY;
    if (wide_k && tiny_kq && avx512) c = scores_512(wide_k, Dk, qh, nh, c, last, a->scale, score, padded, max);
    if (wide_k && tiny_kq) /* two keys at a time for all the heads */
        for (; c + 2 <= last; c += 2) {
            float dots[8];
            switch (nh) { /* constant head counts, for registers */
            case 4: dot_tiny_f32_heads(wide_k + c * Dk, Dk, qh, 4, dots); break;
            case 3: dot_tiny_f32_heads(wide_k + c * Dk, Dk, qh, 3, dots); break;
            case 2: dot_tiny_f32_heads(wide_k + c * Dk, Dk, qh, 2, dots); break;
            default: dot_tiny_f32_heads(wide_k + c * Dk, Dk, qh, 1, dots); break;
            }
            for (int j = 0; j < nh; ++j)
                for (int i = 0; i < 2; ++i) {
                    const float s = dots[2 * j + i] * a->scale;
                    score[j * padded + c + i] = s;
                    max[j] = s > max[j] ? s : max[j];
                }
        }
    for (; c < c_end; ++c)
        for (int j = 0; j < nh; ++j) {
            if (c >= last) { score[j * padded + c] = -INFINITY; continue; }
            const float *qj = qh + j * Dk;
            const float dot = wide_k && tiny_kq ? dot_tiny_f32(wide_k + c * Dk, qj, Dk)
                              : tiny_kq ? dot_tiny_f16(keys + c * Dk, qj, Dk) : dot_vec_f16(keys + c * Dk, qj, Dk);
            const float s = dot * a->scale;
            score[j * padded + c] = s;
            max[j] = s > max[j] ? s : max[j];
        }
    for (int j = 0; j < nh; ++j) { /* ggml_soft_max_ext */
        float *sj = score + j * padded, *pj = prob + j * padded;
        double sum = 0.0;
        const __m256 max8 = _mm256_set1_ps(max[j]);
        for (int64_t c = c_begin; c < c_end; c += 16) {
            const __m256 lo = ggml_expf_8(_mm256_sub_ps(_mm256_loadu_ps(sj + c), max8));
            const __m256 hi = ggml_expf_8(_mm256_sub_ps(_mm256_loadu_ps(sj + c + 8), max8));
            _mm256_storeu_ps(pj + c, lo);
            _mm256_storeu_ps(pj + c + 8, hi);
            sum += (double) tree_16(lo, hi);
        }
        const __m256 inv = _mm256_set1_ps((float) (1.0 / sum));
        for (int64_t c = c_begin; c < c_end; c += 8)
            _mm256_storeu_ps(pj + c, round_to_half_8(_mm256_mul_ps(_mm256_loadu_ps(pj + c), inv)));
    }
    if (wide_v && avx512 && Dv % 64 == 0) {
        value_sums_512(wide_v, rows, Dv, prob, padded, nh, c_begin, c_end, acc);
        for (int j = 0; j < nh; ++j) fold_lanes(acc + j * 16 * Dv, Dv, tiny, a->out + (head0 + j) * Dv);
        return;
    }
    if (wide_v) {
        switch (nh) {
        case 4: value_sums_heads(wide_v, rows, Dv, prob, padded, 4, c_begin, c_end, acc); break;
        case 3: value_sums_heads(wide_v, rows, Dv, prob, padded, 3, c_begin, c_end, acc); break;
        case 2: value_sums_heads(wide_v, rows, Dv, prob, padded, 2, c_begin, c_end, acc); break;
        default: value_sums_heads(wide_v, rows, Dv, prob, padded, 1, c_begin, c_end, acc); break;
        }
        for (int j = 0; j < nh; ++j) fold_lanes(acc + j * 16 * Dv, Dv, tiny, a->out + (head0 + j) * Dv);
        return;
    }
    for (int j = 0; j < nh; ++j) { /* from the fp16 cache, one head at a time */
        const float *pj = prob + j * padded;
        memset(acc, 0, sizeof(float) * (size_t) (lanes * Dv));
        for (int64_t c = first; c < last; ++c) {
            if (pj[c] == 0.0f) continue; /* fma(0, v, a) == a */
            float *acc_c = acc + (c % lanes) * Dv;
            const uint16_t *v = values + c * Dv;
            const __m256 pc = _mm256_set1_ps(pj[c]);
            int64_t d = 0;
            for (; d + 8 <= Dv; d += 8)
                _mm256_storeu_ps(acc_c + d, _mm256_fmadd_ps(load_half_8(v + d), pc, _mm256_loadu_ps(acc_c + d)));
            for (; d < Dv; ++d) acc_c[d] = fmaf(half_to_float(v[d]), pj[c], acc_c[d]);
        }
        fold_lanes(acc, Dv, tiny, a->out + (head0 + j) * Dv);
    }
}

/* The same function compiled twice: with AVX-512 VL's 32 vector registers the accumulators of the grouped heads
 * stay in registers (AVX2 spills them); the instructions are the same operations in the same order, so the results
 * are identical. */
__attribute__((target("avx512f,avx512vl"))) static void attend_avx512(const attention_args *a, int64_t token, int64_t g,
                                                                      int64_t h0, int nh, float *buffer) {
    attend_heads(a, token, g, h0, nh, buffer, 1);
}

static void attend_avx2(const attention_args *a, int64_t token, int64_t g, int64_t h0, int nh, float *buffer) {
    attend_heads(a, token, g, h0, nh, buffer, 0);
}

/* q [n_q, H, Dk] float32 (n_q = B*T tokens, positions [n_q], -1 = padding), caches [n_slots, Hkv, n_ctx, D] fp16,
 * slots [B]; out [n_q, H, Dv]. tiny != 0: the batch holds two or more tokens (tinyBLAS order). k_new/v_new
 * [n_q, Hkv, D] float32 (or NULL): first stored in the cache at their positions, rounded to fp16. */
void camelid_attention_f16(const float *q, uint16_t *k_cache, uint16_t *v_cache, const int64_t *slots,
                           const int64_t *positions, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t Dk,
                           int64_t Dv, int64_t n_ctx, int64_t n_keys, int64_t window, float scale, int tiny,
                           float *out, const float *k_new, const float *v_new) {
    static int avx512 = -1;
    if (avx512 < 0) {
        __builtin_cpu_init();
        avx512 = avx512_allowed() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    }
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
    /* a batch of one sequence reads every cached row many times: widen the slot's K/V to float once, rows padded to
     * a multiple of 16 with zeros, so that whole 16-key chunks can be read */
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
    const attention_args args = {q, wide, k_cache, v_cache, slots, positions, out, T, H, Hkv, Dk, Dv, n_ctx, n_keys,
                                 window, rows, scale, tiny};
    void (*const attend)(const attention_args *, int64_t, int64_t, int64_t, int, float *) =
        avx512 ? attend_avx512 : attend_avx2;
    /* the work items: (token, KV group, up to 4 of its heads: with the widened cache they share their loads; without
     * it, one head per item, for more items to share between threads) */
    const int64_t group = H / Hkv, per_item = wide ? 4 : 1, chunks = (group + per_item - 1) / per_item;
    #pragma omp parallel
    {
        float *buffer = aligned_alloc(64, sizeof(float) * (size_t) attend_buffer(&args));
        #pragma omp for schedule(dynamic, 1) collapse(3)
        for (int64_t token = 0; token < B * T; ++token)
            for (int64_t g = 0; g < Hkv; ++g)
                for (int64_t chunk = 0; chunk < chunks; ++chunk) {
                    const int64_t h0 = chunk * per_item;
                    attend(&args, token, g, h0, (int) (group - h0 < per_item ? group - h0 : per_item), buffer);
                }
        free(buffer);
    }
    free(wide);
}
