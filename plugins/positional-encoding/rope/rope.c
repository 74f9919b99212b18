/*
 * positional-encoding `rope`: standard rotary position embedding (Su et al.
 * 2021, "RoFormer"): pair i of the first `dims` dimensions of every query and
 * key head is rotated by position * base^(-2i/dims). With the defaults it
 * reproduces the model's trained encoding exactly (its base and its rotary
 * dimensions); `base` and `dims` let a strategy change either.
 */
#include <math.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct rope {
    const st_host_services *host;
    double base;    /* 0 = the model's */
    uint32_t dims;  /* 0 = the model's rope_dims */
    float *inv_freq;
} rope;

static st_status rope_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    double base = st_param_float(params, "base");
    int64_t dims = st_param_int(params, "dims");
    /* plugin.yaml gives the range; only evenness is left to say. */
    if (dims % 2 != 0)
        return host->error(err, ST_E_RANGE,
                           "rope: parameter dims must be an even number in [0, 65536] "
                           "(0 = the model's), got %lld", (long long)dims);
    rope *r = host->calloc(host->host, 1, sizeof *r);
    if (!r)
        return host->error(err, ST_E_NOMEM, "rope: out of memory");
    r->host = host;
    r->base = base;
    r->dims = (uint32_t)dims;
    *inst = r;
    return ST_OK;
}

static void rope_destroy(void *inst)
{
    rope *r = inst;
    if (!r)
        return;
    r->host->free(r->host->host, r->inv_freq);
    r->host->free(r->host->host, r);
}

static st_status rope_configure(void *inst, const st_model_shape *shape, st_posenc_desc *out,
                                st_error *err)
{
    rope *r = inst;
    const st_host_services *h = r->host;
    uint32_t dims = r->dims ? r->dims : shape->rope_dims;
    double base = r->base > 0.0 ? r->base : (double)shape->rope_base;
    if (dims == 0)
        return h->error(err, ST_E_INVALID,
                        "rope: the model has no rotary dimensions; set the dims parameter");
    if (dims > shape->head_dim)
        return h->error(err, ST_E_RANGE, "rope: dims %u exceeds the model's head_dim %u", dims,
                        shape->head_dim);
    if (!(base > 0.0))
        return h->error(err, ST_E_INVALID,
                        "rope: the model gives no rope base; set the base parameter");

    /* The table covers the model's rotary pairs too when dims is smaller:
     * those beyond dims/2 get 0, i.e. are left unrotated. */
    uint32_t n_freq = (dims > shape->rope_dims ? dims : shape->rope_dims) / 2;
    if (n_freq > shape->head_dim / 2)
        n_freq = shape->head_dim / 2;
    float *f = h->calloc(h->host, n_freq, sizeof *f);
    if (!f)
        return h->error(err, ST_E_NOMEM, "rope: out of memory");
    for (uint32_t i = 0; i < dims / 2 && i < n_freq; i++)
        f[i] = (float)pow(base, -2.0 * (double)i / (double)dims);
    h->free(h->host, r->inv_freq);
    r->inv_freq = f;

    out->struct_size = sizeof *out;
    out->flags = ST_POSENC_ROTARY;
    out->inv_freq = r->inv_freq;
    out->n_freq = n_freq;
    out->rotary_scale = 1.0f;
    out->attn_temperature = 1.0f;
    return ST_OK;
}

static const st_posenc_ops rope_ops = {
    .struct_size = sizeof(st_posenc_ops),
    .configure = rope_configure,
    .update = NULL,
    .map_positions = NULL,
    .bias = NULL,
    .stretch_table = NULL,
};

ST_PLUGIN(ST_KIND_POSENC, "rope", "1.0.0",
          "Standard rotary position embedding (the model's base and dimensions by default)",
          rope_create, rope_destroy, &rope_ops, NULL);
