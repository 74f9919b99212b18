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
#include <math.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct linear_pe {
    const st_host_services *host;
    double scale;
    double base;    /* 0 = the model's */
    float *inv_freq;
} linear_pe;

static st_status linear_create(const st_host_services *host, const msgpack_object *params,
                               void **inst, st_error *err)
{
    double scale = 4.0, base = 0.0;
    st_status st = st_param_float(params, "scale", &scale);
    if (st != ST_OK && st != ST_E_NOT_FOUND)
        return host->error(err, ST_E_INVALID, "linear: parameter scale must be a number");
    st = st_param_float(params, "base", &base);
    if (st != ST_OK && st != ST_E_NOT_FOUND)
        return host->error(err, ST_E_INVALID, "linear: parameter base must be a number");
    if (!(scale >= 1.0 && scale <= 1.0e6))
        return host->error(err, ST_E_RANGE,
                           "linear: parameter scale must be in [1, 1e6] (1 = no interpolation), "
                           "got %g", scale);
    if (!(base >= 0.0 && base <= 1.0e12))
        return host->error(err, ST_E_RANGE,
                           "linear: parameter base must be in [0, 1e12] (0 = the model's), got %g",
                           base);
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
    if (!shape || !out)
        return h->error(err, ST_E_INVALID, "linear: configure needs a model shape and a description");
    uint32_t d = shape->rope_dims;
    if (d == 0)
        return h->error(err, ST_E_INVALID,
                        "linear: the model has no rotary dimensions (rope_dims 0); position "
                        "interpolation rescales RoPE and cannot apply");
    if (d % 2 != 0)
        return h->error(err, ST_E_INVALID,
                        "linear: the model's rope_dims %u is odd; rotary pairs need an even count", d);
    if (d > shape->head_dim)
        return h->error(err, ST_E_INVALID, "linear: the model's rope_dims %u exceeds head_dim %u",
                        d, shape->head_dim);
    double base = p->base > 0.0 ? p->base : (double)shape->rope_base;
    if (!(base > 1.0) || !isfinite(base))
        return h->error(err, ST_E_INVALID,
                        "linear: rope base %g is not above 1; set the base parameter", base);

    uint32_t n = d / 2;
    float *f = h->calloc(h->host, n, sizeof *f);
    if (!f)
        return h->error(err, ST_E_NOMEM, "linear: out of memory");
    for (uint32_t i = 0; i < n; i++)
        f[i] = (float)(pow(base, -2.0 * (double)i / (double)d) / p->scale);
    h->free(h->host, p->inv_freq);
    p->inv_freq = f;

    out->struct_size = sizeof *out;
    out->flags = ST_POSENC_ROTARY;
    out->inv_freq = p->inv_freq;
    out->n_freq = n;
    out->rotary_scale = 1.0f;
    out->attn_temperature = 1.0f;
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
