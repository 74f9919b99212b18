/*
 * sampler `gbnf`: constrain generation to a llama.cpp GBNF grammar
 * (the .gbnf files of its grammars/ folder work unchanged). The grammar
 * is the `grammar` parameter: inline text (anything containing "::=") or
 * a file path.
 * Put it before the samplers that truncate or pick.
 */
#include <stretch/params.h>

#include "cg_sampler.h"

static st_status gbnf_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    return cg_sampler_create(host, "gbnf", CG_KIND_GBNF, st_param_str(params, "grammar"), NULL,
                             inst, err);
}

ST_PLUGIN(ST_KIND_SAMPLER, "gbnf", "0.1.0",
          "Keeps only the tokens that continue a llama.cpp GBNF grammar",
          gbnf_create, cg_sampler_destroy, &cg_sampler_ops, NULL);
