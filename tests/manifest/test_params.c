/* st_params_validate: each refusal, int->float promotion, defaults, and
 * the packed msgpack map checked by unpacking it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stretch/msgpack_map.h>

#include "manifest.h"

#define PLUGINS ST_TEST_SOURCE_DIR "/tests/manifest/data/plugins"

static st_plugin_manifest *dense;
static char tmpdir[64];
static char strategy_path[128];

static void setup(void)
{
    st_diag d;
    cr_assert_eq(st_plugin_manifest_load(PLUGINS "/dense/plugin.yaml", &dense, &d), ST_OK,
                 "%s", d.message);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/st_params_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(strategy_path, sizeof strategy_path, "%s/s.yaml", tmpdir);
}

static void teardown(void)
{
    st_plugin_manifest_free(dense);
    unlink(strategy_path);
    rmdir(tmpdir);
}

TestSuite(manifest_params, .init = setup, .fini = teardown);

/* A strategy whose attention block has `params` (YAML flow text) on line 5. */
static st_strategy *strategy_with(const char *params)
{
    FILE *f = fopen(strategy_path, "w");
    cr_assert_not_null(f);
    fprintf(f, "format: 1\ntokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
               "samplers: [{plugin: greedy}]\nattention: {plugin: dense, params: %s}\n", params);
    fclose(f);
    st_strategy *s = NULL;
    st_diag d;
    st_diag_clear(&d);
    cr_assert_eq(st_strategy_load(strategy_path, &s, &d), ST_OK, "%s", d.message);
    return s;
}

/* Validate `params` against dense; returns the status, fills d and buf. */
static st_status validate(const char *params, msgpack_sbuffer *buf, st_diag *d)
{
    st_strategy *s = strategy_with(params);
    st_diag_clear(d);
    st_status st = st_params_validate(dense, s->attention.params, buf, d);
    st_strategy_free(s);
    return st;
}

static void expect_refused(const char *params, st_status want, int col, const char *needle)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    st_diag d;
    st_status st = validate(params, &buf, &d);
    cr_expect_eq(st, want, "%s: status %d (%s)", params, st, d.message);
    cr_expect_str_eq(d.file, strategy_path);
    cr_expect_eq(d.line, 5, "%s: line %d", params, d.line);
    cr_expect_eq(d.col, col, "%s: col %d (%s)", params, d.col, d.message);
    cr_expect(strstr(d.message, needle) != NULL, "%s: '%s' lacks '%s'", params, d.message, needle);
    cr_expect_eq(buf.size, 0, "nothing packed on error");
    msgpack_sbuffer_destroy(&buf);
}

/* Unpack `buf` and check it is a map with keys in schema order. */
static void unpack(msgpack_sbuffer *buf, msgpack_unpacked *u)
{
    msgpack_unpacked_init(u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(u, buf->data, buf->size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_expect_eq(off, buf->size, "one object, nothing after it");
    cr_assert_eq(u->data.type, MSGPACK_OBJECT_MAP);
}

static void expect_key(const msgpack_object *map, uint32_t i, const char *key,
                       msgpack_object_type type)
{
    cr_assert_lt(i, map->via.map.size);
    const msgpack_object_kv *kv = &map->via.map.ptr[i];
    cr_assert_eq(kv->key.type, MSGPACK_OBJECT_STR);
    cr_expect_eq(kv->key.via.str.size, strlen(key));
    cr_expect(memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0, "key %u is %s", i, key);
    cr_expect_eq(kv->val.type, type, "%s has msgpack type %d", key, kv->val.type);
}

Test(manifest_params, defaults_filled_in_schema_order)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    st_diag d;
    cr_assert_eq(validate("{seed: 3}", &buf, &d), ST_OK, "%s", d.message);
    msgpack_unpacked u;
    unpack(&buf, &u);
    const msgpack_object *m = &u.data;
    cr_assert_eq(m->via.map.size, 6);
    expect_key(m, 0, "window", MSGPACK_OBJECT_POSITIVE_INTEGER);
    expect_key(m, 1, "scale", MSGPACK_OBJECT_FLOAT64);
    expect_key(m, 2, "causal", MSGPACK_OBJECT_BOOLEAN);
    expect_key(m, 3, "label", MSGPACK_OBJECT_STR);
    expect_key(m, 4, "mode", MSGPACK_OBJECT_STR);
    expect_key(m, 5, "seed", MSGPACK_OBJECT_POSITIVE_INTEGER);
    int64_t i = 0;
    double f = 0;
    bool b = false;
    cr_expect_eq(st_mp_int(m, "window", &i), ST_OK);
    cr_expect_eq(i, 512);
    cr_expect_eq(st_mp_float(m, "scale", &f), ST_OK);
    cr_expect_eq(f, 1.0);
    cr_expect_eq(st_mp_bool(m, "causal", &b), ST_OK);
    cr_expect(b);
    cr_expect(st_mp_str_is(m, "label", "yes"));
    cr_expect(st_mp_str_is(m, "mode", "exact"));
    cr_expect_eq(st_mp_int(m, "seed", &i), ST_OK);
    cr_expect_eq(i, 3);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&buf);
}

Test(manifest_params, given_values_and_int_promoted_to_float)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    st_diag d;
    cr_assert_eq(validate("{mode: approximate, seed: -5, window: 65536, scale: 3, causal: false, "
                          "label: hello}", &buf, &d), ST_OK, "%s", d.message);
    msgpack_unpacked u;
    unpack(&buf, &u);
    const msgpack_object *m = &u.data;
    cr_assert_eq(m->via.map.size, 6);
    expect_key(m, 0, "window", MSGPACK_OBJECT_POSITIVE_INTEGER);
    expect_key(m, 1, "scale", MSGPACK_OBJECT_FLOAT64);
    expect_key(m, 5, "seed", MSGPACK_OBJECT_NEGATIVE_INTEGER);
    cr_expect_eq(m->via.map.ptr[0].val.via.u64, 65536);
    cr_expect_eq(m->via.map.ptr[1].val.via.f64, 3.0, "int 3 promoted to float 3.0");
    cr_expect_eq(m->via.map.ptr[2].val.via.boolean, false);
    cr_expect(st_mp_str_is(m, "label", "hello"));
    cr_expect(st_mp_str_is(m, "mode", "approximate"));
    cr_expect_eq(m->via.map.ptr[5].val.via.i64, -5);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&buf);
}

Test(manifest_params, unknown_name_suggests_closest)
{
    /* col 46 is the key "windw" in the flow map on line 5 */
    expect_refused("{seed: 1, windw: 3}", ST_E_INVALID, 46, "did you mean 'window'");
    expect_refused("{seed: 1, zzz: 3}", ST_E_INVALID, 46, "unknown parameter 'zzz'");
}

Test(manifest_params, wrong_types)
{
    expect_refused("{seed: 1, window: big}", ST_E_INVALID, 54, "expected an int");
    expect_refused("{seed: 1, window: 2.5}", ST_E_INVALID, 54, "not promoted");
    expect_refused("{seed: 1, causal: yes}", ST_E_INVALID, 54, "true or false");
    expect_refused("{seed: 1, causal: 1}", ST_E_INVALID, 54, "expected a bool");
    expect_refused("{seed: 1, label: 5}", ST_E_INVALID, 53, "expected a string");
    expect_refused("{seed: 1, scale: abc}", ST_E_INVALID, 53, "expected a float");
}

Test(manifest_params, out_of_range)
{
    expect_refused("{seed: 1, window: 0}", ST_E_RANGE, 54, "in 1..65536, found 0");
    expect_refused("{seed: 1, window: 65537}", ST_E_RANGE, 54, "found 65537");
    expect_refused("{seed: 1, scale: 4.51}", ST_E_RANGE, 53, "in 0..4.5");
    expect_refused("{seed: 1, scale: -1}", ST_E_RANGE, 53, "found -1");
}

Test(manifest_params, enum_not_in_list)
{
    expect_refused("{seed: 1, mode: fast}", ST_E_INVALID, 52,
                   "expected one of exact, approximate, off, found 'fast'");
}

Test(manifest_params, missing_required)
{
    /* located at the params mapping */
    expect_refused("{window: 8}", ST_E_INVALID, 36, "missing required parameter 'seed'");
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    st_diag d;
    st_diag_clear(&d);
    cr_expect_eq(st_params_validate(dense, NULL, &buf, &d), ST_E_INVALID);
    cr_expect(strstr(d.message, "'seed'") != NULL, "%s", d.message);
    cr_expect_eq(buf.size, 0);
    msgpack_sbuffer_destroy(&buf);
}

Test(manifest_params, not_a_map)
{
    st_value list = {.type = ST_VALUE_LIST, .file = "x.yaml", .line = 3, .col = 9};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    st_diag d;
    cr_expect_eq(st_params_validate(dense, &list, &buf, &d), ST_E_INVALID);
    cr_expect_str_eq(d.file, "x.yaml");
    cr_expect_eq(d.line, 3);
    cr_expect_eq(d.col, 9);
    cr_expect(strstr(d.message, "expected a mapping") != NULL, "%s", d.message);
    msgpack_sbuffer_destroy(&buf);
}

Test(manifest_params, plugin_without_required_params_takes_null)
{
    st_plugin_manifest *topk = NULL;
    st_diag d;
    cr_assert_eq(st_plugin_manifest_load(PLUGINS "/top-k/plugin.yaml", &topk, &d), ST_OK);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init(&buf);
    cr_assert_eq(st_params_validate(topk, NULL, &buf, &d), ST_OK, "%s", d.message);
    msgpack_unpacked u;
    unpack(&buf, &u);
    int64_t k = 0;
    cr_expect_eq(u.data.via.map.size, 1);
    cr_expect_eq(st_mp_int(&u.data, "k", &k), ST_OK);
    cr_expect_eq(k, 40);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&buf);
    st_plugin_manifest_free(topk);

    st_plugin_manifest *minimal = NULL;
    cr_assert_eq(st_plugin_manifest_load(PLUGINS "/minimal/plugin.yaml", &minimal, &d), ST_OK);
    msgpack_sbuffer_init(&buf);
    cr_assert_eq(st_params_validate(minimal, NULL, &buf, &d), ST_OK, "%s", d.message);
    unpack(&buf, &u);
    cr_expect_eq(u.data.via.map.size, 0, "an empty map, not nil");
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&buf);
    st_plugin_manifest_free(minimal);
}
