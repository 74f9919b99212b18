/*
 * tools/stretch/cmd_check.c - `stretch check [--json] [--no-check]
 * [--conformance] [--path DIR]... STRATEGY.yaml`: load a strategy
 * (resolving extends), find each plugin it names, validate its parameters,
 * load-check it in a child process (optionally with the conformance
 * suite), then, when the strategy's model is at hand, open the engine so
 * every plugin's configure() sees the model's shape. Every problem is
 * reported (one line each, file:line:col first), not just the first.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "commands.h"
#include "engine_cli.h"

static void check_usage(FILE *f)
{
    fprintf(f, "usage: stretch check [--json] [--no-check] [--conformance] [--path DIR]...\n"
               "                    STRATEGY.yaml\n"
               "  --json         print a JSON document\n"
               "  --no-check     do not load-check the plugins (never run plugin code)\n"
               "  --conformance  run the conformance suite on every plugin the strategy uses\n"
               "  --path DIR     search DIR after the strategy's plugin-dirs (repeatable)\n"
               "  With the strategy's model at hand, the engine is opened too, so each\n"
               "  plugin's configure() is called with the model's shape.\n");
}

/* The exit code a problem maps to. */
static int problem_exit(const st_problem *p)
{
    switch (p->kind) {
    case ST_PROBLEM_MANIFEST: return ST_EXIT_MANIFEST;
    case ST_PROBLEM_DIR: return ST_EXIT_USAGE;
    case ST_PROBLEM_MODEL: return ST_EXIT_MODEL;
    case ST_PROBLEM_LOAD: return p->report ? st_cli_report_exit(p->report) : ST_EXIT_LOAD;
    case ST_PROBLEM_RUNTIME: return ST_EXIT_RUNTIME;
    }
    return ST_EXIT_RUNTIME;
}

static void print_text(const st_strategy_report *s, bool cfg_ok)
{
    printf("strategy: %s\n", st_cli_safe(s->path));
    if (s->n_files > 1) { /* files[0] is the strategy itself, then its parents */
        printf("extends:  ");
        for (size_t i = 1; i < s->n_files; i++)
            printf("%s%s", i > 1 ? " -> " : "", st_cli_safe(s->files[i]));
        printf("\n");
    }
    printf("model:    %s\n", s->model ? st_cli_safe(s->model) : "(none)");
    printf("backend:  %s   context: %u   threads: %u%s   kv-type: %s\n", s->backend,
           s->context, s->threads, s->threads ? "" : " (all cores)", s->kv_type);
    for (size_t i = 0; i < s->n_plugins; i++) {
        const st_resolved_plugin *it = s->plugins[i];
        const st_plugin_info *m = it->plugin;
        printf("\n%-20s %s %s\n", st_kind_name(it->kind), it->name,
               m && m->version ? m->version : "(not found)");
        if (!m)
            continue;
        printf("    manifest: %s\n    library:  %s\n", st_cli_safe(m->manifest_path),
               st_cli_safe(m->library_path));
        if (it->params_ok) {
            printf("    params:   ");
            if (it->n_params == 0)
                printf("(none)");
            st_cli_params_values_text(stdout, it);
            printf("\n");
        }
        if (it->load) {
            char abi[16];
            printf("    load:     %s (ABI %s)\n", st_cli_safe(it->load->result),
                   st_cli_abi_text(it->load, abi, sizeof abi));
            if (it->load->untested && cfg_ok)
                printf("              created and configured by the engine (see configure:)\n");
        }
    }
}

/* What opening the engine said: configure() with the model's shape. */
typedef struct configure_result {
    bool ran;
    int exit_code;            /* ST_EXIT_OK when it passed */
    char message[1024];
    /* The KV cache the engine allocated: in all, and per layer. */
    uint64_t kv_bytes;
    uint64_t *kv_layer_bytes;
    uint32_t n_layers;
    bool prompt_cache;        /* a prompt's start may come from the cache or a file */
    bool bounded;             /* the attention plugin evicts: no end to a sequence */
} configure_result;

/* The per-plugin checks run without a model shape, so a configure() that
 * refuses this model (a budget past the context, a head size it cannot
 * take) would first show at `run`: open the engine the way `run` does. The
 * plugins have passed their load checks in a child by now. */
static void check_configure(const char *path, const st_strlist *dirs, configure_result *out)
{
    out->ran = true;
    st_engine_options opts = {.struct_size = sizeof opts,
                              .plugin_dirs = (const char *const *)dirs->items,
                              .n_plugin_dirs = dirs->n};
    st_engine *e = NULL;
    st_error err = {0};
    st_status st = st_engine_open(path, &opts, &e, &err);
    if (st == ST_OK) {
        st_engine_info info = {.struct_size = sizeof info};
        st_engine_get_info(e, &info);
        uint64_t lo = UINT64_MAX, hi = 0;
        out->kv_bytes = info.kv_cache_bytes;
        out->prompt_cache = info.prefix_cache;
        out->bounded = info.bounded_cache;
        out->kv_layer_bytes = malloc(info.n_layers * sizeof *out->kv_layer_bytes);
        for (uint32_t l = 0; out->kv_layer_bytes && l < info.n_layers; l++) {
            uint64_t b = info.kv_layer_bytes[l];
            out->kv_layer_bytes[l] = b;
            lo = b < lo ? b : lo;
            hi = b > hi ? b : hi;
        }
        out->n_layers = out->kv_layer_bytes ? info.n_layers : 0;
        /* Per-layer budgets (pyramidkv) size each layer by its own. */
        char layers[96] = "";
        if (out->n_layers && lo != hi)
            snprintf(layers, sizeof layers, ", %" PRIu64 " to %" PRIu64 " bytes per layer", lo,
                     hi);
        snprintf(out->message, sizeof out->message,
                 "ok (engine opened: %u-token context, every plugin configured; KV cache %.1f "
                 "MiB%s; prompt cache: %s; bounded: %s)", info.n_ctx,
                 (double)info.kv_cache_bytes / 1048576.0, layers,
                 info.prefix_cache ? "yes" : "no, the cache does not keep prompts",
                 info.bounded_cache ? "yes, the attention evicts: sequences and chats go past "
                                      "the context"
                                    : "no, the context is the limit");
        out->exit_code = ST_EXIT_OK;
        st_engine_close(e);
        return;
    }
    snprintf(out->message, sizeof out->message, "%s", err.message);
    out->exit_code = st_cli_exit_for(st);
}

static void print_json(const st_strategy_report *s, const configure_result *cfg, int exit_code)
{
    st_json j;
    st_json_init(&j, stdout, true);
    st_json_begin_object(&j);
    st_json_key(&j, "ok");
    st_json_bool(&j, s->ok);
    st_json_key(&j, "strategy");
    st_json_string(&j, s->parsed ? s->path : NULL);
    if (s->parsed) {
        st_json_key(&j, "files");
        st_json_begin_array(&j);
        for (size_t i = 0; i < s->n_files; i++)
            st_json_string(&j, s->files[i]);
        st_json_end_array(&j);
        st_json_key(&j, "model");
        st_json_string(&j, s->model);
        st_json_key(&j, "backend");
        st_json_string(&j, s->backend);
        st_json_key(&j, "context");
        st_json_uint(&j, s->context);
        st_json_key(&j, "threads");
        st_json_uint(&j, s->threads);
        st_json_key(&j, "kv_type");
        st_json_string(&j, s->kv_type);
        st_json_key(&j, "plugins");
        st_json_begin_array(&j);
        for (size_t i = 0; i < s->n_plugins; i++) {
            const st_resolved_plugin *it = s->plugins[i];
            const st_plugin_info *m = it->plugin;
            st_json_begin_object(&j);
            st_json_key(&j, "kind");
            st_json_string(&j, st_kind_name(it->kind));
            st_json_key(&j, "name");
            st_json_string(&j, it->name);
            st_json_key(&j, "found");
            st_json_bool(&j, m != NULL);
            st_json_key(&j, "version");
            st_json_string(&j, m ? m->version : NULL);
            st_json_key(&j, "manifest");
            st_json_string(&j, m ? m->manifest_path : NULL);
            st_json_key(&j, "library");
            st_json_string(&j, m ? m->library_path : NULL);
            st_json_key(&j, "params");
            if (it->params_ok)
                st_cli_params_values_json(&j, it);
            else
                st_json_null(&j);
            st_json_key(&j, "load");
            if (it->load && m)
                st_cli_report_json(&j, it->load);
            else
                st_json_null(&j);
            st_json_end_object(&j);
        }
        st_json_end_array(&j);
        st_json_key(&j, "configure");
        if (cfg->ran) {
            st_json_begin_object(&j);
            st_json_key(&j, "ok");
            st_json_bool(&j, cfg->exit_code == ST_EXIT_OK);
            st_json_key(&j, "message");
            st_json_string(&j, cfg->message);
            if (cfg->exit_code == ST_EXIT_OK) {
                st_json_key(&j, "kv_cache_bytes");
                st_json_uint(&j, cfg->kv_bytes);
                st_json_key(&j, "kv_layer_bytes");
                st_json_begin_array(&j);
                for (uint32_t l = 0; l < cfg->n_layers; l++)
                    st_json_uint(&j, cfg->kv_layer_bytes[l]);
                st_json_end_array(&j);
                st_json_key(&j, "prompt_cache");
                st_json_bool(&j, cfg->prompt_cache);
                st_json_key(&j, "bounded");
                st_json_bool(&j, cfg->bounded);
            }
            st_json_end_object(&j);
        } else {
            st_json_null(&j);
        }
    }
    st_json_key(&j, "errors");
    st_json_begin_array(&j);
    for (size_t i = 0; i < s->n_problems; i++) {
        const st_problem *d = s->problems[i];
        st_json_begin_object(&j);
        st_json_key(&j, "file");
        st_json_string(&j, d->file);
        st_json_key(&j, "line");
        st_json_int(&j, d->line);
        st_json_key(&j, "col");
        st_json_int(&j, d->col);
        st_json_key(&j, "message");
        st_json_string(&j, d->message);
        st_json_key(&j, "exit");
        st_json_int(&j, problem_exit(d));
        st_json_end_object(&j);
    }
    st_json_end_array(&j);
    st_json_key(&j, "exit");
    st_json_int(&j, exit_code);
    st_json_end_object(&j);
    st_json_end(&j);
}

int st_cmd_check(int argc, char **argv)
{
    bool json = false, load = true, conformance = false;
    const char *path = NULL;
    st_strlist dirs = {0};
    int code = ST_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--no-check") == 0) {
            load = false;
        } else if (strcmp(argv[i], "--conformance") == 0) {
            conformance = true;
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

    st_resolve_options o = {.struct_size = sizeof o,
                            .plugin_dirs = (const char *const *)dirs.items,
                            .n_plugin_dirs = dirs.n,
                            .flags = (load ? ST_RESOLVE_LOAD_CHECK : 0) |
                                     (load && conformance ? ST_RESOLVE_CONFORMANCE : 0)};
    st_strategy_report *s = NULL;
    st_error err = {0};
    st_status st = st_strategy_resolve(path, &o, &s, &err);
    if (st != ST_OK) {
        st_strlist_free(&dirs);
        st_cli_error(err.message);
        return ST_EXIT_RUNTIME;
    }
    configure_result cfg = {0};
    if (load && s->n_problems == 0 && s->model && st_cli_is_file(s->model))
        check_configure(path, &dirs, &cfg);
    st_strlist_free(&dirs);
    /* A plugin the child could not create (its `requires:` needs what only
     * an engine has) was created by the engine open above when it passed;
     * without it, the check proved nothing about that plugin. */
    const char *untested = NULL;
    for (size_t i = 0; i < s->n_plugins && load; i++)
        if (s->plugins[i]->load && s->plugins[i]->load->untested)
            untested = s->plugins[i]->name;
    /* A skipped place is not an error of this strategy, but it may be why a
     * plugin resolves to another copy than the one expected. */
    st_cli_warnings(s->warnings, s->n_warnings, s->n_warnings_dropped);
    code = s->n_problems ? problem_exit(s->problems[0]) : cfg.exit_code;
    if (code == ST_EXIT_OK && untested && !(cfg.ran && cfg.exit_code == ST_EXIT_OK)) {
        code = ST_EXIT_UNTESTED;
        fprintf(stderr, "stretch: plugin '%s' is untested: the checker could not create it "
                        "and no engine was opened (give the strategy a readable model)\n",
                st_cli_safe(untested));
    }
    if (json)
        print_json(s, &cfg, code);
    else if (s->parsed)
        print_text(s, cfg.ran && cfg.exit_code == ST_EXIT_OK);
    if (!json && cfg.ran && cfg.exit_code == ST_EXIT_OK)
        printf("\nconfigure: %s\n", cfg.message);
    else if (cfg.ran && cfg.exit_code != ST_EXIT_OK)
        fprintf(stderr, "stretch: %s\n", st_cli_safe(cfg.message));
    for (size_t i = 0; i < s->n_problems; i++)
        st_cli_error(s->problems[i]->text);
    if (s->n_problems_dropped)
        fprintf(stderr, "stretch: (%zu more errors not shown)\n", s->n_problems_dropped);
    if (!json && s->parsed && s->n_problems == 0 && code == ST_EXIT_OK)
        printf("\nok: %zu plugin%s resolved\n", s->n_plugins, s->n_plugins == 1 ? "" : "s");
    st_strategy_report_free(s);
    free(cfg.kv_layer_bytes);
    return code;
}
