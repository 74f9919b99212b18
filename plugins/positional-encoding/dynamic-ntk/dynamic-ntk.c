/*
 * positional-encoding `dynamic-ntk`: dynamic NTK-aware RoPE scaling (emozilla
 * 2023, after bloc97's NTK-aware scaling; the form of Hugging Face
 * transformers' "dynamic" rope_type, _compute_dynamic_ntk_parameters). The
 * base follows the current length: up to the trained length L the model's
 * own table is used; beyond it
 *
 *     alpha = factor * cur_len / L - (factor - 1)       (>= 1)
 *     alpha = min(alpha, max_alpha)                     (when max_alpha > 0)
 *     base' = base * alpha^(d / (d - 2)),   inv_freq[i] = base'^(-2i/d)
 *
 * With the default factor 1 this is alpha = max(1, cur_len / L). The table
 * is a pure function of cur_len, so it also shrinks back when a new, shorter
 * sequence starts. `update` reports a change only when a frequency differs.
 * The host re-rotates every cached key on a change, so `step` > 1 rounds
 * cur_len up to a multiple of step before the formula: the table then
 * changes once per step tokens instead of at every token past L.
 */
#include <string.h>

#include "../rope_scaling.h"

typedef struct dyn_ntk {
    const st_host_services *host;
    double factor;
    double max_alpha;        /* 0 = no cap */
    double base_param;       /* 0 = the model's */
    int64_t trained_param;   /* 0 = the model's n_ctx_train */
    uint32_t step;           /* cur_len rounded up to a multiple of this */
    /* Set by configure. */
    uint32_t d;
    double base;
    double trained;
    float *inv_freq;         /* d/2 entries, the table last handed out */
} dyn_ntk;

static st_status dyn_create(const st_host_services *host, const st_params *params,
                            void **inst, st_error *err)
{
    double factor = st_param_float(params, "factor"), max_alpha = st_param_float(params, "max_alpha");
    double base = st_param_float(params, "base");
    int64_t trained = st_param_int(params, "trained_length"), step = st_param_int(params, "step");
    /* plugin.yaml's range is [0, 1e6]; (0, 1) means nothing. */
    if (!(max_alpha == 0.0 || (max_alpha >= 1.0 && max_alpha <= 1.0e6)))
        return host->error(err, ST_E_RANGE,
                           "dynamic-ntk: parameter max_alpha must be 0 (no cap) or in [1, 1e6], got %g",
                           max_alpha);
    dyn_ntk *p = host->calloc(host->host, 1, sizeof *p);
    if (!p)
        return host->error(err, ST_E_NOMEM, "dynamic-ntk: out of memory");
    p->host = host;
    p->factor = factor;
    p->max_alpha = max_alpha;
    p->base_param = base;
    p->trained_param = trained;
    p->step = (uint32_t)step;
    *inst = p;
    return ST_OK;
}

static void dyn_destroy(void *inst)
{
    dyn_ntk *p = inst;
    if (!p)
        return;
    p->host->free(p->host->host, p->inv_freq);
    p->host->free(p->host->host, p);
}

/* The scaling factor for a sequence of cur_len tokens. */
static double dyn_alpha(const dyn_ntk *p, uint32_t cur_len)
{
    double len = ceil((double)cur_len / (double)p->step) * (double)p->step;
    double alpha = p->factor * len / p->trained - (p->factor - 1.0);
    if (!(alpha > 1.0))
        alpha = 1.0;
    if (p->max_alpha > 0.0 && alpha > p->max_alpha)
        alpha = p->max_alpha;
    return alpha;
}

static void dyn_fill_table(const dyn_ntk *p, double alpha, float *f)
{
    /* d == 2: the single pair's frequency is 1 for any base. */
    double scaled = p->d > 2 ? p->base * pow(alpha, (double)p->d / (double)(p->d - 2)) : p->base;
    for (uint32_t i = 0; i < p->d / 2; i++)
        f[i] = (float)pow(scaled, -2.0 * (double)i / (double)p->d);
}

static void dyn_describe(const dyn_ntk *p, st_posenc_desc *out)
{
    rope_scaling_describe(out, p->inv_freq, p->d / 2, 1.0f);
}

static st_status dyn_configure(void *inst, const st_model_shape *shape, st_posenc_desc *out,
                               st_error *err)
{
    dyn_ntk *p = inst;
    const st_host_services *h = p->host;
    uint32_t d = 0;
    double base = 0.0, trained = 0.0;
    st_status st = rope_scaling_shape(h, shape, out, "dynamic-ntk",
                                      "dynamic NTK scaling changes the RoPE base", p->base_param,
                                      &d, &base, err);
    if (st == ST_OK)
        st = rope_scaling_trained(h, shape, "dynamic-ntk", "trained_length",
                                  (double)p->trained_param, &trained, err);
    if (st != ST_OK)
        return st;
    float *f = rope_scaling_table(h, "dynamic-ntk", d / 2, err);
    if (!f)
        return ST_E_NOMEM;
    p->d = d;
    p->base = base;
    p->trained = trained;
    /* Nothing is cached yet: the model's own table (alpha 1). */
    dyn_fill_table(p, 1.0, f);
    h->free(h->host, p->inv_freq);
    p->inv_freq = f;
    dyn_describe(p, out);
    return ST_OK;
}

static st_status dyn_update(void *inst, uint32_t cur_len, st_posenc_desc *out, bool *changed,
                            st_error *err)
{
    dyn_ntk *p = inst;
    const st_host_services *h = p->host;
    if (!out || !changed)
        return h->error(err, ST_E_INVALID, "dynamic-ntk: update needs a description and a flag");
    *changed = false;
    if (!p->inv_freq)
        return h->error(err, ST_E_INVALID, "dynamic-ntk: update called before configure");
    uint32_t n = p->d / 2;
    float *f = rope_scaling_table(h, "dynamic-ntk", n, err);
    if (!f)
        return ST_E_NOMEM;
    dyn_fill_table(p, dyn_alpha(p, cur_len), f);
    if (memcmp(f, p->inv_freq, n * sizeof *f) == 0) {
        h->free(h->host, f);
    } else {
        /* The old table may be freed: the host drops it on a change. */
        h->free(h->host, p->inv_freq);
        p->inv_freq = f;
        *changed = true;
    }
    dyn_describe(p, out);
    return ST_OK;
}

static const st_posenc_ops dyn_ops = {
    .struct_size = sizeof(st_posenc_ops),
    .configure = dyn_configure,
    .update = dyn_update,
    .map_positions = NULL,
    .bias = NULL,
    .stretch_table = NULL,
};

ST_PLUGIN(ST_KIND_POSENC, "dynamic-ntk", "1.0.0",
          "Dynamic NTK-aware RoPE scaling: the base grows with the current length past the "
          "trained one",
          dyn_create, dyn_destroy, &dyn_ops, NULL);
