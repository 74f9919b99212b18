/*
 * attention `self-extend`: SelfExtend (Jin et al., 2024, "LLM Maybe LongLM:
 * Self-Extend LLM Context Window Without Tuning"). Two attentions share one
 * softmax per query:
 *   - neighbour attention: keys at true distance d < window are scored at d,
 *     as in training (ST_POS_TRUE);
 *   - grouped attention: farther keys are scored at the grouped distance
 *     floor(q/G) - floor(k/G) + (W - W/G) (ST_POS_GROUPED): the published
 *     implementation rotates the query at q // G + W - W / G and the key at
 *     k // G, so the grouped distance continues the neighbour distances
 *     (at d = W it is about W - W/G + 1 .. W) and grows G times slower.
 * The longest relative position at context L is about (L - W)/G + W, so a
 * model trained at L_train reaches (L_train - W) * G + W tokens. Every key
 * stays in the cache (no retention): the method changes positions only.
 *
 * The grouped mode needs a 1.4 host (add_range2); plan fails with a clear
 * message on an older one.
 */
#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct self_extend {
    const st_host_services *host;
    uint32_t group;
    uint32_t window;
} self_extend;

static st_status se_create(const st_host_services *host, const st_params *params, void **inst,
                           st_error *err)
{
    int64_t group = st_param_int(params, "group");
    int64_t window = st_param_int(params, "window");
    if (group < 1 || window < 1)
        return host->error(err, ST_E_INVALID,
                           "self-extend: params group %lld and window %lld: expected both >= 1",
                           (long long)group, (long long)window);
    if (window % group)
        return host->error(err, ST_E_INVALID,
                           "self-extend: param window %lld is not a multiple of param group "
                           "%lld (the query's grouped position floor(q/G) + W - W/G must be a "
                           "whole number); try window %lld",
                           (long long)window, (long long)group,
                           (long long)((window + group - 1) / group * group));
    self_extend *se = host->calloc(host->host, 1, sizeof *se);
    if (!se)
        return host->error(err, ST_E_NOMEM, "self-extend: out of memory");
    se->host = host;
    se->group = (uint32_t)group;
    se->window = (uint32_t)window;
    *inst = se;
    return ST_OK;
}

static void se_destroy(void *inst)
{
    self_extend *se = inst;
    if (se)
        se->host->free(se->host->host, se);
}

static st_status se_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                              int32_t *weights_layer, st_error *err)
{
    (void)inst;
    (void)shape;
    (void)err;
    *needs = 0;
    *weights_layer = -1;
    return ST_OK;
}

static uint32_t se_cache_budget(void *inst, uint32_t n_ctx)
{
    (void)inst;
    (void)n_ctx;
    return 0; /* every key stays */
}

static int32_t max_q_pos(const st_attn_query *q)
{
    int32_t m = q->q_pos[0];
    for (uint32_t i = 1; i < q->n_q; i++)
        if (q->q_pos[i] > m)
            m = q->q_pos[i];
    return m;
}

static st_status se_plan(void *inst, const st_attn_query *q, const st_attn_plan_builder *b,
                         st_error *err)
{
    self_extend *se = inst;
    const st_kv_view *kv = q->kv;
    if (!kv || q->n_q == 0 || kv->n_slots == 0)
        return ST_OK;
    if (!ST_ATTN_BUILDER_HAS_RANGE2(b))
        return se->host->error(err, ST_E_ABI,
                               "self-extend: the host's plan builder has no add_range2 "
                               "(grouped positions need a host with plugin ABI 1.4 or later)");
    int64_t W = se->window;
    int64_t q_lo = st_attn_min_q_pos(q), q_hi = max_q_pos(q);

    /* Neighbours: keys within W-1 of some query of the block. */
    st_attn_range2 neighbour = {
        .struct_size = sizeof neighbour,
        .head = ST_ALL_HEADS,
        .k_begin = st_kv_first_slot_at(kv, q_lo - W + 1),
        .k_end = kv->n_slots,
        .min_dist = 0,
        .max_dist = (int32_t)(W - 1),
        .pos_mode = ST_POS_TRUE,
    };
    if (neighbour.k_begin < neighbour.k_end) {
        st_status st = b->add_range2(b->host, &neighbour);
        if (st != ST_OK)
            return se->host->error(err, st, "self-extend: the host refused the neighbour range");
    }
    /* Grouped: keys W or more behind some query, i.e. at positions up to
     * q_hi - W; the distance limits keep each pair in exactly one range. */
    st_attn_range2 grouped = {
        .struct_size = sizeof grouped,
        .head = ST_ALL_HEADS,
        .k_begin = 0,
        .k_end = st_kv_first_slot_at(kv, q_hi - W + 1),
        .min_dist = (int32_t)W,
        .max_dist = ST_DIST_MAX,
        .pos_mode = ST_POS_GROUPED,
        .group = se->group,
        .group_offset = (int32_t)(W - W / se->group),
    };
    if (grouped.k_begin < grouped.k_end) {
        st_status st = b->add_range2(b->host, &grouped);
        if (st != ST_OK)
            return se->host->error(err, st, "self-extend: the host refused the grouped range");
    }
    return ST_OK;
}

static void se_reset(void *inst)
{
    (void)inst;
}

static const st_attention_ops se_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = se_configure,
    .cache_budget = se_cache_budget,
    .plan = se_plan,
    .retain = NULL,
    .on_entropy = NULL,
    .on_attention = NULL,
    .reset = se_reset,
};

ST_PLUGIN(ST_KIND_ATTENTION, "self-extend", "1.0.0",
          "SelfExtend: neighbour window at true distances, grouped distances beyond, no "
          "fine-tuning",
          se_create, se_destroy, &se_ops, NULL);
