/*
 * plugins/attention/kv_select.h - what the importance-based KV plugins
 * (h2o, snapkv, pyramidkv) share: a score per slot of every (layer, KV
 * head) kept parallel to the host's per-head slots, the causal plan over a
 * head's slots, 1-D pooling, and "keep the top k by score" with one total
 * order (higher score first, then the older slot), so a test can
 * recompute exactly which slots survive.
 */
#ifndef ST_PLUGINS_KV_SELECT_H
#define ST_PLUGINS_KV_SELECT_H

#include <stretch/plugin.h>
#include <string.h>

/* Per-(layer, KV head) scores, parallel to the host's slots of that head. */
typedef struct kv_scores {
    const st_host_services *host;
    uint32_t n_layers, n_kv_heads, cap;
    float *score;      /* [n_layers * n_kv_heads][cap] */
    uint32_t *n;       /* [n_layers * n_kv_heads] slots with a score */
    float *tmp;        /* [cap] pooling scratch */
    uint32_t *heap;    /* [cap] selection scratch */
} kv_scores;

static inline void kv_scores_free(kv_scores *s)
{
    if (!s->host)
        return;
    s->host->free(s->host->host, s->score);
    s->host->free(s->host->host, s->n);
    s->host->free(s->host->host, s->tmp);
    s->host->free(s->host->host, s->heap);
    s->score = s->tmp = NULL;
    s->n = s->heap = NULL;
    s->cap = 0;
}

/* Room for `cap` slots per head (the host's capacity); keeps nothing. */
static inline bool kv_scores_reserve(kv_scores *s, uint32_t n_layers, uint32_t n_kv_heads,
                                     uint32_t cap)
{
    if (s->score && s->cap >= cap && s->n_layers == n_layers && s->n_kv_heads == n_kv_heads)
        return true;
    const st_host_services *h = s->host;
    kv_scores_free(s);
    s->host = h;
    size_t heads = (size_t)n_layers * n_kv_heads;
    s->score = h->calloc(h->host, heads * cap, sizeof(float));
    s->n = h->calloc(h->host, heads, sizeof(uint32_t));
    s->tmp = h->calloc(h->host, cap, sizeof(float));
    s->heap = h->calloc(h->host, cap, sizeof(uint32_t));
    if (!s->score || !s->n || !s->tmp || !s->heap) {
        kv_scores_free(s);
        s->host = h;
        return false;
    }
    s->n_layers = n_layers;
    s->n_kv_heads = n_kv_heads;
    s->cap = cap;
    return true;
}

static inline float *kv_scores_row(kv_scores *s, size_t head)
{
    return s->score + head * s->cap;
}

static inline void kv_scores_reset(kv_scores *s)
{
    if (s->n)
        memset(s->n, 0, (size_t)s->n_layers * s->n_kv_heads * sizeof *s->n);
}

/* Extend head i's scores to n slots with zeros (the step's new slots). */
static inline void kv_scores_extend(kv_scores *s, size_t i, uint32_t n)
{
    float *r = kv_scores_row(s, i);
    for (uint32_t j = s->n[i]; j < n; j++)
        r[j] = 0.0f;
    if (n > s->n[i])
        s->n[i] = n;
}

/* Compact head i's scores as the host will compact its slots. */
static inline void kv_scores_compact(kv_scores *s, size_t i, const uint8_t *keep, uint32_t n)
{
    float *r = kv_scores_row(s, i);
    uint32_t m = 0;
    for (uint32_t j = 0; j < n; j++)
        if (keep[j])
            r[m++] = j < s->n[i] ? r[j] : 0.0f;
    s->n[i] = m;
}

/* Slot a ranks above slot b: a higher score, or the same and older. */
static inline bool kv_beats(const float *sc, uint32_t a, uint32_t b)
{
    return sc[a] > sc[b] || (sc[a] == sc[b] && a < b);
}

static inline void kv_sift_down(const float *sc, uint32_t *h, uint32_t n, uint32_t i)
{
    /* A heap whose root is the worst kept slot. */
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && kv_beats(sc, h[m], h[l]))
            m = l;
        if (r < n && kv_beats(sc, h[m], h[r]))
            m = r;
        if (m == i)
            return;
        uint32_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* keep[j] = 1 for the k best slots of [0, end) by sc (kv_beats), 0 for the
 * others; slots from `end` on are left as they are. heap: k entries. */
static inline void kv_keep_top(const float *sc, uint32_t end, uint32_t k, uint8_t *keep,
                               uint32_t *heap)
{
    for (uint32_t j = 0; j < end; j++)
        keep[j] = 0;
    if (k >= end) {
        for (uint32_t j = 0; j < end; j++)
            keep[j] = 1;
        return;
    }
    if (k == 0)
        return;
    uint32_t nh = 0;
    for (uint32_t j = 0; j < end; j++) {
        if (nh < k) {
            heap[nh++] = j;
            if (nh == k)
                for (uint32_t i = nh / 2; i-- > 0;)
                    kv_sift_down(sc, heap, nh, i);
        } else if (kv_beats(sc, j, heap[0])) {
            heap[0] = j;
            kv_sift_down(sc, heap, nh, 0);
        }
    }
    for (uint32_t i = 0; i < nh; i++)
        keep[heap[i]] = 1;
}

/* out[j] = the max or mean of in[j - kernel/2 .. j + kernel/2] within
 * [0, n) (SnapKV's pooling along the keys: stride 1, padding kernel/2;
 * the mean divides by the kernel, as a zero-padded average pool does). */
static inline void kv_pool(const float *in, uint32_t n, uint32_t kernel, bool max_pool,
                           float *out)
{
    uint32_t half = kernel / 2;
    for (uint32_t j = 0; j < n; j++) {
        uint32_t a = j >= half ? j - half : 0, b = j + half + 1 < n ? j + half + 1 : n;
        float m = in[a], sum = 0.0f;
        for (uint32_t i = a; i < b; i++) {
            m = in[i] > m ? in[i] : m;
            sum += in[i];
        }
        out[j] = max_pool ? m : sum / (float)kernel;
    }
}

/* The plan of every importance plugin: each query sees every cached key
 * of its head at or before it, at true distances. */
static inline st_status kv_plan_causal(const st_host_services *host, const char *name,
                                       const st_attn_query *q,
                                       const st_attn_plan_builder *builder, st_error *err)
{
    if (!q->kv || q->n_q == 0 || q->kv->n_slots == 0)
        return ST_OK;
    st_attn_range all = { .head = ST_ALL_HEADS, .k_begin = 0, .k_end = q->kv->n_slots,
                          .min_dist = 0, .max_dist = ST_DIST_MAX, .pos_mode = ST_POS_TRUE };
    st_status st = builder->add_range(builder->host, &all);
    if (st != ST_OK)
        return host->error(err, st, "%s: the host refused the causal range", name);
    return ST_OK;
}

#endif
