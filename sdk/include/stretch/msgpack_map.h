/*
 * stretch/msgpack_map.h - typed reads from a msgpack map: for plugins that
 * keep their own files in msgpack (bm25's and squeezed's indexes) and for
 * ABI 1.1 sources, whose create() received its parameters as a msgpack
 * map (stretch/params_msgpack.h maps the 1.1 names onto these).
 * Header-only; needs msgpack-c's headers, never libstretch.
 *
 * Each getter returns ST_OK and sets *out when `key` is present with a
 * compatible type, ST_E_NOT_FOUND when absent, ST_E_INVALID when the type
 * differs.
 */
#ifndef STRETCH_MSGPACK_MAP_H
#define STRETCH_MSGPACK_MAP_H

#include <string.h>
#include <msgpack.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

static inline const msgpack_object *st_mp_find(const msgpack_object *map,
                                                  const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static inline st_status st_mp_int(const msgpack_object *map, const char *key,
                                     int64_t *out)
{
    const msgpack_object *v = st_mp_find(map, key);
    if (!v)
        return ST_E_NOT_FOUND;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (v->via.u64 > (uint64_t)INT64_MAX)
            return ST_E_RANGE;
        *out = (int64_t)v->via.u64;
    } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
    } else {
        return ST_E_INVALID;
    }
    return ST_OK;
}

static inline st_status st_mp_float(const msgpack_object *map, const char *key,
                                       double *out)
{
    const msgpack_object *v = st_mp_find(map, key);
    if (!v)
        return ST_E_NOT_FOUND;
    switch (v->type) {
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = v->via.f64; return ST_OK;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)v->via.u64; return ST_OK;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)v->via.i64; return ST_OK;
    default: return ST_E_INVALID;
    }
}

static inline st_status st_mp_bool(const msgpack_object *map, const char *key,
                                      bool *out)
{
    const msgpack_object *v = st_mp_find(map, key);
    if (!v)
        return ST_E_NOT_FOUND;
    if (v->type != MSGPACK_OBJECT_BOOLEAN)
        return ST_E_INVALID;
    *out = v->via.boolean;
    return ST_OK;
}

/* The string is not NUL-terminated and lives only as long as `map`. */
static inline st_status st_mp_str(const msgpack_object *map, const char *key,
                                     const char **out, size_t *len)
{
    const msgpack_object *v = st_mp_find(map, key);
    if (!v)
        return ST_E_NOT_FOUND;
    if (v->type != MSGPACK_OBJECT_STR)
        return ST_E_INVALID;
    *out = v->via.str.ptr;
    *len = v->via.str.size;
    return ST_OK;
}

/* True when string parameter `key` equals `want` (enum comparisons). */
static inline bool st_mp_str_is(const msgpack_object *map, const char *key,
                                   const char *want)
{
    const char *s;
    size_t n;
    if (st_mp_str(map, key, &s, &n) != ST_OK)
        return false;
    return n == strlen(want) && memcmp(s, want, n) == 0;
}

#ifdef __cplusplus
}
#endif
#endif
