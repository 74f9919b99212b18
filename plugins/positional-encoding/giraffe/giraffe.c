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
#include <math.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct giraffe_pe {
    const st_host_services *host;
    double T;           /* 0 = the model's n_ctx_train */
    double rho;         /* 0 = 2 pi / (16 T) */
    double low_ratio;   /* a = b * low_ratio */
    double base_param;  /* 0 = the model's */
    float *inv_freq;
} giraffe_pe;

static st_status giraffe_create(const st_host_services *host, const msgpack_object *params,
                                void **inst, st_error *err)
{
    double T = 0.0, rho = 0.0, low_ratio = 0.125, base = 0.0;
    const char *keys[] = {"T", "rho", "low_ratio", "base"};
    double *vals[] = {&T, &rho, &low_ratio, &base};
    for (int k = 0; k < 4; k++) {
        st_status st = st_param_float(params, keys[k], vals[k]);
        if (st != ST_OK && st != ST_E_NOT_FOUND)
            return host->error(err, ST_E_INVALID, "giraffe: parameter %s must be a number", keys[k]);
    }
    if (!(T == 0.0 || (T >= 1.0 && T <= 1.0e9)))
        return host->error(err, ST_E_RANGE,
                           "giraffe: parameter T must be 0 (the trained length) or in [1, 1e9] "
                           "tokens, got %g", T);
    if (!(rho >= 0.0 && rho <= 10.0))
        return host->error(err, ST_E_RANGE,
                           "giraffe: parameter rho must be in [0, 10] (0 = 2 pi / (16 T)), got %g", rho);
    if (!(low_ratio > 0.0 && low_ratio <= 1.0))
        return host->error(err, ST_E_RANGE,
                           "giraffe: parameter low_ratio must be in (0, 1], got %g", low_ratio);
    if (!(base >= 0.0 && base <= 1.0e12))
        return host->error(err, ST_E_RANGE,
                           "giraffe: parameter base must be in [0, 1e12] (0 = the model's), got %g",
                           base);
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
    if (!shape || !out)
        return h->error(err, ST_E_INVALID,
                        "giraffe: configure needs a model shape and a description");
    uint32_t d = shape->rope_dims;
    if (d == 0)
        return h->error(err, ST_E_INVALID,
                        "giraffe: the model has no rotary dimensions (rope_dims 0); the truncated "
                        "basis modifies RoPE and cannot apply");
    if (d % 2 != 0)
        return h->error(err, ST_E_INVALID,
                        "giraffe: the model's rope_dims %u is odd; rotary pairs need an even count",
                        d);
    if (d > shape->head_dim)
        return h->error(err, ST_E_INVALID, "giraffe: the model's rope_dims %u exceeds head_dim %u",
                        d, shape->head_dim);
    double base = p->base_param > 0.0 ? p->base_param : (double)shape->rope_base;
    if (!(base > 1.0) || !isfinite(base))
        return h->error(err, ST_E_INVALID,
                        "giraffe: rope base %g is not above 1; set the base parameter", base);
    double T = p->T > 0.0 ? p->T : (double)shape->n_ctx_train;
    if (!(T >= 1.0))
        return h->error(err, ST_E_INVALID,
                        "giraffe: the model gives no trained context length; set the T parameter");

    double b = 2.0 * M_PI / T;
    double a = b * p->low_ratio;
    double rho = p->rho > 0.0 ? p->rho : 2.0 * M_PI / (16.0 * T);
    uint32_t n = d / 2;
    float *f = h->calloc(h->host, n, sizeof *f);
    if (!f)
        return h->error(err, ST_E_NOMEM, "giraffe: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        double freq = pow(base, -2.0 * (double)i / (double)d);
        f[i] = (float)(freq >= b ? freq : freq >= a ? rho : 0.0);
    }
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
