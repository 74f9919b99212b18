/* Good plugin manifests: every field, every parameter type, defaults. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manifest.h"

#define DATA ST_TEST_SOURCE_DIR "/tests/manifest/data/plugins"

static st_plugin_manifest *load_ok(const char *path)
{
    st_plugin_manifest *m = NULL;
    st_diag d;
    st_diag_clear(&d);
    st_status st = st_plugin_manifest_load(path, &m, &d);
    char line[2300];
    cr_assert_eq(st, ST_OK, "%s", st_diag_format(&d, line, sizeof line));
    cr_assert_not_null(m);
    return m;
}

Test(manifest_plugin, all_fields)
{
    st_plugin_manifest *m = load_ok(DATA "/dense/plugin.yaml");
    char *dir = realpath(DATA "/dense", NULL);
    cr_assert_not_null(dir);
    cr_expect_str_eq(m->path, DATA "/dense/plugin.yaml");
    cr_expect_str_eq(m->dir, dir);
    cr_expect_eq(m->format, 1);
    cr_expect_str_eq(m->name, "dense");
    cr_expect_eq(m->kind, ST_KIND_ATTENTION);
    cr_expect_str_eq(m->version, "1.2.3-beta.1");
    cr_expect_str_eq(m->library, "lib/libst_attention_dense.so");
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/lib/libst_attention_dense.so", dir);
    cr_expect_str_eq(m->library_path, want);
    cr_expect_str_eq(m->summary, "Full causal attention over the whole context.");
    cr_assert_eq(m->n_requires, 1);
    cr_expect_str_eq(m->requires[0], "model");
    cr_assert_eq(m->n_optional, 2);
    cr_expect_str_eq(m->optional[0], "opencl");
    cr_expect_str_eq(m->optional[1], "attention-weights");
    cr_assert_eq(m->n_params, 6);
    free(dir);

    const st_param_schema *w = &m->params[0];
    cr_expect_str_eq(w->name, "window");
    cr_expect_eq(w->type, ST_PARAM_INT);
    cr_assert(w->has_default);
    cr_expect_eq(w->default_value->type, ST_VALUE_INT);
    cr_expect_eq(w->default_value->i, 512);
    cr_expect_eq(w->default_value->line, 15);
    cr_expect_eq(w->default_value->col, 14);
    cr_expect_str_eq(w->default_value->file, m->path);
    cr_expect(w->has_min && w->has_max);
    cr_expect_eq(w->min, 1.0);
    cr_expect_eq(w->max, 65536.0);
    cr_expect_str_eq(w->unit, "tokens");
    cr_expect_str_eq(w->doc, "How many recent tokens each query attends to.");
    cr_expect_not(w->required);

    const st_param_schema *s = st_plugin_manifest_param(m, "scale");
    cr_assert_not_null(s);
    cr_expect_eq(s->type, ST_PARAM_FLOAT);
    cr_expect_eq(s->default_value->type, ST_VALUE_FLOAT, "int default promoted to float");
    cr_expect_eq(s->default_value->f, 1.0);
    cr_expect_eq(s->max, 4.5);
    cr_expect_null(s->unit);

    const st_param_schema *c = st_plugin_manifest_param(m, "causal");
    cr_expect_eq(c->type, ST_PARAM_BOOL);
    cr_expect_eq(c->default_value->type, ST_VALUE_BOOL);
    cr_expect(c->default_value->b);

    const st_param_schema *l = st_plugin_manifest_param(m, "label");
    cr_expect_eq(l->type, ST_PARAM_STRING);
    cr_expect_eq(l->default_value->type, ST_VALUE_STRING, "quoted \"yes\" is a string");
    cr_expect_str_eq(l->default_value->s, "yes");

    const st_param_schema *e = st_plugin_manifest_param(m, "mode");
    cr_expect_eq(e->type, ST_PARAM_ENUM);
    cr_assert_eq(e->n_enum, 3);
    cr_expect_str_eq(e->enum_values[0], "exact");
    cr_expect_str_eq(e->enum_values[2], "off");
    cr_expect_str_eq(e->default_value->s, "exact");

    const st_param_schema *r = st_plugin_manifest_param(m, "seed");
    cr_expect(r->required);
    cr_expect_not(r->has_default);
    cr_expect_null(r->default_value);
    cr_expect_null(st_plugin_manifest_param(m, "nope"));
    st_plugin_manifest_free(m);
}

Test(manifest_plugin, minimal)
{
    st_plugin_manifest *m = load_ok(DATA "/minimal/plugin.yaml");
    cr_expect_str_eq(m->name, "minimal.v2_x-1");
    cr_expect_eq(m->kind, ST_KIND_SAMPLER);
    cr_expect_str_eq(m->version, "0.0.1");
    cr_expect_eq(m->n_requires, 0);
    cr_expect_eq(m->n_optional, 0);
    cr_expect_eq(m->n_params, 0);
    cr_expect_null(m->params);
    st_plugin_manifest_free(m);
}

Test(manifest_plugin, library_through_inner_symlink)
{
    st_plugin_manifest *m = load_ok(DATA "/linked/plugin.yaml");
    char *dir = realpath(DATA "/linked", NULL);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/real/libst_linked.so", dir);
    cr_expect_str_eq(m->library_path, want, "symlink followed, still inside");
    cr_expect_str_eq(m->version, "2.0.0+build.7");
    free(dir);
    st_plugin_manifest_free(m);
}

/* An absolute library path is fine when it lies inside the directory. */
Test(manifest_plugin, absolute_library_inside_dir)
{
    char dir[] = "/tmp/st_manifest_XXXXXX", path[128];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/plugin.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "format: 1\nname: abs\nkind: sampler\nversion: 1.0.0\n"
               "library: %s/sub/./libabs.so\nsummary: s\n", dir);
    fclose(f);
    st_plugin_manifest *m = load_ok(path);
    char *real = realpath(dir, NULL);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s/sub/libabs.so", real);
    cr_expect_str_eq(m->library_path, want);
    free(real);
    st_plugin_manifest_free(m);
    unlink(path);
    rmdir(dir);
}

Test(manifest_plugin, kind_names)
{
    cr_expect_eq(st_kind_from_name("tokenizer"), ST_KIND_TOKENIZER);
    cr_expect_eq(st_kind_from_name("positional-encoding"), ST_KIND_POSENC);
    cr_expect_eq(st_kind_from_name("attention"), ST_KIND_ATTENTION);
    cr_expect_eq(st_kind_from_name("sampler"), ST_KIND_SAMPLER);
    cr_expect_eq(st_kind_from_name("retriever"), ST_KIND_RETRIEVER);
    cr_expect_eq(st_kind_from_name("posenc"), 0);
    cr_expect_eq(st_kind_from_name(NULL), 0);
    cr_expect_str_eq(st_param_type_name(ST_PARAM_ENUM), "enum");
    cr_expect_str_eq(st_param_type_name(ST_PARAM_FLOAT), "float");
}

Test(manifest_plugin, missing_file)
{
    st_plugin_manifest *m = NULL;
    st_diag d;
    st_diag_clear(&d);
    st_status st = st_plugin_manifest_load(DATA "/nope/plugin.yaml", &m, &d);
    cr_expect_eq(st, ST_E_NOT_FOUND);
    cr_expect_null(m);
    cr_expect_str_eq(d.file, DATA "/nope/plugin.yaml");
    cr_expect(strstr(d.message, "cannot open") != NULL, "%s", d.message);
}

/* libfyaml must not print its own diagnostics. */
Test(manifest_plugin, syntax_error_prints_nothing, .init = cr_redirect_stderr)
{
    st_plugin_manifest *m = NULL;
    st_diag d;
    st_diag_clear(&d);
    st_status st = st_plugin_manifest_load(
        ST_TEST_SOURCE_DIR "/tests/bad/manifests/p-unclosed-quote.yaml", &m, &d);
    cr_expect_eq(st, ST_E_FORMAT);
    fflush(stderr);
    cr_expect_stderr_eq_str("");
}

/* Found by tests/fuzz: libfyaml 0.7.12 looped forever on a directive name
 * with a byte that is not UTF-8; the reader refuses such a file first. */
Test(manifest_plugin, not_utf8_refused_before_parsing, .timeout = 20)
{
    st_plugin_manifest *m = NULL;
    st_diag d;
    st_diag_clear(&d);
    st_status st = st_plugin_manifest_load(
        ST_TEST_SOURCE_DIR "/tests/bad/manifests/p-directive-not-utf8.yaml", &m, &d);
    cr_expect_eq(st, ST_E_FORMAT);
    cr_expect_null(m);
    cr_expect(d.line == 1 && d.col == 2, "at %d:%d", d.line, d.col);
    cr_expect(strstr(d.message, "expected UTF-8 text, found the byte 0xa0") != NULL, "%s",
              d.message);
}
