/*
 * sampler `regex`: the whole output must match a regular expression. The
 * pattern is translated to GBNF (cg_regex.c) and run by the constraint
 * engine; a pattern it cannot enforce is refused with its column.
 */
#include <stretch/params.h>

#include "cg_sampler.h"

static st_status regex_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    return cg_sampler_create(host, "regex", CG_KIND_REGEX, st_param_str(params, "pattern"), NULL,
                             inst, err);
}

ST_PLUGIN(ST_KIND_SAMPLER, "regex", "0.1.0",
          "Keeps only the tokens that keep the output a prefix of a regex match",
          regex_create, cg_sampler_destroy, &cg_sampler_ops, NULL);
