/*
 * tests/loader/test_loader.c - every refusal of st_library_open, each with
 * its own fixture (tests/bad/libs), plus create failures and a clean
 * create/apply/destroy of the good fixture.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "host_services.h"
#include "registry.h"

#define ST_STR_(x) #x
#define ST_STR(x) ST_STR_(x)
/* "1.2": the host's ABI as its messages print it */
#define HOST_ABI ST_STR(ST_ABI_MAJOR) "." ST_STR(ST_ABI_MINOR)

static st_plugin_manifest *load_manifest(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/plugin.yaml", ST_FIXTURE_DIR, name);
    st_plugin_manifest *m = NULL;
    st_diag diag;
    st_diag_clear(&diag);
    st_status st = st_plugin_manifest_load(path, &m, &diag);
    cr_assert_eq(st, ST_OK, "manifest %s: %s", path, diag.message);
    return m;
}

/* Open `name`, expect refusal `want`, and return the formatted diag. */
static void expect_refusal(const char *name, st_refusal want, const char *needle,
                           const char *needle2)
{
    st_plugin_manifest *m = load_manifest(name);
    st_library *lib = (st_library *)1;
    st_refusal why = ST_REFUSE_NONE;
    st_diag diag;
    st_diag_clear(&diag);
    st_status st = st_library_open(m, &lib, &why, &diag);
    char line[2200];
    st_diag_format(&diag, line, sizeof line);
    cr_assert_neq(st, ST_OK, "%s loaded but must be refused", name);
    cr_assert_null(lib);
    cr_assert_eq(why, want, "%s: refusal %s, want %s (%s)", name, st_refusal_name(why),
                 st_refusal_name(want), line);
    cr_assert(strstr(line, m->library_path) != NULL, "message must name %s: %s",
              m->library_path, line);
    cr_assert(strstr(line, st_refusal_name(want)) != NULL, "%s", line);
    if (needle)
        cr_assert(strstr(line, needle) != NULL, "'%s' not in: %s", needle, line);
    if (needle2)
        cr_assert(strstr(line, needle2) != NULL, "'%s' not in: %s", needle2, line);
    cr_assert_eq(strchr(line, '\n'), NULL, "one line: %s", line);
    st_plugin_manifest_free(m);
}

Test(loader, good_plugin_loads_creates_applies_destroys)
{
    st_plugin_manifest *m = load_manifest("fixture-good");
    st_library *lib = NULL;
    st_refusal why = ST_REFUSE_ABI;
    st_diag diag;
    st_diag_clear(&diag);
    cr_assert_eq(st_library_open(m, &lib, &why, &diag), ST_OK, "%s", diag.message);
    cr_assert_eq(why, ST_REFUSE_NONE);
    cr_assert_str_eq(lib->entry->name, "fixture-good");
    cr_assert_eq(lib->manifest, m);

    st_host *host = st_host_new();
    st_instance *in = NULL;
    cr_assert_eq(st_instance_create(lib, st_host_services_of(host), NULL, &in, &diag),
                 ST_OK, "%s", diag.message);
    cr_assert_not_null(in->inst);
    cr_assert_gt(st_host_live_bytes(host), 0, "the fixture allocates through the host");
    const st_sampler_ops *ops = in->ops;
    st_candidate c[3] = {{5, 1.0f, 0}, {2, 3.0f, 0}, {9, 3.0f, 0}};
    st_candidates cands = {c, 3, false, -1};
    st_error err = {0};
    cr_assert_eq(ops->apply(in->inst, &cands, &err), ST_OK);
    cr_assert_eq(cands.selected, 1, "argmax with the lowest id on ties");
    st_instance_destroy(in);
    cr_assert_eq(st_host_live_bytes(host), 0, "destroy gives back what create took");
    st_host_free(host);
    st_library_close(lib);
    st_plugin_manifest_free(m);
}

Test(loader, missing_file)
{
    expect_refusal("bad-missing-file", ST_REFUSE_MISSING_FILE, "does not exist",
                   "bad-missing-file.so");
}

Test(loader, text_file_named_so_is_not_a_plugin)
{
    expect_refusal("bad-text-so", ST_REFUSE_NOT_A_PLUGIN, "not an ELF shared object",
                   NULL);
}

Test(loader, truncated_library_is_not_a_plugin)
{
    /* dlopen itself would map it and then fault (SIGBUS) past the end of
     * the file: the ELF headers are checked first. */
    expect_refusal("bad-truncated", ST_REFUSE_NOT_A_PLUGIN, "truncated ELF file", NULL);
}

Test(loader, missing_dependency)
{
    expect_refusal("bad-missing-dep", ST_REFUSE_DEPENDENCY, "libst_fixture_gone.so",
                   "cannot open shared object file");
}

Test(loader, missing_entry_symbol)
{
    expect_refusal("bad-no-entry", ST_REFUSE_MISSING_SYMBOL, "stretch_plugin_entry",
                   "ST_PLUGIN");
}

Test(loader, abi_major_differs)
{
    expect_refusal("bad-abi-major", ST_REFUSE_ABI, "plugin ABI 2.0, host ABI " HOST_ABI,
                   "major");
}

Test(loader, abi_minor_newer)
{
    expect_refusal("bad-abi-minor", ST_REFUSE_ABI, "plugin ABI 1.99, host ABI " HOST_ABI,
                   "newer");
}

Test(loader, kind_mismatch_names_both)
{
    expect_refusal("bad-kind", ST_REFUSE_MISMATCH, "tokenizer", "kind: sampler");
}

Test(loader, name_mismatch_names_both)
{
    expect_refusal("bad-name", ST_REFUSE_MISMATCH, "'some-other-name'", "name: bad-name");
}

Test(loader, null_create_is_bad_entry)
{
    expect_refusal("bad-null-create", ST_REFUSE_BAD_ENTRY, "'create' is NULL", NULL);
}

Test(loader, short_entry_is_bad_entry)
{
    expect_refusal("bad-short-entry", ST_REFUSE_BAD_ENTRY, "struct_size is 16", NULL);
}

Test(loader, path_escape_rechecked_at_load)
{
    /* The manifest parser already refuses an escaping `library:`; the
     * loader checks again on real paths, in case the files changed since.
     * Simulate that by pointing the manifest's dir somewhere else. */
    st_plugin_manifest *m = load_manifest("fixture-good");
    char *other = malloc(1024);
    snprintf(other, 1024, "%s/bad-abi-major", ST_FIXTURE_DIR);
    free(m->dir);
    m->dir = other;
    st_library *lib = NULL;
    st_refusal why = ST_REFUSE_NONE;
    st_diag diag;
    st_diag_clear(&diag);
    cr_assert_neq(st_library_open(m, &lib, &why, &diag), ST_OK);
    cr_assert_eq(why, ST_REFUSE_PATH_ESCAPE, "%s", diag.message);
    cr_assert_str_eq(diag.file, m->library_path);
    cr_assert(strstr(diag.message, "outside the plugin directory") != NULL, "%s",
              diag.message);
    st_plugin_manifest_free(m);
}

Test(loader, escaping_manifests_are_refused_when_read)
{
    const char *names[] = {"bad-escape", "bad-escape-link"};
    for (int i = 0; i < 2; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s/plugin.yaml", ST_FIXTURE_DIR, names[i]);
        st_plugin_manifest *m = NULL;
        st_diag diag;
        st_diag_clear(&diag);
        cr_assert_neq(st_plugin_manifest_load(path, &m, &diag), ST_OK, "%s", names[i]);
        cr_assert(strstr(diag.message, "escape") != NULL, "%s", diag.message);
        cr_assert_str_eq(diag.file, path);
    }
}

Test(loader, create_failure_carries_the_plugins_message)
{
    st_plugin_manifest *m = load_manifest("bad-create-fails");
    st_library *lib = NULL;
    st_diag diag;
    st_diag_clear(&diag);
    cr_assert_eq(st_library_open(m, &lib, NULL, &diag), ST_OK, "%s", diag.message);
    st_host *host = st_host_new();
    st_instance *in = (st_instance *)1;
    st_status st = st_instance_create(lib, st_host_services_of(host), NULL, &in, &diag);
    cr_assert_eq(st, ST_E_INVALID, "the plugin's status is kept");
    cr_assert_null(in);
    cr_assert_str_eq(diag.file, m->library_path);
    cr_assert(strstr(diag.message, "create-failed") != NULL, "%s", diag.message);
    cr_assert(strstr(diag.message, "fixture refuses on purpose: margin must be > 0") != NULL,
              "%s", diag.message);
    st_host_free(host);
    st_library_close(lib);
    st_plugin_manifest_free(m);
}

Test(loader, bad_params_are_refused_before_create)
{
    st_plugin_manifest *m = load_manifest("fixture-good");
    st_library *lib = NULL;
    st_diag diag;
    st_diag_clear(&diag);
    cr_assert_eq(st_library_open(m, &lib, NULL, &diag), ST_OK, "%s", diag.message);
    /* margin: "wide" (a string where a float is declared). */
    st_value key_val = {.type = ST_VALUE_STRING, .file = "strategy.yaml", .line = 3,
                        .col = 13, .s = "wide"};
    st_value_entry e = {.key = "margin", .value = &key_val};
    st_value map = {.type = ST_VALUE_MAP, .file = "strategy.yaml", .line = 3, .col = 5,
                    .entries = &e, .n = 1};
    st_host *host = st_host_new();
    st_instance *in = NULL;
    st_status st = st_instance_create(lib, st_host_services_of(host), &map, &in, &diag);
    cr_assert_neq(st, ST_OK);
    cr_assert_null(in);
    cr_assert_str_eq(diag.file, "strategy.yaml", "points at the strategy: %s", diag.file);
    cr_assert_eq(diag.line, 3);
    st_host_free(host);
    st_library_close(lib);
    st_plugin_manifest_free(m);
}

Test(loader, refusal_names_are_distinct)
{
    for (int a = ST_REFUSE_NONE; a <= ST_REFUSE_CREATE_FAILED; a++)
        for (int b = a + 1; b <= ST_REFUSE_CREATE_FAILED; b++)
            cr_assert_str_neq(st_refusal_name((st_refusal)a), st_refusal_name((st_refusal)b));
}
