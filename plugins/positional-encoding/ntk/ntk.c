/*
 * positional-encoding `ntk`: NTK-aware RoPE scaling (bloc97 2023, "NTK-Aware
 * Scaled RoPE allows LLaMA models to have extended (8k+) context size without
 * any fine-tuning and minimal perplexity degradation", r/LocalLLaMA). Instead
 * of squeezing positions, the base is raised so that the lowest frequency is
 * interpolated by about alpha while the highest ones are left almost as
 * trained:
 *
 *     base' = base * alpha^(d / (d - 2)),   inv_freq[i] = base'^(-2i/d)
 *
 * with d the model's rotary dimensions. The exponent makes the last pair
 * (i = d/2 - 1) exactly alpha times slower. With d = 2 the only pair has
 * frequency base'^0 = 1 whatever the base, so the table is the model's.
 */
#include <math.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct ntk_pe {
    const st_host_services *host;
    double alpha;
    double base;    /* 0 = the model's */
    float *inv_freq;
} ntk_pe;

static st_status ntk_create(const st_host_services *host, const msgpack_object *params,
                            void **inst, st_error *err)
{
    double alpha = 4.0, base = 0.0;
    st_status st = st_param_float(params, "alpha", &alpha);
    if (st != ST_OK && st != ST_E_NOT_FOUND)
        return host->error(err, ST_E_INVALID, "ntk: parameter alpha must be a number");
    st = st_param_float(params, "base", &base);
    if (st != ST_OK && st != ST_E_NOT_FOUND)
        return host->error(err, ST_E_INVALID, "ntk: parameter base must be a number");
    if (!(alpha >= 1.0 && alpha <= 1.0e6))
        return host->error(err, ST_E_RANGE,
                           "ntk: parameter alpha must be in [1, 1e6] (1 = the trained base), got %g",
                           alpha);
    if (!(base >= 0.0 && base <= 1.0e12))
        return host->error(err, ST_E_RANGE,
                           "ntk: parameter base must be in [0, 1e12] (0 = the model's), got %g", base);
    ntk_pe *p = host->calloc(host->host, 1, sizeof *p);
    if (!p)
        return host->error(err, ST_E_NOMEM, "ntk: out of memory");
    p->host = host;
    p->alpha = alpha;
    p->base = base;
    *inst = p;
    return ST_OK;
}

static void ntk_destroy(void *inst)
{
    ntk_pe *p = inst;
    if (!p)
        return;
    p->host->free(p->host->host, p->inv_freq);
    p->host->free(p->host->host, p);
}

static st_status ntk_configure(void *inst, const st_model_shape *shape, st_posenc_desc *out,
                               st_error *err)
{
    ntk_pe *p = inst;
    const st_host_services *h = p->host;
    if (!shape || !out)
        return h->error(err, ST_E_INVALID, "ntk: configure needs a model shape and a description");
    uint32_t d = shape->rope_dims;
    if (d == 0)
        return h->error(err, ST_E_INVALID,
                        "ntk: the model has no rotary dimensions (rope_dims 0); NTK-aware "
                        "scaling changes the RoPE base and cannot apply");
    if (d % 2 != 0)
        return h->error(err, ST_E_INVALID,
                        "ntk: the model's rope_dims %u is odd; rotary pairs need an even count", d);
    if (d > shape->head_dim)
        return h->error(err, ST_E_INVALID, "ntk: the model's rope_dims %u exceeds head_dim %u", d,
                        shape->head_dim);
    double base = p->base > 0.0 ? p->base : (double)shape->rope_base;
    if (!(base > 1.0) || !isfinite(base))
        return h->error(err, ST_E_INVALID,
                        "ntk: rope base %g is not above 1; set the base parameter", base);

    /* d == 2: the exponent d/(d-2) is undefined, but the single pair's
     * frequency base'^0 is 1 for any base', so the base is left alone. */
    double scaled = d > 2 ? base * pow(p->alpha, (double)d / (double)(d - 2)) : base;
    uint32_t n = d / 2;
    float *f = h->calloc(h->host, n, sizeof *f);
    if (!f)
        return h->error(err, ST_E_NOMEM, "ntk: out of memory");
    for (uint32_t i = 0; i < n; i++)
        f[i] = (float)pow(scaled, -2.0 * (double)i / (double)d);
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

static const st_posenc_ops ntk_ops = {
    .struct_size = sizeof(st_posenc_ops),
    .configure = ntk_configure,
    .update = NULL,
    .map_positions = NULL,
    .bias = NULL,
    .stretch_table = NULL,
};

ST_PLUGIN(ST_KIND_POSENC, "ntk", "1.0.0",
          "NTK-aware RoPE scaling (bloc97 2023): base raised to base * alpha^(d/(d-2))",
          ntk_create, ntk_destroy, &ntk_ops, NULL);
