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

/* quantize_row_q8_K_ref: iscale = -127 / (the value of largest magnitude, first one wins), q = min(127, rint), in
 * vectors: the largest magnitude by max (a NaN never wins, as in the scalar comparison), the first element that has
 * it found by a compare, the products and their round-to-nearest-even exactly as nearbyintf, the group sums in
 * integers */
void camelid_quantize_q8_K(const float *x, void *out, int64_t n) {
    block_q8_K *y = (block_q8_K *) out;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 256; ++b, x += 256) {
        __m256 amax8 = _mm256_setzero_ps();
        for (int j = 0; j < 256; j += 8) amax8 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), amax8);
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax8, 1), _mm256_castps256_ps128(amax8));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        if (amax == 0.0f) { memset(&y[b], 0, sizeof(block_q8_K)); continue; }
        float max = 0.0f;
        const __m256 target = _mm256_set1_ps(amax);
        for (int j = 0; j < 256; j += 8) {
            const int hits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)), target,
                                                              _CMP_EQ_OQ));
            if (hits) { max = x[j + __builtin_ctz((unsigned) hits)]; break; }
        }
        const float iscale = -127.0f / max;
        const __m256 scale8 = _mm256_set1_ps(iscale);
        const __m256i top = _mm256_set1_epi32(127);
        for (int g = 0; g < 16; ++g) {
            __m256i q[2];
            for (int h = 0; h < 2; ++h)
                q[h] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_round_ps(
                    _mm256_mul_ps(scale8, _mm256_loadu_ps(x + 16 * g + 8 * h)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)),
                    top);
            const __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8); /* 16 x int16, in order */
            const __m128i bytes = _mm_packs_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
            _mm_storeu_si128((__m128i *) (y[b].qs + 16 * g), bytes);
            __m128i s = _mm_add_epi32(_mm256_castsi256_si128(_mm256_add_epi32(q[0], q[1])),
                                      _mm256_extracti128_si256(_mm256_add_epi32(q[0], q[1]), 1));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
            s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
            y[b].bsums[g] = (int16_t) _mm_cvtsi128_si32(s);
        }
        y[b].d = 1 / iscale;
    }
}

/* one Q6_K super-block unpacked: the unsigned 6-bit codes of its 8 chunks of 32 (low 4 bits from ql, high 2 from
 * qh), each chunk's two 16-element scales as 16-bit lanes, and all 16 scales widened (for the bsum term) */
typedef struct { __m256i q[8], sc[8], scales; } q6_K_unpacked;

/* the 6-bit codes of the 8 chunks (low 4 bits from ql, high 2 from qh) */
static inline __attribute__((always_inline)) void unpack_q6_K_codes(const block_q6_K *x, q6_K_unpacked *u) {
    const __m256i m15 = _mm256_set1_epi8(15), m3 = _mm256_set1_epi8(3);
    for (int half = 0; half < 2; ++half) {
        const uint8_t *ql = x->ql + 64 * half, *qh = x->qh + 32 * half;
        const __m256i lo1 = _mm256_loadu_si256((const __m256i *) ql), lo2 = _mm256_loadu_si256((const __m256i *) (ql + 32));
        const __m256i hb = _mm256_loadu_si256((const __m256i *) qh);
        u->q[4 * half + 0] = _mm256_or_si256(_mm256_and_si256(lo1, m15), _mm256_slli_epi16(_mm256_and_si256(hb, m3), 4));
        u->q[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(lo2, m15),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m3), 4));
        u->q[4 * half + 2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo1, 4), m15),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m3), 4));
        u->q[4 * half + 3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo2, 4), m15),
                                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m3), 4));
    }
}

static inline void unpack_q6_K(const block_q6_K *x, q6_K_unpacked *u) {
    unpack_q6_K_codes(x, u);
    for (int chunk = 0; chunk < 8; ++chunk)
        u->sc[chunk] = _mm256_setr_m128i(_mm_set1_epi16(x->scales[2 * chunk]), _mm_set1_epi16(x->scales[2 * chunk + 1]));
    u->scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) x->scales));
}

/* unpack_q6_K with the chunk scales spread by vpermw (AVX-512 BW): the same vectors */
__attribute__((target("avx512vl,avx512bw"))) static inline void unpack_q6_K_bw(const block_q6_K *x, q6_K_unpacked *u) {
    unpack_q6_K_codes(x, u);
    u->scales = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *) x->scales));
    for (int chunk = 0; chunk < 8; ++chunk) /* words 0-7: scale 2 chunk, words 8-15: scale 2 chunk + 1 */
        u->sc[chunk] = _mm256_permutexvar_epi16(_mm256_setr_epi16(
            (short) (2 * chunk), (short) (2 * chunk), (short) (2 * chunk), (short) (2 * chunk), (short) (2 * chunk),
            (short) (2 * chunk), (short) (2 * chunk), (short) (2 * chunk), (short) (2 * chunk + 1), (short) (2 * chunk + 1),
            (short) (2 * chunk + 1), (short) (2 * chunk + 1), (short) (2 * chunk + 1), (short) (2 * chunk + 1),
            (short) (2 * chunk + 1), (short) (2 * chunk + 1)), u->scales);
}

/* the 8 int32 lanes of one Q6_K super-block as ggml's AVX2 vec_dot forms them: lane m holds
 * sum over the elements e with (e mod 32) / 4 == m of sc[e/16] * q6(e) * q8(e), minus 32 (sc[2m] bsum[2m] + sc[2m+1]
 * bsum[2m+1]); integer arithmetic, so any way of forming the sums gives these values */
#define DEFINE_Q6_K_LANES(NAME, TARGET, STEP)                                                                    \
TARGET static inline __m256i NAME(const q6_K_unpacked *u, const block_q8_K *y) {                                  \
    __m256i sumi = _mm256_setzero_si256();                                                                        \
    for (int chunk = 0; chunk < 8; ++chunk) {                                                                     \
        const __m256i p16 = _mm256_maddubs_epi16(u->q[chunk], _mm256_loadu_si256((const __m256i *) (y->qs + 32 * chunk))); \
        sumi = STEP(sumi, p16, u->sc[chunk]);                                                                     \
    }                                                                                                             \
    const __m256i bsums = _mm256_loadu_si256((const __m256i *) y->bsums);                                         \
    return _mm256_sub_epi32(sumi, _mm256_slli_epi32(_mm256_madd_epi16(bsums, u->scales), 5));                     \
}

/* one chunk: madd by the scales and an add, or with VNNI one dpwssd (the same integers) */
#define Q6_K_STEP_MADD(sumi, p16, sc) _mm256_add_epi32(sumi, _mm256_madd_epi16(p16, sc))
DEFINE_Q6_K_LANES(q6_K_lanes_of, , Q6_K_STEP_MADD)
DEFINE_Q6_K_LANES(q6_K_lanes_of_vnni, __attribute__((target("avx512vnni,avx512vl"))), _mm256_dpwssd_epi32)

static inline __m256i q6_K_lanes(const block_q6_K *x, const block_q8_K *y) {
    q6_K_unpacked u;
    unpack_q6_K(x, &u);
    return q6_K_lanes_of(&u, y);
}

static inline int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

static float dot_q6_K_q8_K(int64_t n_blocks, const block_q6_K *x, const block_q8_K *y) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b) {
        const float d = y[b].d * half_to_float(x[b].d);
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(q6_K_lanes(&x[b], &y[b])), acc);
    }
    return hsum_float_8(acc);
}

/* ggml's tiled K-quant matmul (batches of 8 or more rows): per super-block the exact integer
 * s1 = sum sc[s] * (sum q6 * q8 - 32 * bsum[s]), then acc = fma((float) s1 * fp16(d6), d8, acc) (the source
 * writes a multiply and an add; GCC fuses them, and only the fused form matches llama.cpp's output) */
static float dot_q6_K_q8_K_tiled(int64_t n_blocks, const block_q6_K *x, const block_q8_K *y) {
    float acc = 0.0f;
    for (int64_t b = 0; b < n_blocks; ++b) {
        const float result = (float) hsum_epi32(q6_K_lanes(&x[b], &y[b])) * half_to_float(x[b].d);
        acc = fmaf(result, y[b].d, acc);
    }
    return acc;
}

/* Q6_K, one weight row against 4 activation rows: the 6-bit codes and scales unpacked once for the four; each
 * row's integer lanes and float steps are those of the single-row functions (tiled order from 8 rows) */
#define DEFINE_DOT_Q6_K(NAME, ROWS, TARGET, LANES_OF)                                                                              \
TARGET static void NAME(           int64_t n_blocks, const block_q6_K *x, const uint8_t *a, int64_t a_stride, float *out,  \
                        int64_t out_stride, int tiled) {                                                                       \
    __m256 acc_vec[ROWS];                                                                                         \
    float acc_tiled[ROWS];                                                                                                     \
    for (int t = 0; t < ROWS; ++t) acc_vec[t] = _mm256_setzero_ps(), acc_tiled[t] = 0.0f;                                     \
    for (int64_t b = 0; b < n_blocks; ++b) {                                                                                   \
        q6_K_unpacked u;                                                                                                       \
        unpack_q6_K(&x[b], &u);                                                                                                \
        const float d6 = half_to_float(x[b].d);                                                                                \
        for (int t = 0; t < ROWS; ++t) {                                                                                          \
            const block_q8_K *y = (const block_q8_K *) (a + t * a_stride) + b;                                                 \
            const __m256i sumi = LANES_OF(&u, y);                                                                              \
            if (tiled) {                                                                                                       \
                acc_tiled[t] = fmaf((float) hsum_epi32(sumi) * d6, y->d, acc_tiled[t]);                                        \
            } else {                                                                                                           \
                acc_vec[t] = _mm256_fmadd_ps(_mm256_set1_ps(y->d * d6), _mm256_cvtepi32_ps(sumi), acc_vec[t]);                 \
            }                                                                                                                  \
        }                                                                                                                      \
    }                                                                                                                          \
    for (int t = 0; t < ROWS; ++t) out[t * out_stride] = tiled ? acc_tiled[t] : hsum_float_8(acc_vec[t]);                         \
}
DEFINE_DOT_Q6_K(dot_x4_q6_K, 4, , q6_K_lanes_of)
DEFINE_DOT_Q6_K(dot_x4_q6_K_vnni, 4, __attribute__((target("avx512vnni,avx512vl"))), q6_K_lanes_of_vnni)

/* Q6_K, one weight row against 8 activation rows of a batch (always the tiled order: 8 rows or more), with VNNI and
 * AVX-512 BW: the super-block unpacked once for the eight (its 16 scales spread with one vpermw per chunk), each row's
 * integer lanes as q6_K_lanes_of_vnni, then the eight rows' horizontal sums side by side in one vector: lane t is
 * fma((float) sum_t * d6, d8_t, acc_t), the single-row tiled step exactly */
__attribute__((target("avx512vnni,avx512vl,avx512bw"))) static void dot_x8_q6_K_vnni(
        int64_t n_blocks, const block_q6_K *x, const uint8_t *a, int64_t a_stride, float *out, int64_t out_stride) {
    __m256 acc = _mm256_setzero_ps();
    const block_q8_K *y[8];
    for (int64_t b = 0; b < n_blocks; ++b) {
        for (int t = 0; t < 8; ++t) y[t] = (const block_q8_K *) (a + t * a_stride) + b;
        q6_K_unpacked u;
        unpack_q6_K_bw(&x[b], &u);
        __m256i sums[8];
        for (int t = 0; t < 8; ++t) sums[t] = q6_K_lanes_of_vnni(&u, y[t]);
        const __m256i h0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(sums[0], sums[1]), _mm256_hadd_epi32(sums[2], sums[3]));
        const __m256i h4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(sums[4], sums[5]), _mm256_hadd_epi32(sums[6], sums[7]));
        const __m256i total = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                               _mm256_permute2x128_si256(h0123, h4567, 0x31));
        const __m256 d8 = _mm256_setr_ps(y[0]->d, y[1]->d, y[2]->d, y[3]->d, y[4]->d, y[5]->d, y[6]->d, y[7]->d);
        acc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(half_to_float(x[b].d))), d8, acc);
    }
    float result[8];
    _mm256_storeu_ps(result, acc);
    for (int t = 0; t < 8; ++t) out[t * out_stride] = result[t];
}

/* eight rows at once (VNNI only; returns 0 without it, and the caller goes on by fours) */
int camelid_dot_x8_q6_K(const uint8_t *w, const uint8_t *a, int64_t a_stride, int64_t n_in, float *out,
                        int64_t out_stride, int64_t n_tokens) {
    if (!cpu_has_vnni() || !__builtin_cpu_supports("avx512bw")) return 0;
    (void) n_tokens; /* eight rows or more: always the tiled order */
    dot_x8_q6_K_vnni(n_in / 256, (const block_q6_K *) w, a, a_stride, out, out_stride);
    return 1;
}

void camelid_dot_x4_q6_K(const uint8_t *w, const uint8_t *a, int64_t a_stride, int64_t n_in, float *out,
                         int64_t out_stride, int64_t n_tokens) {
    (cpu_has_vnni() ? dot_x4_q6_K_vnni : dot_x4_q6_K)(n_in / 256, (const block_q6_K *) w, a, a_stride, out, out_stride,
                                                  n_tokens >= 8);
}

/* Q6_K in the order llama.cpp uses for a batch of n_tokens rows: vec_dot below 8 rows, the tiled kernel from 8 */
float camelid_dot_q6_K(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens) {
    (void) t;
    const block_q6_K *x = (const block_q6_K *) w;
    const block_q8_K *y = (const block_q8_K *) a;
    return n_tokens >= 8 ? dot_q6_K_q8_K_tiled(n_in / 256, x, y) /* ggml_tiled_min_batch */
                         : dot_q6_K_q8_K(n_in / 256, x, y);
}

/* the eight 6-bit scales and mins of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4 for j = 0..7), all at once
 * with 32-bit masks as ggml's AVX2 code unpacks them */
static inline void scales_mins_k4(const uint8_t *q, uint8_t sc[8], uint8_t mn[8]) {
    uint32_t u[4];
    memcpy(u, q, 12);
    u[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    const uint32_t mins_low = u[1] & 0x3f3f3f3f;
    u[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    u[2] = mins_low;
    u[0] &= 0x3f3f3f3f;
    memcpy(sc, u, 8);
    memcpy(mn, u + 2, 8);
}

/* the eight mins as 16-bit words, each twice (one per half sub-block of 16, as the bsums come) */
static inline __m256i repeated_mins(const uint8_t mn[8]) {
    uint64_t mn8;
    memcpy(&mn8, mn, 8);
    const __m128i mn16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long) mn8));
    return _mm256_set_m128i(_mm_unpackhi_epi16(mn16, mn16), _mm_unpacklo_epi16(mn16, mn16));
}

/* pairs = 1: sums per super-block (gemv); pairs = 4: per pair of sub-blocks (gemm). The integer sums are formed
 * with maddubs/madd lanes and added up; being integers they equal ggml's however they are grouped. */
static float dot_q4_K_q8_K(int64_t n_blocks, const block_q4_K *x, const block_q8_K *y, int pairs) {
    float acc = 0.0f, acc_min = 0.0f;
    const __m256i m15 = _mm256_set1_epi8(15);
    for (int64_t b = 0; b < n_blocks; ++b) {
        const float scale = half_to_float(x[b].d) * y[b].d, scale_min = half_to_float(x[b].dmin) * y[b].d;
        uint8_t sc[8], mn[8];
        scales_mins_k4(x[b].scales, sc, mn);
        __m256i part_sum = _mm256_setzero_si256();
        int32_t imin = 0;
        for (int j = 0; j < 4; ++j) { /* sub-blocks 2j (low nibbles) and 2j+1 (high nibbles) */
            const __m256i packed = _mm256_loadu_si256((const __m256i *) (x[b].qs + 32 * j));
            const __m256i lo = _mm256_and_si256(packed, m15), hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), m15);
            const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *) (y[b].qs + 64 * j)));
            const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *) (y[b].qs + 64 * j + 32)));
            part_sum = _mm256_add_epi32(part_sum, _mm256_add_epi32(_mm256_madd_epi16(p_lo, _mm256_set1_epi16((short) sc[2 * j])),
                                                                   _mm256_madd_epi16(p_hi, _mm256_set1_epi16((short) sc[2 * j + 1]))));
            imin += mn[2 * j] * (y[b].bsums[4 * j] + y[b].bsums[4 * j + 1])
                  + mn[2 * j + 1] * (y[b].bsums[4 * j + 2] + y[b].bsums[4 * j + 3]);
            if (pairs == 4) {
                acc = fmaf((float) hsum_epi32(part_sum), scale, acc);
                acc_min = fmaf((float) imin, scale_min, acc_min);
                part_sum = _mm256_setzero_si256();
                imin = 0;
            }
        }
        if (pairs == 1) {
            acc = fmaf((float) hsum_epi32(part_sum), scale, acc);
            acc_min = fmaf((float) imin, scale_min, acc_min);
        }
    }
    return acc - acc_min;
}

/* Q4_K, one weight row against 4 activation rows of a batch that all take the gemm order (pairs of
 * sub-blocks): the scales and nibbles are unpacked once for the four; each result is computed as above */
#define DEFINE_DOT_X4_Q4_K(SUFFIX, TARGET, PAIR_SUM)                                                                              \
TARGET static void dot_x4_q4_K##SUFFIX(int64_t n_blocks, const block_q4_K *x, const uint8_t *a, int64_t a_stride, float *out,     \
                        int64_t out_stride) {                                                                                     \
    __m128 acc = _mm_setzero_ps(), acc_min = _mm_setzero_ps(); /* lane t: activation row t */                                     \
    const __m256i m15 = _mm256_set1_epi8(15);                                                                                     \
    const block_q8_K *y[4];                                                                                                       \
    for (int64_t b = 0; b < n_blocks; ++b) {                                                                                      \
        for (int t = 0; t < 4; ++t) y[t] = (const block_q8_K *) (a + t * a_stride) + b;                                           \
        uint8_t sc[8], mn[8];                                                                                                     \
        scales_mins_k4(x[b].scales, sc, mn);                                                                                      \
        const __m128 d8 = _mm_setr_ps(y[0]->d, y[1]->d, y[2]->d, y[3]->d);                                                        \
        const __m128 scale = _mm_mul_ps(_mm_set1_ps(half_to_float(x[b].d)), d8);      /* d_w * d_a per row */                     \
        const __m128 scale_min = _mm_mul_ps(_mm_set1_ps(half_to_float(x[b].dmin)), d8);                                           \
        /* the min terms of the four rows, vectorized: madd(bsums, mins repeated per half sub-block) gives lane k =               \
         * mn[k] * (bsums[2k] + bsums[2k+1]); pairs of lanes make each pair of sub-blocks; transposed so that                     \
         * imin[j] holds pair j of the four rows (exact integers, as the scalar sums) */                                          \
        const __m256i mins = repeated_mins(mn);                                                                                   \
        __m256i terms[4];                                                                                                         \
        for (int t = 0; t < 4; ++t)                                                                                               \
            terms[t] = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) y[t]->bsums), mins);                                \
        const __m256i h01 = _mm256_hadd_epi32(terms[0], terms[1]), h23 = _mm256_hadd_epi32(terms[2], terms[3]);                   \
        const __m128 lo01 = _mm_castsi128_ps(_mm256_castsi256_si128(h01)), lo23 = _mm_castsi128_ps(_mm256_castsi256_si128(h23));  \
        const __m128 hi01 = _mm_castsi128_ps(_mm256_extracti128_si256(h01, 1));                                                   \
        const __m128 hi23 = _mm_castsi128_ps(_mm256_extracti128_si256(h23, 1));                                                   \
        const __m128i imin[4] = {_mm_castps_si128(_mm_shuffle_ps(lo01, lo23, _MM_SHUFFLE(2, 0, 2, 0))),                           \
                                 _mm_castps_si128(_mm_shuffle_ps(lo01, lo23, _MM_SHUFFLE(3, 1, 3, 1))),                           \
                                 _mm_castps_si128(_mm_shuffle_ps(hi01, hi23, _MM_SHUFFLE(2, 0, 2, 0))),                           \
                                 _mm_castps_si128(_mm_shuffle_ps(hi01, hi23, _MM_SHUFFLE(3, 1, 3, 1)))};                          \
        for (int j = 0; j < 4; ++j) {                                                                                             \
            const __m256i packed = _mm256_loadu_si256((const __m256i *) (x[b].qs + 32 * j));                                      \
            const __m256i lo = _mm256_and_si256(packed, m15), hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), m15);           \
            const __m256i sc_lo = _mm256_set1_epi16((short) sc[2 * j]), sc_hi = _mm256_set1_epi16((short) sc[2 * j + 1]);         \
            __m256i v[4];                                                                                                         \
            for (int t = 0; t < 4; ++t) {                                                                                         \
                const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *) (y[t]->qs + 64 * j)));         \
                const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *) (y[t]->qs + 64 * j + 32)));    \
                v[t] = PAIR_SUM(p_lo, sc_lo, p_hi, sc_hi);                                                                        \
            }                                                                                                                     \
            /* the four rows' integer sums side by side (exact, in any grouping) */                                               \
            const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));                    \
            const __m128i isum = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));                        \
            acc = _mm_fmadd_ps(_mm_cvtepi32_ps(isum), scale, acc);                                                                \
            acc_min = _mm_fmadd_ps(_mm_cvtepi32_ps(imin[j]), scale_min, acc_min);                                                 \
        }                                                                                                                         \
    }                                                                                                                             \
    float result[4];                                                                                                              \
    _mm_storeu_ps(result, _mm_sub_ps(acc, acc_min));                                                                              \
    for (int t = 0; t < 4; ++t) out[t * out_stride] = result[t];                                                                  \
}

/* the sums of one pair of sub-blocks: madd by the two scales and an add, or two VNNI dpwssd (the same integers) */
#define PAIR_SUM_MADD(p_lo, sc_lo, p_hi, sc_hi) _mm256_add_epi32(_mm256_madd_epi16(p_lo, sc_lo), _mm256_madd_epi16(p_hi, sc_hi))
#define PAIR_SUM_VNNI(p_lo, sc_lo, p_hi, sc_hi) \
    _mm256_dpwssd_epi32(_mm256_dpwssd_epi32(_mm256_setzero_si256(), p_lo, sc_lo), p_hi, sc_hi)
DEFINE_DOT_X4_Q4_K(, , PAIR_SUM_MADD)
DEFINE_DOT_X4_Q4_K(_vnni, __attribute__((target("avx512vnni,avx512vl"))), PAIR_SUM_VNNI)

/* Q4_K, one weight row against 8 activation rows (VNNI): the rows in the 8 lanes of the accumulators, every lane
 * computed as by dot_x4_q4_K (the same integers, the same rounded scales, the same fused multiply-adds in order) */
__attribute__((target("avx512vnni,avx512vl"))) static void dot_x8_q4_K_vnni(
        int64_t n_blocks, const block_q4_K *x, const uint8_t *a, int64_t a_stride, float *out, int64_t out_stride) {
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps(); /* lane t: activation row t */
    const __m256i m15 = _mm256_set1_epi8(15);
    const block_q8_K *y[8];
    for (int64_t b = 0; b < n_blocks; ++b) {
        for (int t = 0; t < 8; ++t) y[t] = (const block_q8_K *) (a + t * a_stride) + b;
        uint8_t sc[8], mn[8];
        scales_mins_k4(x[b].scales, sc, mn);
        const __m256 d8 = _mm256_setr_ps(y[0]->d, y[1]->d, y[2]->d, y[3]->d, y[4]->d, y[5]->d, y[6]->d, y[7]->d);
        const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(half_to_float(x[b].d)), d8);
        const __m256 scale_min = _mm256_mul_ps(_mm256_set1_ps(half_to_float(x[b].dmin)), d8);
        const __m256i mins = repeated_mins(mn);
        __m256i terms[8];
        for (int t = 0; t < 8; ++t)
            terms[t] = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *) y[t]->bsums), mins);
        /* hadd of rows (2i, 2i+1): low half [r0 p0, r0 p1, r1 p0, r1 p1], high half the same for pairs 2 and 3 */
        const __m256 h01 = _mm256_castsi256_ps(_mm256_hadd_epi32(terms[0], terms[1]));
        const __m256 h23 = _mm256_castsi256_ps(_mm256_hadd_epi32(terms[2], terms[3]));
        const __m256 h45 = _mm256_castsi256_ps(_mm256_hadd_epi32(terms[4], terms[5]));
        const __m256 h67 = _mm256_castsi256_ps(_mm256_hadd_epi32(terms[6], terms[7]));
        const __m256 even_lo = _mm256_shuffle_ps(h01, h23, _MM_SHUFFLE(2, 0, 2, 0)); /* pair 0 | pair 2, rows 0-3 */
        const __m256 even_hi = _mm256_shuffle_ps(h45, h67, _MM_SHUFFLE(2, 0, 2, 0)); /* pair 0 | pair 2, rows 4-7 */
        const __m256 odd_lo = _mm256_shuffle_ps(h01, h23, _MM_SHUFFLE(3, 1, 3, 1));  /* pair 1 | pair 3, rows 0-3 */
        const __m256 odd_hi = _mm256_shuffle_ps(h45, h67, _MM_SHUFFLE(3, 1, 3, 1));
        const __m256i imin[4] = {_mm256_castps_si256(_mm256_permute2f128_ps(even_lo, even_hi, 0x20)),
                                 _mm256_castps_si256(_mm256_permute2f128_ps(odd_lo, odd_hi, 0x20)),
                                 _mm256_castps_si256(_mm256_permute2f128_ps(even_lo, even_hi, 0x31)),
                                 _mm256_castps_si256(_mm256_permute2f128_ps(odd_lo, odd_hi, 0x31))};
        for (int j = 0; j < 4; ++j) {
            const __m256i packed = _mm256_loadu_si256((const __m256i *) (x[b].qs + 32 * j));
            const __m256i lo = _mm256_and_si256(packed, m15), hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), m15);
            const __m256i sc_lo = _mm256_set1_epi16((short) sc[2 * j]), sc_hi = _mm256_set1_epi16((short) sc[2 * j + 1]);
            __m256i v[8];
            for (int t = 0; t < 8; ++t) {
                const __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *) (y[t]->qs + 64 * j)));
                const __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *) (y[t]->qs + 64 * j + 32)));
                v[t] = PAIR_SUM_VNNI(p_lo, sc_lo, p_hi, sc_hi);
            }
            const __m256i h0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
            const __m256i h4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
            const __m256i isum = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                                                  _mm256_permute2x128_si256(h0123, h4567, 0x31));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc);
            acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin[j]), scale_min, acc_min);
        }
    }
    float result[8];
    _mm256_storeu_ps(result, _mm256_sub_ps(acc, acc_min));
    for (int t = 0; t < 8; ++t) out[t * out_stride] = result[t];
}

/* eight rows at once (VNNI only; returns 0 without it, and the caller goes on by fours) */
int camelid_dot_x8_q4_K(const uint8_t *w, const uint8_t *a, int64_t a_stride, int64_t n_in, float *out,
                        int64_t out_stride, int64_t n_tokens) {
    (void) n_tokens;
    if (!cpu_has_vnni()) return 0;
    dot_x8_q4_K_vnni(n_in / 256, (const block_q4_K *) w, a, a_stride, out, out_stride);
    return 1;
}

void camelid_dot_x4_q4_K(const uint8_t *w, const uint8_t *a, int64_t a_stride, int64_t n_in, float *out,
                         int64_t out_stride, int64_t n_tokens) {
    (void) n_tokens;
    (cpu_has_vnni() ? dot_x4_q4_K_vnni : dot_x4_q4_K)(n_in / 256, (const block_q4_K *) w, a, a_stride, out, out_stride);
}

/* Q4_K as llama.cpp's repacked kernels: gemm for the first n - n % 4 rows of a batch, gemv for the rest */
float camelid_dot_q4_K(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens) {
    return dot_q4_K_q8_K(n_in / 256, (const block_q4_K *) w, (const block_q8_K *) a,
                         t < n_tokens - n_tokens % 4 ? 4 : 1);
}
