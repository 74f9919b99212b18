/*
 * The forward pass with its state on the device (backend.h's resident
 * ops, opencl/cl_resident.c, kernels/forward.cl) against the CPU backend,
 * on tiny random models: every new op (embedding, RMSNorm and the residual,
 * int8 blocks, SwiGLU, RoPE with the cache append, attention over the
 * plan, the re-rotation tables, compaction, logits) runs in each case,
 * and the logits of every token of a prefill block and of decoded tokens
 * are compared.
 *
 * Cases: every weight type; head sizes 64 and 128; GQA ratios 1, 3 and 8;
 * rows that are no multiple of any work-group (odd head counts, 7-token
 * blocks); every plan shape (dense, windows, per-head ranges, index
 * lists, ST_POS_TRUE / FIXED / SLOT, min and max distances, no visible
 * key); ALiBi slopes, a position map, YaRN-like scale and temperature;
 * the f32, f16 and q8_0 caches; compaction after `retain`; a posenc
 * change that re-rotates the cache; and what stays on the host (a bias
 * callback, q/k for ST_ATTN_NEEDS_QK, the attention weights), whose
 * weights must come back as the CPU's.
 *
 * Tolerances, relative to the largest |logit|:
 *   F32 and F16 weights: 1e-4. The device does the CPU's float operations
 *   in the same order on each of its attention paths (gather, tiled,
 *   split decode), with glibc's expf (forward.cl cpu_expf), so with head
 *   size 64 the logits come out equal, and compare() asserts that;
 *   with head size 128 the CPU mixes scalar and vector row kernels that
 *   the device does not all follow: a few ulp per score, ~1e-7 relative
 *   through two layers. 1e-4 is the bound tests/forward/test_plan.c uses
 *   for float paths in another order; a wrong key, position, mask or
 *   rotation moves logits by 1e-2 or more.
 *   Quantized weights: 0 (bit for bit) where the CPU runs its AVX2 path
 *   (the suite holds it there on AVX-512 machines too). Their products
 *   take activations rounded to int8 per 32-block, so an ulp of
 *   difference upstream can flip one element's rounding (up to 1/127 of
 *   the block's largest value in one input of the next product) and, 30
 *   layers on, move SmolLM2's logits by 0.5 (RESULTS §8.1: the AVX2
 *   16-row kernels once summed in another order than the device and no
 *   bound above ~1e-2 saw it). The device therefore follows the CPU's
 *   order of float operations step for step (cpu/kernels.h, "block
 *   order"; the tiled prefill and split decode attention), and anything
 *   but equal logits is a regression of that. The vocabulary is a
 *   multiple of 16, so the CPU repacks the output head as well and the
 *   last products reach the logits with no int8 rounding to hide an ulp.
 *   Elsewhere (no AVX2: the scalar attention tile sums in another order)
 *   2e-2: a wrong op is off by the logits' own scale (relative ~1).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl_fixture.h"
#include "cl_sources.h"
#include "forward.h"
#include "gguf.h"
#include "kernels.h"
#include "model.h"
#include "tiny_model.h"

#define N 13      /* prefill tokens: not a multiple of any work-group */
#define ND 4      /* decoded after */
#define CAP 320   /* the longest run's tokens (decode_exact) */

typedef struct model_fx {
    st_gguf *g;
    st_model *m;
    uint32_t V;
    st_backend *cl;     /* the OpenCL backend with the model's weights */
} model_fx;

static st_backend *open_cl(const st_model *m);

static void open_model(model_fx *f, st_ggml_type type, uint32_t head_dim, uint32_t n_heads,
                       uint32_t n_kv_heads)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = type;
    spec.embd_type = type;
    spec.n_heads = n_heads;
    spec.n_kv_heads = n_kv_heads;
    spec.n_embd = head_dim * n_heads;
    spec.n_ff = 96;
    spec.n_vocab = 320;   /* a multiple of 16: a repacked output head */
    spec.seed = 7 + head_dim + n_heads;
    st_diag d;
    cr_assert_eq(st_tiny_model_load(&spec, &f->g, &f->m, &d), ST_OK, "%s", d.message);
    cr_assert_eq(f->m->hp.head_dim, head_dim);
    f->V = f->m->hp.n_vocab;
    f->cl = open_cl(f->m);
}

static void close_model(model_fx *f)
{
    st_backend_free(f->cl);
    st_model_free(f->m);
    st_gguf_close(f->g);
}

/* ---- plans ------------------------------------------------------------- */

enum {
    PLAN_DENSE, PLAN_WINDOW, PLAN_FIXED_BEYOND, PLAN_SINKS_SLOT, PLAN_PER_HEAD,
    PLAN_INDICES, PLAN_NO_SELF, PLAN_EMPTY_HEAD, PLAN_COUNT
};
static const char *const plan_names[PLAN_COUNT] = {
    "dense", "window", "fixed-beyond", "sinks-slot", "per-head", "indices", "no-self",
    "empty-head",
};

static st_status plan_cb(void *user, const st_attn_query *q, const st_attn_plan_builder *b,
                         st_error *err)
{
    (void)err;
    int kind = *(const int *)user;
    uint32_t ns = q->kv->n_slots;
    st_status s = ST_OK;
    switch (kind) {
    case PLAN_DENSE: {
        st_attn_range r = { ST_ALL_HEADS, 0, ns, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
        return b->add_range(b->host, &r);
    }
    case PLAN_WINDOW: { /* the last 4 positions */
        st_attn_range r = { ST_ALL_HEADS, 0, ns, 0, 3, ST_POS_TRUE, 0 };
        return b->add_range(b->host, &r);
    }
    case PLAN_FIXED_BEYOND: { /* ReRoPE / LM-Infinite: true near, fixed far */
        st_attn_range r1 = { ST_ALL_HEADS, 0, ns, 0, 4, ST_POS_TRUE, 0 };
        st_attn_range r2 = { ST_ALL_HEADS, 0, ns, 5, ST_DIST_MAX, ST_POS_FIXED, 5 };
        s = b->add_range(b->host, &r1);
        return s ? s : b->add_range(b->host, &r2);
    }
    case PLAN_SINKS_SLOT: { /* StreamingLLM: 2 sinks + the last 5 slots, slot positions */
        uint32_t sinks[2] = { 0, 1 };
        st_attn_range shape = { ST_ALL_HEADS, 0, 0, 0, ST_DIST_MAX, ST_POS_SLOT, 0 };
        uint32_t lo = ns > 5 ? ns - 5 : 0;
        if (lo < 2)
            lo = 2;
        s = b->add_indices(b->host, sinks, ns < 2 ? ns : 2, &shape);
        if (s || lo >= ns)
            return s;
        st_attn_range r = { ST_ALL_HEADS, lo, ns, 0, ST_DIST_MAX, ST_POS_SLOT, 0 };
        return b->add_range(b->host, &r);
    }
    case PLAN_PER_HEAD: /* head h sees a window of h + 2, split in two ranges */
        for (uint32_t h = 0; h < q->n_heads && !s; h++) {
            uint32_t mid = ns / 2;
            st_attn_range a = { h, 0, mid, 0, (int32_t)h + 1, ST_POS_TRUE, 0 };
            st_attn_range c = { h, mid, ns, 0, (int32_t)h + 1, ST_POS_TRUE, 0 };
            s = b->add_range(b->host, &a);
            if (!s)
                s = b->add_range(b->host, &c);
        }
        return s;
    case PLAN_INDICES: { /* every other slot and the block's own, causal */
        uint32_t list[CAP], n = 0;
        for (uint32_t j = 0; j < ns; j++)
            if (j % 2 == 0 || j >= q->q_slot[0])
                list[n++] = j;
        st_attn_range shape = { ST_ALL_HEADS, 0, 0, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
        return b->add_indices(b->host, list, n, &shape);
    }
    case PLAN_NO_SELF: { /* min distance 1: a key never sees itself; the first none */
        st_attn_range r = { ST_ALL_HEADS, 0, ns, 1, ST_DIST_MAX, ST_POS_TRUE, 0 };
        return b->add_range(b->host, &r);
    }
    case PLAN_EMPTY_HEAD: /* head 0 sees nothing at all; the rest are dense */
        for (uint32_t h = 1; h < q->n_heads && !s; h++) {
            st_attn_range r = { h, 0, ns, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
            s = b->add_range(b->host, &r);
        }
        return s;
    }
    return ST_E_INVALID;
}

/* ---- positional callbacks ---------------------------------------------- */

/* A map that halves positions (Self-Extend-like grouping), monotone. */
static st_status map_half(void *inst, const int32_t *seq_pos, size_t n, int32_t *out,
                          st_error *err)
{
    (void)inst;
    (void)err;
    for (size_t i = 0; i < n; i++)
        out[i] = seq_pos[i] / 2;
    return ST_OK;
}

/* An additive bias per key distance (a plugin's own, not slopes). */
static st_status bias_cb(void *inst, uint32_t head, const int32_t *q_pos, size_t nq,
                         const int32_t *k_pos, size_t nk, float *out, st_error *err)
{
    (void)inst;
    (void)err;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nk; j++)
            out[i * nk + j] = -0.05f * (float)(head + 1) * (float)(q_pos[i] - k_pos[j]);
    return ST_OK;
}

/* ---- one run ------------------------------------------------------------ */

typedef struct run_spec {
    st_kv_type kv_type;
    int plan;                   /* -1: no plan (the host's dense default) */
    const st_posenc_desc *posenc;
    bool map;                   /* map_half */
    bool bias;                  /* bias_cb (ST_POSENC_BIAS in the desc) */
    bool want_qk;
    bool want_weights;
    bool compact;               /* after the prefill: keep 0, 1 and every third */
    const st_posenc_desc *posenc_after;   /* set after the prefill (re-rotation) */
    uint32_t n_prefill, n_decode;         /* 0: N and ND */
} run_spec;

typedef struct run_out {
    float *logits;              /* [n_prefill + n_decode][V] */
    float *weights;             /* the last decode's weights [n_slots] */
    uint32_t n_slots;
} run_out;

static char cache[300];

static st_backend *open_cl(const st_model *m)
{
    st_opencl_options o = { .backend = "opencl", .cache_dir = cache };
    st_backend *b = NULL;
    st_diag d;
    cr_assert_eq(st_opencl_backend_open(&o, m, &b, &d), ST_OK, "%s", d.message);
    cr_assert(b->ops->res, "the OpenCL backend keeps the forward pass's state on the device");
    return b;
}

static void run(const model_fx *f, const run_spec *r, st_backend *be, run_out *out)
{
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f->m->hp.n_layers, f->m->hp.n_kv_heads, f->m->hp.head_dim,
                                    CAP, r->kv_type, &kv, &d), ST_OK, "%s", d.message);
    st_threadpool *pool = NULL;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    int kind = r->plan;
    st_forward_config cfg = {
        .model = f->m, .kv = kv, .pool = pool, .backend = be, .posenc = r->posenc,
        .plan = r->plan >= 0 ? plan_cb : NULL, .plan_user = &kind,
        .map_positions = r->map ? map_half : NULL, .bias = r->bias ? bias_cb : NULL,
        .want_qk = r->want_qk, .want_weights = r->want_weights, .weights_layer = -1,
    };
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK, "%s", d.message);
    int np = r->n_prefill ? (int)r->n_prefill : N, nd = r->n_prefill ? (int)r->n_decode : ND;
    cr_assert(np + nd <= CAP);
    int32_t tok[CAP], pos[CAP];
    for (int i = 0; i < np + nd; i++) {
        tok[i] = (int32_t)((i * 37 + 11) % f->V);
        pos[i] = i;
    }
    out->logits = calloc((size_t)(np + nd) * f->V, sizeof(float));
    cr_assert_eq(st_forward(ctx, tok, pos, np, out->logits, ST_FORWARD_ALL_LOGITS, &d), ST_OK,
                 "%s", d.message);
    if (r->compact) {
        uint8_t keep[CAP];
        for (int i = 0; i < np; i++)
            keep[i] = i < 2 || i % 3 == 0;
        st_kv_cache_compact(kv, keep);
    }
    if (r->posenc_after)
        cr_assert_eq(st_forward_set_posenc(ctx, r->posenc_after, &d), ST_OK, "%s", d.message);
    for (int i = np; i < np + nd; i++)
        cr_assert_eq(st_forward(ctx, tok + i, pos + i, 1, out->logits + (size_t)i * f->V, 0, &d),
                     ST_OK, "%s", d.message);
    out->weights = NULL;
    out->n_slots = 0;
    if (r->want_weights) {
        uint32_t nq, ns;
        const float *w = st_forward_weights(ctx, &nq, &ns);
        cr_assert(w && nq == 1);
        out->weights = malloc(ns * sizeof(float));
        memcpy(out->weights, w, ns * sizeof(float));
        out->n_slots = ns;
    }
    st_forward_ctx_free(ctx);
    st_threadpool_destroy(pool);
    st_kv_cache_free(kv);
}

static double rel_diff(const float *a, const float *b, size_t n)
{
    double md = 0, mb = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double dd = fabs((double)a[i] - b[i]);
        if (isnan(dd))
            return INFINITY;
        md = dd > md ? dd : md;
        mb = fabs(b[i]) > mb ? fabs(b[i]) : mb;
    }
    return md / mb;
}

static void setup(void)
{
    snprintf(cache, sizeof cache, "%s", st_cl_test_cache_dir("fwd"));
    /* The device's products follow the CPU's 8-lane kernels
     * (docs/opencl.md, "Numerics"). */
    setenv("STRETCH_ISA", "avx2", 1);
    /* ... on key rows, as the device holds them (the AVX2 path's default,
     * keys in 16-slot blocks, sums each score in another order). */
    setenv("STRETCH_KV_KEYS", "rows", 1);
}

static void teardown(void)
{
    st_cl_test_cache_remove(cache);
}

/* The bound where the device must give the CPU's bits: its AVX2 kernels
 * and glibc's expf (see the top), else the float bound. */
static double exact_bound(void)
{
#ifdef __GLIBC__
    return st_cpu_kernels_get(ST_ISA_AVX2)->isa == ST_ISA_AVX2 ? 0.0 : 1e-4;
#else
    return 1e-4;
#endif
}

/* Both backends on the same spec; the logits (and weights) must agree.
 * Head sizes up to 64 on the CPU's AVX2 path: exactly (see the top). */
static void compare(const model_fx *f, const run_spec *r, double tol, const char *what)
{
    if (f->m->hp.head_dim <= 64 && exact_bound() == 0.0)
        tol = 0.0;
    run_out cpu, cl;
    run(f, r, NULL, &cpu);
    run(f, r, f->cl, &cl);
    int nt = r->n_prefill ? (int)(r->n_prefill + r->n_decode) : N + ND;
    size_t n = (size_t)nt * f->V;
    double rd = rel_diff(cl.logits, cpu.logits, n);
    cr_log_info("%s: logits differ by %.3g of the largest", what, rd);
    cr_expect(rd <= tol, "%s: logits differ by %.3g of the largest (bound %.1g)", what, rd, tol);
    /* The same greedy pick on every token, unless the CPU's top two are
     * within the bound. */
    for (int t = 0; t < nt; t++) {
        const float *a = cpu.logits + (size_t)t * f->V, *b = cl.logits + (size_t)t * f->V;
        uint32_t ia = 0, ib = 0;
        for (uint32_t v = 1; v < f->V; v++) {
            ia = a[v] > a[ia] ? v : ia;
            ib = b[v] > b[ib] ? v : ib;
        }
        if (ia != ib)
            cr_expect(fabsf(a[ia] - a[ib]) <= (float)(tol * fabs(a[ia])) + 1e-6f,
                      "%s: token %d picks %u on the device, %u on the CPU", what, t, ib, ia);
    }
    if (r->want_weights) {
        cr_assert_eq(cl.n_slots, cpu.n_slots);
        cr_expect(rel_diff(cl.weights, cpu.weights, cpu.n_slots) <= 1e-4,
                  "%s: attention weights differ", what);
    }
    free(cpu.logits);
    free(cl.logits);
    free(cpu.weights);
    free(cl.weights);
}

TestSuite(opencl_forward, .init = setup, .fini = teardown, .timeout = 600);

/* Every weight type, dense attention, GQA 3 (3 heads over 1), head 64. */
static void weight_type(st_ggml_type t, double tol)
{
    model_fx f;
    open_model(&f, t, 64, 3, 1);
    run_spec r = { .kv_type = ST_KV_F32, .plan = -1 };
    compare(&f, &r, tol, "dense");
    close_model(&f);
}

Test(opencl_forward, weight_f32) { weight_type(ST_GGML_F32, 1e-4); }
Test(opencl_forward, weight_f16) { weight_type(ST_GGML_F16, 1e-4); }
/* The bound for quantized weights (see the top): exact on the AVX2 path. */
static double quant_bound(void)
{
    return st_cpu_kernels_get(ST_ISA_AVX2)->isa == ST_ISA_AVX2 ? 0.0 : 2e-2;
}

Test(opencl_forward, weight_q4_0) { weight_type(ST_GGML_Q4_0, quant_bound()); }
Test(opencl_forward, weight_q4_1) { weight_type(ST_GGML_Q4_1, quant_bound()); }
Test(opencl_forward, weight_q8_0) { weight_type(ST_GGML_Q8_0, quant_bound()); }

/* Every plan shape on head sizes 64 and 128 and GQA ratios 1, 3, 8. */
static void every_plan(uint32_t hd, uint32_t nh, uint32_t nkv)
{
    model_fx f;
    open_model(&f, ST_GGML_F32, hd, nh, nkv);
    for (int p = 0; p < PLAN_COUNT; p++) {
        run_spec r = { .kv_type = ST_KV_F32, .plan = p };
        char what[64];
        snprintf(what, sizeof what, "hd %u, %u/%u heads, plan %s", hd, nh, nkv, plan_names[p]);
        compare(&f, &r, 1e-4, what);
    }
    close_model(&f);
}

Test(opencl_forward, plans_hd64_gqa1) { every_plan(64, 2, 2); }
Test(opencl_forward, plans_hd64_gqa3) { every_plan(64, 3, 1); }
Test(opencl_forward, plans_hd128_gqa8) { every_plan(128, 8, 1); }
Test(opencl_forward, plans_hd128_gqa1) { every_plan(128, 1, 1); }

/* The cache types, each with a plan that re-rotates keys (FIXED, SLOT). */
Test(opencl_forward, kv_types)
{
    model_fx f;
    open_model(&f, ST_GGML_F32, 64, 3, 1);
    st_kv_type types[3] = { ST_KV_F32, ST_KV_F16, ST_KV_Q8_0 };
    int plans[3] = { PLAN_DENSE, PLAN_FIXED_BEYOND, PLAN_SINKS_SLOT };
    for (int i = 0; i < 3; i++)
        for (int p = 0; p < 3; p++) {
            run_spec r = { .kv_type = types[i], .plan = plans[p] };
            char what[64];
            snprintf(what, sizeof what, "kv type %d, plan %s", (int)types[i],
                     plan_names[plans[p]]);
            compare(&f, &r, 1e-4, what);
        }
    close_model(&f);
}

static float inv_freq[32];

static void yarn_like(st_posenc_desc *d, float scale, float temp, uint32_t hd)
{
    for (uint32_t i = 0; i < hd / 2; i++)
        inv_freq[i] = (float)pow(10000.0, -2.0 * i / hd) * (i < hd / 4 ? 0.25f : 1.0f);
    *d = (st_posenc_desc){ .struct_size = sizeof *d, .flags = ST_POSENC_ROTARY,
                           .inv_freq = inv_freq, .n_freq = hd / 2, .rotary_scale = scale,
                           .attn_temperature = temp };
}

/* Scale and temperature (YaRN), a position map, ALiBi slopes. */
Test(opencl_forward, positional_descriptions)
{
    model_fx f;
    open_model(&f, ST_GGML_F32, 64, 3, 1);
    st_posenc_desc yarn;
    yarn_like(&yarn, 1.2f, 1.1f, 64);
    int plans[3] = { PLAN_DENSE, PLAN_FIXED_BEYOND, PLAN_SINKS_SLOT };
    for (int p = 0; p < 3; p++) {
        run_spec r = { .kv_type = ST_KV_F16, .plan = plans[p], .posenc = &yarn };
        compare(&f, &r, 1e-4, plan_names[plans[p]]);
    }
    st_posenc_desc mapped = yarn;
    mapped.flags |= ST_POSENC_MAP;
    run_spec rm = { .kv_type = ST_KV_F32, .plan = PLAN_WINDOW, .posenc = &mapped, .map = true };
    compare(&f, &rm, 1e-4, "position map");
    float slopes[3] = { 0.5f, 0.25f, 0.125f };
    st_posenc_desc alibi = { .struct_size = sizeof alibi, .flags = ST_POSENC_SLOPES,
                             .rotary_scale = 1.0f, .attn_temperature = 1.0f, .slopes = slopes,
                             .n_slopes = 3 };
    run_spec ra = { .kv_type = ST_KV_F32, .plan = PLAN_DENSE, .posenc = &alibi };
    compare(&f, &ra, 1e-4, "alibi slopes");
    close_model(&f);
}

/* Compaction after `retain`, and a posenc change that re-rotates the
 * cache on the device. */
Test(opencl_forward, compaction_and_rerotation)
{
    model_fx f;
    open_model(&f, ST_GGML_F32, 64, 3, 1);
    for (int p = 0; p < 3; p++) {
        int plans[3] = { PLAN_DENSE, PLAN_SINKS_SLOT, PLAN_FIXED_BEYOND };
        run_spec r = { .kv_type = ST_KV_F16, .plan = plans[p], .compact = true };
        compare(&f, &r, 1e-4, "compacted");
    }
    st_posenc_desc yarn;
    yarn_like(&yarn, 1.0f, 1.0f, 64);
    run_spec r = { .kv_type = ST_KV_F32, .plan = PLAN_DENSE, .posenc_after = &yarn };
    compare(&f, &r, 1e-4, "re-rotated");
    close_model(&f);
}

/* What the host evaluates between the device's steps. */
Test(opencl_forward, host_attention_in_between)
{
    model_fx f;
    open_model(&f, ST_GGML_F32, 64, 3, 1);
    st_posenc_desc yarn;
    yarn_like(&yarn, 1.0f, 1.0f, 64);
    yarn.flags |= ST_POSENC_BIAS;
    run_spec rb = { .kv_type = ST_KV_F16, .plan = PLAN_DENSE, .posenc = &yarn, .bias = true };
    compare(&f, &rb, 1e-4, "bias callback");
    run_spec rq = { .kv_type = ST_KV_F16, .plan = PLAN_SINKS_SLOT, .want_qk = true,
                    .compact = true };
    compare(&f, &rq, 1e-4, "needs q/k");
    run_spec rw = { .kv_type = ST_KV_Q8_0, .plan = PLAN_FIXED_BEYOND, .want_weights = true };
    compare(&f, &rw, 1e-4, "weights");
    close_model(&f);
}

/* The baseline kernels (no cl_khr_fp16 path) give the same results. */
Test(opencl_forward, baseline_without_fp16)
{
    setenv("STRETCH_OPENCL_FP16", "off", 1);
    model_fx f;
    open_model(&f, ST_GGML_F32, 64, 3, 1);
    run_spec r = { .kv_type = ST_KV_F16, .plan = PLAN_SINKS_SLOT };
    compare(&f, &r, 1e-4, "baseline");
    close_model(&f);
    unsetenv("STRETCH_OPENCL_FP16");
}

/* ---- decode in the CPU's split order ------------------------------------
 *
 * A decode step (one query) on the CPU's tiled path is split along the
 * keys (attn_tiled.c: 256-key chunks, merged after with expf); ST_POS_TRUE
 * ranges of an f16 cache go through the fused f16 kernel (attn_decode_f16,
 * and a q8_0 cache's through the same kernel as attn_decode_q8_0:
 * scaled query, 8-lane sums (q8_0: integer block products against the
 * query in int8), its own exp polynomial, expf for the rescale, values
 * added in key order), the rest through the per-row kernels with
 * expf. The device follows each step (forward.cl attend_split), so after a
 * 300-token prefill (two chunks per decoded query) the decoded tokens'
 * logits must be the CPU's bits. The weights are float: nothing between
 * the layers rounds to int8, so an ulp of the attention reaches the logits
 * (with quantized weights the int8 rounding hides most: a device that
 * skipped the fused kernel, or used OpenCL's exp, passed 0 on Q4_1 and
 * Q8_0 models, and fails here by 3e-8 to 1.3e-7). Exact needs the CPU's
 * AVX2 kernels and glibc's expf (forward.cl's cpu_expf reproduces it);
 * elsewhere the float bound of the top, 1e-4. */
static void decode_case(const model_fx *f, st_kv_type kv, int plan, const st_posenc_desc *pe,
                        const char *what)
{
    run_spec r = { .kv_type = kv, .plan = plan, .posenc = pe, .n_prefill = 300,
                   .n_decode = 3 };
    compare(f, &r, exact_bound(), what);
}

/* GQA 3, head size 64 (SmolLM2's shape): the fused kernel on f16 and
 * q8_0 caches; the per-row kernels on an f32 cache, for a FIXED range
 * (unrotated f32 keys), and with ALiBi slopes. */
Test(opencl_forward, decode_split_exact_hd64)
{
    model_fx f;
    open_model(&f, ST_GGML_F32, 64, 3, 1);
    decode_case(&f, ST_KV_F16, PLAN_DENSE, NULL, "decode, f16 cache, dense (fused)");
    decode_case(&f, ST_KV_F16, PLAN_NO_SELF, NULL, "decode, f16 cache, min distance 1");
    decode_case(&f, ST_KV_F16, PLAN_FIXED_BEYOND, NULL,
                "decode, f16 cache, true near + fixed far (fused + per-row)");
    decode_case(&f, ST_KV_F32, PLAN_DENSE, NULL, "decode, f32 cache (per-row)");
    decode_case(&f, ST_KV_Q8_0, PLAN_DENSE, NULL, "decode, q8_0 cache (fused)");
    decode_case(&f, ST_KV_Q8_0, PLAN_FIXED_BEYOND, NULL,
                "decode, q8_0 cache, true near + fixed far (fused + per-row)");
    float slopes[3] = { 0.5f, 0.25f, 0.125f };
    st_posenc_desc alibi = { .struct_size = sizeof alibi, .flags = ST_POSENC_SLOPES,
                             .rotary_scale = 1.0f, .attn_temperature = 1.0f, .slopes = slopes,
                             .n_slopes = 3 };
    decode_case(&f, ST_KV_F16, PLAN_DENSE, &alibi, "decode, f16 cache, alibi (per-row)");
    close_model(&f);
}

/* Head size 128 and GQA 8: the fused kernel's 16-dim blocks of 8 heads. */
Test(opencl_forward, decode_split_exact_hd128_gqa8)
{
    model_fx f;
    open_model(&f, ST_GGML_F16, 128, 8, 1);
    decode_case(&f, ST_KV_F16, PLAN_DENSE, NULL, "decode hd 128, 8/1 heads, f16 cache (fused)");
    close_model(&f);
}

/* forward.cl's cpu_expf against this process's expf, bit for bit: every
 * 389th float (by bit pattern) from -110 to 90, which spans the underflow
 * and overflow edges, and the special values. */
#ifdef __GLIBC__
Test(opencl_forward, cpu_expf_is_glibc_expf)
{
    st_cl_ctx c;
    st_cl_test_open(&c, cache);
    char ext[8192] = "";
    clGetDeviceInfo(c.dev.id, CL_DEVICE_EXTENSIONS, sizeof ext - 1, ext, NULL);
    if (!strstr(ext, "cl_khr_fp64")) {
        st_cl_ctx_close(&c);
        cr_skip_test("no cl_khr_fp64: cpu_expf is OpenCL's exp there");
    }
    const st_cl_source *fw = st_cl_source_find("forward.cl");
    cr_assert(fw);
    static const char probe[] =
        "\nkernel void expf_probe(global const float *x, global float *y, uint n)\n"
        "{ uint i = get_global_id(0); if (i < n) y[i] = cpu_expf(x[i]); }\n";
    size_t len = fw->len + sizeof probe;
    char *src = malloc(len);
    memcpy(src, fw->text, fw->len);
    memcpy(src + fw->len, probe, sizeof probe);
    char opts[64];
    snprintf(opts, sizeof opts, "-DACT_BYTES=%zu -DHD=64", sizeof(st_act_block));
    cl_program p;
    st_diag d;
    cr_assert_eq(st_cl_program_build(&c, "forward.cl+expf_probe", src, len - 1, opts, &p, &d),
                 ST_OK, "%s", d.message);
    free(src);
    size_t cap = 1u << 23, n = 0;
    float *x = malloc(cap * sizeof *x), *y = malloc(cap * sizeof *y);
    union { float f; uint32_t u; } a;
    for (a.f = -110.0f; a.f < 0.0f && n < cap; a.u -= 389)
        x[n++] = a.f;
    for (a.f = 0.0f; a.f < 90.0f && n < cap; a.u += 389)
        x[n++] = a.f;
    const float special[] = { -INFINITY, INFINITY, NAN, -0.0f, 0x1.62e42ep6f, 0x1.62e430p6f,
                              -0x1.9fe368p6f, -0x1.9fe36ap6f, -0x1.9d1d9ep6f, -0x1.9d1da0p6f,
                              -88.0f, 88.0f, -87.99999f, 1e-30f, -1e-30f };
    for (size_t i = 0; i < sizeof special / sizeof *special && n < cap; i++)
        x[n++] = special[i];
    cl_int rc;
    cl_kernel k = clCreateKernel(p, "expf_probe", &rc);
    cr_assert_eq(rc, CL_SUCCESS);
    cl_mem bx = clCreateBuffer(c.ctx, CL_MEM_COPY_HOST_PTR, n * sizeof *x, x, &rc);
    cl_mem by = clCreateBuffer(c.ctx, CL_MEM_WRITE_ONLY, n * sizeof *y, NULL, &rc);
    cl_uint nn = (cl_uint)n;
    clSetKernelArg(k, 0, sizeof bx, &bx);
    clSetKernelArg(k, 1, sizeof by, &by);
    clSetKernelArg(k, 2, sizeof nn, &nn);
    size_t g = n;
    cr_assert_eq(clEnqueueNDRangeKernel(c.queue, k, 1, NULL, &g, NULL, 0, NULL, NULL), CL_SUCCESS);
    cr_assert_eq(clEnqueueReadBuffer(c.queue, by, CL_TRUE, 0, n * sizeof *y, y, 0, NULL, NULL),
                 CL_SUCCESS);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float e = expf(x[i]);
        bool same = isnan(e) ? isnan(y[i]) : memcmp(&e, &y[i], sizeof e) == 0;
        if (!same && bad++ < 5)
            cr_log_error("expf(%a): device %a, host %a", (double)x[i], (double)y[i], (double)e);
    }
    cr_log_info("cpu_expf: %zu of %zu values differ from expf", bad, n);
    cr_expect_eq(bad, 0, "cpu_expf differs from expf on %zu of %zu values", bad, n);
    clReleaseMemObject(bx);
    clReleaseMemObject(by);
    clReleaseKernel(k);
    clReleaseProgram(p);
    free(x);
    free(y);
    st_cl_ctx_close(&c);
}
#endif
