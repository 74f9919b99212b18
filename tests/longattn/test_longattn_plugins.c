/*
 * The bounded attention plugins `lm-infinite`, `streaming` and `sirllm`
 * against a fake KV view: the exact ranges and per-pair visibility, position
 * mode and fixed distance of decode and prefill plans, no pair visible
 * twice, retain's keep flags and budget, SirLLM's entropy selection with
 * decay, reset, parameters, and the host's conformance suite.
 */
#include <stdio.h>

#include "conformance.h"
#include "longattn_fixture.h"

static int32_t iota_pos[LA_MAX_K];

static void init_iota(void)
{
    for (int i = 0; i < LA_MAX_K; i++)
        iota_pos[i] = i;
}

TestSuite(lm_infinite, .init = init_iota);
TestSuite(streaming, .init = init_iota);
TestSuite(sirllm, .init = init_iota);

/* ---- lm-infinite ---- */

static void *make_lmi(const st_plugin_entry *e, int n_global, int n_local, int global_dist)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "n_global", n_global);
    st_test_params_int(&p, "n_local", n_local);
    st_test_params_int(&p, "global_dist", global_dist);
    void *inst = la_make(e, &p, 1000, 4096, NULL);
    st_test_params_destroy(&p);
    return inst;
}

Test(lm_infinite, prefill_lambda_mask)
{
    const st_plugin_entry *e = la_entry("lm-infinite");
    void *li = make_lmi(e, 2, 4, 0);
    la_plan c;
    la_run_plan(e, li, iota_pos, 12, 0, 12, &c);
    cr_assert_eq(c.n_ranges, 2);
    st_attn_range local = {ST_ALL_HEADS, 0, 12, 0, 3, ST_POS_TRUE, 0};
    st_attn_range global = {ST_ALL_HEADS, 0, 2, 4, ST_DIST_MAX, ST_POS_FIXED, 4};
    cr_assert_eq(memcmp(&c.ranges[0], &local, sizeof local), 0);
    cr_assert_eq(memcmp(&c.ranges[1], &global, sizeof global), 0);
    for (int q = 0; q < 12; q++)
        for (int k = 0; k < 12; k++) {
            int d = q - k;
            if (d >= 0 && d <= 3) {
                cr_assert_eq(c.vis[q][k], 1, "q %d k %d", q, k);
                cr_assert_eq(c.mode[q][k], ST_POS_TRUE);
            } else if (k < 2 && d >= 4) {
                cr_assert_eq(c.vis[q][k], 1, "q %d k %d", q, k);
                cr_assert_eq(c.mode[q][k], ST_POS_FIXED);
                cr_assert_eq(c.fixed[q][k], 4, "scored at distance n_local");
            } else {
                cr_assert_eq(c.vis[q][k], 0, "q %d k %d seen %d times", q, k, c.vis[q][k]);
            }
        }
    e->destroy(li);
}

Test(lm_infinite, decode_on_compacted_cache_and_global_dist)
{
    const st_plugin_entry *e = la_entry("lm-infinite");
    void *li = make_lmi(e, 2, 4, 3);
    /* Cache after retention plus the new token at position 10 (slot 6). */
    int32_t pos[7] = {0, 1, 6, 7, 8, 9, 10};
    la_plan c;
    la_run_plan(e, li, pos, 7, 6, 1, &c);
    cr_assert_eq(c.n_ranges, 2);
    cr_assert_eq(c.ranges[0].k_begin, 3, "the local range starts at position 7");
    uint8_t vis[7] = {1, 1, 0, 1, 1, 1, 1};
    cr_assert_arr_eq(c.vis[0], vis, sizeof vis);
    cr_assert_eq(c.mode[0][0], ST_POS_FIXED);
    cr_assert_eq(c.fixed[0][0], 3, "global_dist overrides n_local");
    cr_assert_eq(c.mode[0][1], ST_POS_FIXED);
    for (int k = 3; k < 7; k++)
        cr_assert_eq(c.mode[0][k], ST_POS_TRUE);
    e->destroy(li);
}

Test(lm_infinite, no_global_branch_before_the_window_is_full)
{
    const st_plugin_entry *e = la_entry("lm-infinite");
    void *li = make_lmi(e, 0, 8, 0);
    la_plan c;
    la_run_plan(e, li, iota_pos, 6, 5, 1, &c);
    cr_assert_eq(c.n_ranges, 1, "n_global 0: no global range");
    for (int k = 0; k < 6; k++)
        cr_assert_eq(c.vis[0][k], 1);
    e->destroy(li);
}

Test(lm_infinite, retain_keeps_global_and_local)
{
    const st_plugin_entry *e = la_entry("lm-infinite");
    const st_attention_ops *ops = la_ops(e);
    void *li = make_lmi(e, 2, 4, 0);
    cr_assert_eq(ops->cache_budget(li, 1000), 6u);
    cr_assert_eq(ops->cache_budget(li, 5), 5u, "never more than the context");
    uint8_t keep[12];
    la_retain(e, li, iota_pos, 12, 12, keep);
    uint8_t want[12] = {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    cr_assert_arr_eq(keep, want, sizeof want);
    /* A cache still inside the budget is left alone. */
    la_retain(e, li, iota_pos, 5, 1, keep);
    uint8_t all[5] = {1, 1, 1, 1, 1};
    cr_assert_arr_eq(keep, all, sizeof all);
    e->destroy(li);
}

/* Decoding position p (the newest of n cached slots) with n_global 3 and
 * n_local 5: the query sees the first 3 positions and the last 5, no more. */
static void assert_lambda_step(const st_plugin_entry *e, void *li, const int32_t *pos,
                               uint32_t n, int32_t p)
{
    la_plan c;
    la_run_plan(e, li, pos, n, n - 1, 1, &c);
    uint32_t seen = 0;
    for (uint32_t k = 0; k < n; k++) {
        int32_t d = p - pos[k];
        bool want = (d >= 0 && d < 5) || pos[k] < 3;
        cr_assert_eq(c.vis[0][k], want ? 1 : 0, "p %d slot %u (pos %d)", p, k, pos[k]);
        seen += c.vis[0][k];
    }
    cr_assert_eq(seen, p < 8 ? (uint32_t)p + 1 : 8u);
}

Test(lm_infinite, decode_loop_stays_in_budget_and_sees_the_lambda)
{
    const st_plugin_entry *e = la_entry("lm-infinite");
    void *li = make_lmi(e, 3, 5, 0);
    int32_t pos[LA_MAX_K];
    uint32_t n = 0;
    uint8_t keep[LA_MAX_K];
    for (int32_t p = 0; p < 40; p++) {
        pos[n++] = p;
        assert_lambda_step(e, li, pos, n, p);
        la_retain(e, li, pos, n, 1, keep);
        cr_assert_eq(keep[n - 1], 1);
        n = la_compact(pos, n, keep);
        cr_assert_leq(n, 8u);
    }
    int32_t want[8] = {0, 1, 2, 35, 36, 37, 38, 39};
    cr_assert_arr_eq(pos, want, sizeof want);
    e->destroy(li);
}

/* evict_batch 4: up to 3 stale slots wait between evictions, which then
 * drop them all at once; what each query sees is the same Lambda. The
 * automatic batch is n_local / 32 from a 1,024-token window on. */
Test(lm_infinite, batched_eviction_sees_the_same_lambda)
{
    const st_plugin_entry *e = la_entry("lm-infinite");
    st_test_params prm;
    st_test_params_init(&prm);
    st_test_params_int(&prm, "n_global", 3);
    st_test_params_int(&prm, "n_local", 5);
    st_test_params_int(&prm, "evict_batch", 4);
    void *li = la_make(e, &prm, 1000, 4096, NULL);
    st_test_params_destroy(&prm);
    cr_assert_eq(la_ops(e)->cache_budget(li, 0), 11u, "3 + 5 + 3 waiting");
    int32_t pos[LA_MAX_K];
    uint32_t n = 0, compactions = 0;
    uint8_t keep[LA_MAX_K];
    for (int32_t p = 0; p < 40; p++) {
        pos[n++] = p;
        assert_lambda_step(e, li, pos, n, p);
        la_retain(e, li, pos, n, 1, keep);
        uint32_t before = n;
        n = la_compact(pos, n, keep);
        if (n < before) {
            compactions++;
            cr_assert_eq(n, 8u, "an eviction leaves global + local");
        }
        cr_assert_leq(n, 11u);
    }
    cr_assert_eq(compactions, 8u, "every 4th token from the 12th: %u", compactions);
    e->destroy(li);

    st_test_params_init(&prm);
    st_test_params_int(&prm, "n_local", 8192);
    void *big = la_make(e, &prm, 8192, 32768, NULL); /* SmolLM2 at 4x */
    st_test_params_destroy(&prm);
    cr_assert_eq(la_ops(e)->cache_budget(big, 0), 16u + 8192u + 255u);
    cr_assert_eq(la_ops(e)->cache_budget(big, 8300), 8300u, "the context caps it");
    e->destroy(big);
}

Test(lm_infinite, n_local_defaults_to_trained_length)
{
    const st_plugin_entry *e = la_entry("lm-infinite");
    void *li = la_make(e, NULL, 100, 0, NULL);
    cr_assert_eq(la_ops(e)->cache_budget(li, 0), 116u, "16 global + 100 local");
    la_plan c;
    la_run_plan(e, li, iota_pos, 1, 0, 1, &c);
    cr_assert_eq(c.ranges[0].max_dist, 99);
    e->destroy(li);
}

Test(lm_infinite, bad_params_and_small_context)
{
    const st_plugin_entry *e = la_entry("lm-infinite");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "n_global", -1);
    la_create_fails(e, &p, ST_E_RANGE);
    st_test_params_init(&p);
    st_test_params_str(&p, "n_local", "big");
    la_create_fails(e, &p, ST_E_INVALID);
    la_configure_fails(e, NULL, 0, 0, ST_E_INVALID);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

/* A context below n_global + n_local caps the cache: the plan keeps the
 * method's window, retention keeps fewer recent slots. */
Test(lm_infinite, context_caps_the_cache)
{
    const st_plugin_entry *e = la_entry("lm-infinite");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "n_global", 2);
    st_test_params_int(&p, "n_local", 100);
    void *li = la_make(e, &p, 1000, 8, NULL);
    cr_assert_eq(la_ops(e)->cache_budget(li, 8), 8u);
    uint8_t keep[12];
    la_retain(e, li, iota_pos, 12, 1, keep);
    uint8_t want[12] = {1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
    cr_assert_arr_eq(keep, want, sizeof want);
    la_plan c;
    la_run_plan(e, li, iota_pos, 12, 11, 1, &c);
    cr_assert_eq(c.ranges[0].max_dist, 99);
    e->destroy(li);
}

/* ---- streaming ---- */

static void *make_stream(const st_plugin_entry *e, int sinks, int window)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "sinks", sinks);
    st_test_params_int(&p, "window", window);
    void *inst = la_make(e, &p, 1000, 4096, NULL);
    st_test_params_destroy(&p);
    return inst;
}

Test(streaming, prefill_positions_within_the_cache)
{
    const st_plugin_entry *e = la_entry("streaming");
    void *s = make_stream(e, 2, 4);
    la_plan c;
    la_run_plan(e, s, iota_pos, 14, 0, 14, &c);
    /* A full cache (2 sinks + 4 recent) puts the query at cache position
     * 5, sink j at j: distance 5 - j. Before that, true distances. */
    for (int q = 0; q < 14; q++)
        for (int k = 0; k < 14; k++) {
            int d = q - k;
            if (d >= 0 && d <= 3) {
                cr_assert_eq(c.vis[q][k], 1, "q %d k %d", q, k);
                cr_assert_eq(c.mode[q][k], ST_POS_TRUE);
            } else if (k < 2 && d >= 4) {
                cr_assert_eq(c.vis[q][k], 1, "q %d k %d seen %d", q, k, c.vis[q][k]);
                if (q <= 5) {
                    cr_assert_eq(c.mode[q][k], ST_POS_TRUE, "q %d k %d", q, k);
                } else {
                    cr_assert_eq(c.mode[q][k], ST_POS_FIXED, "q %d k %d", q, k);
                    cr_assert_eq(c.fixed[q][k], 5 - k, "q %d k %d", q, k);
                }
            } else {
                cr_assert_eq(c.vis[q][k], 0, "q %d k %d seen %d times", q, k, c.vis[q][k]);
            }
        }
    /* recent + (early, late) per sink */
    cr_assert_eq(c.n_ranges, 5);
    st_attn_range recent = {ST_ALL_HEADS, 0, 14, 0, 3, ST_POS_TRUE, 0};
    cr_assert_eq(memcmp(&c.ranges[0], &recent, sizeof recent), 0);
    st_attn_range early1 = {ST_ALL_HEADS, 1, 2, 4, 4, ST_POS_TRUE, 0};
    st_attn_range late1 = {ST_ALL_HEADS, 1, 2, 5, ST_DIST_MAX, ST_POS_FIXED, 4};
    cr_assert_eq(memcmp(&c.ranges[3], &early1, sizeof early1), 0);
    cr_assert_eq(memcmp(&c.ranges[4], &late1, sizeof late1), 0);
    e->destroy(s);
}

Test(streaming, decode_loop_matches_reassigned_positions)
{
    const st_plugin_entry *e = la_entry("streaming");
    void *s = make_stream(e, 2, 4);
    cr_assert_eq(la_ops(e)->cache_budget(s, 4096), 6u);
    int32_t pos[LA_MAX_K];
    uint32_t n = 0;
    uint8_t keep[LA_MAX_K];
    for (int32_t p = 0; p < 30; p++) {
        pos[n++] = p;
        la_plan c;
        la_run_plan(e, s, pos, n, n - 1, 1, &c);
        /* StreamingLLM: the cache (sinks + the last window - 1 tokens +
         * this one) at positions 0 .. size-1, the query last. */
        uint32_t seen = 0;
        for (uint32_t k = 0; k < n; k++) {
            int32_t d = p - pos[k];
            bool want = d < 4 || k < 2;
            cr_assert_eq(c.vis[0][k], want ? 1 : 0, "p %d slot %u", p, k);
            if (!want)
                continue;
            seen++;
            int32_t dist = c.mode[0][k] == ST_POS_FIXED ? c.fixed[0][k] : d;
            int32_t cache_size = p + 1 < 6 ? p + 1 : 6;
            int32_t cache_pos = k < 2 ? (int32_t)k : cache_size - 1 - d;
            cr_assert_eq(dist, cache_size - 1 - cache_pos, "p %d slot %u", p, k);
        }
        cr_assert_eq(seen, p < 6 ? (uint32_t)p + 1 : 6u);
        la_retain(e, s, pos, n, 1, keep);
        n = la_compact(pos, n, keep);
        cr_assert_leq(n, 6u);
    }
    int32_t want[6] = {0, 1, 26, 27, 28, 29};
    cr_assert_arr_eq(pos, want, sizeof want);
    e->destroy(s);
}

Test(streaming, window_defaults_and_errors)
{
    const st_plugin_entry *e = la_entry("streaming");
    void *s = la_make(e, NULL, 100, 0, NULL);
    cr_assert_eq(la_ops(e)->cache_budget(s, 0), 100u, "4 sinks + 96 window = trained length");
    e->destroy(s);
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "sinks", 8);
    la_configure_fails(e, &p, 8, 0, ST_E_INVALID);
    st_test_params_init(&p);
    st_test_params_int(&p, "sinks", 2);
    st_test_params_int(&p, "window", 100);
    s = la_make(e, &p, 1000, 7, NULL);
    cr_assert_eq(la_ops(e)->cache_budget(s, 7), 7u, "the context caps the cache");
    uint8_t keep[10];
    la_retain(e, s, iota_pos, 10, 1, keep);
    uint8_t want[10] = {1, 1, 0, 0, 0, 1, 1, 1, 1, 1};
    cr_assert_arr_eq(keep, want, sizeof want);
    e->destroy(s);
    st_test_params_init(&p);
    st_test_params_int(&p, "window", -3);
    la_create_fails(e, &p, ST_E_RANGE);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

/* ---- sirllm ---- */

static void *make_sir(const st_plugin_entry *e, int start, int recent, int entropy, double decay)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "start_size", start);
    st_test_params_int(&p, "recent_size", recent);
    st_test_params_int(&p, "entropy_size", entropy);
    st_test_params_float(&p, "decay_ratio", decay);
    uint32_t needs = 0;
    void *inst = la_make(e, &p, 1000, 4096, &needs);
    cr_assert_eq(needs, ST_ATTN_NEEDS_ENTROPY);
    st_test_params_destroy(&p);
    return inst;
}

static void feed(const st_plugin_entry *e, void *s, uint32_t first_slot, const float *ent,
                 size_t n)
{
    uint32_t slots[LA_MAX_K];
    for (size_t i = 0; i < n; i++)
        slots[i] = first_slot + (uint32_t)i;
    la_ops(e)->on_entropy(s, slots, ent, n);
}

Test(sirllm, plan_is_the_whole_cache_at_slot_positions)
{
    const st_plugin_entry *e = la_entry("sirllm");
    void *s = make_sir(e, 2, 2, 3, 0.9);
    int32_t pos[9] = {0, 1, 4, 7, 8, 9, 10, 11, 12};
    la_plan c;
    la_run_plan(e, s, pos, 9, 6, 3, &c); /* a block of 3 queries */
    cr_assert_eq(c.n_ranges, 1);
    st_attn_range all = {ST_ALL_HEADS, 0, 9, 0, ST_DIST_MAX, ST_POS_SLOT, 0};
    cr_assert_eq(memcmp(&c.ranges[0], &all, sizeof all), 0);
    for (int q = 0; q < 3; q++)
        for (int k = 0; k < 9; k++)
            cr_assert_eq(c.vis[q][k], k <= 6 + q ? 1 : 0, "q %d k %d", q, k);
    e->destroy(s);
}

Test(sirllm, retain_keeps_start_top_entropy_and_recent)
{
    const st_plugin_entry *e = la_entry("sirllm");
    const st_attention_ops *ops = la_ops(e);
    void *s = make_sir(e, 2, 2, 3, 0.5);
    cr_assert_eq(ops->cache_budget(s, 4096), 7u);
    float ent[10] = {5, 5, 1, 9, 3, 8, 2, 7, 4, 6};
    feed(e, s, 0, ent, 10);
    int32_t pos[10];
    memcpy(pos, iota_pos, sizeof pos);
    uint8_t keep[10];
    la_retain(e, s, pos, 10, 10, keep);
    /* candidates slots 2..7 (entropies 1 9 3 8 2 7): the top 3 are 3, 5, 7 */
    uint8_t want[10] = {1, 1, 0, 1, 0, 1, 0, 1, 1, 1};
    cr_assert_arr_eq(keep, want, sizeof want);
    uint32_t n = la_compact(pos, 10, keep);
    cr_assert_eq(n, 7);

    /* Kept entropies decayed by 0.5: {2.5 2.5 | 4.5 4 3.5 | 2 3}. The new
     * token (3.9) enters; candidates are now the old slots 3, 5, 7 and 8
     * (4.5 4 3.5 2): position 8 goes. */
    pos[n] = 10;
    float e2 = 3.9f;
    feed(e, s, n, &e2, 1);
    la_retain(e, s, pos, n + 1, 1, keep);
    uint8_t want2[8] = {1, 1, 1, 1, 1, 0, 1, 1};
    cr_assert_arr_eq(keep, want2, sizeof want2);
    n = la_compact(pos, n + 1, keep);
    int32_t wpos[7] = {0, 1, 3, 5, 7, 9, 10};
    cr_assert_arr_eq(pos, wpos, sizeof wpos);
    e->destroy(s);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

/* Decode t0..t4 with entropies 10 6 1 6 0.1 into a cache of 0 start + 1
 * recent + 1 entropy slot: the old surprise (10) wins against the newer one
 * (6) without decay, loses with decay 0.5 (10 * 0.5^2 = 2.5 < 6 * 0.5). */
static void decay_run(double decay, int32_t want_first)
{
    const st_plugin_entry *e = la_entry("sirllm");
    void *s = make_sir(e, 0, 1, 1, decay);
    float ent[5] = {10, 6, 1, 6, 0.1f};
    int32_t pos[8];
    uint32_t n = 0;
    uint8_t keep[8];
    for (int32_t p = 0; p < 5; p++) {
        pos[n] = p;
        feed(e, s, n, &ent[p], 1);
        n++;
        la_retain(e, s, pos, n, 1, keep);
        cr_assert_eq(keep[n - 1], 1, "the newest stays");
        n = la_compact(pos, n, keep);
        cr_assert_leq(n, 2u);
    }
    cr_assert_eq(n, 2);
    cr_assert_eq(pos[0], want_first, "decay %g: kept position %d, expected %d", decay, pos[0],
                 want_first);
    cr_assert_eq(pos[1], 4);
    e->destroy(s);
}

Test(sirllm, decay_lets_newer_surprises_win)
{
    decay_run(1.0, 0);
    decay_run(0.5, 3);
}

Test(sirllm, reset_forgets_entropies)
{
    const st_plugin_entry *e = la_entry("sirllm");
    void *s = make_sir(e, 2, 2, 3, 1.0);
    float ent[10] = {5, 5, 9, 9, 9, 0, 0, 0, 4, 6};
    feed(e, s, 0, ent, 10);
    la_ops(e)->reset(s);
    uint8_t keep[10];
    la_retain(e, s, iota_pos, 10, 10, keep);
    /* No entropies known: ties go to the newest candidates 5, 6, 7. */
    uint8_t want[10] = {1, 1, 0, 0, 0, 1, 1, 1, 1, 1};
    cr_assert_arr_eq(keep, want, sizeof want);
    e->destroy(s);
}

Test(sirllm, recent_zero_still_keeps_the_newest)
{
    const st_plugin_entry *e = la_entry("sirllm");
    void *s = make_sir(e, 1, 0, 2, 1.0);
    float ent[5] = {1, 9, 8, 7, 0.5f};
    feed(e, s, 0, ent, 5);
    uint8_t keep[5];
    la_retain(e, s, iota_pos, 5, 1, keep);
    uint8_t want[5] = {1, 1, 0, 0, 1};
    cr_assert_arr_eq(keep, want, sizeof want);
    e->destroy(s);
}

Test(sirllm, bad_params)
{
    const st_plugin_entry *e = la_entry("sirllm");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_float(&p, "decay_ratio", 1.5);
    la_create_fails(e, &p, ST_E_RANGE);
    st_test_params_init(&p);
    st_test_params_int(&p, "recent_size", 0);
    st_test_params_int(&p, "entropy_size", 0);
    la_create_fails(e, &p, ST_E_RANGE);
    st_test_params_init(&p);
    st_test_params_str(&p, "decay_ratio", "x");
    la_create_fails(e, &p, ST_E_INVALID);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

/* A context below the budget caps it, entropy slots going first. */
Test(sirllm, context_caps_the_cache)
{
    const st_plugin_entry *e = la_entry("sirllm");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "start_size", 2);
    st_test_params_int(&p, "recent_size", 3);
    st_test_params_int(&p, "entropy_size", 10);
    void *s = la_make(e, &p, 1000, 6, NULL);
    cr_assert_eq(la_ops(e)->cache_budget(s, 6), 6u);
    float ent[10] = {1, 1, 1, 1, 9, 1, 1, 1, 1, 1};
    feed(e, s, 0, ent, 10);
    uint8_t keep[10];
    la_retain(e, s, iota_pos, 10, 1, keep);
    uint8_t want[10] = {1, 1, 0, 0, 1, 0, 0, 1, 1, 1};
    cr_assert_arr_eq(keep, want, sizeof want);
    e->destroy(s);
}

/* ---- the host's conformance suite, with small and default budgets ---- */

static void conform(const char *name, st_test_params *p)
{
    const st_plugin_entry *e = la_entry(name);
    st_conformance_report *rep = calloc(1, sizeof *rep);
    cr_assert_not_null(rep);
    st_error err = {0};
    st_test_params none; /* a copy: the validated map is freed below */
    st_test_params_copy(&none, p);
    const msgpack_object *params = st_test_params_validated(e, &none, &err);
    cr_assert_not_null(params, "%s: %s", name, err.message);
    st_status st = st_conformance_run(e, st_test_host_services(), params, rep);
    st_test_params_destroy(&none);
    for (size_t i = 0; i < rep->n_checks; i++)
        cr_expect(rep->checks[i].passed, "%s: %s: %s", name, rep->checks[i].name,
                  rep->checks[i].message);
    cr_assert_eq(st, ST_OK, "%s: %zu checks failed", name, rep->n_failed);
    free(rep);
}

Test(conformance, small_budgets)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "n_global", 4);
    st_test_params_int(&p, "n_local", 32);
    conform("lm-infinite", &p);
    st_test_params_init(&p);
    st_test_params_int(&p, "sinks", 4);
    st_test_params_int(&p, "window", 20);
    conform("streaming", &p);
    st_test_params_init(&p);
    st_test_params_int(&p, "start_size", 4);
    st_test_params_int(&p, "recent_size", 8);
    st_test_params_int(&p, "entropy_size", 8);
    st_test_params_float(&p, "decay_ratio", 0.9);
    conform("sirllm", &p);
}

Test(conformance, defaults)
{
    conform("lm-infinite", NULL);
    conform("streaming", NULL);
    conform("sirllm", NULL);
}
