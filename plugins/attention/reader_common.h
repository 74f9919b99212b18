/*
 * plugins/attention/reader_common.h - what the reading strategies
 * (infiniretri, xl3m; stretch/reader.h) share, header-only: dense causal
 * attention for the answer, the host's scorer, the scored sequence
 * [BOS] + tokens + question, and ranking with deterministic ties.
 */
#ifndef ST_PLUGINS_READER_COMMON_H
#define ST_PLUGINS_READER_COMMON_H

#include <stdlib.h>
#include <stretch/plugin.h>
#include <stretch/reader.h>
#include <stretch/services.h>

/* The answer is generated from the kept context with plain causal
 * attention: every query sees every key at or before it, true distances. */
static inline st_status st_reader_causal_plan(const st_host_services *host, const char *name,
                                              const st_attn_query *q,
                                              const st_attn_plan_builder *builder,
                                              st_error *err)
{
    if (!q->kv || q->kv->n_slots == 0 || q->n_q == 0)
        return ST_OK;
    st_attn_range all = {.head = ST_ALL_HEADS, .k_begin = 0, .k_end = q->kv->n_slots,
                         .min_dist = 0, .max_dist = ST_DIST_MAX, .pos_mode = ST_POS_TRUE};
    st_status st = builder->add_range(builder->host, &all);
    if (st != ST_OK)
        return host->error(err, st, "%s: the host refused the causal range", name);
    return ST_OK;
}

/* The host's scorer, or an ST_E_UNAVAILABLE error naming the plugin. */
static inline st_status st_reader_scorer(const st_host_services *host, const char *name,
                                         const st_host_score_v1 **out, st_error *err)
{
    const st_host_score_v1 *s =
        host->get_extension ? host->get_extension(host->host, ST_HOST_SCORE_V1) : NULL;
    if (!s || s->struct_size < sizeof *s || !s->model_score)
        return host->error(err, ST_E_UNAVAILABLE,
                           "%s: this host cannot score the model (" ST_HOST_SCORE_V1
                           " is not offered); load a model", name);
    *out = s;
    return ST_OK;
}

/* [BOS] + tokens[0..n) + question into seq (room for n + n_question + 1);
 * returns its length and sets *first to where tokens[0] landed. */
static inline size_t st_reader_sequence(const st_read_step *step, const int32_t *tokens,
                                        size_t n, int32_t *seq, size_t *first)
{
    size_t w = 0;
    if (step->bos >= 0)
        seq[w++] = step->bos;
    *first = w;
    for (size_t i = 0; i < n; i++)
        seq[w++] = tokens[i];
    for (size_t i = 0; i < step->n_question; i++)
        seq[w++] = step->question[i];
    return w;
}

/* Indices sorted by score, best first; ties by the lower index so the
 * choice is deterministic (qsort alone is not stable). */
typedef struct st_reader_ranked {
    float score;
    uint32_t index;
} st_reader_ranked;

static inline int st_reader_rank_cmp(const void *a, const void *b)
{
    const st_reader_ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->index < y->index ? -1 : (x->index > y->index);
}

static inline void st_reader_rank(st_reader_ranked *r, size_t n)
{
    qsort(r, n, sizeof *r, st_reader_rank_cmp);
}

#endif
