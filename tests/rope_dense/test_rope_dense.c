/*
 * tests/rope_dense/test_rope_dense.c - the `rope` positional encoding and
 * the `dense` attention plugins, loaded from their built .so files.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "test_host.h"

static const st_plugin_entry *load(const char *kind, const char *name)
{
    char why[512];
    const st_plugin_entry *e = st_test_load_plugin(ST_TEST_PLUGIN_DIR, kind, name, why, sizeof why);
    cr_assert(e, "%s", why);
    cr_assert_str_eq(e->name, name);
    return e;
}

static st_model_shape smollm_shape(void)
{
    st_model_shape s = {
        .struct_size = sizeof s, .n_layers = 30, .n_heads = 9, .n_kv_heads = 3,
        .head_dim = 64, .rope_dims = 64, .rope_base = 100000.0f, .n_ctx_train = 8192,
        .n_ctx = 2048, .n_embd = 576, .n_vocab = 49152,
    };
    return s;
}

/* ---- rope ---- */

static void *rope_make(const st_plugin_entry *e, st_test_params *p, st_status want)
{
    void *inst = NULL;
    st_error err = {0};
    st_status st = st_test_create(e, NULL, p, &inst,
                             &err);
    cr_assert_eq(st, want, "create: %d %s", st, err.message);
    return inst;
}

Test(rope, default_is_the_models_encoding)
{
    const st_plugin_entry *e = load("positional-encoding", "rope");
    cr_assert_eq(e->kind, ST_KIND_POSENC);
    long before = st_test_host_default()->live_allocs;
    void *inst = rope_make(e, NULL, ST_OK);
    const st_posenc_ops *ops = e->ops;
    st_model_shape shape = smollm_shape();
    st_posenc_desc d = {0};
    st_error err = {0};
    cr_assert_eq(ops->configure(inst, &shape, &d, &err), ST_OK, "%s", err.message);
    cr_assert_eq(d.flags, ST_POSENC_ROTARY);
    cr_assert_eq(d.n_freq, 32);
    cr_assert_eq(d.rotary_scale, 1.0f);
    cr_assert_eq(d.attn_temperature, 1.0f);
    for (uint32_t i = 0; i < d.n_freq; i++) {
        double want = 1.0 / pow(100000.0, (2.0 * i) / 64.0);
        cr_assert(fabs(d.inv_freq[i] - want) <= 1e-6 * want, "inv_freq[%u] = %g, want %g", i,
                  d.inv_freq[i], want);
    }
    cr_assert_eq(d.inv_freq[0], 1.0f);
    /* Configure again (a new model): a fresh table, no leak. */
    cr_assert_eq(ops->configure(inst, &shape, &d, &err), ST_OK);
    e->destroy(inst);
    cr_assert_eq(st_test_host_default()->live_allocs, before);
}

/* Rotate the pair (x0, x1) by angle pos * f, the way the host applies it. */
static void rotate(const float *x, float *out, const float *inv_freq, uint32_t n, double pos)
{
    for (uint32_t i = 0; i < n; i++) {
        double a = pos * inv_freq[i], c = cos(a), s = sin(a);
        out[2 * i] = (float)(x[2 * i] * c - x[2 * i + 1] * s);
        out[2 * i + 1] = (float)(x[2 * i] * s + x[2 * i + 1] * c);
    }
}

static double dot(const float *a, const float *b, uint32_t n)
{
    double s = 0;
    for (uint32_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

Test(rope, scores_depend_on_relative_position_only)
{
    const st_plugin_entry *e = load("positional-encoding", "rope");
    void *inst = rope_make(e, NULL, ST_OK);
    const st_posenc_ops *ops = e->ops;
    st_model_shape shape = smollm_shape();
    st_posenc_desc d = {0};
    st_error err = {0};
    cr_assert_eq(ops->configure(inst, &shape, &d, &err), ST_OK);
    float q[64], k[64], qr[64], kr[64];
    for (int i = 0; i < 64; i++) {
        q[i] = (float)sin(0.37 * i + 0.1);
        k[i] = (float)cos(0.23 * i - 0.4);
    }
    rotate(q, qr, d.inv_freq, d.n_freq, 10);
    rotate(k, kr, d.inv_freq, d.n_freq, 3);
    double s1 = dot(qr, kr, 64);
    rotate(q, qr, d.inv_freq, d.n_freq, 1007);
    rotate(k, kr, d.inv_freq, d.n_freq, 1000);
    double s2 = dot(qr, kr, 64);
    cr_assert(fabs(s1 - s2) < 1e-3, "%g vs %g", s1, s2);
    rotate(k, kr, d.inv_freq, d.n_freq, 990);
    cr_assert(fabs(dot(qr, kr, 64) - s2) > 1e-3, "another distance scores differently");
    e->destroy(inst);
}

Test(rope, base_and_dims_parameters)
{
    const st_plugin_entry *e = load("positional-encoding", "rope");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_float(&p, "base", 10000.0);
    st_test_params_int(&p, "dims", 32);
    void *inst = rope_make(e, &p, ST_OK);
    const st_posenc_ops *ops = e->ops;
    st_model_shape shape = smollm_shape();
    st_posenc_desc d = {0};
    st_error err = {0};
    cr_assert_eq(ops->configure(inst, &shape, &d, &err), ST_OK, "%s", err.message);
    cr_assert_eq(d.n_freq, 32, "the table still covers the model's 32 pairs");
    for (uint32_t i = 0; i < 16; i++) {
        double want = pow(10000.0, -(2.0 * i) / 32.0);
        cr_assert(fabs(d.inv_freq[i] - want) <= 1e-6 * want, "inv_freq[%u]", i);
    }
    for (uint32_t i = 16; i < 32; i++)
        cr_assert_eq(d.inv_freq[i], 0.0f, "pair %u is not rotated", i);
    e->destroy(inst);
    st_test_params_destroy(&p);
}

Test(rope, refusals)
{
    const st_plugin_entry *e = load("positional-encoding", "rope");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "dims", 33);
    cr_assert_null(rope_make(e, &p, ST_E_RANGE));
    st_test_params_destroy(&p);

    st_test_params_init(&p);
    st_test_params_int(&p, "dims", 128);
    void *inst = rope_make(e, &p, ST_OK);
    const st_posenc_ops *ops = e->ops;
    st_model_shape shape = smollm_shape();
    st_posenc_desc d = {0};
    st_error err = {0};
    cr_assert_eq(ops->configure(inst, &shape, &d, &err), ST_E_RANGE);
    cr_assert(strstr(err.message, "head_dim"), "%s", err.message);
    e->destroy(inst);
    st_test_params_destroy(&p);

    inst = rope_make(e, NULL, ST_OK);
    shape.rope_dims = 0;
    cr_assert_eq(ops->configure(inst, &shape, &d, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "dims"), "%s", err.message);
    e->destroy(inst);
}

/* ---- dense ---- */

typedef struct recorder {
    st_attn_range ranges[8];
    size_t n;
} recorder;

static st_status rec_add_range(void *host, const st_attn_range *r)
{
    recorder *rec = host;
    if (rec->n == 8)
        return ST_E_RANGE;
    rec->ranges[rec->n++] = *r;
    return ST_OK;
}

static st_status rec_add_indices(void *host, const uint32_t *slots, size_t n,
                                 const st_attn_range *shape)
{
    return ST_E_INVALID; /* dense never lists slots */
}

Test(dense, one_causal_range_over_everything)
{
    const st_plugin_entry *e = load("attention", "dense");
    cr_assert_eq(e->kind, ST_KIND_ATTENTION);
    long before = st_test_host_default()->live_allocs;
    void *inst = NULL;
    st_error err = {0};
    cr_assert_eq(st_test_create(e, NULL, NULL, &inst, &err), ST_OK);
    const st_attention_ops *ops = e->ops;
    st_model_shape shape = smollm_shape();
    uint32_t needs = 99;
    int32_t wl = 99;
    cr_assert_eq(ops->configure(inst, &shape, &needs, &wl, &err), ST_OK);
    /* Nothing to feed it; its plan is stateless, so a prompt prefix may
     * be kept between requests (ABI 1.7). */
    cr_assert_eq(needs, ST_ATTN_PREFIX_REUSE);
    cr_assert_eq(ops->cache_budget(inst, 2048), 0);
    cr_assert_null(ops->retain, "dense keeps everything");

    int32_t pos[5] = {0, 1, 2, 3, 4}, toks[5] = {0};
    st_kv_view kv = {sizeof kv, 5, 16, pos, toks};
    int32_t q_pos[2] = {3, 4};
    uint32_t q_slot[2] = {3, 4};
    st_attn_query q = {.struct_size = sizeof q, .layer = 7, .n_heads = 9, .n_kv_heads = 3,
                       .head_dim = 64, .n_q = 2, .q_pos = q_pos, .q_slot = q_slot, .kv = &kv};
    recorder rec = {0};
    st_attn_plan_builder b = {.struct_size = sizeof b, .host = &rec, .add_range = rec_add_range,
                              .add_indices = rec_add_indices};
    cr_assert_eq(ops->plan(inst, &q, &b, &err), ST_OK, "%s", err.message);
    cr_assert_eq(rec.n, 1);
    st_attn_range r = rec.ranges[0];
    cr_assert_eq(r.head, ST_ALL_HEADS);
    cr_assert_eq(r.k_begin, 0);
    cr_assert_eq(r.k_end, 5);
    cr_assert_eq(r.min_dist, 0);
    cr_assert_eq(r.max_dist, ST_DIST_MAX);
    cr_assert_eq(r.pos_mode, ST_POS_TRUE);

    /* Nothing to see: no range. */
    kv.n_slots = 0;
    rec.n = 0;
    cr_assert_eq(ops->plan(inst, &q, &b, &err), ST_OK);
    cr_assert_eq(rec.n, 0);

    /* A host that refuses the range gets the refusal back with a message. */
    kv.n_slots = 5;
    rec.n = 8;
    cr_assert_eq(ops->plan(inst, &q, &b, &err), ST_E_RANGE);
    cr_assert(strstr(err.message, "dense"), "%s", err.message);
    ops->reset(inst);
    e->destroy(inst);
    cr_assert_eq(st_test_host_default()->live_allocs, before);
}
