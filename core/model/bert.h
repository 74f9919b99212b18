/*
 * core/model/bert.h - a BERT-family sentence encoder from GGUF (general.
 * architecture "bert", llama.cpp's tensor names): learned absolute
 * positions, token types, post-LayerNorm blocks with biases and GELU, and
 * the pooling the file names (mean). All tensors f32, except that the six
 * matrices of each layer may be Q8_0 (products then in int8 through the
 * repacked kernels). The forward pass is core/compute/bert_forward.c.
 */
#ifndef ST_CORE_BERT_H
#define ST_CORE_BERT_H

#include <stdbool.h>
#include <stdint.h>

#include "diag.h"
#include "gguf.h"
#include "matmul.h"

typedef struct st_bert_layer {
    st_weight q, k, v, out, up, down;     /* [rows = out dim][cols = in dim] */
    const float *q_b, *k_b, *v_b, *out_b, *up_b, *down_b;
    const float *attn_norm_w, *attn_norm_b;   /* after attention + residual */
    const float *out_norm_w, *out_norm_b;     /* after the FFN + residual */
} st_bert_layer;

typedef struct st_bert_model {
    uint32_t n_vocab, n_embd, n_ff, n_layers, n_heads, n_pos, n_types;
    uint32_t max_tokens;   /* longest input, [CLS] and [SEP] included */
    float eps;
    bool normalize;        /* L2-normalise the pooled vector */
    const float *tok_embd, *pos_embd, *type_embd;  /* [n][n_embd] rows */
    const float *embd_norm_w, *embd_norm_b;
    st_bert_layer *layers;
} st_bert_model;

/* Check and map the tensors of `g` (kept open by the caller). Refuses,
 * naming the tensor or key, anything that is not a BERT of consistent
 * shapes with f32 tensors (or Q8_0 layer matrices). */
st_status st_bert_model_load(const st_gguf *g, st_bert_model **out, st_diag *diag);
void st_bert_model_free(st_bert_model *m);

#endif
