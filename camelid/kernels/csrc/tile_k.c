/* Q4_K and Q6_K weight rows against sixteen Q8_K activation rows at once, with AVX-512 VNNI: the K-quant
 * counterpart of tile_q8.c. ggml's batched (tiled) K-quant arithmetic forms one exact integer per row and sub-block
 * pair (Q4_K) or per super-block (Q6_K) before any float operation, so the integers may be formed in any way; only
 * the float steps must be ggml's, and they are kept here operation for operation:
 *   Q4_K: per pair j of sub-blocks, acc += (float) isum_j * (d * d8), acc_min += (float) imin_j * (dmin * d8);
 *         result acc - acc_min (dot_x8_q4_K_vnni)
 *   Q6_K: per super-block, acc = fma((float) s1 * d6, d8, acc) (dot_x8_q6_K_vnni)
 * A weight row is unpacked once per tile of tokens into plain bytes in element order with its scales as 32-bit
 * integers; the activations are packed by 16 rows with each 4-byte lane of the 16 rows side by side (one 512-bit
 * vector), as unsigned bytes (value + 128) with the exact correction -128 * (lane sums of w) as dpbusd's
 * accumulator. Then one dpbusd serves 16 rows, and a sub-block's scale is one 32-bit multiply for 16 rows. */
#include <string.h>

#include "ggml_common.h"

typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } block_q8_K; /* 292 bytes */
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } block_q6_K;
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } block_q4_K;

/* 16 activation rows of one super-block: the rows' scales, the sums of each sub-block of 32 (for Q4_K's mins), and
 * the 64 lanes of 4 unsigned bytes side by side: 4672 bytes, the size of 16 block_q8_K */
typedef struct { float d[16]; int32_t sums[8][16]; uint32_t lanes[64][16]; } block_q8_Kx16;

/* Q4_K super-block unpacked: the 4-bit values in element order, the sub-blocks' corrections -128 * sum(w), scales,
 * mins, and d, dmin as floats */
typedef struct { int8_t w[256]; int32_t corr[8], sc[8], mn[8]; float d, dmin; int32_t pad[2]; } q4_K_row;
/* Q6_K super-block unpacked: the values q - 32 in element order, the 16-element sub-blocks' corrections, scales, d */
typedef struct { int8_t w[256]; int32_t corr[16], sc[16]; float d; int32_t pad[3]; } q6_K_row;

int64_t camelid_q4_K_row_bytes(int64_t n_in) { return n_in / 256 * (int64_t) sizeof(q4_K_row); }
int64_t camelid_q6_K_row_bytes(int64_t n_in) { return n_in / 256 * (int64_t) sizeof(q6_K_row); }

void camelid_pack_q8_Kx16(const uint8_t *rows_q8_K, int64_t row_bytes, int64_t n_blocks, uint8_t *out) {
    block_q8_Kx16 *p = (block_q8_Kx16 *) out;
    for (int64_t b = 0; b < n_blocks; ++b)
        for (int r = 0; r < 16; ++r) {
            const block_q8_K *y = (const block_q8_K *) (rows_q8_K + r * row_bytes) + b;
            p[b].d[r] = y->d;
            for (int s = 0; s < 8; ++s) p[b].sums[s][r] = y->bsums[2 * s] + y->bsums[2 * s + 1];
            for (int lane = 0; lane < 64; ++lane) {
                uint32_t four;
                memcpy(&four, y->qs + 4 * lane, 4);
                p[b].lanes[lane][r] = four ^ 0x80808080u;
            }
        }
}

/* -128 * the sum of n signed bytes */
static inline int32_t correction(const int8_t *w, int n) {
    int32_t sum = 0;
    for (int i = 0; i < n; ++i) sum += w[i];
    return -128 * sum;
}

void camelid_unpack_q4_K_row(const uint8_t *row, int64_t n_in, uint8_t *out) {
    const block_q4_K *x = (const block_q4_K *) row;
    q4_K_row *u = (q4_K_row *) out;
    for (int64_t b = 0; b < n_in / 256; ++b) {
        for (int j = 0; j < 8; ++j) { /* ggml's get_scale_min_k4 */
            const uint8_t *q = x[b].scales;
            u[b].sc[j] = j < 4 ? q[j] & 63 : (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            u[b].mn[j] = j < 4 ? q[j + 4] & 63 : (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < 32; ++l) {
                u[b].w[64 * j + l] = (int8_t) (x[b].qs[32 * j + l] & 0xF);
                u[b].w[64 * j + 32 + l] = (int8_t) (x[b].qs[32 * j + l] >> 4);
            }
        for (int j = 0; j < 8; ++j) u[b].corr[j] = correction(u[b].w + 32 * j, 32);
        u[b].d = half_to_float(x[b].d);
        u[b].dmin = half_to_float(x[b].dmin);
    }
}

void camelid_unpack_q6_K_row(const uint8_t *row, int64_t n_in, uint8_t *out) {
    const block_q6_K *x = (const block_q6_K *) row;
    q6_K_row *u = (q6_K_row *) out;
    for (int64_t b = 0; b < n_in / 256; ++b) {
        for (int half = 0; half < 2; ++half) {
            const uint8_t *ql = x[b].ql + 64 * half, *qh = x[b].qh + 32 * half;
            int8_t *w = u[b].w + 128 * half;
            for (int l = 0; l < 32; ++l) {
                w[l] = (int8_t) (((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32);
                w[l + 32] = (int8_t) (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                w[l + 64] = (int8_t) (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                w[l + 96] = (int8_t) (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        for (int s = 0; s < 16; ++s) {
            u[b].sc[s] = x[b].scales[s];
            u[b].corr[s] = correction(u[b].w + 16 * s, 16);
        }
        u[b].d = half_to_float(x[b].d);
    }
}

/* the integer sum over n lanes (4 elements each) of the 16 rows: corr + sum (a + 128) * w = sum a * w */
#define LANE_SUMS(sums, corr, lanes, w, n)                                                                       \
    do {                                                                                                         \
        sums = _mm512_set1_epi32(corr);                                                                          \
        for (int lane_ = 0; lane_ < (n); ++lane_) {                                                              \
            int32_t four_;                                                                                       \
            memcpy(&four_, (w) + 4 * lane_, 4);                                                                  \
            sums = _mm512_dpbusd_epi32(sums, _mm512_loadu_si512((lanes)[lane_]), _mm512_set1_epi32(four_));   \
        }                                                                                                        \
    } while (0)

/* one unpacked Q4_K row against 16 packed rows; out[r * out_stride] for r < 16 */
__attribute__((target("avx512f,avx512vnni"))) void camelid_dot_x16_q4_K(const uint8_t *row, const uint8_t *packed,
                                                                       int64_t n_in, float *out, int64_t out_stride) {
    const q4_K_row *u = (const q4_K_row *) row;
    const block_q8_Kx16 *p = (const block_q8_Kx16 *) packed;
    __m512 acc = _mm512_setzero_ps(), acc_min = _mm512_setzero_ps();
    for (int64_t b = 0; b < n_in / 256; ++b) {
        const __m512 d8 = _mm512_loadu_ps(p[b].d);
        const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(u[b].d), d8);
        const __m512 scale_min = _mm512_mul_ps(_mm512_set1_ps(u[b].dmin), d8);
        #pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            __m512i s0, s1;
            LANE_SUMS(s0, u[b].corr[2 * j], p[b].lanes + 16 * j, u[b].w + 64 * j, 8);
            LANE_SUMS(s1, u[b].corr[2 * j + 1], p[b].lanes + 16 * j + 8, u[b].w + 64 * j + 32, 8);
            const __m512i isum = _mm512_add_epi32(_mm512_mullo_epi32(s0, _mm512_set1_epi32(u[b].sc[2 * j])),
                                                  _mm512_mullo_epi32(s1, _mm512_set1_epi32(u[b].sc[2 * j + 1])));
            const __m512i imin = _mm512_add_epi32(
                _mm512_mullo_epi32(_mm512_loadu_si512(p[b].sums[2 * j]), _mm512_set1_epi32(u[b].mn[2 * j])),
                _mm512_mullo_epi32(_mm512_loadu_si512(p[b].sums[2 * j + 1]), _mm512_set1_epi32(u[b].mn[2 * j + 1])));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc);
            acc_min = _mm512_fmadd_ps(_mm512_cvtepi32_ps(imin), scale_min, acc_min);
        }
    }
    float result[16];
    _mm512_storeu_ps(result, _mm512_sub_ps(acc, acc_min));
    for (int r = 0; r < 16; ++r) out[r * out_stride] = result[r];
}

/* one unpacked Q6_K row against 16 packed rows; out[r * out_stride] for r < 16 */
__attribute__((target("avx512f,avx512vnni"))) void camelid_dot_x16_q6_K(const uint8_t *row, const uint8_t *packed,
                                                                       int64_t n_in, float *out, int64_t out_stride) {
    const q6_K_row *u = (const q6_K_row *) row;
    const block_q8_Kx16 *p = (const block_q8_Kx16 *) packed;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < n_in / 256; ++b) {
        __m512i s1 = _mm512_setzero_si512();
        #pragma GCC unroll 16
        for (int s = 0; s < 16; ++s) {
            __m512i sums;
            LANE_SUMS(sums, u[b].corr[s], p[b].lanes + 4 * s, u[b].w + 16 * s, 4);
            s1 = _mm512_add_epi32(s1, _mm512_mullo_epi32(sums, _mm512_set1_epi32(u[b].sc[s])));
        }
        acc = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s1), _mm512_set1_ps(u[b].d)), _mm512_loadu_ps(p[b].d),
                              acc);
    }
    float result[16];
    _mm512_storeu_ps(result, acc);
    for (int r = 0; r < 16; ++r) out[r * out_stride] = result[r];
}
