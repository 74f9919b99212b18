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

/* The next piece of a prompt prefilled for its log-probabilities, `done`
 * of n tokens in: at most ST_PROMPT_LOGPROBS_BLOCK, within the engine's
 * own block (`block`), and never leaving a piece of under 8 rows where the
 * engine's block has 8 or more. A block of 8 rows or more takes the tiled
 * attention (forward.c's TILED_MIN_Q) and gives the same logits however
 * it is cut; fewer take the gather path, whose rounding differs. So the
 * pieces give the logits the plain prefill gives, and the answer after an
 * echoed prompt is the answer without echo. */
size_t st_prompt_logprobs_piece(size_t done, size_t n, size_t block);

#endif
