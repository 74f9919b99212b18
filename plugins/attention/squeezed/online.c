/*
 * online.c - Squeezed Attention's online phase: for a block of queries
 * after the fixed context, score each head's clusters from the centroids
 * alone and read only the keys of the clusters that pass (plus, always, the
 * first `sinks` keys, the observation tokens and everything after the fixed
 * context).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "squeezed_plugin.h"

typedef struct scratch {
    float *lf, *est, *score, *lc, *cest, *cscore, *qbuf;
    uint8_t *keep, *cpass;
    uint8_t *mark;
    uint32_t *list;
} scratch;

static void scratch_free(scratch *w)
{
    free(w->lf);
    free(w->est);
    free(w->score);
    free(w->lc);
    free(w->cest);
    free(w->cscore);
    free(w->qbuf);
    free(w->keep);
    free(w->cpass);
    free(w->mark);
    free(w->list);
}

static bool scratch_alloc(scratch *w, uint32_t k, uint32_t kc, uint32_t n_keys, uint32_t hd)
{
    w->qbuf = malloc(sizeof(float) * hd);
    k = k ? k : 1;
    kc = kc ? kc : 1;
    n_keys = n_keys ? n_keys : 1;
    w->lf = malloc(sizeof(float) * k);
    w->est = malloc(sizeof(float) * k);
    w->score = malloc(sizeof(float) * k);
    w->lc = malloc(sizeof(float) * kc);
    w->cest = malloc(sizeof(float) * kc);
    w->cscore = malloc(sizeof(float) * kc);
    w->keep = malloc(k);
    w->cpass = malloc(kc);
    w->mark = malloc(n_keys);
    w->list = malloc(sizeof(uint32_t) * n_keys);
    return w->qbuf && w->lf && w->est && w->score && w->lc && w->cest && w->cscore && w->keep &&
           w->cpass && w->mark && w->list;
}

static uint32_t ceil_fraction(double f, uint32_t n)
{
    double v = ceil(f * (double)n - 1e-9);
    if (v < 0.0)
        v = 0.0;
    return v > (double)n ? n : (uint32_t)v;
}

/* Fold one query's estimates into the block's scores (max or mean). */
static void fold(float *score, const float *est, uint32_t n, bool mean, uint32_t n_q, bool first)
{
    for (uint32_t c = 0; c < n; c++) {
        if (mean)
            score[c] = (first ? 0.0f : score[c]) + est[c] / (float)n_q;
        else
            score[c] = first || est[c] > score[c] ? est[c] : score[c];
    }
}

/* Scores of head h's clusters over the block, then the kept clusters. */
static void select_clusters(const st_squeezed *s, const st_attn_query *q,
                            const st_sq_layer_index *L, const st_sq_head_index *H, uint32_t h,
                            scratch *w)
{
    uint32_t hd = q->head_dim;
    bool mean = s->p.aggregate_mean;
    for (uint32_t t = 0; t < q->n_q; t++) {
        const float *qv = w->qbuf;
        st_sq_position(s, w->qbuf, q->q + ((size_t)t * q->n_heads + h) * hd, q->q_pos[t]);
        st_sq_cluster_logits(qv, H->centroids, H->k, hd, w->lf);
        double log_den;
        if (H->kc) {
            /* The coarse level estimates the softmax denominator too. */
            st_sq_cluster_logits(qv, H->coarse_centroids, H->kc, hd, w->lc);
            log_den = st_sq_log_denominator(w->lc, H->coarse_mass, H->kc);
            st_sq_estimates(w->lc, H->kc, log_den, w->cest);
            fold(w->cscore, w->cest, H->kc, mean, q->n_q, t == 0);
        } else {
            log_den = st_sq_log_denominator(w->lf, H->mass, H->k);
        }
        st_sq_estimates(w->lf, H->k, log_den, w->est);
        fold(w->score, w->est, H->k, mean, q->n_q, t == 0);
    }
    bool by_threshold = !s->p.mode_fraction && L->calibrated;
    if (H->kc) {
        if (by_threshold) {
            for (uint32_t c = 0; c < H->kc; c++)
                w->cpass[c] = w->cscore[c] > L->thr_coarse;
        } else {
            uint32_t n = ceil_fraction(s->p.coarse_keep_fraction, H->kc);
            st_sq_top_flags(w->cscore, H->kc, n ? n : 1, w->cpass);
        }
        /* A fine cluster is considered only under a passing parent. */
        for (uint32_t c = 0; c < H->k; c++)
            if (!w->cpass[H->parent[c]])
                w->score[c] = -INFINITY;
    }
    if (by_threshold) {
        for (uint32_t c = 0; c < H->k; c++)
            w->keep[c] = w->score[c] > L->thr_fine;
    } else {
        st_sq_top_flags(w->score, H->k, ceil_fraction(s->p.keep_fraction, H->k), w->keep);
        for (uint32_t c = 0; c < H->k; c++)
            if (w->score[c] == -INFINITY)
                w->keep[c] = 0;
    }
}

st_status st_sq_plan_sparse(st_squeezed *s, const st_attn_query *q,
                            const st_attn_plan_builder *b, st_error *err)
{
    const st_sq_layer_index *L = &s->ix.layers[q->layer];
    uint32_t group = q->n_heads / q->n_kv_heads;
    uint32_t kmax = 0, kcmax = 0, n_keys = L->heads[0].n_keys;
    for (uint32_t g = 0; g < q->n_kv_heads; g++) {
        if (L->heads[g].k > kmax)
            kmax = L->heads[g].k;
        if (L->heads[g].kc > kcmax)
            kcmax = L->heads[g].kc;
    }
    scratch w = {0};
    st_status st = ST_OK;
    if (!scratch_alloc(&w, kmax, kcmax, n_keys, q->head_dim)) {
        st = s->host->error(err, ST_E_NOMEM, "squeezed: out of memory planning layer %u",
                            q->layer);
        goto done;
    }
    for (uint32_t h = 0; h < q->n_heads; h++) {
        const st_sq_head_index *H = &L->heads[h / group];
        if (H->k == 0)
            continue;
        select_clusters(s, q, L, H, h, &w);
        memset(w.mark, 0, H->n_keys);
        /* Attention sinks: the first keys take much of every query's
         * attention in most LLMs, yet may sit in a cluster that loses. */
        for (uint32_t i = 0; i < s->p.sinks && i < H->n_keys; i++)
            w.mark[i] = 1;
        for (uint32_t c = 0; c < H->k; c++)
            if (w.keep[c])
                for (uint32_t m = H->member_off[c]; m < H->member_off[c + 1]; m++)
                    w.mark[H->members[m]] = 1;
        size_t n = 0;
        for (uint32_t i = 0; i < H->n_keys; i++)
            if (w.mark[i])
                w.list[n++] = i;
        atomic_fetch_add(&s->keys_read, (unsigned long long)n);
        atomic_fetch_add(&s->keys_offered, (unsigned long long)H->n_keys);
        if (n == 0)
            continue;
        st_attn_range shape = {
            .head = h, .min_dist = 0, .max_dist = ST_DIST_MAX, .pos_mode = ST_POS_TRUE,
        };
        if ((st = b->add_indices(b->host, w.list, n, &shape)) != ST_OK) {
            st = s->host->error(err, st, "squeezed: the host refused the kept keys of head %u",
                                h);
            goto done;
        }
    }
    /* The observation tokens and everything after the fixed context. */
    st_attn_range rest = {
        .head = ST_ALL_HEADS, .k_begin = n_keys, .k_end = q->kv->n_slots,
        .min_dist = 0, .max_dist = ST_DIST_MAX, .pos_mode = ST_POS_TRUE,
    };
    if (rest.k_begin < rest.k_end && (st = b->add_range(b->host, &rest)) != ST_OK)
        st = s->host->error(err, st, "squeezed: the host refused the recent range");
done:
    scratch_free(&w);
    return st;
}
