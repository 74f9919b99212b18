/*
 * sampler `json-schema`: the output is one JSON value valid for a JSON
 * Schema. The schema is compiled to GBNF (cg_schema.c) and run by the
 * constraint engine; what it cannot enforce is refused at create time,
 * naming the keyword and its line:column, or (strict: false) logged as a
 * warning.
 */
#include <stretch/params.h>

#include "cg_open.h"

static st_status schema_create(const st_host_services *host, const st_params *params,
                               void **inst, st_error *err)
{
    cg_schema_options opt = {
        .strict = st_param_bool(params, "strict"),
        .compact = st_param_is(params, "whitespace", "compact"),
        .open_objects = st_param_bool(params, "open-objects"),
    };
    cg_constraint *c = host->calloc(host->host, 1, sizeof *c);
    if (!c)
        return host->error(err, ST_E_NOMEM, "json-schema: out of memory");
    st_status st = cg_open_spec(c, host, "json-schema", CG_KIND_JSON_SCHEMA,
                                st_param_str(params, "schema"), &opt, err);
    if (st != ST_OK) {
        host->free(host->host, c);
        return st;
    }
    *inst = c;
    return ST_OK;
}

static void schema_destroy(void *inst)
{
    cg_constraint *c = inst;
    if (!c)
        return;
    const st_host_services *host = c->host;
    cg_constraint_close(c);
    host->free(host->host, c);
}

static st_status schema_apply(void *inst, st_candidates *cands, st_error *err)
{
    return cg_constraint_apply(inst, cands, err);
}

static st_status schema_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return cg_constraint_accept(inst, token, is_prompt, err);
}

static void schema_reset(void *inst, uint64_t seed)
{
    (void)seed;
    cg_constraint_reset(inst);
}

static const st_sampler_ops schema_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = schema_apply,
    .accept = schema_accept,
    .reset = schema_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "json-schema", "0.1.0",
          "Keeps only the tokens that keep the output valid JSON for a JSON Schema",
          schema_create, schema_destroy, &schema_ops, NULL);
