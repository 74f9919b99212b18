/*
 * core/engine/logprobs.h - a generated token's log-probability and the
 * likeliest tokens at its step, from the step's raw logits
 * (st_generate_params.on_logprobs).
 */
#ifndef ST_CORE_LOGPROBS_H
#define ST_CORE_LOGPROBS_H

#include <stretch/stretch.h>

/* Compute them over logits[n_vocab] and call fn(user, ...). */
void st_logprobs_report(const float *logits, uint32_t n_vocab, int32_t token, uint32_t n_top,
                        st_logprobs_fn fn, void *user);

#endif
