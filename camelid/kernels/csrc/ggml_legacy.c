/* Matmuls of the legacy block formats (Q4_0, Q4_1, Q5_0, Q8_0) with ggml's CPU arithmetic, operation for operation, so their
 * results are bit-identical to llama.cpp's. Plain C with x86 intrinsics, called through ctypes.
 *
 * ggml's order, which is what makes the result exact rather than merely close (vec_dot_q4_1_q8_1,
 * vec_dot_q{4,5,8}_0_q8_0 on AVX2, and llamafile's tinyBLAS for the _0 formats, compute the same thing):
 *   activations -> 8-bit blocks of 32 (ggml_common.h); Q8_1 also keeps s = fp16(d * sum q)
 *   per block:   8 float lanes, lane i = int sum of the products of elements 4i..4i+3,
 *                acc = fma(fp16(d_w) * fp16(d_a), lanes, acc);  Q4_1 also: mins += fp16(m_w) * fp16(s_a)
 *   per row:     hsum_float_8(acc) (+ mins)
 */
#include <string.h>

#include "ggml_common.h"

typedef struct { uint16_t d, m; uint8_t qs[16]; } block_q4_1;           /* 20 bytes */
typedef struct { uint16_t d; uint8_t qs[16]; } block_q4_0;              /* 18 bytes */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } block_q5_0; /* 22 bytes */

void camelid_quantize_q8_1(const float *x, void *out, int64_t n) {
    block_q8_1 *y = (block_q8_1 *) out;
    for (int64_t b = 0; b < n / 32; ++b, x += 32) {
        float d;
        const int sum = quantize_block_q8(x, y[b].qs, &d);
        y[b].d = round_to_half(d);
        y[b].s = round_to_half(d * (float) sum);
    }
}

void camelid_quantize_q8_0(const float *x, void *out, int64_t n) {
    block_q8_0 *y = (block_q8_0 *) out;
    for (int64_t b = 0; b < n / 32; ++b, x += 32) {
        float d;
        quantize_block_q8(x, y[b].qs, &d);
        y[b].d = round_to_half(d);
    }
}

/* 8 lanes of int sums of 4 products each, unsigned 0..15 nibbles times signed bytes */
static inline __m256 lanes_u4_s8(__m256i qw, __m256i qa) {
    const __m256i pairs = _mm256_maddubs_epi16(qw, qa);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

/* the same for two signed byte vectors (ggml's sign trick keeps maddubs' first operand unsigned) */
static inline __m256 lanes_s8_s8(__m256i x, __m256i y) {
    return lanes_u4_s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

static inline __m256i nibbles_32(const uint8_t *qs) { /* elements 0..15 low nibbles, 16..31 high nibbles */
    const __m128i packed = _mm_loadu_si128((const __m128i *) qs);
    const __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* 0xFF in byte j where bit j of the 32-bit mask is set */
static inline __m256i bits_32(const uint8_t *bits) {
    uint32_t x32;
    memcpy(&x32, bits, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int) x32),
        _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
    const __m256i probed = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(probed, _mm256_set1_epi64x(-1));
}

/* the signed values of one weight block of a _0 format: element j of 32 (low nibbles first, then high) */
static inline __m256i signed_values(const uint8_t *block, int type) {
    if (type == 8) return _mm256_loadu_si256((const __m256i *) (block + 2)); /* Q8_0 */
    if (type == 2) return _mm256_sub_epi8(nibbles_32(block + 2), _mm256_set1_epi8(8)); /* Q4_0: nibble - 8 */
    /* Q5_0: nibble | fifth bit << 4, minus 16 = nibble, or nibble - 16 where the fifth bit is clear */
    const __m256i high = _mm256_andnot_si256(bits_32(block + 2), _mm256_set1_epi8((char) 0xF0));
    return _mm256_or_si256(nibbles_32(block + 6), high);
}


static float dot_q0_q8_0(int64_t n_blocks, const uint8_t *x, int64_t block_bytes, int type, const block_q8_0 *y) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b, x += block_bytes) {
        uint16_t dw;
        memcpy(&dw, x, 2);
        const __m256 scale = _mm256_set1_ps(half_to_float(dw) * y[b].d);
        const __m256i qa = _mm256_loadu_si256((const __m256i *) y[b].qs);
        acc = _mm256_fmadd_ps(scale, lanes_s8_s8(signed_values(x, type), qa), acc);
    }
    return hsum_float_8(acc);
}

/* one weight row against four activation rows (a batch): the weight block is unpacked once for the four dot
 * products; each keeps its own accumulator and the order of its operations, so every result is unchanged.
 * Written once as a macro over LANES (how the 8 integer lanes are formed: maddubs + madd on AVX2, one dpbusd
 * with AVX-512 VNNI: the same integers) and TARGET (the instruction set it is compiled for). */
#define DEFINE_DOT_X4(SUFFIX, TARGET, LANES)                                                                      \
TARGET static void dot_x4_q4_1##SUFFIX(int64_t n_blocks, const block_q4_1 *x, const uint8_t *a, int64_t a_stride, \
                                       float *out, int64_t out_stride) {                                          \
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};        \
    float mins[4] = {0.0f, 0.0f, 0.0f, 0.0f};                                                                     \
    for (int64_t b = 0; b < n_blocks; ++b) {                                                                      \
        const float dw = half_to_float(x[b].d), mw = half_to_float(x[b].m);                                       \
        const __m256i qw = nibbles_32(x[b].qs);                                                                   \
        for (int j = 0; j < 4; ++j) {                                                                             \
            const block_q8_1 *y = (const block_q8_1 *) (a + j * a_stride) + b;                                    \
            mins[j] += mw * y->s;                                                                                 \
            const __m256 scale = _mm256_set1_ps(dw * y->d);                                                       \
            acc[j] = _mm256_fmadd_ps(scale, LANES(qw, _mm256_loadu_si256((const __m256i *) y->qs)), acc[j]);      \
        }                                                                                                         \
    }                                                                                                             \
    for (int j = 0; j < 4; ++j) out[j * out_stride] = hsum_float_8(acc[j]) + mins[j];                             \
}                                                                                                                 \
TARGET static void dot_x4_q0##SUFFIX(int64_t n_blocks, const uint8_t *x, int64_t block_bytes, int type,           \
                                     const uint8_t *a, int64_t a_stride, float *out, int64_t out_stride) {        \
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};        \
    for (int64_t b = 0; b < n_blocks; ++b, x += block_bytes) {                                                    \
        uint16_t d;                                                                                               \
        memcpy(&d, x, 2);                                                                                         \
        const float dw = half_to_float(d);                                                                        \
        const __m256i qw = signed_values(x, type);                                                                \
        const __m256i uw = _mm256_sign_epi8(qw, qw);                                                              \
        for (int j = 0; j < 4; ++j) {                                                                             \
            const block_q8_0 *y = (const block_q8_0 *) (a + j * a_stride) + b;                                    \
            const __m256 scale = _mm256_set1_ps(dw * y->d);                                                       \
            const __m256i qa = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *) y->qs), qw);                 \
            acc[j] = _mm256_fmadd_ps(scale, LANES(uw, qa), acc[j]);                                               \
        }                                                                                                         \
    }                                                                                                             \
    for (int j = 0; j < 4; ++j) out[j * out_stride] = hsum_float_8(acc[j]);                                       \
}

__attribute__((target("avx512vnni,avx512vl"))) static inline __m256 lanes_vnni(__m256i u, __m256i s) {
    return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s));
}

/* Per block: the weight's (d, m) pair widened in one conversion and multiplied by the activation's (d, s) pair in
 * one multiply: lane 0 is the block scale d_w * d_a, lane 1 the min term m_w * s_a, each one rounded product as in
 * ggml. LANES forms the 8 integer lanes (maddubs + madd, or VNNI's dpbusd: the same integers). */
#define DEFINE_DOT_Q4_1(SUFFIX, TARGET, LANES)                                                                    \
TARGET static float dot_q4_1_q8_1##SUFFIX(int64_t n_blocks, const block_q4_1 *x, const block_q8_1 *y) {          \
    __m256 acc = _mm256_setzero_ps();                                                                             \
    float mins = 0.0f;                                                                                            \
    _Pragma("GCC unroll 2")                                                                                       \
    for (int64_t b = 0; b < n_blocks; ++b) {                                                                      \
        uint32_t dm;                                                                                              \
        memcpy(&dm, &x[b].d, 4);                                                                                  \
        const __m128 w = _mm_cvtph_ps(_mm_cvtsi32_si128((int) dm));                                               \
        const __m128 products = _mm_mul_ps(w, _mm_castpd_ps(_mm_load_sd((const double *) &y[b].d)));             \
        mins += _mm_cvtss_f32(_mm_movehdup_ps(products));                                                         \
        const __m256i qa = _mm256_loadu_si256((const __m256i *) y[b].qs);                                         \
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(products), LANES(nibbles_32(x[b].qs), qa), acc);              \
    }                                                                                                             \
    return hsum_float_8(acc) + mins;                                                                              \
}
/* The same four dot products with the four activation rows packed block by block (block_q8_1x4: the four d, the
 * four s, then the four rows' values): the per-token scalar steps become one 4-lane multiply each — d_w * d_a and
 * m_w * s_a are still one rounded product per token, added in block order — so the results are unchanged. */
#define DEFINE_DOT_X4P(SUFFIX, TARGET, LANES)                                                                     \
TARGET static void dot_x4p_q4_1##SUFFIX(int64_t n_blocks, const block_q4_1 *x, const block_q8_1x4 *y,            \
                                        float *out, int64_t out_stride) {                                         \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;                                     \
    __m128 mins = _mm_setzero_ps();                                                                               \
    for (int64_t b = 0; b < n_blocks; ++b) {                                                                      \
        const __m128 dw = _mm_set1_ps(half_to_float(x[b].d)), mw = _mm_set1_ps(half_to_float(x[b].m));            \
        mins = _mm_add_ps(mins, _mm_mul_ps(mw, _mm_loadu_ps(y[b].s)));                                            \
        const __m128 scales = _mm_mul_ps(dw, _mm_loadu_ps(y[b].d));                                               \
        const __m256 s4 = _mm256_castps128_ps256(scales);                                                         \
        const __m256i qw = nibbles_32(x[b].qs);                                                                   \
        acc0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s4, _mm256_set1_epi32(0)),                               \
                               LANES(qw, _mm256_loadu_si256((const __m256i *) y[b].qs[0])), acc0);                \
        acc1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s4, _mm256_set1_epi32(1)),                               \
                               LANES(qw, _mm256_loadu_si256((const __m256i *) y[b].qs[1])), acc1);                \
        acc2 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s4, _mm256_set1_epi32(2)),                               \
                               LANES(qw, _mm256_loadu_si256((const __m256i *) y[b].qs[2])), acc2);                \
        acc3 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s4, _mm256_set1_epi32(3)),                               \
                               LANES(qw, _mm256_loadu_si256((const __m256i *) y[b].qs[3])), acc3);                \
    }                                                                                                             \
    float m[4];                                                                                                   \
    _mm_storeu_ps(m, mins);                                                                                       \
    out[0] = hsum_float_8(acc0) + m[0];                                                                           \
    out[out_stride] = hsum_float_8(acc1) + m[1];                                                                  \
    out[2 * out_stride] = hsum_float_8(acc2) + m[2];                                                              \
    out[3 * out_stride] = hsum_float_8(acc3) + m[3];                                                              \
}

/* Q4_0/Q5_0/Q8_0 against four packed Q8_0 rows (block_q8_0x4): the four scales d_w * d_a in one 4-lane multiply,
 * each still one rounded product; the rest as dot_x4_q0. */
#define DEFINE_DOT_X4P_Q0(SUFFIX, TARGET, LANES)                                                                  \
TARGET static void dot_x4p_q0##SUFFIX(int64_t n_blocks, const uint8_t *x, int64_t block_bytes, int type,         \
                                      const block_q8_0x4 *y, float *out, int64_t out_stride) {                     \
    __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;                                     \
    for (int64_t b = 0; b < n_blocks; ++b, x += block_bytes) {                                                    \
        uint16_t d;                                                                                               \
        memcpy(&d, x, 2);                                                                                         \
        const __m128 scales = _mm_mul_ps(_mm_set1_ps(half_to_float(d)), _mm_loadu_ps(y[b].d));                    \
        const __m256 s4 = _mm256_castps128_ps256(scales);                                                         \
        const __m256i qw = signed_values(x, type);                                                                \
        const __m256i uw = _mm256_sign_epi8(qw, qw);                                                              \
        acc0 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s4, _mm256_set1_epi32(0)), LANES(uw, _mm256_sign_epi8(   \
                               _mm256_loadu_si256((const __m256i *) y[b].qs[0]), qw)), acc0);                      \
        acc1 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s4, _mm256_set1_epi32(1)), LANES(uw, _mm256_sign_epi8(   \
                               _mm256_loadu_si256((const __m256i *) y[b].qs[1]), qw)), acc1);                      \
        acc2 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s4, _mm256_set1_epi32(2)), LANES(uw, _mm256_sign_epi8(   \
                               _mm256_loadu_si256((const __m256i *) y[b].qs[2]), qw)), acc2);                      \
        acc3 = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s4, _mm256_set1_epi32(3)), LANES(uw, _mm256_sign_epi8(   \
                               _mm256_loadu_si256((const __m256i *) y[b].qs[3]), qw)), acc3);                      \
    }                                                                                                             \
    out[0] = hsum_float_8(acc0);                                                                                  \
    out[out_stride] = hsum_float_8(acc1);                                                                         \
    out[2 * out_stride] = hsum_float_8(acc2);                                                                     \
    out[3 * out_stride] = hsum_float_8(acc3);                                                                     \
}

/* Eight activation rows: two packed groups of four against one unpacking of the weight block (AVX-512 VL has the
 * registers for eight accumulators); each result is computed exactly as by dot_x4p_q4_1. */
__attribute__((target("avx512vnni,avx512vl"))) static void dot_x8p_q4_1_vnni(
        int64_t n_blocks, const block_q4_1 *x, const block_q8_1x4 *y0, const block_q8_1x4 *y1, float *out,
        int64_t out_stride) {
    __m256 acc[8];
    for (int j = 0; j < 8; ++j) acc[j] = _mm256_setzero_ps();
    __m128 mins0 = _mm_setzero_ps(), mins1 = _mm_setzero_ps();
    for (int64_t b = 0; b < n_blocks; ++b) {
        const __m128 dw = _mm_set1_ps(half_to_float(x[b].d)), mw = _mm_set1_ps(half_to_float(x[b].m));
        mins0 = _mm_add_ps(mins0, _mm_mul_ps(mw, _mm_loadu_ps(y0[b].s)));
        mins1 = _mm_add_ps(mins1, _mm_mul_ps(mw, _mm_loadu_ps(y1[b].s)));
        const __m256 s0 = _mm256_castps128_ps256(_mm_mul_ps(dw, _mm_loadu_ps(y0[b].d)));
        const __m256 s1 = _mm256_castps128_ps256(_mm_mul_ps(dw, _mm_loadu_ps(y1[b].d)));
        const __m256i qw = nibbles_32(x[b].qs);
        #pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            acc[j] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s0, _mm256_set1_epi32(j)),
                                     lanes_vnni(qw, _mm256_loadu_si256((const __m256i *) y0[b].qs[j])), acc[j]);
            acc[4 + j] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(s1, _mm256_set1_epi32(j)),
                                         lanes_vnni(qw, _mm256_loadu_si256((const __m256i *) y1[b].qs[j])), acc[4 + j]);
        }
    }
    float m[8];
    _mm_storeu_ps(m, mins0);
    _mm_storeu_ps(m + 4, mins1);
    for (int j = 0; j < 8; ++j) out[j * out_stride] = hsum_float_8(acc[j]) + m[j];
}

DEFINE_DOT_Q4_1(, , lanes_u4_s8)
DEFINE_DOT_Q4_1(_vnni, __attribute__((target("avx512vnni,avx512vl"))), lanes_vnni)
DEFINE_DOT_X4(, , lanes_u4_s8)
DEFINE_DOT_X4(_vnni, __attribute__((target("avx512vnni,avx512vl"))), lanes_vnni)
DEFINE_DOT_X4P(, , lanes_u4_s8)
DEFINE_DOT_X4P(_vnni, __attribute__((target("avx512vnni,avx512vl"))), lanes_vnni)
DEFINE_DOT_X4P_Q0(, , lanes_u4_s8)
DEFINE_DOT_X4P_Q0(_vnni, __attribute__((target("avx512vnni,avx512vl"))), lanes_vnni)

static inline int vnni(void) { return cpu_has_vnni(); }

#define dot_q4_1_q8_1(...) (vnni() ? dot_q4_1_q8_1_vnni(__VA_ARGS__) : dot_q4_1_q8_1(__VA_ARGS__))
#define dot_x4_q4_1(...) (vnni() ? dot_x4_q4_1_vnni(__VA_ARGS__) : dot_x4_q4_1(__VA_ARGS__))
#define dot_x4_q0(...) (vnni() ? dot_x4_q0_vnni(__VA_ARGS__) : dot_x4_q0(__VA_ARGS__))

#define dot_x4p_q4_1(...) (vnni() ? dot_x4p_q4_1_vnni(__VA_ARGS__) : dot_x4p_q4_1(__VA_ARGS__))

#define dot_x4p_q0(...) (vnni() ? dot_x4p_q0_vnni(__VA_ARGS__) : dot_x4p_q0(__VA_ARGS__))

/* types 2 (Q4_0, 18-byte blocks), 6 (Q5_0, 22) and 8 (Q8_0, 34) against four packed Q8_0 rows */
void camelid_dot_x4p_q0(const uint8_t *w, int type, const uint8_t *packed, int64_t n_in, float *out,
                        int64_t out_stride) {
    const int64_t block_bytes = type == 2 ? 18 : type == 6 ? 22 : 34;
    dot_x4p_q0(n_in / 32, w, block_bytes, type, (const block_q8_0x4 *) packed, out, out_stride);
}

/* `rows` (1..4) Q8_0 activation rows packed for camelid_dot_x4p_q0; missing rows repeat the last one */
void camelid_pack_q8_0x4(const uint8_t *a, int64_t a_stride, int64_t rows, int64_t n_in, uint8_t *packed) {
    block_q8_0x4 *out = (block_q8_0x4 *) packed;
    for (int64_t b = 0; b < n_in / 32; ++b)
        for (int j = 0; j < 4; ++j) {
            const block_q8_0 *y = (const block_q8_0 *) (a + (j < rows ? j : rows - 1) * a_stride) + b;
            out[b].d[j] = y->d;
            memcpy(out[b].qs[j], y->qs, 32);
        }
}

/* eight rows as two consecutive packed groups (packed, packed + group_bytes): one pass with VNNI, else two */
void camelid_dot_x8p_q4_1(const uint8_t *w, const uint8_t *packed, int64_t group_bytes, int64_t n_in, float *out,
                          int64_t out_stride) {
    if (vnni()) {
        dot_x8p_q4_1_vnni(n_in / 32, (const block_q4_1 *) w, (const block_q8_1x4 *) packed,
                          (const block_q8_1x4 *) (packed + group_bytes), out, out_stride);
        return;
    }
    dot_x4p_q4_1(n_in / 32, (const block_q4_1 *) w, (const block_q8_1x4 *) packed, out, out_stride);
    dot_x4p_q4_1(n_in / 32, (const block_q4_1 *) w, (const block_q8_1x4 *) (packed + group_bytes),
                 out + 4 * out_stride, out_stride);
}

void camelid_dot_x4p_q4_1(const uint8_t *w, const uint8_t *packed, int64_t n_in, float *out, int64_t out_stride) {
    dot_x4p_q4_1(n_in / 32, (const block_q4_1 *) w, (const block_q8_1x4 *) packed, out, out_stride);
}

/* `rows` (1..4) Q8_1 activation rows (a_stride apart) packed block by block for camelid_dot_x4p_q4_1; missing
 * rows repeat the last one (their results are not used) */
void camelid_pack_q8_1x4(const uint8_t *a, int64_t a_stride, int64_t rows, int64_t n_in, uint8_t *packed) {
    block_q8_1x4 *out = (block_q8_1x4 *) packed;
    for (int64_t b = 0; b < n_in / 32; ++b)
        for (int j = 0; j < 4; ++j) {
            const block_q8_1 *y = (const block_q8_1 *) (a + (j < rows ? j : rows - 1) * a_stride) + b;
            out[b].d[j] = y->d;
            out[b].s[j] = y->s;
            memcpy(out[b].qs[j], y->qs, 32);
        }
}

void camelid_dot_x4_q4_1(const uint8_t *w, const uint8_t *a, int64_t a_stride, int64_t n_in, float *out,
                         int64_t out_stride, int64_t n_tokens) {
    (void) n_tokens;
    dot_x4_q4_1(n_in / 32, (const block_q4_1 *) w, a, a_stride, out, out_stride);
}

void camelid_dot_x4_q4_0(const uint8_t *w, const uint8_t *a, int64_t a_stride, int64_t n_in, float *out,
                         int64_t out_stride, int64_t n_tokens) {
    (void) n_tokens;
    dot_x4_q0(n_in / 32, w, 18, 2, a, a_stride, out, out_stride);
}

void camelid_dot_x4_q5_0(const uint8_t *w, const uint8_t *a, int64_t a_stride, int64_t n_in, float *out,
                         int64_t out_stride, int64_t n_tokens) {
    (void) n_tokens;
    dot_x4_q0(n_in / 32, w, 22, 6, a, a_stride, out, out_stride);
}

void camelid_dot_x4_q8_0(const uint8_t *w, const uint8_t *a, int64_t a_stride, int64_t n_in, float *out,
                         int64_t out_stride, int64_t n_tokens) {
    (void) n_tokens;
    dot_x4_q0(n_in / 32, w, 34, 8, a, a_stride, out, out_stride);
}

/* consecutive weight rows against one activation row (decode): the dot products inlined in one loop */
void camelid_rows_q4_1(const uint8_t *w, int64_t row_bytes, const uint8_t *a, int64_t n_in, float *out, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r)
        out[r] = dot_q4_1_q8_1(n_in / 32, (const block_q4_1 *) (w + r * row_bytes), (const block_q8_1 *) a);
}

void camelid_rows_q8_0(const uint8_t *w, int64_t row_bytes, const uint8_t *a, int64_t n_in, float *out, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) out[r] = dot_q0_q8_0(n_in / 32, w + r * row_bytes, 34, 8, (const block_q8_0 *) a);
}

void camelid_rows_q5_0(const uint8_t *w, int64_t row_bytes, const uint8_t *a, int64_t n_in, float *out, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) out[r] = dot_q0_q8_0(n_in / 32, w + r * row_bytes, 22, 6, (const block_q8_0 *) a);
}

void camelid_rows_q4_0(const uint8_t *w, int64_t row_bytes, const uint8_t *a, int64_t n_in, float *out, int64_t rows) {
    for (int64_t r = 0; r < rows; ++r) out[r] = dot_q0_q8_0(n_in / 32, w + r * row_bytes, 18, 2, (const block_q8_0 *) a);
}

/* the uniform row-dot signature of camelid_matmul (matmul.c): weight row, activation row, n_in, row index, rows */
float camelid_dot_q4_1(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens) {
    (void) t, (void) n_tokens;
    return dot_q4_1_q8_1(n_in / 32, (const block_q4_1 *) w, (const block_q8_1 *) a);
}

float camelid_dot_q4_0(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens) {
    (void) t, (void) n_tokens;
    return dot_q0_q8_0(n_in / 32, w, 18, 2, (const block_q8_0 *) a);
}

float camelid_dot_q5_0(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens) {
    (void) t, (void) n_tokens;
    return dot_q0_q8_0(n_in / 32, w, 22, 6, (const block_q8_0 *) a);
}

float camelid_dot_q8_0(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens) {
    (void) t, (void) n_tokens;
    return dot_q0_q8_0(n_in / 32, w, 34, 8, (const block_q8_0 *) a);
}

int camelid_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

#ifdef _OPENMP
#include <omp.h>
#endif

void camelid_set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void) n;
#endif
}

#ifndef CAMELID_DIGEST
#define CAMELID_DIGEST ""
#endif

/* the digest of the sources and flags this library was built from (camelid/kernels/build.py) */
const char *camelid_digest(void) { return CAMELID_DIGEST; }

/* A Q4_0 or Q5_0 weight row rewritten as Q8_0 blocks (the same fp16 scale, the signed values the dot products
 * use): a batch unpacks each row once per tile of tokens instead of once per group of four, and the Q8_0 kernel
 * then computes exactly what the original format's kernel computes (the same integer lanes and scales). */
void camelid_q0_row_to_q8_0(const uint8_t *w, int type, int64_t n_blocks, uint8_t *out) {
    const int64_t block_bytes = type == 2 ? 18 : 22;
    for (int64_t b = 0; b < n_blocks; ++b, w += block_bytes, out += 34) {
        memcpy(out, w, 2);
        _mm256_storeu_si256((__m256i *) (out + 2), signed_values(w, type));
    }
}
