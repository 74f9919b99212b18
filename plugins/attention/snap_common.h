/*
 * plugins/attention/snap_common.h - SnapKV's selection, shared by the
 * `snapkv` plugin (one budget for every layer) and `pyramidkv` (a budget
 * per layer, shrinking with depth). Include once, from the plugin's .c,
 * after defining its per-layer budget in snap->layer_budget.
 *
 * Each layer and KV head keeps its own slots. The host sums, inside its
 * attention kernels, the softmax weight that the last `window` queries of
 * each block give every key (ABI 1.4's statistics, ST_STATS_KV_HEADS, the
 * observation window); when a head holds more than its budget after a
 * block, the scores of the slots before the window are pooled along the
 * keys (max or average, `kernel` wide, stride 1) and the budget - window
 * best of them are kept together with the window (the last `window`
 * slots). Ties keep the older slot.
 *
 * A block of one query (decode) adds its weights to the running scores
 * instead of replacing them, so once a head is full each generated token
 * evicts the slot of lowest pooled score over the generated queries since
 * the last prompt block, never one of the last `window` slots.
 */
#ifndef ST_PLUGINS_SNAP_COMMON_H
#define ST_PLUGINS_SNAP_COMMON_H

#include <stretch/params.h>
#include <stretch/plugin.h>

#include "kv_select.h"

typedef struct snap {
    const st_host_services *host;
    const char *name;
    uint32_t window, kernel;
    bool max_pool;
    uint32_t asked;            /* the `budget` parameter */
    uint32_t budget;           /* the largest per-layer budget (cache_budget) */
    uint32_t n_layers;
    uint32_t *layer_budget;    /* [n_layers] */
    kv_scores win;             /* the observation window's scores */
    float *pooled;             /* [cap] */
    uint32_t cap_pooled;
} snap;

/* The plugin's per-layer budgets for `n_layers` layers and context n_ctx:
 * fill s->layer_budget and s->budget. */
static st_status snap_budgets(snap *s, uint32_t n_layers, uint32_t n_ctx, st_error *err);

static st_status snap_parse(const st_host_services *host, const st_params *params,
                            const char *name, snap *s, st_error *err)
{
    s->host = host;
    s->name = name;
    s->window = (uint32_t)st_param_int(params, "window");
    s->asked = (uint32_t)st_param_int(params, "budget");
    s->kernel = (uint32_t)st_param_int(params, "kernel");
    s->max_pool = st_param_is(params, "pooling", "max");
    s->win.host = host;
    if (s->kernel % 2 == 0)
        return host->error(err, ST_E_RANGE, "%s: kernel %u must be odd (a window centred on "
                           "each key)", name, s->kernel);
    return ST_OK;
}

static void snap_destroy(void *inst)
{
    snap *s = inst;
    if (!s)
        return;
    kv_scores_free(&s->win);
    s->host->free(s->host->host, s->layer_budget);
    s->host->free(s->host->host, s->pooled);
    s->host->free(s->host->host, s);
}

static st_status snap_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                                int32_t *weights_layer, st_error *err)
{
    snap *s = inst;
    *needs = 0;
    *weights_layer = -1;
    s->host->free(s->host->host, s->layer_budget);
    s->layer_budget = s->host->calloc(s->host->host, shape->n_layers ? shape->n_layers : 1,
                                      sizeof(uint32_t));
    if (!s->layer_budget)
        return s->host->error(err, ST_E_NOMEM, "%s: out of memory", s->name);
    s->n_layers = shape->n_layers;
    st_status st = snap_budgets(s, shape->n_layers, shape->n_ctx, err);
    if (st != ST_OK)
        return st;
    /* A context smaller than a budget caps it. */
    s->budget = 0;
    for (uint32_t l = 0; l < s->n_layers; l++) {
        if (shape->n_ctx && s->layer_budget[l] > shape->n_ctx)
            s->layer_budget[l] = shape->n_ctx;
        if (s->layer_budget[l] > s->budget)
            s->budget = s->layer_budget[l];
    }
    for (uint32_t l = 0; l < s->n_layers; l++)
        if (s->layer_budget[l] <= s->window)
            return s->host->error(err, ST_E_RANGE, "%s: layer %u keeps %u slots, not more than "
                                  "the observation window of %u: raise the budget or lower "
                                  "window", s->name, l, s->layer_budget[l], s->window);
    return ST_OK;
}

static st_status snap_configure_kv(void *inst, const st_model_shape *shape,
                                   st_attn_kv_config *cfg, st_error *err)
{
    snap *s = inst;
    (void)err;
    cfg->stats = ST_STATS_KV_HEADS;
    cfg->stats_window = s->window;
    cfg->per_head_slots = 1;
    for (uint32_t l = 0; l < shape->n_layers && l < s->n_layers; l++)
        cfg->layer_budget[l] = s->layer_budget[l];
    return ST_OK;
}

static uint32_t snap_cache_budget(void *inst, uint32_t n_ctx)
{
    snap *s = inst;
    if (!s->layer_budget)
        return n_ctx;
    return n_ctx && s->budget >= n_ctx ? n_ctx : s->budget;
}

static st_status snap_plan(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                           st_error *err)
{
    snap *s = inst;
    return kv_plan_causal(s->host, s->name, q, b, err);
}

static st_status snap_on_stats(void *inst, const st_attn_stats *st, st_error *err)
{
    snap *s = inst;
    if (st->n_rows != st->n_kv_heads)
        return s->host->error(err, ST_E_INVALID, "%s: statistics with %u rows per layer, "
                              "expected one per KV head (%u)", s->name, st->n_rows,
                              st->n_kv_heads);
    if (!kv_scores_reserve(&s->win, st->n_layers, st->n_kv_heads, st->kv[0].capacity))
        return s->host->error(err, ST_E_NOMEM, "%s: out of memory", s->name);
    /* A prompt block replaces the window's scores; decode accumulates. */
    bool replace = st->n_q > 1;
    for (size_t i = 0; i < (size_t)st->n_layers * st->n_kv_heads; i++) {
        const float *row = st->sum[i];
        uint32_t n = st->kv[i].n_slots;
        if (!row)
            continue;
        if (n > s->win.cap)
            return s->host->error(err, ST_E_RANGE, "%s: %u slots, more than the capacity %u",
                                  s->name, n, s->win.cap);
        if (replace)
            s->win.n[i] = 0;
        kv_scores_extend(&s->win, i, n);
        float *w = kv_scores_row(&s->win, i);
        for (uint32_t j = 0; j < n; j++)
            w[j] += row[j];
    }
    return ST_OK;
}

static st_status snap_retain_heads(void *inst, const st_kv_heads *hs, st_error *err)
{
    snap *s = inst;
    uint32_t cap = hs->kv[0].capacity;
    if (!kv_scores_reserve(&s->win, hs->n_layers, hs->n_kv_heads, cap))
        return s->host->error(err, ST_E_NOMEM, "%s: out of memory", s->name);
    if (s->cap_pooled < cap) {
        float *p = s->host->realloc(s->host->host, s->pooled, (size_t)cap * sizeof(float));
        if (!p)
            return s->host->error(err, ST_E_NOMEM, "%s: out of memory", s->name);
        s->pooled = p;
        s->cap_pooled = cap;
    }
    for (uint32_t l = 0; l < hs->n_layers; l++) {
        uint32_t budget = l < s->n_layers ? s->layer_budget[l] : s->budget;
        for (uint32_t g = 0; g < hs->n_kv_heads; g++) {
            size_t i = (size_t)l * hs->n_kv_heads + g;
            uint32_t n = hs->kv[i].n_slots;
            uint8_t *keep = hs->keep[i];
            kv_scores_extend(&s->win, i, n);
            if (n > budget) {
                uint32_t w = s->window < budget ? s->window : budget - 1;
                if (w == 0)
                    w = 1; /* the newest slot stays */
                uint32_t prefix = n - w;
                kv_pool(kv_scores_row(&s->win, i), prefix, s->kernel, s->max_pool, s->pooled);
                kv_keep_top(s->pooled, prefix, budget - w, keep, s->win.heap);
            }
            kv_scores_compact(&s->win, i, keep, n);
        }
    }
    return ST_OK;
}

static void snap_reset(void *inst)
{
    snap *s = inst;
    kv_scores_reset(&s->win);
}

static const st_attention_ops snap_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = snap_configure,
    .cache_budget = snap_cache_budget,
    .plan = snap_plan,
    .reset = snap_reset,
    .configure_kv = snap_configure_kv,
    .on_attention_stats = snap_on_stats,
    .retain_heads = snap_retain_heads,
};

#endif
