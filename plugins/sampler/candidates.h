/*
 * plugins/sampler/candidates.h - helpers the built-in samplers share:
 * a stable softmax over the candidates, a deterministic descending sort,
 * and reading numeric parameters with their documented defaults.
 * Header-only so each sampler stays one self-contained shared object.
 */
#ifndef ST_PLUGINS_SAMPLER_CANDIDATES_H
#define ST_PLUGINS_SAMPLER_CANDIDATES_H

#include <math.h>
#include <stdlib.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

/* Descending logit, then ascending id: the order is total, so every sort
 * gives the same array whatever the input order. */
static inline int st_cand_cmp_desc(const void *a, const void *b)
{
    const st_candidate *x = a, *y = b;
    if (x->logit > y->logit)
        return -1;
    if (x->logit < y->logit)
        return 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Sort descending if not already; a pick made before the reorder would
 * point at another token afterwards, so it is dropped. */
static inline void st_cand_sort(st_candidates *c)
{
    if (!c->sorted && c->size > 1) {
        qsort(c->data, c->size, sizeof *c->data, st_cand_cmp_desc);
        c->selected = -1;
    }
    c->sorted = true;
}

/* True when a should come before b in the descending order above. */
static inline bool st_cand_before(const st_candidate *a, const st_candidate *b)
{
    return st_cand_cmp_desc(a, b) < 0;
}

static inline void st_cand_swap(st_candidate *a, st_candidate *b)
{
    st_candidate t = *a;
    *a = *b;
    *b = t;
}

/* Sift down in a heap whose root is the candidate that comes LAST in the
 * descending order (so the root is the weakest of the k best so far). */
static inline void st_cand_sift(st_candidate *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && st_cand_before(&h[w], &h[l]))
            w = l;
        if (r < n && st_cand_before(&h[w], &h[r]))
            w = r;
        if (w == i)
            return;
        st_cand_swap(&h[i], &h[w]);
        i = w;
    }
}

/* Move the k best candidates (descending logit, ascending id on ties) to
 * data[0..k) in sorted order; the rest follow in no particular order.
 * O(n log k), which is what keeps a 50k-token vocabulary cheap when only
 * the top few dozen matter. Sets `sorted` only when k covers the array. */
static inline void st_cand_partial_sort(st_candidates *c, size_t k)
{
    if (c->sorted)
        return;
    if (k >= c->size) {
        st_cand_sort(c);
        return;
    }
    if (k == 0)
        return;
    st_candidate *d = c->data;
    for (size_t i = k / 2; i-- > 0;)
        st_cand_sift(d, k, i);
    for (size_t i = k; i < c->size; i++)
        /* Most candidates lose to the weakest kept one on the logit alone. */
        if (d[i].logit >= d[0].logit && st_cand_before(&d[i], &d[0])) {
            st_cand_swap(&d[i], &d[0]);
            st_cand_sift(d, k, 0);
        }
    qsort(d, k, sizeof *d, st_cand_cmp_desc);
    c->selected = -1;
}

/* p = softmax(logit) with the maximum subtracted so exp never overflows.
 * Masked (-INFINITY) candidates get p = 0. Returns false when no
 * candidate has a finite logit (nothing can be normalised). */
static inline bool st_cand_softmax(st_candidates *c)
{
    float max = -INFINITY;
    for (size_t i = 0; i < c->size; i++)
        if (c->data[i].logit > max)
            max = c->data[i].logit;
    if (!isfinite(max))
        return false;
    double sum = 0.0;
    for (size_t i = 0; i < c->size; i++) {
        double e = exp((double)c->data[i].logit - (double)max);
        c->data[i].p = (float)e;
        sum += e;
    }
    for (size_t i = 0; i < c->size; i++)
        c->data[i].p = (float)(c->data[i].p / sum);
    return true;
}

/* Index of the largest logit; the lowest id wins ties. -1 when empty. */
static inline int64_t st_cand_argmax(const st_candidates *c)
{
    /* The best so far in registers: the loop runs over the whole
     * vocabulary on every greedy step, between two forward passes. */
    if (c->size == 0)
        return -1;
    int64_t best = 0;
    float bl = c->data[0].logit;
    int32_t bid = c->data[0].id;
    for (size_t i = 1; i < c->size; i++) {
        float l = c->data[i].logit;
        /* One compare for the many below the best; ties looked at after. */
        if (l >= bl && (l > bl || c->data[i].id < bid)) {
            best = (int64_t)i;
            bl = l;
            bid = c->data[i].id;
        }
    }
    return best;
}

#endif
