/*
 * core/engine/sampler_override.h - the sampler chain of one request whose
 * st_generate_params override some samplers' parameters, or add a
 * constraint sampler: those samplers are created afresh for the request,
 * the others are the engine's own instances.
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
} st_request_samplers;

/* With no override and no constraint, out->chain is NULL: the engine's
 * chain serves. Otherwise the caller samples with out->chain[out->n]. */
st_status st_request_samplers_open(st_engine *e, const st_generate_params *params,
                                   st_request_samplers *out, st_error *err);
void st_request_samplers_close(st_request_samplers *rs);

#endif
