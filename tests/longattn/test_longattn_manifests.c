/*
 * The strategy manifests manifests/{lm-infinite,streaming,sirllm}.yaml load,
 * pick their plugin with parameters its plugin.yaml accepts, and configured
 * for SmolLM2-135M (trained on 8192) at the manifest's context they give the
 * cache budget their comments promise. Also: each plugin.yaml's defaults are
 * the ones create() uses when a parameter is absent.
 */
#include <stdio.h>

#include "diag.h"
#include "longattn_fixture.h"
#include "manifest.h"
#include "plugin_create.h"

static st_plugin_manifest *plugin_manifest(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/attention/%s/plugin.yaml", ST_TEST_PLUGIN_DIR, name);
    st_plugin_manifest *m = NULL;
    st_diag diag = {0};
    char buf[1024];
    cr_assert_eq(st_plugin_manifest_load(path, &m, &diag), ST_OK, "%s",
                 st_diag_format(&diag, buf, sizeof buf));
    cr_assert_str_eq(m->name, name);
    cr_assert_eq(m->kind, ST_KIND_ATTENTION);
    return m;
}

/* Budget of `name` created with `params` (NULL = none given) for SmolLM2. */
static uint32_t budget_of(const char *name, const msgpack_object *params, uint32_t n_ctx)
{
    const st_plugin_entry *e = la_entry(name);
    void *inst = NULL;
    st_error err = {0};
    st_status st = params ? st_plugin_create(e, st_test_host_services(), params, &inst, &err, NULL)
                          : st_test_create(e, NULL, NULL, &inst, &err);
    cr_assert_eq(st, ST_OK, "%s", err.message);
    st_model_shape s = {.struct_size = sizeof s, .n_layers = 30, .n_heads = 9, .n_kv_heads = 3,
                        .head_dim = 64, .rope_dims = 64, .rope_base = 100000.0f,
                        .n_ctx_train = 8192, .n_ctx = n_ctx, .n_embd = 576, .n_vocab = 49152};
    uint32_t needs = 0;
    int32_t wl = -1;
    cr_assert_eq(la_ops(e)->configure(inst, &s, &needs, &wl, &err), ST_OK, "%s: %s", name,
                 err.message);
    uint32_t b = la_ops(e)->cache_budget(inst, n_ctx);
    e->destroy(inst);
    return b;
}

static void strategy_case(const char *name, uint32_t want_budget)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/manifests/%s.yaml", ST_TEST_SOURCE_DIR, name);
    st_strategy *s = NULL;
    st_diag diag = {0};
    char buf[1024];
    cr_assert_eq(st_strategy_load(path, &s, &diag), ST_OK, "%s",
                 st_diag_format(&diag, buf, sizeof buf));
    cr_assert_str_eq(s->attention.plugin, name);
    cr_assert_str_eq(s->posenc.plugin, "rope", "%s keeps the model's RoPE", name);
    cr_assert_eq(s->context, 32768u);

    st_plugin_manifest *m = plugin_manifest(name);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(st_params_validate(m, s->attention.params, &sb, &diag), ST_OK, "%s",
                 st_diag_format(&diag, buf, sizeof buf));
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    uint32_t b = budget_of(name, &up.data, s->context);
    cr_assert_eq(b, want_budget, "%s: budget %u, expected %u", name, b, want_budget);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);

    /* The schema's defaults (validated from no params) equal create()'s. */
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(st_params_validate(m, NULL, &sb, &diag), ST_OK, "%s",
                 st_diag_format(&diag, buf, sizeof buf));
    msgpack_unpacked_init(&up);
    off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(budget_of(name, &up.data, 32768), budget_of(name, NULL, 32768));
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    st_plugin_manifest_free(m);
    st_strategy_free(s);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

/* 16 global + 8,192 local, and 255 out-of-window slots waiting for the
 * next batched eviction (evict_batch: 8192 / 32). */
Test(longattn_manifests, lm_infinite) { strategy_case("lm-infinite", 16 + 8192 + 255); }
Test(longattn_manifests, streaming) { strategy_case("streaming", 4 + 1020); }
Test(longattn_manifests, sirllm) { strategy_case("sirllm", 4 + 1000 + 1000); }
