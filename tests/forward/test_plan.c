/* Attention plans evaluated by the forward pass against the reference with
 * the equivalent explicit mask and rotation: sliding windows, fixed
 * distances, slot positions, index lists, empty visibility, bias,
 * position maps, temperature, KV compaction, plan errors and the
 * attention-weights observer. F32 weights throughout, so the comparison
 * is float against float and the bound is tight. */
#include "fwd_fixture.h"

#define TOL 1e-4
#define N 12

static void open_f32(fwd_fixture *f)
{
    fx_open(f, ST_GGML_F32, ST_GGML_F32);
}

/* A plan callback driven by a table of ranges (slots relative to the block
 * where noted), plus optional index lists. */
typedef struct plan_spec {
    int kind;
    int32_t window;
    int32_t fixed;
} plan_spec;

enum { PLAN_WINDOW, PLAN_FIXED_BEYOND, PLAN_SINKS_SLOT, PLAN_SPLIT, PLAN_NO_SELF, PLAN_BAD };

static st_status plan_cb(void *user, const st_attn_query *q, const st_attn_plan_builder *b,
                         st_error *err)
{
    const plan_spec *p = user;
    uint32_t ns = q->kv->n_slots;
    switch (p->kind) {
    case PLAN_WINDOW: {
        st_attn_range r = { ST_ALL_HEADS, 0, ns, 0, p->window - 1, ST_POS_TRUE, 0 };
        return b->add_range(b->host, &r);
    }
    case PLAN_FIXED_BEYOND: { /* ReRoPE-like: true inside the window, fixed beyond */
        st_attn_range r1 = { ST_ALL_HEADS, 0, ns, 0, p->window - 1, ST_POS_TRUE, 0 };
        st_attn_range r2 = { ST_ALL_HEADS, 0, ns, p->window, ST_DIST_MAX, ST_POS_FIXED,
                              p->fixed };
        st_status s = b->add_range(b->host, &r1);
        return s ? s : b->add_range(b->host, &r2);
    }
    case PLAN_SINKS_SLOT: { /* streaming: 2 sinks + the last 4 slots, slot positions */
        uint32_t sinks[2] = { 0, 1 };
        st_attn_range shape = { ST_ALL_HEADS, 0, 0, 0, ST_DIST_MAX, ST_POS_SLOT, 0 };
        uint32_t lo = ns > 4 ? ns - 4 : 0;
        if (lo < 2)
            lo = 2;
        st_status s = ns > 2 ? b->add_indices(b->host, sinks, 2, &shape)
                             : b->add_indices(b->host, sinks, ns, &shape);
        if (s || lo >= ns)
            return s;
        st_attn_range r = { ST_ALL_HEADS, lo, ns, 0, ST_DIST_MAX, ST_POS_SLOT, 0 };
        return b->add_range(b->host, &r);
    }
    case PLAN_SPLIT: { /* dense causal as two ranges, and per-head copies for head 0 */
        uint32_t mid = ns / 2;
        for (uint32_t h = 0; h < q->n_heads; h++) {
            st_attn_range a = { h, 0, mid, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
            st_attn_range c = { h, mid, ns, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
            st_status s = b->add_range(b->host, &a);
            if (!s)
                s = b->add_range(b->host, &c);
            if (s)
                return s;
        }
        return ST_OK;
    }
    case PLAN_NO_SELF: {
        st_attn_range r = { ST_ALL_HEADS, 0, ns, 1, ST_DIST_MAX, ST_POS_TRUE, 0 };
        return b->add_range(b->host, &r);
    }
    case PLAN_BAD: {
        st_attn_range r = { ST_ALL_HEADS, 0, ns + 1, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
        return b->add_range(b->host, &r);
    }
    }
    snprintf(err->message, sizeof err->message, "unknown plan");
    return ST_E_INVALID;
}

/* Reference rules matching the plans (decode: one query per block). */
static bool rule_window(void *u, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                        double *rk)
{
    const plan_spec *p = u;
    *rq = pos[qi];
    *rk = pos[ki];
    return ki <= qi && pos[qi] - pos[ki] <= p->window - 1;
}

static bool rule_fixed(void *u, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                       double *rk)
{
    const plan_spec *p = u;
    if (ki > qi)
        return false;
    if (pos[qi] - pos[ki] < p->window) {
        *rq = pos[qi];
        *rk = pos[ki];
    } else {
        *rq = p->fixed;
        *rk = 0;
    }
    return true;
}

static bool rule_sinks_slot(void *u, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                            double *rk)
{
    (void)u; (void)pos;
    *rq = qi; /* slot == index: nothing is compacted */
    *rk = ki;
    uint32_t ns = qi + 1, lo = ns > 4 ? ns - 4 : 0;
    return ki <= qi && (ki < 2 || ki >= lo);
}

static bool rule_no_self(void *u, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                         double *rk)
{
    (void)u;
    *rq = pos[qi];
    *rk = pos[ki];
    return ki < qi;
}

/* Our decode (block 1) or prefill (block N) against the reference. */
static void compare(plan_spec *p, st_ref_rule_fn rule, size_t block, bool spaced_pos)
{
    fwd_fixture f;
    open_f32(&f);
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 5);
    if (spaced_pos)
        for (int i = 0; i < N; i++)
            pos[i] = 3 * i + 5;
    float *ours = malloc((size_t)N * f.V * sizeof(float)), *ref = malloc((size_t)N * f.V * sizeof(float));
    for (uint32_t th = 1; th <= 2; th++) {
        fx_run r = { .threads = th, .block = block, .plan = plan_cb, .plan_user = p };
        fx_forward(&f, &r, tok, pos, N, ours);
        st_ref_opts o = { .quantize_acts = true, .rule = rule, .user = p };
        st_ref_forward(f.ref, tok, pos, N, &o, ref);
        double d = fx_rel_diff(ours, ref, (size_t)N * f.V);
        cr_assert_lt(d, TOL, "plan %d block %zu threads %u: %g", p->kind, block, th, d);
        /* The plan must matter: dense causal attention differs. */
        st_ref_forward(f.ref, tok, pos, N, &(st_ref_opts){ .quantize_acts = true }, ref);
        if (p->kind != PLAN_SPLIT)
            cr_assert_gt(fx_rel_diff(ours, ref, (size_t)N * f.V), 100 * TOL);
    }
    free(ours);
    free(ref);
    fx_close(&f);
}

Test(forward_plan, sliding_window)
{
    plan_spec p = { PLAN_WINDOW, 4, 0 };
    compare(&p, rule_window, 1, false);
    compare(&p, rule_window, N, false);
}

Test(forward_plan, fixed_distance_beyond_window)
{
    plan_spec p = { PLAN_FIXED_BEYOND, 3, 3 };
    compare(&p, rule_fixed, 1, true);
    compare(&p, rule_fixed, N, true);
}

Test(forward_plan, sinks_and_recent_at_slot_positions)
{
    plan_spec p = { PLAN_SINKS_SLOT, 0, 0 };
    compare(&p, rule_sinks_slot, 1, true);
}

Test(forward_plan, split_ranges_per_head_equal_dense)
{
    plan_spec p = { PLAN_SPLIT, 0, 0 };
    compare(&p, NULL, 1, false);
    compare(&p, NULL, N, false);
}

Test(forward_plan, query_seeing_nothing_gets_zeros)
{
    plan_spec p = { PLAN_NO_SELF, 0, 0 };
    compare(&p, rule_no_self, N, false);
    compare(&p, rule_no_self, 1, false);
}

Test(forward_plan, bad_plan_is_refused_and_cache_kept)
{
    fwd_fixture f;
    open_f32(&f);
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f.m->hp.n_layers, f.m->hp.n_kv_heads, f.m->hp.head_dim, 8,
                                    ST_KV_F32, &kv, &d), ST_OK);
    plan_spec p = { PLAN_BAD, 0, 0 };
    st_forward_config cfg = { .model = f.m, .kv = kv, .plan = plan_cb, .plan_user = &p };
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK);
    int32_t tok[2] = { 4, 5 }, pos[2] = { 0, 1 };
    float *lg = malloc(f.V * sizeof(float));
    cr_assert_eq(st_forward(ctx, tok, pos, 2, lg, 0, &d), ST_E_INVALID);
    cr_assert(strstr(d.message, "attention plan (layer 0)"), "%s", d.message);
    cr_assert(strstr(d.message, "outside the 2 slots"), "%s", d.message);
    cr_assert_eq(kv->n_slots, 0);
    free(lg);
    st_forward_ctx_free(ctx);
    st_kv_cache_free(kv);
    fx_close(&f);
}

/* Posenc description: custom frequencies, rotary scale, temperature, a
 * position map (halve) and an ALiBi-like bias. */
static float freqs[8];
static st_status map_half(void *inst, const int32_t *in, size_t n, int32_t *out, st_error *err)
{
    (void)inst; (void)err;
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] / 2;
    return ST_OK;
}

static st_status alibi(void *inst, uint32_t head, const int32_t *qp, size_t nq, const int32_t *kp,
                       size_t nk, float *out, st_error *err)
{
    (void)inst; (void)err;
    for (size_t i = 0; i < nq; i++)
        for (size_t j = 0; j < nk; j++)
            out[i * nk + j] = -0.25f * (float)(head + 1) * (float)(qp[i] - kp[j]);
    return ST_OK;
}

static bool rule_half(void *u, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                      double *rk)
{
    (void)u;
    *rq = pos[qi] / 2;
    *rk = pos[ki] / 2;
    return ki <= qi;
}

static float ref_alibi(void *u, uint32_t head, double rq, double rk)
{
    (void)u;
    return -0.25f * (float)(head + 1) * (float)(rq - rk);
}

Test(forward_plan, posenc_map_bias_scale_temperature)
{
    fwd_fixture f;
    open_f32(&f);
    for (int i = 0; i < 8; i++)
        freqs[i] = (float)pow(500.0, -2.0 * i / 16.0);
    st_posenc_desc desc = {.struct_size = sizeof desc,
                           .flags = ST_POSENC_ROTARY | ST_POSENC_MAP | ST_POSENC_BIAS,
                           .inv_freq = freqs, .n_freq = 8, .rotary_scale = 1.15f,
                           .attn_temperature = 0.8f};
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 9);
    float *ours = malloc((size_t)N * f.V * sizeof(float)), *ref = malloc((size_t)N * f.V * sizeof(float));
    for (size_t block = 1; block <= N; block += N - 1) {
        fx_run r = { .threads = 2, .block = block, .posenc = &desc, .map_positions = map_half,
                     .bias = alibi };
        fx_forward(&f, &r, tok, pos, N, ours);
        st_ref_opts o = { .quantize_acts = true, .inv_freq = freqs, .n_freq = 8,
                          .rotary_scale = 1.15f, .attn_temperature = 0.8f, .rule = rule_half,
                          .bias = ref_alibi };
        st_ref_forward(f.ref, tok, pos, N, &o, ref);
        double d = fx_rel_diff(ours, ref, (size_t)N * f.V);
        cr_assert_lt(d, TOL, "block %zu: %g", block, d);
    }
    free(ours);
    free(ref);
    fx_close(&f);
}

/* ALiBi as data (ABI 1.2): the same bias given as per-head slopes, with no
 * callback, against the same reference. */
Test(forward_plan, posenc_slopes_as_data)
{
    fwd_fixture f;
    open_f32(&f);
    for (int i = 0; i < 8; i++)
        freqs[i] = (float)pow(500.0, -2.0 * i / 16.0);
    uint32_t H = f.m->hp.n_heads;
    float *slopes = malloc(H * sizeof *slopes);
    for (uint32_t h = 0; h < H; h++)
        slopes[h] = 0.25f * (float)(h + 1);
    st_posenc_desc desc = {.struct_size = sizeof desc,
                           .flags = ST_POSENC_ROTARY | ST_POSENC_MAP | ST_POSENC_SLOPES,
                           .inv_freq = freqs, .n_freq = 8, .rotary_scale = 1.15f,
                           .attn_temperature = 0.8f, .slopes = slopes, .n_slopes = H};
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 9);
    float *ours = malloc((size_t)N * f.V * sizeof(float)), *ref = malloc((size_t)N * f.V * sizeof(float));
    for (size_t block = 1; block <= N; block += N - 1) {
        fx_run r = { .threads = 2, .block = block, .posenc = &desc, .map_positions = map_half };
        fx_forward(&f, &r, tok, pos, N, ours);
        st_ref_opts o = { .quantize_acts = true, .inv_freq = freqs, .n_freq = 8,
                          .rotary_scale = 1.15f, .attn_temperature = 0.8f, .rule = rule_half,
                          .bias = ref_alibi };
        st_ref_forward(f.ref, tok, pos, N, &o, ref);
        double d = fx_rel_diff(ours, ref, (size_t)N * f.V);
        cr_assert_lt(d, TOL, "block %zu: %g", block, d);
    }
    free(slopes);
    free(ours);
    free(ref);
    fx_close(&f);
}

/* Without a position map the slopes run on the tile kernels (a 12-query
 * block) and the split decode path (one query), on every ISA this CPU has:
 * they must match the reference and the gather path. */
Test(forward_plan, posenc_slopes_on_the_tiled_path)
{
    fwd_fixture f;
    open_f32(&f);
    for (int i = 0; i < 8; i++)
        freqs[i] = (float)pow(500.0, -2.0 * i / 16.0);
    uint32_t H = f.m->hp.n_heads;
    float *slopes = malloc(H * sizeof *slopes);
    for (uint32_t h = 0; h < H; h++)
        slopes[h] = 0.25f * (float)(h + 1);
    st_posenc_desc desc = {.struct_size = sizeof desc,
                           .flags = ST_POSENC_ROTARY | ST_POSENC_SLOPES, .inv_freq = freqs,
                           .n_freq = 8, .rotary_scale = 1.0f, .attn_temperature = 1.0f,
                           .slopes = slopes, .n_slopes = H};
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 5);
    size_t nl = (size_t)N * f.V;
    float *ours = malloc(nl * sizeof(float)), *gather = malloc(nl * sizeof(float)),
          *ref = malloc(nl * sizeof(float));
    st_ref_opts o = { .quantize_acts = true, .inv_freq = freqs, .n_freq = 8,
                      .rotary_scale = 1.0f, .attn_temperature = 1.0f, .bias = ref_alibi };
    st_ref_forward(f.ref, tok, pos, N, &o, ref);
    const char *isas[] = {"scalar", "avx2", "avx512"};
    for (size_t k = 0; k < 3; k++)
        for (size_t block = 1; block <= N; block += N - 1) {
            fx_run r = { .isa = isas[k], .threads = 2, .block = block, .posenc = &desc };
            fx_forward(&f, &r, tok, pos, N, ours);
            setenv("STRETCH_ATTN", "gather", 1);
            fx_forward(&f, &r, tok, pos, N, gather);
            unsetenv("STRETCH_ATTN");
            double d = fx_rel_diff(ours, ref, nl), dg = fx_rel_diff(ours, gather, nl);
            cr_assert_lt(d, TOL, "%s block %zu: %g", isas[k], block, d);
            cr_assert_lt(dg, TOL, "%s block %zu against gather: %g", isas[k], block, dg);
        }
    free(slopes);
    free(ours);
    free(gather);
    free(ref);
    fx_close(&f);
}

/* Dropping slots: the next query attends to what is left, at true positions. */
static bool rule_dropped(void *u, uint32_t qi, uint32_t ki, const int32_t *pos, double *rq,
                         double *rk)
{
    (void)u;
    *rq = pos[qi];
    *rk = pos[ki];
    if (qi == N - 1)
        return ki <= qi && !(ki >= 2 && ki <= 5);
    return ki <= qi;
}

Test(forward_plan, compaction_then_dense)
{
    fwd_fixture f;
    open_f32(&f);
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f.m->hp.n_layers, f.m->hp.n_kv_heads, f.m->hp.head_dim, N,
                                    ST_KV_F32, &kv, &d), ST_OK);
    st_threadpool *pool;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    st_forward_config cfg = { .model = f.m, .kv = kv, .pool = pool, .want_weights = true,
                              .weights_layer = -1 };
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK);
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 11);
    float *lg = malloc(f.V * sizeof(float)), *ref = malloc((size_t)N * f.V * sizeof(float));
    cr_assert_eq(st_forward(ctx, tok, pos, N - 1, lg, 0, &d), ST_OK);
    uint8_t keep[N];
    for (int i = 0; i < N - 1; i++)
        keep[i] = !(i >= 2 && i <= 5);
    st_kv_cache_compact(kv, keep);
    cr_assert_eq(kv->n_slots, N - 1 - 4);
    cr_assert_eq(kv->pos[2], 6);
    cr_assert_eq(kv->tokens[2], tok[6]);
    cr_assert_eq(st_forward(ctx, &tok[N - 1], &pos[N - 1], 1, lg, 0, &d), ST_OK);
    st_ref_opts o = { .quantize_acts = true, .rule = rule_dropped };
    st_ref_forward(f.ref, tok, pos, N, &o, ref);
    double diff = fx_rel_diff(lg, ref + (size_t)(N - 1) * f.V, f.V);
    cr_assert_lt(diff, TOL, "%g", diff);
    /* The observer: weights of the last layer sum to n_heads per query. */
    uint32_t nq, ns;
    const float *w = st_forward_weights(ctx, &nq, &ns);
    cr_assert_not_null(w);
    cr_assert_eq(nq, 1);
    cr_assert_eq(ns, kv->n_slots);
    double sum = 0;
    for (uint32_t j = 0; j < ns; j++) {
        cr_assert_geq(w[j], 0.0f);
        sum += w[j];
    }
    cr_assert_float_eq(sum, (double)f.m->hp.n_heads, 1e-4);
    st_kv_cache_reset(kv);
    cr_assert_eq(kv->n_slots, 0);
    free(lg);
    free(ref);
    st_forward_ctx_free(ctx);
    st_threadpool_destroy(pool);
    st_kv_cache_free(kv);
    fx_close(&f);
}

/* set_posenc re-rotates cached keys: with one layer, cached keys depend
 * only on the embeddings, so after switching the description the next
 * query must equal a reference that used the new one throughout. */
Test(forward_plan, set_posenc_rerotates_cache)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.embd_type = ST_GGML_F32;
    spec.n_vocab = 300;
    spec.n_layers = 1;
    fwd_fixture f;
    fx_open_spec(&f, &spec);
    for (int i = 0; i < 8; i++)
        freqs[i] = 1.0f + 0.3f * (float)i;
    st_posenc_desc desc = {.struct_size = sizeof desc, .flags = ST_POSENC_ROTARY,
                           .inv_freq = freqs, .n_freq = 8, .rotary_scale = 1.0f,
                           .attn_temperature = 1.0f};
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f.m->hp.n_layers, f.m->hp.n_kv_heads, f.m->hp.head_dim, N,
                                    ST_KV_F32, &kv, &d), ST_OK);
    st_forward_config cfg = { .model = f.m, .kv = kv };
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK);
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 13);
    float *lg = malloc(f.V * sizeof(float)), *ref = malloc((size_t)N * f.V * sizeof(float));
    cr_assert_eq(st_forward(ctx, tok, pos, N - 1, lg, 0, &d), ST_OK);
    cr_assert_eq(st_forward_set_posenc(ctx, &desc, &d), ST_OK);
    cr_assert_eq(st_forward(ctx, &tok[N - 1], &pos[N - 1], 1, lg, 0, &d), ST_OK);
    st_ref_opts now = { .quantize_acts = true, .inv_freq = freqs, .n_freq = 8 };
    st_ref_forward(f.ref, tok, pos, N, &now, ref);
    double diff = fx_rel_diff(lg, ref + (size_t)(N - 1) * f.V, f.V);
    cr_assert_lt(diff, TOL, "%g", diff);
    st_ref_opts old = { .quantize_acts = true };
    st_ref_forward(f.ref, tok, pos, N, &old, ref);
    cr_assert_gt(fx_rel_diff(lg, ref + (size_t)(N - 1) * f.V, f.V), 100 * TOL);
    free(lg);
    free(ref);
    st_forward_ctx_free(ctx);
    st_kv_cache_free(kv);
    fx_close(&f);
}
