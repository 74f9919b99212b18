/*
 * attention `sliding-window`: the exact visibility a plan gives, and what
 * retain keeps.
 */
#include <string.h>

#include "plugin_fixture.h"

enum { MAX_Q = 16, MAX_K = 64 };

/* The plan evaluated into a count per (query, slot), ranges recorded. */
typedef struct collect {
    const st_attn_query *q;
    uint8_t vis[MAX_Q][MAX_K];
    st_attn_range ranges[8];
    size_t n_ranges;
} collect;

static st_status add_range(void *host, const st_attn_range *r)
{
    collect *c = host;
    cr_assert(r->k_begin <= r->k_end && r->k_end <= c->q->kv->n_slots);
    cr_assert_eq(r->head, ST_ALL_HEADS);
    cr_assert_eq(r->pos_mode, ST_POS_TRUE);
    if (c->n_ranges < 8)
        c->ranges[c->n_ranges++] = *r;
    for (uint32_t i = 0; i < c->q->n_q; i++)
        for (uint32_t k = r->k_begin; k < r->k_end; k++) {
            int64_t d = (int64_t)c->q->q_pos[i] - c->q->kv->pos[k];
            if (d >= r->min_dist && d <= r->max_dist)
                c->vis[i][k]++;
        }
    return ST_OK;
}

static st_status add_indices(void *host, const uint32_t *s, size_t n, const st_attn_range *r)
{
    cr_assert_fail("sliding-window should only add ranges");
    return ST_E_INVALID;
}

static void plan(const st_plugin_entry *e, void *inst, const int32_t *pos, uint32_t n_slots,
                 uint32_t q_first, uint32_t n_q, collect *c)
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
    st_attn_plan_builder b = {.struct_size = sizeof b, .host = c, .add_range = add_range,
                              .add_indices = add_indices};
    st_error err = {0};
    cr_assert_eq(((const st_attention_ops *)e->ops)->plan(inst, &q, &b, &err), ST_OK, "%s",
                 err.message);
}

static void *make(const st_plugin_entry *e, int window, int sinks)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "window", window);
    st_test_params_int(&p, "sinks", sinks);
    void *inst = fx_create(e, &p);
    st_model_shape s = {.struct_size = sizeof s, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8};
    uint32_t needs = 99;
    int32_t wl = 0;
    st_error err = {0};
    cr_assert_eq(((const st_attention_ops *)e->ops)->configure(inst, &s, &needs, &wl, &err),
                 ST_OK);
    cr_assert_eq(needs, 0u);
    return inst;
}

Test(sliding_window, visibility_with_sinks)
{
    const st_plugin_entry *e = fx_entry("attention", "sliding-window");
    void *sw = make(e, 4, 2);
    int32_t pos[12];
    for (int i = 0; i < 12; i++)
        pos[i] = i;
    collect c;
    plan(e, sw, pos, 12, 4, 8, &c); /* queries at positions 4..11 */
    for (uint32_t i = 0; i < 8; i++) {
        int p = 4 + (int)i;
        for (int k = 0; k < 12; k++) {
            int d = p - k;
            bool want = (d >= 0 && d < 4) || (k < 2 && d >= 0);
            cr_assert_eq(c.vis[i][k], want ? 1 : 0, "query pos %d key %d: seen %d times", p, k,
                         c.vis[i][k]);
        }
    }
    e->destroy(sw);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

Test(sliding_window, visibility_without_sinks_prefill)
{
    const st_plugin_entry *e = fx_entry("attention", "sliding-window");
    void *sw = make(e, 3, 0);
    int32_t pos[10];
    for (int i = 0; i < 10; i++)
        pos[i] = i;
    collect c;
    plan(e, sw, pos, 10, 0, 10, &c);
    cr_assert_eq(c.n_ranges, 1, "no sink range when sinks = 0");
    for (int q = 0; q < 10; q++)
        for (int k = 0; k < 10; k++)
            cr_assert_eq(c.vis[q][k], (q - k >= 0 && q - k < 3) ? 1 : 0, "q %d k %d", q, k);
    e->destroy(sw);
}

Test(sliding_window, retain_keeps_sinks_and_window)
{
    const st_plugin_entry *e = fx_entry("attention", "sliding-window");
    const st_attention_ops *ops = e->ops;
    void *sw = make(e, 4, 2);
    cr_assert_eq(ops->cache_budget(sw, 1000), 6u);
    cr_assert_eq(ops->cache_budget(sw, 5), 5u, "never more than the context");
    int32_t pos[10];
    for (int i = 0; i < 10; i++)
        pos[i] = i;
    st_kv_view kv = {.struct_size = sizeof kv, .n_slots = 10, .capacity = 10, .pos = pos,
                     .tokens = pos};
    uint8_t keep[10];
    memset(keep, 7, sizeof keep);
    st_error err = {0};
    cr_assert_eq(ops->retain(sw, &kv, 1, keep, &err), ST_OK);
    uint8_t want[10] = {1, 1, 0, 0, 0, 0, 1, 1, 1, 1};
    cr_assert_arr_eq(keep, want, sizeof want);

    /* The compacted cache plus the next token at position 10 (slot 6). */
    int32_t cpos[7] = {0, 1, 6, 7, 8, 9, 10};
    collect c;
    plan(e, sw, cpos, 7, 6, 1, &c);
    uint8_t vis[7] = {1, 1, 0, 1, 1, 1, 1}; /* pos 6 is at distance 4 = window: gone */
    cr_assert_arr_eq(c.vis[0], vis, sizeof vis);
    e->destroy(sw);
}

Test(sliding_window, defaults_and_bad_params)
{
    const st_plugin_entry *e = fx_entry("attention", "sliding-window");
    void *sw = fx_create(e, NULL);
    cr_assert_eq(((const st_attention_ops *)e->ops)->cache_budget(sw, 100000), 4096u);
    e->destroy(sw);
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "window", 0);
    fx_create_fails(e, &p, ST_E_RANGE);
    st_test_params_init(&p);
    st_test_params_int(&p, "sinks", -1);
    fx_create_fails(e, &p, ST_E_RANGE);
}
