/*
 * plugins/sampler/constraint/cg_sampler.c - see cg_sampler.h.
 */
#include "cg_sampler.h"

st_status cg_sampler_create(const st_host_services *host, const char *plugin, cg_kind kind,
                            const char *spec, const cg_schema_options *opt, void **inst,
                            st_error *err)
{
    cg_constraint *c = host->calloc(host->host, 1, sizeof *c);
    if (!c)
        return host->error(err, ST_E_NOMEM, "%s: out of memory", plugin);
    st_status st = cg_open_spec(c, host, plugin, kind, spec, opt, err);
    if (st != ST_OK) {
        host->free(host->host, c);
        return st;
    }
    *inst = c;
    return ST_OK;
}

void cg_sampler_destroy(void *inst)
{
    cg_constraint *c = inst;
    if (!c)
        return;
    const st_host_services *host = c->host;
    cg_constraint_close(c);
    host->free(host->host, c);
}

static st_status sampler_apply(void *inst, st_candidates *cands, st_error *err)
{
    return cg_constraint_apply(inst, cands, err);
}

static st_status sampler_accept(void *inst, int32_t token, bool is_prompt, st_error *err)
{
    return cg_constraint_accept(inst, token, is_prompt, err);
}

static void sampler_reset(void *inst, uint64_t seed)
{
    (void)seed;
    cg_constraint_reset(inst);
}

const st_sampler_ops cg_sampler_ops = {
    .struct_size = sizeof(st_sampler_ops),
    .apply = sampler_apply,
    .accept = sampler_accept,
    .reset = sampler_reset,
};
