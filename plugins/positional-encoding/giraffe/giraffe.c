/*
 * positional-encoding `giraffe`: the truncated rotary basis of Pal et al.
 * 2023, "Giraffe: Adventures in Expanding Context Lengths in LLMs". With
 * freq_i = base^(-2i/d) and the cutoff b = 2 pi / T (the frequency whose
 * wavelength is exactly T tokens):
 *
 *   freq_i >= b              -> freq_i (kept: a full turn fits in T)
 *   a <= freq_i < b          -> rho    (one fixed slow frequency)
 *   freq_i < a               -> 0      (not rotated)
 *
 * with a = b * low_ratio (default b/8) and rho = 2 pi / (16 T) unless the
 * `rho` parameter sets it. T defaults to the trained length. The paper
 * fine-tunes the model with this basis; without that it is a baseline.
 */
#include "../rope_scaling.h"

typedef struct giraffe_pe {
    const st_host_services *host;
    double T;           /* 0 = the model's n_ctx_train */
    double rho;         /* 0 = 2 pi / (16 T) */
    double low_ratio;   /* a = b * low_ratio */
    double base_param;  /* 0 = the model's */
    float *inv_freq;
} giraffe_pe;

static st_status giraffe_create(const st_host_services *host, const st_params *params,
                                void **inst, st_error *err)
{
    double T = st_param_float(params, "T"), rho = st_param_float(params, "rho");
    double low_ratio = st_param_float(params, "low_ratio"), base = st_param_float(params, "base");
    /* plugin.yaml's range is [0, 1e9]; (0, 1) tokens means nothing. */
    if (!(T == 0.0 || (T >= 1.0 && T <= 1.0e9)))
        return host->error(err, ST_E_RANGE,
                           "giraffe: parameter T must be 0 (the trained length) or in [1, 1e9] "
                           "tokens, got %g", T);
    giraffe_pe *p = host->calloc(host->host, 1, sizeof *p);
    if (!p)
        return host->error(err, ST_E_NOMEM, "giraffe: out of memory");
    p->host = host;
    p->T = T;
    p->rho = rho;
    p->low_ratio = low_ratio;
    p->base_param = base;
    *inst = p;
    return ST_OK;
}

static void giraffe_destroy(void *inst)
{
    giraffe_pe *p = inst;
    if (!p)
        return;
    p->host->free(p->host->host, p->inv_freq);
    p->host->free(p->host->host, p);
}

static st_status giraffe_configure(void *inst, const st_model_shape *shape, st_posenc_desc *out,
                                   st_error *err)
{
    giraffe_pe *p = inst;
    const st_host_services *h = p->host;
    uint32_t d = 0;
    double base = 0.0, T = 0.0;
    st_status st = rope_scaling_shape(h, shape, out, "giraffe",
                                      "the truncated basis modifies RoPE", p->base_param, &d,
                                      &base, err);
    if (st == ST_OK)
        st = rope_scaling_trained(h, shape, "giraffe", "T", p->T, &T, err);
    if (st != ST_OK)
        return st;

    double b = 2.0 * M_PI / T;
    double a = b * p->low_ratio;
    double rho = p->rho > 0.0 ? p->rho : 2.0 * M_PI / (16.0 * T);
    uint32_t n = d / 2;
    float *f = rope_scaling_table(h, "giraffe", n, err);
    if (!f)
        return ST_E_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        double freq = pow(base, -2.0 * (double)i / (double)d);
        f[i] = (float)(freq >= b ? freq : freq >= a ? rho : 0.0);
    }
    h->free(h->host, p->inv_freq);
    p->inv_freq = f;
    rope_scaling_describe(out, f, n, 1.0f);
    return ST_OK;
}

static const st_posenc_ops giraffe_ops = {
    .struct_size = sizeof(st_posenc_ops),
    .configure = giraffe_configure,
    .update = NULL,
    .map_positions = NULL,
    .bias = NULL,
    .stretch_table = NULL,
};

ST_PLUGIN(ST_KIND_POSENC, "giraffe", "1.0.0",
          "Giraffe truncated RoPE basis (Pal et al. 2023): slow frequencies set to rho or 0",
          giraffe_create, giraffe_destroy, &giraffe_ops, NULL);
