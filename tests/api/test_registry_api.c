/* The public plugin API (<stretch/registry.h>) through the public headers
 * only, as any host would use it: list plugins with their schemas, see
 * broken and refused ones with reasons, load-check in a child (a crash is a
 * report, not a crash), resolve good and bad strategies. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stretch/registry.h>

static const st_plugin_info *find(const st_plugins *p, const char *name)
{
    for (size_t i = 0; i < st_plugins_count(p); i++) {
        const st_plugin_info *m = st_plugins_at(p, i);
        if (m->name && strcmp(m->name, name) == 0)
            return m;
    }
    return NULL;
}

static const st_plugin_info *find_manifest(const st_plugins *p, const char *part)
{
    for (size_t i = 0; i < st_plugins_count(p); i++)
        if (strstr(st_plugins_at(p, i)->manifest_path, part))
            return st_plugins_at(p, i);
    return NULL;
}

Test(registry_api, builtin_plugins_with_schemas)
{
    const char *dirs[] = {ST_TEST_PLUGIN_DIR};
    st_plugins *p = NULL;
    st_error err = {0};
    cr_assert_eq(st_plugins_open(dirs, 1, 0, &p, &err), ST_OK, "%s", err.message);
    cr_assert_gt(st_plugins_count(p), 5u);
    const st_plugin_info *m = NULL;
    cr_assert_eq(st_plugins_find(p, ST_KIND_SAMPLER, "top-k", &m, &err), ST_OK, "%s", err.message);
    cr_assert_eq(m->struct_size, sizeof *m);
    cr_assert_eq(m->state, ST_PLUGIN_OK);
    cr_assert_null(m->reason);
    cr_assert_str_eq(m->version, "1.0.0");
    cr_assert(strstr(m->library_path, "top-k.so") != NULL, "%s", m->library_path);
    cr_assert_eq(m->n_params, 1u);
    const st_param_info *k = m->params[0];
    cr_assert_str_eq(k->name, "k");
    cr_assert_eq(k->type, ST_PARAM_INT);
    cr_assert(k->has_default && !k->required);
    cr_assert_eq(k->default_int, 40);
    cr_assert(k->has_min && k->has_max);
    cr_assert_eq(k->max, 16777216.0);
    cr_assert_not_null(k->doc);
    /* Not found: the message names what was searched. */
    cr_assert_eq(st_plugins_find(p, ST_KIND_SAMPLER, "no-such", &m, &err), ST_E_NOT_FOUND);
    cr_assert_null(m);
    cr_assert(strstr(err.message, "no-such") != NULL, "%s", err.message);
    st_plugins_free(p);
}

Test(registry_api, bad_dir_is_an_error_naming_it)
{
    const char *dirs[] = {"/nonexistent/stretch-plugins"};
    st_plugins *p = (st_plugins *)1;
    st_error err = {0};
    cr_assert_eq(st_plugins_open(dirs, 1, 0, &p, &err), ST_E_NOT_FOUND);
    cr_assert_null(p);
    cr_assert(strstr(err.message, "/nonexistent/stretch-plugins") != NULL, "%s", err.message);
}

Test(registry_api, broken_listed_with_reason_and_refused_by_check)
{
    const char *dirs[] = {ST_FIXTURE_DIR};
    st_plugins *p = NULL;
    st_error err = {0};
    cr_assert_eq(st_plugins_open(dirs, 1, 0, &p, &err), ST_OK, "%s", err.message);
    const st_plugin_info *broken = find_manifest(p, "bad-yaml/plugin.yaml");
    cr_assert_not_null(broken);
    cr_assert_eq(broken->state, ST_PLUGIN_BROKEN);
    cr_assert_str_eq(st_plugin_state_name(broken->state), "broken");
    cr_assert_not_null(broken->reason);
    cr_assert(strstr(broken->reason, "plugin.yaml:") != NULL, "%s", broken->reason);
    cr_assert_null(broken->name);
    st_check_report *r = NULL;
    cr_assert_eq(st_plugin_check(p, broken, NULL, &r, &err), ST_E_INVALID);
    cr_assert_null(r);

    const st_plugin_info *abi = find(p, "bad-abi-major");
    cr_assert_not_null(abi);
    st_check_options o = {.struct_size = sizeof o};
    cr_assert_eq(st_plugin_check(p, abi, &o, &r, &err), ST_OK, "%s", err.message);
    cr_assert_not(r->ok);
    cr_assert_eq(r->refusal, ST_REFUSE_ABI);
    cr_assert_str_eq(st_refusal_name(r->refusal), "abi-mismatch");
    cr_assert_str_eq(r->outcome, "refused");
    cr_assert(r->has_abi && r->abi_major == 2, "abi %u", r->abi_major);
    cr_assert(strstr(r->message, "plugin ABI 2.0") != NULL, "%s", r->message);
    st_check_report_free(r);
    st_plugins_free(p);
}

Test(registry_api, check_good_plugin_with_conformance)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fixture-good/plugin.yaml", ST_FIXTURE_DIR);
    st_plugins *p = NULL;
    st_error err = {0};
    cr_assert_eq(st_plugins_open(NULL, 0, ST_PLUGINS_NO_SCAN, &p, &err), ST_OK);
    cr_assert_eq(st_plugins_count(p), 0u);
    const st_plugin_info *m = NULL;
    cr_assert_eq(st_plugins_add_manifest(p, path, &m, &err), ST_OK, "%s", err.message);
    cr_assert_str_eq(m->name, "fixture-good");
    cr_assert_str_eq(m->params[0]->unit, "logits");
    cr_assert_eq(m->params[0]->default_float, 0.5);
    st_check_options o = {.struct_size = sizeof o, .conformance = true};
    st_check_report *r = NULL;
    cr_assert_eq(st_plugin_check(p, m, &o, &r, &err), ST_OK, "%s", err.message);
    cr_assert(r->ok, "%s", r->result);
    cr_assert(r->loaded && r->created && r->finished);
    cr_assert_str_eq(r->outcome, "ok");
    cr_assert_str_eq(r->result, "ok");
    cr_assert_eq(r->abi_major, ST_ABI_MAJOR);
    cr_assert_gt(r->n_ops, 0u);
    cr_assert_str_eq(r->ops[0]->name, "apply");
    cr_assert(r->conformance_ran && r->conformance_ok);
    cr_assert_gt(r->n_checks_run, 5u);
    cr_assert_eq(r->n_checks_failed, 0u);
    cr_assert_eq(r->n_checks, 0u);
    st_check_report_free(r);
    st_plugins_free(p);
}

Test(registry_api, crashing_plugin_reports_the_signal)
{
    const char *dirs[] = {ST_FIXTURE_DIR};
    st_plugins *p = NULL;
    st_error err = {0};
    cr_assert_eq(st_plugins_open(dirs, 1, 0, &p, &err), ST_OK, "%s", err.message);
    const st_plugin_info *m = NULL;
    cr_assert_eq(st_plugins_find(p, 0, "bad-create-aborts", &m, &err), ST_OK, "%s", err.message);
    st_check_report *r = NULL;
    cr_assert_eq(st_plugin_check(p, m, NULL, &r, &err), ST_OK, "%s", err.message);
    cr_assert_not(r->ok);
    cr_assert_str_eq(r->outcome, "crashed");
    cr_assert_str_eq(r->signal_name, "SIGABRT");
    cr_assert(r->loaded && !r->created);
    cr_assert(strstr(r->result, "SIGABRT") != NULL, "%s", r->result);
    st_check_report_free(r);
    st_plugins_free(p);
}

static void write_strategy(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "format: 1\nplugin-dirs: [%s]\ntokenizer: {plugin: bytes}\n"
               "positional-encoding: {plugin: nope}\nattention: {plugin: dense}\n%s",
            ST_FIXTURE_DIR, body);
    fclose(f);
}

Test(registry_api, resolve_good_strategy)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/st_api_strategy_%d.yaml", (int)getpid());
    write_strategy(path, "samplers:\n  - plugin: fixture-good\n    params: {margin: 2}\n");
    const char *dirs[] = {ST_TEST_PLUGIN_DIR};
    st_resolve_options o = {.struct_size = sizeof o, .plugin_dirs = dirs, .n_plugin_dirs = 1,
                            .flags = ST_RESOLVE_LOAD_CHECK};
    st_strategy_report *r = NULL;
    st_error err = {0};
    cr_assert_eq(st_strategy_resolve(path, &o, &r, &err), ST_OK, "%s", err.message);
    cr_assert(r->ok, "%s", r->n_problems ? r->problems[0]->text : "");
    cr_assert(r->parsed);
    cr_assert_str_eq(r->kv_type, "f16");
    cr_assert_str_eq(r->backend, "cpu");
    cr_assert_eq(r->n_plugins, 4u);
    const st_resolved_plugin *s = r->plugins[3];
    cr_assert_eq(s->kind, ST_KIND_SAMPLER);
    cr_assert_str_eq(s->plugin->name, "fixture-good");
    cr_assert_eq(s->line, 7);
    cr_assert(s->params_ok && s->n_params == 1);
    cr_assert_str_eq(s->params[0]->name, "margin");
    cr_assert_eq(s->params[0]->type, ST_PARAM_FLOAT);
    cr_assert_eq(s->params[0]->f, 2.0);
    cr_assert(s->load && s->load->ok, "%s", s->load ? s->load->result : "not checked");
    st_strategy_report_free(r);
    unlink(path);
}

Test(registry_api, resolve_bad_strategy_reports_every_problem)
{
    char path[64], where[96];
    snprintf(path, sizeof path, "/tmp/st_api_bad_%d.yaml", (int)getpid());
    write_strategy(path, "samplers:\n  - plugin: nope\n  - plugin: fixture-good\n"
                         "    params: {margin: 1000}\n");
    const char *dirs[] = {ST_TEST_PLUGIN_DIR};
    st_resolve_options o = {.struct_size = sizeof o, .plugin_dirs = dirs, .n_plugin_dirs = 1};
    st_strategy_report *r = NULL;
    st_error err = {0};
    cr_assert_eq(st_strategy_resolve(path, &o, &r, &err), ST_OK, "%s", err.message);
    cr_assert_not(r->ok);
    cr_assert_eq(r->n_problems, 2u);
    const st_problem *a = r->problems[0], *b = r->problems[1];
    cr_assert_eq(a->kind, ST_PROBLEM_MANIFEST);
    cr_assert_str_eq(a->file, path);
    cr_assert(a->line == 7 && a->col > 0, "%d:%d", a->line, a->col);
    cr_assert(strstr(a->message, "'nope'") != NULL, "%s", a->message);
    cr_assert_eq(b->line, 9, "%s", b->text);
    snprintf(where, sizeof where, "%s:9:", path);
    cr_assert(strncmp(b->text, where, strlen(where)) == 0, "%s", b->text);
    cr_assert_null(r->plugins[3]->plugin);
    cr_assert_not(r->plugins[4]->params_ok);
    st_strategy_report_free(r);

    /* One that does not parse: not parsed, one problem with its place. */
    FILE *f = fopen(path, "w");
    fputs("format: 1\nsamplers: [\n", f);
    fclose(f);
    cr_assert_eq(st_strategy_resolve(path, &o, &r, &err), ST_OK);
    cr_assert_not(r->parsed);
    cr_assert_eq(r->n_problems, 1u);
    cr_assert_str_eq(r->problems[0]->file, path);
    cr_assert_gt(r->problems[0]->line, 0);
    st_strategy_report_free(r);
    unlink(path);
}
