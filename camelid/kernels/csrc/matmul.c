/* One entry point for every native matmul: several weight matrices that read the same activations (a fused
 * q/k/v or gate/up projection) in one call and one parallel region. The activations are quantized once per
 * activation format (Q8_0, Q8_1, Q8_K) the weights need; each output is one row dot product in ggml's order
 * (the per-format files), so results do not depend on how the work is split between threads. */
#include <stddef.h>

#include "ggml_common.h"

typedef float (*dot_fn)(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens);
/* one weight row against 4 activation rows a_stride apart, results out_stride apart; same values as dot_fn */
/* consecutive weight rows (row_bytes apart) against one activation row: the same values as dot_fn per row */
typedef void (*rows_fn)(const uint8_t *w, int64_t row_bytes, const uint8_t *a, int64_t n_in, float *out, int64_t rows);
typedef void (*dot_x4_fn)(const uint8_t *w, const uint8_t *a, int64_t a_stride, int64_t n_in, float *out,
                          int64_t out_stride, int64_t n_tokens);

float camelid_dot_q4_0(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q4_1(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q5_0(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q8_0(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q4_K(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q6_K(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
void camelid_rows_q4_0(const uint8_t *, int64_t, const uint8_t *, int64_t, float *, int64_t);
void camelid_rows_q4_1(const uint8_t *, int64_t, const uint8_t *, int64_t, float *, int64_t);
void camelid_rows_q5_0(const uint8_t *, int64_t, const uint8_t *, int64_t, float *, int64_t);
void camelid_rows_q8_0(const uint8_t *, int64_t, const uint8_t *, int64_t, float *, int64_t);
void camelid_dot_x4_q4_0(const uint8_t *, const uint8_t *, int64_t, int64_t, float *, int64_t, int64_t);
void camelid_dot_x4_q4_1(const uint8_t *, const uint8_t *, int64_t, int64_t, float *, int64_t, int64_t);
void camelid_dot_x4_q5_0(const uint8_t *, const uint8_t *, int64_t, int64_t, float *, int64_t, int64_t);
void camelid_dot_x4_q8_0(const uint8_t *, const uint8_t *, int64_t, int64_t, float *, int64_t, int64_t);
void camelid_dot_x4_q4_K(const uint8_t *, const uint8_t *, int64_t, int64_t, float *, int64_t, int64_t);
void camelid_dot_x4_q6_K(const uint8_t *, const uint8_t *, int64_t, int64_t, float *, int64_t, int64_t);
void camelid_dot_x4p_q4_1(const uint8_t *, const uint8_t *, int64_t, float *, int64_t);
void camelid_dot_x8p_q4_1(const uint8_t *, const uint8_t *, int64_t, int64_t, float *, int64_t);
void camelid_pack_q8_1x4(const uint8_t *, int64_t, int64_t, int64_t, uint8_t *);
void camelid_dot_x4p_q0(const uint8_t *, int, const uint8_t *, int64_t, float *, int64_t);
void camelid_pack_q8_0x4(const uint8_t *, int64_t, int64_t, int64_t, uint8_t *);
void camelid_q0_row_to_q8_0(const uint8_t *, int, int64_t, uint8_t *);
void camelid_pack_q8_0_lanes(const uint8_t *, int64_t, int64_t, int64_t, uint8_t *);
int camelid_dot_x8_q6_K(const uint8_t *, const uint8_t *, int64_t, int64_t, float *, int64_t, int64_t);
int camelid_dot_x8_q4_K(const uint8_t *, const uint8_t *, int64_t, int64_t, float *, int64_t, int64_t);
void camelid_q8_0_corrections(const uint8_t *, int64_t, int32_t *);
void camelid_dot_x16_q8_0(const uint8_t *, const int32_t *, const uint8_t *, int64_t, float *, int64_t);
void camelid_dot_x8_q8_0(const uint8_t *, const int32_t *, const uint8_t *, int64_t, float *, int64_t);
void camelid_pack_q8_Kx16(const uint8_t *, int64_t, int64_t, uint8_t *);
void camelid_pack_q8_1x16(const uint8_t *, int64_t, int64_t, uint8_t *);
void camelid_unpack_q4_1_row(const uint8_t *, int64_t, uint8_t *);
void camelid_dot_x16_q4_1(const uint8_t *, const uint8_t *, const uint8_t *, int64_t, float *, int64_t);
int64_t camelid_q6_K_row_bytes(int64_t);
void camelid_unpack_q4_K_row(const uint8_t *, int64_t, uint8_t *);
void camelid_unpack_q6_K_row(const uint8_t *, int64_t, uint8_t *);
void camelid_dot_x16_q4_K(const uint8_t *, const uint8_t *, int64_t, float *, int64_t);
void camelid_dot_x16_q6_K(const uint8_t *, const uint8_t *, int64_t, float *, int64_t);
void camelid_quantize_q8_0(const float *x, void *y, int64_t n);
void camelid_quantize_q8_1(const float *x, void *y, int64_t n);
void camelid_quantize_q8_K(const float *x, void *y, int64_t n);

enum { ACT_Q8_0, ACT_Q8_1, ACT_Q8_K, ACT_KINDS };

typedef struct {
    int type;         /* ggml type number */
    int act;          /* activation format */
    int64_t block;    /* values per weight block */
    int64_t bytes;    /* bytes per weight block */
    dot_fn dot;
    dot_x4_fn dot_x4; /* for batches; NULL: one activation row at a time */
    rows_fn rows;     /* for a single activation row; NULL: dot per row */
} format;

static const format FORMATS[] = {
    {2, ACT_Q8_0, 32, 18, camelid_dot_q4_0, camelid_dot_x4_q4_0, camelid_rows_q4_0},
    {3, ACT_Q8_1, 32, 20, camelid_dot_q4_1, camelid_dot_x4_q4_1, camelid_rows_q4_1},
    {6, ACT_Q8_0, 32, 22, camelid_dot_q5_0, camelid_dot_x4_q5_0, camelid_rows_q5_0},
    {8, ACT_Q8_0, 32, 34, camelid_dot_q8_0, camelid_dot_x4_q8_0, camelid_rows_q8_0},
    {12, ACT_Q8_K, 256, 144, camelid_dot_q4_K, camelid_dot_x4_q4_K, NULL}, /* groups of 4 are all in gemm order */
    {14, ACT_Q8_K, 256, 210, camelid_dot_q6_K, camelid_dot_x4_q6_K, NULL},
};

static const format *format_of(int type) {
    for (size_t i = 0; i < sizeof(FORMATS) / sizeof(FORMATS[0]); ++i)
        if (FORMATS[i].type == type) return &FORMATS[i];
    return NULL;
}


static int64_t act_row_bytes(int act, int64_t n_in) {
    return act == ACT_Q8_K ? n_in / 256 * 292 : n_in / 32 * (act == ACT_Q8_1 ? 40 : 36);
}

/* bytes of scratch camelid_matmul needs for n_tokens rows of n_in values (the activations in each format, the
 * Q8_1 and Q8_0 rows once more, packed by groups of 4, and each format by groups of 16, 64-byte aligned) */
int64_t camelid_matmul_scratch(int64_t n_tokens, int64_t n_in) {
    int64_t total = 0;
    for (int act = 0; act < ACT_KINDS; ++act) total += n_tokens * act_row_bytes(act, n_in);
    return total + (n_tokens + 3) * (act_row_bytes(ACT_Q8_1, n_in) + act_row_bytes(ACT_Q8_0, n_in))
           + (n_tokens + 15) * (act_row_bytes(ACT_Q8_0, n_in) + act_row_bytes(ACT_Q8_K, n_in)
                                + act_row_bytes(ACT_Q8_1, n_in)) + 3 * 64;
}

/* out[t, offset_m + o] = x[t] . W_m[o] for each of `count` matrices (weights[m], types[m], n_outs[m]); out has row
 * stride out_stride. Returns 0, or -1 for a type this file does not handle or n_in not a multiple of its block. */
int camelid_matmul(const float *x, int64_t n_tokens, int64_t n_in, int count, const void *const *weights,
                   const int *types, const int64_t *n_outs, float *out, int64_t out_stride, void *scratch) {
    const format *formats[8];
    int needed[ACT_KINDS] = {0};
    int64_t total_rows = 0;
    if (count > 8) return -1;
    for (int m = 0; m < count; ++m) {
        formats[m] = format_of(types[m]);
        if (formats[m] == NULL || n_in % formats[m]->block) return -1;
        needed[formats[m]->act] = 1;
        total_rows += n_outs[m];
    }
    uint8_t *acts[ACT_KINDS];
    uint8_t *cursor = (uint8_t *) scratch;
    for (int act = 0; act < ACT_KINDS; ++act) {
        acts[act] = cursor;
        cursor += n_tokens * act_row_bytes(act, n_in);
        if (!needed[act]) continue;
        #pragma omp parallel for schedule(static) if (n_tokens * n_in > 32768)
        for (int64_t t = 0; t < n_tokens; ++t) {
            void *row = acts[act] + t * act_row_bytes(act, n_in);
            if (act == ACT_Q8_0) camelid_quantize_q8_0(x + t * n_in, row, n_in);
            else if (act == ACT_Q8_1) camelid_quantize_q8_1(x + t * n_in, row, n_in);
            else camelid_quantize_q8_K(x + t * n_in, row, n_in);
        }
    }
    /* Q8_1 and Q8_0 rows again by groups of 4, for the packed batch kernels */
    const int64_t q81_bytes = act_row_bytes(ACT_Q8_1, n_in), q80_bytes = act_row_bytes(ACT_Q8_0, n_in);
    uint8_t *packed = cursor, *packed0 = cursor + (n_tokens + 3) * q81_bytes;
    if ((needed[ACT_Q8_1] || needed[ACT_Q8_0]) && n_tokens >= 2) { /* a last group of 2-3 rows is padded */
        #pragma omp parallel for schedule(static) if (n_tokens * n_in > 32768)
        for (int64_t g = 0; g < (n_tokens + 3) / 4; ++g) {
            const int64_t rows = n_tokens - 4 * g < 4 ? n_tokens - 4 * g : 4;
            if (needed[ACT_Q8_1])
                camelid_pack_q8_1x4(acts[ACT_Q8_1] + 4 * g * q81_bytes, q81_bytes, rows, n_in,
                                    packed + 4 * g * q81_bytes);
            if (needed[ACT_Q8_0])
                camelid_pack_q8_0x4(acts[ACT_Q8_0] + 4 * g * q80_bytes, q80_bytes, rows, n_in,
                                    packed0 + 4 * g * q80_bytes);
        }
    }
    /* the Q8_0 rows once more by groups of 16 (a last 8-15 rows: one group of 8), lane-transposed unsigned bytes, for
     * the 16-row and 8-row VNNI tiles (tile_q8.c); a group has the bytes of its Q8_0 rows */
    uint8_t *packed16 = (uint8_t *) (((uintptr_t) (packed0 + (n_tokens + 3) * q80_bytes) + 63) & ~(uintptr_t) 63);
    const int tiles16 = needed[ACT_Q8_0] && n_tokens >= 8 && cpu_has_vnni();
    if (tiles16) {
        #pragma omp parallel for schedule(static)
        for (int64_t g = 0; g < (n_tokens + 8) / 16; ++g) { /* the full groups, and a group of 8 of the rest */
            const int64_t rows = 16 * g + 16 <= n_tokens ? 16 : 8;
            camelid_pack_q8_0_lanes(acts[ACT_Q8_0] + 16 * g * q80_bytes, q80_bytes, rows, n_in / 32,
                                    packed16 + 16 * g * q80_bytes);
        }
    }
    /* the Q8_K rows by groups of 16 in the same way, for the 16-row K-quant tiles (tile_k.c) */
    const int64_t q8k_bytes = act_row_bytes(ACT_Q8_K, n_in);
    uint8_t *packed16k = (uint8_t *) (((uintptr_t) (packed16 + (n_tokens + 15) * q80_bytes) + 63) & ~(uintptr_t) 63);
    const int tiles16k = needed[ACT_Q8_K] && n_tokens >= 16 && cpu_has_vnni();
    if (tiles16k) {
        #pragma omp parallel for schedule(static)
        for (int64_t g = 0; g < n_tokens / 16; ++g)
            camelid_pack_q8_Kx16(acts[ACT_Q8_K] + 16 * g * q8k_bytes, q8k_bytes, n_in / 256,
                                 packed16k + 16 * g * q8k_bytes);
    }
    /* and the Q8_1 rows (signed) for the 16-row Q4_1 tiles (tile_q8.c) */
    uint8_t *packed16q1 = (uint8_t *) (((uintptr_t) (packed16k + (n_tokens + 15) * q8k_bytes) + 63) & ~(uintptr_t) 63);
    const int tiles16q1 = needed[ACT_Q8_1] && n_tokens >= 16 && cpu_has_vnni();
    if (tiles16q1) {
        #pragma omp parallel for schedule(static)
        for (int64_t g = 0; g < n_tokens / 16; ++g)
            camelid_pack_q8_1x16(acts[ACT_Q8_1] + 16 * g * q81_bytes, q81_bytes, n_in / 32,
                                 packed16q1 + 16 * g * q81_bytes);
    }
    /* blocks of ROWS weight rows (of one matrix) x TOKENS activation rows stay in the caches while they meet (256
     * tokens: a Q4_0/Q5_0 row is unpacked once per 256; measured on Gemma-3 pp512: 64 -> 256 +1 %, 512 -3 %) */
    enum { ROWS = 16, TOKENS = 256 };
    int64_t blocks = 0;
    for (int m = 0; m < count; ++m) blocks += (n_outs[m] + ROWS - 1) / ROWS;
    enum { UNPACKED_BLOCKS = 1024 };
    #pragma omp parallel for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
        _Alignas(64) uint8_t unpacked[34 * UNPACKED_BLOCKS]; /* one Q4_0/Q5_0 row as Q8_0 (n_in up to 32768), or a
                                                              * K-quant row unpacked (tile_k.c) */
        int32_t corrections[8 * UNPACKED_BLOCKS]; /* that row's offset corrections (tile_q8.c) */
        int m = 0;
        int64_t first = blk, offset = 0;
        while (first >= (n_outs[m] + ROWS - 1) / ROWS) { first -= (n_outs[m] + ROWS - 1) / ROWS; offset += n_outs[m]; ++m; }
        const format *f = formats[m];
        const int64_t row_bytes = (n_in / f->block) * f->bytes, stride = act_row_bytes(f->act, n_in);
        const int64_t o_begin = first * ROWS, o_end = o_begin + ROWS < n_outs[m] ? o_begin + ROWS : n_outs[m];
        if (n_tokens == 1 && f->rows) {
            f->rows((const uint8_t *) weights[m] + o_begin * row_bytes, row_bytes, acts[f->act], n_in,
                    out + offset + o_begin, o_end - o_begin);
            continue;
        }
        for (int64_t t0 = 0; t0 < n_tokens; t0 += TOKENS) {
            const int64_t t_end = t0 + TOKENS < n_tokens ? t0 + TOKENS : n_tokens;
            for (int64_t o = o_begin; o < o_end; ++o) {
                const uint8_t *const row = (const uint8_t *) weights[m] + o * row_bytes;
                const uint8_t *w = row; /* the packed kernels may read an unpacked copy; the others read the row */
                float *column = out + offset + o;
                int64_t t = t0;
                const int q41 = f->type == 3, q0 = f->type == 2 || f->type == 6 || f->type == 8;
                int q0_type = f->type;
                if ((f->type == 2 || f->type == 6) && t_end - t0 >= 8 && n_in <= 32 * UNPACKED_BLOCKS) {
                    camelid_q0_row_to_q8_0(w, f->type, n_in / 32, unpacked); /* once for the whole tile */
                    w = unpacked;
                    q0_type = 8;
                }
                if (q0 && q0_type == 8 && tiles16 && t + 8 <= t_end && n_in <= 32 * UNPACKED_BLOCKS) {
                    camelid_q8_0_corrections(w, n_in / 32, corrections); /* Q8_0 (or unpacked): 16 rows at once */
                    for (; t + 16 <= t_end; t += 16)
                        camelid_dot_x16_q8_0(w, corrections, packed16 + t * q80_bytes, n_in, column + t * out_stride,
                                             out_stride);
                    if (t + 8 <= t_end) { /* the batch's last 8-15 rows: 8 of them */
                        camelid_dot_x8_q8_0(w, corrections, packed16 + t * q80_bytes, n_in, column + t * out_stride,
                                            out_stride);
                        t += 8;
                    }
                }
                if (q41 && tiles16q1 && t + 16 <= t_end && n_in <= 32 * UNPACKED_BLOCKS) { /* Q4_1: 16 rows */
                    camelid_unpack_q4_1_row(w, n_in / 32, unpacked);
                    for (; t + 16 <= t_end; t += 16)
                        camelid_dot_x16_q4_1(w, unpacked, packed16q1 + t * q81_bytes, n_in, column + t * out_stride,
                                             out_stride);
                }
                if (q41) /* Q4_1: eight rows at a time where there are eight */
                    for (; t + 8 <= t_end; t += 8)
                        camelid_dot_x8p_q4_1(w, packed + t * q81_bytes, 4 * q81_bytes, n_in, column + t * out_stride,
                                             out_stride);
                if (q41 || q0) { /* the packed groups of 4 (t0 is a multiple of 4); a last group of 2-3, padded */
                    for (; t + 2 <= t_end; t += 4) {
                        float four[4];
                        const int64_t rows = t_end - t < 4 ? t_end - t : 4;
                        float *dst = rows == 4 ? column + t * out_stride : four;
                        const int64_t stride_out = rows == 4 ? out_stride : 1;
                        if (q41) camelid_dot_x4p_q4_1(w, packed + t * q81_bytes, n_in, dst, stride_out);
                        else camelid_dot_x4p_q0(w, q0_type, packed0 + t * q80_bytes, n_in, dst, stride_out);
                        if (rows < 4)
                            for (int64_t j = 0; j < rows; ++j) column[(t + j) * out_stride] = four[j];
                        if (rows < 4) { t += rows; break; }
                    }
                }
                if ((f->type == 14 || f->type == 12) && tiles16k && t + 16 <= t_end
                    && camelid_q6_K_row_bytes(n_in) <= (int64_t) sizeof(unpacked)) { /* K-quants: 16 rows at once */
                    (f->type == 12 ? camelid_unpack_q4_K_row : camelid_unpack_q6_K_row)(row, n_in, unpacked);
                    for (; t + 16 <= t_end; t += 16)
                        (f->type == 12 ? camelid_dot_x16_q4_K : camelid_dot_x16_q6_K)(
                            unpacked, packed16k + t * q8k_bytes, n_in, column + t * out_stride, out_stride);
                }
                if (f->type == 14 || f->type == 12) /* the K-quants: eight rows at a time where VNNI is there */
                    for (; t + 8 <= t_end; t += 8)
                        if (!(f->type == 14 ? camelid_dot_x8_q6_K : camelid_dot_x8_q4_K)(
                                row, acts[f->act] + t * stride, stride, n_in, column + t * out_stride, out_stride, n_tokens))
                            break;
                if (f->dot_x4)
                    for (; t + 4 <= t_end; t += 4)
                        f->dot_x4(row, acts[f->act] + t * stride, stride, n_in, column + t * out_stride, out_stride, n_tokens);
                for (; t < t_end; ++t) column[t * out_stride] = f->dot(row, acts[f->act] + t * stride, n_in, t, n_tokens);
            }
        }
    }
    return 0;
}
