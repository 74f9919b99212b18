/* Good strategy manifests: values, defaults, resolved paths, and extends
 * merging over three levels. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv_cache.h"
#include "manifest.h"

#define DATA ST_TEST_SOURCE_DIR "/tests/manifest/data"
#define STRAT DATA "/strategies"

static st_strategy *load_ok(const char *path)
{
    st_strategy *s = NULL;
    st_diag d;
    st_diag_clear(&d);
    st_status st = st_strategy_load(path, &s, &d);
    char line[2300];
    cr_assert_eq(st, ST_OK, "%s", st_diag_format(&d, line, sizeof line));
    cr_assert_not_null(s);
    return s;
}

/* DATA-relative path made absolute the way the loader does. */
static char *data_abs(const char *rel)
{
    char *root = realpath(DATA, NULL);
    cr_assert_not_null(root);
    char *out = malloc(strlen(root) + strlen(rel) + 2);
    sprintf(out, "%s/%s", root, rel);
    free(root);
    return out;
}

static const st_value *param(const st_plugin_ref *r, const char *key)
{
    cr_assert_not_null(r->params);
    cr_assert_eq(r->params->type, ST_VALUE_MAP);
    return st_value_get(r->params, key);
}

Test(manifest_strategy, base_values)
{
    st_strategy *s = load_ok(STRAT "/base.yaml");
    char *model = data_abs("models/tiny.gguf");
    char *plugins = data_abs("plugins");
    cr_expect_str_eq(s->path, STRAT "/base.yaml");
    cr_expect_str_eq(s->model, model);
    cr_expect_str_eq(s->backend, "cpu");
    cr_expect_eq(s->context, 4096);
    cr_expect_eq(s->threads, 2);
    cr_expect_eq(s->kv_type, ST_KV_Q8_0);
    cr_assert_eq(s->n_plugin_dirs, 1);
    cr_expect_str_eq(s->plugin_dirs[0], plugins);
    cr_expect_str_eq(s->tokenizer.plugin, "bpe");
    cr_expect_eq(s->tokenizer.params->n, 0, "no params: an empty map");
    cr_expect_str_eq(s->posenc.plugin, "rope");
    cr_expect_eq(s->posenc.line, 10);
    cr_expect_eq(s->posenc.col, 11);
    cr_expect_str_eq(s->attention.plugin, "dense");
    cr_expect_eq(param(&s->attention, "window")->i, 256);
    cr_expect(param(&s->attention, "causal")->b);
    cr_assert_eq(s->n_samplers, 2);
    cr_expect_str_eq(s->samplers[0].plugin, "top-k");
    cr_expect_eq(param(&s->samplers[0], "k")->i, 40);
    cr_expect_str_eq(s->samplers[1].plugin, "temperature");
    const st_value *t = param(&s->samplers[1], "temperature");
    cr_expect_eq(t->type, ST_VALUE_FLOAT);
    cr_expect_float_eq(t->f, 0.7, 1e-12);
    cr_expect_eq(t->line, 17);
    cr_expect_eq(t->col, 27);
    cr_expect_str_eq(t->file, STRAT "/base.yaml");
    cr_expect_str_eq(s->retriever.plugin, "bm25");
    cr_assert_eq(s->n_files, 1);
    cr_expect_str_eq(s->files[0], STRAT "/base.yaml");
    cr_expect_eq(t->file, s->files[0], "value files are interned in s->files");
    free(model);
    free(plugins);
    st_strategy_free(s);
}

Test(manifest_strategy, defaults)
{
    st_strategy *s = load_ok(STRAT "/defaults.yaml");
    cr_expect_null(s->model);
    cr_expect_str_eq(s->backend, "cpu");
    cr_expect_eq(s->context, 2048);
    cr_expect_eq(s->kv_type, ST_KV_F16, "f16 by default");
    cr_expect_eq(s->threads, 0);
    cr_expect_eq(s->n_plugin_dirs, 0);
    cr_expect_null(s->retriever.plugin);
    cr_expect_null(s->retriever.params);
    cr_assert_eq(s->n_samplers, 1);
    cr_expect_str_eq(s->samplers[0].plugin, "greedy");
    st_strategy_free(s);
}

Test(manifest_strategy, extends_two_levels_merges_params)
{
    st_strategy *s = load_ok(STRAT "/mid.yaml");
    cr_expect_str_eq(s->backend, "opencl:0:1");
    cr_expect_eq(s->context, 4096, "inherited");
    cr_expect_eq(s->kv_type, ST_KV_F32, "child overrides");
    cr_expect_str_eq(s->attention.plugin, "dense");
    const st_value *w = param(&s->attention, "window");
    cr_expect_eq(w->i, 1024, "child overrides");
    cr_expect_str_eq(w->file, STRAT "/mid.yaml");
    cr_expect_eq(w->line, 6);
    const st_value *seed = param(&s->attention, "seed");
    cr_expect_eq(seed->i, 7, "parent key kept");
    cr_expect_str_eq(seed->file, STRAT "/base.yaml", "inherited values point at the parent");
    cr_expect_str_eq(param(&s->attention, "mode")->s, "approximate", "child key added");
    cr_expect_eq(s->attention.params->n, 4);
    cr_assert_eq(s->n_plugin_dirs, 2, "plugin-dirs append");
    char *p0 = data_abs("plugins"), *p1 = data_abs("strategies/extra-plugins");
    cr_expect_str_eq(s->plugin_dirs[0], p0);
    cr_expect_str_eq(s->plugin_dirs[1], p1);
    cr_assert_eq(s->n_files, 2);
    cr_expect_str_eq(s->files[0], STRAT "/mid.yaml");
    cr_expect_str_eq(s->files[1], STRAT "/base.yaml");
    free(p0);
    free(p1);
    st_strategy_free(s);
}

Test(manifest_strategy, extends_three_levels)
{
    st_strategy *s = load_ok(STRAT "/sub/top.yaml");
    char *model = data_abs("models/other.gguf");
    cr_expect_str_eq(s->model, model, "relative to sub/, normalised");
    free(model);
    cr_expect_eq(s->context, 1024);
    cr_expect_eq(s->threads, 2, "from base, two levels up");
    cr_expect_str_eq(s->backend, "opencl:0:1", "from mid");
    cr_expect_str_eq(s->tokenizer.plugin, "bpe");
    cr_expect_str_eq(s->attention.plugin, "dense");
    cr_expect_str_eq(s->attention.file, STRAT "/sub/top.yaml", "the same plugin named again");
    cr_expect_eq(s->attention.params->n, 5);
    cr_expect_eq(param(&s->attention, "scale")->i, 2);
    cr_expect_eq(param(&s->attention, "window")->i, 1024);
    cr_expect_str_eq(param(&s->attention, "mode")->s, "approximate");
    cr_expect_eq(param(&s->attention, "seed")->i, 7);
    cr_assert_eq(s->n_samplers, 1, "samplers replace the whole chain");
    cr_expect_str_eq(s->samplers[0].plugin, "temperature");
    cr_expect_eq(param(&s->samplers[0], "temperature")->type, ST_VALUE_INT);
    cr_expect_null(s->retriever.plugin, "retriever: null drops the inherited one");
    cr_assert_eq(s->n_files, 3);
    cr_expect_str_eq(s->files[0], STRAT "/sub/top.yaml");
    cr_expect_str_eq(s->files[1], STRAT "/mid.yaml");
    cr_expect_str_eq(s->files[2], STRAT "/base.yaml");
    cr_expect_eq(s->n_plugin_dirs, 2);
    st_strategy_free(s);
}

Test(manifest_strategy, different_plugin_replaces_block)
{
    st_strategy *s = load_ok(STRAT "/replace.yaml");
    cr_expect_str_eq(s->attention.plugin, "sliding");
    cr_expect_eq(s->attention.params->n, 1, "parent's params dropped");
    cr_expect_eq(param(&s->attention, "size")->i, 64);
    cr_expect_null(param(&s->attention, "window"));
    cr_expect_str_eq(s->attention.file, STRAT "/replace.yaml");
    cr_expect_eq(s->attention.line, 4);
    cr_expect_eq(s->attention.col, 21);
    cr_expect_str_eq(s->tokenizer.plugin, "bpe");
    cr_expect_eq(param(&s->tokenizer, "dropout")->i, 0);
    cr_expect_eq(s->n_samplers, 2, "inherited chain");
    st_strategy_free(s);
}

/* `device:` picks an OpenCL device by index or name substring; the raw
 * text is kept (docs/opencl.md), and anything else is refused at its
 * line:column. */
static st_status load_text(const char *name, const char *text, st_strategy **s, st_diag *d)
{
    char path[256];
    snprintf(path, sizeof path, "/tmp/st_device_key_%ld_%s", (long)getpid(), name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    st_diag_clear(d);
    st_status st = st_strategy_load(path, s, d);
    unlink(path);
    return st;
}

Test(manifest_strategy, device_key)
{
    st_strategy *s = NULL;
    st_diag d;
    static const char head[] = "format: 1\ntokenizer: {plugin: bpe}\npositional-encoding: "
                               "{plugin: rope}\nattention: {plugin: dense}\nsamplers: "
                               "[{plugin: greedy}]\nbackend: opencl\n";
    char text[512];
    snprintf(text, sizeof text, "%sdevice: 1\n", head);
    cr_assert_eq(load_text("idx.yaml", text, &s, &d), ST_OK, "%s", d.message);
    cr_expect_str_eq(s->device, "1");
    st_strategy_free(s);
    snprintf(text, sizeof text, "%sdevice: Radeon RX\n", head);
    cr_assert_eq(load_text("name.yaml", text, &s, &d), ST_OK, "%s", d.message);
    cr_expect_str_eq(s->device, "Radeon RX");
    st_strategy_free(s);
    snprintf(text, sizeof text, "%s", head);
    cr_assert_eq(load_text("none.yaml", text, &s, &d), ST_OK, "%s", d.message);
    cr_expect_null(s->device);
    st_strategy_free(s);
    const char *bad[] = { "device: [1]\n", "device: -2\n", "device: ''\n", "device: {a: 1}\n" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "%s%s", head, bad[i]);
        s = NULL;
        cr_expect_eq(load_text("bad.yaml", text, &s, &d), ST_E_INVALID, "%s", bad[i]);
        cr_expect_null(s);
        cr_expect_eq(d.line, 7, "%s: line %d", bad[i], d.line);
        cr_expect(strstr(d.message, "device: expected a device index"), "%s", d.message);
    }
}
