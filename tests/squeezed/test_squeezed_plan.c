/*
 * squeezed: the plan the built plugin gives on a fake KV view with fake q
 * and k: with every cluster kept it covers every causal key exactly once
 * (as dense does); with a small share, the fixed-context keys read are
 * exactly the members of the best clusters; the calibrated threshold keeps
 * the cluster the observation queries favour; the clustering persists.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stretch/attention.h>

#include "test_host.h"

enum { NH = 4, NKV = 2, HD = 8, MAX_Q = 64, MAX_K = 64 };
enum { FIXED = 44, OBS = 4, CLUSTERED = FIXED - OBS, N_SLOTS = 50 };

typedef struct collect {
    const st_attn_query *q;
    uint8_t vis[NH][MAX_Q][MAX_K];
    size_t n_lists;
} collect;

static void mark(collect *c, uint32_t head, uint32_t k, const st_attn_range *r)
{
    cr_assert_eq(r->pos_mode, ST_POS_TRUE);
    for (uint32_t h = 0; h < NH; h++) {
        if (head != ST_ALL_HEADS && head != h)
            continue;
        for (uint32_t i = 0; i < c->q->n_q; i++) {
            int64_t d = (int64_t)c->q->q_pos[i] - c->q->kv->pos[k];
            if (d >= r->min_dist && d <= r->max_dist)
                c->vis[h][i][k]++;
        }
    }
}

static st_status add_range(void *host, const st_attn_range *r)
{
    collect *c = host;
    cr_assert(r->k_begin <= r->k_end && r->k_end <= c->q->kv->n_slots);
    for (uint32_t k = r->k_begin; k < r->k_end; k++)
        mark(c, r->head, k, r);
    return ST_OK;
}

static st_status add_indices(void *host, const uint32_t *s, size_t n, const st_attn_range *r)
{
    collect *c = host;
    cr_assert(r->head < NH, "index lists are per head");
    for (size_t i = 0; i < n; i++) {
        cr_assert_lt(s[i], c->q->kv->n_slots);
        cr_assert(i == 0 || s[i] > s[i - 1], "ascending and unique");
        mark(c, r->head, s[i], r);
    }
    c->n_lists++;
    return ST_OK;
}

static const st_plugin_entry *entry(void)
{
    char why[512] = "";
    const st_plugin_entry *e = st_test_load_plugin(ST_TEST_PLUGIN_DIR, "attention", "squeezed",
                                                   why, sizeof why);
    cr_assert_not_null(e, "%s", why);
    return e;
}

static const st_attention_ops *ops(void)
{
    return entry()->ops;
}

static void *make(st_test_params *p)
{
    void *inst = NULL;
    st_error err = {0};
    cr_assert_eq(st_test_create(entry(), NULL, p, &inst, &err),
                 ST_OK, "%s", err.message);
    st_model_shape s = {.struct_size = sizeof s, .n_layers = 1, .n_heads = NH,
                        .n_kv_heads = NKV, .head_dim = HD, .n_ctx = 128};
    uint32_t needs = 0;
    int32_t wl = 0;
    cr_assert_eq(ops()->configure(inst, &s, &needs, &wl, &err), ST_OK, "%s", err.message);
    cr_assert_eq(needs, ST_ATTN_NEEDS_QK);
    cr_assert_eq(ops()->cache_budget(inst, 128), 0u);
    return inst;
}

static void params(st_test_params *p, const char *mode, double keep, int levels)
{
    st_test_params_init(p);
    st_test_params_int(p, "fixed_len", FIXED);
    st_test_params_int(p, "observation", OBS);
    st_test_params_float(p, "cluster_fraction", 0.1); /* 40 keys -> 4 clusters */
    st_test_params_str(p, "mode", mode);
    st_test_params_float(p, "keep_fraction", keep);
    st_test_params_int(p, "levels", levels);
    st_test_params_float(p, "coarse_keep_fraction", 1.0);
}

static int32_t pos[MAX_K], toks[MAX_K];
static float keys[MAX_K * NKV * HD];

/* Key i of the fixed context points along e_(i % 4) (both KV heads); the
 * rest are random. */
static void planted_keys(void)
{
    uint64_t s = 5;
    for (uint32_t i = 0; i < MAX_K; i++) {
        pos[i] = (int32_t)i;
        toks[i] = (int32_t)(i * 13 % 97);
        for (uint32_t g = 0; g < NKV; g++)
            for (uint32_t j = 0; j < HD; j++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                float r = (float)((s >> 40) % 1000) / 1000.0f - 0.5f;
                keys[(i * NKV + g) * HD + j] =
                    i < CLUSTERED ? (j == i % 4 ? 1.0f + 0.5f * (float)(i % 3) : 0.0f) : r;
            }
    }
}

/* Plan queries at slots [first, first + n) with every query head equal to
 * 5 * e_dir (dir < 0: random queries). */
static void plan(void *inst, uint32_t n_slots, uint32_t first, uint32_t n, int dir, collect *c)
{
    static float qv[MAX_Q * NH * HD];
    int32_t q_pos[MAX_Q];
    uint32_t q_slot[MAX_Q];
    uint64_t s = 77;
    for (uint32_t t = 0; t < n; t++) {
        q_slot[t] = first + t;
        q_pos[t] = pos[first + t];
        for (uint32_t h = 0; h < NH; h++)
            for (uint32_t j = 0; j < HD; j++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                float r = (float)((s >> 40) % 1000) / 1000.0f - 0.5f;
                qv[(t * NH + h) * HD + j] = dir < 0 ? r : (j == (uint32_t)dir ? 5.0f : 0.0f);
            }
    }
    st_kv_view kv = {.struct_size = sizeof kv, .n_slots = n_slots, .capacity = MAX_K,
                     .pos = pos, .tokens = toks};
    st_attn_query q = {.struct_size = sizeof q, .layer = 0, .n_heads = NH, .n_kv_heads = NKV,
                       .head_dim = HD, .n_q = n, .q_pos = q_pos, .q_slot = q_slot, .kv = &kv,
                       .q = qv, .k = keys};
    memset(c, 0, sizeof *c);
    c->q = &q;
    st_attn_plan_builder b = {.struct_size = sizeof b, .host = c, .add_range = add_range,
                              .add_indices = add_indices};
    st_error err = {0};
    cr_assert_eq(ops()->plan(inst, &q, &b, &err), ST_OK, "%s", err.message);
    c->q = NULL;
}

/* Every causal key exactly once, nothing else. */
static void assert_dense(const collect *c, uint32_t first, uint32_t n, uint32_t n_slots)
{
    for (uint32_t h = 0; h < NH; h++)
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t k = 0; k < n_slots; k++)
                cr_assert_eq(c->vis[h][i][k], k <= first + i ? 1 : 0,
                             "head %u query %u key %u seen %u times", h, first + i, k,
                             c->vis[h][i][k]);
}

Test(squeezed_plan, keep_all_covers_every_causal_key_once)
{
    planted_keys();
    int levels[] = {1, 2};
    for (int li = 0; li < 2; li++) {
        st_test_params p;
        params(&p, "fraction", 1.0, levels[li]);
        void *inst = make(&p);
        static collect c;
        /* Before the fixed context is complete: dense. */
        plan(inst, 30, 0, 30, -1, &c);
        assert_dense(&c, 0, 30, 30);
        /* After it, random queries and keys: still everything once. */
        plan(inst, N_SLOTS, N_SLOTS - 6, 6, -1, &c);
        assert_dense(&c, N_SLOTS - 6, 6, N_SLOTS);
        cr_assert_gt(c.n_lists, 0, "the sparse path ran (index lists)");
        /* A decode step too. */
        plan(inst, N_SLOTS, N_SLOTS - 1, 1, 2, &c);
        assert_dense(&c, N_SLOTS - 1, 1, N_SLOTS);
        entry()->destroy(inst);
        st_test_params_destroy(&p);
    }
}

/* The fixed-context keys seen are exactly those along e_dir; the
 * observation tokens and the user input are seen in full (causally). */
static void assert_only_cluster(const collect *c, uint32_t first, uint32_t n, int dir)
{
    for (uint32_t h = 0; h < NH; h++)
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t k = 0; k < N_SLOTS; k++) {
                uint32_t want = k < CLUSTERED ? (k % 4 == (uint32_t)dir) : (k <= first + i);
                cr_assert_eq(c->vis[h][i][k], want, "head %u query %u key %u: seen %u, want %u",
                             h, first + i, k, c->vis[h][i][k], want);
            }
}

Test(squeezed_plan, small_fraction_reads_exactly_the_top_cluster)
{
    planted_keys();
    for (int dir = 0; dir < 4; dir++) {
        st_test_params p;
        params(&p, "fraction", 0.25, 1); /* 1 of 4 clusters */
        void *inst = make(&p);
        static collect c;
        plan(inst, N_SLOTS, FIXED + 2, 4, dir, &c);
        assert_only_cluster(&c, FIXED + 2, 4, dir);
        entry()->destroy(inst);
        st_test_params_destroy(&p);
    }
}

/* With sinks: 3 the first three keys are read besides the top cluster. */
Test(squeezed_plan, sinks_are_read_whatever_their_cluster)
{
    planted_keys();
    for (int dir = 0; dir < 4; dir++) {
        st_test_params p;
        params(&p, "fraction", 0.25, 1);
        st_test_params_int(&p, "sinks", 3);
        void *inst = make(&p);
        static collect c;
        plan(inst, N_SLOTS, FIXED + 2, 4, dir, &c);
        for (uint32_t h = 0; h < NH; h++)
            for (uint32_t i = 0; i < 4; i++)
                for (uint32_t k = 0; k < N_SLOTS; k++) {
                    uint32_t want = k < 3 ? 1
                                    : k < CLUSTERED ? (k % 4 == (uint32_t)dir)
                                                    : (k <= FIXED + 2 + i);
                    cr_assert_eq(c.vis[h][i][k], want, "dir %d head %u query %u key %u: %u", dir,
                                 h, i, k, c.vis[h][i][k]);
                }
        entry()->destroy(inst);
        st_test_params_destroy(&p);
    }
}

Test(squeezed_plan, calibrated_threshold_keeps_the_favoured_cluster)
{
    planted_keys();
    st_test_params p;
    params(&p, "threshold", 1.0, 1);
    void *inst = make(&p);
    static collect c;
    /* Prefill the fixed context: the observation queries favour e_3. The
     * block holds queries before the end of the fixed context, so it is
     * dense, and it is where the layer gets clustered and calibrated. */
    plan(inst, FIXED, 0, FIXED, 3, &c);
    assert_dense(&c, 0, FIXED, FIXED);
    /* keep_fraction 1.0 would keep all; the threshold keeps only e_3's. */
    plan(inst, N_SLOTS, FIXED, 6, 3, &c);
    assert_only_cluster(&c, FIXED, 6, 3);
    /* A new request with the same fixed context reuses the clustering. */
    ops()->reset(inst);
    plan(inst, N_SLOTS, FIXED, 6, 3, &c);
    assert_only_cluster(&c, FIXED, 6, 3);
    entry()->destroy(inst);
    st_test_params_destroy(&p);
}

Test(squeezed_plan, fixed_len_zero_learns_the_prompt)
{
    planted_keys();
    st_test_params p;
    params(&p, "fraction", 0.25, 1);
    st_test_params_int(&p, "fixed_len", 0);
    void *inst = make(&p);
    static collect c;
    /* Prompt of FIXED tokens in two blocks, then decode at FIXED. */
    plan(inst, 20, 0, 20, 1, &c);
    assert_dense(&c, 0, 20, 20);
    plan(inst, FIXED, 20, FIXED - 20, 1, &c);
    assert_dense(&c, 20, FIXED - 20, FIXED);
    plan(inst, FIXED + 1, FIXED, 1, 1, &c);
    for (uint32_t h = 0; h < NH; h++)
        for (uint32_t k = 0; k <= FIXED; k++)
            cr_assert_eq(c.vis[h][0][k], k < CLUSTERED ? (k % 4 == 1) : 1, "key %u", k);
    entry()->destroy(inst);
    st_test_params_destroy(&p);
}

Test(squeezed_plan, index_path_saves_then_loads)
{
    planted_keys();
    char path[256];
    snprintf(path, sizeof path, "/tmp/st_squeezed_plan_%d.msgpack", (int)getpid());
    remove(path);
    st_test_params p;
    params(&p, "fraction", 0.25, 2);
    st_test_params_float(&p, "coarse_keep_fraction", 0.5);
    st_test_params_str(&p, "index_path", path);
    static collect a, b;
    void *inst = make(&p);
    plan(inst, N_SLOTS, FIXED, 6, 2, &a);
    entry()->destroy(inst);
    cr_assert_eq(access(path, R_OK), 0, "the clustering was saved");

    st_test_host *th = st_test_host_default();
    th->n_log = 0;
    size_t n_log = 0;
    inst = make(&p);
    plan(inst, N_SLOTS, FIXED, 6, 2, &b);
    bool loaded = false;
    for (size_t i = n_log; i < th->n_log && i < ST_TEST_HOST_LOG_MAX; i++)
        loaded |= strstr(th->log[i], "loaded") != NULL;
    cr_assert(loaded, "the second instance loaded %s", path);
    cr_assert_arr_eq(a.vis, b.vis, sizeof a.vis, "same plan from the loaded clustering");
    entry()->destroy(inst);

    /* A corrupt file is refused (warned) and the clustering redone. */
    FILE *f = fopen(path, "r+b");
    fseek(f, 40, SEEK_SET);
    fputc(0xff, f);
    fclose(f);
    th->n_log = 0;
    n_log = 0;
    inst = make(&p);
    plan(inst, N_SLOTS, FIXED, 6, 2, &b);
    bool warned = false;
    for (size_t i = n_log; i < th->n_log && i < ST_TEST_HOST_LOG_MAX; i++)
        warned |= strstr(th->log[i], "corrupt") != NULL;
    cr_assert(warned, "a corrupt index is reported");
    cr_assert_arr_eq(a.vis, b.vis, sizeof a.vis);
    entry()->destroy(inst);
    remove(path);
    st_test_params_destroy(&p);
}

Test(squeezed_plan, bad_parameters_are_refused)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "levels", 3);
    void *inst = NULL;
    st_error err = {0};
    cr_assert_eq(st_test_create(entry(), NULL, &p, &inst, &err),
                 ST_E_RANGE);
    cr_assert(strstr(err.message, "levels"), "%s", err.message);
    st_test_params_destroy(&p);
    st_test_params_init(&p);
    st_test_params_str(&p, "mode", "sometimes");
    cr_assert_eq(st_test_create(entry(), NULL, &p, &inst, &err),
                 ST_E_INVALID);
    st_test_params_destroy(&p);
}
