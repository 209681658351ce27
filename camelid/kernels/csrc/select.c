/* Top-k selection for sampling: the k largest of n floats, in one pass with a min-heap of k entries. */
#include <stdint.h>

/* a ranks below b: smaller value, or the same value and a larger index (ties go to the lower index) */
static int below(float va, int64_t ia, float vb, int64_t ib) { return va < vb || (va == vb && ia > ib); }

static void sift_down(float *v, int64_t *id, int64_t k, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && below(v[l], id[l], v[m], id[m])) m = l;
        if (r < k && below(v[r], id[r], v[m], id[m])) m = r;
        if (m == i) return;
        float tv = v[i]; v[i] = v[m]; v[m] = tv;
        int64_t ti = id[i]; id[i] = id[m]; id[m] = ti;
        i = m;
    }
}

/* values/ids [k] receive the k largest of x[n] (k <= n), largest first; NaN counts as the smallest value. */
void camelid_top_k(const float *x, int64_t n, int64_t k, float *values, int64_t *ids) {
    if (k <= 0) return;
    for (int64_t i = 0; i < k; i++) { values[i] = x[i] == x[i] ? x[i] : -__builtin_inff(); ids[i] = i; }
    for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down(values, ids, k, i);
    for (int64_t i = k; i < n; i++) {
        float v = x[i];
        if (v > values[0]) { values[0] = v; ids[0] = i; sift_down(values, ids, k, 0); }
    }
    for (int64_t end = k - 1; end > 0; end--) {  /* heap sort: the smallest goes to the back */
        float tv = values[0]; values[0] = values[end]; values[end] = tv;
        int64_t ti = ids[0]; ids[0] = ids[end]; ids[end] = ti;
        sift_down(values, ids, end, 0);
    }
}
