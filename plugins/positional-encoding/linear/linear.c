/*
 * positional-encoding `linear`: RoPE position interpolation (Chen et al.
 * 2023, "Extending Context Window of Large Language Models via Positional
 * Interpolation"). Positions are divided by `scale` so that scale x the
 * trained length lands inside the trained range of angles. Dividing the
 * position is the same as dividing every frequency, so the plugin returns
 *
 *     inv_freq[i] = base^(-2i/d) / scale,   i = 0 .. d/2 - 1
 *
 * with d the model's rotary dimensions and base the model's (or `base`).
 */
#include "../rope_scaling.h"

typedef struct linear_pe {
    const st_host_services *host;
    double scale;
    double base;    /* 0 = the model's */
    float *inv_freq;
} linear_pe;

static st_status linear_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    double scale = st_param_float(params, "scale"), base = st_param_float(params, "base");
    linear_pe *p = host->calloc(host->host, 1, sizeof *p);
    if (!p)
        return host->error(err, ST_E_NOMEM, "linear: out of memory");
    p->host = host;
    p->scale = scale;
    p->base = base;
    *inst = p;
    return ST_OK;
}

static void linear_destroy(void *inst)
{
    linear_pe *p = inst;
    if (!p)
        return;
    p->host->free(p->host->host, p->inv_freq);
    p->host->free(p->host->host, p);
}

static st_status linear_configure(void *inst, const st_model_shape *shape, st_posenc_desc *out,
                                  st_error *err)
{
    linear_pe *p = inst;
    const st_host_services *h = p->host;
    uint32_t d = 0;
    double base = 0.0;
    st_status st = rope_scaling_shape(h, shape, out, "linear",
                                      "position interpolation rescales RoPE", p->base, &d, &base,
                                      err);
    if (st != ST_OK)
        return st;
    uint32_t n = d / 2;
    float *f = rope_scaling_table(h, "linear", n, err);
    if (!f)
        return ST_E_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        f[i] = (float)(pow(base, -2.0 * (double)i / (double)d) / p->scale);
    h->free(h->host, p->inv_freq);
    p->inv_freq = f;
    rope_scaling_describe(out, f, n, 1.0f);
    return ST_OK;
}

static const st_posenc_ops linear_ops = {
    .struct_size = sizeof(st_posenc_ops),
    .configure = linear_configure,
    .update = NULL,
    .map_positions = NULL,
    .bias = NULL,
    .stretch_table = NULL,
};

ST_PLUGIN(ST_KIND_POSENC, "linear", "1.0.0",
          "RoPE position interpolation (Chen et al. 2023): positions divided by scale",
          linear_create, linear_destroy, &linear_ops, NULL);
