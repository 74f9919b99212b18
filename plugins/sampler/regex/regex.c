/*
 * sampler `regex`: the whole output must match a regular expression. The
 * pattern is translated to GBNF (cg_regex.c) and run by the constraint
 * engine; a pattern it cannot enforce is refused with its column.
 */
#include <stretch/params.h>

#include "cg_open.h"

static st_status regex_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    cg_constraint *c = host->calloc(host->host, 1, sizeof *c);
    if (!c)
        return host->error(err, ST_E_NOMEM, "regex: out of memory");
    st_status st =
        cg_open_spec(c, host, "regex", CG_KIND_REGEX, st_param_str(params, "pattern"), NULL, err);
    if (st != ST_OK) {
        host->free(host->host, c);
        return st;
    }
    *inst = c;
    return ST_OK;
}

static void regex_destroy(void *inst)
{
    cg_constraint *c = inst;
    if (!c)
        return;
    const st_host_services *host = c->host;
    cg_constraint_close(c);
    host->free(host->host, c);
}

static st_status regex_apply(void *inst, st_candidates *cands, st_error *err)
{
    return cg_constraint_apply(inst, cands, err);
}

static st_status regex_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return cg_constraint_accept(inst, token, is_prompt, err);
}

static void regex_reset(void *inst, uint64_t seed)
{
    (void)seed;
    cg_constraint_reset(inst);
}

static const st_sampler_ops regex_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = regex_apply,
    .accept = regex_accept,
    .reset = regex_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "regex", "0.1.0",
          "Keeps only the tokens that keep the output a prefix of a regex match",
          regex_create, regex_destroy, &regex_ops, NULL);
