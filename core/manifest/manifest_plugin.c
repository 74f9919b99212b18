/*
 * core/manifest_plugin.c - plugin.yaml: who a plugin is (name, kind,
 * version), where its library lies, which host features it needs, and the
 * schema its parameters are validated against. The inspector relies on this
 * alone, without running plugin code, so every field is checked here.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/plugin.h>

#include "manifest.h"
#include "num_text.h"
#include "paths.h"
#include "yaml_manifest.h"

static const char *const st_plugin_keys[] = {
    "format", "name", "kind", "version", "library", "summary",
    "requires", "optional", "params", NULL};

static const char *const st_param_keys[] = {
    "type", "default", "min", "max", "enum", "unit", "doc", NULL};

static const char *const st_feature_names[] = {
    "model", "opencl", "model-scoring", "attention-weights", "token-entropy", "vocab",
    "encoder"};
#define ST_N_FEATURES (sizeof st_feature_names / sizeof st_feature_names[0])

static const char *const st_param_type_names[] = {"int", "float", "bool", "string", "enum"};

const char *st_param_type_name(st_param_type t)
{
    if ((unsigned)t < sizeof st_param_type_names / sizeof st_param_type_names[0])
        return st_param_type_names[t];
    return "unknown";
}

st_kind st_kind_from_name(const char *name)
{
    for (int k = ST_KIND_TOKENIZER; name && k <= ST_KIND_RETRIEVER; k++)
        if (strcmp(name, st_kind_name((st_kind)k)) == 0)
            return (st_kind)k;
    return (st_kind)0;
}

static void st_strv_free(char **v, size_t n)
{
    for (size_t k = 0; v && k < n; k++)
        free(v[k]);
    free(v);
}

void st_plugin_manifest_free(st_plugin_manifest *m)
{
    if (!m)
        return;
    for (size_t k = 0; k < m->n_params; k++) {
        st_param_schema *p = &m->params[k];
        free(p->name);
        st_value_free(p->default_value);
        st_strv_free(p->enum_values, p->n_enum);
        free(p->unit);
        free(p->doc);
    }
    free(m->params);
    st_strv_free(m->requires, m->n_requires);
    st_strv_free(m->optional, m->n_optional);
    free(m->path);
    free(m->dir);
    free(m->name);
    free(m->version);
    free(m->library);
    free(m->library_path);
    free(m->summary);
    free(m);
}

const st_param_schema *st_plugin_manifest_param(const st_plugin_manifest *m,
                                                const char *name)
{
    for (size_t k = 0; m && name && k < m->n_params; k++)
        if (strcmp(m->params[k].name, name) == 0)
            return &m->params[k];
    return NULL;
}

static st_status st_nomem(st_diag *diag, const st_value *at)
{
    return st_yaml_error_at(diag, ST_E_NOMEM, at, "out of memory");
}

/* A required string key; `out` is strdup'd. */
static st_status st_take_string(const st_value *root, const char *key, const char *expect,
                                char **out, st_diag *diag)
{
    const st_value *v = st_value_get(root, key);
    char what[96];
    if (!v)
        return st_yaml_error_at(diag, ST_E_INVALID, root,
                                "missing required key '%s' (%s) in plugin manifest", key, expect);
    if (v->type != ST_VALUE_STRING || !v->s[0])
        return st_yaml_error_at(diag, ST_E_INVALID, v, "key '%s': expected %s, found %s",
                                key, expect, st_yaml_describe(v, what, sizeof what));
    if (!(*out = strdup(v->s)))
        return st_nomem(diag, v);
    return ST_OK;
}

/* 1.2.3, optionally followed by -pre.release or +build metadata. */
static bool st_is_semver_like(const char *s)
{
    for (int part = 0; part < 3; part++) {
        size_t n = strspn(s, "0123456789");
        if (n == 0)
            return false;
        s += n;
        if (part < 2) {
            if (*s != '.')
                return false;
            s++;
        }
    }
    if (*s == '\0')
        return true;
    if (*s != '-' && *s != '+')
        return false;
    s++;
    if (!*s)
        return false;
    return strspn(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-+") ==
           strlen(s);
}

static st_status st_parse_features(const st_value *root, const char *key, char ***out,
                                   size_t *n_out, st_diag *diag)
{
    const st_value *v = st_value_get(root, key);
    char what[96], list[256];
    if (!v)
        return ST_OK;
    if (v->type != ST_VALUE_LIST)
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "key '%s': expected a list of host features (%s), found %s", key,
                                st_yaml_join(st_feature_names, ST_N_FEATURES, list, sizeof list),
                                st_yaml_describe(v, what, sizeof what));
    if (v->n == 0)
        return ST_OK;
    char **names = calloc(v->n, sizeof *names);
    if (!names)
        return st_nomem(diag, v);
    for (size_t k = 0; k < v->n; k++) {
        const st_value *item = v->items[k];
        bool known = false;
        for (size_t j = 0; item->type == ST_VALUE_STRING && j < ST_N_FEATURES && !known; j++)
            known = strcmp(item->s, st_feature_names[j]) == 0;
        st_status st = ST_OK;
        if (!known) {
            char hint[96] = "";
            const char *close = item->type == ST_VALUE_STRING
                ? st_yaml_closest(item->s, st_feature_names, ST_N_FEATURES, 2) : NULL;
            if (close)
                snprintf(hint, sizeof hint, " (did you mean '%s'?)", close);
            st = st_yaml_error_at(diag, ST_E_INVALID, item,
                                  "key '%s': expected a host feature (%s), found %s%s", key,
                                  st_yaml_join(st_feature_names, ST_N_FEATURES, list, sizeof list),
                                  st_yaml_describe(item, what, sizeof what), hint);
        } else if (!(names[k] = strdup(item->s))) {
            st = st_nomem(diag, item);
        }
        if (st != ST_OK) {
            st_strv_free(names, v->n);
            return st;
        }
    }
    *out = names;
    *n_out = v->n;
    return ST_OK;
}

static bool st_is_number(const st_value *v)
{
    return v && (v->type == ST_VALUE_INT || v->type == ST_VALUE_FLOAT);
}

static double st_number(const st_value *v)
{
    return v->type == ST_VALUE_INT ? (double)v->i : v->f;
}

/* min/max of one parameter: numbers, ints for an int parameter. */
static st_status st_parse_bound(const st_value *spec, const char *pname, const char *key,
                                st_param_type type, bool *has, double *out, st_diag *diag)
{
    const st_value *v = st_value_get(spec, key);
    char what[96];
    if (!v)
        return ST_OK;
    if (type != ST_PARAM_INT && type != ST_PARAM_FLOAT)
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "parameter '%s': expected no '%s' for a %s parameter "
                                "(min/max apply to int and float only), found %s",
                                pname, key, st_param_type_name(type),
                                st_yaml_describe(v, what, sizeof what));
    bool ok = type == ST_PARAM_INT ? v->type == ST_VALUE_INT
                                   : st_is_number(v) && !isnan(st_number(v));
    if (!ok)
        return st_yaml_error_at(diag, ST_E_INVALID, v, "parameter '%s': expected '%s' to be %s, found %s",
                                pname, key, type == ST_PARAM_INT ? "an int" : "a number",
                                st_yaml_describe(v, what, sizeof what));
    *has = true;
    *out = st_number(v);
    return ST_OK;
}

static st_status st_parse_enum(const st_value *spec, st_param_schema *p, st_diag *diag)
{
    const st_value *v = st_value_get(spec, "enum");
    char what[96];
    if (p->type != ST_PARAM_ENUM) {
        if (!v)
            return ST_OK;
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "parameter '%s': expected no 'enum' list for a %s parameter "
                                "(use type: enum), found %s", p->name,
                                st_param_type_name(p->type), st_yaml_describe(v, what, sizeof what));
    }
    if (!v)
        return st_yaml_error_at(diag, ST_E_INVALID, spec,
                                "parameter '%s': expected an 'enum' list of allowed values for "
                                "type enum, found none", p->name);
    if (v->type != ST_VALUE_LIST || v->n == 0)
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "parameter '%s': expected 'enum' to be a non-empty list of strings, "
                                "found %s", p->name,
                                v->type == ST_VALUE_LIST ? "an empty list" : st_yaml_describe(v, what, sizeof what));
    if (!(p->enum_values = calloc(v->n, sizeof *p->enum_values)))
        return st_nomem(diag, v);
    for (size_t k = 0; k < v->n; k++) {
        const st_value *item = v->items[k];
        if (item->type != ST_VALUE_STRING || !item->s[0])
            return st_yaml_error_at(diag, ST_E_INVALID, item,
                                    "parameter '%s': expected each enum value to be a non-empty "
                                    "string, found %s", p->name,
                                    st_yaml_describe(item, what, sizeof what));
        for (size_t j = 0; j < p->n_enum; j++)
            if (strcmp(p->enum_values[j], item->s) == 0)
                return st_yaml_error_at(diag, ST_E_INVALID, item,
                                        "parameter '%s': expected distinct enum values, found "
                                        "'%s' twice", p->name, item->s);
        if (!(p->enum_values[k] = strdup(item->s)))
            return st_nomem(diag, item);
        p->n_enum = k + 1;
    }
    return ST_OK;
}

static bool st_enum_has(const st_param_schema *p, const char *s)
{
    for (size_t k = 0; k < p->n_enum; k++)
        if (strcmp(p->enum_values[k], s) == 0)
            return true;
    return false;
}

static st_status st_parse_default(const st_value *spec, st_param_schema *p, st_diag *diag)
{
    const st_value *v = st_value_get(spec, "default");
    char what[96], list[512];
    if (!v) {
        p->required = true;
        return ST_OK;
    }
    bool ok = false;
    switch (p->type) {
    case ST_PARAM_INT: ok = v->type == ST_VALUE_INT; break;
    case ST_PARAM_FLOAT: ok = st_is_number(v); break;
    case ST_PARAM_BOOL: ok = v->type == ST_VALUE_BOOL; break;
    case ST_PARAM_STRING: ok = v->type == ST_VALUE_STRING; break;
    case ST_PARAM_ENUM: ok = v->type == ST_VALUE_STRING; break;
    }
    if (!ok)
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "parameter '%s': expected a default of type %s%s, found %s",
                                p->name, st_param_type_name(p->type),
                                v->type == ST_VALUE_NULL ? " (omit 'default' to make it required)" : "",
                                st_yaml_describe(v, what, sizeof what));
    if (p->type == ST_PARAM_ENUM && !st_enum_has(p, v->s))
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "parameter '%s': expected a default among the enum values (%s), "
                                "found '%s'", p->name,
                                st_yaml_join((const char *const *)p->enum_values, p->n_enum, list, sizeof list),
                                v->s);
    if (p->type == ST_PARAM_INT || p->type == ST_PARAM_FLOAT) {
        double x = st_number(v);
        if ((p->has_min && !(x >= p->min)) || (p->has_max && !(x <= p->max))) {
            char range[96], lo[32], hi[32];
            st_num_text(p->min, lo, sizeof lo);
            st_num_text(p->max, hi, sizeof hi);
            if (p->has_min && p->has_max)
                snprintf(range, sizeof range, "in %s..%s", lo, hi);
            else
                snprintf(range, sizeof range, "%s %s", p->has_min ? ">=" : "<=",
                         p->has_min ? lo : hi);
            return st_yaml_error_at(diag, ST_E_RANGE, v,
                                    "parameter '%s': expected a default %s, found %s", p->name,
                                    range, v->s ? v->s : "?");
        }
    }
    if (!(p->default_value = st_value_clone(v)))
        return st_nomem(diag, v);
    if (p->type == ST_PARAM_FLOAT && v->type == ST_VALUE_INT) {
        p->default_value->type = ST_VALUE_FLOAT; /* int default promoted */
        p->default_value->f = (double)v->i;
    }
    p->has_default = true;
    return ST_OK;
}

static st_status st_take_optional_text(const st_value *spec, const char *pname, const char *key,
                                       char **out, st_diag *diag)
{
    const st_value *v = st_value_get(spec, key);
    char what[96];
    if (!v)
        return ST_OK;
    if (v->type != ST_VALUE_STRING)
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "parameter '%s': expected '%s' to be a string, found %s", pname,
                                key, st_yaml_describe(v, what, sizeof what));
    if (!(*out = strdup(v->s)))
        return st_nomem(diag, v);
    return ST_OK;
}

static bool st_is_param_name(const char *s)
{
    if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

static st_status st_parse_param(const st_value *params, const st_value_entry *e,
                                st_param_schema *p, st_diag *diag)
{
    const st_value *spec = e->value;
    char what[96], where[160], list[128];
    if (!st_is_param_name(e->key))
        return st_yaml_error_at_key(diag, ST_E_INVALID, params, e,
                                    "expected a parameter name ([A-Za-z_][A-Za-z0-9_.-]*), found '%s'",
                                    e->key);
    if (!(p->name = strdup(e->key)))
        return st_nomem(diag, spec);
    if (spec->type != ST_VALUE_MAP)
        return st_yaml_error_at(diag, ST_E_INVALID, spec,
                                "parameter '%s': expected a mapping with 'type' (and default, min, "
                                "max, enum, unit, doc), found %s", p->name,
                                st_yaml_describe(spec, what, sizeof what));
    snprintf(where, sizeof where, "parameter '%s'", p->name);
    st_status st = st_yaml_check_keys(spec, st_param_keys, where, diag);
    if (st != ST_OK)
        return st;

    const st_value *type = st_value_get(spec, "type");
    size_t n_types = sizeof st_param_type_names / sizeof st_param_type_names[0];
    if (!type)
        return st_yaml_error_at(diag, ST_E_INVALID, spec,
                                "parameter '%s': missing required key 'type' (one of %s)", p->name,
                                st_yaml_join(st_param_type_names, n_types, list, sizeof list));
    bool found = false;
    for (size_t k = 0; type->type == ST_VALUE_STRING && k < n_types && !found; k++)
        if (strcmp(type->s, st_param_type_names[k]) == 0) {
            p->type = (st_param_type)k;
            found = true;
        }
    if (!found)
        return st_yaml_error_at(diag, ST_E_INVALID, type,
                                "parameter '%s': expected a type among %s, found %s", p->name,
                                st_yaml_join(st_param_type_names, n_types, list, sizeof list),
                                st_yaml_describe(type, what, sizeof what));

    if ((st = st_parse_bound(spec, p->name, "min", p->type, &p->has_min, &p->min, diag)) ||
        (st = st_parse_bound(spec, p->name, "max", p->type, &p->has_max, &p->max, diag)))
        return st;
    if (p->has_min && p->has_max && p->min > p->max)
        return st_yaml_error_at(diag, ST_E_RANGE, st_value_get(spec, "max"),
                                "parameter '%s': expected min <= max, found min %s > max %s",
                                p->name, st_num_text(p->min, (char[32]){0}, 32),
                                st_num_text(p->max, (char[32]){0}, 32));
    if ((st = st_parse_enum(spec, p, diag)) || (st = st_parse_default(spec, p, diag)) ||
        (st = st_take_optional_text(spec, p->name, "unit", &p->unit, diag)) ||
        (st = st_take_optional_text(spec, p->name, "doc", &p->doc, diag)))
        return st;
    return ST_OK;
}

static st_status st_parse_params(const st_value *root, st_plugin_manifest *m, st_diag *diag)
{
    const st_value *v = st_value_get(root, "params");
    char what[96];
    if (!v || v->type == ST_VALUE_NULL)
        return ST_OK;
    if (v->type != ST_VALUE_MAP)
        return st_yaml_error_at(diag, ST_E_INVALID, v,
                                "key 'params': expected a mapping of parameter name -> schema, "
                                "found %s", st_yaml_describe(v, what, sizeof what));
    if (v->n == 0)
        return ST_OK;
    if (!(m->params = calloc(v->n, sizeof *m->params)))
        return st_nomem(diag, v);
    for (size_t k = 0; k < v->n; k++) {
        m->n_params = k + 1; /* counted first so free() releases a partial one */
        st_status st = st_parse_param(v, &v->entries[k], &m->params[k], diag);
        if (st != ST_OK)
            return st;
    }
    return ST_OK;
}

/* `library:` must name a file beneath the manifest's directory, after
 * resolving "..", absolute paths and symlinks: a manifest must not make the
 * host dlopen something elsewhere on the system. */
static st_status st_parse_library(const st_value *root, st_plugin_manifest *m, st_diag *diag)
{
    st_status st = st_take_string(root, "library", "a library path relative to the manifest",
                                  &m->library, diag);
    if (st != ST_OK)
        return st;
    const st_value *v = st_value_get(root, "library");
    char *joined = st_yaml_path_resolve(m->dir, m->library);
    if (!joined)
        return st_nomem(diag, v);
    char *canon = st_yaml_path_canonical(joined);
    free(joined);
    if (!canon)
        return st_yaml_error_at(diag, ST_E_IO, v, "key 'library': cannot resolve '%s': %s",
                                m->library, strerror(errno));
    if (!st_yaml_path_is_beneath(canon, m->dir)) {
        st = st_yaml_error_at(diag, ST_E_INVALID, v,
                              "key 'library': path escape: expected a file inside the plugin "
                              "directory %s, found '%s' (resolves to %s)", m->dir, m->library, canon);
        free(canon);
        return st;
    }
    m->library_path = canon;
    return ST_OK;
}

static st_status st_plugin_manifest_parse(const st_value *root, st_plugin_manifest *m,
                                          st_diag *diag)
{
    char what[96], list[256];
    st_status st = st_yaml_check_keys(root, st_plugin_keys, "plugin manifest", diag);
    if (st != ST_OK)
        return st;

    const st_value *format = st_value_get(root, "format");
    if (!format)
        return st_yaml_error_at(diag, ST_E_INVALID, root,
                                "missing required key 'format' (expected format: %d)",
                                ST_MANIFEST_FORMAT);
    if (format->type != ST_VALUE_INT || format->i != ST_MANIFEST_FORMAT)
        return st_yaml_error_at(diag, format->type == ST_VALUE_INT ? ST_E_RANGE : ST_E_INVALID,
                                format, "key 'format': expected %d, found %s", ST_MANIFEST_FORMAT,
                                st_yaml_describe(format, what, sizeof what));
    m->format = (int)format->i;

    if ((st = st_take_string(root, "name", "a plugin name like 'top-k'", &m->name, diag)))
        return st;
    if (!st_yaml_is_plugin_name(m->name))
        return st_yaml_error_at(diag, ST_E_INVALID, st_value_get(root, "name"),
                                "key 'name': expected lower-case letters, digits, '.', '_' or '-' "
                                "starting with a letter or digit, found '%s'", m->name);

    const st_value *kind = st_value_get(root, "kind");
    /* The names come from plugin.h's st_kind_name: one spelling of each. */
    const char *st_kind_names[ST_KIND_COUNT];
    for (int k = ST_KIND_TOKENIZER; k <= ST_KIND_RETRIEVER; k++)
        st_kind_names[k - 1] = st_kind_name((st_kind)k);
    size_t n_kinds = ST_KIND_COUNT;
    st_yaml_join(st_kind_names, n_kinds, list, sizeof list);
    if (!kind)
        return st_yaml_error_at(diag, ST_E_INVALID, root,
                                "missing required key 'kind' (one of %s)", list);
    m->kind = kind->type == ST_VALUE_STRING ? st_kind_from_name(kind->s) : (st_kind)0;
    if (!m->kind) {
        char hint[96] = "";
        const char *close = kind->type == ST_VALUE_STRING
            ? st_yaml_closest(kind->s, st_kind_names, n_kinds, 3) : NULL;
        if (close)
            snprintf(hint, sizeof hint, " (did you mean '%s'?)", close);
        return st_yaml_error_at(diag, ST_E_INVALID, kind, "key 'kind': expected one of %s, found %s%s",
                                list, st_yaml_describe(kind, what, sizeof what), hint);
    }

    if ((st = st_take_string(root, "version", "a version string like \"1.0.0\"", &m->version, diag)))
        return st;
    if (!st_is_semver_like(m->version))
        return st_yaml_error_at(diag, ST_E_INVALID, st_value_get(root, "version"),
                                "key 'version': expected MAJOR.MINOR.PATCH like \"1.0.0\", found '%s'",
                                m->version);
    if ((st = st_parse_library(root, m, diag)) ||
        (st = st_take_string(root, "summary", "a one-line summary", &m->summary, diag)) ||
        (st = st_parse_features(root, "requires", &m->requires, &m->n_requires, diag)) ||
        (st = st_parse_features(root, "optional", &m->optional, &m->n_optional, diag)) ||
        (st = st_parse_params(root, m, diag)))
        return st;
    return ST_OK;
}

st_status st_plugin_manifest_load(const char *path, st_plugin_manifest **out, st_diag *diag)
{
    if (!path || !out)
        return st_diag_set(diag, ST_E_INVALID, path, 0, 0, "no plugin manifest path given");
    st_plugin_manifest *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        return st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
    }
    st_value *root = NULL;
    st_status st = st_yaml_read_map(path, m->path, &root, diag);
    if (st == ST_OK) {
        char *dir = st_path_dirname(path);
        m->dir = dir ? realpath(dir, NULL) : NULL;
        if (!m->dir)
            st = st_diag_set(diag, ST_E_IO, path, 0, 0, "cannot resolve the manifest's directory: %s",
                             dir ? strerror(errno) : "out of memory");
        free(dir);
    }
    if (st == ST_OK)
        st = st_plugin_manifest_parse(root, m, diag);
    st_value_free(root);
    if (st != ST_OK) {
        st_plugin_manifest_free(m);
        return st;
    }
    *out = m;
    return ST_OK;
}
