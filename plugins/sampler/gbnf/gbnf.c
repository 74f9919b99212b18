/*
 * sampler `gbnf`: constrain generation to a llama.cpp GBNF grammar
 * (the .gbnf files of its grammars/ folder work unchanged). The grammar
 * is the `grammar` parameter: inline text (anything containing "::=") or
 * a file path.
 * Put it before the samplers that truncate or pick.
 */
#include <stretch/params.h>

#include "cg_open.h"

static st_status gbnf_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    cg_constraint *c = host->calloc(host->host, 1, sizeof *c);
    if (!c)
        return host->error(err, ST_E_NOMEM, "gbnf: out of memory");
    st_status st =
        cg_open_spec(c, host, "gbnf", CG_KIND_GBNF, st_param_str(params, "grammar"), NULL, err);
    if (st != ST_OK) {
        host->free(host->host, c);
        return st;
    }
    *inst = c;
    return ST_OK;
}

static void gbnf_destroy(void *inst)
{
    cg_constraint *c = inst;
    if (!c)
        return;
    const st_host_services *host = c->host;
    cg_constraint_close(c);
    host->free(host->host, c);
}

static st_status gbnf_apply(void *inst, st_candidates *cands, st_error *err)
{
    return cg_constraint_apply(inst, cands, err);
}

static st_status gbnf_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return cg_constraint_accept(inst, token, is_prompt, err);
}

static void gbnf_reset(void *inst, uint64_t seed)
{
    (void)seed;
    cg_constraint_reset(inst);
}

static const st_sampler_ops gbnf_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = gbnf_apply,
    .accept = gbnf_accept,
    .reset = gbnf_reset,
};

ST_PLUGIN(ST_KIND_SAMPLER, "gbnf", "0.1.0",
          "Keeps only the tokens that continue a llama.cpp GBNF grammar",
          gbnf_create, gbnf_destroy, &gbnf_ops, NULL);
