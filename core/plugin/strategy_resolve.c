/*
 * core/plugin/strategy_resolve.c - st_strategy_resolve (<stretch/registry.h>):
 * what `stretch check` reports about a strategy. Every problem is kept,
 * with the file:line:col of the node it is about, rather than stopping at
 * the first: a user fixing a manifest wants the whole list at once.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_report.h"
#include "host_features.h"
#include "kv_type.h"
#include "manifest.h"
#include "plugins_api.h"

#define RESOLVE_MAX_PROBLEMS 64
/* tokenizer, posenc, attention, the samplers, the retriever */
#define RESOLVE_MAX_PLUGINS (4 + 64)

typedef struct report_owned {
    st_strategy_report pub; /* first: the caller's pointer is the allocation's */
    st_arena arena;
    st_plugins *plugins;    /* the plugin infos the report points at */
    st_check_report *checks[RESOLVE_MAX_PLUGINS];
    size_t n_checks;
    const st_problem *problems[RESOLVE_MAX_PROBLEMS];
    const st_resolved_plugin *resolved[RESOLVE_MAX_PLUGINS];
} report_owned;

static void add_problem(report_owned *r, st_problem_kind kind, const st_diag *d,
                        const st_check_report *report)
{
    if (r->pub.n_problems == RESOLVE_MAX_PROBLEMS) {
        r->pub.n_problems_dropped++;
        return;
    }
    st_problem *p = st_arena_alloc(&r->arena, sizeof *p);
    if (!p)
        return;
    char line[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 16];
    p->struct_size = sizeof *p;
    p->kind = kind;
    p->status = d->status;
    p->file = d->file[0] ? st_arena_strdup(&r->arena, d->file) : NULL;
    p->line = d->line;
    p->col = d->col;
    p->message = st_arena_strdup(&r->arena, d->message);
    p->text = st_arena_strdup(&r->arena, st_diag_format(d, line, sizeof line));
    p->report = report;
    r->problems[r->pub.n_problems++] = p;
}

/* The validated map as public values. */
static void params_of(report_owned *r, const msgpack_sbuffer *sb, st_resolved_plugin *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, sb->data, sb->size, &off) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&u);
        out->params_ok = false;
        return;
    }
    uint32_t n = u.data.via.map.size;
    const st_resolved_param **params = st_arena_alloc(&r->arena, (n ? n : 1) * sizeof *params);
    size_t k = 0;
    for (uint32_t i = 0; params && i < n; i++) {
        const msgpack_object *key = &u.data.via.map.ptr[i].key;
        const msgpack_object *v = &u.data.via.map.ptr[i].val;
        st_resolved_param *p = st_arena_alloc(&r->arena, sizeof *p);
        char *name = key->type == MSGPACK_OBJECT_STR
                         ? strndup(key->via.str.ptr, key->via.str.size) : NULL;
        if (!p || !name) {
            free(name);
            continue;
        }
        p->name = st_arena_strdup(&r->arena, name);
        free(name);
        switch (v->type) {
        case MSGPACK_OBJECT_POSITIVE_INTEGER: p->type = ST_PARAM_INT; p->i = (int64_t)v->via.u64; break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: p->type = ST_PARAM_INT; p->i = v->via.i64; break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64: p->type = ST_PARAM_FLOAT; p->f = v->via.f64; break;
        case MSGPACK_OBJECT_BOOLEAN: p->type = ST_PARAM_BOOL; p->b = v->via.boolean; break;
        case MSGPACK_OBJECT_STR: {
            char *s = strndup(v->via.str.ptr, v->via.str.size);
            p->type = ST_PARAM_STRING;
            p->s = st_arena_strdup(&r->arena, s ? s : "");
            free(s);
            break;
        }
        default: continue; /* validation packs none of these */
        }
        params[k++] = p;
    }
    msgpack_unpacked_destroy(&u);
    out->params = params;
    out->n_params = k;
}

static void resolve_one(report_owned *r, const st_strategy *s, st_kind kind,
                        const st_plugin_ref *ref, const st_resolve_options *o, bool model_ok)
{
    st_resolved_plugin *it = st_arena_alloc(&r->arena, sizeof *it);
    if (!it)
        return;
    const char *file = ref->file ? ref->file : s->path;
    it->struct_size = sizeof *it;
    it->kind = kind;
    it->name = st_arena_strdup(&r->arena, ref->plugin);
    it->file = st_arena_strdup(&r->arena, file);
    it->line = ref->line;
    it->col = ref->col;
    r->resolved[r->pub.n_plugins++] = it;

    st_diag diag;
    st_diag_clear(&diag);
    const st_plugin_record *rec = st_registry_find(st_plugins_registry(r->plugins), kind,
                                                   ref->plugin, &diag);
    if (!rec) {
        st_diag at;
        st_diag_set(&at, ST_E_NOT_FOUND, file, ref->line, ref->col, "%s", diag.message);
        add_problem(r, ST_PROBLEM_MANIFEST, &at, NULL);
        return;
    }
    it->plugin = st_plugins_info_of(r->plugins, rec);
    const st_plugin_manifest *m = rec->manifest;
    for (size_t i = 0; i < m->n_requires; i++) {
        const char *why_not = st_feature_unavailable(m->requires[i], kind, s->backend,
                                                     s->model != NULL);
        if (!why_not)
            continue;
        st_diag at;
        st_diag_set(&at, ST_E_INVALID, file, ref->line, ref->col,
                    "%s plugin '%s' requires '%s', which the engine cannot give: %s",
                    st_kind_name(kind), m->name, m->requires[i], why_not);
        add_problem(r, ST_PROBLEM_MANIFEST, &at, NULL);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    st_diag_clear(&diag);
    if (st_params_validate(m, ref->params, &sb, &diag) != ST_OK) {
        if (!diag.file[0])
            st_diag_set(&diag, diag.status, file, ref->line, ref->col, "%s", diag.message);
        add_problem(r, ST_PROBLEM_MANIFEST, &diag, NULL);
    } else {
        it->params_ok = true;
        params_of(r, &sb, it);
    }
    msgpack_sbuffer_destroy(&sb);
    if (!(o->flags & ST_RESOLVE_LOAD_CHECK) || r->n_checks == RESOLVE_MAX_PLUGINS)
        return;
    st_load_report *rep = malloc(sizeof *rep);
    if (!rep) {
        r->arena.failed = 1;
        return;
    }
    st_load_check(m, (o->flags & ST_RESOLVE_CONFORMANCE) != 0, model_ok ? s->model : NULL, it->params_ok ? ref->params : NULL,
                  o->timeout_s, rep);
    st_check_report *cr = st_check_report_build(m, rep);
    free(rep);
    if (!cr) {
        r->arena.failed = 1;
        return;
    }
    r->checks[r->n_checks++] = cr;
    it->load = cr;
    /* An untested plugin (a `requires:` the checker could not give, such
     * as a tokenizer's vocabulary) is not a problem of the strategy: the
     * caller decides, e.g. `stretch check` creates it in the engine. */
    if (!cr->ok && !cr->untested) {
        st_diag at;
        st_diag_set(&at, ST_E_PLUGIN, NULL, 0, 0, "%s", cr->message);
        add_problem(r, ST_PROBLEM_LOAD, &at, cr);
    }
}

/* Find every plugin `s` chooses, each with its problems. */
static void resolve_plugins(report_owned *r, const st_strategy *s, const st_resolve_options *o)
{
    st_diag diag;
    st_diag_clear(&diag);
    if (!(r->plugins = st_plugins_new_empty())) {
        st_diag_set(&diag, ST_E_NOMEM, NULL, 0, 0, "out of memory");
        add_problem(r, ST_PROBLEM_RUNTIME, &diag, NULL);
        return;
    }
    st_registry *reg = st_plugins_registry(r->plugins);
    for (size_t i = 0; i < s->n_plugin_dirs; i++)
        if (st_registry_add_dir(reg, s->plugin_dirs[i], &diag) != ST_OK) {
            st_diag at;
            st_diag_set(&at, diag.status, s->path, 0, 0, "plugin-dirs: %s: not a directory",
                        s->plugin_dirs[i]);
            add_problem(r, ST_PROBLEM_MANIFEST, &at, NULL);
        }
    for (size_t i = 0; i < o->n_plugin_dirs; i++)
        if (!o->plugin_dirs[i] || st_registry_add_dir(reg, o->plugin_dirs[i], &diag) != ST_OK)
            add_problem(r, ST_PROBLEM_DIR, &diag, NULL);
    if (st_registry_scan(reg, &diag) != ST_OK) {
        add_problem(r, ST_PROBLEM_RUNTIME, &diag, NULL);
        return;
    }
    if (st_plugins_sync(r->plugins) != ST_OK) {
        r->arena.failed = 1;
        return;
    }
    r->pub.warnings = st_plugins_warnings(r->plugins);
    r->pub.n_warnings = st_plugins_warning_count(r->plugins);
    r->pub.n_warnings_dropped = st_plugins_warnings_dropped(r->plugins);
    bool model_ok = s->model && access(s->model, R_OK) == 0;
    if (s->model && !model_ok) {
        st_diag_set(&diag, ST_E_IO, s->path, 0, 0, "model: %s: cannot read the file", s->model);
        add_problem(r, ST_PROBLEM_MODEL, &diag, NULL);
    }
    const struct { st_kind kind; const st_plugin_ref *ref; } fixed[] = {
        {ST_KIND_TOKENIZER, &s->tokenizer},
        {ST_KIND_POSENC, &s->posenc},
        {ST_KIND_ATTENTION, &s->attention},
    };
    for (size_t i = 0; i < 3; i++)
        if (fixed[i].ref->plugin)
            resolve_one(r, s, fixed[i].kind, fixed[i].ref, o, model_ok);
    for (size_t i = 0; i < s->n_samplers && r->pub.n_plugins < RESOLVE_MAX_PLUGINS - 1; i++)
        if (s->samplers[i].plugin)
            resolve_one(r, s, ST_KIND_SAMPLER, &s->samplers[i], o, model_ok);
    if (s->retriever.plugin)
        resolve_one(r, s, ST_KIND_RETRIEVER, &s->retriever, o, model_ok);
}

st_status st_strategy_resolve(const char *path, const st_resolve_options *opts,
                              st_strategy_report **out, st_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return st_error_set(err, ST_E_INVALID, "st_strategy_resolve: NULL argument");
    st_resolve_options o = {0};
    if (opts) {
        size_t n = opts->struct_size < sizeof o ? opts->struct_size : sizeof o;
        memcpy(&o, opts, n);
    }
    if (o.n_plugin_dirs && !o.plugin_dirs)
        return st_error_set(err, ST_E_INVALID, "st_strategy_resolve: plugin_dirs is NULL");
    report_owned *r = calloc(1, sizeof *r);
    if (!r)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_strategy_report *pub = &r->pub;
    pub->struct_size = sizeof *pub;
    pub->path = st_arena_strdup(&r->arena, path);
    st_diag diag;
    st_diag_clear(&diag);
    st_strategy *s = NULL;
    if (st_strategy_load(path, &s, &diag) != ST_OK) {
        s = NULL;
        add_problem(r, ST_PROBLEM_MANIFEST, &diag, NULL);
    } else {
        pub->parsed = true;
        pub->path = st_arena_strdup(&r->arena, s->path);
        pub->files = st_arena_strv(&r->arena, s->files, s->n_files);
        pub->n_files = s->n_files;
        pub->model = st_arena_strdup(&r->arena, s->model);
        pub->backend = st_arena_strdup(&r->arena, s->backend ? s->backend : "cpu");
        pub->context = s->context;
        pub->threads = s->threads;
        pub->kv_type = st_kv_type_name((st_kv_type)s->kv_type);
        if (!(o.flags & ST_RESOLVE_PARSE_ONLY))
            resolve_plugins(r, s, &o);
    }
    st_strategy_free(s);
    pub->plugins = r->resolved;
    pub->problems = r->problems;
    pub->ok = pub->n_problems == 0 && pub->n_problems_dropped == 0;
    if (r->arena.failed) {
        st_strategy_report_free(pub);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    *out = pub;
    return ST_OK;
}

void st_strategy_report_free(st_strategy_report *pub)
{
    if (!pub)
        return;
    report_owned *r = (report_owned *)pub;
    for (size_t i = 0; i < r->n_checks; i++)
        st_check_report_free(r->checks[i]);
    st_plugins_free(r->plugins);
    st_arena_free(&r->arena);
    free(r);
}
