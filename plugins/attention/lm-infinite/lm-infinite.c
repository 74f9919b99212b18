/*
 * attention `lm-infinite`: LM-Infinite's Lambda-shaped attention (Han et
 * al., 2023, "LM-Infinite: Zero-Shot Extreme Length Generalization for
 * Large Language Models"). A query sees
 *   - the local branch: keys at true distance 0 .. n_local-1, rotated by
 *     their true distance, as in training;
 *   - the global branch: the first n_global tokens of the sequence, when
 *     they are outside the local branch (distance >= n_local), scored as if
 *     at the one distance `global_dist` (default n_local, the paper's
 *     distance limit): keys unrotated, the query rotated by that distance.
 * Both branches share one softmax (the host's). No relative distance the
 * model sees ever exceeds what it was trained on, and the cache keeps only
 * the global tokens and the last n_local, so memory is flat and blocked
 * prefill costs O(n).
 */
#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct lm_infinite {
    const st_host_services *host;
    uint32_t n_global;
    uint32_t n_local_param;     /* 0 = the model's trained length */
    uint32_t global_dist_param; /* 0 = n_local */
    uint32_t evict_batch_param; /* 0 = automatic */
    /* Resolved by configure. */
    bool configured;
    uint32_t n_local;
    uint32_t global_dist;
    uint32_t limit;             /* slots retain keeps: n_global + n_local, capped by the context */
    uint32_t cap;               /* slots held before retain evicts: limit + evict_batch - 1 */
} lm_infinite;

static st_status lmi_create(const st_host_services *host, const st_params *params,
                            void **inst, st_error *err)
{
    uint32_t n_global = (uint32_t)st_param_int(params, "n_global");
    uint32_t n_local = (uint32_t)st_param_int(params, "n_local");
    uint32_t global_dist = (uint32_t)st_param_int(params, "global_dist");
    uint32_t evict_batch = (uint32_t)st_param_int(params, "evict_batch");
    lm_infinite *li = host->calloc(host->host, 1, sizeof *li);
    if (!li)
        return host->error(err, ST_E_NOMEM, "lm-infinite: out of memory");
    li->host = host;
    li->n_global = n_global;
    li->n_local_param = n_local;
    li->global_dist_param = global_dist;
    li->evict_batch_param = evict_batch;
    *inst = li;
    return ST_OK;
}

static void lmi_destroy(void *inst)
{
    lm_infinite *li = inst;
    if (li)
        li->host->free(li->host->host, li);
}

static st_status lmi_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                               int32_t *weights_layer, st_error *err)
{
    lm_infinite *li = inst;
    *needs = 0;
    *weights_layer = -1;
    uint32_t n_local = li->n_local_param ? li->n_local_param : shape->n_ctx_train;
    if (n_local == 0)
        return li->host->error(err, ST_E_INVALID,
                               "lm-infinite: the model declares no trained context length; "
                               "set n_local");
    /* The context is the most tokens the caller will feed; a cache that
     * never holds more than it loses nothing within it (see retain). */
    uint64_t need = (uint64_t)li->n_global + n_local;
    li->limit = shape->n_ctx && need > shape->n_ctx ? shape->n_ctx : (uint32_t)need;
    li->n_local = n_local;
    li->global_dist = li->global_dist_param ? li->global_dist_param : n_local;
    /* Evicting one slot per token makes the host compact the whole window
     * at every token (8,192 slots x 30 layers: ~0.5 GB moved per token for
     * SmolLM2). Slots past the window are never visible (the plan goes by
     * true distance), so they may wait and go in batches. */
    uint32_t batch = li->evict_batch_param ? li->evict_batch_param
                     : n_local >= 1024        ? n_local / 32
                                              : 1;
    uint64_t cap = (uint64_t)li->limit + batch - 1;
    li->cap = shape->n_ctx && cap > shape->n_ctx ? shape->n_ctx : (uint32_t)cap;
    if (li->cap < li->limit)
        li->cap = li->limit;
    li->configured = true;
    return ST_OK;
}

static uint32_t lmi_cache_budget(void *inst, uint32_t n_ctx)
{
    lm_infinite *li = inst;
    if (!li->configured)
        return n_ctx;
    uint64_t budget = li->cap;
    if (n_ctx > 0 && budget >= n_ctx)
        return n_ctx;
    return (uint32_t)budget;
}

static st_status lmi_plan(void *inst, const st_attn_query *q,
                          const st_attn_plan_builder *builder, st_error *err)
{
    lm_infinite *li = inst;
    const st_kv_view *kv = q->kv;
    if (!li->configured)
        return li->host->error(err, ST_E_INVALID, "lm-infinite: plan before configure");
    if (!kv || q->n_q == 0 || kv->n_slots == 0)
        return ST_OK;
    int32_t min_qpos = st_attn_min_q_pos(q);

    /* The local branch: slots before the earliest key any query of the
     * block can reach are left out of the range. */
    st_attn_range local = {
        .head = ST_ALL_HEADS,
        .k_begin = st_kv_first_slot_at(kv, (int64_t)min_qpos - (int64_t)li->n_local + 1),
        .k_end = kv->n_slots,
        .min_dist = 0,
        .max_dist = (int32_t)(li->n_local - 1),
        .pos_mode = ST_POS_TRUE,
    };
    if (local.k_begin < local.k_end) {
        st_status st = builder->add_range(builder->host, &local);
        if (st != ST_OK)
            return li->host->error(err, st, "lm-infinite: the host refused the local range");
    }

    /* The global branch: the slots holding the sequence's first n_global
     * tokens (they stay at the front of the cache), only where the local
     * branch does not reach, so no (query, key) pair is visible twice. */
    uint32_t n_glob = st_kv_first_slot_at(kv, li->n_global);
    if (n_glob > 0) {
        st_attn_range global = {
            .head = ST_ALL_HEADS,
            .k_begin = 0,
            .k_end = n_glob,
            .min_dist = (int32_t)li->n_local,
            .max_dist = ST_DIST_MAX,
            .pos_mode = ST_POS_FIXED,
            .fixed_dist = (int32_t)li->global_dist,
        };
        st_status st = builder->add_range(builder->host, &global);
        if (st != ST_OK)
            return li->host->error(err, st, "lm-infinite: the host refused the global range");
    }
    return ST_OK;
}

/* Keep the global tokens and the last n_local slots: the next query (one
 * position on) reaches back only n_local - 1, so nothing dropped is ever
 * visible again. At most n_global + n_local slots remain; nothing is
 * dropped while the cache holds no more than `cap` (evict_batch). When the
 * context is smaller than that, the cache is capped at the context by
 * keeping fewer recent slots; that can only matter once the input outgrows the context
 * (until then the cache never holds more tokens than there are). */
static st_status lmi_retain(void *inst, const st_kv_view *kv, uint32_t n_new, uint8_t *keep,
                            st_error *err)
{
    lm_infinite *li = inst;
    if (!li->configured)
        return li->host->error(err, ST_E_INVALID, "lm-infinite: retain before configure");
    uint32_t n = kv->n_slots;
    if (n <= li->cap) {
        for (uint32_t i = 0; i < n; i++)
            keep[i] = 1;
        return ST_OK;
    }
    uint32_t n_glob = st_kv_first_slot_at(kv, li->n_global);
    if (n_glob > li->limit - 1)
        n_glob = li->limit - 1; /* room for the newest slot */
    uint32_t recent = li->limit - n_glob < li->n_local ? li->limit - n_glob : li->n_local;
    uint32_t recent_from = n > recent ? n - recent : 0;
    for (uint32_t i = 0; i < n; i++)
        keep[i] = (i < n_glob || i >= recent_from) ? 1 : 0;
    return ST_OK;
}

/* Nothing is kept per sequence: the plan and retention read the cache. */
static void lmi_reset(void *inst) {}

static const st_attention_ops lmi_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = lmi_configure,
    .cache_budget = lmi_cache_budget,
    .plan = lmi_plan,
    .retain = lmi_retain,
    .on_entropy = NULL,
    .on_attention = NULL,
    .reset = lmi_reset,
};

ST_PLUGIN(ST_KIND_ATTENTION, "lm-infinite", "1.0.0",
          "LM-Infinite Lambda-shaped attention: global starting tokens + local window",
          lmi_create, lmi_destroy, &lmi_ops, NULL);
