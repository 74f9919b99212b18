/*
 * offline.c - Squeezed Attention's offline phase for one layer: cluster
 * the fixed context's keys (all but the last `observation` tokens) per KV
 * head, optionally cluster the centroids again (hierarchical), and
 * calibrate the thresholds from the observation tokens' queries.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "squeezed_plugin.h"

void st_sq_calib_clear(st_sq_calib *c)
{
    free(c->fine);
    free(c->coarse);
    memset(c, 0, sizeof *c);
}

void st_sq_record_queries(st_squeezed *s, const st_attn_query *q)
{
    uint32_t cap = s->p.observation;
    if (!q->q || cap == 0)
        return;
    st_sq_obs_ring *r = &s->rings[q->layer];
    size_t qd = (size_t)q->n_heads * q->head_dim;
    for (uint32_t t = 0; t < q->n_q; t++) {
        if (s->fixed_len && q->q_pos[t] >= (int32_t)s->fixed_len)
            continue;
        for (uint32_t h = 0; h < q->n_heads; h++)
            st_sq_position(s, r->q + (size_t)r->next * qd + (size_t)h * q->head_dim,
                           q->q + (size_t)t * qd + (size_t)h * q->head_dim, q->q_pos[t]);
        r->pos[r->next] = q->q_pos[t];
        r->next = (r->next + 1) % cap;
        if (r->n < cap)
            r->n++;
    }
}

static uint32_t ceil_fraction(double f, uint32_t n)
{
    double v = ceil(f * (double)n - 1e-9);
    if (v < 0.0)
        v = 0.0;
    return v > (double)n ? n : (uint32_t)v;
}

/* Fine (and coarse) clusters of one KV head's first n_keys keys. */
static st_status cluster_head(st_squeezed *s, const st_attn_query *q, uint32_t g,
                              uint32_t n_keys, st_sq_head_index *h)
{
    uint32_t hd = q->head_dim, nkv = q->n_kv_heads;
    st_sq_head_clear(h);
    h->n_keys = n_keys;
    if (n_keys == 0)
        return ST_OK;
    uint32_t k = ceil_fraction(s->p.cluster_fraction, n_keys);
    if (k < 1)
        k = 1;
    h->k = k;
    float *x = malloc(sizeof(float) * (size_t)n_keys * hd);
    uint32_t *counts = malloc(sizeof(uint32_t) * k);
    h->centroids = malloc(sizeof(float) * (size_t)k * hd);
    h->mass = malloc(sizeof(float) * k);
    h->assign = malloc(sizeof(uint32_t) * n_keys);
    st_status st = ST_E_NOMEM;
    if (!x || !counts || !h->centroids || !h->mass || !h->assign)
        goto done;
    for (uint32_t i = 0; i < n_keys; i++)
        st_sq_position(s, x + (size_t)i * hd, q->k + ((size_t)i * nkv + g) * hd, q->kv->pos[i]);
    /* A distinct, reproducible stream per layer and head. */
    uint64_t seed = s->p.seed ^ (0x9e3779b97f4a7c15ull * (1 + (uint64_t)q->layer * nkv + g));
    if ((st = st_sq_kmeans(x, NULL, n_keys, hd, k, s->p.kmeans_iters, seed, h->centroids,
                           h->assign, counts)) != ST_OK)
        goto done;
    for (uint32_t c = 0; c < k; c++)
        h->mass[c] = (float)counts[c];
    if (s->p.levels == 2) {
        uint32_t kc = s->p.k_coarse ? s->p.k_coarse : (uint32_t)ceil(sqrt((double)k));
        if (kc > k)
            kc = k;
        h->kc = kc;
        h->coarse_centroids = malloc(sizeof(float) * (size_t)kc * hd);
        h->coarse_mass = calloc(kc, sizeof(float));
        h->parent = malloc(sizeof(uint32_t) * k);
        uint32_t *cc = malloc(sizeof(uint32_t) * kc);
        st = ST_E_NOMEM;
        if (h->coarse_centroids && h->coarse_mass && h->parent && cc)
            /* Weighted by cluster size, so a coarse centroid is the mean of
             * the original keys under it. */
            st = st_sq_kmeans(h->centroids, h->mass, k, hd, kc, s->p.kmeans_iters, seed + 1,
                              h->coarse_centroids, h->parent, cc);
        free(cc);
        if (st != ST_OK)
            goto done;
        for (uint32_t c = 0; c < k; c++)
            h->coarse_mass[h->parent[c]] += h->mass[c];
    }
    st = st_sq_head_members(h);
done:
    free(x);
    free(counts);
    if (st != ST_OK)
        st_sq_head_clear(h);
    return st;
}

static st_status append(float **arr, size_t *n, const float *v, size_t m)
{
    float *p = realloc(*arr, sizeof(float) * (*n + m));
    if (!p)
        return ST_E_NOMEM;
    memcpy(p + *n, v, sizeof(float) * m);
    *arr = p;
    *n += m;
    return ST_OK;
}

/* The estimated attentions of every observation query, head and cluster. */
static st_status calibrate(st_squeezed *s, const st_attn_query *q, st_sq_layer_index *L,
                           st_sq_calib *cal)
{
    const st_sq_obs_ring *r = &s->rings[q->layer];
    uint32_t F = s->fixed_len, obs = s->p.observation, hd = q->head_dim;
    uint32_t group = q->n_heads / q->n_kv_heads;
    uint32_t kmax = 1;
    for (uint32_t g = 0; g < q->n_kv_heads; g++)
        if (L->heads[g].k > kmax)
            kmax = L->heads[g].k;
    float *lf = malloc(sizeof(float) * kmax), *est = malloc(sizeof(float) * kmax);
    float *lc = malloc(sizeof(float) * kmax);
    st_status st = (lf && est && lc) ? ST_OK : ST_E_NOMEM;
    for (uint32_t i = 0; st == ST_OK && i < r->n; i++) {
        int32_t pos = r->pos[i];
        if ((int64_t)pos < (int64_t)F - (int64_t)obs || (int64_t)pos >= (int64_t)F)
            continue;
        for (uint32_t h = 0; st == ST_OK && h < q->n_heads; h++) {
            const st_sq_head_index *H = &L->heads[h / group];
            if (H->k == 0)
                continue;
            const float *qv = r->q + ((size_t)i * q->n_heads + h) * hd;
            st_sq_cluster_logits(qv, H->centroids, H->k, hd, lf);
            double log_den;
            if (H->kc) {
                st_sq_cluster_logits(qv, H->coarse_centroids, H->kc, hd, lc);
                log_den = st_sq_log_denominator(lc, H->coarse_mass, H->kc);
                st_sq_estimates(lc, H->kc, log_den, est);
                st = append(&cal->coarse, &cal->n_coarse, est, H->kc);
            } else {
                log_den = st_sq_log_denominator(lf, H->mass, H->k);
            }
            st_sq_estimates(lf, H->k, log_den, est);
            if (st == ST_OK)
                st = append(&cal->fine, &cal->n_fine, est, H->k);
        }
    }
    free(lf);
    free(est);
    free(lc);
    return st;
}

/* One KV head's clustering, run on its own thread. */
typedef struct head_job {
    st_squeezed *s;
    const st_attn_query *q;
    uint32_t g, n_keys;
    st_status st;
    pthread_t thread;
    bool started;
} head_job;

static void *head_job_run(void *arg)
{
    head_job *j = arg;
    j->st = cluster_head(j->s, j->q, j->g, j->n_keys, &j->s->ix.layers[j->q->layer].heads[j->g]);
    return NULL;
}

st_status st_sq_build_layer(st_squeezed *s, const st_attn_query *q, st_error *err)
{
    st_sq_layer_index *L = &s->ix.layers[q->layer];
    uint32_t F = s->fixed_len, obs = s->p.observation;
    uint32_t n_keys = F > obs ? F - obs : 0;
    /* The KV heads are independent and the host waits for this plan (its
     * workers are idle): one thread per head beyond the first, which runs
     * here. Where a thread cannot be made, its head runs here too. */
    head_job *jobs = calloc(q->n_kv_heads, sizeof *jobs);
    if (!jobs)
        return s->host->error(err, ST_E_NOMEM, "squeezed: out of memory clustering layer %u",
                              q->layer);
    for (uint32_t g = 0; g < q->n_kv_heads; g++) {
        jobs[g] = (head_job){ .s = s, .q = q, .g = g, .n_keys = n_keys };
        if (g > 0)
            jobs[g].started = pthread_create(&jobs[g].thread, NULL, head_job_run, &jobs[g]) == 0;
    }
    for (uint32_t g = 0; g < q->n_kv_heads; g++)
        if (!jobs[g].started)
            head_job_run(&jobs[g]);
    for (uint32_t g = 1; g < q->n_kv_heads; g++)
        if (jobs[g].started)
            pthread_join(jobs[g].thread, NULL);
    for (uint32_t g = 0; g < q->n_kv_heads; g++)
        if (jobs[g].st != ST_OK) {
            st_status st = jobs[g].st;
            free(jobs);
            return s->host->error(err, st, "squeezed: clustering layer %u, KV head %u failed",
                                  q->layer, g);
        }
    free(jobs);
    st_sq_calib *cal = &s->calib[q->layer];
    st_sq_calib_clear(cal);
    if (calibrate(s, q, L, cal) != ST_OK)
        return s->host->error(err, ST_E_NOMEM, "squeezed: out of memory calibrating layer %u",
                              q->layer);
    L->calibrated = cal->n_fine > 0;
    /* This layer's own quantiles serve until every layer is in. */
    L->thr_fine = st_sq_quantile(cal->fine, cal->n_fine, s->p.quantile);
    L->thr_coarse = st_sq_quantile(cal->coarse, cal->n_coarse, s->p.quantile);
    L->built = true;
    s->n_built++;
    s->rings[q->layer].n = s->rings[q->layer].next = 0;
    return ST_OK;
}

void st_sq_finish_thresholds(st_squeezed *s)
{
    uint32_t nl = s->shape.n_layers;
    size_t nf = 0, nc = 0;
    for (uint32_t l = 0; l < nl; l++) {
        nf += s->calib[l].n_fine;
        nc += s->calib[l].n_coarse;
    }
    float *fine = malloc(sizeof(float) * (nf ? nf : 1));
    float *coarse = malloc(sizeof(float) * (nc ? nc : 1));
    if (fine && coarse && nf) {
        size_t of = 0, oc = 0;
        for (uint32_t l = 0; l < nl; l++) {
            memcpy(fine + of, s->calib[l].fine, sizeof(float) * s->calib[l].n_fine);
            of += s->calib[l].n_fine;
            if (s->calib[l].n_coarse)
                memcpy(coarse + oc, s->calib[l].coarse, sizeof(float) * s->calib[l].n_coarse);
            oc += s->calib[l].n_coarse;
        }
        float tf = st_sq_quantile(fine, nf, s->p.quantile);
        float tc = st_sq_quantile(coarse, nc, s->p.quantile);
        for (uint32_t l = 0; l < nl; l++)
            if (s->ix.layers[l].calibrated) {
                s->ix.layers[l].thr_fine = tf;
                s->ix.layers[l].thr_coarse = tc;
            }
    }
    /* Without memory for the pooled scores the per-layer thresholds stay. */
    free(fine);
    free(coarse);
    for (uint32_t l = 0; l < nl; l++)
        st_sq_calib_clear(&s->calib[l]);
}
