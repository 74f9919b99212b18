/*
 * core/gguf_meta.c - typed access to GGUF metadata. The values were bounds-
 * checked when the file was opened (gguf.c), so these only convert types.
 * Integers of any width and bools read as int; f32/f64 (and integers) as
 * float; array elements are located in O(1) (string arrays through the
 * offsets precomputed at open).
 */
#include "gguf.h"

#include <string.h>

static uint64_t le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

const st_gguf_kv *st_gguf_find(const st_gguf *g, const char *key)
{
    if (!g || !key)
        return NULL;
    size_t n = strlen(key);
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key_len == n && memcmp(g->kv[i].key, key, n) == 0)
            return &g->kv[i];
    return NULL;
}

/* Decode one scalar at p as integer; ST_E_FORMAT for non-integer types,
 * ST_E_RANGE for a u64 above INT64_MAX. */
static st_status scalar_int(st_gguf_vtype t, const uint8_t *p, int64_t *out)
{
    switch (t) {
    case ST_GGUF_U8: case ST_GGUF_BOOL: *out = p[0]; return ST_OK;
    case ST_GGUF_I8: *out = (int8_t)p[0]; return ST_OK;
    case ST_GGUF_U16: *out = (int64_t)le(p, 2); return ST_OK;
    case ST_GGUF_I16: *out = (int16_t)le(p, 2); return ST_OK;
    case ST_GGUF_U32: *out = (int64_t)le(p, 4); return ST_OK;
    case ST_GGUF_I32: *out = (int32_t)(uint32_t)le(p, 4); return ST_OK;
    case ST_GGUF_I64: *out = (int64_t)le(p, 8); return ST_OK;
    case ST_GGUF_U64: {
        uint64_t v = le(p, 8);
        if (v > (uint64_t)INT64_MAX)
            return ST_E_RANGE;
        *out = (int64_t)v;
        return ST_OK;
    }
    default: return ST_E_FORMAT;
    }
}

static st_status scalar_float(st_gguf_vtype t, const uint8_t *p, double *out)
{
    if (t == ST_GGUF_F32) {
        uint32_t u = (uint32_t)le(p, 4);
        float f;
        memcpy(&f, &u, 4);
        *out = f;
        return ST_OK;
    }
    if (t == ST_GGUF_F64) {
        uint64_t u = le(p, 8);
        memcpy(out, &u, 8);
        return ST_OK;
    }
    if (t == ST_GGUF_U64) {
        *out = (double)le(p, 8);
        return ST_OK;
    }
    int64_t i;
    st_status s = scalar_int(t, p, &i);
    if (s == ST_OK)
        *out = (double)i;
    return s;
}

st_status st_gguf_get_int(const st_gguf *g, const char *key, int64_t *out)
{
    const st_gguf_kv *kv = st_gguf_find(g, key);
    if (!kv)
        return ST_E_NOT_FOUND;
    return scalar_int(kv->type, kv->data, out);
}

st_status st_gguf_get_float(const st_gguf *g, const char *key, double *out)
{
    const st_gguf_kv *kv = st_gguf_find(g, key);
    if (!kv)
        return ST_E_NOT_FOUND;
    if (kv->type == ST_GGUF_BOOL)
        return ST_E_FORMAT;
    return scalar_float(kv->type, kv->data, out);
}

st_status st_gguf_get_string(const st_gguf *g, const char *key, const char **s, uint64_t *len)
{
    const st_gguf_kv *kv = st_gguf_find(g, key);
    if (!kv)
        return ST_E_NOT_FOUND;
    if (kv->type != ST_GGUF_STRING)
        return ST_E_FORMAT;
    *len = le(kv->data, 8);
    *s = (const char *)kv->data + 8;
    return ST_OK;
}

/* The element i of an array of fixed-size scalars, or NULL. */
static const st_gguf_kv *array_kv(const st_gguf *g, const char *key, uint64_t i, st_status *st)
{
    const st_gguf_kv *kv = st_gguf_find(g, key);
    if (!kv) {
        *st = ST_E_NOT_FOUND;
        return NULL;
    }
    if (kv->type != ST_GGUF_ARRAY) {
        *st = ST_E_FORMAT;
        return NULL;
    }
    if (i >= kv->array_len) {
        *st = ST_E_RANGE;
        return NULL;
    }
    *st = ST_OK;
    return kv;
}

st_status st_gguf_array_string(const st_gguf *g, const char *key, uint64_t i,
                               const char **s, uint64_t *len)
{
    st_status st;
    const st_gguf_kv *kv = array_kv(g, key, i, &st);
    if (!kv)
        return st;
    if (kv->array_type != ST_GGUF_STRING || !kv->str_offsets)
        return ST_E_FORMAT;
    const uint8_t *p = kv->data + kv->str_offsets[i];
    *len = le(p, 8);
    *s = (const char *)p + 8;
    return ST_OK;
}

st_status st_gguf_array_int(const st_gguf *g, const char *key, uint64_t i, int64_t *out)
{
    st_status st;
    const st_gguf_kv *kv = array_kv(g, key, i, &st);
    if (!kv)
        return st;
    uint64_t sz = st_gguf_scalar_size(kv->array_type);
    if (sz == 0)
        return ST_E_FORMAT;
    return scalar_int(kv->array_type, kv->data + i * sz, out);
}

st_status st_gguf_array_float(const st_gguf *g, const char *key, uint64_t i, double *out)
{
    st_status st;
    const st_gguf_kv *kv = array_kv(g, key, i, &st);
    if (!kv)
        return st;
    uint64_t sz = st_gguf_scalar_size(kv->array_type);
    if (sz == 0 || kv->array_type == ST_GGUF_BOOL)
        return ST_E_FORMAT;
    return scalar_float(kv->array_type, kv->data + i * sz, out);
}

static st_meta_type meta_type_of(st_gguf_vtype t)
{
    switch (t) {
    case ST_GGUF_F32: case ST_GGUF_F64: return ST_META_FLOAT;
    case ST_GGUF_STRING: return ST_META_STRING;
    case ST_GGUF_ARRAY: return ST_META_ARRAY;
    default: return ST_META_INT;
    }
}

st_status st_gguf_meta_value(const st_gguf *g, const char *key, st_meta_value *out)
{
    const st_gguf_kv *kv = st_gguf_find(g, key);
    if (!kv)
        return ST_E_NOT_FOUND;
    memset(out, 0, sizeof *out);
    out->type = meta_type_of(kv->type);
    switch (out->type) {
    case ST_META_INT: {
        st_status s = scalar_int(kv->type, kv->data, &out->i);
        if (s == ST_E_RANGE) {
            /* a u64 above INT64_MAX: keep it readable as float */
            out->i = INT64_MAX;
            out->f = (double)le(kv->data, 8);
            return ST_OK;
        }
        out->f = (double)out->i;
        return s;
    }
    case ST_META_FLOAT:
        return scalar_float(kv->type, kv->data, &out->f);
    case ST_META_STRING:
        out->len = le(kv->data, 8);
        out->str = (const char *)kv->data + 8;
        return ST_OK;
    case ST_META_ARRAY:
        out->array_type = meta_type_of(kv->array_type);
        out->len = kv->array_len;
        return ST_OK;
    default:
        return ST_E_FORMAT;
    }
}
