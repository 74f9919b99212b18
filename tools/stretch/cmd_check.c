/*
 * tools/stretch/cmd_check.c - `stretch check [--json] [--no-check]
 * [--path DIR]... STRATEGY.yaml`: load a strategy (resolving extends), find
 * each plugin it names, validate its parameters, load-check it in a child
 * process, and print the resolved mix. Every problem is reported (one
 * line each, file:line:col first), not just the first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "host_features.h"
#include "kv_type.h"
#include "paths.h"

#define CHECK_MAX_ERRORS 64

typedef struct check_error {
    st_diag diag;
    int exit_code;
} check_error;

typedef struct check_item {
    st_kind kind;
    const st_plugin_ref *ref;
    const st_plugin_record *rec;  /* NULL when not found */
    msgpack_sbuffer params;       /* validated, defaults filled */
    bool params_ok;
    bool checked;
    st_load_report report;
} check_item;

typedef struct check_ctx {
    check_error errors[CHECK_MAX_ERRORS];
    size_t n_errors;
    size_t n_dropped;
    int exit_code;  /* of the first error */
} check_ctx;

static void add_error(check_ctx *c, const st_diag *d, int code)
{
    if (c->n_errors == 0)
        c->exit_code = code;
    if (c->n_errors < CHECK_MAX_ERRORS)
        c->errors[c->n_errors++] = (check_error){*d, code};
    else
        c->n_dropped++;
}

static void check_usage(FILE *f)
{
    fprintf(f, "usage: stretch check [--json] [--no-check] [--path DIR]... STRATEGY.yaml\n"
               "  --json      print a JSON document\n"
               "  --no-check  do not load-check the plugins (never run plugin code)\n"
               "  --path DIR  search DIR after the strategy's plugin-dirs (repeatable)\n");
}

static void check_one(check_ctx *c, const st_strategy *s, st_registry *reg,
                      check_item *it, bool load, bool model_ok)
{
    st_diag diag;
    st_diag_clear(&diag);
    const st_plugin_ref *ref = it->ref;
    it->rec = st_registry_find(reg, it->kind, ref->plugin, &diag);
    if (!it->rec) {
        st_diag at;
        st_diag_set(&at, ST_E_NOT_FOUND, ref->file ? ref->file : s->path, ref->line,
                    ref->col, "%s", diag.message);
        add_error(c, &at, ST_EXIT_MANIFEST);
        return;
    }
    const st_plugin_manifest *m = it->rec->manifest;
    for (size_t i = 0; i < m->n_requires; i++) {
        const char *why_not = st_feature_unavailable(m->requires[i], it->kind, s->backend,
                                                     s->model != NULL);
        if (!why_not)
            continue;
        st_diag at;
        st_diag_set(&at, ST_E_INVALID, ref->file ? ref->file : s->path, ref->line, ref->col,
                    "%s plugin '%s' requires '%s', which the engine cannot give: %s",
                    st_kind_name(it->kind), m->name, m->requires[i], why_not);
        add_error(c, &at, ST_EXIT_MANIFEST);
    }
    st_diag_clear(&diag);
    if (st_params_validate(m, ref->params, &it->params, &diag) != ST_OK) {
        if (!diag.file[0])
            st_diag_set(&diag, diag.status, ref->file ? ref->file : s->path, ref->line,
                        ref->col, "%s", diag.message);
        add_error(c, &diag, ST_EXIT_MANIFEST);
    } else {
        it->params_ok = true;
    }
    if (load) {
        it->checked = true;
        if (!st_load_check(m, false, model_ok ? s->model : NULL,
                           it->params_ok ? ref->params : NULL, 0, &it->report)) {
            st_diag at;
            st_diag_set(&at, ST_E_PLUGIN, NULL, 0, 0, "%s", it->report.message);
            add_error(c, &at, st_cli_report_exit(&it->report));
        }
    }
}

static bool unpack_params(const check_item *it, msgpack_unpacked *u)
{
    size_t off = 0;
    msgpack_unpacked_init(u);
    return it->params_ok &&
           msgpack_unpack_next(u, it->params.data, it->params.size, &off) ==
               MSGPACK_UNPACK_SUCCESS;
}

static void print_text(const st_strategy *s, check_item *items, size_t n)
{
    printf("strategy: %s\n", st_cli_safe(s->path));
    if (s->n_files > 1) { /* files[0] is the strategy itself, then its parents */
        printf("extends:  ");
        for (size_t i = 1; i < s->n_files; i++)
            printf("%s%s", i > 1 ? " -> " : "", st_cli_safe(s->files[i]));
        printf("\n");
    }
    printf("model:    %s\n", s->model ? st_cli_safe(s->model) : "(none)");
    printf("backend:  %s   context: %u   threads: %u%s   kv-type: %s\n",
           s->backend ? s->backend : "cpu", s->context, s->threads,
           s->threads ? "" : " (all cores)", st_kv_type_name((st_kv_type)s->kv_type));
    for (size_t i = 0; i < n; i++) {
        check_item *it = &items[i];
        const st_plugin_manifest *m = it->rec ? it->rec->manifest : NULL;
        printf("\n%-20s %s %s\n", st_kind_name(it->kind), it->ref->plugin,
               m && m->version ? m->version : "(not found)");
        if (!m)
            continue;
        printf("    manifest: %s\n    library:  %s\n", st_cli_safe(it->rec->manifest_path),
               st_cli_safe(m->library_path));
        msgpack_unpacked u;
        if (unpack_params(it, &u)) {
            printf("    params:   ");
            if (u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 0)
                printf("(none)");
            st_cli_msgpack_text(stdout, &u.data);
            printf("\n");
        }
        msgpack_unpacked_destroy(&u);
        if (it->checked) {
            char buf[2600], abi[16];
            printf("    load:     %s (ABI %s)\n",
                   st_cli_safe(st_load_report_reason(&it->report, buf, sizeof buf)),
                   st_cli_abi_text(&it->report, abi, sizeof abi));
        }
    }
}

static void print_json(const st_strategy *s, check_item *items, size_t n,
                       const check_ctx *c)
{
    st_json j;
    st_json_init(&j, stdout, true);
    st_json_begin_object(&j);
    st_json_key(&j, "ok");
    st_json_bool(&j, c->n_errors == 0);
    st_json_key(&j, "strategy");
    st_json_string(&j, s ? s->path : NULL);
    if (s) {
        st_json_key(&j, "files");
        st_json_begin_array(&j);
        for (size_t i = 0; i < s->n_files; i++)
            st_json_string(&j, s->files[i]);
        st_json_end_array(&j);
        st_json_key(&j, "model");
        st_json_string(&j, s->model);
        st_json_key(&j, "backend");
        st_json_string(&j, s->backend ? s->backend : "cpu");
        st_json_key(&j, "context");
        st_json_uint(&j, s->context);
        st_json_key(&j, "threads");
        st_json_uint(&j, s->threads);
        st_json_key(&j, "kv_type");
        st_json_string(&j, st_kv_type_name((st_kv_type)s->kv_type));
        st_json_key(&j, "plugins");
        st_json_begin_array(&j);
        for (size_t i = 0; i < n; i++) {
            check_item *it = &items[i];
            const st_plugin_manifest *m = it->rec ? it->rec->manifest : NULL;
            st_json_begin_object(&j);
            st_json_key(&j, "kind");
            st_json_string(&j, st_kind_name(it->kind));
            st_json_key(&j, "name");
            st_json_string(&j, it->ref->plugin);
            st_json_key(&j, "found");
            st_json_bool(&j, m != NULL);
            st_json_key(&j, "version");
            st_json_string(&j, m ? m->version : NULL);
            st_json_key(&j, "manifest");
            st_json_string(&j, it->rec ? it->rec->manifest_path : NULL);
            st_json_key(&j, "library");
            st_json_string(&j, m ? m->library_path : NULL);
            st_json_key(&j, "params");
            msgpack_unpacked u;
            if (unpack_params(it, &u))
                st_cli_msgpack_json(&j, &u.data);
            else
                st_json_null(&j);
            msgpack_unpacked_destroy(&u);
            st_json_key(&j, "load");
            if (it->checked && m)
                st_cli_report_json(&j, m, &it->report);
            else
                st_json_null(&j);
            st_json_end_object(&j);
        }
        st_json_end_array(&j);
    }
    st_json_key(&j, "errors");
    st_json_begin_array(&j);
    for (size_t i = 0; i < c->n_errors; i++) {
        const st_diag *d = &c->errors[i].diag;
        st_json_begin_object(&j);
        st_json_key(&j, "file");
        st_json_string(&j, d->file[0] ? d->file : NULL);
        st_json_key(&j, "line");
        st_json_int(&j, d->line);
        st_json_key(&j, "col");
        st_json_int(&j, d->col);
        st_json_key(&j, "message");
        st_json_string(&j, d->message);
        st_json_key(&j, "exit");
        st_json_int(&j, c->errors[i].exit_code);
        st_json_end_object(&j);
    }
    st_json_end_array(&j);
    st_json_key(&j, "exit");
    st_json_int(&j, c->n_errors ? c->exit_code : ST_EXIT_OK);
    st_json_end_object(&j);
    st_json_end(&j);
}

int st_cmd_check(int argc, char **argv)
{
    bool json = false, load = true;
    const char *path = NULL;
    st_strlist dirs = {0};
    int code = ST_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--no-check") == 0) {
            load = false;
        } else if (strcmp(argv[i], "--path") == 0 && i + 1 < argc) {
            if (st_strlist_push(&dirs, argv[++i]) != 0)
                code = ST_EXIT_RUNTIME;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            check_usage(stdout);
            st_strlist_free(&dirs);
            return ST_EXIT_OK;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "stretch check: unexpected argument '%s'\n", argv[i]);
            code = ST_EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (code == ST_EXIT_OK && !path) {
        fprintf(stderr, "stretch check: which strategy manifest?\n");
        code = ST_EXIT_USAGE;
    }
    if (code != ST_EXIT_OK) {
        if (code == ST_EXIT_USAGE)
            check_usage(stderr);
        st_strlist_free(&dirs);
        return code;
    }

    check_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        st_strlist_free(&dirs);
        fprintf(stderr, "stretch: out of memory\n");
        return ST_EXIT_RUNTIME;
    }
    st_diag diag;
    st_diag_clear(&diag);
    st_strategy *s = NULL;
    st_registry *reg = NULL;
    check_item items[4 + 64];
    size_t n = 0;
    if (st_strategy_load(path, &s, &diag) != ST_OK) {
        s = NULL;
        add_error(c, &diag, ST_EXIT_MANIFEST);
        goto report;
    }
    reg = st_registry_new();
    if (!reg) {
        st_diag_set(&diag, ST_E_NOMEM, NULL, 0, 0, "out of memory");
        add_error(c, &diag, ST_EXIT_RUNTIME);
        goto report;
    }
    for (size_t i = 0; i < s->n_plugin_dirs; i++)
        if (st_registry_add_dir(reg, s->plugin_dirs[i], &diag) != ST_OK) {
            st_diag at;
            st_diag_set(&at, diag.status, s->path, 0, 0,
                        "plugin-dirs: %s: not a directory", s->plugin_dirs[i]);
            add_error(c, &at, ST_EXIT_MANIFEST);
        }
    for (size_t i = 0; i < dirs.n; i++)
        if (st_registry_add_dir(reg, dirs.items[i], &diag) != ST_OK)
            add_error(c, &diag, ST_EXIT_USAGE);
    if (st_registry_scan(reg, &diag) != ST_OK) {
        add_error(c, &diag, ST_EXIT_RUNTIME);
        goto report;
    }
    /* A skipped place is not an error of this strategy, but it may be why a
     * plugin resolves to another copy than the one expected. */
    st_cli_registry_warnings(reg);
    bool model_ok = s->model && access(s->model, R_OK) == 0;
    if (s->model && !model_ok) {
        st_diag_set(&diag, ST_E_IO, s->path, 0, 0, "model: %s: cannot read the file",
                    s->model);
        add_error(c, &diag, ST_EXIT_MODEL);
    }
    const struct { st_kind kind; const st_plugin_ref *ref; } fixed[] = {
        {ST_KIND_TOKENIZER, &s->tokenizer},
        {ST_KIND_POSENC, &s->posenc},
        {ST_KIND_ATTENTION, &s->attention},
    };
    for (size_t i = 0; i < 3; i++)
        if (fixed[i].ref->plugin)
            items[n++] = (check_item){.kind = fixed[i].kind, .ref = fixed[i].ref};
    for (size_t i = 0; i < s->n_samplers && n < sizeof items / sizeof items[0] - 1; i++)
        if (s->samplers[i].plugin)
            items[n++] = (check_item){.kind = ST_KIND_SAMPLER, .ref = &s->samplers[i]};
    if (s->retriever.plugin)
        items[n++] = (check_item){.kind = ST_KIND_RETRIEVER, .ref = &s->retriever};
    for (size_t i = 0; i < n; i++) {
        msgpack_sbuffer_init(&items[i].params);
        check_one(c, s, reg, &items[i], load, model_ok);
    }

report:
    if (json)
        print_json(s, items, n, c);
    else if (s)
        print_text(s, items, n);
    for (size_t i = 0; i < c->n_errors; i++)
        st_cli_error(&c->errors[i].diag);
    if (c->n_dropped)
        fprintf(stderr, "stretch: (%zu more errors not shown)\n", c->n_dropped);
    if (!json && s && c->n_errors == 0)
        printf("\nok: %zu plugin%s resolved\n", n, n == 1 ? "" : "s");
    code = c->n_errors ? c->exit_code : ST_EXIT_OK;
    for (size_t i = 0; i < n; i++)
        msgpack_sbuffer_destroy(&items[i].params);
    st_registry_free(reg);
    st_strategy_free(s);
    st_strlist_free(&dirs);
    free(c);
    return code;
}
