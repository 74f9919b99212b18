/*
 * plugins/positional-encoding/rope_scaling.h - what the RoPE-scaling
 * plugins (linear, ntk, dynamic-ntk, yarn, giraffe) share: checking that
 * the model's rotary shape allows a
 * rescaled table, allocating that table and describing it to the host.
 * Each plugin differs only in how it computes the frequencies, and every
 * message still names the plugin that gives it.
 *
 * Header-only (static inline): every plugin is its own .so, and this adds
 * nothing to the ABI.
 */
#ifndef ST_PLUGINS_ROPE_SCALING_H
#define ST_PLUGINS_ROPE_SCALING_H

#include <math.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

/* At configure: the model's rotary dimensions *d (even, within head_dim)
 * and the base to scale (*base: base_param, or the model's when 0).
 * `what` says what the method does to RoPE, for a model without it. */
static inline st_status rope_scaling_shape(const st_host_services *h, const st_model_shape *shape,
                                           const st_posenc_desc *out, const char *plugin,
                                           const char *what, double base_param, uint32_t *d,
                                           double *base, st_error *err)
{
    if (!shape || !out)
        return h->error(err, ST_E_INVALID, "%s: configure needs a model shape and a description",
                        plugin);
    *d = shape->rope_dims;
    if (*d == 0)
        return h->error(err, ST_E_INVALID,
                        "%s: the model has no rotary dimensions (rope_dims 0); %s and cannot apply",
                        plugin, what);
    if (*d % 2 != 0)
        return h->error(err, ST_E_INVALID,
                        "%s: the model's rope_dims %u is odd; rotary pairs need an even count",
                        plugin, *d);
    if (*d > shape->head_dim)
        return h->error(err, ST_E_INVALID, "%s: the model's rope_dims %u exceeds head_dim %u",
                        plugin, *d, shape->head_dim);
    *base = base_param > 0.0 ? base_param : (double)shape->rope_base;
    if (!(*base > 1.0) || !isfinite(*base))
        return h->error(err, ST_E_INVALID,
                        "%s: rope base %g is not above 1; set the base parameter", plugin, *base);
    return ST_OK;
}

/* The trained length to scale from: `param` when set, else the model's;
 * `name` is the parameter that sets it. */
static inline st_status rope_scaling_trained(const st_host_services *h, const st_model_shape *shape,
                                             const char *plugin, const char *name, double param,
                                             double *trained, st_error *err)
{
    *trained = param > 0.0 ? param : (double)shape->n_ctx_train;
    if (!(*trained >= 1.0))
        return h->error(err, ST_E_INVALID,
                        "%s: the model gives no trained context length; set the %s parameter",
                        plugin, name);
    return ST_OK;
}

/* A zeroed table of n frequencies from the host allocator, or NULL with
 * the error set. */
static inline float *rope_scaling_table(const st_host_services *h, const char *plugin, uint32_t n,
                                        st_error *err)
{
    float *f = h->calloc(h->host, n, sizeof *f);
    if (!f)
        h->error(err, ST_E_NOMEM, "%s: out of memory", plugin);
    return f;
}

/* Describe a rotary table to the host (the plugin keeps owning it). */
static inline void rope_scaling_describe(st_posenc_desc *out, const float *inv_freq, uint32_t n,
                                         float rotary_scale)
{
    out->struct_size = sizeof *out;
    out->flags = ST_POSENC_ROTARY;
    out->inv_freq = inv_freq;
    out->n_freq = n;
    out->rotary_scale = rotary_scale;
    out->attn_temperature = 1.0f;
}

#endif
