/*
 * tests/bad/libs/attention_retain_fails/attention.c - causal attention
 * whose retain() always fails with its own reason: the engine must pass
 * that reason on, not overwrite it (tests/engine/test_engine_plugins.c).
 */
#include <stretch/plugin.h>

#define REASON "bad-retain refuses on purpose (slot budget 7)"

static st_status retain_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    (void)params;
    (void)err;
    *inst = (void *)host;
    return ST_OK;
}

static void retain_destroy(void *inst)
{
    (void)inst;
}

static st_status retain_configure(void *inst, const st_model_shape *shape, uint32_t *needs,
                                  int32_t *weights_layer, st_error *err)
{
    (void)inst;
    (void)shape;
    (void)err;
    *needs = 0;
    *weights_layer = -1;
    return ST_OK;
}

static uint32_t retain_cache_budget(void *inst, uint32_t n_ctx)
{
    (void)inst;
    (void)n_ctx;
    return 0;
}

static st_status retain_plan(void *inst, const st_attn_query *q,
                             const st_attn_plan_builder *builder, st_error *err)
{
    const st_host_services *host = inst;
    if (!q->kv || q->kv->n_slots == 0 || q->n_q == 0)
        return ST_OK;
    st_attn_range all = {.head = ST_ALL_HEADS, .k_begin = 0, .k_end = q->kv->n_slots,
                         .min_dist = 0, .max_dist = ST_DIST_MAX, .pos_mode = ST_POS_TRUE};
    st_status st = builder->add_range(builder->host, &all);
    return st == ST_OK ? ST_OK : host->error(err, st, "bad-retain: range refused");
}

static st_status retain_retain(void *inst, const st_kv_view *kv, uint32_t n_new, uint8_t *keep,
                               st_error *err)
{
    const st_host_services *host = inst;
    (void)kv;
    (void)n_new;
    (void)keep;
    return host->error(err, ST_E_PLUGIN, REASON);
}

static const st_attention_ops retain_ops = {
    .struct_size = sizeof(st_attention_ops),
    .configure = retain_configure,
    .cache_budget = retain_cache_budget,
    .plan = retain_plan,
    .retain = retain_retain,
};

ST_PLUGIN(ST_KIND_ATTENTION, "bad-retain", "0.0.1",
          "engine fixture: retain always fails", retain_create, retain_destroy, &retain_ops,
          NULL);
