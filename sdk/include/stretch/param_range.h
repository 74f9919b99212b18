/*
 * stretch/param_range.h - read an optional number parameter and check its
 * range in one call, reporting through the host's error service with the
 * plugin's and the parameter's names:
 *
 *     int64_t window;
 *     st_status st = st_param_int_range(host, params, "streaming", "window",
 *                                       0, 0, 16777216, &window, err);
 *
 * gives "streaming: parameter window must be in [0, 16777216], got -3".
 * Header-only; it adds nothing to the ABI. The manifest's schema already
 * checks types (params.h), so the type errors only fire for a parameter
 * the manifest does not declare as the plugin reads it.
 *
 * For ABI 1.1 sources (ST_PLUGIN_PARAMS_MSGPACK): since ABI 1.2 the host
 * hands create() parameters already checked against plugin.yaml's ranges,
 * so a 1.2 plugin reads them with stretch/params.h and restates nothing.
 */
#ifndef STRETCH_PARAM_RANGE_H
#define STRETCH_PARAM_RANGE_H

#ifndef ST_PLUGIN_PARAMS_MSGPACK
#error "stretch/param_range.h reads ABI 1.1 msgpack parameters: define ST_PLUGIN_PARAMS_MSGPACK, or read 1.2 parameters with stretch/params.h (plugin.yaml holds the ranges)"
#endif
#include "params.h"
#include "services.h"

#ifdef __cplusplus
extern "C" {
#endif

/* *out = the integer `key` (def when absent), which must lie in [min, max]. */
static inline st_status st_param_int_range(const st_host_services *host,
                                           const msgpack_object *params, const char *plugin,
                                           const char *key, int64_t def, int64_t min,
                                           int64_t max, int64_t *out, st_error *err)
{
    int64_t v = def;
    *out = def;
    st_status st = st_param_int(params, key, &v);
    if (st != ST_OK && st != ST_E_NOT_FOUND)
        return host->error(err, ST_E_INVALID, "%s: parameter %s must be an integer", plugin,
                           key);
    if (v < min || v > max)
        return host->error(err, ST_E_RANGE, "%s: parameter %s must be in [%lld, %lld], got %lld",
                           plugin, key, (long long)min, (long long)max, (long long)v);
    *out = v;
    return ST_OK;
}

/* The same for a count that fits 32 bits (max <= UINT32_MAX). */
static inline st_status st_param_count(const st_host_services *host, const msgpack_object *params,
                                       const char *plugin, const char *key, int64_t def,
                                       int64_t min, int64_t max, uint32_t *out, st_error *err)
{
    int64_t v = 0;
    st_status st = st_param_int_range(host, params, plugin, key, def, min, max, &v, err);
    *out = st == ST_OK ? (uint32_t)v : (uint32_t)def;
    return st;
}

/* *out = the number `key` (def when absent), which must lie in [min, max]. */
static inline st_status st_param_float_range(const st_host_services *host,
                                             const msgpack_object *params, const char *plugin,
                                             const char *key, double def, double min,
                                             double max, double *out, st_error *err)
{
    double v = def;
    *out = def;
    st_status st = st_param_float(params, key, &v);
    if (st != ST_OK && st != ST_E_NOT_FOUND)
        return host->error(err, ST_E_INVALID, "%s: parameter %s must be a number", plugin, key);
    if (!(v >= min && v <= max))
        return host->error(err, ST_E_RANGE, "%s: parameter %s must be in [%g, %g], got %g",
                           plugin, key, min, max, v);
    *out = v;
    return ST_OK;
}

#ifdef __cplusplus
}
#endif
#endif
