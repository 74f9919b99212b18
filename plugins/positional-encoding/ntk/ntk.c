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
#include "../rope_scaling.h"

typedef struct ntk_pe {
    const st_host_services *host;
    double alpha;
    double base;    /* 0 = the model's */
    float *inv_freq;
} ntk_pe;

static st_status ntk_create(const st_host_services *host, const st_params *params,
                            void **inst, st_error *err)
{
    double alpha = st_param_float(params, "alpha"), base = st_param_float(params, "base");
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
    uint32_t d = 0;
    double base = 0.0;
    st_status st = rope_scaling_shape(h, shape, out, "ntk",
                                      "NTK-aware scaling changes the RoPE base", p->base, &d,
                                      &base, err);
    if (st != ST_OK)
        return st;
    /* d == 2: the exponent d/(d-2) is undefined, but the single pair's
     * frequency base'^0 is 1 for any base', so the base is left alone. */
    double scaled = d > 2 ? base * pow(p->alpha, (double)d / (double)(d - 2)) : base;
    uint32_t n = d / 2;
    float *f = rope_scaling_table(h, "ntk", n, err);
    if (!f)
        return ST_E_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        f[i] = (float)pow(scaled, -2.0 * (double)i / (double)d);
    h->free(h->host, p->inv_freq);
    p->inv_freq = f;
    rope_scaling_describe(out, f, n, 1.0f);
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
