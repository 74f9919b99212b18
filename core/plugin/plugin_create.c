/*
 * core/plugin_create.c - hand a plugin its parameters as its ABI minor
 * expects. The host keeps msgpack internally (validated parameters are
 * packed once and travel to a conformance child as bytes); since ABI 1.2
 * a plugin sees a plain read-only view instead, so msgpack is no longer
 * part of the ABI.
 */
#include "plugin_create.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct param_view {
    st_params pub;
    st_param_value *values;
    char *strings;            /* every key and string, NUL-terminated */
    st_param_reads *reads;
} param_view;

static const st_param_value *view_find(const st_params *p, const char *key)
{
    for (uint32_t i = 0; i < p->count; i++)
        if (strcmp(p->values[i].key, key) == 0)
            return &p->values[i];
    param_view *v = p->host_data;
    if (v && v->reads) {
        if (v->reads->n_undeclared++ == 0) {
            strncpy(v->reads->first_undeclared, key, sizeof v->reads->first_undeclared - 1);
            v->reads->first_undeclared[sizeof v->reads->first_undeclared - 1] = '\0';
        }
    }
    return NULL;
}

static char *copy_str(char **cursor, const char *s, size_t n)
{
    char *out = *cursor;
    memcpy(out, s, n);
    out[n] = '\0';
    *cursor += n + 1;
    return out;
}

/* The validator packs ints as integers, floats as FLOAT64, bools as
 * BOOLEAN and strings and enums as STR; the schema type is not in the
 * map, so strings are reported as ST_PARAM_STRING (st_param_is and
 * st_param_str treat both alike). */
static st_status view_build(const msgpack_object *map, param_view *v, st_error *err)
{
    memset(v, 0, sizeof *v);
    uint32_t n = map && map->type == MSGPACK_OBJECT_MAP ? map->via.map.size : 0;
    size_t bytes = 0;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key, *val = &map->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR)
            goto bad;
        bytes += k->via.str.size + 1;
        if (val->type == MSGPACK_OBJECT_STR)
            bytes += val->via.str.size + 1;
    }
    v->values = calloc(n ? n : 1, sizeof *v->values);
    v->strings = malloc(bytes ? bytes : 1);
    if (!v->values || !v->strings) {
        free(v->values);
        free(v->strings);
        err->status = ST_E_NOMEM;
        snprintf(err->message, sizeof err->message, "out of memory for the parameter view");
        return ST_E_NOMEM;
    }
    char *cursor = v->strings;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key, *val = &map->via.map.ptr[i].val;
        st_param_value *pv = &v->values[i];
        pv->key = copy_str(&cursor, k->via.str.ptr, k->via.str.size);
        switch (val->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            pv->type = ST_PARAM_INT;
            pv->i = val->via.u64 > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)val->via.u64;
            pv->f = (double)pv->i;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            pv->type = ST_PARAM_INT;
            pv->i = val->via.i64;
            pv->f = (double)pv->i;
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            pv->type = ST_PARAM_FLOAT;
            pv->f = val->via.f64;
            break;
        case MSGPACK_OBJECT_BOOLEAN:
            pv->type = ST_PARAM_BOOL;
            pv->b = val->via.boolean;
            break;
        case MSGPACK_OBJECT_STR:
            pv->type = ST_PARAM_STRING;
            pv->s = copy_str(&cursor, val->via.str.ptr, val->via.str.size);
            pv->len = val->via.str.size;
            break;
        default:
            free(v->values);
            free(v->strings);
            goto bad;
        }
    }
    v->pub.struct_size = (uint32_t)sizeof v->pub;
    v->pub.count = n;
    v->pub.values = v->values;
    v->pub.find = view_find;
    v->pub.host_data = v;
    return ST_OK;
bad:
    err->status = ST_E_INTERNAL;
    snprintf(err->message, sizeof err->message,
             "validated parameters hold a value of an unknown type (a bug in stretch)");
    return ST_E_INTERNAL;
}

/* The 1.0-1.1 create() signature. Calling through the entry's pointer
 * with this type is what those plugins were compiled for: both are a
 * pointer in the same argument slot. */
typedef st_status (*create_v1_1)(const st_host_services *host, const msgpack_object *params,
                                 void **inst, st_error *err);

st_status st_plugin_create(const st_plugin_entry *e, const st_host_services *host,
                           const msgpack_object *map, void **inst, st_error *err,
                           st_param_reads *reads)
{
    if (reads)
        memset(reads, 0, sizeof *reads);
    if (e->abi_minor < 2) {
        msgpack_object empty = {.type = MSGPACK_OBJECT_MAP};
        create_v1_1 create = (create_v1_1)(void (*)(void))e->create;
        return create(host, map ? map : &empty, inst, err);
    }
    param_view v;
    st_status st = view_build(map, &v, err);
    if (st != ST_OK)
        return st;
    v.reads = reads;
    st = e->create(host, &v.pub, inst, err);
    free(v.values);
    free(v.strings);
    return st;
}
