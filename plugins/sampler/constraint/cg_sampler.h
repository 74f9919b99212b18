/*
 * plugins/sampler/constraint/cg_sampler.h - a sampler instance that is one
 * constraint: the gbnf, regex and json-schema plugins differ only in how
 * they read their parameters, so their instance, destroy and ops live here
 * once.
 */
#ifndef ST_CG_SAMPLER_H
#define ST_CG_SAMPLER_H

#include <stretch/sampler.h>

#include "cg_open.h"

/* Allocate an instance and open it on `spec` (cg_open_spec); *inst is set
 * on success only. */
st_status cg_sampler_create(const st_host_services *host, const char *plugin, cg_kind kind,
                            const char *spec, const cg_schema_options *opt, void **inst,
                            st_error *err);
void cg_sampler_destroy(void *inst);

/* apply masks to the tokens that keep the output a valid prefix, accept
 * advances the constraint, reset starts it over. */
extern const st_sampler_ops cg_sampler_ops;

#endif
