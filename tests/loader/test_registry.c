/*
 * tests/loader/test_registry.c - discovery: recursive scan, search order
 * (explicit dirs, STRETCH_PLUGIN_PATH, built-in), broken manifests listed
 * with their reason, duplicates shadowed, and no plugin code run.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry.h"

static char root[256];

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    /* mkdir -p of the parent */
    for (char *p = path + strlen(root) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void manifest(const char *rel_dir, const char *name, const char *kind)
{
    char rel[256], text[512];
    snprintf(rel, sizeof rel, "%s/plugin.yaml", rel_dir);
    snprintf(text, sizeof text,
             "format: 1\nname: %s\nkind: %s\nversion: 1.0.0\nlibrary: %s.so\n"
             "summary: test\n", name, kind, name);
    write_file(rel, text);
}

static void setup(void)
{
    snprintf(root, sizeof root, "/tmp/st_registry_test_XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    manifest("A/one", "dup", "sampler");
    write_file("A/two/deeper/plugin.yaml", "format: 1\nname: [oops\n");
    manifest("B/one", "dup", "sampler");
    manifest("B/other", "dup", "tokenizer");
    manifest("B/solo", "solo", "sampler");
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
}

static char *dir(const char *rel)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", root, rel);
    return buf[k];
}

/* Records under our temp root only (the built-in dir may hold others). */
static size_t ours(const st_registry *r, const st_plugin_record **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < st_registry_count(r); i++) {
        const st_plugin_record *rec = st_registry_at(r, i);
        if (strncmp(rec->manifest_path, root, strlen(root)) == 0 && n < cap)
            out[n++] = rec;
    }
    return n;
}

TestSuite(registry, .init = setup, .fini = teardown);

Test(registry, broken_listed_duplicates_shadowed_in_order)
{
    unsetenv("STRETCH_PLUGIN_PATH");
    st_registry *r = st_registry_new();
    st_diag d;
    cr_assert_eq(st_registry_add_dir(r, dir("A"), &d), ST_OK);
    cr_assert_eq(st_registry_add_dir(r, dir("B"), &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK, "%s", d.message);
    const st_plugin_record *recs[16];
    size_t n = ours(r, recs, 16);
    cr_assert_eq(n, 5, "every manifest is listed, broken ones too (got %zu)", n);

    cr_assert_str_eq(recs[0]->manifest_path, dir("A/one/plugin.yaml"));
    cr_assert_eq(recs[0]->state, ST_PLUGIN_OK);
    cr_assert_str_eq(recs[1]->manifest_path, dir("A/two/deeper/plugin.yaml"));
    cr_assert_eq(recs[1]->state, ST_PLUGIN_BROKEN);
    cr_assert_null(recs[1]->manifest);
    cr_assert_str_eq(recs[1]->diag.file, dir("A/two/deeper/plugin.yaml"));
    cr_assert_gt(recs[1]->diag.line, 0, "a YAML error has a line");
    cr_assert_str_eq(recs[2]->manifest_path, dir("B/one/plugin.yaml"));
    cr_assert_eq(recs[2]->state, ST_PLUGIN_SHADOWED);
    cr_assert(strstr(recs[2]->diag.message, dir("A/one/plugin.yaml")) != NULL,
              "says what shadows it: %s", recs[2]->diag.message);
    /* Same name, other kind: not a duplicate. */
    cr_assert_str_eq(recs[3]->manifest_path, dir("B/other/plugin.yaml"));
    cr_assert_eq(recs[3]->state, ST_PLUGIN_OK);
    cr_assert_eq(recs[4]->state, ST_PLUGIN_OK);

    const st_plugin_record *f = st_registry_find(r, ST_KIND_SAMPLER, "dup", &d);
    cr_assert_eq(f, recs[0], "the first found wins");
    f = st_registry_find(r, ST_KIND_TOKENIZER, "dup", &d);
    cr_assert_eq(f, recs[3]);
    cr_assert_null(st_registry_find(r, ST_KIND_SAMPLER, "nope", &d));
    cr_assert_eq(d.status, ST_E_NOT_FOUND);
    cr_assert(strstr(d.message, "'nope'") && strstr(d.message, dir("A")) &&
              strstr(d.message, dir("B")), "names what was searched: %s", d.message);
    cr_assert(strstr(d.message, "broken") != NULL, "mentions broken manifests: %s",
              d.message);
    st_registry_free(r);
}

Test(registry, plugin_path_env_after_explicit_dirs)
{
    char env[1100];
    snprintf(env, sizeof env, "%s:%s:/nonexistent/dir", dir("B"), dir("A"));
    setenv("STRETCH_PLUGIN_PATH", env, 1);
    st_registry *r = st_registry_new();
    st_diag d;
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    const st_plugin_record *f = st_registry_find(r, ST_KIND_SAMPLER, "dup", &d);
    cr_assert_not_null(f);
    cr_assert_str_eq(f->manifest_path, dir("B/one/plugin.yaml"), "env order: B first");
    st_registry_free(r);

    /* An explicit dir comes before the environment; the same dir reached
     * twice is not listed twice. */
    r = st_registry_new();
    cr_assert_eq(st_registry_add_dir(r, dir("A"), &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    f = st_registry_find(r, ST_KIND_SAMPLER, "dup", &d);
    cr_assert_str_eq(f->manifest_path, dir("A/one/plugin.yaml"));
    const st_plugin_record *recs[16];
    cr_assert_eq(ours(r, recs, 16), 5, "A scanned once although named twice");
    /* Scanning again adds nothing. */
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    cr_assert_eq(ours(r, recs, 16), 5);
    st_registry_free(r);
}

Test(registry, add_dir_must_exist)
{
    st_registry *r = st_registry_new();
    st_diag d;
    cr_assert_eq(st_registry_add_dir(r, dir("missing"), &d), ST_E_NOT_FOUND);
    cr_assert_str_eq(d.file, dir("missing"));
    st_registry_free(r);
}

Test(registry, add_manifest_directly)
{
    st_registry *r = st_registry_new();
    const st_plugin_record *rec = NULL;
    st_diag d;
    cr_assert_eq(st_registry_add_manifest(r, dir("B/solo/plugin.yaml"), &rec, &d), ST_OK);
    cr_assert_not_null(rec);
    cr_assert_str_eq(rec->manifest->name, "solo");
    cr_assert_eq(rec->manifest->kind, ST_KIND_SAMPLER);
    const st_plugin_record *again = NULL;
    cr_assert_eq(st_registry_add_manifest(r, dir("B/solo/plugin.yaml"), &again, &d), ST_OK);
    cr_assert_eq(again, rec, "the same file is one record");

    st_diag_clear(&d);
    cr_assert_neq(st_registry_add_manifest(r, dir("A/two/deeper/plugin.yaml"), &rec, &d),
                  ST_OK);
    cr_assert_not_null(rec, "a broken manifest is still a record");
    cr_assert_eq(rec->state, ST_PLUGIN_BROKEN);
    cr_assert_str_eq(d.file, dir("A/two/deeper/plugin.yaml"));
    cr_assert_eq(st_registry_count(r), 2);

    cr_assert_eq(st_registry_add_manifest(r, dir("nope.yaml"), &rec, &d), ST_E_NOT_FOUND);
    cr_assert_null(rec);
    st_registry_free(r);
}

static bool mapped(const char *needle)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[1024];
    bool found = false;
    while (f && fgets(line, sizeof line, f))
        found |= strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

Test(registry, listing_never_loads_code)
{
    unsetenv("STRETCH_PLUGIN_PATH");
    st_registry *r = st_registry_new();
    st_diag d;
    cr_assert_eq(st_registry_add_dir(r, ST_FIXTURE_DIR, &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    size_t broken = 0, ok = 0;
    for (size_t i = 0; i < st_registry_count(r); i++) {
        const st_plugin_record *rec = st_registry_at(r, i);
        if (strncmp(rec->manifest_path, ST_FIXTURE_DIR, strlen(ST_FIXTURE_DIR)) != 0)
            continue;
        broken += rec->state == ST_PLUGIN_BROKEN;
        ok += rec->state == ST_PLUGIN_OK;
    }
    cr_assert_eq(broken, 3, "bad-yaml, bad-escape, bad-escape-link are broken");
    cr_assert_geq(ok, 14);
    cr_assert_not(mapped("fixture-good.so"), "scanning must not dlopen");
    cr_assert_not_null(st_registry_find(r, ST_KIND_SAMPLER, "fixture-good", &d));
    st_registry_free(r);
}

Test(registry, builtin_dir_is_absolute_or_null)
{
    const char *b = st_builtin_plugin_dir();
    if (b)
        cr_assert_eq(b[0], '/', "%s", b);
}

Test(registry, symlink_loops_are_not_followed_forever)
{
    char link[600], target[600];
    snprintf(target, sizeof target, "%s/A", root);
    snprintf(link, sizeof link, "%s/A/one/loop", root);
    cr_assert_eq(symlink(target, link), 0);
    snprintf(link, sizeof link, "%s/A/two/loop", root);
    cr_assert_eq(symlink(target, link), 0);
    unsetenv("STRETCH_PLUGIN_PATH");
    st_registry *r = st_registry_new();
    st_diag d;
    cr_assert_eq(st_registry_add_dir(r, dir("A"), &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    const st_plugin_record *recs[16];
    cr_assert_eq(ours(r, recs, 16), 2, "each manifest once despite the loops");
    st_registry_free(r);
}

/* d0/ holds four symlinks to d1, d1 four to d2, ... (68 links): 4^16
 * paths to walk when only ancestors were remembered. Every directory is
 * entered once now. .timeout turns the old hang into a failure. */
Test(registry, symlink_fan_out_is_walked_once, .timeout = 60)
{
    for (int level = 0; level <= 17; level++) {
        char d[600];
        snprintf(d, sizeof d, "%s/fan/d%d", root, level);
        char rel[64];
        snprintf(rel, sizeof rel, "fan/d%d/.keep", level);
        write_file(rel, "");
        for (int k = 0; level < 17 && k < 4; k++) {
            char link[700], target[64];
            snprintf(link, sizeof link, "%s/l%d", d, k);
            snprintf(target, sizeof target, "../d%d", level + 1);
            cr_assert_eq(symlink(target, link), 0, "%s", link);
        }
    }
    manifest("fan/d17", "deep", "sampler");
    unsetenv("STRETCH_PLUGIN_PATH");
    st_registry *r = st_registry_new();
    st_diag d;
    cr_assert_eq(st_registry_add_dir(r, dir("fan/d0"), &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    st_registry_free(r);
}

static bool has_note(const st_registry *r, const char *needle)
{
    for (size_t i = 0; i < st_registry_note_count(r); i++)
        if (strstr(st_registry_note_at(r, i)->message, needle))
            return true;
    return false;
}

/* A symlink to / (or plugin-dirs: [/proc]) is a walk of the machine: the
 * scan stops after its entry budget and says where. */
Test(registry, a_symlink_to_root_stops_at_the_entry_budget, .timeout = 120)
{
    char link[600];
    snprintf(link, sizeof link, "%s/A/zz-everything", root); /* walked last */
    cr_assert_eq(symlink("/", link), 0);
    unsetenv("STRETCH_PLUGIN_PATH");
    st_registry *r = st_registry_new();
    st_diag d;
    cr_assert_eq(st_registry_add_dir(r, dir("A"), &d), ST_OK);
    cr_assert_eq(st_registry_add_dir(r, "/proc", &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    cr_assert(has_note(r, "search stopped here"), "no note of the cut-short search");
    const st_plugin_record *recs[16];
    cr_assert_geq(ours(r, recs, 16), 2, "what lies before the link is still found");
    st_registry_free(r);
}

/* The first plugin of a name wins, so a world-writable directory early in
 * the search path let anyone replace a built-in: it is skipped, noted. */
Test(registry, world_writable_places_are_not_searched)
{
    manifest("W/planted", "dup", "sampler");
    cr_assert_eq(chmod(dir("W"), 0777), 0);
    unsetenv("STRETCH_PLUGIN_PATH");
    st_registry *r = st_registry_new();
    st_diag d;
    cr_assert_eq(st_registry_add_dir(r, dir("W"), &d), ST_OK);
    cr_assert_eq(st_registry_add_dir(r, dir("B"), &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    const st_plugin_record *rec = st_registry_find(r, ST_KIND_SAMPLER, "dup", &d);
    cr_assert_not_null(rec);
    cr_assert_str_eq(rec->manifest_path, dir("B/one/plugin.yaml"));
    cr_assert(has_note(r, "world-writable (mode 0777)"));
    cr_assert_str_eq(st_registry_note_at(r, 0)->file, dir("W"));
    st_registry_free(r);

    /* The same below a search directory, and for a manifest itself. */
    cr_assert_eq(chmod(dir("W"), 0755), 0);
    cr_assert_eq(chmod(dir("W/planted"), 0757), 0);
    r = st_registry_new();
    cr_assert_eq(st_registry_add_dir(r, dir("W"), &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    cr_assert_null(st_registry_find(r, ST_KIND_SAMPLER, "dup", &d));
    cr_assert(has_note(r, "world-writable"));
    st_registry_free(r);
    cr_assert_eq(chmod(dir("W/planted"), 0755), 0);
    cr_assert_eq(chmod(dir("W/planted/plugin.yaml"), 0666), 0);
    r = st_registry_new();
    cr_assert_eq(st_registry_add_dir(r, dir("W"), &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    cr_assert_null(st_registry_find(r, ST_KIND_SAMPLER, "dup", &d));
    cr_assert_str_eq(st_registry_note_at(r, 0)->file, dir("W/planted/plugin.yaml"));
    st_registry_free(r);
}

/* An anchor on a key then an alias to it was a use-after-free in the YAML
 * reader: as a plugin.yaml it took the whole listing down. */
Test(registry, anchored_key_manifest_is_listed_not_fatal)
{
    write_file("A/anchor/plugin.yaml", "format: 1\n&k name: x\nkind: *k\n");
    unsetenv("STRETCH_PLUGIN_PATH");
    st_registry *r = st_registry_new();
    st_diag d;
    cr_assert_eq(st_registry_add_dir(r, dir("A"), &d), ST_OK);
    cr_assert_eq(st_registry_scan(r, &d), ST_OK);
    const st_plugin_record *recs[16];
    size_t n = ours(r, recs, 16);
    bool listed = false;
    for (size_t i = 0; i < n; i++)
        if (strstr(recs[i]->manifest_path, "anchor/plugin.yaml")) {
            listed = true;
            cr_assert_eq(recs[i]->state, ST_PLUGIN_BROKEN);
            cr_assert(strstr(recs[i]->diag.message, "found 'name'") != NULL, "%s",
                      recs[i]->diag.message);
        }
    cr_assert(listed);
    st_registry_free(r);
}
