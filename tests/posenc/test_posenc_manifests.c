/*
 * The strategy manifests manifests/{linear,ntk,dynamic-ntk,yarn,giraffe}.yaml
 * load, pick their plugin with parameters its plugin.yaml accepts, and the
 * plugin configured with them gives the table the formula says. Also: for
 * every plugin of this folder, the defaults in plugin.yaml are the ones
 * create() uses when a parameter is absent.
 */
#include <stdio.h>

#include "conformance.h"
#include "diag.h"
#include "manifest.h"
#include "plugin_create.h"
#include "posenc_fixture.h"

/* The packed parameters of `m` given `given` (NULL = defaults). */
static void validated(const st_plugin_manifest *m, const st_value *given, msgpack_sbuffer *sb,
                      msgpack_unpacked *up)
{
    st_diag diag = {0};
    char buf[1024];
    msgpack_sbuffer_init(sb);
    cr_assert_eq(st_params_validate(m, given, sb, &diag), ST_OK, "%s",
                 st_diag_format(&diag, buf, sizeof buf));
    msgpack_unpacked_init(up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(up, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
}

static st_plugin_manifest *plugin_manifest(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/positional-encoding/%s/plugin.yaml", ST_TEST_PLUGIN_DIR, name);
    st_plugin_manifest *m = NULL;
    st_diag diag = {0};
    char buf[1024];
    cr_assert_eq(st_plugin_manifest_load(path, &m, &diag), ST_OK, "%s",
                 st_diag_format(&diag, buf, sizeof buf));
    cr_assert_str_eq(m->name, name);
    cr_assert_eq(m->kind, ST_KIND_POSENC);
    return m;
}

/* `params`: a validated map (the strategy's), NULL = plugin.yaml's defaults. */
static st_posenc_desc configured(const st_plugin_entry *e, const msgpack_object *params,
                                 void **inst)
{
    st_error err = {0};
    *inst = NULL;
    st_status st = params ? st_plugin_create(e, st_test_host_services(), params, inst, &err, NULL)
                          : st_test_create(e, NULL, NULL, inst, &err);
    cr_assert_eq(st, ST_OK, "create %s: %s", e->name, err.message);
    st_model_shape s = pe_shape();
    s.n_pos_rows = 77; /* long-clip needs a learned table; the others ignore it */
    return pe_configure(e, *inst, &s);
}

static void strategy_case(const char *name, uint32_t context, double (*want)(int i))
{
    char path[1024];
    snprintf(path, sizeof path, "%s/manifests/%s.yaml", ST_TEST_SOURCE_DIR, name);
    st_strategy *s = NULL;
    st_diag diag = {0};
    char buf[1024];
    cr_assert_eq(st_strategy_load(path, &s, &diag), ST_OK, "%s",
                 st_diag_format(&diag, buf, sizeof buf));
    cr_assert_str_eq(s->posenc.plugin, name);
    cr_assert_eq(s->context, context, "%s: context %u", name, s->context);
    cr_assert_str_eq(s->attention.plugin, "dense", "%s keeps the default attention", name);

    st_plugin_manifest *m = plugin_manifest(name);
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    validated(m, s->posenc.params, &sb, &up);
    void *inst;
    const st_plugin_entry *e = pe_entry(name);
    st_posenc_desc d = configured(e, &up.data, &inst);
    double w[32];
    for (int i = 0; i < 32; i++)
        w[i] = want(i);
    pe_assert_table(&d, w, 32, name);
    e->destroy(inst);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    st_plugin_manifest_free(m);
    st_strategy_free(s);
    pe_assert_no_leak();
}

static double th(int i) { return pow(100000.0, -2.0 * i / 64.0); }
static double want_linear(int i) { return th(i) / 4.0; }
static double want_ntk(int i) { return pow(100000.0 * pow(4.0, 64.0 / 62.0), -2.0 * i / 64.0); }
static double want_giraffe(int i)
{
    double b = 2.0 * M_PI / 8192.0;
    return th(i) >= b ? th(i) : th(i) >= b / 8.0 ? 2.0 * M_PI / (16.0 * 8192.0) : 0.0;
}
static double want_yarn(int i)
{
    /* low 10, high 20 for this shape (see test_rope_scaling.c). */
    double ramp = 1.0 - fmin(1.0, fmax(0.0, (i - 10.0) / 10.0));
    return th(i) / 4.0 * (1.0 - ramp) + th(i) * ramp;
}

Test(posenc_manifests, linear) { strategy_case("linear", 32768, want_linear); }
Test(posenc_manifests, ntk) { strategy_case("ntk", 32768, want_ntk); }
Test(posenc_manifests, dynamic_ntk) { strategy_case("dynamic-ntk", 32768, th); }
Test(posenc_manifests, yarn) { strategy_case("yarn", 32768, want_yarn); }
Test(posenc_manifests, giraffe) { strategy_case("giraffe", 16384, want_giraffe); }

/* plugin.yaml defaults == create() defaults, and every plugin passes the
 * conformance suite with them. */
Test(posenc_manifests, yaml_defaults_match_create_defaults)
{
    const char *names[] = {"linear", "ntk", "dynamic-ntk", "yarn", "giraffe", "alibi", "long-clip"};
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        st_plugin_manifest *m = plugin_manifest(names[k]);
        msgpack_sbuffer sb;
        msgpack_unpacked up;
        validated(m, NULL, &sb, &up);
        const st_plugin_entry *e = pe_entry(names[k]);
        void *a, *b;
        st_posenc_desc da = configured(e, NULL, &a);
        st_posenc_desc db = configured(e, &up.data, &b);
        cr_assert_eq(da.flags, db.flags, "%s", names[k]);
        cr_assert_eq(da.n_freq, db.n_freq, "%s", names[k]);
        if (da.n_freq)
            cr_assert_arr_eq(da.inv_freq, db.inv_freq, da.n_freq * sizeof(float), "%s", names[k]);
        cr_assert_eq(da.rotary_scale, db.rotary_scale, "%s", names[k]);
        cr_assert_eq(da.attn_temperature, db.attn_temperature, "%s", names[k]);
        e->destroy(a);
        e->destroy(b);

        st_conformance_report rep;
        st_status st = st_conformance_run(e, st_test_host_services(), &up.data, &rep);
        for (size_t c = 0; c < rep.n_checks; c++)
            cr_expect(rep.checks[c].passed, "%s: %s: %s", names[k], rep.checks[c].name,
                      rep.checks[c].message);
        cr_assert_eq(st, ST_OK, "%s fails conformance", names[k]);
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
        st_plugin_manifest_free(m);
    }
    pe_assert_no_leak();
}
