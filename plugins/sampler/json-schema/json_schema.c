/*
 * sampler `json-schema`: the output is one JSON value valid for a JSON
 * Schema. The schema is compiled to GBNF (cg_schema.c) and run by the
 * constraint engine; what it cannot enforce is refused at create time,
 * naming the keyword and its line:column, or (strict: false) logged as a
 * warning.
 */
#include <stretch/params.h>

#include "cg_sampler.h"

static st_status schema_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    cg_schema_options opt = {
        .strict = st_param_bool(params, "strict"),
        .compact = st_param_is(params, "whitespace", "compact"),
        .open_objects = st_param_bool(params, "open-objects"),
        .max_digits = (int)st_param_int(params, "max-digits"),
    };
    return cg_sampler_create(host, "json-schema", CG_KIND_JSON_SCHEMA,
                             st_param_str(params, "schema"), &opt, inst, err);
}

ST_PLUGIN(ST_KIND_SAMPLER, "json-schema", "0.1.0",
          "Keeps only the tokens that keep the output valid JSON for a JSON Schema",
          schema_create, cg_sampler_destroy, &cg_sampler_ops, NULL);
