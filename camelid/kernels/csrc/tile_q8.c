/* Q8_0 weight rows (or Q4_0/Q5_0 rows unpacked to Q8_0 blocks, ggml_legacy.c), and Q4_1 rows, against sixteen
 * activation rows at once, with AVX-512 VNNI. Per result the same integer lanes, the same rounded scale d_w * d_a
 * and the same fused multiply-adds in the same order as dot_x4p_q0 / dot_x4p_q4_1 (ggml's arithmetic), so the
 * results are bit-identical; but each weight block is read once for sixteen rows, and a vector holds one integer
 * lane of the block for all sixteen rows, so that one scale product serves them all and no scale is moved between
 * lanes. Q8_0's activations come as unsigned bytes (the weights are signed), so that no sign instruction is needed.
 * Q5_0 512 x 640 x 2048 on 2 threads here: 154 GOPS (four rows, sign trick) -> 180 (eight rows) -> 196 (unsigned)
 * -> ~240 (sixteen rows, lanes transposed; four vector operations per block and lane for 16 rows, not 8). A batch's
 * last 8-15 rows take the same layout with eight rows in 256-bit vectors (a server's batched decode steps).
 * Tried and slower on this CPU: block scales broadcast from memory (store forwarding), the offset on the weights'
 * side (its correction is per activation block: an extra load per product), the eight-row kernel with 512-bit
 * vectors over two rows (the same in isolation, -6 % in the model). */
#include <string.h>

#include "ggml_common.h"

/* Sixteen (or eight) Q8_0 activation rows laid out for camelid_dot_x16_q8_0 (camelid_dot_x8_q8_0), per block of 32:
 * the rows' scales, then for each 4-byte lane i of the block the rows' bytes 4i..4i+3 side by side, as unsigned bytes
 * (value + 128): 36 bytes per row and block, the size of the Q8_0 blocks. dpbusd(-128 * lane sums of w, a + 128, w)
 * is then exactly the lane sums of a * w, the correction formed once per weight block for all the rows. */
void camelid_pack_q8_0_lanes(const uint8_t *rows_q8_0, int64_t row_bytes, int64_t n_rows, int64_t n_blocks,
                             uint8_t *out) {
    for (int64_t b = 0; b < n_blocks; ++b, out += 36 * n_rows) {
        float *d = (float *) out;
        uint32_t *lanes = (uint32_t *) (out + 4 * n_rows);
        for (int64_t r = 0; r < n_rows; ++r) {
            const block_q8_0 *x = (const block_q8_0 *) (rows_q8_0 + r * row_bytes) + b;
            d[r] = x->d;
            for (int i = 0; i < 8; ++i) {
                uint32_t four;
                memcpy(&four, x->qs + 4 * i, 4);
                lanes[n_rows * i + r] = four ^ 0x80808080u;
            }
        }
    }
}

/* the corrections -128 * (lane sums of w) of a Q8_0 row's blocks, [n_blocks][8], for camelid_dot_x16_q8_0 */
__attribute__((target("avx512vnni,avx512vl"))) void camelid_q8_0_corrections(const uint8_t *w, int64_t n_blocks,
                                                                              int32_t *corr) {
    for (int64_t b = 0; b < n_blocks; ++b, w += 34)
        _mm256_storeu_si256((__m256i *) (corr + 8 * b), _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(),
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), _mm256_loadu_si256((const __m256i *) (w + 2)))), 7));
}

/* Q8_0 weight row w (or a Q4_0/Q5_0 row unpacked to Q8_0) against sixteen activation rows packed by
 * camelid_pack_q8_0_lanes; corr: the row's corrections (camelid_q8_0_corrections), computed once for all its tiles.
 * A 512-bit vector holds one integer lane of the block for the 16 rows, so one product of scales serves all of them
 * and no scale is moved between lanes: per row, the same integer lane sums, the same rounded scale d_w * d_a, the
 * same fused multiply-adds in the same order, and ggml's hsum association at the end, so the results are those of
 * the four-row kernels bit for bit. */
__attribute__((target("avx512f,avx512vnni"))) void camelid_dot_x16_q8_0(const uint8_t *w, const int32_t *corr,
                                                                       const uint8_t *packed, int64_t n_in, float *out,
                                                                       int64_t out_stride) {
    __m512 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n_in / 32; ++b, w += 34, packed += 576) {
        uint16_t d;
        memcpy(&d, w, 2);
        const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(half_to_float(d)), _mm512_loadu_ps(packed));
        #pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            int32_t four;
            memcpy(&four, w + 2 + 4 * i, 4);
            const __m512i sums = _mm512_dpbusd_epi32(_mm512_set1_epi32(corr[8 * b + i]),
                                                     _mm512_loadu_si512(packed + 64 + 64 * i), _mm512_set1_epi32(four));
            acc[i] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sums), acc[i]);
        }
    }
    /* hsum_float_8 per row: ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) */
    const __m512 sums = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[4]), _mm512_add_ps(acc[2], acc[6])),
                                      _mm512_add_ps(_mm512_add_ps(acc[1], acc[5]), _mm512_add_ps(acc[3], acc[7])));
    float rows[16];
    _mm512_storeu_ps(rows, sums);
    for (int r = 0; r < 16; ++r) out[r * out_stride] = rows[r];
}

/* the same for eight rows (a batch's last 8-15), in 256-bit vectors */
__attribute__((target("avx512vnni,avx512vl"))) void camelid_dot_x8_q8_0(const uint8_t *w, const int32_t *corr,
                                                                      const uint8_t *packed, int64_t n_in, float *out,
                                                                      int64_t out_stride) {
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < n_in / 32; ++b, w += 34, packed += 288) {
        uint16_t d;
        memcpy(&d, w, 2);
        const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(half_to_float(d)), _mm256_loadu_ps((const float *) packed));
        #pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            int32_t four;
            memcpy(&four, w + 2 + 4 * i, 4);
            const __m256i sums = _mm256_dpbusd_epi32(_mm256_set1_epi32(corr[8 * b + i]),
                                                     _mm256_loadu_si256((const __m256i *) (packed + 32 + 32 * i)),
                                                     _mm256_set1_epi32(four));
            acc[i] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(sums), acc[i]);
        }
    }
    const __m256 sums = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6])),
                                      _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7])));
    float rows[8];
    _mm256_storeu_ps(rows, sums);
    for (int r = 0; r < 8; ++r) out[r * out_stride] = rows[r];
}

/* Q4_1 (SmolLM2's format): sixteen Q8_1 activation rows per block of 32, signed this time (Q4_1's weights are the
 * unsigned operand): the 16 scales d, the 16 sums s, then the 8 lanes of 4 bytes of the 16 rows: 640 bytes, the size
 * of 16 Q8_1 blocks */
void camelid_pack_q8_1x16(const uint8_t *rows_q8_1, int64_t row_bytes, int64_t n_blocks, uint8_t *out) {
    for (int64_t b = 0; b < n_blocks; ++b, out += 640) {
        float *d = (float *) out, *s = d + 16;
        uint32_t *lanes = (uint32_t *) (out + 128);
        for (int64_t r = 0; r < 16; ++r) {
            const block_q8_1 *x = (const block_q8_1 *) (rows_q8_1 + r * row_bytes) + b;
            d[r] = x->d;
            s[r] = x->s;
            for (int i = 0; i < 8; ++i) memcpy(lanes + 16 * i + r, x->qs + 4 * i, 4);
        }
    }
}

/* a Q4_1 row's 4-bit values as bytes in element order, 32 per block, for camelid_dot_x16_q4_1 (once per tile) */
void camelid_unpack_q4_1_row(const uint8_t *row, int64_t n_blocks, uint8_t *out) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (int64_t b = 0; b < n_blocks; ++b, row += 20, out += 32) {
        const __m128i packed = _mm_loadu_si128((const __m128i *) (row + 4));
        _mm_storeu_si128((__m128i *) out, _mm_and_si128(packed, low4));
        _mm_storeu_si128((__m128i *) (out + 16), _mm_and_si128(_mm_srli_epi16(packed, 4), low4));
    }
}

/* One Q4_1 row (row: the blocks, values: its unpacked bytes) against 16 rows packed by camelid_pack_q8_1x16, with
 * dot_x4p_q4_1's arithmetic per row: acc_lane += (d_w * d_a) * (float) lane sum, mins += m_w * s_a in block order,
 * then hsum(acc) + mins. */
__attribute__((target("avx512f,avx512vnni"))) void camelid_dot_x16_q4_1(const uint8_t *row, const uint8_t *values,
                                                                       const uint8_t *packed, int64_t n_in, float *out,
                                                                       int64_t out_stride) {
    __m512 acc[8], mins = _mm512_setzero_ps();
    for (int i = 0; i < 8; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < n_in / 32; ++b, row += 20, values += 32, packed += 640) {
        uint16_t dm[2];
        memcpy(dm, row, 4);
        mins = _mm512_add_ps(mins, _mm512_mul_ps(_mm512_set1_ps(half_to_float(dm[1])), _mm512_loadu_ps(packed + 64)));
        const __m512 scale = _mm512_mul_ps(_mm512_set1_ps(half_to_float(dm[0])), _mm512_loadu_ps(packed));
        #pragma GCC unroll 8
        for (int i = 0; i < 8; ++i) {
            int32_t four;
            memcpy(&four, values + 4 * i, 4);
            const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi32(four),
                                                     _mm512_loadu_si512(packed + 128 + 64 * i));
            acc[i] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sums), acc[i]);
        }
    }
    const __m512 sums = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[4]), _mm512_add_ps(acc[2], acc[6])),
                                      _mm512_add_ps(_mm512_add_ps(acc[1], acc[5]), _mm512_add_ps(acc[3], acc[7])));
    float rows[16];
    _mm512_storeu_ps(rows, _mm512_add_ps(sums, mins));
    for (int r = 0; r < 16; ++r) out[r * out_stride] = rows[r];
}
