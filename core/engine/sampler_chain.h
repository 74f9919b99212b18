/*
 * core/sampler_chain.h - the strategy's samplers run in manifest order over
 * one step's candidates. Owns the candidate buffer so a step allocates
 * nothing.
 */
#ifndef ST_CORE_SAMPLER_CHAIN_H
#define ST_CORE_SAMPLER_CHAIN_H

#include <stretch/plugin.h>
#include "registry.h"

typedef struct st_sampler_chain {
    st_instance **samplers;  /* not owned */
    size_t n;
    st_candidate *cands;     /* [n_vocab] */
    uint32_t n_vocab;
    const st_logit_bias *bias; /* [n_bias], the request's (not owned), or NULL */
    size_t n_bias;
} st_sampler_chain;

st_status st_sampler_chain_init(st_sampler_chain *c, st_instance **samplers, size_t n,
                                uint32_t n_vocab, st_error *err);
void st_sampler_chain_free(st_sampler_chain *c);
void st_sampler_chain_reset(st_sampler_chain *c, uint64_t seed);
/* Tell every sampler about a token (prompt or chosen). */
st_status st_sampler_chain_accept(st_sampler_chain *c, int32_t token, bool is_prompt,
                                  st_error *err);
/* Build candidates from logits (plus the request's biases), run the
 * chain, return the pick. A chain
 * whose samplers all leave `selected` unset is an error naming the last
 * sampler (the manifest should end with a picking sampler). */
st_status st_sampler_chain_sample(st_sampler_chain *c, const float *logits,
                                  int32_t *token, st_error *err);

#endif
