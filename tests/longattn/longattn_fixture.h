/*
 * tests/longattn/longattn_fixture.h - load the bounded attention plugins,
 * evaluate their plans into per-(query, slot) visibility, position mode and
 * fixed distance, and drive a simulated KV cache through retain.
 */
#ifndef ST_TEST_LONGATTN_FIXTURE_H
#define ST_TEST_LONGATTN_FIXTURE_H

#include <criterion/criterion.h>
#include <string.h>

#include "test_host.h"

enum { LA_MAX_Q = 16, LA_MAX_K = 64, LA_MAX_RANGES = 32 };

static inline const st_plugin_entry *la_entry(const char *name)
{
    char why[512] = "";
    const st_plugin_entry *e = st_test_load_plugin(ST_TEST_PLUGIN_DIR, "attention", name, why,
                                                   sizeof why);
    cr_assert(e != NULL, "%s", why);
    cr_assert_str_eq(e->name, name);
    return e;
}

static inline const st_attention_ops *la_ops(const st_plugin_entry *e)
{
    return e->ops;
}

/* A plan evaluated per (query, slot): how many ranges made the pair
 * visible, and with which position mode / fixed distance. */
typedef struct la_plan {
    const st_attn_query *q;
    uint8_t vis[LA_MAX_Q][LA_MAX_K];
    st_pos_mode mode[LA_MAX_Q][LA_MAX_K];
    int32_t fixed[LA_MAX_Q][LA_MAX_K];
    st_attn_range ranges[LA_MAX_RANGES];
    size_t n_ranges;
    size_t n_index_lists;
} la_plan;

static inline void la_mark(la_plan *c, const st_attn_range *r, uint32_t k)
{
    for (uint32_t i = 0; i < c->q->n_q; i++) {
        int64_t d = (int64_t)c->q->q_pos[i] - c->q->kv->pos[k];
        if (d >= r->min_dist && d <= r->max_dist) {
            c->vis[i][k]++;
            c->mode[i][k] = r->pos_mode;
            c->fixed[i][k] = r->fixed_dist;
        }
    }
}

static inline st_status la_add_range(void *host, const st_attn_range *r)
{
    la_plan *c = host;
    cr_assert(r->k_begin <= r->k_end && r->k_end <= c->q->kv->n_slots, "range [%u, %u) of %u",
              r->k_begin, r->k_end, c->q->kv->n_slots);
    cr_assert_eq(r->head, ST_ALL_HEADS);
    cr_assert(r->min_dist <= r->max_dist);
    cr_assert_lt(c->n_ranges, LA_MAX_RANGES);
    c->ranges[c->n_ranges++] = *r;
    for (uint32_t k = r->k_begin; k < r->k_end; k++)
        la_mark(c, r, k);
    return ST_OK;
}

static inline st_status la_add_indices(void *host, const uint32_t *s, size_t n,
                                       const st_attn_range *r)
{
    la_plan *c = host;
    c->n_index_lists++;
    for (size_t i = 0; i < n; i++) {
        cr_assert_lt(s[i], c->q->kv->n_slots);
        la_mark(c, r, s[i]);
    }
    return ST_OK;
}

/* Plan queries at slots q_first .. q_first+n_q-1 of a cache of n_slots
 * slots at positions `pos`. */
static inline void la_run_plan(const st_plugin_entry *e, void *inst, const int32_t *pos,
                               uint32_t n_slots, uint32_t q_first, uint32_t n_q, la_plan *c)
{
    cr_assert_leq(n_slots, LA_MAX_K);
    cr_assert_leq(n_q, LA_MAX_Q);
    st_kv_view kv = {.struct_size = sizeof kv, .n_slots = n_slots, .capacity = LA_MAX_K,
                     .pos = pos, .tokens = pos};
    int32_t q_pos[LA_MAX_Q];
    uint32_t q_slot[LA_MAX_Q];
    for (uint32_t i = 0; i < n_q; i++) {
        q_slot[i] = q_first + i;
        q_pos[i] = pos[q_first + i];
    }
    st_attn_query q = {.struct_size = sizeof q, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                       .n_q = n_q, .q_pos = q_pos, .q_slot = q_slot, .kv = &kv};
    memset(c, 0, sizeof *c);
    c->q = &q;
    st_attn_plan_builder b = {.struct_size = sizeof b, .host = c, .add_range = la_add_range,
                              .add_indices = la_add_indices};
    st_error err = {0};
    cr_assert_eq(la_ops(e)->plan(inst, &q, &b, &err), ST_OK, "%s", err.message);
    c->q = NULL;
}

/* Create with params and configure with a model of trained length
 * n_ctx_train run at context n_ctx; returns the needs in *needs. */
static inline void *la_make(const st_plugin_entry *e, st_test_params *p, uint32_t n_ctx_train,
                            uint32_t n_ctx, uint32_t *needs)
{
    void *inst = NULL;
    st_error err = {0};
    st_status st = st_test_create(e, NULL, p, &inst,
                             &err);
    cr_assert_eq(st, ST_OK, "create %s: %s", e->name, err.message);
    st_model_shape s = {.struct_size = sizeof s, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                        .head_dim = 8, .rope_dims = 8, .rope_base = 10000.0f,
                        .n_ctx_train = n_ctx_train, .n_ctx = n_ctx, .n_embd = 32,
                        .n_vocab = 100};
    uint32_t nd = 99;
    int32_t wl = 0;
    st = la_ops(e)->configure(inst, &s, &nd, &wl, &err);
    cr_assert_eq(st, ST_OK, "configure %s: %s", e->name, err.message);
    if (needs)
        *needs = nd;
    return inst;
}

/* configure must fail with `want` and a message. */
static inline void la_configure_fails(const st_plugin_entry *e, st_test_params *p,
                                      uint32_t n_ctx_train, uint32_t n_ctx, st_status want)
{
    void *inst = NULL;
    st_error err = {0};
    cr_assert_eq(st_test_create(e, NULL, p, &inst,
                           &err), ST_OK, "%s", err.message);
    st_model_shape s = {.struct_size = sizeof s, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2,
                        .head_dim = 8, .rope_dims = 8, .n_ctx_train = n_ctx_train,
                        .n_ctx = n_ctx, .n_embd = 32, .n_vocab = 100};
    uint32_t nd = 0;
    int32_t wl = 0;
    st_status st = la_ops(e)->configure(inst, &s, &nd, &wl, &err);
    cr_assert_eq(st, want, "configure returned %d, expected %d (%s)", (int)st, (int)want,
                 err.message);
    cr_assert(err.message[0] != '\0');
    e->destroy(inst);
}

/* create must fail with `want` and a message. */
static inline void la_create_fails(const st_plugin_entry *e, st_test_params *p, st_status want)
{
    void *inst = NULL;
    st_error err = {0};
    st_status st = st_test_create(e, NULL, p, &inst, &err);
    cr_assert_eq(st, want, "create returned %d, expected %d (%s)", (int)st, (int)want,
                 err.message);
    cr_assert_null(inst);
    cr_assert(err.message[0] != '\0');
}

/* Call retain on a cache of n slots; keep[] receives the flags. */
static inline void la_retain(const st_plugin_entry *e, void *inst, const int32_t *pos,
                             uint32_t n, uint32_t n_new, uint8_t *keep)
{
    st_kv_view kv = {.struct_size = sizeof kv, .n_slots = n, .capacity = n, .pos = pos,
                     .tokens = pos};
    memset(keep, 7, n);
    st_error err = {0};
    cr_assert_eq(la_ops(e)->retain(inst, &kv, n_new, keep, &err), ST_OK, "%s", err.message);
    for (uint32_t i = 0; i < n; i++)
        cr_assert(keep[i] == 0 || keep[i] == 1, "keep[%u] = %u", i, keep[i]);
}

/* Compact pos[] by keep[] as the host does; returns the new count. */
static inline uint32_t la_compact(int32_t *pos, uint32_t n, const uint8_t *keep)
{
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (keep[i])
            pos[m++] = pos[i];
    return m;
}

#endif
