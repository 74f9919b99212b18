/*
 * attention `streaming`: StreamingLLM's attention sinks (Xiao et al., 2023,
 * "Efficient Streaming Language Models with Attention Sinks"). The cache
 * holds the first `sinks` tokens and the `window` most recent ones, and
 * positions are re-assigned within the cache: the sinks sit at cache
 * positions 0 .. sinks-1, the recent tokens right after them, so a query
 * with a full window sits at cache position sinks + window - 1.
 *
 * How that maps onto the plan, exactly for every query of a block (a
 * prefill block appends up to 512 queries at once, and a single "all slots
 * at slot positions" range would let its later queries see up to 511 more
 * keys, at larger distances, than the method allows):
 *   - recent keys: true distance 0 .. window-1. The window is contiguous in
 *     the sequence, so its cache distances equal the true ones (ST_POS_TRUE
 *     is the same rotation as re-assigned positions);
 *   - sink j (slot j, position j) outside the window: while the query's
 *     true position is at most sinks + window - 1 nothing has been evicted
 *     yet and the cache position is the true one (ST_POS_TRUE); beyond
 *     that the query sits at cache position sinks + window - 1 and the sink
 *     at j, so it is scored at the fixed distance sinks + window - 1 - j
 *     (ST_POS_FIXED). Two ranges per sink, split on the true distance.
 */
#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct streaming {
    const st_host_services *host;
    uint32_t sinks;
    uint32_t window_param; /* 0 = n_ctx_train - sinks */
    bool configured;
    uint32_t window;
    uint32_t limit; /* slots retain may keep: the budget, capped by the context */
} streaming;

static st_status stream_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    uint32_t sinks = (uint32_t)st_param_int(params, "sinks");
    uint32_t window = (uint32_t)st_param_int(params, "window");
    streaming *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "streaming: out of memory");
    s->host = host;
    s->sinks = sinks;
    s->window_param = window;
    *inst = s;
    return ST_OK;
}

static void stream_destroy(void *inst)
{
    streaming *s = inst;
    if (s)
        s->host->free(s->host->host, s);
}

static st_status stream_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                                  int32_t *weights_layer, st_error *err)
{
    streaming *s = inst;
    *needs = 0;
    *weights_layer = -1;
    uint32_t window = s->window_param;
    if (window == 0) {
        /* The whole cache then spans the trained length: no position the
         * model sees exceeds what it was trained on. */
        if (shape->n_ctx_train <= s->sinks)
            return s->host->error(err, ST_E_INVALID,
                                  "streaming: the model's trained context (%u) leaves no room "
                                  "for a window after %u sinks; set window",
                                  shape->n_ctx_train, s->sinks);
        window = shape->n_ctx_train - s->sinks;
    }
    /* The context is the most tokens the caller will feed; a cache that
     * never holds more than it loses nothing within it (see retain). */
    uint64_t need = (uint64_t)s->sinks + window;
    s->limit = shape->n_ctx && need > shape->n_ctx ? shape->n_ctx : (uint32_t)need;
    s->window = window;
    s->configured = true;
    return ST_OK;
}

static uint32_t stream_cache_budget(void *inst, uint32_t n_ctx)
{
    streaming *s = inst;
    if (!s->configured)
        return n_ctx;
    uint64_t budget = (uint64_t)s->sinks + s->window;
    if (n_ctx > 0 && budget >= n_ctx)
        return n_ctx;
    return (uint32_t)budget;
}

static st_status add(streaming *s, const st_attn_plan_builder *b, const st_attn_range *r,
                     const char *what, st_error *err)
{
    st_status st = b->add_range(b->host, r);
    if (st != ST_OK)
        return s->host->error(err, st, "streaming: the host refused the %s range", what);
    return ST_OK;
}

static st_status stream_plan(void *inst, const st_attn_query *q,
                             const st_attn_plan_builder *builder, st_error *err)
{
    streaming *s = inst;
    const st_kv_view *kv = q->kv;
    if (!s->configured)
        return s->host->error(err, ST_E_INVALID, "streaming: plan before configure");
    if (!kv || q->n_q == 0 || kv->n_slots == 0)
        return ST_OK;
    int32_t min_qpos = st_attn_min_q_pos(q);

    st_attn_range recent = {
        .head = ST_ALL_HEADS,
        .k_begin = st_kv_first_slot_at(kv, (int64_t)min_qpos - (int64_t)s->window + 1),
        .k_end = kv->n_slots,
        .min_dist = 0,
        .max_dist = (int32_t)(s->window - 1),
        .pos_mode = ST_POS_TRUE,
    };
    if (recent.k_begin < recent.k_end) {
        st_status st = add(s, builder, &recent, "recent", err);
        if (st != ST_OK)
            return st;
    }

    /* The sinks are the cache's first slots; only their part outside the
     * window (distance >= window) is added here, so nothing is seen twice. */
    int64_t full = (int64_t)s->sinks + s->window - 1; /* a full cache's query position */
    for (uint32_t j = 0; j < s->sinks && j < kv->n_slots; j++) {
        int64_t p = kv->pos[j];
        if (p >= (int64_t)s->sinks)
            break; /* not a sink: the sequence did not start at 0 */
        int64_t last_true = full - p; /* true distance of the sink to a query at `full` */
        if (last_true > ST_DIST_MAX)
            last_true = ST_DIST_MAX;
        st_attn_range early = {
            .head = ST_ALL_HEADS, .k_begin = j, .k_end = j + 1,
            .min_dist = (int32_t)s->window, .max_dist = (int32_t)last_true,
            .pos_mode = ST_POS_TRUE,
        };
        if (early.min_dist <= early.max_dist) {
            st_status st = add(s, builder, &early, "sink", err);
            if (st != ST_OK)
                return st;
        }
        if (last_true < ST_DIST_MAX) {
            st_attn_range late = {
                .head = ST_ALL_HEADS, .k_begin = j, .k_end = j + 1,
                .min_dist = (int32_t)(last_true + 1 > s->window ? last_true + 1 : s->window),
                .max_dist = ST_DIST_MAX,
                .pos_mode = ST_POS_FIXED,
                .fixed_dist = (int32_t)(full - j),
            };
            st_status st = add(s, builder, &late, "sink", err);
            if (st != ST_OK)
                return st;
        }
    }
    return ST_OK;
}

/* Keep the sinks (the first slots) and the last `window` slots: the next
 * query reaches back only window - 1, so nothing dropped is seen again.
 * When the context is smaller than sinks + window, the cache is capped at
 * the context by keeping fewer recent slots; that can only matter once the
 * input outgrows the context. */
static st_status stream_retain(void *inst, const st_kv_view *kv, uint32_t n_new, uint8_t *keep,
                               st_error *err)
{
    streaming *s = inst;
    if (!s->configured)
        return s->host->error(err, ST_E_INVALID, "streaming: retain before configure");
    uint32_t n = kv->n_slots;
    uint32_t sinks = s->sinks < s->limit - 1 ? s->sinks : s->limit - 1; /* room for the newest */
    uint32_t recent = s->limit - sinks < s->window ? s->limit - sinks : s->window;
    uint32_t recent_from = n > recent ? n - recent : 0;
    for (uint32_t i = 0; i < n; i++)
        keep[i] = (i < sinks || i >= recent_from) ? 1 : 0;
    return ST_OK;
}

/* Nothing is kept per sequence: the plan and retention read the cache. */
static void stream_reset(void *inst) {}

static const st_attention_ops stream_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = stream_configure,
    .cache_budget = stream_cache_budget,
    .plan = stream_plan,
    .retain = stream_retain,
    .on_entropy = NULL,
    .on_attention = NULL,
    .reset = stream_reset,
};

ST_PLUGIN(ST_KIND_ATTENTION, "streaming", "1.0.0",
          "StreamingLLM attention sinks: first tokens + recent window, positions within the cache",
          stream_create, stream_destroy, &stream_ops, NULL);
