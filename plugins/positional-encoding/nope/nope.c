/*
 * positional-encoding `nope`: NoPE, no positional encoding at all. Queries
 * and keys are not rotated and no bias is added, so attention only sees
 * order through the causal mask (Kazemnejad et al., 2023, "The Impact of
 * Positional Encoding on Length Generalization in Transformers"). A RoPE
 * model run this way is out of distribution; it exists as a baseline and as
 * the model-free positional encoding of tests.
 */
#include <math.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct nope {
    const st_host_services *host;
    float temperature;
} nope;

static st_status nope_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    double temp = st_param_float(params, "temperature");
    nope *p = host->calloc(host->host, 1, sizeof *p);
    if (!p)
        return host->error(err, ST_E_NOMEM, "nope: out of memory");
    p->host = host;
    p->temperature = (float)temp;
    *inst = p;
    return ST_OK;
}

static void nope_destroy(void *inst)
{
    nope *p = inst;
    if (p)
        p->host->free(p->host->host, p);
}

static st_status nope_configure(void *inst, const st_model_shape *shape,
                                st_posenc_desc *out, st_error *err)
{
    nope *p = inst;
    out->struct_size = (uint32_t)sizeof *out;
    out->flags = 0;
    out->inv_freq = NULL;
    out->n_freq = 0;
    out->rotary_scale = 1.0f;
    out->attn_temperature = p->temperature;
    return ST_OK;
}

/* Identity; only called if a host applies maps regardless of flags. */
static st_status nope_map_positions(void *inst, const int32_t *seq_pos, size_t n,
                                    int32_t *out_pos, st_error *err)
{
    for (size_t i = 0; i < n; i++)
        out_pos[i] = seq_pos[i];
    return ST_OK;
}

static const st_posenc_ops nope_ops = {
    .struct_size = sizeof(st_posenc_ops),
    .configure = nope_configure,
    .update = NULL,
    .map_positions = nope_map_positions,
    .bias = NULL,
    .stretch_table = NULL,
};

ST_PLUGIN(ST_KIND_POSENC, "nope", "1.0.0",
          "No positional encoding (NoPE); queries and keys are not rotated",
          nope_create, nope_destroy, &nope_ops, NULL);
