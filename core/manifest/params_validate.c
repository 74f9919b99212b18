/*
 * core/params_validate.c - check a strategy's parameters for one plugin
 * against that plugin's schema and pack the complete, typed map the plugin
 * receives in create(). A plugin never sees a missing, mistyped or
 * out-of-range parameter: every such case stops here with the position of
 * the offending value.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/plugin.h>

#include "manifest.h"
#include "num_text.h"
#include "yaml_manifest.h"

static void st_params_range(const st_param_schema *p, char *buf, size_t cap)
{
    char lo[32], hi[32];
    st_num_text(p->min, lo, sizeof lo);
    st_num_text(p->max, hi, sizeof hi);
    if (p->has_min && p->has_max)
        snprintf(buf, cap, " in %s..%s", lo, hi);
    else if (p->has_min)
        snprintf(buf, cap, " >= %s", lo);
    else if (p->has_max)
        snprintf(buf, cap, " <= %s", hi);
    else
        buf[0] = '\0';
}

/* Check one given value against its schema entry. */
static st_status st_params_check_one(const st_plugin_manifest *m, const st_param_schema *p,
                                     const st_value *v, st_diag *diag)
{
    char what[96], range[96], list[512];
    const char *kind = st_kind_name(m->kind);
    bool ok = false;
    switch (p->type) {
    case ST_PARAM_INT: ok = v->type == ST_VALUE_INT; break;
    case ST_PARAM_FLOAT: ok = v->type == ST_VALUE_INT || v->type == ST_VALUE_FLOAT; break;
    case ST_PARAM_BOOL: ok = v->type == ST_VALUE_BOOL; break;
    case ST_PARAM_STRING:
    case ST_PARAM_ENUM: ok = v->type == ST_VALUE_STRING; break;
    }
    st_params_range(p, range, sizeof range);
    if (!ok) {
        const char *hint = "";
        if (p->type == ST_PARAM_BOOL && v->type == ST_VALUE_STRING)
            hint = " (write true or false)";
        else if (p->type == ST_PARAM_INT && v->type == ST_VALUE_FLOAT)
            hint = " (a float is not promoted to an int)";
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "parameter '%s' of %s plugin '%s': expected %s%s%s, found %s%s",
                                p->name, kind, m->name,
                                p->type == ST_PARAM_INT ? "an int" : p->type == ST_PARAM_FLOAT ? "a float"
                                : p->type == ST_PARAM_BOOL ? "a bool (true or false)"
                                : p->type == ST_PARAM_ENUM ? "one of " : "a string",
                                p->type == ST_PARAM_ENUM
                                    ? st_yaml_join((const char *const *)p->enum_values, p->n_enum, list, sizeof list)
                                    : "",
                                range, st_yaml_describe(v, what, sizeof what), hint);
    }
    if (p->type == ST_PARAM_ENUM) {
        for (size_t k = 0; k < p->n_enum; k++)
            if (strcmp(p->enum_values[k], v->s) == 0)
                return ST_OK;
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "parameter '%s' of %s plugin '%s': expected one of %s, found '%s'",
                                p->name, kind, m->name,
                                st_yaml_join((const char *const *)p->enum_values, p->n_enum, list, sizeof list),
                                v->s);
    }
    if (p->type == ST_PARAM_INT || p->type == ST_PARAM_FLOAT) {
        double x = v->type == ST_VALUE_INT ? (double)v->i : v->f;
        if ((p->has_min && !(x >= p->min)) || (p->has_max && !(x <= p->max)))
            return st_yaml_error_at(diag, ST_E_RANGE, v,
                                    "parameter '%s' of %s plugin '%s': expected a value%s, found %s",
                                    p->name, kind, m->name, range, v->s ? v->s : "?");
    }
    return ST_OK;
}

static st_status st_params_unknown(const st_plugin_manifest *m, const st_value *given,
                                   const st_value_entry *e, st_diag *diag)
{
    char hint[128] = "", list[512] = "";
    const char **names = calloc(m->n_params ? m->n_params : 1, sizeof *names);
    if (!names)
        return st_yaml_error_at(diag, ST_E_NOMEM, given, "out of memory");
    for (size_t k = 0; k < m->n_params; k++)
        names[k] = m->params[k].name;
    const char *close = st_yaml_closest(e->key, names, m->n_params, 2);
    if (close)
        snprintf(hint, sizeof hint, " (did you mean '%s'?)", close);
    st_yaml_join(names, m->n_params, list, sizeof list);
    free(names);
    if (m->n_params == 0)
        return st_yaml_error_at_key(diag, ST_E_INVALID, given, e,
                                    "unknown parameter '%s': %s plugin '%s' declares no parameters",
                                    e->key, st_kind_name(m->kind), m->name);
    return st_yaml_error_at_key(diag, ST_E_INVALID, given, e,
                                "unknown parameter '%s' for %s plugin '%s'%s; expected one of: %s",
                                e->key, st_kind_name(m->kind), m->name, hint, list);
}

static int st_params_pack_value(msgpack_packer *pk, const st_param_schema *p,
                                const st_value *v)
{
    switch (p->type) {
    case ST_PARAM_INT: return msgpack_pack_int64(pk, v->i);
    case ST_PARAM_FLOAT:
        return msgpack_pack_double(pk, v->type == ST_VALUE_INT ? (double)v->i : v->f);
    case ST_PARAM_BOOL: return v->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case ST_PARAM_STRING:
    case ST_PARAM_ENUM: {
        size_t n = strlen(v->s);
        int rc = msgpack_pack_str(pk, n);
        return rc ? rc : msgpack_pack_str_body(pk, v->s, n);
    }
    }
    return -1;
}

st_status st_params_validate(const st_plugin_manifest *m, const st_value *given,
                             msgpack_sbuffer *out, st_diag *diag)
{
    char what[96];
    if (!m || !out)
        return st_diag_set(diag, ST_E_INVALID, NULL, 0, 0, "st_params_validate: no manifest or buffer");
    if (given && given->type == ST_VALUE_NULL)
        given = NULL;
    if (given && given->type != ST_VALUE_MAP)
        return st_yaml_error_at(diag, ST_E_INVALID, given,
                                "params of %s plugin '%s': expected a mapping of parameter "
                                "name -> value, found %s", st_kind_name(m->kind), m->name,
                                st_yaml_describe(given, what, sizeof what));

    for (size_t k = 0; given && k < given->n; k++) {
        const st_value_entry *e = &given->entries[k];
        const st_param_schema *p = st_plugin_manifest_param(m, e->key);
        st_status st = p ? st_params_check_one(m, p, e->value, diag)
                         : st_params_unknown(m, given, e, diag);
        if (st != ST_OK)
            return st;
    }

    /* The value each parameter gets, in schema order; checked before any
     * byte is packed so `out` is untouched on error. */
    const st_value **chosen = calloc(m->n_params ? m->n_params : 1, sizeof *chosen);
    if (!chosen)
        return st_diag_set(diag, ST_E_NOMEM, m->path, 0, 0, "out of memory");
    for (size_t k = 0; k < m->n_params; k++) {
        const st_param_schema *p = &m->params[k];
        chosen[k] = given ? st_value_get(given, p->name) : NULL;
        if (!chosen[k])
            chosen[k] = p->default_value;
        if (!chosen[k]) {
            free(chosen);
            st_status st = ST_E_INVALID;
            const char *fmt = "missing required parameter '%s' (%s) of %s plugin '%s': it has no "
                              "default, so the strategy must give it";
            if (given)
                return st_yaml_error_at(diag, st, given, fmt, p->name, st_param_type_name(p->type),
                                        st_kind_name(m->kind), m->name);
            return st_diag_set(diag, st, m->path, 0, 0, fmt, p->name, st_param_type_name(p->type),
                               st_kind_name(m->kind), m->name);
        }
    }

    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    int rc = msgpack_pack_map(&pk, (uint32_t)m->n_params);
    for (size_t k = 0; rc == 0 && k < m->n_params; k++) {
        const st_param_schema *p = &m->params[k];
        size_t n = strlen(p->name);
        rc = msgpack_pack_str(&pk, n);
        if (rc == 0)
            rc = msgpack_pack_str_body(&pk, p->name, n);
        if (rc == 0)
            rc = st_params_pack_value(&pk, p, chosen[k]);
    }
    free(chosen);
    if (rc != 0)
        return st_diag_set(diag, ST_E_NOMEM, m->path, 0, 0, "out of memory packing parameters");
    return ST_OK;
}
