/*
 * core/engine/logprobs.h - a generated token's log-probability and the
 * likeliest tokens at its step, from the step's raw logits
 * (st_generate_params.on_logprobs).
 */
#ifndef ST_CORE_LOGPROBS_H
#define ST_CORE_LOGPROBS_H

#include <stretch/stretch.h>

#include "threadpool.h"

/* Compute them over logits[n_vocab] and call fn(user, ...). */
void st_logprobs_report(const float *logits, uint32_t n_vocab, int32_t token, uint32_t n_top,
                        st_logprobs_fn fn, void *user);

/* The prompt's own log-probabilities (st_generate_params.on_prompt_logprobs)
 * from one prefill block's logits: rows[r] (k rows) follows prompt token
 * first + r and predicts the next one, reported while that is a prompt
 * token (the last prompt token's row predicts the first generated token:
 * not reported). The rows are computed on `pool`'s threads (NULL: the
 * caller's alone) and reported in order on the caller. */
void st_prompt_logprobs_report(const float *rows, size_t k, const int32_t *prompt,
                               size_t n_prompt, size_t first, uint32_t n_vocab, uint32_t n_top,
                               st_threadpool *pool, st_logprobs_fn fn, void *user);

/* The prefill block of a request that wants them: each block's rows of
 * logits are held at once, so it is kept smaller than the engine's. */
#define ST_PROMPT_LOGPROBS_BLOCK 64

#endif
