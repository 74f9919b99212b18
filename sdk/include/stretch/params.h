/*
 * stretch/params.h - read a plugin's parameters (ABI 1.2).
 *
 * The host validates a strategy's parameters against the plugin's
 * plugin.yaml (type, range, enum) and fills every default before create()
 * runs, so plugin.yaml is the one source of truth: a plugin reads a
 * declared parameter by name and never restates its default or range.
 *
 *     double p = st_param_float(params, "p");
 *     if (st_param_is(params, "mode", "fast")) ...
 *
 * The view, its keys and its strings belong to the host and are valid only
 * during create(): copy what you keep. Reading a name plugin.yaml does not
 * declare returns 0 / false / "" and is noted by the host; the conformance
 * suite (`stretch inspect`) reports it as a failure.
 *
 * ABI 1.1 sources, whose create() took a msgpack map, keep compiling
 * unchanged with `#define ST_PLUGIN_PARAMS_MSGPACK` before the first
 * stretch include (or -DST_PLUGIN_PARAMS_MSGPACK): they then get the 1.1
 * readers and declare ABI 1.1 in their entry.
 */
#ifndef STRETCH_PARAMS_H
#define STRETCH_PARAMS_H

#ifdef ST_PLUGIN_PARAMS_MSGPACK
#include "params_msgpack.h"
#else

#include <string.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One validated parameter. Exactly the field of its type is meaningful;
 * a float parameter given as an integer in YAML arrives as `f`. */
typedef struct st_param_value {
    const char *key;        /* NUL-terminated */
    st_param_type type;     /* INT, FLOAT, BOOL or STRING (enum values too) */
    int64_t i;              /* ST_PARAM_INT */
    double f;               /* ST_PARAM_FLOAT */
    bool b;                 /* ST_PARAM_BOOL */
    const char *s;          /* ST_PARAM_STRING / ST_PARAM_ENUM: NUL-terminated */
    size_t len;             /* strlen(s) */
} st_param_value;

/* Every parameter plugin.yaml declares, in its order, defaults filled. */
typedef struct st_params {
    uint32_t struct_size;   /* sizeof(st_params) */
    uint32_t count;
    const st_param_value *values;
    /* The host's lookup: NULL for a name plugin.yaml does not declare
     * (which the host notes). Use the readers below. */
    const st_param_value *(*find)(const struct st_params *params, const char *key);
    void *host_data;        /* the host's; do not touch */
} st_params;

static inline const st_param_value *st_param_get(const st_params *p, const char *key)
{
    if (!p || !key)
        return NULL;
    if (p->find)
        return p->find(p, key);
    for (uint32_t i = 0; i < p->count; i++)
        if (strcmp(p->values[i].key, key) == 0)
            return &p->values[i];
    return NULL;
}

static inline int64_t st_param_int(const st_params *p, const char *key)
{
    const st_param_value *v = st_param_get(p, key);
    if (!v)
        return 0;
    return v->type == ST_PARAM_FLOAT ? (int64_t)v->f : v->type == ST_PARAM_BOOL ? v->b : v->i;
}

static inline double st_param_float(const st_params *p, const char *key)
{
    const st_param_value *v = st_param_get(p, key);
    if (!v)
        return 0.0;
    return v->type == ST_PARAM_INT ? (double)v->i : v->f;
}

static inline bool st_param_bool(const st_params *p, const char *key)
{
    const st_param_value *v = st_param_get(p, key);
    return v && v->type == ST_PARAM_BOOL && v->b;
}

/* "" when absent or not a string; valid only during create(). */
static inline const char *st_param_str(const st_params *p, const char *key)
{
    const st_param_value *v = st_param_get(p, key);
    return v && v->s && (v->type == ST_PARAM_STRING || v->type == ST_PARAM_ENUM) ? v->s : "";
}

/* True when string or enum parameter `key` equals `want`. */
static inline bool st_param_is(const st_params *p, const char *key, const char *want)
{
    return strcmp(st_param_str(p, key), want) == 0;
}

#ifdef __cplusplus
}
#endif
#endif /* ST_PLUGIN_PARAMS_MSGPACK */
#endif
