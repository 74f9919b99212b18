/*
 * core/compute/bert_forward.h - the forward pass of a BERT sentence encoder
 * (core/model/bert.h): every token attends to every token (no causal mask),
 * and the sentence vector is the mean of the last layer's token vectors,
 * L2-normalised when the model says so.
 */
#ifndef ST_CORE_BERT_FORWARD_H
#define ST_CORE_BERT_FORWARD_H

#include "bert.h"
#include "kernels.h"
#include "threadpool.h"

/* Embed `n` token ids ([CLS] ... [SEP], at most m->max_tokens; token type
 * 0) into out[m->n_embd]. ST_E_RANGE for an id outside the vocabulary or
 * too many tokens; ST_E_NOMEM. */
st_status st_bert_embed(const st_bert_model *m, st_threadpool *pool, const st_cpu_kernels *kern,
                        const int32_t *ids, size_t n, float *out, st_error *err);

/* Embed n_seq sentences at once (ids[s] of n_ids[s] tokens each, the same
 * rules as st_bert_embed) into out[n_seq][m->n_embd]: their tokens are
 * packed into one matrix so each product is one GEMM over the batch; every
 * sentence gets the numbers it would get alone. The caller bounds the
 * batch (memory is about 40 floats per token per embedding column). */
st_status st_bert_embed_batch(const st_bert_model *m, st_threadpool *pool,
                              const st_cpu_kernels *kern, const int32_t *const *ids,
                              const size_t *n_ids, size_t n_seq, float *out, st_error *err);

#endif
