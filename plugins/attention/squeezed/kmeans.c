/*
 * kmeans.c - cosine (spherical) k-means with k-means++ seeding, as Squeezed
 * Attention clusters the fixed context's keys: keys are compared by the
 * direction they point (the query-key score is dominated by it), while the
 * centroid the online scores use is the mean of the original, unnormalised
 * keys, so q . centroid estimates the mean score of the cluster's keys.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "squeezed_internal.h"

uint64_t st_sq_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *state)
{
    return (double)(st_sq_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

static float dot(const float *a, const float *b, uint32_t d)
{
    float s = 0.0f;
    for (uint32_t i = 0; i < d; i++)
        s += a[i] * b[i];
    return s;
}

static void normalise(float *dst, const float *src, uint32_t d)
{
    double s = 0.0;
    for (uint32_t i = 0; i < d; i++)
        s += (double)src[i] * src[i];
    /* A zero key has no direction: leave it zero (cosine 0 with everything). */
    float inv = s > 0.0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (uint32_t i = 0; i < d; i++)
        dst[i] = src[i] * inv;
}

/* Squared distance of unit vectors from their cosine. */
static double unit_dist2(float cosine)
{
    double v = 2.0 - 2.0 * (double)cosine;
    return v > 0.0 ? v : 0.0;
}

st_status st_sq_kmeanspp(const float *xn, const float *w, uint32_t n, uint32_t d,
                         uint32_t k, uint64_t seed, uint32_t *chosen)
{
    if (k == 0 || k > n || !xn || !chosen)
        return ST_E_INVALID;
    double *near = malloc(sizeof(double) * n);
    uint8_t *taken = calloc(n, 1);
    if (!near || !taken) {
        free(near);
        free(taken);
        return ST_E_NOMEM;
    }
    uint64_t rng = seed;
    for (uint32_t i = 0; i < n; i++)
        near[i] = 1.0; /* the first pick: weight w alone */
    for (uint32_t c = 0; c < k; c++) {
        double total = 0.0;
        for (uint32_t i = 0; i < n; i++)
            if (!taken[i])
                total += (w ? w[i] : 1.0) * near[i];
        uint32_t pick = n;
        if (total > 0.0) {
            double r = rng_unit(&rng) * total, acc = 0.0;
            for (uint32_t i = 0; i < n; i++) {
                if (taken[i])
                    continue;
                double p = (w ? w[i] : 1.0) * near[i];
                if (p <= 0.0)
                    continue;
                acc += p;
                pick = i;
                if (acc > r)
                    break;
            }
        }
        if (pick == n) {
            /* Every remaining row sits on a centre: take the first free one. */
            for (uint32_t i = 0; i < n && pick == n; i++)
                if (!taken[i])
                    pick = i;
        }
        chosen[c] = pick;
        taken[pick] = 1;
        const float *cp = xn + (size_t)pick * d;
        for (uint32_t i = 0; i < n; i++) {
            double dd = unit_dist2(dot(xn + (size_t)i * d, cp, d));
            if (c == 0 || dd < near[i])
                near[i] = dd;
        }
    }
    free(near);
    free(taken);
    return ST_OK;
}

/* Assign every row to its most similar centre; returns how many changed.
 * sim[i] keeps the row's cosine to its centre. The centres are first
 * transposed into ct[j][c] so that a row's k similarities accumulate side
 * by side (independent sums the compiler can vectorise, instead of one
 * serial chain per dot product). Each similarity still adds its d terms in
 * order from 0, exactly as dot() does, so the result is bit for bit the
 * same. ct holds d * k floats, s k floats. An AVX2 clone (chosen at load
 * time; no FMA, and C11 does not contract a * b + c) runs 8 lanes. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
static uint32_t assign_rows(const float *xn, uint32_t n, uint32_t d, const float *cn,
                            uint32_t k, uint32_t *assign, float *sim, float *ct, float *s)
{
    for (uint32_t c = 0; c < k; c++)
        for (uint32_t j = 0; j < d; j++)
            ct[(size_t)j * k + c] = cn[(size_t)c * d + j];
    uint32_t changed = 0;
    for (uint32_t i = 0; i < n; i++) {
        const float *x = xn + (size_t)i * d;
        for (uint32_t c = 0; c < k; c++)
            s[c] = 0.0f;
        for (uint32_t j = 0; j < d; j++) {
            const float xj = x[j], *cj = ct + (size_t)j * k;
            for (uint32_t c = 0; c < k; c++)
                s[c] += xj * cj[c];
        }
        uint32_t best = 0;
        float bs = s[0];
        for (uint32_t c = 1; c < k; c++)
            if (s[c] > bs) {
                bs = s[c];
                best = c;
            }
        if (assign[i] != best)
            changed++;
        assign[i] = best;
        sim[i] = bs;
    }
    return changed;
}

/* Weighted sums of `rows` per cluster into out[k][d]; counts per cluster. */
static void cluster_sums(const float *rows, const float *w, uint32_t n, uint32_t d, uint32_t k,
                         const uint32_t *assign, float *out, double *wsum, uint32_t *counts)
{
    memset(out, 0, sizeof(float) * (size_t)k * d);
    for (uint32_t c = 0; c < k; c++) {
        wsum[c] = 0.0;
        counts[c] = 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t c = assign[i];
        float wi = w ? w[i] : 1.0f;
        float *o = out + (size_t)c * d;
        const float *r = rows + (size_t)i * d;
        for (uint32_t j = 0; j < d; j++)
            o[j] += wi * r[j];
        wsum[c] += wi;
        counts[c]++;
    }
}

/* Give each empty cluster the row farthest from its own centre, taken from
 * a cluster that keeps at least one row. Returns whether anything moved. */
static bool reseed_empty(const float *xn, uint32_t n, uint32_t d, float *cn, uint32_t k,
                         uint32_t *assign, float *sim, uint32_t *counts)
{
    bool moved = false;
    for (uint32_t c = 0; c < k; c++) {
        if (counts[c] > 0)
            continue;
        uint32_t far = n;
        for (uint32_t i = 0; i < n; i++)
            if (counts[assign[i]] > 1 && (far == n || sim[i] < sim[far]))
                far = i;
        if (far == n)
            break; /* fewer distinct rows than clusters can hold */
        counts[assign[far]]--;
        assign[far] = c;
        counts[c] = 1;
        sim[far] = 1.0f;
        memcpy(cn + (size_t)c * d, xn + (size_t)far * d, sizeof(float) * d);
        moved = true;
    }
    return moved;
}

st_status st_sq_kmeans(const float *x, const float *w, uint32_t n, uint32_t d, uint32_t k,
                       uint32_t iters, uint64_t seed, float *centroids, uint32_t *assign,
                       uint32_t *counts)
{
    if (k == 0 || k > n || d == 0 || !x || !centroids || !assign || !counts)
        return ST_E_INVALID;
    float *xn = malloc(sizeof(float) * (size_t)n * d);
    float *cn = malloc(sizeof(float) * (size_t)k * d);
    float *sim = malloc(sizeof(float) * n);
    double *wsum = malloc(sizeof(double) * k);
    uint32_t *chosen = malloc(sizeof(uint32_t) * k);
    float *ct = malloc(sizeof(float) * (size_t)k * d);
    float *s = malloc(sizeof(float) * k);
    st_status st = ST_E_NOMEM;
    if (!xn || !cn || !sim || !wsum || !chosen || !ct || !s)
        goto done;
    for (uint32_t i = 0; i < n; i++)
        normalise(xn + (size_t)i * d, x + (size_t)i * d, d);
    if ((st = st_sq_kmeanspp(xn, w, n, d, k, seed, chosen)) != ST_OK)
        goto done;
    for (uint32_t c = 0; c < k; c++)
        memcpy(cn + (size_t)c * d, xn + (size_t)chosen[c] * d, sizeof(float) * d);
    for (uint32_t i = 0; i < n; i++)
        assign[i] = UINT32_MAX;
    assign_rows(xn, n, d, cn, k, assign, sim, ct, s);
    for (uint32_t it = 0; it < iters; it++) {
        /* Update: the direction of each cluster's mean direction. */
        cluster_sums(xn, w, n, d, k, assign, cn, wsum, counts);
        bool moved = reseed_empty(xn, n, d, cn, k, assign, sim, counts);
        for (uint32_t c = 0; c < k; c++)
            normalise(cn + (size_t)c * d, cn + (size_t)c * d, d);
        if (assign_rows(xn, n, d, cn, k, assign, sim, ct, s) == 0 && !moved)
            break;
    }
    /* The centroids the scores use: means of the original rows. */
    cluster_sums(x, w, n, d, k, assign, centroids, wsum, counts);
    for (uint32_t c = 0; c < k; c++)
        if (wsum[c] > 0.0)
            for (uint32_t j = 0; j < d; j++)
                centroids[(size_t)c * d + j] = (float)(centroids[(size_t)c * d + j] / wsum[c]);
    st = ST_OK;
done:
    free(xn);
    free(cn);
    free(sim);
    free(wsum);
    free(chosen);
    free(ct);
    free(s);
    return st;
}
