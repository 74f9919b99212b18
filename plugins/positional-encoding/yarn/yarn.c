/*
 * positional-encoding `yarn`: YaRN (Peng et al. 2023, "YaRN: Efficient
 * Context Window Extension of Large Language Models"), "NTK-by-parts"
 * interpolation plus an attention temperature. For pair i of d rotary dims,
 * with theta_i = base^(-2i/d), L the trained length and s the scale:
 *
 *   corr(n) = d * ln(L / (2 pi n)) / (2 ln base)     (pair index whose
 *                                                     wavelength fits n turns in L)
 *   low     = max(0, floor(corr(beta_fast)))
 *   high    = min(d - 1, ceil(corr(beta_slow)))
 *   ramp(i) = 1 - clamp((i - low) / max(0.001, high - low), 0, 1)
 *   inv_freq[i] = theta_i / s * (1 - ramp(i)) + theta_i * ramp(i)
 *
 * so fast pairs (i <= low) keep the trained frequency, slow ones (i >= high)
 * are interpolated by s, and the pairs between blend linearly. When `mscale`
 * is on, cos and sin are multiplied by 0.1 ln(s) + 1 (1 for s <= 1), which
 * scales the logits by its square; `attn_factor` multiplies that scale.
 */
#include "../rope_scaling.h"

typedef struct yarn_pe {
    const st_host_services *host;
    double scale;
    double beta_fast;
    double beta_slow;
    bool mscale;
    double attn_factor;
    double base_param;      /* 0 = the model's */
    int64_t trained_param;  /* 0 = the model's n_ctx_train */
    float *inv_freq;
} yarn_pe;

static st_status yarn_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    double scale = st_param_float(params, "scale"), beta_fast = st_param_float(params, "beta_fast");
    double beta_slow = st_param_float(params, "beta_slow");
    double attn_factor = st_param_float(params, "attn_factor"), base = st_param_float(params, "base");
    int64_t trained = st_param_int(params, "trained_length");
    bool mscale = st_param_bool(params, "mscale");
    if (beta_fast < beta_slow)
        return host->error(err, ST_E_RANGE,
                           "yarn: beta_fast (%g rotations) must be at least beta_slow (%g): the "
                           "ramp runs from the fast pairs to the slow ones", beta_fast, beta_slow);
    yarn_pe *p = host->calloc(host->host, 1, sizeof *p);
    if (!p)
        return host->error(err, ST_E_NOMEM, "yarn: out of memory");
    p->host = host;
    p->scale = scale;
    p->beta_fast = beta_fast;
    p->beta_slow = beta_slow;
    p->mscale = mscale;
    p->attn_factor = attn_factor;
    p->base_param = base;
    p->trained_param = trained;
    *inst = p;
    return ST_OK;
}

static void yarn_destroy(void *inst)
{
    yarn_pe *p = inst;
    if (!p)
        return;
    p->host->free(p->host->host, p->inv_freq);
    p->host->free(p->host->host, p);
}

/* The (fractional) pair index at which a wavelength makes n_rot turns in
 * the trained length. */
static double yarn_corr(double n_rot, double d, double base, double trained)
{
    return d * log(trained / (2.0 * M_PI * n_rot)) / (2.0 * log(base));
}

static st_status yarn_configure(void *inst, const st_model_shape *shape, st_posenc_desc *out,
                                st_error *err)
{
    yarn_pe *p = inst;
    const st_host_services *h = p->host;
    uint32_t d = 0;
    double base = 0.0, trained = 0.0;
    st_status st = rope_scaling_shape(h, shape, out, "yarn", "YaRN rescales RoPE", p->base_param,
                                      &d, &base, err);
    if (st == ST_OK)
        st = rope_scaling_trained(h, shape, "yarn", "trained_length", (double)p->trained_param,
                                  &trained, err);
    if (st != ST_OK)
        return st;

    double low = floor(yarn_corr(p->beta_fast, d, base, trained));
    double high = ceil(yarn_corr(p->beta_slow, d, base, trained));
    if (low < 0.0)
        low = 0.0;
    if (high > (double)(d - 1))
        high = (double)(d - 1);
    double span = high - low > 0.001 ? high - low : 0.001;

    uint32_t n = d / 2;
    float *f = rope_scaling_table(h, "yarn", n, err);
    if (!f)
        return ST_E_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        double theta = pow(base, -2.0 * (double)i / (double)d);
        double t = ((double)i - low) / span;
        t = t < 0.0 ? 0.0 : t > 1.0 ? 1.0 : t;
        double ramp = 1.0 - t;
        f[i] = (float)(theta / p->scale * (1.0 - ramp) + theta * ramp);
    }
    h->free(h->host, p->inv_freq);
    p->inv_freq = f;

    double mscale = p->mscale && p->scale > 1.0 ? 0.1 * log(p->scale) + 1.0 : 1.0;
    rope_scaling_describe(out, f, n, (float)(mscale * p->attn_factor));
    return ST_OK;
}

static const st_posenc_ops yarn_ops = {
    .struct_size = sizeof(st_posenc_ops),
    .configure = yarn_configure,
    .update = NULL,
    .map_positions = NULL,
    .bias = NULL,
    .stretch_table = NULL,
};

ST_PLUGIN(ST_KIND_POSENC, "yarn", "1.0.0",
          "YaRN (Peng et al. 2023): NTK-by-parts RoPE interpolation with attention temperature",
          yarn_create, yarn_destroy, &yarn_ops, NULL);
