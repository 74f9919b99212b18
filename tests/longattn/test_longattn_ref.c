/*
 * The host's forward pass driven by the bounded attention plugins' plans,
 * with their retention compacting the cache after every block, against the
 * plain reference forward pass (tests/support/ref_llama.c) given each
 * method's mask and rotations written out independently:
 *   - lm-infinite: true distance inside n_local, the first n_global tokens
 *     beyond it with the query rotated by global_dist and the key not at all;
 *   - streaming: the sinks plus the window, positions as StreamingLLM
 *     re-assigns them (a full cache puts the query at sinks + window - 1);
 *   - sirllm: whatever its retention kept, at cache-slot positions, with the
 *     entropies fed from the logits as the engine does.
 * Every block size from token-by-token to one prefill must agree, which also
 * shows that nothing retention dropped was still needed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "gguf.h"
#include "kv_cache.h"
#include "longattn_fixture.h"
#include "model.h"
#include "ref_llama.h"
#include "threadpool.h"
#include "tiny_model.h"

#define TOL 1e-4
#define N 40

typedef struct ref_fixture {
    st_gguf *g;
    st_model *m;
    st_ref_model *ref;
    uint32_t V;
} ref_fixture;

static void open_model(ref_fixture *f)
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
}

static void close_model(ref_fixture *f)
{
    st_ref_model_free(f->ref);
    st_model_free(f->m);
    st_gguf_close(f->g);
}

typedef struct plugin_run {
    const st_plugin_entry *e;
    void *inst;
    /* slot_of[p][k]: the cache slot of position k when the query at
     * position p ran, -1 when it was not cached (for sirllm's rule). */
    int32_t slot_of[N][N];
} plugin_run;

static st_status plan_bridge(void *user, const st_attn_query *q, const st_attn_plan_builder *b,
                             st_error *err)
{
    plugin_run *r = user;
    return la_ops(r->e)->plan(r->inst, q, b, err);
}

static float neg_log_prob(const float *logits, uint32_t V, int32_t token)
{
    double mx = logits[0], sum = 0;
    for (uint32_t i = 1; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (uint32_t i = 0; i < V; i++)
        sum += exp(logits[i] - mx);
    return (float)(log(sum) - (logits[token] - mx));
}

/* Forward n tokens in blocks through the plugin, retaining after each
 * block as the engine does; logits of every token. */
static void run_plugin(ref_fixture *f, plugin_run *r, const int32_t *tok, const int32_t *pos,
                       size_t block, float *logits)
{
    const st_attention_ops *ops = la_ops(r->e);
    uint32_t needs = 0;
    int32_t wl = -1;
    st_model_shape shape = {.struct_size = sizeof shape, .n_layers = f->m->hp.n_layers,
                            .n_heads = f->m->hp.n_heads, .n_kv_heads = f->m->hp.n_kv_heads,
                            .head_dim = f->m->hp.head_dim, .rope_dims = f->m->hp.rope_dims,
                            .rope_base = f->m->hp.rope_base, .n_ctx_train = 128, .n_ctx = 128,
                            .n_embd = f->m->hp.n_embd, .n_vocab = f->V};
    st_error err = {0};
    cr_assert_eq(ops->configure(r->inst, &shape, &needs, &wl, &err), ST_OK, "%s", err.message);
    if (ops->reset)
        ops->reset(r->inst);
    uint32_t budget = ops->cache_budget(r->inst, shape.n_ctx);
    cr_assert_gt(budget, 0);
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f->m->hp.n_layers, f->m->hp.n_kv_heads, f->m->hp.head_dim,
                                    budget + (uint32_t)block, ST_KV_F32, &kv, &d), ST_OK);
    st_threadpool *pool = NULL;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    st_forward_config cfg = {.model = f->m, .kv = kv, .pool = pool, .plan = plan_bridge,
                             .plan_user = r, .weights_layer = INT32_MIN,
                             .want_qk = (needs & ST_ATTN_NEEDS_QK) != 0};
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK, "%s", d.message);
    memset(r->slot_of, 0xff, sizeof r->slot_of);
    uint8_t keep[N + 64];
    for (size_t t0 = 0; t0 < N; t0 += block) {
        size_t nb = N - t0 < block ? N - t0 : block;
        uint32_t first = kv->n_slots;
        /* What each query of the block sees: the cache so far plus the
         * block up to itself. */
        for (size_t i = 0; i < nb; i++) {
            for (uint32_t s = 0; s < first; s++)
                r->slot_of[t0 + i][kv->pos[s]] = (int32_t)s;
            for (size_t j = 0; j <= i; j++)
                r->slot_of[t0 + i][t0 + j] = (int32_t)(first + j);
        }
        cr_assert_eq(st_forward(ctx, tok + t0, pos + t0, nb, logits + t0 * f->V,
                                ST_FORWARD_ALL_LOGITS, &d), ST_OK, "forward: %s", d.message);
        if ((needs & ST_ATTN_NEEDS_ENTROPY) && ops->on_entropy) {
            float ent[N];
            uint32_t slots[N];
            float mx = 0;
            for (size_t i = 0; i < nb; i++) {
                size_t t = t0 + i;
                ent[i] = t == 0 ? -1.0f : neg_log_prob(logits + (t - 1) * f->V, f->V, tok[t]);
                mx = ent[i] > mx ? ent[i] : mx;
                slots[i] = first + (uint32_t)i;
            }
            for (size_t i = 0; i < nb; i++)
                if (ent[i] < 0)
                    ent[i] = mx;
            ops->on_entropy(r->inst, slots, ent, nb);
        }
        st_kv_view view;
        st_kv_cache_view(kv, kv->n_slots, &view);
        memset(keep, 1, kv->n_slots);
        cr_assert_eq(ops->retain(r->inst, &view, (uint32_t)nb, keep, &err), ST_OK, "%s",
                     err.message);
        cr_assert(keep[kv->n_slots - 1], "the newest slot was dropped");
        st_kv_cache_compact(kv, keep);
        cr_assert_leq(kv->n_slots, budget, "cache %u over the budget %u", kv->n_slots, budget);
    }
    st_forward_ctx_free(ctx);
    st_threadpool_destroy(pool);
    st_kv_cache_free(kv);
}

static void tokens(int32_t *tok, int32_t *pos, uint32_t V)
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

/* Run every block size against the reference logits. */
static void check_blocks(ref_fixture *f, plugin_run *r, const st_ref_opts *o)
{
    int32_t tok[N], pos[N];
    tokens(tok, pos, f->V);
    float *want = malloc(sizeof(float) * N * f->V), *got = malloc(sizeof(float) * N * f->V);
    cr_assert(want && got);
    size_t blocks[] = {1, 3, 8, N};
    /* sirllm's rule reads what each run kept: its reference is per run. */
    bool per_run = o->user == r;
    for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
        run_plugin(f, r, tok, pos, blocks[b], got);
        if (b == 0 || per_run)
            st_ref_forward(f->ref, tok, pos, N, o, want);
        for (size_t t = 0; t < N; t++) {
            double diff = rel_diff(got + t * f->V, want + t * f->V, f->V);
            cr_assert_lt(diff, TOL, "block %zu, token %zu: relative difference %g", blocks[b], t,
                         diff);
        }
    }
    free(want);
    free(got);
}

/* ---- lm-infinite ---- */

typedef struct lmi_rule_ctx {
    int32_t n_global, n_local, global_dist;
} lmi_rule_ctx;

static bool lmi_rule(void *user, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                     double *rk)
{
    const lmi_rule_ctx *c = user;
    int32_t d = pos[qi] - pos[ki];
    if (d < 0)
        return false;
    if (d < c->n_local) {
        *rq = pos[qi];
        *rk = pos[ki];
        return true;
    }
    if (pos[ki] < c->n_global) {
        *rq = c->global_dist;
        *rk = 0;
        return true;
    }
    return false;
}

Test(longattn_ref, lm_infinite_matches_the_lambda_mask)
{
    ref_fixture f;
    open_model(&f);
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "n_global", 3);
    st_test_params_int(&p, "n_local", 7);
    plugin_run *r = calloc(1, sizeof *r);
    r->e = la_entry("lm-infinite");
    st_error err = {0};
    cr_assert_eq(st_test_create(r->e, NULL, &p, &r->inst, &err),
                 ST_OK, "%s", err.message);
    lmi_rule_ctx c = {3, 7, 7};
    st_ref_opts o = {.quantize_acts = true, .rule = lmi_rule, .user = &c};
    check_blocks(&f, r, &o);
    r->e->destroy(r->inst);
    free(r);
    close_model(&f);
}

/* ---- streaming ---- */

typedef struct stream_rule_ctx {
    int32_t sinks, window;
} stream_rule_ctx;

static bool stream_rule(void *user, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                        double *rk)
{
    const stream_rule_ctx *c = user;
    int32_t d = pos[qi] - pos[ki];
    if (d < 0 || (d >= c->window && pos[ki] >= c->sinks))
        return false;
    int32_t full = c->sinks + c->window - 1;
    if (d < c->window || pos[qi] <= full) {
        *rq = pos[qi];
        *rk = pos[ki];
    } else {
        *rq = full;      /* the query at the end of a full cache */
        *rk = pos[ki];   /* sink j at cache position j */
    }
    return true;
}

Test(longattn_ref, streaming_matches_reassigned_positions)
{
    ref_fixture f;
    open_model(&f);
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "sinks", 2);
    st_test_params_int(&p, "window", 6);
    plugin_run *r = calloc(1, sizeof *r);
    r->e = la_entry("streaming");
    st_error err = {0};
    cr_assert_eq(st_test_create(r->e, NULL, &p, &r->inst, &err),
                 ST_OK, "%s", err.message);
    stream_rule_ctx c = {2, 6};
    st_ref_opts o = {.quantize_acts = true, .rule = stream_rule, .user = &c};
    check_blocks(&f, r, &o);
    r->e->destroy(r->inst);
    free(r);
    close_model(&f);
}

/* ---- sirllm ---- */

static bool sir_rule(void *user, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                     double *rk)
{
    const plugin_run *r = user;
    int32_t s = r->slot_of[pos[qi]][pos[ki]];
    if (s < 0)
        return false;
    *rq = r->slot_of[pos[qi]][pos[qi]];
    *rk = s;
    return true;
}

Test(longattn_ref, sirllm_matches_its_kept_cache_at_slot_positions)
{
    ref_fixture f;
    open_model(&f);
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "start_size", 2);
    st_test_params_int(&p, "recent_size", 4);
    st_test_params_int(&p, "entropy_size", 5);
    st_test_params_float(&p, "decay_ratio", 0.8);
    plugin_run *r = calloc(1, sizeof *r);
    r->e = la_entry("sirllm");
    st_error err = {0};
    cr_assert_eq(st_test_create(r->e, NULL, &p, &r->inst, &err),
                 ST_OK, "%s", err.message);
    st_ref_opts o = {.quantize_acts = true, .rule = sir_rule, .user = r};
    check_blocks(&f, r, &o);
    /* Token by token, the cache really was thinned: the last query saw
     * only the 11 slots plus itself. */
    int32_t tok[N], pos[N];
    tokens(tok, pos, f.V);
    float *lg = malloc(sizeof(float) * N * f.V);
    run_plugin(&f, r, tok, pos, 1, lg);
    int seen = 0;
    for (int k = 0; k < N; k++)
        seen += r->slot_of[N - 1][k] >= 0;
    cr_assert_eq(seen, 12);
    cr_assert_eq(r->slot_of[N - 1][0], 0, "start tokens stay");
    cr_assert_eq(r->slot_of[N - 1][1], 1);
    cr_assert_eq(r->slot_of[N - 1][N - 1], 11, "the query sits at the end of the cache");
    free(lg);
    r->e->destroy(r->inst);
    free(r);
    close_model(&f);
}
