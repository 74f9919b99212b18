/*
 * stretch/sampler.h - ops of a `sampler` plugin. Samplers run as a chain in
 * the order the strategy manifest lists them; each edits the candidate
 * array (masks, logit edits, truncation) and one of them, normally the last,
 * picks by setting `selected`. After the token is chosen every sampler in
 * the chain sees it through `accept`.
 *
 * Threading: one instance serves one sequence at a time; calls on an
 * instance are never concurrent.
 */
#ifndef STRETCH_SAMPLER_H
#define STRETCH_SAMPLER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct st_candidate {
    int32_t id;
    float logit;
    float p;       /* filled by samplers that normalise; else 0 */
} st_candidate;

/* The candidates for one step. A sampler may reorder, shrink `size` (keep
 * the kept ones in data[0..size)) and edit logits; -INFINITY masks a token.
 * `sorted` says data is in descending logit order; set it false when you
 * break that. `selected` is an index into data, -1 until a sampler picks. */
typedef struct st_candidates {
    st_candidate *data;
    size_t size;
    bool sorted;
    int64_t selected;
} st_candidates;

typedef struct st_sampler_ops {
    uint32_t struct_size;

    /* Edit and/or pick. */
    st_status (*apply)(void *inst, st_candidates *cands, st_error *err);

    /* The token the chain chose (or, with is_prompt, a prompt token, so
     * penalties and constraints can see the history). Optional. */
    st_status (*accept)(void *inst, int32_t token, bool is_prompt, st_error *err);

    /* Start a new sequence; `seed` seeds any RNG (the request's seed). */
    void (*reset)(void *inst, uint64_t seed);
} st_sampler_ops;

#ifdef __cplusplus
}
#endif
#endif
