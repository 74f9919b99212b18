/*
 * core/value.c - the generic YAML value tree: copy, free, look up.
 * Copies keep `file`, `line` and `col`, so a value merged from a parent
 * manifest still points at the file it was written in.
 */
#include "value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *st_value_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

st_value *st_value_clone(const st_value *v)
{
    if (!v)
        return NULL;
    st_value *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->type = v->type;
    c->file = v->file;
    c->line = v->line;
    c->col = v->col;
    c->b = v->b;
    c->i = v->i;
    c->f = v->f;
    if (v->s && !(c->s = strdup(v->s)))
        goto fail;
    if (v->type == ST_VALUE_LIST && v->n) {
        if (!(c->items = calloc(v->n, sizeof *c->items)))
            goto fail;
        for (size_t k = 0; k < v->n; k++) {
            c->n = k + 1; /* count what is allocated so free() is exact */
            if (!(c->items[k] = st_value_clone(v->items[k])))
                goto fail;
        }
    } else if (v->type == ST_VALUE_MAP && v->n) {
        if (!(c->entries = calloc(v->n, sizeof *c->entries)))
            goto fail;
        for (size_t k = 0; k < v->n; k++) {
            c->n = k + 1;
            c->entries[k].line = v->entries[k].line;
            c->entries[k].col = v->entries[k].col;
            if (!(c->entries[k].key = st_value_strdup(v->entries[k].key)) ||
                !(c->entries[k].value = st_value_clone(v->entries[k].value)))
                goto fail;
        }
    }
    return c;
fail:
    st_value_free(c);
    return NULL;
}

void st_value_free(st_value *v)
{
    if (!v)
        return;
    if (v->items)
        for (size_t k = 0; k < v->n; k++)
            st_value_free(v->items[k]);
    if (v->entries)
        for (size_t k = 0; k < v->n; k++) {
            free(v->entries[k].key);
            st_value_free(v->entries[k].value);
        }
    free(v->items);
    free(v->entries);
    free(v->s);
    free(v);
}

const st_value *st_value_get(const st_value *map, const char *key)
{
    if (!map || map->type != ST_VALUE_MAP || !key)
        return NULL;
    for (size_t k = 0; k < map->n; k++)
        if (map->entries[k].key && strcmp(map->entries[k].key, key) == 0)
            return map->entries[k].value;
    return NULL;
}

const char *st_value_type_name(st_value_type t)
{
    switch (t) {
    case ST_VALUE_NULL: return "null";
    case ST_VALUE_BOOL: return "bool";
    case ST_VALUE_INT: return "int";
    case ST_VALUE_FLOAT: return "float";
    case ST_VALUE_STRING: return "string";
    case ST_VALUE_LIST: return "list";
    case ST_VALUE_MAP: return "map";
    }
    return "unknown";
}

/* Put v (owned) under `key` of a MAP, replacing what was there. */
static bool map_put(st_value *map, const char *key, st_value *v)
{
    for (size_t k = 0; k < map->n; k++)
        if (map->entries[k].key && strcmp(map->entries[k].key, key) == 0) {
            st_value_free(map->entries[k].value);
            map->entries[k].value = v;
            return true;
        }
    st_value_entry *grown = realloc(map->entries, (map->n + 1) * sizeof *grown);
    char *k = strdup(key);
    if (!grown || !k) {
        if (grown)
            map->entries = grown;
        free(k);
        st_value_free(v);
        return false;
    }
    map->entries = grown;
    map->entries[map->n++] = (st_value_entry){k, v, 0, 0};
    return true;
}

/* A scalar of type t whose text is `text` (copied); NULL when out of
 * memory. */
static st_value *scalar(st_value_type t, const char *text)
{
    st_value *v = calloc(1, sizeof *v);
    if (!v || !(v->s = strdup(text))) {
        free(v);
        return NULL;
    }
    v->type = t;
    return v;
}

bool st_value_map_set_float(st_value *map, const char *key, double f)
{
    if (!map || map->type != ST_VALUE_MAP || !key)
        return false;
    char text[32];
    snprintf(text, sizeof text, "%.9g", f);
    st_value *v = scalar(ST_VALUE_FLOAT, text);
    if (!v)
        return false;
    v->f = f;
    return map_put(map, key, v);
}

bool st_value_map_set_number(st_value *map, const char *key, double f)
{
    /* An integral value is an INT, which a float parameter accepts too. */
    if (!(f >= -9.0e15 && f <= 9.0e15) || f != (double)(int64_t)f)
        return st_value_map_set_float(map, key, f);
    if (!map || map->type != ST_VALUE_MAP || !key)
        return false;
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)f);
    st_value *v = scalar(ST_VALUE_INT, text);
    if (!v)
        return false;
    v->i = (int64_t)f;
    return map_put(map, key, v);
}

bool st_value_map_set_string(st_value *map, const char *key, const char *text)
{
    if (!map || map->type != ST_VALUE_MAP || !key || !text)
        return false;
    st_value *v = scalar(ST_VALUE_STRING, text);
    return v && map_put(map, key, v);
}

bool st_value_map_set_bool(st_value *map, const char *key, bool b)
{
    if (!map || map->type != ST_VALUE_MAP || !key)
        return false;
    st_value *v = scalar(ST_VALUE_BOOL, b ? "true" : "false");
    if (!v)
        return false;
    v->b = b;
    return map_put(map, key, v);
}
