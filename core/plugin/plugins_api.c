/*
 * core/plugin/plugins_api.c - the listing half of <stretch/registry.h>:
 * st_plugins over the registry, each record turned once into a public
 * st_plugin_info whose strings live in the handle's arena.
 */
#include "plugins_api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text_escape.h"

struct st_plugins {
    st_registry *reg;
    st_arena arena;
    const st_plugin_info **infos;  /* [i] views record i of reg */
    const st_plugin_record **recs; /* [i] the record, to map back */
    size_t n_infos;
    const char **warnings;
    size_t n_warnings;
};

const char *st_plugin_state_name(st_plugin_state s)
{
    switch (s) {
    case ST_PLUGIN_OK: return "ok";
    case ST_PLUGIN_BROKEN: return "broken";
    case ST_PLUGIN_SHADOWED: return "shadowed";
    case ST_PLUGIN_REFUSED: return "refused";
    }
    return "?";
}

const char *st_plugin_loading(void)
{
    return st_library_loading();
}

size_t st_text_safe(const char *s, char *out, size_t cap)
{
    if (!s)
        s = "";
    if (out && cap)
        st_text_escape(s, out, cap);
    return st_text_escaped_size(s);
}

st_plugins *st_plugins_new_empty(void)
{
    st_plugins *p = calloc(1, sizeof *p);
    if (p && !(p->reg = st_registry_new())) {
        free(p);
        p = NULL;
    }
    return p;
}

st_registry *st_plugins_registry(st_plugins *p) { return p->reg; }

static const st_param_info *param_info(st_arena *a, const st_param_schema *s)
{
    st_param_info *pi = st_arena_alloc(a, sizeof *pi);
    if (!pi)
        return NULL;
    pi->struct_size = sizeof *pi;
    pi->name = st_arena_strdup(a, s->name);
    pi->type = s->type;
    pi->required = s->required;
    pi->has_default = s->has_default && s->default_value;
    if (pi->has_default) {
        const st_value *v = s->default_value;
        pi->default_int = v->i;
        pi->default_float = v->type == ST_VALUE_INT ? (double)v->i : v->f;
        pi->default_bool = v->b;
        if (v->type == ST_VALUE_STRING)
            pi->default_string = st_arena_strdup(a, v->s);
    }
    pi->has_min = s->has_min;
    pi->has_max = s->has_max;
    pi->min = s->min;
    pi->max = s->max;
    pi->enum_values = st_arena_strv(a, s->enum_values, s->n_enum);
    pi->n_enum = s->n_enum;
    pi->unit = st_arena_strdup(a, s->unit);
    pi->doc = st_arena_strdup(a, s->doc);
    return pi;
}

static const st_plugin_info *plugin_info(st_arena *a, const st_plugin_record *rec)
{
    st_plugin_info *pi = st_arena_alloc(a, sizeof *pi);
    if (!pi)
        return NULL;
    pi->struct_size = sizeof *pi;
    pi->manifest_path = st_arena_strdup(a, rec->manifest_path);
    pi->state = rec->state;
    if (rec->state == ST_PLUGIN_SHADOWED) {
        pi->reason = st_arena_strdup(a, rec->diag.message); /* names both paths */
    } else if (rec->state != ST_PLUGIN_OK) {
        char line[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 16];
        pi->reason = st_arena_strdup(a, st_diag_format(&rec->diag, line, sizeof line));
        pi->reason_status = rec->diag.status;
    }
    const st_plugin_manifest *m = rec->manifest;
    if (!m)
        return pi;
    pi->name = st_arena_strdup(a, m->name);
    pi->kind = m->kind;
    pi->version = st_arena_strdup(a, m->version);
    pi->summary = st_arena_strdup(a, m->summary);
    pi->library_path = st_arena_strdup(a, m->library_path);
    pi->requires = st_arena_strv(a, m->requires, m->n_requires);
    pi->n_requires = m->n_requires;
    pi->optional = st_arena_strv(a, m->optional, m->n_optional);
    pi->n_optional = m->n_optional;
    if (m->n_params) {
        const st_param_info **params = st_arena_alloc(a, m->n_params * sizeof *params);
        for (size_t i = 0; params && i < m->n_params; i++)
            params[i] = param_info(a, &m->params[i]);
        pi->params = params;
        pi->n_params = m->n_params;
    }
    return pi;
}

st_status st_plugins_sync(st_plugins *p)
{
    size_t n = st_registry_count(p->reg);
    if (n > p->n_infos) {
        const st_plugin_info **infos = realloc(p->infos, n * sizeof *infos);
        if (infos)
            p->infos = infos;
        const st_plugin_record **recs = infos ? realloc(p->recs, n * sizeof *recs) : NULL;
        if (!recs)
            return ST_E_NOMEM;
        p->recs = recs;
        for (size_t i = p->n_infos; i < n; i++) {
            p->recs[i] = st_registry_at(p->reg, i);
            p->infos[i] = plugin_info(&p->arena, p->recs[i]);
            if (!p->infos[i])
                return ST_E_NOMEM;
            p->n_infos = i + 1;
        }
    }
    size_t nw = st_registry_note_count(p->reg);
    if (nw != p->n_warnings) {
        const char **w = st_arena_alloc(&p->arena, (nw ? nw : 1) * sizeof *w);
        char line[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 16];
        for (size_t i = 0; w && i < nw; i++)
            w[i] = st_arena_strdup(&p->arena,
                                   st_diag_format(st_registry_note_at(p->reg, i), line, sizeof line));
        if (w) {
            p->warnings = w;
            p->n_warnings = nw;
        }
    }
    return p->arena.failed ? ST_E_NOMEM : ST_OK;
}

st_status st_plugins_open(const char *const *dirs, size_t n_dirs, uint32_t flags,
                          st_plugins **out, st_error *err)
{
    if (!out || (n_dirs && !dirs))
        return st_error_set(err, ST_E_INVALID, "st_plugins_open: NULL argument");
    *out = NULL;
    st_plugins *p = st_plugins_new_empty();
    if (!p)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_diag diag;
    st_diag_clear(&diag);
    st_status st = ST_OK;
    for (size_t i = 0; st == ST_OK && i < n_dirs; i++)
        st = dirs[i] ? st_registry_add_dir(p->reg, dirs[i], &diag)
                     : st_diag_set(&diag, ST_E_INVALID, NULL, 0, 0, "plugin directory %zu is NULL", i);
    if (st == ST_OK && !(flags & ST_PLUGINS_NO_SCAN))
        st = st_registry_scan(p->reg, &diag);
    if (st != ST_OK) {
        st_plugins_free(p);
        return st_error_from_diag(err, &diag);
    }
    if (st_plugins_sync(p) != ST_OK) {
        st_plugins_free(p);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    *out = p;
    return ST_OK;
}

void st_plugins_free(st_plugins *p)
{
    if (!p)
        return;
    st_registry_free(p->reg);
    st_arena_free(&p->arena);
    free(p->infos);
    free(p->recs);
    free(p);
}

size_t st_plugins_count(const st_plugins *p) { return p ? p->n_infos : 0; }

const st_plugin_info *st_plugins_at(const st_plugins *p, size_t i)
{
    return p && i < p->n_infos ? p->infos[i] : NULL;
}

size_t st_plugins_warning_count(const st_plugins *p) { return p ? p->n_warnings : 0; }

const char *st_plugins_warning_at(const st_plugins *p, size_t i)
{
    return p && i < p->n_warnings ? p->warnings[i] : NULL;
}

const char *const *st_plugins_warnings(const st_plugins *p)
{
    return p->warnings;
}

size_t st_plugins_warnings_dropped(const st_plugins *p)
{
    return p ? st_registry_notes_dropped(p->reg) : 0;
}

const st_plugin_info *st_plugins_info_of(const st_plugins *p, const st_plugin_record *rec)
{
    for (size_t i = 0; rec && i < p->n_infos; i++)
        if (p->recs[i] == rec)
            return p->infos[i];
    return NULL;
}

const st_plugin_record *st_plugins_record_of(const st_plugins *p, const st_plugin_info *info)
{
    for (size_t i = 0; p && info && i < p->n_infos; i++)
        if (p->infos[i] == info)
            return p->recs[i];
    return NULL;
}

st_status st_plugins_find(const st_plugins *p, st_kind kind, const char *name,
                          const st_plugin_info **out, st_error *err)
{
    if (out)
        *out = NULL;
    if (!p || !name || !out)
        return st_error_set(err, ST_E_INVALID, "st_plugins_find: NULL argument");
    st_diag diag;
    st_diag_clear(&diag);
    const st_plugin_record *rec = st_registry_find(p->reg, kind, name, &diag);
    if (!rec)
        return st_error_from_diag(err, &diag);
    *out = st_plugins_info_of(p, rec);
    return *out ? ST_OK : st_error_set(err, ST_E_INTERNAL, "plugin listed but not viewed");
}

st_status st_plugins_add_manifest(st_plugins *p, const char *path, const st_plugin_info **out,
                                  st_error *err)
{
    if (out)
        *out = NULL;
    if (!p || !path)
        return st_error_set(err, ST_E_INVALID, "st_plugins_add_manifest: NULL argument");
    st_diag diag;
    st_diag_clear(&diag);
    const st_plugin_record *rec = NULL;
    st_status st = st_registry_add_manifest(p->reg, path, &rec, &diag);
    if (st_plugins_sync(p) != ST_OK)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    if (out)
        *out = st_plugins_info_of(p, rec);
    return st == ST_OK ? ST_OK : st_error_from_diag(err, &diag);
}
