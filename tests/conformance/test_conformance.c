/*
 * Every plugin under ST_TEST_PLUGIN_DIR (found at run time, so plugins other
 * folders add are covered too) passes the conformance suite with its
 * manifest's default parameters.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include "conformance.h"
#include "manifest.h"
#include "test_host.h"

/* Notes go through cr_log_info: Criterion 2.4.1 exits 1 after any
 * cr_log_warn even when every test passed. */

/* Run the suite on one plugin.yaml; returns the plugin name found (static
 * buffer) or NULL when it was skipped. */
static bool run_one(const char *manifest_path, char *name, size_t cap)
{
    st_plugin_manifest *m = NULL;
    st_diag diag = {0};
    if (st_plugin_manifest_load(manifest_path, &m, &diag) != ST_OK) {
        char buf[2048];
        cr_expect_fail("%s", st_diag_format(&diag, buf, sizeof buf));
        return false;
    }
    snprintf(name, cap, "%s/%s", st_kind_name(m->kind), m->name);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (st_params_validate(m, NULL, &sb, &diag) != ST_OK) {
        /* A required parameter without a default: nothing to run with. */
        char buf[2048];
        cr_log_info("%s: skipped: %s", name, st_diag_format(&diag, buf, sizeof buf));
        msgpack_sbuffer_destroy(&sb);
        st_plugin_manifest_free(m);
        return false;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS,
                 "%s: packed params do not unpack", name);

    void *h = dlopen(m->library_path, RTLD_NOW | RTLD_LOCAL);
    cr_assert_not_null(h, "%s: dlopen: %s", name, dlerror());
    const st_plugin_entry *entry = dlsym(h, ST_PLUGIN_ENTRY_SYMBOL);
    cr_assert_not_null(entry, "%s: no entry symbol", name);

    static st_conformance_report rep;
    st_status st = st_conformance_run(entry, st_test_host_services(), &up.data, &rep);
    for (size_t i = 0; i < rep.n_checks; i++) {
        const st_conformance_check *c = &rep.checks[i];
        cr_expect(c->passed, "%s: %s: %s", name, c->name, c->message);
        if (c->skipped)
            cr_log_info("%s: %s %s", name, c->name, c->message);
    }
    cr_expect_eq(rep.n_dropped, 0, "%s: %zu checks beyond the report's capacity", name,
                 rep.n_dropped);
    cr_expect_eq(st, rep.n_failed ? ST_E_PLUGIN : ST_OK, "%s: status disagrees with the report",
                 name);
    cr_expect(rep.n_checks >= 5, "%s: only %zu checks ran", name, rep.n_checks);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    st_plugin_manifest_free(m);
    /* The handle stays open: nothing of the plugin may outlive it, but a
     * plugin's static destructors are not ours to trigger mid-test. */
    return true;
}

Test(conformance, every_built_in_plugin_passes, .timeout = 120)
{
    static const char *const must[] = {
        "tokenizer/bytes", "positional-encoding/nope", "attention/sliding-window",
        "sampler/greedy", "sampler/temperature", "sampler/top-k", "sampler/top-p",
        "sampler/min-p", "sampler/penalties", "sampler/dist", "retriever/bm25"};
    enum { N_MUST = sizeof must / sizeof must[0] };
    bool found[N_MUST] = {false};
    size_t n_run = 0;

    DIR *kinds = opendir(ST_TEST_PLUGIN_DIR);
    cr_assert_not_null(kinds, "cannot open %s", ST_TEST_PLUGIN_DIR);
    struct dirent *k;
    while ((k = readdir(kinds))) {
        if (k->d_name[0] == '.')
            continue;
        char kdir[2048];
        snprintf(kdir, sizeof kdir, "%s/%s", ST_TEST_PLUGIN_DIR, k->d_name);
        DIR *names = opendir(kdir);
        if (!names)
            continue;
        struct dirent *n;
        while ((n = readdir(names))) {
            if (n->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s/plugin.yaml", kdir, n->d_name);
            FILE *f = fopen(path, "r");
            if (!f)
                continue;
            fclose(f);
            char name[256];
            if (!run_one(path, name, sizeof name))
                continue;
            n_run++;
            for (int i = 0; i < N_MUST; i++)
                found[i] = found[i] || strcmp(name, must[i]) == 0;
        }
        closedir(names);
    }
    closedir(kinds);
    for (int i = 0; i < N_MUST; i++)
        cr_expect(found[i], "built-in plugin %s not found under %s", must[i],
                  ST_TEST_PLUGIN_DIR);
    cr_assert(n_run >= N_MUST);
}

Test(conformance, sliding_window_with_sinks_passes)
{
    char why[512];
    const st_plugin_entry *e =
        st_test_load_plugin(ST_TEST_PLUGIN_DIR, "attention", "sliding-window", why, sizeof why);
    cr_assert_not_null(e, "%s", why);
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "window", 32);
    st_test_params_int(&p, "sinks", 4);
    static st_conformance_report rep;
    st_error err = {0};
    const msgpack_object *params = st_test_params_validated(e, &p, &err);
    cr_assert_not_null(params, "%s", err.message);
    st_status st = st_conformance_run(e, st_test_host_services(), params, &rep);
    st_test_params_destroy(&p);
    for (size_t i = 0; i < rep.n_checks; i++)
        cr_expect(rep.checks[i].passed, "%s: %s", rep.checks[i].name, rep.checks[i].message);
    cr_assert_eq(st, ST_OK);
    cr_assert_str_eq(rep.plugin, "attention/sliding-window");
}

Test(conformance, null_arguments)
{
    static st_conformance_report rep;
    cr_assert_eq(st_conformance_run(NULL, st_test_host_services(), NULL, &rep), ST_E_INVALID);
    cr_assert_eq(rep.n_failed, 1);
    cr_assert_eq(st_conformance_run(NULL, NULL, NULL, NULL), ST_E_INVALID);
}
