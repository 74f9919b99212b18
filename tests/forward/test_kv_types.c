/* The KV cache's element types (kv_cache.h): sizes, names, compaction of
 * the head-major rows, and whole forward passes on f16 and q8_0 caches
 * against the f32 cache (itself checked against the reference in
 * test_plan.c) for every position mode; keys handed to an
 * ST_ATTN_NEEDS_QK plan are the cache's keys unrotated; the ggml numerics
 * mode gives the same bits on an f16 cache as on a (rounded) f32 one. */
#include "fwd_fixture.h"
#include "kv_cache.h"
#include "cpu/ops.h"

#define N 40

Test(kv_cache, types_names_and_sizes)
{
    st_kv_type t;
    cr_assert(st_kv_type_parse("f16", &t) && t == ST_KV_F16);
    cr_assert(st_kv_type_parse("q8_0", &t) && t == ST_KV_Q8_0);
    cr_assert(st_kv_type_parse("f32", &t) && t == ST_KV_F32);
    cr_assert(!st_kv_type_parse("F16", &t) && !st_kv_type_parse("q4_0", &t) &&
              !st_kv_type_parse(NULL, &t));
    cr_assert_str_eq(st_kv_type_name(ST_KV_Q8_0), "q8_0");
    st_diag d;
    st_kv_cache *kv;
    size_t want[3] = { 64 * 4, 64 * 2, 2 * 34 };
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(st_kv_cache_create(30, 3, 64, 10, (st_kv_type)i, &kv, &d), ST_OK);
        cr_assert_eq(kv->row_bytes, want[i]);
        /* SmolLM2-135M: 30 layers x 3 kv heads x (K and V). */
        cr_assert_eq(st_kv_bytes_per_token(kv), 2 * 30 * 3 * want[i]);
        st_kv_cache_free(kv);
    }
    cr_assert_eq(st_kv_cache_create(2, 2, 16, 10, ST_KV_Q8_0, &kv, &d), ST_E_INVALID);
    cr_assert(strstr(d.message, "multiple of 32"), "%s", d.message);
}

Test(kv_cache, compaction_moves_every_heads_rows)
{
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(2, 3, 32, 8, ST_KV_Q8_0, &kv, &d), ST_OK);
    float row[32], back[32];
    for (uint32_t j = 0; j < 8; j++) {
        kv->pos[j] = (int32_t)j;
        for (uint32_t l = 0; l < 2; l++)
            for (uint32_t h = 0; h < 3; h++) {
                for (int i = 0; i < 32; i++)
                    row[i] = (float)(100 * j + 10 * h + l) + (float)i / 64.0f;
                st_kv_store_row(kv->type, row, st_kv_at(kv, l, kv->k[l], h, j), 32);
                row[0] = -row[0];
                st_kv_store_row(kv->type, row, st_kv_at(kv, l, kv->v[l], h, j), 32);
            }
    }
    kv->n_slots = 8;
    uint8_t keep[8] = { 1, 0, 0, 1, 1, 0, 1, 0 };
    st_kv_cache_compact(kv, keep);
    cr_assert_eq(kv->n_slots, 4);
    const uint32_t src[4] = { 0, 3, 4, 6 };
    for (uint32_t j = 0; j < 4; j++) {
        cr_assert_eq(kv->pos[j], (int32_t)src[j]);
        for (uint32_t l = 0; l < 2; l++)
            for (uint32_t h = 0; h < 3; h++) {
                float want = (float)(100 * src[j] + 10 * h + l);
                st_kv_load_row(kv->type, st_kv_at(kv, l, kv->k[l], h, j), back, 32);
                cr_assert_float_eq(back[0], want, 0.01f * want + 0.01f);
                st_kv_load_row(kv->type, st_kv_at(kv, l, kv->v[l], h, j), back, 32);
                cr_assert_float_eq(back[0], -want, 0.01f * want + 0.01f);
            }
    }
    st_kv_cache_free(kv);
}

/* A model whose head size (32) allows q8_0. */
static void open_hd32(fwd_fixture *f)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = ST_GGML_F32;
    spec.embd_type = ST_GGML_F32;
    spec.n_vocab = 300;
    spec.n_embd = 128;
    spec.n_heads = 4;
    spec.n_kv_heads = 2;
    fx_open_spec(f, &spec);
}

enum { P_DENSE, P_GLOBAL_LOCAL, P_SLOT, P_COUNT };

/* Dense; LM-Infinite (4 starting keys as an index list and a range at a
 * fixed distance beyond a window of 6); streaming (2 sinks + the last 5
 * slots at slot positions). */
static st_status plan_cb(void *user, const st_attn_query *q, const st_attn_plan_builder *b,
                         st_error *err)
{
    (void)err;
    int kind = *(const int *)user;
    uint32_t ns = q->kv->n_slots;
    if (kind == P_DENSE) {
        st_attn_range r = { ST_ALL_HEADS, 0, ns, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
        return b->add_range(b->host, &r);
    }
    if (kind == P_GLOBAL_LOCAL) {
        uint32_t g = ns < 4 ? ns : 4, idx[4] = { 0, 1, 2, 3 };
        st_attn_range loc = { ST_ALL_HEADS, 0, ns, 0, 5, ST_POS_TRUE, 0 };
        st_attn_range glob = { ST_ALL_HEADS, 0, 0, 6, ST_DIST_MAX, ST_POS_FIXED, 6 };
        st_attn_range rest = { ST_ALL_HEADS, g, ns, 6, ST_DIST_MAX, ST_POS_FIXED, 7 };
        st_status s = b->add_range(b->host, &loc);
        if (!s)
            s = b->add_indices(b->host, idx, g, &glob);
        return s || g >= ns ? s : b->add_range(b->host, &rest);
    }
    uint32_t lo = ns > 5 ? ns - 5 : 0;
    lo = lo < 2 ? (ns < 2 ? ns : 2) : lo;
    st_attn_range sinks = { ST_ALL_HEADS, 0, ns < 2 ? ns : 2, 0, ST_DIST_MAX, ST_POS_SLOT, 0 };
    st_attn_range win = { ST_ALL_HEADS, lo, ns, 0, ST_DIST_MAX, ST_POS_SLOT, 0 };
    st_status s = b->add_range(b->host, &sinks);
    return s || lo >= ns ? s : b->add_range(b->host, &win);
}

Test(kv_types, every_type_and_position_mode_follows_f32)
{
    fwd_fixture f;
    open_hd32(&f);
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 7);
    for (int i = 0; i < N; i++)
        pos[i] = 2 * i + 3; /* gaps: slot and true distances differ */
    size_t n = (size_t)N * f.V;
    float *ref = malloc(n * sizeof(float)), *got = malloc(n * sizeof(float));
    /* Relative error of the logits: f16 keeps 11 bits, q8_0 about 8. */
    const double tol[ST_KV_TYPE_COUNT] = { 1e-5, 3e-3, 3e-2 };
    for (int kind = 0; kind < P_COUNT; kind++)
        for (size_t block = 1; block <= N; block += N - 1)
            for (const char *isa = "scalar"; isa; isa = isa[0] == 's' ? "avx2" : NULL) {
                fx_run r = { .isa = isa, .threads = 2, .block = block, .plan = plan_cb,
                             .plan_user = &kind, .kv_type = ST_KV_F32 };
                fx_forward(&f, &r, tok, pos, N, ref);
                for (int t = ST_KV_F16; t < ST_KV_TYPE_COUNT; t++) {
                    r.kv_type = (st_kv_type)t;
                    fx_forward(&f, &r, tok, pos, N, got);
                    double e = fx_rel_diff(got, ref, n);
                    cr_assert_lt(e, tol[t], "plan %d block %zu %s kv %s: %g", kind, block, isa,
                                 st_kv_type_name((st_kv_type)t), e);
                    cr_assert_gt(e, 0.0, "the type must be used");
                }
            }
    free(ref);
    free(got);
    fx_close(&f);
}

/* q->k for an ST_ATTN_NEEDS_QK plan: unrotated float keys, so rotating
 * them at their rotation position gives back the cache's keys. */
typedef struct qk_check {
    const st_kv_cache *kv;
    const st_model_hparams *hp;
    double worst;
    uint32_t calls;
} qk_check;

static st_status plan_qk(void *user, const st_attn_query *q, const st_attn_plan_builder *b,
                         st_error *err)
{
    (void)err;
    qk_check *c = user;
    cr_assert_not_null(q->k);
    uint32_t hd = q->head_dim, nf = c->hp->rope_dims / 2;
    float inv[64], cs[64], sn[64], rot[128], cached[128];
    st_forward_default_inv_freq(c->hp, inv);
    for (uint32_t j = 0; j < q->kv->n_slots; j++) {
        st_op_rope_table(cs, sn, (double)c->kv->rot_pos[j], inv, nf, 1.0f);
        for (uint32_t h = 0; h < q->n_kv_heads; h++) {
            st_op_rope(rot, q->k + ((size_t)j * q->n_kv_heads + h) * hd, cs, sn, nf, hd);
            st_kv_key_load(c->kv, q->layer, c->kv->k[q->layer], h, j, cached);
            for (uint32_t i = 0; i < hd; i++) {
                double e = fabs((double)rot[i] - cached[i]) / (fabs(cached[i]) + 0.1);
                c->worst = e > c->worst ? e : c->worst;
            }
        }
    }
    c->calls++;
    st_attn_range r = { ST_ALL_HEADS, 0, q->kv->n_slots, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
    return b->add_range(b->host, &r);
}

Test(kv_types, needs_qk_gets_unrotated_float_keys)
{
    fwd_fixture f;
    open_hd32(&f);
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 9);
    float *lg = malloc((size_t)N * f.V * sizeof(float));
    for (int t = 0; t < ST_KV_TYPE_COUNT; t++) {
        /* fx_forward makes its own cache: read it through a plan that
         * sees the engine's cache pointer via st_kv_view's arrays. */
        st_diag d;
        st_kv_cache *kv;
        cr_assert_eq(st_kv_cache_create(f.m->hp.n_layers, f.m->hp.n_kv_heads, f.m->hp.head_dim,
                                        N, (st_kv_type)t, &kv, &d), ST_OK);
        qk_check c = { .kv = kv, .hp = &f.m->hp };
        st_forward_config cfg = { .model = f.m, .kv = kv, .plan = plan_qk, .plan_user = &c,
                                  .want_qk = true };
        st_forward_ctx *ctx;
        cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK);
        cr_assert_eq(st_forward(ctx, tok, pos, N / 2, lg, 0, &d), ST_OK, "%s", d.message);
        for (int i = N / 2; i < N; i++)
            cr_assert_eq(st_forward(ctx, &tok[i], &pos[i], 1, lg, 0, &d), ST_OK);
        cr_assert_gt(c.calls, 0);
        cr_assert_lt(c.worst, 1e-5, "kv %s: %g", st_kv_type_name((st_kv_type)t), c.worst);
        st_forward_ctx_free(ctx);
        st_kv_cache_free(kv);
    }
    free(lg);
    fx_close(&f);
}

/* llama.cpp's cache is f16: in the ggml numerics mode an f16 cache is
 * read as it is, and gives the bits the f32 cache (rounded to f16 on the
 * way in) gives, prefill and decode. */
Test(kv_types, ggml_numerics_f16_cache_is_bit_exact)
{
    setenv("STRETCH_NUMERICS", "ggml", 1);
    fwd_fixture f;
    open_hd32(&f);
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 3);
    size_t n = (size_t)N * f.V;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    for (size_t block = 1; block <= N; block += N - 1) {
        fx_run r = { .threads = 2, .block = block, .kv_type = ST_KV_F32 };
        fx_forward(&f, &r, tok, pos, N, a);
        r.kv_type = ST_KV_F16;
        fx_forward(&f, &r, tok, pos, N, b);
        cr_assert(memcmp(a, b, n * sizeof(float)) == 0, "block %zu: logits differ", block);
    }
    unsetenv("STRETCH_NUMERICS");
    free(a);
    free(b);
    fx_close(&f);
}

/* set_posenc turns the cached (rotated, typed) keys by the change of
 * rotation: an f16 or q8_0 cache follows the f32 one (which test_plan.c
 * checks against the reference), and the change matters. */
Test(kv_types, set_posenc_rerotates_typed_keys)
{
    fwd_fixture f;
    open_hd32(&f);
    static float freqs[16];
    for (int i = 0; i < 16; i++)
        freqs[i] = 0.5f / (1.0f + (float)i);
    st_posenc_desc desc = {.struct_size = sizeof desc, .flags = ST_POSENC_ROTARY, .inv_freq = freqs,
                           .n_freq = 16, .rotary_scale = 1.1f, .attn_temperature = 1.0f};
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 21);
    float lg[ST_KV_TYPE_COUNT][300], before[300];
    const double tol[ST_KV_TYPE_COUNT] = { 0, 3e-3, 3e-2 };
    for (int t = 0; t < ST_KV_TYPE_COUNT; t++) {
        st_diag d;
        st_kv_cache *kv;
        cr_assert_eq(st_kv_cache_create(f.m->hp.n_layers, f.m->hp.n_kv_heads, f.m->hp.head_dim,
                                        N, (st_kv_type)t, &kv, &d), ST_OK);
        st_forward_config cfg = { .model = f.m, .kv = kv };
        st_forward_ctx *ctx;
        cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK);
        cr_assert_eq(st_forward(ctx, tok, pos, N - 1, before, 0, &d), ST_OK);
        cr_assert_eq(st_forward_set_posenc(ctx, &desc, &d), ST_OK);
        cr_assert_eq(st_forward(ctx, &tok[N - 1], &pos[N - 1], 1, lg[t], 0, &d), ST_OK);
        if (t) {
            double e = fx_rel_diff(lg[t], lg[ST_KV_F32], f.V);
            cr_assert_lt(e, tol[t], "kv %s: %g", st_kv_type_name((st_kv_type)t), e);
        }
        st_forward_ctx_free(ctx);
        st_kv_cache_free(kv);
    }
    /* Without the re-rotation the last step would differ far more. */
    fx_run r = { .threads = 1, .block = N };
    float *all = malloc((size_t)N * f.V * sizeof(float));
    fx_forward(&f, &r, tok, pos, N, all);
    cr_assert_gt(fx_rel_diff(lg[ST_KV_F32], all + (size_t)(N - 1) * f.V, f.V), 1e-2);
    free(all);
    fx_close(&f);
}
