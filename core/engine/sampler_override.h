/*
 * core/engine/sampler_override.h - the sampler chain of one request whose
 * st_generate_params override some samplers' parameters, or add a
 * constraint sampler: those samplers are created afresh for the request,
 * the others are the engine's own instances. The request's chain is put in
 * the engine while the request runs and the engine's own is put back when
 * it is closed, so st_engine_generate and a sequence share one way of
 * doing it.
 */
#ifndef ST_CORE_SAMPLER_OVERRIDE_H
#define ST_CORE_SAMPLER_OVERRIDE_H

#include "engine_internal.h"
#include "plugin_site.h"

typedef struct st_request_samplers {
    st_instance **chain;   /* [n]: what the request samples with */
    st_instance **owned;   /* [n]: the fresh ones (NULL where the engine's) */
    size_t n;
    st_engine_plugin constraint; /* the request's constraint sampler's library */
    char *constraint_key;  /* the text that made it (constraint_key) */
    size_t constraint_key_len;
    st_engine *e;          /* the engine whose chain the request changes */
    st_instance **engine_chain; /* e's own chain and length, put back on close */
    size_t engine_n;
    st_logit_bias *bias;   /* the request's logit biases, copied, on e's chain */
} st_request_samplers;

/* Check the request's sampling parameters (overrides, constraint, logit
 * biases, the number of top log-probabilities) and, when it overrides or
 * constrains, put its chain in e->chain (its biases in any case). With neither, out->chain is NULL and the
 * engine's chain serves. */
st_status st_request_samplers_open(st_engine *e, const st_generate_params *params,
                                   st_request_samplers *out, st_error *err);
/* Put the engine's own chain back and free the request's samplers; the
 * constraint sampler is kept for the next request with the same one. */
void st_request_samplers_close(st_request_samplers *rs);
/* Release the kept constraint sampler (st_engine_close). */
void st_request_constraint_forget(st_engine *e);

#endif
