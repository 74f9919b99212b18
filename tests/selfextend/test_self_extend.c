/*
 * attention `self-extend` (SelfExtend) and ST_POS_GROUPED:
 *   - the plan: every (query, key) pair visible exactly once, at the true
 *     distance below the window and grouped with offset W - W/G beyond;
 *   - parameters and an old host's builder (no add_range2) refused clearly;
 *   - the conformance suite with a window the fake caches exceed;
 *   - the host's forward pass (tiled prefill, split decode, gather blocks)
 *     driven by the plugin against the plain reference forward pass whose
 *     rule rotates query and key at the grouped positions written out
 *     here: floor(q/G) + W - W/G and floor(k/G) (the published code's
 *     group_query_position / group_key_position), every block size from
 *     token-by-token decode to one prefill, positions with and without
 *     gaps, GQA (4 query heads on 2 kv heads).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "conformance.h"
#include "forward.h"
#include "gguf.h"
#include "kv_cache.h"
#include "model.h"
#include "ref_llama.h"
#include "test_host.h"
#include "threadpool.h"
#include "tiny_model.h"

enum { MAX_Q = 64, MAX_K = 128 };

static const st_plugin_entry *entry(void)
{
    char why[512] = "";
    const st_plugin_entry *e =
        st_test_load_plugin(ST_TEST_PLUGIN_DIR, "attention", "self-extend", why, sizeof why);
    cr_assert_not_null(e, "%s", why);
    return e;
}

static const st_attention_ops *ops_of(const st_plugin_entry *e)
{
    return e->ops;
}

static void *make(const st_plugin_entry *e, int group, int window)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "group", group);
    st_test_params_int(&p, "window", window);
    void *inst = NULL;
    st_error err = {0};
    cr_assert_eq(st_test_create(e, NULL, &p, &inst, &err), ST_OK, "%s", err.message);
    st_test_params_destroy(&p);
    st_model_shape s = {.struct_size = sizeof s, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                        .head_dim = 8, .rope_dims = 8, .n_ctx_train = 64, .n_ctx = 256};
    uint32_t needs = 99;
    int32_t wl = 0;
    cr_assert_eq(ops_of(e)->configure(inst, &s, &needs, &wl, &err), ST_OK, "%s", err.message);
    cr_assert_eq(needs, 0u);
    cr_assert_eq(ops_of(e)->cache_budget(inst, 256), 0u, "self-extend keeps every key");
    return inst;
}

/* ---- the plan against a fake view --------------------------------------- */

typedef struct collect {
    const st_attn_query *q;
    uint8_t vis[MAX_Q][MAX_K];
    st_pos_mode mode[MAX_Q][MAX_K];
    uint32_t group[MAX_Q][MAX_K];
    int32_t offset[MAX_Q][MAX_K];
    int n_old_calls;
} collect;

static st_status rec_range2(void *host, const st_attn_range2 *r)
{
    collect *c = host;
    cr_assert_eq(r->struct_size, sizeof *r);
    cr_assert_eq(r->head, ST_ALL_HEADS);
    cr_assert(r->k_begin <= r->k_end && r->k_end <= c->q->kv->n_slots);
    for (uint32_t i = 0; i < c->q->n_q; i++)
        for (uint32_t k = r->k_begin; k < r->k_end; k++) {
            int64_t d = (int64_t)c->q->q_pos[i] - c->q->kv->pos[k];
            if (d < r->min_dist || d > r->max_dist)
                continue;
            c->vis[i][k]++;
            c->mode[i][k] = r->pos_mode;
            c->group[i][k] = r->group;
            c->offset[i][k] = r->group_offset;
        }
    return ST_OK;
}

static st_status rec_indices2(void *host, const uint32_t *s, size_t n, const st_attn_range2 *r)
{
    (void)host; (void)s; (void)n; (void)r;
    cr_assert_fail("self-extend adds ranges only");
    return ST_E_INVALID;
}

static st_status rec_range(void *host, const st_attn_range *r)
{
    (void)r;
    ((collect *)host)->n_old_calls++;
    return ST_OK;
}

static st_status rec_indices(void *host, const uint32_t *s, size_t n, const st_attn_range *r)
{
    (void)s; (void)n; (void)r;
    ((collect *)host)->n_old_calls++;
    return ST_OK;
}

static st_status plan(const st_plugin_entry *e, void *inst, const int32_t *pos, uint32_t n_slots,
                      uint32_t q_first, uint32_t n_q, collect *c, size_t builder_size,
                      st_error *err)
{
    st_kv_view kv = {.struct_size = sizeof kv, .n_slots = n_slots, .capacity = MAX_K,
                     .pos = pos, .tokens = pos};
    int32_t q_pos[MAX_Q];
    uint32_t q_slot[MAX_Q];
    for (uint32_t i = 0; i < n_q; i++) {
        q_slot[i] = q_first + i;
        q_pos[i] = pos[q_first + i];
    }
    st_attn_query q = {.struct_size = sizeof q, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                       .n_q = n_q, .q_pos = q_pos, .q_slot = q_slot, .kv = &kv};
    memset(c, 0, sizeof *c);
    c->q = &q;
    st_attn_plan_builder b = {.struct_size = (uint32_t)builder_size, .host = c,
                              .add_range = rec_range, .add_indices = rec_indices,
                              .add_range2 = rec_range2, .add_indices2 = rec_indices2};
    st_status st = ops_of(e)->plan(inst, &q, &b, err);
    c->q = NULL;
    return st;
}

/* Every pair visible once: true distance below W, grouped (G, W - W/G)
 * from W on, nothing in the future. */
static void check_plan(const collect *c, const int32_t *pos, uint32_t n_slots, uint32_t q_first,
                       uint32_t n_q, int32_t G, int32_t W)
{
    for (uint32_t i = 0; i < n_q; i++)
        for (uint32_t k = 0; k < n_slots; k++) {
            int64_t d = (int64_t)pos[q_first + i] - pos[k];
            if (d < 0) {
                cr_assert_eq(c->vis[i][k], 0, "query %u sees the later key %u", i, k);
                continue;
            }
            cr_assert_eq(c->vis[i][k], 1, "query %u, key %u (distance %lld) seen %u times", i, k,
                         (long long)d, c->vis[i][k]);
            if (d < W) {
                cr_assert_eq(c->mode[i][k], ST_POS_TRUE, "distance %lld", (long long)d);
            } else {
                cr_assert_eq(c->mode[i][k], ST_POS_GROUPED, "distance %lld", (long long)d);
                cr_assert_eq(c->group[i][k], (uint32_t)G);
                cr_assert_eq(c->offset[i][k], W - W / G);
            }
        }
}

Test(self_extend, plan_splits_at_the_window)
{
    const st_plugin_entry *e = entry();
    void *inst = make(e, 4, 12);
    int32_t pos[MAX_K];
    for (uint32_t j = 0; j < MAX_K; j++)
        pos[j] = (int32_t)(3 * j + j / 5); /* gaps: groups hold 1 or 2 keys */
    static collect c;
    st_error err = {0};
    struct { uint32_t n_slots, q_first, n_q; } cases[] = {
        {1, 0, 1},     /* the first token */
        {40, 0, 40},   /* a prefill from an empty cache */
        {100, 99, 1},  /* decode */
        {100, 70, 30}, /* a block after a cache */
        {3, 1, 2},     /* every key inside the window */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cr_assert_eq(plan(e, inst, pos, cases[i].n_slots, cases[i].q_first, cases[i].n_q, &c,
                          sizeof(st_attn_plan_builder), &err), ST_OK, "%s", err.message);
        cr_assert_eq(c.n_old_calls, 0, "grouped plans go through add_range2");
        check_plan(&c, pos, cases[i].n_slots, cases[i].q_first, cases[i].n_q, 4, 12);
    }
    e->destroy(inst);
}

Test(self_extend, an_old_builder_is_refused_by_name)
{
    const st_plugin_entry *e = entry();
    void *inst = make(e, 4, 8);
    int32_t pos[MAX_K];
    for (uint32_t j = 0; j < MAX_K; j++)
        pos[j] = (int32_t)j;
    static collect c;
    st_error err = {0};
    /* A 1.3 host's builder ends at add_indices. */
    st_status st = plan(e, inst, pos, 20, 10, 10, &c,
                        offsetof(st_attn_plan_builder, add_range2), &err);
    cr_assert_eq(st, ST_E_ABI);
    cr_assert(strstr(err.message, "add_range2") && strstr(err.message, "1.4"), "%s",
              err.message);
    cr_assert_eq(c.n_old_calls, 0);
    e->destroy(inst);
}

Test(self_extend, params_are_checked)
{
    const st_plugin_entry *e = entry();
    struct { int group, window; const char *want; } bad[] = {
        {8, 1020, "multiple"}, {3, 1024, "multiple"}, {0, 1024, "group"},
        {8, 0, "window"},      {5000, 10000, "group"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        st_test_params p;
        st_test_params_init(&p);
        st_test_params_int(&p, "group", bad[i].group);
        st_test_params_int(&p, "window", bad[i].window);
        void *inst = NULL;
        st_error err = {0};
        cr_assert_neq(st_test_create(e, NULL, &p, &inst, &err), ST_OK, "group %d window %d",
                      bad[i].group, bad[i].window);
        cr_assert_null(inst);
        cr_assert(strstr(err.message, bad[i].want), "group %d window %d: %s", bad[i].group,
                  bad[i].window, err.message);
        st_test_params_destroy(&p);
    }
}

Test(self_extend, conformance_with_a_small_window)
{
    const st_plugin_entry *e = entry();
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "group", 4);
    st_test_params_int(&p, "window", 8);
    static st_conformance_report rep;
    st_error err = {0};
    const msgpack_object *params = st_test_params_validated(e, &p, &err);
    cr_assert_not_null(params, "%s", err.message);
    st_status st = st_conformance_run(e, st_test_host_services(), params, &rep);
    st_test_params_destroy(&p);
    for (size_t i = 0; i < rep.n_checks; i++)
        cr_expect(rep.checks[i].passed, "%s: %s", rep.checks[i].name, rep.checks[i].message);
    cr_assert_eq(st, ST_OK);
    cr_assert_gt(rep.n_checks, 5);
}

/* ---- the forward pass against the reference ----------------------------- */

#define N 48
#define TOL 1e-4

typedef struct fixture {
    st_gguf *g;
    st_model *m;
    st_ref_model *ref;
    uint32_t V;
} fixture;

static void open_model(fixture *f)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec); /* 4 heads on 2 kv heads: GQA */
    spec.type = ST_GGML_F32;
    spec.embd_type = ST_GGML_F32;
    spec.n_vocab = 300;
    st_diag d;
    cr_assert_eq(st_tiny_model_load(&spec, &f->g, &f->m, &d), ST_OK, "%s", d.message);
    cr_assert_lt(f->m->hp.n_kv_heads, f->m->hp.n_heads);
    f->ref = st_ref_model_new(f->m);
    f->V = f->m->hp.n_vocab;
}

static void close_model(fixture *f)
{
    st_ref_model_free(f->ref);
    st_model_free(f->m);
    st_gguf_close(f->g);
}

typedef struct run {
    const st_plugin_entry *e;
    void *inst;
} run;

static st_status plan_bridge(void *user, const st_attn_query *q, const st_attn_plan_builder *b,
                             st_error *err)
{
    run *r = user;
    return ops_of(r->e)->plan(r->inst, q, b, err);
}

/* The method written out: distance below W at the true positions, else
 * query at floor(q/G) + W - W/G and key at floor(k/G). */
typedef struct se_rule {
    int32_t G, W;
} se_rule;

static bool rule(void *user, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                 double *rk)
{
    const se_rule *s = user;
    int32_t d = pos[qi] - pos[ki];
    if (d < 0)
        return false;
    if (d < s->W) {
        *rq = pos[qi];
        *rk = pos[ki];
    } else {
        *rq = pos[qi] / s->G + s->W - s->W / s->G;
        *rk = pos[ki] / s->G;
    }
    return true;
}

/* n tokens in blocks of `block` through the plugin's plan; logits of all. */
static void forward_blocks(fixture *f, run *r, const int32_t *tok, const int32_t *pos,
                           size_t block, uint32_t nth, float *logits)
{
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f->m->hp.n_layers, f->m->hp.n_kv_heads, f->m->hp.head_dim,
                                    N, ST_KV_F32, &kv, &d), ST_OK);
    st_threadpool *pool = NULL;
    cr_assert_eq(st_threadpool_create(nth, &pool, &d), ST_OK);
    st_forward_config cfg = {.model = f->m, .kv = kv, .pool = pool, .plan = plan_bridge,
                             .plan_user = r, .weights_layer = INT32_MIN};
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK, "%s", d.message);
    for (size_t t0 = 0; t0 < N; t0 += block) {
        size_t nb = N - t0 < block ? N - t0 : block;
        cr_assert_eq(st_forward(ctx, tok + t0, pos + t0, nb, logits + t0 * f->V,
                                ST_FORWARD_ALL_LOGITS, &d), ST_OK, "forward: %s", d.message);
    }
    st_forward_ctx_free(ctx);
    st_threadpool_destroy(pool);
    st_kv_cache_free(kv);
}

static double rel_diff(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double x = fabs((double)a[i] - b[i]);
        md = x > md ? x : md;
        mb = fabs(b[i]) > mb ? fabs(b[i]) : mb;
    }
    return md / mb;
}

static void check_against_reference(int G, int W, int pos_step)
{
    fixture f;
    open_model(&f);
    run r = {.e = entry()};
    r.inst = make(r.e, G, W);
    int32_t tok[N], pos[N];
    for (size_t i = 0; i < N; i++) {
        tok[i] = (int32_t)((i * 2654435761u + 17u) % f.V);
        pos[i] = (int32_t)(i * (size_t)pos_step + i / 7); /* pos_step > 1: gaps */
    }
    float *want = malloc(sizeof(float) * N * f.V), *got = malloc(sizeof(float) * N * f.V);
    float *dense = malloc(sizeof(float) * N * f.V);
    cr_assert(want && got && dense);
    se_rule sr = {G, W};
    st_ref_opts o = {.quantize_acts = true, .rule = rule, .user = &sr};
    st_ref_forward(f.ref, tok, pos, N, &o, want);
    st_ref_opts od = {.quantize_acts = true};
    st_ref_forward(f.ref, tok, pos, N, &od, dense);
    /* Grouping must matter here, or the comparison proves little. */
    cr_assert_gt(rel_diff(want + (N - 1) * f.V, dense + (N - 1) * f.V, f.V), 1e-3,
                 "G %d W %d: self-extend's logits equal dense ones", G, W);
    /* 1: decode (split path), 3 and 5: gather blocks, 8, 20, N: tiles. */
    size_t blocks[] = {1, 3, 5, 8, 20, N};
    for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++)
        for (uint32_t nth = 1; nth <= 2; nth++) {
            forward_blocks(&f, &r, tok, pos, blocks[b], nth, got);
            for (size_t t = 0; t < N; t++) {
                double diff = rel_diff(got + t * f.V, want + t * f.V, f.V);
                cr_assert_lt(diff, TOL, "G %d W %d step %d, block %zu, %u threads, token %zu: "
                             "relative difference %g", G, W, pos_step, blocks[b], nth, t, diff);
            }
        }
    free(want);
    free(got);
    free(dense);
    r.e->destroy(r.inst);
    close_model(&f);
}

Test(self_extend, forward_matches_the_grouped_reference, .timeout = 120)
{
    check_against_reference(4, 8, 1);
}

Test(self_extend, forward_matches_with_position_gaps_and_odd_group, .timeout = 120)
{
    check_against_reference(3, 6, 2);
}

/* The grouped key copy is kept across steps; a compaction moves slots, so
 * it must be made again: prefill 20 tokens, drop the keys at positions 2
 * and 5 (as a retaining strategy would), then decode the rest one token at
 * a time, against the reference that hides those two keys from the later
 * queries. A stale copy would score the moved keys with their old rows. */
typedef struct dropped_rule {
    se_rule se;
    int32_t from;  /* queries at positions >= from no longer see: */
    int32_t a, b;
} dropped_rule;

static bool rule_dropped(void *user, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                         double *rk)
{
    const dropped_rule *d = user;
    if (pos[qi] >= d->from && (pos[ki] == d->a || pos[ki] == d->b))
        return false;
    return rule(&((dropped_rule *)user)->se, qi, ki, pos, rq, rk);
}

Test(self_extend, the_grouped_copy_follows_a_compaction, .timeout = 120)
{
    fixture f;
    open_model(&f);
    run r = {.e = entry()};
    r.inst = make(r.e, 2, 4);
    int32_t tok[N], pos[N];
    for (size_t i = 0; i < N; i++) {
        tok[i] = (int32_t)((i * 2654435761u + 5u) % f.V);
        pos[i] = (int32_t)i;
    }
    dropped_rule dr = {{2, 4}, 20, 2, 5};
    st_ref_opts o = {.quantize_acts = true, .rule = rule_dropped, .user = &dr};
    float *want = malloc(sizeof(float) * N * f.V), *got = malloc(sizeof(float) * N * f.V);
    cr_assert(want && got);
    st_ref_forward(f.ref, tok, pos, N, &o, want);

    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f.m->hp.n_layers, f.m->hp.n_kv_heads, f.m->hp.head_dim, N,
                                    ST_KV_F32, &kv, &d), ST_OK);
    st_threadpool *pool = NULL;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    st_forward_config cfg = {.model = f.m, .kv = kv, .pool = pool, .plan = plan_bridge,
                             .plan_user = &r, .weights_layer = INT32_MIN};
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK, "%s", d.message);
    cr_assert_eq(st_forward(ctx, tok, pos, 20, got, ST_FORWARD_ALL_LOGITS, &d), ST_OK, "%s",
                 d.message);
    uint8_t keep[N];
    memset(keep, 1, sizeof keep);
    keep[2] = keep[5] = 0;
    st_kv_cache_compact(kv, keep);
    cr_assert_eq(kv->n_slots, 18);
    for (size_t t = 20; t < N; t++)
        cr_assert_eq(st_forward(ctx, tok + t, pos + t, 1, got + t * f.V, 0, &d), ST_OK, "%s",
                     d.message);
    for (size_t t = 0; t < N; t++) {
        double diff = rel_diff(got + t * f.V, want + t * f.V, f.V);
        cr_assert_lt(diff, TOL, "token %zu: relative difference %g", t, diff);
    }
    st_forward_ctx_free(ctx);
    st_threadpool_destroy(pool);
    st_kv_cache_free(kv);
    free(want);
    free(got);
    r.e->destroy(r.inst);
    close_model(&f);
}
