/*
 * tests/support/ref_llama.h - a deliberately plain scalar Llama forward pass
 * for checking core/forward.c: every weight dequantized to float once,
 * naive loops, dot products accumulated in double, the whole sequence
 * recomputed from scratch (no KV cache), attention masks and rotations
 * given by a rule function instead of a plan.
 */
#ifndef ST_TEST_REF_LLAMA_H
#define ST_TEST_REF_LLAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct st_ref_model st_ref_model;

/* Which keys query qi sees and at what positions each side is rotated.
 * Return false to hide key ki from query qi. pos are the sequence
 * positions given to st_ref_forward. */
typedef bool (*st_ref_rule_fn)(void *user, uint32_t qi, uint32_t ki, const int32_t *pos,
                               double *rot_q, double *rot_k);

/* Additive score bias for head h between rotation positions (may be NULL). */
typedef float (*st_ref_bias_fn)(void *user, uint32_t head, double rot_q, double rot_k);

typedef struct st_ref_opts {
    /* Round activations through int8 per 32-block (as the CPU kernels do)
     * before every product with a quantized weight matrix. */
    bool quantize_acts;
    /* Rotary table; NULL = the model's base^(-2i/rope_dims). */
    const float *inv_freq;
    uint32_t n_freq;
    float rotary_scale;       /* 0 = 1 */
    float attn_temperature;   /* 0 = 1 */
    st_ref_rule_fn rule;      /* NULL = causal, rotated at the true positions */
    st_ref_bias_fn bias;
    void *user;
    /* Optional, on top of `rule`: hide key ki from query qi in (layer, KV
     * head) - per-head slot sets (attention.h, ABI 1.4). */
    bool (*head_rule)(void *user, uint32_t layer, uint32_t kv_head, uint32_t qi, uint32_t ki);
    /* Optional: the softmax weights of query qi, head h of layer l over
     * the n keys (0 where hidden), for checking attention statistics. */
    void (*on_probs)(void *user, uint32_t layer, uint32_t head, uint32_t qi, const double *p,
                     size_t n);
} st_ref_opts;

/* Dequantize the model's weights (it must stay loaded while this lives). */
st_ref_model *st_ref_model_new(const st_model *m);
void st_ref_model_free(st_ref_model *r);

/* Logits of every token: out is n * n_vocab floats. */
void st_ref_forward(const st_ref_model *r, const int32_t *tokens, const int32_t *pos, size_t n,
                    const st_ref_opts *opts, float *out);

#endif
