/*
 * scoring.c - Squeezed Attention's estimate of how much attention a query
 * pays each key of a cluster, from the cluster's centroid alone:
 *   s_c = exp(q.c/sqrt d) / sum_c' N_c' exp(q.c'/sqrt d)
 * (the softmax over all keys with every key replaced by its centroid), and
 * the rules that turn these estimates into kept clusters.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "squeezed_internal.h"

void st_sq_cluster_logits(const float *q, const float *centroids, uint32_t k, uint32_t d,
                          float *logits)
{
    float scale = 1.0f / sqrtf((float)d);
    for (uint32_t c = 0; c < k; c++) {
        const float *cc = centroids + (size_t)c * d;
        float s = 0.0f;
        for (uint32_t j = 0; j < d; j++)
            s += q[j] * cc[j];
        logits[c] = s * scale;
    }
}

double st_sq_log_denominator(const float *logits, const float *mass, uint32_t k)
{
    double m = -INFINITY;
    for (uint32_t c = 0; c < k; c++)
        if (mass[c] > 0.0f && logits[c] > m)
            m = logits[c];
    if (m == -INFINITY)
        return -INFINITY;
    double s = 0.0;
    for (uint32_t c = 0; c < k; c++)
        if (mass[c] > 0.0f)
            s += (double)mass[c] * exp((double)logits[c] - m);
    return m + log(s);
}

void st_sq_estimates(const float *logits, uint32_t k, double log_denom, float *out)
{
    for (uint32_t c = 0; c < k; c++)
        out[c] = log_denom == -INFINITY ? 0.0f : (float)exp((double)logits[c] - log_denom);
}

void st_sq_rope(float *out, const float *x, double pos, float base, uint32_t rope_dims,
                uint32_t head_dim)
{
    uint32_t n_freq = rope_dims / 2;
    for (uint32_t i = 0; i < n_freq; i++) {
        double a = pos * pow((double)base, -2.0 * i / (double)rope_dims);
        float c = (float)cos(a), s = (float)sin(a);
        float x0 = x[2 * i], x1 = x[2 * i + 1];
        out[2 * i] = x0 * c - x1 * s;
        out[2 * i + 1] = x0 * s + x1 * c;
    }
    if (out != x)
        for (uint32_t i = 2 * n_freq; i < head_dim; i++)
            out[i] = x[i];
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

float st_sq_quantile(float *v, size_t n, double q)
{
    if (n == 0)
        return 0.0f;
    qsort(v, n, sizeof *v, cmp_float);
    if (q <= 0.0)
        return v[0];
    if (q >= 1.0)
        return v[n - 1];
    double h = q * (double)(n - 1);
    size_t lo = (size_t)h;
    double frac = h - (double)lo;
    if (lo + 1 >= n)
        return v[n - 1];
    return (float)((double)v[lo] + frac * ((double)v[lo + 1] - (double)v[lo]));
}

void st_sq_top_flags(const float *v, uint32_t n, uint32_t keep, uint8_t *flags)
{
    memset(flags, 0, n);
    if (keep >= n) {
        memset(flags, 1, n);
        return;
    }
    /* Selection by repeated maximum: n is a cluster count (hundreds), and
     * keep is a fraction of it, so O(n * keep) is cheap next to attention. */
    for (uint32_t t = 0; t < keep; t++) {
        uint32_t best = n;
        for (uint32_t i = 0; i < n; i++)
            if (!flags[i] && (best == n || v[i] > v[best]))
                best = i;
        if (best == n)
            break;
        flags[best] = 1;
    }
}
