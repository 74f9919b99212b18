/*
 * The attention statistics (ABI 1.4) and the per-(layer, KV head) slot
 * sets, on a tiny generated model, against a direct computation with the
 * plain reference forward pass (tests/support/ref_llama.c):
 *   - the statistics the host sums inside its kernels equal the softmax
 *     weights the reference computes, summed over the counted queries;
 *   - h2o, snapkv and pyramidkv, driven through the host's forward pass
 *     with their per-head retention, keep exactly the slots a direct
 *     computation of each method's scores selects (ties and float noise
 *     aside: a slot may differ only where two scores are equal to 1e-4),
 *     and the logits equal the reference's with every head's own mask.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "forward.h"
#include "gguf.h"
#include "kv_cache.h"
#include "model.h"
#include "ref_llama.h"
#include "test_host.h"
#include "threadpool.h"
#include "tiny_model.h"

#define N 40
#define TOL 1e-4
enum { L_MAX = 4, H_MAX = 8 };

typedef struct fixture {
    st_gguf *g;
    st_model *m;
    st_ref_model *ref;
    uint32_t V, L, H, G;
} fixture;

static void open_model(fixture *f)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = ST_GGML_F32;
    spec.embd_type = ST_GGML_F32;
    spec.n_vocab = 300;
    st_diag d;
    cr_assert_eq(st_tiny_model_load(&spec, &f->g, &f->m, &d), ST_OK, "%s", d.message);
    f->ref = st_ref_model_new(f->m);
    f->V = f->m->hp.n_vocab;
    f->L = f->m->hp.n_layers;
    f->H = f->m->hp.n_heads;
    f->G = f->m->hp.n_kv_heads;
    cr_assert_leq(f->L, L_MAX);
    cr_assert_leq(f->H, H_MAX);
}

static void close_model(fixture *f)
{
    st_ref_model_free(f->ref);
    st_model_free(f->m);
    st_gguf_close(f->g);
}

static void make_tokens(int32_t *tok, int32_t *pos, uint32_t V)
{
    for (size_t i = 0; i < N; i++) {
        tok[i] = (int32_t)((i * 2654435761u + 17u) % V);
        pos[i] = (int32_t)i;
    }
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

/* The reference's run: who sees whom per (layer, KV head), and the softmax
 * weights it computed, per (layer, query head, query, key). */
typedef struct ref_run {
    const fixture *f;
    uint8_t vis[L_MAX][H_MAX][N][N];   /* [l][kv head][q][k] */
    double probs[L_MAX][H_MAX][N][N];  /* [l][query head][q][k] */
} ref_run;

static bool head_rule(void *user, uint32_t l, uint32_t g, uint32_t qi, uint32_t ki)
{
    const ref_run *r = user;
    return r->vis[l][g][qi][ki];
}

static void on_probs(void *user, uint32_t l, uint32_t h, uint32_t qi, const double *p, size_t n)
{
    ref_run *r = user;
    for (size_t k = 0; k < n; k++)
        r->probs[l][h][qi][k] = p[k];
}

static void ref_forward(const fixture *f, ref_run *r, const int32_t *tok, const int32_t *pos,
                        float *logits)
{
    st_ref_opts o = {.quantize_acts = true, .user = r, .head_rule = head_rule,
                     .on_probs = on_probs};
    st_ref_forward(f->ref, tok, pos, N, &o, logits);
}

/* ---- the statistics, one shared slot set ---- */

static void check_stats(size_t block, uint32_t window)
{
    fixture f;
    open_model(&f);
    int32_t tok[N], pos[N];
    make_tokens(tok, pos, f.V);
    ref_run *r = calloc(1, sizeof *r);
    cr_assert(r);
    memset(r->vis, 1, sizeof r->vis);
    float *want = malloc(sizeof(float) * N * f.V), *got = malloc(sizeof(float) * N * f.V);
    cr_assert(want && got);
    ref_forward(&f, r, tok, pos, want);

    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f.L, f.G, f.m->hp.head_dim, N, ST_KV_F32, &kv, &d), ST_OK);
    st_threadpool *pool = NULL;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    st_forward_config cfg = {.model = f.m, .kv = kv, .pool = pool, .weights_layer = INT32_MIN,
                             .want_stats = true, .stats_window = window};
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK, "%s", d.message);
    for (size_t t0 = 0; t0 < N; t0 += block) {
        size_t nb = N - t0 < block ? N - t0 : block;
        cr_assert_eq(st_forward(ctx, tok + t0, pos + t0, nb, got + t0 * f.V,
                                ST_FORWARD_ALL_LOGITS, &d), ST_OK, "%s", d.message);
        size_t q0 = window && window < nb ? t0 + nb - window : t0;
        for (uint32_t l = 0; l < f.L; l++)
            for (uint32_t h = 0; h < f.H; h++) {
                uint32_t nq;
                const float *row = st_forward_stats(ctx, l, h, &nq);
                cr_assert(row, "no statistics for layer %u head %u", l, h);
                cr_assert_eq(nq, t0 + nb - q0);
                for (size_t k = 0; k < t0 + nb; k++) {
                    double e = 0;
                    for (size_t q = q0; q < t0 + nb; q++)
                        e += r->probs[l][h][q][k];
                    cr_assert(fabs(row[k] - e) < 1e-4 * (1 + e),
                              "block %zu at %zu, layer %u head %u key %zu: host %g, direct %g",
                              block, t0, l, h, k, (double)row[k], e);
                }
            }
    }
    for (size_t t = 0; t < N; t++)
        cr_assert_lt(rel_diff(got + t * f.V, want + t * f.V, f.V), TOL);
    st_forward_ctx_free(ctx);
    st_threadpool_destroy(pool);
    st_kv_cache_free(kv);
    free(want);
    free(got);
    free(r);
    close_model(&f);
}

Test(kv_stats, every_query_of_every_block_size)
{
    check_stats(N, 0);
    check_stats(7, 0);
    check_stats(1, 0);
}

Test(kv_stats, observation_window)
{
    check_stats(N, 5);
    check_stats(8, 3);
    check_stats(1, 4);
}

/* ---- the plugins, per-(layer, KV head) slot sets ---- */

typedef enum method { H2O, SNAPKV, PYRAMIDKV } method;

typedef struct policy {
    method m;
    uint32_t heavy, recent;               /* h2o */
    uint32_t budget, window, kernel, beta; /* snapkv, pyramidkv */
    bool max_pool;
} policy;

static uint32_t layer_budget(const policy *p, uint32_t l, uint32_t L)
{
    if (p->m == H2O)
        return p->heavy + p->recent;
    if (p->m == SNAPKV)
        return p->budget;
    /* PyramidKV's schedule, written out: min = avg / beta at the top,
     * max = 2 avg - min at the bottom, linear in between. */
    uint32_t avg = p->budget - p->window, lo = avg / p->beta, hi = 2 * avg - lo;
    uint32_t step = L > 1 ? (hi - lo) / (L - 1) : 0;
    return hi - l * step + p->window;
}

static const char *plugin_name(method m)
{
    return m == H2O ? "h2o" : m == SNAPKV ? "snapkv" : "pyramidkv";
}

typedef struct run {
    const st_attention_ops *ops;
    void *inst;
} run;

static st_status plan_bridge(void *user, const st_attn_query *q, const st_attn_plan_builder *b,
                             st_error *err)
{
    run *r = user;
    return r->ops->plan(r->inst, q, b, err);
}

/* The positions each (layer, KV head) held after each block. */
typedef struct history {
    size_t n_blocks;
    size_t t0[N + 1], nb[N + 1];
    uint8_t held[N + 1][L_MAX][H_MAX][N];   /* [block][l][g][pos]: after the block */
} history;

static void drive_plugin(const fixture *f, const policy *p, const size_t *blocks,
                         size_t n_blocks, const int32_t *tok, const int32_t *pos, float *logits,
                         history *hist, ref_run *r)
{
    const st_plugin_entry *e;
    char why[512] = "";
    e = st_test_load_plugin(ST_TEST_PLUGIN_DIR, "attention", plugin_name(p->m), why, sizeof why);
    cr_assert(e, "%s", why);
    st_test_params tp;
    st_test_params_init(&tp);
    if (p->m == H2O) {
        st_test_params_int(&tp, "heavy", p->heavy);
        st_test_params_int(&tp, "recent", p->recent);
    } else {
        st_test_params_int(&tp, "budget", p->budget);
        st_test_params_int(&tp, "window", p->window);
        st_test_params_int(&tp, "kernel", p->kernel);
        st_test_params_str(&tp, "pooling", p->max_pool ? "max" : "avg");
        if (p->m == PYRAMIDKV)
            st_test_params_int(&tp, "beta", p->beta);
    }
    run rn = {.ops = e->ops};
    st_error err = {0};
    cr_assert_eq(st_test_create(e, NULL, &tp, &rn.inst, &err), ST_OK, "%s", err.message);
    const st_attention_ops *ops = rn.ops;
    st_model_shape shape = {.struct_size = sizeof shape, .n_layers = f->L, .n_heads = f->H,
                            .n_kv_heads = f->G, .head_dim = f->m->hp.head_dim,
                            .rope_dims = f->m->hp.rope_dims, .rope_base = f->m->hp.rope_base,
                            .n_ctx_train = 128, .n_ctx = 128, .n_embd = f->m->hp.n_embd,
                            .n_vocab = f->V};
    uint32_t needs = 0;
    int32_t wl = -1;
    cr_assert_eq(ops->configure(rn.inst, &shape, &needs, &wl, &err), ST_OK, "%s", err.message);
    uint8_t stats_layers[L_MAX];
    uint32_t lb[L_MAX] = {0};
    memset(stats_layers, 1, sizeof stats_layers);
    st_attn_kv_config kc = {.struct_size = sizeof kc, .stats_layers = stats_layers,
                            .layer_budget = lb};
    cr_assert_eq(ops->configure_kv(rn.inst, &shape, &kc, &err), ST_OK, "%s", err.message);
    cr_assert_eq(kc.per_head_slots, 1);
    cr_assert_eq(kc.stats, ST_STATS_KV_HEADS);
    for (uint32_t l = 0; l < f->L; l++)
        cr_assert_eq(lb[l] ? lb[l] : ops->cache_budget(rn.inst, 128), layer_budget(p, l, f->L),
                     "layer %u's budget", l);
    uint32_t budget = ops->cache_budget(rn.inst, 128), maxb = 0;
    for (size_t b = 0; b < n_blocks; b++)
        maxb = blocks[b] > maxb ? (uint32_t)blocks[b] : maxb;

    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f->L, f->G, f->m->hp.head_dim, budget + maxb, ST_KV_F32,
                                    &kv, &d), ST_OK);
    /* Each layer sized as the engine sizes it: its budget + the largest
     * block (PyramidKV's layers differ, so their strides do). */
    uint32_t lcap[L_MAX];
    for (uint32_t l = 0; l < f->L; l++)
        lcap[l] = layer_budget(p, l, f->L) + maxb;
    cr_assert_eq(st_kv_cache_enable_heads(kv, lcap, &d), ST_OK, "%s", d.message);
    for (uint32_t l = 0; l < f->L; l++)
        cr_assert_eq(st_kv_layer_bytes(kv, l), 2 * (size_t)f->G * lcap[l] * kv->row_bytes);
    st_threadpool *pool = NULL;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    st_forward_config cfg = {.model = f->m, .kv = kv, .pool = pool, .plan = plan_bridge,
                             .plan_user = &rn, .weights_layer = INT32_MIN, .want_stats = true,
                             .stats_window = kc.stats_window, .stats_layers = stats_layers};
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK, "%s", d.message);
    size_t G = f->G, nh = f->L * G, cap = kv->capacity;
    float *kvsum = calloc(nh * cap, sizeof(float));
    const float *sums[L_MAX * H_MAX];
    st_kv_view views[L_MAX * H_MAX];
    uint8_t *keep[L_MAX * H_MAX];
    uint8_t *masks = malloc(nh * cap);
    int32_t qpos[N];
    cr_assert(kvsum && masks);
    memset(r->vis, 0, sizeof r->vis);
    size_t t0 = 0;
    hist->n_blocks = n_blocks;
    for (size_t b = 0; b < n_blocks; b++) {
        size_t nb = blocks[b];
        /* What the block's queries see in each head: what it held, and
         * the block up to themselves. */
        for (uint32_t l = 0; l < f->L; l++)
            for (uint32_t g = 0; g < G; g++)
                for (size_t q = t0; q < t0 + nb; q++) {
                    for (size_t k = 0; k < t0; k++)
                        r->vis[l][g][q][k] = b > 0 && hist->held[b - 1][l][g][k];
                    for (size_t k = t0; k <= q; k++)
                        r->vis[l][g][q][k] = 1;
                }
        cr_assert_eq(st_forward(ctx, tok + t0, pos + t0, nb, logits + t0 * f->V,
                                ST_FORWARD_ALL_LOGITS, &d), ST_OK, "%s", d.message);
        /* The statistics per KV head, as the engine hands them over. */
        uint32_t nq = 0;
        for (uint32_t l = 0; l < f->L; l++)
            for (uint32_t g = 0; g < G; g++) {
                size_t i = l * G + g;
                st_kv_cache_head_view(kv, l, g, 0, &views[i]);
                float *dst = kvsum + i * cap;
                memset(dst, 0, cap * sizeof(float));
                for (uint32_t h = g * (f->H / G); h < (g + 1) * (f->H / G); h++) {
                    const float *row = st_forward_stats(ctx, l, h, &nq);
                    cr_assert(row);
                    for (uint32_t j = 0; j < views[i].n_slots; j++)
                        dst[j] += row[j];
                }
                sums[i] = dst;
                keep[i] = masks + i * cap;
                memset(keep[i], 1, cap);
            }
        for (uint32_t i = 0; i < nq; i++)
            qpos[i] = (int32_t)(t0 + nb - nq + i);
        st_attn_stats st = {.struct_size = sizeof st, .n_layers = f->L, .n_kv_heads = f->G,
                            .n_rows = f->G, .n_q = nq, .q_pos = qpos, .kv = views,
                            .sum = sums};
        cr_assert_eq(ops->on_attention_stats(rn.inst, &st, &err), ST_OK, "%s", err.message);
        st_kv_heads hs = {.struct_size = sizeof hs, .n_layers = f->L, .n_kv_heads = f->G,
                          .n_new = (uint32_t)nb, .kv = views, .keep = keep};
        cr_assert_eq(ops->retain_heads(rn.inst, &hs, &err), ST_OK, "%s", err.message);
        for (uint32_t l = 0; l < f->L; l++)
            for (uint32_t g = 0; g < G; g++) {
                st_kv_cache_compact_head(kv, l, g, keep[l * G + g]);
                size_t i = st_kv_head_index(kv, l, g);
                cr_assert_leq(kv->hn[i], layer_budget(p, l, f->L));
                memset(hist->held[b][l][g], 0, N);
                for (uint32_t j = 0; j < kv->hn[i]; j++)
                    hist->held[b][l][g][kv->hpos[st_kv_head_base(kv, l, g) + j]] = 1;
            }
        st_kv_cache_heads_settle(kv);
        hist->t0[b] = t0;
        hist->nb[b] = nb;
        t0 += nb;
    }
    cr_assert_eq(t0, N);
    st_forward_ctx_free(ctx);
    st_threadpool_destroy(pool);
    st_kv_cache_free(kv);
    free(kvsum);
    free(masks);
    e->destroy(rn.inst);
    st_test_params_destroy(&tp);
}

/* A candidate slot of the direct selection: its score, its index. */
typedef struct cand {
    double score;
    int32_t idx;
} cand;

static int cand_cmp(const void *a, const void *b)
{
    const cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->idx - y->idx;
}

/* Keep the k best of c[0..n) (score desc, then older); mark kept[idx]. */
static double keep_best(cand *c, size_t n, size_t k, uint8_t *kept)
{
    qsort(c, n, sizeof *c, cand_cmp);
    for (size_t i = 0; i < n && i < k; i++)
        kept[c[i].idx] = 1;
    return k > 0 && k <= n ? c[k - 1].score : 0.0;
}

/* Replay the blocks: each block's scores from the reference's softmax
 * weights, the selection computed here, against what the plugin kept. */
static void check_against_direct(const fixture *f, const policy *p, const history *hist,
                                 const ref_run *r)
{
    uint32_t G = f->G, gs = f->H / G;
    static double score[L_MAX][H_MAX][N];   /* by position: h2o's acc, snapkv's window */
    memset(score, 0, sizeof score);
    size_t checked = 0;
    for (size_t b = 0; b < hist->n_blocks; b++) {
        size_t t0 = hist->t0[b], nb = hist->nb[b];
        size_t q0 = t0;
        if (p->m != H2O && p->window < nb)
            q0 = t0 + nb - p->window;
        for (uint32_t l = 0; l < f->L; l++)
            for (uint32_t g = 0; g < G; g++) {
                /* The head's slots after the block, before retention. */
                int32_t slots[N];
                size_t n = 0;
                for (size_t k = 0; k < t0 + nb; k++)
                    if (k >= t0 || (b > 0 && hist->held[b - 1][l][g][k]))
                        slots[n++] = (int32_t)k;
                double blk[N] = {0};
                for (uint32_t h = g * gs; h < (g + 1) * gs; h++)
                    for (size_t q = q0; q < t0 + nb; q++)
                        for (size_t i = 0; i < n; i++)
                            blk[slots[i]] += r->probs[l][h][q][slots[i]];
                bool replace = p->m != H2O && (t0 + nb - q0) > 1;
                for (size_t i = 0; i < n; i++) {
                    int32_t k = slots[i];
                    bool fresh = (size_t)k >= t0;
                    score[l][g][k] = (replace || fresh ? 0.0 : score[l][g][k]) + blk[k];
                }
                uint32_t budget = layer_budget(p, l, f->L);
                uint8_t want[N] = {0};
                double boundary = 0;
                cand c[N];
                if (n <= budget) {
                    for (size_t i = 0; i < n; i++)
                        want[slots[i]] = 1;
                } else if (p->m == H2O) {
                    uint32_t recent = p->recent ? p->recent : 1;
                    size_t end = n - recent;
                    for (size_t i = end; i < n; i++)
                        want[slots[i]] = 1;
                    for (size_t i = 0; i < end; i++)
                        c[i] = (cand){score[l][g][slots[i]], (int32_t)i};
                    uint8_t kept_i[N] = {0};
                    boundary = keep_best(c, end, budget - recent, kept_i);
                    for (size_t i = 0; i < end; i++)
                        if (kept_i[i])
                            want[slots[i]] = 1;
                } else {
                    uint32_t w = p->window < budget ? p->window : budget - 1;
                    size_t end = n - w, half = p->kernel / 2;
                    for (size_t i = end; i < n; i++)
                        want[slots[i]] = 1;
                    for (size_t i = 0; i < end; i++) {
                        size_t a = i >= half ? i - half : 0, z = i + half + 1 < end ? i + half + 1
                                                                                   : end;
                        double mx = score[l][g][slots[a]], sum = 0;
                        for (size_t j = a; j < z; j++) {
                            double s = score[l][g][slots[j]];
                            mx = s > mx ? s : mx;
                            sum += s;
                        }
                        c[i] = (cand){p->max_pool ? mx : sum / p->kernel, (int32_t)i};
                    }
                    /* c keeps each slot's pooled score for the tie check. */
                    cand sorted[N];
                    memcpy(sorted, c, sizeof c);
                    uint8_t kept_i[N] = {0};
                    boundary = keep_best(sorted, end, budget - w, kept_i);
                    for (size_t i = 0; i < end; i++)
                        if (kept_i[i])
                            want[slots[i]] = 1;
                    for (size_t i = 0; i < n; i++) {
                        int32_t k = slots[i];
                        if (want[k] != hist->held[b][l][g][k] && i < end)
                            cr_assert(fabs(c[i].score - boundary) < 1e-4 * (1 + boundary),
                                      "%s block %zu layer %u KV head %u: position %d %s by "
                                      "the plugin, pooled score %g against the boundary %g",
                                      plugin_name(p->m), b, l, g, k,
                                      hist->held[b][l][g][k] ? "kept" : "dropped",
                                      c[i].score, boundary);
                    }
                }
                for (size_t i = 0; i < n; i++) {
                    int32_t k = slots[i];
                    if (want[k] == hist->held[b][l][g][k])
                        continue;
                    if (p->m == H2O)
                        cr_assert(fabs(score[l][g][k] - boundary) < 1e-4 * (1 + boundary),
                                  "h2o block %zu layer %u KV head %u: position %d %s by the "
                                  "plugin, accumulated score %g against the boundary %g", b, l,
                                  g, k, hist->held[b][l][g][k] ? "kept" : "dropped",
                                  score[l][g][k], boundary);
                }
                /* Nothing outside the head's slots can be held. */
                for (size_t k = 0; k < t0 + nb; k++) {
                    bool in = k >= t0 || (b > 0 && hist->held[b - 1][l][g][k]);
                    cr_assert(in || !hist->held[b][l][g][k]);
                }
                if (n > budget)
                    checked++;
            }
    }
    cr_assert_gt(checked, 0, "no block overflowed a budget: the test checks no selection");
}

static void check_policy(const policy *p, const size_t *blocks, size_t n_blocks)
{
    fixture f;
    open_model(&f);
    int32_t tok[N], pos[N];
    make_tokens(tok, pos, f.V);
    ref_run *r = calloc(1, sizeof *r);
    history *hist = calloc(1, sizeof *hist);
    float *got = malloc(sizeof(float) * N * f.V), *want = malloc(sizeof(float) * N * f.V);
    cr_assert(r && hist && got && want);
    drive_plugin(&f, p, blocks, n_blocks, tok, pos, got, hist, r);
    ref_forward(&f, r, tok, pos, want);
    for (size_t t = 0; t < N; t++) {
        double diff = rel_diff(got + t * f.V, want + t * f.V, f.V);
        cr_assert_lt(diff, TOL, "%s token %zu: logits differ from the reference with the same "
                     "per-head masks by %g", plugin_name(p->m), t, diff);
    }
    check_against_direct(&f, p, hist, r);
    free(r);
    free(hist);
    free(got);
    free(want);
    close_model(&f);
}

static const size_t mixed[] = {16, 8, 8, 1, 1, 1, 1, 1, 1, 1, 1};
static const size_t decode[] = {4, 4, 4, 4, 4, 4, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1};

Test(kv_policy, h2o_keeps_recent_and_heavy_hitters)
{
    policy p = {.m = H2O, .heavy = 6, .recent = 4};
    check_policy(&p, mixed, sizeof mixed / sizeof *mixed);
    size_t ones[N];
    for (size_t i = 0; i < N; i++)
        ones[i] = 1;
    check_policy(&p, ones, N);
}

Test(kv_policy, snapkv_keeps_the_window_and_pooled_top)
{
    policy p = {.m = SNAPKV, .budget = 12, .window = 4, .kernel = 3, .max_pool = true};
    check_policy(&p, mixed, sizeof mixed / sizeof *mixed);
    p.max_pool = false;
    p.kernel = 5;
    check_policy(&p, decode, sizeof decode / sizeof *decode);
}

Test(kv_policy, pyramidkv_budgets_shrink_with_depth)
{
    policy p = {.m = PYRAMIDKV, .budget = 12, .window = 4, .kernel = 3, .beta = 2,
                .max_pool = true};
    check_policy(&p, mixed, sizeof mixed / sizeof *mixed);
}
