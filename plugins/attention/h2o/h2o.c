/*
 * attention `h2o`: H2O, the Heavy-Hitter Oracle (Zhang et al., NeurIPS 2023,
 * "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large
 * Language Models"). Each layer and KV head keeps its own slots: the
 * `recent` most recent tokens and the `heavy` tokens with the largest
 * accumulated attention, the sum over every query so far (and over the
 * KV head's query heads) of the softmax weight each key received. When a
 * head holds more than heavy + recent slots after a step, the older slots
 * of lowest accumulated score are dropped (greedy, one step at a time, as
 * the paper's eviction policy); ties keep the older slot.
 *
 * The host sums the weights inside its attention kernels (ABI 1.4's
 * statistics, ST_STATS_KV_HEADS, every layer, every query) and hands them
 * over each step (on_attention_stats) before retention (retain_heads).
 * Keys keep their true positions (ST_POS_TRUE), as in the paper.
 */
#include <stretch/params.h>
#include <stretch/plugin.h>

#include "../kv_select.h"

typedef struct h2o {
    const st_host_services *host;
    uint32_t heavy, recent;
    uint32_t budget;
    kv_scores acc;     /* accumulated attention per (layer, KV head) slot */
} h2o;

static st_status h2o_create(const st_host_services *host, const st_params *params, void **inst,
                            st_error *err)
{
    int64_t heavy = st_param_int(params, "heavy"), recent = st_param_int(params, "recent");
    if (heavy + recent < 1)
        return host->error(err, ST_E_RANGE, "h2o: heavy + recent must be at least 1 (the "
                           "newest token is always kept), got %lld + %lld", (long long)heavy,
                           (long long)recent);
    h2o *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "h2o: out of memory");
    s->host = host;
    s->heavy = (uint32_t)heavy;
    s->recent = (uint32_t)recent;
    s->budget = s->heavy + s->recent;
    s->acc.host = host;
    *inst = s;
    return ST_OK;
}

static void h2o_destroy(void *inst)
{
    h2o *s = inst;
    if (!s)
        return;
    kv_scores_free(&s->acc);
    s->host->free(s->host->host, s);
}

static st_status h2o_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                               int32_t *weights_layer, st_error *err)
{
    h2o *s = inst;
    (void)err;
    *needs = 0;
    *weights_layer = -1;
    /* A context smaller than the budget caps it (heavy hitters go first). */
    s->budget = s->heavy + s->recent;
    if (shape->n_ctx && s->budget > shape->n_ctx)
        s->budget = shape->n_ctx;
    return ST_OK;
}

static st_status h2o_configure_kv(void *inst, const st_model_shape *shape,
                                  st_attn_kv_config *cfg, st_error *err)
{
    (void)inst;
    (void)shape;
    (void)err;
    cfg->stats = ST_STATS_KV_HEADS;
    cfg->stats_window = 0;
    cfg->per_head_slots = 1;
    return ST_OK;
}

static uint32_t h2o_cache_budget(void *inst, uint32_t n_ctx)
{
    h2o *s = inst;
    uint32_t b = s->heavy + s->recent;
    return n_ctx && b >= n_ctx ? n_ctx : b;
}

static st_status h2o_plan(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                          st_error *err)
{
    h2o *s = inst;
    return kv_plan_causal(s->host, "h2o", q, b, err);
}

static st_status h2o_on_stats(void *inst, const st_attn_stats *st, st_error *err)
{
    h2o *s = inst;
    if (st->n_rows != st->n_kv_heads)
        return s->host->error(err, ST_E_INVALID, "h2o: statistics with %u rows per layer, "
                              "expected one per KV head (%u)", st->n_rows, st->n_kv_heads);
    if (!kv_scores_reserve(&s->acc, st->n_layers, st->n_kv_heads, st->kv[0].capacity))
        return s->host->error(err, ST_E_NOMEM, "h2o: out of memory");
    for (size_t i = 0; i < (size_t)st->n_layers * st->n_kv_heads; i++) {
        const float *row = st->sum[i];
        uint32_t n = st->kv[i].n_slots;
        if (!row)
            continue;
        if (n > s->acc.cap)
            return s->host->error(err, ST_E_RANGE, "h2o: %u slots, more than the capacity %u",
                                  n, s->acc.cap);
        kv_scores_extend(&s->acc, i, n);
        float *acc = kv_scores_row(&s->acc, i);
        for (uint32_t j = 0; j < n; j++)
            acc[j] += row[j];
    }
    return ST_OK;
}

static st_status h2o_retain_heads(void *inst, const st_kv_heads *hs, st_error *err)
{
    h2o *s = inst;
    size_t heads = (size_t)hs->n_layers * hs->n_kv_heads;
    if (!kv_scores_reserve(&s->acc, hs->n_layers, hs->n_kv_heads, hs->kv[0].capacity))
        return s->host->error(err, ST_E_NOMEM, "h2o: out of memory");
    for (size_t i = 0; i < heads; i++) {
        uint32_t n = hs->kv[i].n_slots;
        uint8_t *keep = hs->keep[i];
        kv_scores_extend(&s->acc, i, n);
        if (n > s->budget) {
            uint32_t recent = s->recent ? s->recent : 1;
            if (recent > s->budget)
                recent = s->budget;
            kv_keep_top(kv_scores_row(&s->acc, i), n - recent, s->budget - recent, keep,
                        s->acc.heap);
        }
        kv_scores_compact(&s->acc, i, keep, n);
    }
    return ST_OK;
}

static void h2o_reset(void *inst)
{
    h2o *s = inst;
    kv_scores_reset(&s->acc);
}

static const st_attention_ops h2o_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = h2o_configure,
    .cache_budget = h2o_cache_budget,
    .plan = h2o_plan,
    .reset = h2o_reset,
    .configure_kv = h2o_configure_kv,
    .on_attention_stats = h2o_on_stats,
    .retain_heads = h2o_retain_heads,
};

ST_PLUGIN(ST_KIND_ATTENTION, "h2o", "1.0.0",
          "H2O: per layer and KV head, the recent tokens plus the heavy hitters by accumulated "
          "attention",
          h2o_create, h2o_destroy, &h2o_ops, NULL);
