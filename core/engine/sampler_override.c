/*
 * core/engine/sampler_override.c - per-request sampler parameters. The
 * manifest's parameters are cloned, the overridden keys set, and the
 * plugin's create() runs through the same validation as a manifest's
 * values, so a request can never hand a plugin what its schema refuses.
 */
#include "sampler_override.h"

#include <stdlib.h>
#include <string.h>

void st_request_samplers_close(st_request_samplers *rs)
{
    if (rs->owned)
        for (size_t i = 0; i < rs->n; i++)
            st_instance_destroy(rs->owned[i]);
    free(rs->owned);
    free(rs->chain);
    memset(rs, 0, sizeof *rs);
}

/* A fresh instance of chain sampler i with every override that names it. */
static st_status override_one(st_engine *e, size_t i, const st_sampler_override *ov,
                              size_t n_ov, st_instance **out, st_error *err)
{
    const st_value *base = e->strategy->samplers[i].params;
    st_value *params = base ? st_value_clone(base) : calloc(1, sizeof *params);
    if (!params)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    params->type = ST_VALUE_MAP;
    const char *name = e->samplers[i].lib->entry->name;
    for (size_t k = 0; k < n_ov; k++)
        if (strcmp(ov[k].plugin, name) == 0 && !st_value_map_set_float(params, ov[k].param,
                                                                        ov[k].value)) {
            st_value_free(params);
            return st_error_set(err, ST_E_NOMEM, "out of memory");
        }
    st_diag d;
    st_diag_clear(&d);
    st_status st = st_instance_create(e->samplers[i].lib, st_host_services_of(e->host), params,
                                      out, &d);
    st_value_free(params);
    if (st != ST_OK) {
        st_error_from_diag(err, &d);
        return st_engine_fail_wrap(err, st == ST_E_NOMEM ? st : ST_E_INVALID,
                                   "sampler '%s': the request's parameters are refused", name);
    }
    return ST_OK;
}

st_status st_request_samplers_open(st_engine *e, const st_sampler_override *ov, size_t n_ov,
                                   st_request_samplers *out, st_error *err)
{
    memset(out, 0, sizeof *out);
    if (!ov || n_ov == 0)
        return ST_OK;
    for (size_t k = 0; k < n_ov; k++)
        if (!ov[k].plugin || !ov[k].param)
            return st_error_set(err, ST_E_INVALID,
                                "sampler override %zu: plugin and param must both be set", k);
    out->n = e->n_samplers;
    out->chain = calloc(out->n ? out->n : 1, sizeof *out->chain);
    out->owned = calloc(out->n ? out->n : 1, sizeof *out->owned);
    if (!out->chain || !out->owned) {
        st_request_samplers_close(out);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < out->n; i++) {
        out->chain[i] = e->sampler_instances[i];
        bool named = false;
        for (size_t k = 0; k < n_ov; k++)
            named |= strcmp(ov[k].plugin, e->samplers[i].lib->entry->name) == 0;
        if (!named)
            continue;
        st_status st = override_one(e, i, ov, n_ov, &out->owned[i], err);
        if (st != ST_OK) {
            st_request_samplers_close(out);
            return st;
        }
        out->chain[i] = out->owned[i];
    }
    return ST_OK;
}
