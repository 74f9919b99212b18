/*
 * core/forward.h - the Llama forward pass on the CPU.
 *
 * One call processes a block of n tokens (a prompt chunk, or one decoded
 * token): embedding, per layer RMSNorm -> Q/K/V -> RoPE -> attention as the
 * attention plugin plans it -> output projection -> residual -> RMSNorm ->
 * SwiGLU FFN -> residual, then the final norm and the output head. The
 * block's keys and values are appended to the KV cache; a block of many
 * tokens runs as batched matmuls (GEMM), one token as matrix x vector.
 *
 * Positions: `pos` are true sequence positions (what attention plans and
 * distances use). When the posenc description has ST_POSENC_MAP, they are
 * mapped once on append and the mapped positions drive rotation and bias.
 */
#ifndef ST_CORE_FORWARD_H
#define ST_CORE_FORWARD_H

#include <stretch/attention.h>
#include <stretch/posenc.h>

#include "backend.h"
#include "cpu/kernels.h"
#include "kv_cache.h"
#include "model.h"
#include "threadpool.h"

/* Asks for the plan of one layer's query block (see attention.h). */
typedef st_status (*st_plan_fn)(void *user, const st_attn_query *q,
                                 const st_attn_plan_builder *b, st_error *err);

typedef struct st_forward_config {
    const st_model *model;
    st_kv_cache *kv;
    st_threadpool *pool;          /* NULL = run on the caller only */
    /* Where the weight products run (backend.h); NULL = the CPU backend
     * over `pool`. Borrowed: it outlives the context. */
    st_backend *backend;
    /* NULL = the model's own RoPE (rope_base, rope_dims), scale 1. */
    const st_posenc_desc *posenc;
    /* The posenc plugin's callbacks and instance, used when the desc's
     * flags ask for them (ST_POSENC_MAP, ST_POSENC_BIAS). */
    void *posenc_inst;
    st_status (*map_positions)(void *inst, const int32_t *seq_pos, size_t n,
                               int32_t *out_pos, st_error *err);
    st_status (*bias)(void *inst, uint32_t head, const int32_t *q_pos, size_t nq,
                      const int32_t *k_pos, size_t nk, float *out, st_error *err);
    /* A learned absolute position table to add to the token embeddings,
     * row = the token's (mapped) position: the model's, or the posenc
     * plugin's stretch of it; NULL = none. Borrowed. */
    const float *pos_table;
    uint32_t pos_rows;
    /* NULL = dense causal attention. Called once per layer per block. */
    st_plan_fn plan;
    void *plan_user;
    /* With want_weights, st_forward_weights returns the attention weights
     * (summed over heads) of layer weights_layer (-1 = the last layer), for
     * plugins with ST_ATTN_NEEDS_WEIGHTS. Costs n_q x n_slots floats. */
    bool want_weights;
    int32_t weights_layer;
    /* Pass the unrotated q and k to the plan (ST_ATTN_NEEDS_QK); NULL
     * otherwise, as attention.h promises. */
    bool want_qk;
    /* ST_NUMERICS_GGML: llama.cpp's float operations (cpu/ggml_compat.h);
     * ST_NUMERICS_DEFAULT asks $STRETCH_NUMERICS. */
    st_numerics numerics;
    /* Attention statistics (attention.h, st_attn_stats): per query head,
     * the sum over the block's last stats_window queries (0 = all) of
     * each key slot's softmax weight, for the layers whose stats_layers
     * entry is nonzero (NULL = every layer). Summed inside the attention
     * loop; those layers take the gather path. */
    bool want_stats;
    uint32_t stats_window;
    const uint8_t *stats_layers;
} st_forward_config;

/* Logits for every token of the block, not only the last one. */
#define ST_FORWARD_ALL_LOGITS (1u << 0)

/* Blocks of fewer rows take the gather attention path (a tile's rows
 * would be mostly padding), whose rounding differs from the tiled path's;
 * blocks of this many or more give the same logits however a prompt is
 * cut. A caller that cuts a prompt otherwise than a whole prefill does
 * (echo, a cached prefix) keeps its pieces at or above it. */
#define ST_FORWARD_TILED_MIN_ROWS 8

typedef struct st_forward_ctx st_forward_ctx;

st_status st_forward_ctx_create(const st_forward_config *cfg, st_forward_ctx **out,
                                st_diag *diag);
void st_forward_ctx_free(st_forward_ctx *ctx);

/* Replace the posenc description (after the plugin's `update` reported a
 * change); keys already cached are re-rotated with it. */
st_status st_forward_set_posenc(st_forward_ctx *ctx, const st_posenc_desc *desc,
                                st_diag *diag);

/* Run n tokens at sequence positions pos (ascending, after every cached
 * position). logits: n_vocab floats for the last token, or n * n_vocab
 * with ST_FORWARD_ALL_LOGITS; may be NULL to only fill the cache. On
 * error the cache is left as it was before the call. */
st_status st_forward(st_forward_ctx *ctx, const int32_t *tokens, const int32_t *pos,
                     size_t n, float *logits, uint32_t flags, st_diag *diag);

/* One sequence's part of a batched step: its context (its own KV cache,
 * attention plan, positional state), its block and where its logits go
 * (as st_forward: the last token's, or every token's with
 * ST_FORWARD_ALL_LOGITS in flags; NULL for none). */
typedef struct st_forward_seq {
    st_forward_ctx *ctx;
    const int32_t *tokens;
    const int32_t *pos;
    size_t n;
    float *logits;
    uint32_t flags;
} st_forward_seq;

/* Several sequences' blocks as one batch: every matmul runs over all their
 * rows at once (one pass over the weights for the whole batch), while
 * each sequence's rows attend only to its own cache, with its own plan and
 * positions: continuous batching for decode (one token each), prepacking
 * for prompts of different lengths (a block-diagonal causal mask without
 * padding). The same result as st_forward on each in turn, up to the
 * order of float sums inside a batched matmul. The contexts share the
 * model and thread pool, one cache each; seqs[0]'s context holds the
 * batch's activations. On error no cache has moved. */
st_status st_forward_batch(const st_forward_seq *seqs, size_t n_seqs, st_diag *diag);

/* Whether the next blocks record the configured layer's weights (on by
 * default with want_weights). Off, that layer takes the fast tiled path
 * like every other and st_forward_weights answers NULL: a caller that
 * wants the weights of a few rows (a question after a long context) runs
 * the rows before them as a plain prefill. */
void st_forward_record_weights(st_forward_ctx *ctx, bool on);

/* The attention weights of the configured layer from the last st_forward:
 * [n_q][n_slots] summed over heads, slots as they were during that call. */
const float *st_forward_weights(const st_forward_ctx *ctx, uint32_t *n_q, uint32_t *n_slots);


/* The attention statistics of the last st_forward: the row of (layer,
 * query head), indexed by that head's slots as they were during the call
 * (the shared slots, or its KV head's with per-head slot sets); NULL for
 * a layer without statistics. *n_q: the queries counted. */
const float *st_forward_stats(const st_forward_ctx *ctx, uint32_t layer, uint32_t head,
                              uint32_t *n_q);

/* The model's own rotary frequencies: inv_freq[i] = base^(-2i/rope_dims),
 * i < rope_dims/2. */
void st_forward_default_inv_freq(const st_model_hparams *hp, float *inv_freq);

#endif
