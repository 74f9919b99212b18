/*
 * attention `snapkv`: SnapKV (Li et al., 2024, "SnapKV: LLM Knows What You
 * are Looking for Before Generation"). Every layer and KV head keeps at
 * most `budget` slots: the observation window (the last `window` tokens of
 * each prompt block) and the budget - window earlier tokens that the
 * window's queries attend to most, their summed attention pooled along the
 * keys (`pooling`, `kernel` wide) so neighbours of a strong key stay
 * together. The selection itself is in snap_common.h, shared with
 * pyramidkv, which gives each layer its own budget.
 */
#include "../snap_common.h"

static st_status snap_budgets(snap *s, uint32_t n_layers, uint32_t n_ctx, st_error *err)
{
    (void)n_ctx;
    (void)err;
    for (uint32_t l = 0; l < n_layers; l++)
        s->layer_budget[l] = s->asked;
    return ST_OK;
}

static st_status snapkv_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    snap *s = host->calloc(host->host, 1, sizeof *s);
    if (!s)
        return host->error(err, ST_E_NOMEM, "snapkv: out of memory");
    st_status st = snap_parse(host, params, "snapkv", s, err);
    s->budget = s->asked;
    if (st == ST_OK && s->asked <= s->window)
        st = host->error(err, ST_E_RANGE, "snapkv: budget %u must exceed window %u (the "
                         "window is kept whole)", s->asked, s->window);
    if (st != ST_OK) {
        snap_destroy(s);
        return st;
    }
    *inst = s;
    return ST_OK;
}

ST_PLUGIN(ST_KIND_ATTENTION, "snapkv", "1.0.0",
          "SnapKV: per layer and KV head, the observation window plus the earlier tokens it "
          "attends to most (pooled)",
          snapkv_create, snap_destroy, &snap_ops, NULL);
