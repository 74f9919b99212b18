/*
 * positional-encoding `long-clip`: knowledge-preserved stretching of a
 * learned absolute position table (Zhang et al. 2024, "Long-CLIP: Unlocking
 * the Long-Text Capability of CLIP"). The first `keep` rows, which the model
 * learned well, are kept as they are; every later row i moves to slot
 * keep + ratio * (i - keep), and the ratio - 1 slots between rows i and i+1
 * blend them, slot k of the gap getting ((ratio - k) * r_i + k * r_{i+1}) /
 * ratio (3/4-1/4, 1/2-1/2, 1/4-3/4 for ratio 4). After the last row the
 * table extrapolates linearly: r_last + k/ratio * (r_last - r_prev). A table
 * of L rows becomes keep + ratio * (L - keep) rows: CLIP's 77 -> 248.
 *
 * This serves models with an absolute position table (GGUF
 * position_embd.weight), through stretch_table: the host adds row p of the
 * stretched table to the embedding of the token at position p. configure
 * describes no rotation or bias, and refuses a model without such a table
 * (a RoPE Llama such as SmolLM2): there would be nothing to stretch.
 */
#include <math.h>
#include <stddef.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

typedef struct long_clip {
    const st_host_services *host;
    uint32_t keep;
    uint32_t ratio;
} long_clip;

static st_status lc_create(const st_host_services *host, const st_params *params,
                           void **inst, st_error *err)
{
    int64_t keep = st_param_int(params, "keep"), ratio = st_param_int(params, "ratio");
    long_clip *p = host->calloc(host->host, 1, sizeof *p);
    if (!p)
        return host->error(err, ST_E_NOMEM, "long-clip: out of memory");
    p->host = host;
    p->keep = (uint32_t)keep;
    p->ratio = (uint32_t)ratio;
    *inst = p;
    return ST_OK;
}

static void lc_destroy(void *inst)
{
    long_clip *p = inst;
    if (p)
        p->host->free(p->host->host, p);
}

static st_status lc_configure(void *inst, const st_model_shape *shape, st_posenc_desc *out,
                              st_error *err)
{
    long_clip *p = inst;
    if (!out || !shape)
        return p->host->error(err, ST_E_INVALID,
                              "long-clip: configure needs a model shape and a description");
    /* A host before ABI 1.1 does not say; then the table is simply not
     * stretched. */
    if (shape->struct_size >= offsetof(st_model_shape, n_pos_rows) + sizeof shape->n_pos_rows &&
        shape->n_pos_rows == 0)
        return p->host->error(err, ST_E_INVALID,
                              "long-clip: the model has no learned absolute position table "
                              "(position_embd.weight) to stretch%s; use nope, or a RoPE scaling "
                              "plugin (linear, ntk, yarn) for a RoPE model",
                              shape->rope_dims ? ": it uses RoPE" : "");
    out->struct_size = sizeof *out;
    out->flags = 0;
    out->inv_freq = NULL;
    out->n_freq = 0;
    out->rotary_scale = 1.0f;
    out->attn_temperature = 1.0f;
    return ST_OK;
}

static st_status lc_stretch_table(void *inst, const float *table, uint32_t rows, uint32_t dim,
                                  float *out, uint32_t out_cap_rows, uint32_t *out_rows,
                                  st_error *err)
{
    long_clip *p = inst;
    const st_host_services *h = p->host;
    if (!out_rows)
        return h->error(err, ST_E_INVALID, "long-clip: stretch_table needs out_rows");
    *out_rows = 0;
    if (rows == 0)
        return ST_OK;
    if (!table || dim == 0)
        return h->error(err, ST_E_INVALID,
                        "long-clip: stretch_table needs a table of %u rows with dim > 0", rows);
    /* Nothing past the kept rows (or a single row: no slope): unchanged. */
    bool stretch = rows > p->keep && rows >= 2;
    uint64_t need = stretch ? (uint64_t)p->keep + (uint64_t)p->ratio * (rows - p->keep) : rows;
    if (need > UINT32_MAX)
        return h->error(err, ST_E_RANGE,
                        "long-clip: %u rows stretched by %u would exceed 2^32 rows", rows, p->ratio);
    if (need > out_cap_rows) {
        *out_rows = (uint32_t)need;
        return h->error(err, ST_E_RANGE,
                        "long-clip: the output holds %u rows but %u x %u stretches to %llu",
                        out_cap_rows, rows, dim, (unsigned long long)need);
    }
    if (!out)
        return h->error(err, ST_E_INVALID, "long-clip: stretch_table needs an output buffer");

    size_t D = dim;
    uint32_t head = stretch ? p->keep : rows;
    for (size_t c = 0; c < (size_t)head * D; c++)
        out[c] = table[c];
    if (stretch) {
        double R = (double)p->ratio;
        for (uint32_t i = p->keep; i < rows; i++) {
            const float *cur = table + (size_t)i * D;
            float *dst = out + ((size_t)p->keep + (size_t)p->ratio * (i - p->keep)) * D;
            if (i + 1 < rows) {
                /* Slot k between rows i and i+1: (R-k)/R of r_i, k/R of r_{i+1}. */
                const float *next = cur + D;
                for (uint32_t k = 0; k < p->ratio; k++)
                    for (size_t c = 0; c < D; c++)
                        dst[k * D + c] = (float)(((R - k) * cur[c] + (double)k * next[c]) / R);
            } else {
                /* Tail: continue the last step linearly. */
                const float *prev = cur - D;
                for (uint32_t k = 0; k < p->ratio; k++)
                    for (size_t c = 0; c < D; c++)
                        dst[k * D + c] =
                            (float)((double)cur[c] + (double)k / R * ((double)cur[c] - prev[c]));
            }
        }
    }
    *out_rows = (uint32_t)need;
    return ST_OK;
}

static const st_posenc_ops lc_ops = {
    .struct_size = sizeof(st_posenc_ops),
    .configure = lc_configure,
    .update = NULL,
    .map_positions = NULL,
    .bias = NULL,
    .stretch_table = lc_stretch_table,
};

ST_PLUGIN(ST_KIND_POSENC, "long-clip", "1.0.0",
          "Long-CLIP knowledge-preserved stretching of learned absolute position tables",
          lc_create, lc_destroy, &lc_ops, NULL);
