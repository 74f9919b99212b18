/*
 * attention `sliding-window`: each query sees the keys whose true distance
 * d = pos(q) - pos(k) satisfies 0 <= d < window (Longformer/Mistral-style
 * local causal attention), plus, optionally, the first `sinks` slots of the
 * cache, which stay visible to every later query (attention sinks, Xiao et
 * al. 2023, "Efficient Streaming Language Models with Attention Sinks"; here
 * keys keep their true positions, unlike the `streaming` plugin).
 *
 * The cache keeps the first `sinks` slots and the last `window` slots: no
 * future query can see anything else, so memory is flat at sinks + window.
 */
#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct sliding_window {
    const st_host_services *host;
    uint32_t window;
    uint32_t sinks;
} sliding_window;

static st_status sw_create(const st_host_services *host, const st_params *params,
                           void **inst, st_error *err)
{
    uint32_t window = (uint32_t)st_param_int(params, "window");
    uint32_t sinks = (uint32_t)st_param_int(params, "sinks");
    sliding_window *sw = host->calloc(host->host, 1, sizeof *sw);
    if (!sw)
        return host->error(err, ST_E_NOMEM, "sliding-window: out of memory");
    sw->host = host;
    sw->window = window;
    sw->sinks = sinks;
    *inst = sw;
    return ST_OK;
}

static void sw_destroy(void *inst)
{
    sliding_window *sw = inst;
    if (sw)
        sw->host->free(sw->host->host, sw);
}

static st_status sw_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                              int32_t *weights_layer, st_error *err)
{
    *needs = 0;
    *weights_layer = -1;
    return ST_OK;
}

static uint32_t sw_cache_budget(void *inst, uint32_t n_ctx)
{
    sliding_window *sw = inst;
    uint64_t budget = (uint64_t)sw->sinks + sw->window;
    if (n_ctx > 0 && budget >= n_ctx)
        return n_ctx;
    return budget > UINT32_MAX ? UINT32_MAX : (uint32_t)budget;
}

static st_status sw_plan(void *inst, const st_attn_query *q,
                         const st_attn_plan_builder *builder, st_error *err)
{
    sliding_window *sw = inst;
    const st_kv_view *kv = q->kv;
    if (!kv || q->n_q == 0 || kv->n_slots == 0)
        return ST_OK;
    int32_t min_qpos = st_attn_min_q_pos(q);

    /* The window: every key within distance window-1. Slots before the
     * earliest key any query of the block can reach are left out. */
    st_attn_range win = {
        .head = ST_ALL_HEADS,
        .k_begin = st_kv_first_slot_at(kv, (int64_t)min_qpos - (int64_t)sw->window + 1),
        .k_end = kv->n_slots,
        .min_dist = 0,
        .max_dist = (int32_t)(sw->window - 1),
        .pos_mode = ST_POS_TRUE,
    };
    if (win.k_begin < win.k_end) {
        st_status st = builder->add_range(builder->host, &win);
        if (st != ST_OK)
            return sw->host->error(err, st, "sliding-window: the host refused the window range");
    }

    /* The sinks: only the part the window does not already cover
     * (min_dist = window), so no (query, key) pair is visible twice. */
    uint32_t n_sink = sw->sinks < kv->n_slots ? sw->sinks : kv->n_slots;
    if (n_sink > 0 && sw->window < (uint32_t)ST_DIST_MAX) {
        st_attn_range sink = {
            .head = ST_ALL_HEADS,
            .k_begin = 0,
            .k_end = n_sink,
            .min_dist = (int32_t)sw->window,
            .max_dist = ST_DIST_MAX,
            .pos_mode = ST_POS_TRUE,
        };
        st_status st = builder->add_range(builder->host, &sink);
        if (st != ST_OK)
            return sw->host->error(err, st, "sliding-window: the host refused the sink range");
    }
    return ST_OK;
}

static st_status sw_retain(void *inst, const st_kv_view *kv, uint32_t n_new, uint8_t *keep,
                           st_error *err)
{
    sliding_window *sw = inst;
    uint32_t n = kv->n_slots;
    uint32_t recent_from = n > sw->window ? n - sw->window : 0;
    for (uint32_t i = 0; i < n; i++)
        keep[i] = (i < sw->sinks || i >= recent_from) ? 1 : 0;
    return ST_OK;
}

static void sw_reset(void *inst) {}

static const st_attention_ops sw_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = sw_configure,
    .cache_budget = sw_cache_budget,
    .plan = sw_plan,
    .retain = sw_retain,
    .on_entropy = NULL,
    .on_attention = NULL,
    .reset = sw_reset,
};

ST_PLUGIN(ST_KIND_ATTENTION, "sliding-window", "1.0.0",
          "Causal sliding-window attention with optional attention sinks",
          sw_create, sw_destroy, &sw_ops, NULL);
