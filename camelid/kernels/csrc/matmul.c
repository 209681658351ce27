/* One entry point for every native matmul: several weight matrices that read the same activations (a fused
 * q/k/v or gate/up projection) in one call and one parallel region. The activations are quantized once per
 * activation format (Q8_0, Q8_1, Q8_K) the weights need; each output is one row dot product in ggml's order
 * (the per-format files), so results do not depend on how the work is split between threads. */
#include <stddef.h>

#include "ggml_common.h"

typedef float (*dot_fn)(const uint8_t *w, const uint8_t *a, int64_t n_in, int64_t t, int64_t n_tokens);

float camelid_dot_q4_0(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q4_1(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q5_0(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q8_0(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q4_K(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
float camelid_dot_q6_K(const uint8_t *, const uint8_t *, int64_t, int64_t, int64_t);
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
} format;

static const format FORMATS[] = {
    {2, ACT_Q8_0, 32, 18, camelid_dot_q4_0},   {3, ACT_Q8_1, 32, 20, camelid_dot_q4_1},
    {6, ACT_Q8_0, 32, 22, camelid_dot_q5_0},   {8, ACT_Q8_0, 32, 34, camelid_dot_q8_0},
    {12, ACT_Q8_K, 256, 144, camelid_dot_q4_K}, {14, ACT_Q8_K, 256, 210, camelid_dot_q6_K},
};

static const format *format_of(int type) {
    for (size_t i = 0; i < sizeof(FORMATS) / sizeof(FORMATS[0]); ++i)
        if (FORMATS[i].type == type) return &FORMATS[i];
    return NULL;
}

int camelid_matmul_supports(int type) { return format_of(type) != NULL; }

static int64_t act_row_bytes(int act, int64_t n_in) {
    return act == ACT_Q8_K ? n_in / 256 * 292 : n_in / 32 * (act == ACT_Q8_1 ? 36 : 34);
}

/* bytes of scratch camelid_matmul needs for n_tokens rows of n_in values */
int64_t camelid_matmul_scratch(int64_t n_tokens, int64_t n_in) {
    int64_t total = 0;
    for (int act = 0; act < ACT_KINDS; ++act) total += n_tokens * act_row_bytes(act, n_in);
    return total;
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
        for (int64_t t = 0; t < n_tokens; ++t) {
            void *row = acts[act] + t * act_row_bytes(act, n_in);
            if (act == ACT_Q8_0) camelid_quantize_q8_0(x + t * n_in, row, n_in);
            else if (act == ACT_Q8_1) camelid_quantize_q8_1(x + t * n_in, row, n_in);
            else camelid_quantize_q8_K(x + t * n_in, row, n_in);
        }
    }
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < total_rows; ++r) {
        int m = 0;
        int64_t o = r, offset = 0;
        while (o >= n_outs[m]) { o -= n_outs[m]; offset += n_outs[m]; ++m; }
        const format *f = formats[m];
        const uint8_t *w = (const uint8_t *) weights[m] + o * (n_in / f->block) * f->bytes;
        const int64_t stride = act_row_bytes(f->act, n_in);
        for (int64_t t = 0; t < n_tokens; ++t)
            out[t * out_stride + offset + o] = f->dot(w, acts[f->act] + t * stride, n_in, t, n_tokens);
    }
    return 0;
}
