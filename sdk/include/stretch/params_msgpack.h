/*
 * stretch/params_msgpack.h - the ABI 1.1 parameter readers, for plugin
 * sources written against 1.1: their create() receives the validated
 * parameters as a msgpack map. Included by stretch/params.h when
 * ST_PLUGIN_PARAMS_MSGPACK is defined; new plugins use the 1.2 view
 * (stretch/params.h) instead.
 */
#ifndef STRETCH_PARAMS_MSGPACK_H
#define STRETCH_PARAMS_MSGPACK_H

#include "msgpack_map.h"

#ifdef __cplusplus
extern "C" {
#endif

static inline const msgpack_object *st_param_find(const msgpack_object *map, const char *key)
{
    return st_mp_find(map, key);
}
static inline st_status st_param_int(const msgpack_object *map, const char *key, int64_t *out)
{
    return st_mp_int(map, key, out);
}
static inline st_status st_param_float(const msgpack_object *map, const char *key, double *out)
{
    return st_mp_float(map, key, out);
}
static inline st_status st_param_bool(const msgpack_object *map, const char *key, bool *out)
{
    return st_mp_bool(map, key, out);
}
static inline st_status st_param_str(const msgpack_object *map, const char *key,
                                     const char **out, size_t *len)
{
    return st_mp_str(map, key, out, len);
}
static inline bool st_param_str_is(const msgpack_object *map, const char *key, const char *want)
{
    return st_mp_str_is(map, key, want);
}

#ifdef __cplusplus
}
#endif
#endif
