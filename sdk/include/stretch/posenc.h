/*
 * stretch/posenc.h - ops of a `positional-encoding` plugin: how position
 * enters attention. The plugin returns a description (a rotary frequency
 * table, a position map, an optional additive bias, a temperature); the
 * host's kernels do the arithmetic on every backend.
 *
 * Threading: `configure` and `update` are called by the engine thread only;
 * `map_positions` and `bias` may run concurrently from worker threads after
 * `configure`, reading instance state that only `update` changes (the host
 * never calls `update` while workers run).
 */
#ifndef STRETCH_POSENC_H
#define STRETCH_POSENC_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the host tells the plugin about the model it will serve. */
typedef struct st_model_shape {
    uint32_t struct_size;
    uint32_t n_layers;
    uint32_t n_heads;
    uint32_t n_kv_heads;
    uint32_t head_dim;
    uint32_t rope_dims;     /* dims rotated per head (<= head_dim); 0 if the model has no RoPE */
    float rope_base;        /* the model's trained base (theta) */
    uint32_t n_ctx_train;   /* the model's trained context length */
    uint32_t n_ctx;         /* the context the engine runs with (from the manifest) */
    uint32_t n_embd;
    uint32_t n_vocab;
    /* ABI 1.1: rows of the model's learned absolute position table (added
     * to the token embeddings, GPT-2 style); 0 = the model has none. Read
     * it only when struct_size covers it (a 1.0 host does not pass it). */
    uint32_t n_pos_rows;
} st_model_shape;

/* Flags of st_posenc_desc. */
#define ST_POSENC_ROTARY (1u << 0) /* rotate q and k by inv_freq * position */
#define ST_POSENC_BIAS   (1u << 1) /* call `bias` and add it to the scores */
#define ST_POSENC_MAP    (1u << 2) /* call `map_positions` (else identity) */
/* ABI 1.2: a linear distance bias given as data (ALiBi): the host's kernels
 * add -slopes[h] * (q_pos - k_pos) to query head h's scores, with the
 * positions rotation uses (after map_positions). No callback per query. */
#define ST_POSENC_SLOPES (1u << 3)

/* The description the host applies. Arrays are owned by the instance and
 * stay valid until the next `update` that reports a change, or destroy. */
typedef struct st_posenc_desc {
    uint32_t struct_size;
    uint32_t flags;
    /* ST_POSENC_ROTARY: rope_dims/2 angular frequencies; pair i of a head
     * rotates by position * inv_freq[i] (0 = that pair is not rotated). */
    const float *inv_freq;
    uint32_t n_freq;
    /* cos and sin are multiplied by this (YaRN's mscale); 1 = none. */
    float rotary_scale;
    /* Attention logits are multiplied by this on top of 1/sqrt(head_dim). */
    float attn_temperature;
    /* -- ABI 1.2 -- */
    /* ST_POSENC_SLOPES: one slope per query head, [n_slopes == n_heads]. */
    const float *slopes;
    uint32_t n_slopes;
} st_posenc_desc;

typedef struct st_posenc_ops {
    uint32_t struct_size;

    /* Called once the model is known. Fill `out`. */
    st_status (*configure)(void *inst, const st_model_shape *shape,
                           st_posenc_desc *out, st_error *err);

    /* Optional (NULL = static). Called before a forward step that reaches
     * `cur_len` tokens; set *changed and refill `out` when the description
     * depends on the length (dynamic NTK). */
    st_status (*update)(void *inst, uint32_t cur_len, st_posenc_desc *out,
                        bool *changed, st_error *err);

    /* Optional, used when ST_POSENC_MAP is set: map sequence positions to
     * the positions rotation and bias use (caps, offsets, remaps). */
    st_status (*map_positions)(void *inst, const int32_t *seq_pos, size_t n,
                               int32_t *out_pos, st_error *err);

    /* Optional, used when ST_POSENC_BIAS is set: the additive bias for head
     * `head` between nq query and nk key positions, row-major [nq][nk]. */
    st_status (*bias)(void *inst, uint32_t head, const int32_t *q_pos, size_t nq,
                      const int32_t *k_pos, size_t nk, float *out, st_error *err);

    /* Optional: stretch a learned absolute position table of `rows` x `dim`
     * (Long-CLIP style) into *out_rows rows of out. When the table would
     * not fit out_cap_rows, set *out_rows to the rows it needs and return
     * ST_E_RANGE: the host sizes its buffer with a first call with out
     * NULL and out_cap_rows 0. Without this op the host uses the model's
     * table as it is. */
    st_status (*stretch_table)(void *inst, const float *table, uint32_t rows,
                               uint32_t dim, float *out, uint32_t out_cap_rows,
                               uint32_t *out_rows, st_error *err);
} st_posenc_ops;

#ifdef __cplusplus
}
#endif
#endif
