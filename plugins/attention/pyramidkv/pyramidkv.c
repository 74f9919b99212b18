/*
 * attention `pyramidkv`: PyramidKV (Cai et al., 2024, "PyramidKV: Dynamic
 * KV Cache Compression based on Pyramidal Information Funneling"). SnapKV's
 * selection (snap_common.h: observation window plus pooled attention) with
 * a budget per layer that shrinks linearly with depth, as the paper's
 * code sets it: for an average of `budget` slots per layer, the top layer
 * keeps (budget - window) / beta + window, the bottom one
 * 2 (budget - window) - (budget - window) / beta + window, and layer l
 * the bottom's minus l steps of (bottom - top) / (n_layers - 1), so the
 * layers together hold about n_layers x budget slots per KV head.
 */
#include "../snap_common.h"

typedef struct pyramid {
    snap s;             /* first: the shared ops take a snap * */
    uint32_t beta;
} pyramid;

static st_status snap_budgets(snap *s, uint32_t n_layers, uint32_t n_ctx, st_error *err)
{
    pyramid *p = (pyramid *)s;
    (void)n_ctx;
    (void)err;
    uint32_t avg = s->asked - s->window;
    uint32_t min = avg / p->beta, max = 2 * avg - min;
    uint32_t steps = n_layers > 1 ? (max - min) / (n_layers - 1) : 0;
    for (uint32_t l = 0; l < n_layers; l++)
        s->layer_budget[l] = max - l * steps + s->window;
    return ST_OK;
}

static st_status pyramidkv_create(const st_host_services *host, const st_params *params,
                                  void **inst, st_error *err)
{
    pyramid *p = host->calloc(host->host, 1, sizeof *p);
    if (!p)
        return host->error(err, ST_E_NOMEM, "pyramidkv: out of memory");
    st_status st = snap_parse(host, params, "pyramidkv", &p->s, err);
    p->beta = (uint32_t)st_param_int(params, "beta");
    if (st == ST_OK && p->s.asked <= p->s.window)
        st = host->error(err, ST_E_RANGE, "pyramidkv: budget %u must exceed window %u (every "
                         "layer keeps the window whole)", p->s.asked, p->s.window);
    if (st != ST_OK) {
        snap_destroy(p);
        return st;
    }
    *inst = p;
    return ST_OK;
}

ST_PLUGIN(ST_KIND_ATTENTION, "pyramidkv", "1.0.0",
          "PyramidKV: SnapKV's selection with per-layer budgets shrinking with depth",
          pyramidkv_create, snap_destroy, &snap_ops, NULL);
