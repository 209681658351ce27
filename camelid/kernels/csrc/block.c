/* One whole pre-norm transformer layer (llama, gemma3 and their kin) in one call, composed of the same exact
 * kernels Python calls one by one: the result is identical, without a Python round trip per operation.
 *
 * x <- x + post_attn_norm(o_proj(attention(rope(qk_norm(q)), rope(qk_norm(k)), v)))   with q, k, v = qkv(norm(x))
 * x <- x + post_ffw_norm(down(glu(gate(norm(x)), up(norm(x)))))
 * Absent norms are NULL pointers. */
#include <string.h>

#include "ggml_common.h"

typedef struct {
    int64_t n_embd, n_head, n_head_kv, head_dim_k, head_dim_v, n_ff, n_rot, n_ctx, window;
    float eps, scale;
    int scale_queries_first, neox, gelu;
    const float *attn_norm, *q_norm, *k_norm, *post_attn_norm, *ffn_norm, *post_ffw_norm;
    const void *weights[7]; /* q, k, v, o, gate, up, down */
    int types[7];
    uint16_t *k_cache, *v_cache;
} camelid_block;

int camelid_matmul(const float *x, int64_t n_tokens, int64_t n_in, int count, const void *const *weights,
                   const int *types, const int64_t *n_outs, float *out, int64_t out_stride, void *scratch);
int64_t camelid_matmul_scratch(int64_t n_tokens, int64_t n_in);
void camelid_rmsnorm(const float *x, const float *weight, float *out, int64_t rows, int64_t n, float eps);
void camelid_rope_apply(float *x, const float *cos_table, const float *sin_table, int64_t rows, int64_t heads,
                        int64_t head_dim, int64_t n_rot, int neox);
void camelid_attention_f16(const float *q, uint16_t *k_cache, uint16_t *v_cache, const int64_t *slots,
                           const int64_t *positions, int64_t B, int64_t T, int64_t H, int64_t Hkv, int64_t Dk,
                           int64_t Dv, int64_t n_ctx, int64_t n_keys, int64_t window, float scale, int tiny,
                           float *out, const float *k_new, const float *v_new);
void camelid_swiglu(const float *g, const float *u, float *y, int64_t rows, int64_t n);
void camelid_geglu(const float *g, const float *u, float *y, int64_t rows, int64_t n);

static int64_t widest(const camelid_block *b) {
    int64_t w = b->n_embd;
    if (b->n_ff > w) w = b->n_ff;
    if (b->n_head * b->head_dim_v > w) w = b->n_head * b->head_dim_v;
    return w;
}

/* bytes of scratch camelid_block_forward needs for n tokens */
int64_t camelid_block_scratch(const camelid_block *b, int64_t n) {
    const int64_t q = b->n_head * b->head_dim_k, k = b->n_head_kv * b->head_dim_k, v = b->n_head_kv * b->head_dim_v;
    const int64_t floats = n * (b->n_embd + (q + k + v) + (q + k + v) + b->n_head * b->head_dim_v + b->n_embd
                                + 4 * b->n_ff);
    return floats * 4 + camelid_matmul_scratch(n, widest(b)) + 64;
}

/* x [B*T, n_embd] updated in place; positions [B*T], slots [B]; cos/sin [B*T, n_rot/2]. Returns 0, or -1 when a
 * matmul cannot run natively (the caller checks the weight types beforehand, so this does not happen). */
int camelid_block_forward(const camelid_block *b, float *x, int64_t B, int64_t T, const int64_t *positions,
                          const int64_t *slots, const float *cos_table, const float *sin_table, void *scratch) {
    const int64_t n = B * T, E = b->n_embd, H = b->n_head, Hkv = b->n_head_kv, Dk = b->head_dim_k;
    const int64_t Dv = b->head_dim_v, F = b->n_ff;
    const int64_t qw = H * Dk, kw = Hkv * Dk, vw = Hkv * Dv, total = qw + kw + vw;
    float *h = (float *) scratch, *qkv = h + n * E, *q = qkv + n * total, *k = q + n * qw, *v = k + n * kw;
    float *attn = v + n * vw, *o = attn + n * H * Dv, *gu = o + n * E, *g = gu + 2 * n * F;
    void *mm = g + 2 * n * F;
    int64_t n_keys = 0;
    for (int64_t i = 0; i < n; ++i) n_keys = positions[i] + 1 > n_keys ? positions[i] + 1 : n_keys;

    camelid_rmsnorm(x, b->attn_norm, h, n, E, b->eps);
    const int64_t qkv_outs[3] = {qw, kw, vw};
    if (camelid_matmul(h, n, E, 3, b->weights, b->types, qkv_outs, qkv, total, mm)) return -1;
    #pragma omp parallel for schedule(static) if (n > 63)
    for (int64_t t = 0; t < n; ++t) {
        memcpy(q + t * qw, qkv + t * total, sizeof(float) * (size_t) qw);
        memcpy(k + t * kw, qkv + t * total + qw, sizeof(float) * (size_t) kw);
        memcpy(v + t * vw, qkv + t * total + qw + kw, sizeof(float) * (size_t) vw);
    }
    if (b->q_norm) camelid_rmsnorm(q, b->q_norm, q, n * H, Dk, b->eps);
    if (b->k_norm) camelid_rmsnorm(k, b->k_norm, k, n * Hkv, Dk, b->eps);
    camelid_rope_apply(q, cos_table, sin_table, n, H, Dk, b->n_rot, b->neox);
    camelid_rope_apply(k, cos_table, sin_table, n, Hkv, Dk, b->n_rot, b->neox);
    float scale = b->scale;
    if (b->scale_queries_first) {
        for (int64_t i = 0; i < n * qw; ++i) q[i] *= scale;
        scale = 1.0f;
    }
    /* one query per sequence (a decode step, however many sequences) takes the one-token order: a sequence's
     * decode results then do not depend on what else is in the batch */
    camelid_attention_f16(q, b->k_cache, b->v_cache, slots, positions, B, T, H, Hkv, Dk, Dv, b->n_ctx, n_keys,
                          b->window, scale, T > 1, attn, k, v);
    const int64_t e_out[1] = {E};
    if (camelid_matmul(attn, n, H * Dv, 1, &b->weights[3], &b->types[3], e_out, o, E, mm)) return -1;
    if (b->post_attn_norm) camelid_rmsnorm(o, b->post_attn_norm, o, n, E, b->eps);
    #pragma omp parallel for schedule(static) if (n > 63)
    for (int64_t i = 0; i < n * E; ++i) x[i] = x[i] + o[i];

    camelid_rmsnorm(x, b->ffn_norm, h, n, E, b->eps);
    const int64_t ff_outs[2] = {F, F};
    if (camelid_matmul(h, n, E, 2, &b->weights[4], &b->types[4], ff_outs, gu, 2 * F, mm)) return -1;
    float *gate = g, *up = g + n * F; /* the two halves of gu side by side, then the activation back into gu */
    #pragma omp parallel for schedule(static) if (n > 63)
    for (int64_t t = 0; t < n; ++t) {
        memcpy(gate + t * F, gu + t * 2 * F, sizeof(float) * (size_t) F);
        memcpy(up + t * F, gu + t * 2 * F + F, sizeof(float) * (size_t) F);
    }
    float *act = gu;
    if (b->gelu) camelid_geglu(gate, up, act, n, F);
    else camelid_swiglu(gate, up, act, n, F);
    if (camelid_matmul(act, n, F, 1, &b->weights[6], &b->types[6], e_out, o, E, mm)) return -1;
    if (b->post_ffw_norm) camelid_rmsnorm(o, b->post_ffw_norm, o, n, E, b->eps);
    #pragma omp parallel for schedule(static) if (n > 63)
    for (int64_t i = 0; i < n * E; ++i) x[i] = x[i] + o[i];
    return 0;
}

/* every layer in turn: blocks[l] with its own RoPE tables; the same as calling camelid_block_forward per layer */
int camelid_blocks_forward(const camelid_block *const *blocks, int n_layers, float *x, int64_t B, int64_t T,
                           const int64_t *positions, const int64_t *slots, const float *const *cos_tables,
                           const float *const *sin_tables, void *scratch) {
    for (int l = 0; l < n_layers; ++l)
        if (camelid_block_forward(blocks[l], x, B, T, positions, slots, cos_tables[l], sin_tables[l], scratch))
            return -1;
    return 0;
}
