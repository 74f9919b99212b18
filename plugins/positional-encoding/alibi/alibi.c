/*
 * positional-encoding `alibi`: ALiBi (Press et al. 2022, "Train Short, Test
 * Long: Attention with Linear Biases Enables Input Length Extrapolation").
 * No rotation; head h of H adds the bias -m_h * (q_pos - k_pos) to its
 * attention scores. Heads are counted from 1 in the slope formula, as in the
 * paper's slopes 2^(-8/H), 2^(-16/H), ..., 2^(-8):
 *
 *     m_h = 2^(-max_bias * h / H),   h = 1 .. H            (H a power of two)
 *
 * For other H (the paper's rule, also llama.cpp's): with P the largest power
 * of two below H, the first P heads take the slopes of P heads and the
 * remaining H - P heads take the odd-numbered slopes (1st, 3rd, 5th, ...) of
 * 2P heads, 2^(-max_bias * (2k - 1) / (2P)), k = 1 .. H - P. max_bias is 8 in
 * the paper. A model trained with RoPE run this way is out of distribution.
 */
#include <math.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct alibi_pe {
    const st_host_services *host;
    double max_bias;
    uint32_t n_heads;   /* set by configure */
    double *slopes;     /* [n_heads] */
    float *slopes_f;    /* the same, as the description hands them to the host */
} alibi_pe;

static st_status alibi_create(const st_host_services *host, const st_params *params,
                              void **inst, st_error *err)
{
    double max_bias = st_param_float(params, "max_bias");
    alibi_pe *p = host->calloc(host->host, 1, sizeof *p);
    if (!p)
        return host->error(err, ST_E_NOMEM, "alibi: out of memory");
    p->host = host;
    p->max_bias = max_bias;
    *inst = p;
    return ST_OK;
}

static void alibi_destroy(void *inst)
{
    alibi_pe *p = inst;
    if (!p)
        return;
    p->host->free(p->host->host, p->slopes);
    p->host->free(p->host->host, p->slopes_f);
    p->host->free(p->host->host, p);
}

static st_status alibi_configure(void *inst, const st_model_shape *shape, st_posenc_desc *out,
                                 st_error *err)
{
    alibi_pe *p = inst;
    const st_host_services *h = p->host;
    if (!shape || !out)
        return h->error(err, ST_E_INVALID, "alibi: configure needs a model shape and a description");
    uint32_t H = shape->n_heads;
    if (H == 0)
        return h->error(err, ST_E_INVALID, "alibi: the model has no attention heads (n_heads 0)");
    double *m = h->calloc(h->host, H, sizeof *m);
    if (!m)
        return h->error(err, ST_E_NOMEM, "alibi: out of memory");
    uint32_t P = 1;
    while (P * 2 <= H)
        P *= 2;
    for (uint32_t k = 1; k <= P; k++)
        m[k - 1] = exp2(-p->max_bias * (double)k / (double)P);
    for (uint32_t k = 1; k <= H - P; k++)
        m[P + k - 1] = exp2(-p->max_bias * (double)(2 * k - 1) / (double)(2 * P));
    float *mf = h->calloc(h->host, H, sizeof *mf);
    if (!mf) {
        h->free(h->host, m);
        return h->error(err, ST_E_NOMEM, "alibi: out of memory");
    }
    for (uint32_t k = 0; k < H; k++)
        mf[k] = (float)m[k];
    h->free(h->host, p->slopes);
    h->free(h->host, p->slopes_f);
    p->slopes = m;
    p->slopes_f = mf;
    p->n_heads = H;

    /* The slopes are data the host's kernels apply (ABI 1.2); `bias`
     * stays for hosts and tools that ask per query. */
    out->struct_size = sizeof *out;
    out->flags = ST_POSENC_SLOPES;
    out->inv_freq = NULL;
    out->n_freq = 0;
    out->rotary_scale = 1.0f;
    out->attn_temperature = 1.0f;
    out->slopes = mf;
    out->n_slopes = H;
    return ST_OK;
}

static st_status alibi_bias(void *inst, uint32_t head, const int32_t *q_pos, size_t nq,
                            const int32_t *k_pos, size_t nk, float *out, st_error *err)
{
    alibi_pe *p = inst;
    const st_host_services *h = p->host;
    if (!p->slopes)
        return h->error(err, ST_E_INVALID, "alibi: bias called before configure");
    if (head >= p->n_heads)
        return h->error(err, ST_E_RANGE, "alibi: head %u out of range (the model has %u heads)",
                        head, p->n_heads);
    if ((nq && !q_pos) || (nk && !k_pos) || (nq && nk && !out))
        return h->error(err, ST_E_INVALID, "alibi: bias needs position arrays and an output");
    double m = p->slopes[head];
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nk; j++)
            out[i * nk + j] = (float)(-m * ((double)q_pos[i] - (double)k_pos[j]));
    return ST_OK;
}

static const st_posenc_ops alibi_ops = {
    .struct_size = sizeof(st_posenc_ops),
    .configure = alibi_configure,
    .update = NULL,
    .map_positions = NULL,
    .bias = alibi_bias,
    .stretch_table = NULL,
};

ST_PLUGIN(ST_KIND_POSENC, "alibi", "1.0.0",
          "ALiBi (Press et al. 2022): no rotation, a per-head linear distance bias",
          alibi_create, alibi_destroy, &alibi_ops, NULL);
