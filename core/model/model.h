/*
 * core/model.h - a Llama-family model's hyperparameters and weights, read
 * from an open GGUF. Matrices point into the file's mapping (no copies);
 * only the small norm vectors are converted to owned float arrays. The
 * model borrows the st_gguf: keep it open while the model lives.
 */
#ifndef ST_CORE_MODEL_H
#define ST_CORE_MODEL_H

#include <stdint.h>
#include <stretch/common.h>

#include "cpu/matmul.h"
#include "diag.h"
#include "gguf.h"

typedef struct st_model_hparams {
    uint32_t n_layers;
    uint32_t n_embd;
    uint32_t n_ff;
    uint32_t n_heads;
    uint32_t n_kv_heads;
    uint32_t head_dim;
    uint32_t rope_dims;    /* dims rotated per head, <= head_dim */
    float rope_base;
    float rms_eps;
    uint32_t n_ctx_train;
    uint32_t n_vocab;
} st_model_hparams;

typedef struct st_model_layer {
    float *attn_norm;      /* [n_embd] */
    st_weight wq, wk, wv, wo;
    float *ffn_norm;       /* [n_embd] */
    st_weight gate, up, down;
} st_model_layer;

typedef struct st_model {
    st_model_hparams hp;
    const st_gguf *gguf;
    st_weight tok_embd;    /* [n_vocab] rows of n_embd */
    float *out_norm;
    st_weight output;      /* tok_embd when the model ties them */
    bool tied_output;
    /* A learned absolute position table (GPT-2 style position_embd.weight),
     * added to the token embeddings; NULL when the model has none. */
    float *pos_embd;       /* [n_pos][n_embd], owned */
    uint32_t n_pos;
    st_model_layer *layers;
    /* Every repacked matrix (weights' `packed`), in the order decode reads
     * them, in one buffer on huge pages (base/big_alloc.h); NULL when the
     * path reads the mapping as is. */
    uint8_t *packed_arena;
    size_t packed_arena_bytes;
} st_model;

/* The matrices a decoded token reads in step l, in the order it reads
 * them: layer l's wq, wk, wv, wo, gate, up, down, or (l == n_layers) the
 * output matrix alone. Returns how many (7 or 1). */
#define ST_MODEL_STEP_MATS 7
size_t st_model_step_matrices(st_model *m, uint32_t l, st_weight *out[ST_MODEL_STEP_MATS]);

/* Read the llama hyperparameters and find and shape-check every tensor
 * (position_embd.weight is optional: [n_embd, rows]). */
st_status st_model_load(const st_gguf *g, st_model **out, st_diag *diag);
void st_model_free(st_model *m);

#endif
