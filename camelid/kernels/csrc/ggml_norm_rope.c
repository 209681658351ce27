/* RMSNorm and the RoPE rotation, in ggml's arithmetic.
 *
 * ggml_compute_forward_rms_norm: sum of the float32 squares in a double, in order; mean rounded to float;
 * scale = 1 / sqrtf(mean + eps); y = x * scale, then the weight multiply (a separate ggml_mul).
 * rotate_pairs: y0 = x0 cos - x1 sin, y1 = x0 sin + x1 cos with the multiply-adds GCC contracts in ggml's build,
 * fma(x0, cos, -(x1 sin)) and fma(x0, sin, x1 cos): bit-exact with llama.cpp's rotated q/k. */
#include <math.h>
#include <stdint.h>

/* x, out [rows, n]; weight [n] or NULL */
void camelid_rmsnorm(const float *x, const float *weight, float *out, int64_t rows, int64_t n, float eps) {
    #pragma omp parallel for schedule(static) if (rows > 63)
    for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x + r * n;
        float *yr = out + r * n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) sum += (double) (xr[i] * xr[i]);
        const float mean = (float) (sum / n);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < n; ++i) yr[i] = weight ? (xr[i] * scale) * weight[i] : xr[i] * scale;
    }
}

/* x [rows, heads, head_dim] rotated in place over its first n_rot dims; cos/sin [rows, n_rot/2]; neox: pairs
 * (i, i + n_rot/2), else (2i, 2i + 1) */
void camelid_rope_apply(float *x, const float *cos_table, const float *sin_table, int64_t rows, int64_t heads,
                        int64_t head_dim, int64_t n_rot, int neox) {
    const int64_t half = n_rot / 2;
    #pragma omp parallel for schedule(static) if (rows > 63)
    for (int64_t r = 0; r < rows; ++r) {
        const float *c = cos_table + r * half, *s = sin_table + r * half;
        for (int64_t h = 0; h < heads; ++h) {
            float *v = x + (r * heads + h) * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                float *a = neox ? v + i : v + 2 * i, *b = neox ? v + i + half : v + 2 * i + 1;
                const float x0 = *a, x1 = *b;
                *a = fmaf(x0, c[i], -(x1 * s[i]));
                *b = fmaf(x0, s[i], x1 * c[i]);
            }
        }
    }
}
