/*
 * attention `dense`: plain causal attention. Every query sees every key at
 * or before its own position, at its true distance, and the KV cache keeps
 * everything: the model as trained, and the baseline every other attention
 * strategy is measured against.
 */
#include <stretch/plugin.h>

typedef struct dense {
    const st_host_services *host;
} dense;

static st_status dense_create(const st_host_services *host, const st_params *params,
                              void **inst, st_error *err)
{
    dense *d = host->calloc(host->host, 1, sizeof *d);
    if (!d)
        return host->error(err, ST_E_NOMEM, "dense: out of memory");
    d->host = host;
    *inst = d;
    return ST_OK;
}

static void dense_destroy(void *inst)
{
    dense *d = inst;
    if (d)
        d->host->free(d->host->host, d);
}

static st_status dense_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                                 int32_t *weights_layer, st_error *err)
{
    /* Full causal attention keeps no state: a request may start from the
     * previous one's cached prompt. */
    *needs = ST_ATTN_PREFIX_REUSE;
    *weights_layer = -1;
    return ST_OK;
}

static uint32_t dense_cache_budget(void *inst, uint32_t n_ctx)
{
    return 0; /* as many slots as the context */
}

static st_status dense_plan(void *inst, const st_attn_query *q,
                            const st_attn_plan_builder *builder, st_error *err)
{
    dense *d = inst;
    if (!q->kv || q->kv->n_slots == 0 || q->n_q == 0)
        return ST_OK;
    /* min_dist 0 is the causal mask: keys after the query are not seen. */
    st_attn_range all = {
        .head = ST_ALL_HEADS,
        .k_begin = 0,
        .k_end = q->kv->n_slots,
        .min_dist = 0,
        .max_dist = ST_DIST_MAX,
        .pos_mode = ST_POS_TRUE,
        .fixed_dist = 0,
    };
    st_status st = builder->add_range(builder->host, &all);
    if (st != ST_OK)
        return d->host->error(err, st, "dense: the host refused the causal range");
    return ST_OK;
}

static void dense_reset(void *inst) {}

static const st_attention_ops dense_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = dense_configure,
    .cache_budget = dense_cache_budget,
    .plan = dense_plan,
    .retain = NULL,
    .on_entropy = NULL,
    .on_attention = NULL,
    .reset = dense_reset,
};

ST_PLUGIN(ST_KIND_ATTENTION, "dense", "1.0.0",
          "Full causal attention; the KV cache keeps every token",
          dense_create, dense_destroy, &dense_ops, NULL);
