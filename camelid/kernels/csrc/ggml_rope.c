/* RoPE angle tables as ggml_rope_cache_init builds them: theta_scale = powf(base, -2/n_dims), a running float
 * product theta *= theta_scale, optional frequency divisors and YaRN mixing, then cosf/sinf of the C library.
 * Computing cos/sin in double and rounding once is more accurate but differs from llama.cpp in ~0.5 % of the
 * rotated values; with the C library's float functions the rotated q/k are bit-identical. */
#include <math.h>
#include <stdint.h>

static float corr_dim(int n_dims, int n_ctx_orig, float n_rot, float base) {
    return n_dims * logf(n_ctx_orig / (n_rot * 2 * (float) M_PI)) / (2 * logf(base));
}

/* cos/sin [n_pos, n_dims/2]; freq_factors NULL or [n_dims/2]; ext_factor 0 = no YaRN */
void camelid_rope_tables(const int64_t *positions, int64_t n_pos, int n_dims, float base, float freq_scale,
                         const float *freq_factors, float ext_factor, float attn_factor, int n_ctx_orig,
                         float beta_fast, float beta_slow, float *cos_out, float *sin_out) {
    const float theta_scale = powf(base, -2.0f / n_dims);
    const float low = fmaxf(0.0f, floorf(corr_dim(n_dims, n_ctx_orig, beta_fast, base)));
    const float high = fminf((float) (n_dims - 1), ceilf(corr_dim(n_dims, n_ctx_orig, beta_slow, base)));
    const int half = n_dims / 2;
    for (int64_t p = 0; p < n_pos; ++p) {
        float theta = (float) positions[p];
        for (int i = 0; i < half; ++i) {
            const float theta_extrap = theta / (freq_factors ? freq_factors[i] : 1.0f);
            const float theta_interp = freq_scale * theta_extrap;
            float mixed = theta_interp, mscale = attn_factor;
            if (ext_factor != 0.0f) {
                const float y = (i - low) / fmaxf(0.001f, high - low);
                const float ramp_mix = (1 - fminf(1, fmaxf(0, y))) * ext_factor;
                mixed = theta_interp * (1 - ramp_mix) + theta_extrap * ramp_mix;
                mscale *= 1.0f + 0.1f * logf(1.0f / freq_scale);
            }
            cos_out[p * half + i] = cosf(mixed) * mscale;
            sin_out[p * half + i] = sinf(mixed) * mscale;
            theta *= theta_scale;
        }
    }
}
