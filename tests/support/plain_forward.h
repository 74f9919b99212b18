/*
 * tests/support/plain_forward.h - the direct computation the scoring tests
 * compare against: one st_forward over all tokens in a fresh f32 cache
 * (the model's own RoPE, dense causal attention), log-softmax by hand.
 */
#ifndef ST_TEST_PLAIN_FORWARD_H
#define ST_TEST_PLAIN_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* logprob[t] = log p(tokens[t] | tokens[<t]) (logprob[0] = 0), and when
 * `weights` is not NULL the attention weights of `layer` (-1 = last),
 * summed over heads, [n][n]. Either output may be NULL. ST_OK or the
 * forward pass's status (message in diag). */
st_status st_test_plain_forward(const st_model *m, const int32_t *tokens, size_t n,
                                int32_t layer, float *logprob, float *weights, st_diag *diag);

#endif
