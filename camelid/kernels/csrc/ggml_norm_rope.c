/* RMSNorm and the RoPE rotation, in ggml's arithmetic.
 *
 * ggml_compute_forward_rms_norm: sum of the float32 squares in a double, in order; mean rounded to float;
 * scale = 1 / sqrtf(mean + eps); y = x * scale, then the weight multiply (a separate ggml_mul).
 * rotate_pairs: y0 = x0 cos - x1 sin, y1 = x0 sin + x1 cos with the multiply-adds GCC contracts in ggml's build,
 * fma(x0, cos, -(x1 sin)) and fma(x0, sin, x1 cos): bit-exact with llama.cpp's rotated q/k. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

static inline void scale_row(const float *xr, const float *weight, float *yr, int64_t n, double sum, float eps) {
    const float mean = (float) (sum / n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; ++i) yr[i] = weight ? (xr[i] * scale) * weight[i] : xr[i] * scale;
}

/* the sums of squares of 8 rows at once, one row per double lane: each lane adds the same float32 squares in the
 * same order as the scalar loop (the additions of one row are a chain; eight chains advance together) */
static void sums_of_squares_8(const float *x, int64_t n, double *sums) {
    __m256d acc_a = _mm256_setzero_pd(), acc_b = _mm256_setzero_pd(); /* rows 0-3, rows 4-7 */
    for (int64_t i = 0; i < n; i += 4) {
        __m128 r[8];
        for (int k = 0; k < 8; ++k) r[k] = _mm_loadu_ps(x + k * n + i);
        _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
        _MM_TRANSPOSE4_PS(r[4], r[5], r[6], r[7]);
        for (int j = 0; j < 4; ++j) { /* element i + j of every row */
            acc_a = _mm256_add_pd(acc_a, _mm256_cvtps_pd(_mm_mul_ps(r[j], r[j])));
            acc_b = _mm256_add_pd(acc_b, _mm256_cvtps_pd(_mm_mul_ps(r[4 + j], r[4 + j])));
        }
    }
    _mm256_storeu_pd(sums, acc_a);
    _mm256_storeu_pd(sums + 4, acc_b);
}

/* x, out [rows, n]; weight [n] or NULL */
void camelid_rmsnorm(const float *x, const float *weight, float *out, int64_t rows, int64_t n, float eps) {
    const int64_t groups = n % 4 == 0 ? rows / 8 : 0;
    #pragma omp parallel for schedule(static) if (rows > 63)
    for (int64_t g = 0; g < groups; ++g) {
        double sums[8];
        sums_of_squares_8(x + 8 * g * n, n, sums);
        for (int k = 0; k < 8; ++k) scale_row(x + (8 * g + k) * n, weight, out + (8 * g + k) * n, n, sums[k], eps);
    }
    for (int64_t r = 8 * groups; r < rows; ++r) {
        const float *xr = x + r * n;
        double sum = 0.0;
        for (int64_t i = 0; i < n; ++i) sum += (double) (xr[i] * xr[i]);
        scale_row(xr, weight, out + r * n, n, sum, eps);
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
