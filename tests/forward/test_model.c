/* The whole forward pass against the scalar reference, for every weight
 * type, every ISA path, 1 and 2 threads, prefill and token-by-token. */
#include "fwd_fixture.h"

#include "cpu_features.h"
#include "gguf_writer.h"
#include "repack.h"

/* Relative logit error bounds. Against a reference that rounds activations
 * through int8 the same way, only float summation order (and the odd
 * rounding flip it causes) differs; against pure float, the int8
 * activations themselves are the error. */
#define TIGHT 1e-4
#define LOOSE 2e-2

static const struct { st_ggml_type type; const char *name; } types[] = {
    { ST_GGML_F32, "F32" }, { ST_GGML_F16, "F16" }, { ST_GGML_Q4_0, "Q4_0" },
    { ST_GGML_Q4_1, "Q4_1" }, { ST_GGML_Q8_0, "Q8_0" },
};
static const char *const isas[] = { "scalar", "avx2", "avx512" };

#define N_TOK 13 /* one tile of 8 and a tail of 5 */

Test(forward_model, hparams_and_tied_output)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_vocab = 300;
    fwd_fixture f;
    fx_open_spec(&f, &spec);
    const st_model_hparams *hp = &f.m->hp;
    cr_assert_eq(hp->n_layers, 2);
    cr_assert_eq(hp->n_embd, 64);
    cr_assert_eq(hp->n_heads, 4);
    cr_assert_eq(hp->n_kv_heads, 2);
    cr_assert_eq(hp->head_dim, 16);
    cr_assert_eq(hp->rope_dims, 16);
    cr_assert_eq(hp->n_ff, 128);
    cr_assert_float_eq(hp->rope_base, 100000.0f, 1e-3);
    cr_assert(f.m->tied_output);
    cr_assert_eq(f.m->output.data, f.m->tok_embd.data);
    cr_assert_eq(hp->n_vocab, f.m->tok_embd.rows);
    fx_close(&f);
}

Test(forward_model, untied_output)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_vocab = 300;
    spec.tied = false;
    fwd_fixture f;
    fx_open_spec(&f, &spec);
    cr_assert_not(f.m->tied_output);
    cr_assert_neq(f.m->output.data, f.m->tok_embd.data);
    int32_t tok[5], pos[5];
    fx_tokens(tok, pos, 5, f.V, 3);
    float *ours = malloc(5 * f.V * sizeof(float)), *ref = malloc(5 * f.V * sizeof(float));
    fx_run r = { .threads = 1 };
    fx_forward(&f, &r, tok, pos, 5, ours);
    st_ref_opts o = { .quantize_acts = true };
    st_ref_forward(f.ref, tok, pos, 5, &o, ref);
    cr_assert_lt(fx_rel_diff(ours, ref, 5 * f.V), TIGHT);
    free(ours);
    free(ref);
    fx_close(&f);
}

/* A llama GGUF with the given attn_q shape and nothing after it; with
 * pos_cols, a position_embd.weight of [pos_cols, 16] too. */
static st_status load_broken_pos(uint64_t q_rows, bool with_q, uint64_t pos_cols, st_diag *d)
{
    st_gw *w = st_gw_new();
    st_gw_string(w, "general.architecture", "llama");
    st_gw_u32(w, "llama.block_count", 1);
    st_gw_u32(w, "llama.embedding_length", 32);
    st_gw_u32(w, "llama.feed_forward_length", 64);
    st_gw_u32(w, "llama.attention.head_count", 2);
    uint64_t ne_e[2] = { 32, 10 }, ne_n[1] = { 32 }, ne_q[2] = { 32, q_rows };
    st_gw_tensor(w, "token_embd.weight", ST_GGML_F32, 2, ne_e, NULL);
    st_gw_tensor(w, "output_norm.weight", ST_GGML_F32, 1, ne_n, NULL);
    st_gw_tensor(w, "blk.0.attn_norm.weight", ST_GGML_F32, 1, ne_n, NULL);
    if (with_q)
        st_gw_tensor(w, "blk.0.attn_q.weight", ST_GGML_F32, 2, ne_q, NULL);
    uint64_t ne_p[2] = { pos_cols, 16 };
    if (pos_cols)
        st_gw_tensor(w, "position_embd.weight", ST_GGML_F32, 2, ne_p, NULL);
    char path[] = "/tmp/st_fwd_bad_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(st_gw_write(w, path, NULL), ST_OK);
    st_gw_free(w);
    st_gguf *g;
    cr_assert_eq(st_gguf_open(path, &g, d), ST_OK, "%s", d->message);
    unlink(path);
    st_model *m = NULL;
    st_status s = st_model_load(g, &m, d);
    cr_assert_null(m);
    st_gguf_close(g);
    return s;
}

static st_status load_broken(uint64_t q_rows, bool with_q, st_diag *d)
{
    return load_broken_pos(q_rows, with_q, 0, d);
}

Test(forward_model, shape_errors_name_the_tensor)
{
    st_diag d;
    st_status s = load_broken(48, true, &d);
    cr_assert_eq(s, ST_E_FORMAT);
    cr_assert(strstr(d.message, "blk.0.attn_q.weight"), "%s", d.message);
    cr_assert(strstr(d.message, "[32, 48]"), "%s", d.message);
    cr_assert(strstr(d.message, "expected [32, 32]"), "%s", d.message);
    s = load_broken(32, false, &d);
    cr_assert_eq(s, ST_E_NOT_FOUND);
    cr_assert(strstr(d.message, "missing tensor 'blk.0.attn_q.weight'"), "%s", d.message);
    /* An optional position table of the wrong width is named too. */
    s = load_broken_pos(32, true, 30, &d);
    cr_assert_eq(s, ST_E_FORMAT);
    cr_assert(strstr(d.message, "position_embd.weight") && strstr(d.message, "expected [32, 16]"),
              "%s", d.message);
}

Test(forward_model, huge_block_count_is_a_format_error)
{
    /* A fuzzed block count must be refused as the file's error, naming
     * the key, before anything is sized from it. */
    st_gw *w = st_gw_new();
    st_gw_string(w, "general.architecture", "llama");
    st_gw_u32(w, "llama.block_count", 0xFFFFFFF0u);
    st_gw_u32(w, "llama.embedding_length", 32);
    st_gw_u32(w, "llama.feed_forward_length", 64);
    st_gw_u32(w, "llama.attention.head_count", 2);
    uint64_t ne_e[2] = { 32, 10 }, ne_n[1] = { 32 };
    st_gw_tensor(w, "token_embd.weight", ST_GGML_F32, 2, ne_e, NULL);
    st_gw_tensor(w, "output_norm.weight", ST_GGML_F32, 1, ne_n, NULL);
    char path[] = "/tmp/st_fwd_layers_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(st_gw_write(w, path, NULL), ST_OK);
    st_gw_free(w);
    st_diag d;
    st_gguf *g;
    cr_assert_eq(st_gguf_open(path, &g, &d), ST_OK, "%s", d.message);
    unlink(path);
    st_model *m = NULL;
    st_status s = st_model_load(g, &m, &d);
    st_gguf_close(g);
    cr_assert_null(m);
    cr_assert_eq(s, ST_E_FORMAT, "%s", d.message);
    cr_assert(strstr(d.message, "'llama.block_count' is 4294967280"), "%s", d.message);
}

/* The repacked matrices share one buffer (the model's packed_arena, on
 * huge pages: base/big_alloc.h), each 64-byte aligned, in the order decode
 * reads them, without overlap. The forward tests check their contents. */
Test(forward_model, packed_matrices_share_one_arena)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = ST_GGML_Q4_1;
    spec.embd_type = ST_GGML_Q8_0;
    spec.n_vocab = 304; /* a multiple of 16: the output is packed too */
    spec.tied = false;
    fwd_fixture f;
    fx_open_spec(&f, &spec);
    const st_model *m = f.m;
    if (st_cpu_isa_active() < ST_ISA_AVX2) {
        cr_assert_null(m->packed_arena, "the scalar path reads the mapping as is");
        fx_close(&f);
        return;
    }
    cr_assert_not_null(m->packed_arena);
    const uint8_t *lo = m->packed_arena, *hi = lo + m->packed_arena_bytes, *end = lo;
    size_t n = 0;
    for (uint32_t l = 0; l <= m->hp.n_layers; l++) {
        st_weight *ws[ST_MODEL_STEP_MATS];
        size_t k = st_model_step_matrices(f.m, l, ws);
        cr_assert_eq(k, l < m->hp.n_layers ? 7u : 1u);
        if (l < m->hp.n_layers) {
            /* The order itself: a decoded token's reads, one layer. */
            const st_model_layer *L = &m->layers[l];
            const st_weight *lw[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
            for (size_t j = 0; j < k; j++)
                cr_assert_eq(ws[j], lw[j], "layer %u: matrix %zu out of decode order", l, j);
        } else {
            cr_assert_eq(ws[0], &m->output);
        }
        for (size_t j = 0; j < k; j++) {
            const st_weight *w = ws[j];
            cr_assert_not_null(w->packed, "layer %u matrix %zu is not packed", l, j);
            cr_assert_geq(w->packed, end, "layer %u matrix %zu overlaps the one before", l, j);
            cr_assert_eq((uintptr_t)(w->packed - lo) % 64, 0, "layer %u matrix %zu unaligned", l, j);
            end = w->packed + st_repack_bytes(w);
            cr_assert_leq(end, hi, "layer %u matrix %zu runs past the arena", l, j);
            n++;
        }
    }
    cr_assert_eq(n, 7 * (size_t)m->hp.n_layers + 1);
    fx_close(&f);
}

static void check_type(st_ggml_type type, const char *tname)
{
    fwd_fixture f;
    fx_open(&f, type, type);
    int32_t tok[N_TOK], pos[N_TOK];
    fx_tokens(tok, pos, N_TOK, f.V, 1);
    size_t nl = (size_t)N_TOK * f.V;
    float *ref_q = malloc(nl * sizeof(float)), *ref_f = malloc(nl * sizeof(float));
    float *ours = malloc(nl * sizeof(float));
    st_ref_opts oq = { .quantize_acts = true }, of = { .quantize_acts = false };
    st_ref_forward(f.ref, tok, pos, N_TOK, &oq, ref_q);
    st_ref_forward(f.ref, tok, pos, N_TOK, &of, ref_f);
    for (size_t i = 0; i < sizeof isas / sizeof *isas; i++)
        for (uint32_t th = 1; th <= 2; th++)
            for (size_t block = 1; block <= N_TOK; block += N_TOK - 1) {
                fx_run r = { .isa = isas[i], .threads = th, .block = block };
                fx_forward(&f, &r, tok, pos, N_TOK, ours);
                double dq = fx_rel_diff(ours, ref_q, nl), df = fx_rel_diff(ours, ref_f, nl);
                cr_log_info("%s %s threads %u block %zu: %.3g vs int8 ref, %.3g vs float ref",
                            tname, isas[i], th, block, dq, df);
                cr_assert_lt(dq, TIGHT, "%s %s threads %u block %zu: %g vs int8 reference",
                             tname, isas[i], th, block, dq);
                cr_assert_lt(df, LOOSE, "%s %s threads %u block %zu: %g vs float reference",
                             tname, isas[i], th, block, df);
            }
    free(ref_q);
    free(ref_f);
    free(ours);
    fx_close(&f);
}

Test(forward_model, f32) { check_type(types[0].type, types[0].name); }
Test(forward_model, f16) { check_type(types[1].type, types[1].name); }
Test(forward_model, q4_0) { check_type(types[2].type, types[2].name); }
Test(forward_model, q4_1) { check_type(types[3].type, types[3].name); }
Test(forward_model, q8_0) { check_type(types[4].type, types[4].name); }

/* Greedy decoding for 16 steps: every token we pick is the reference's
 * argmax, up to the int8 reference bound (ties within it may go either way). */
static void check_greedy(st_ggml_type type)
{
    fwd_fixture f;
    fx_open(&f, type, ST_GGML_Q8_0);
    enum { P = 6, STEPS = 16, N = P + STEPS };
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 7);
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f.m->hp.n_layers, f.m->hp.n_kv_heads, f.m->hp.head_dim, N,
                                    ST_KV_F32, &kv, &d), ST_OK);
    st_threadpool *pool;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    st_forward_config cfg = { .model = f.m, .kv = kv, .pool = pool };
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK);
    float *lg = malloc(f.V * sizeof(float)), *ref = malloc((size_t)N * f.V * sizeof(float));
    cr_assert_eq(st_forward(ctx, tok, pos, P, lg, 0, &d), ST_OK, "%s", d.message);
    st_ref_opts o = { .quantize_acts = false };
    for (int s = 0; s < STEPS; s++) {
        uint32_t pick = fx_argmax(lg, f.V);
        size_t n = (size_t)P + s;
        st_ref_forward(f.ref, tok, pos, n, &o, ref);
        const float *rl = ref + (n - 1) * f.V;
        uint32_t best = fx_argmax(rl, f.V);
        double scale = fabs(rl[best]) + 1e-9;
        cr_assert_leq(rl[best] - rl[pick], LOOSE * scale,
                      "step %d: picked %u (ref %g), reference argmax %u (%g)", s, pick,
                      rl[pick], best, rl[best]);
        tok[n] = (int32_t)pick;
        cr_assert_eq(st_forward(ctx, &tok[n], &pos[n], 1, lg, 0, &d), ST_OK, "%s", d.message);
    }
    free(lg);
    free(ref);
    st_forward_ctx_free(ctx);
    st_threadpool_destroy(pool);
    st_kv_cache_free(kv);
    fx_close(&f);
}

Test(forward_model, greedy_q4_1) { check_greedy(ST_GGML_Q4_1); }
Test(forward_model, greedy_q8_0) { check_greedy(ST_GGML_Q8_0); }

Test(forward_model, bad_input_leaves_cache)
{
    fwd_fixture f;
    fx_open(&f, ST_GGML_Q4_0, ST_GGML_Q8_0);
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(f.m->hp.n_layers, f.m->hp.n_kv_heads, f.m->hp.head_dim, 4,
                                    ST_KV_F32, &kv, &d), ST_OK);
    st_forward_config cfg = { .model = f.m, .kv = kv };
    st_forward_ctx *ctx;
    cr_assert_eq(st_forward_ctx_create(&cfg, &ctx, &d), ST_OK);
    float *lg = malloc(f.V * sizeof(float));
    int32_t tok[5] = { 1, 2, 3, 4, 5 }, pos[5] = { 0, 1, 2, 3, 4 };
    cr_assert_eq(st_forward(ctx, tok, pos, 5, lg, 0, &d), ST_E_RANGE);
    cr_assert(strstr(d.message, "capacity 4"), "%s", d.message);
    int32_t bad = (int32_t)f.V;
    cr_assert_eq(st_forward(ctx, &bad, pos, 1, lg, 0, &d), ST_E_RANGE);
    cr_assert(strstr(d.message, "vocabulary"), "%s", d.message);
    int32_t back[2] = { 3, 2 };
    cr_assert_eq(st_forward(ctx, tok, back, 2, lg, 0, &d), ST_E_INVALID);
    cr_assert_eq(kv->n_slots, 0);
    cr_assert_eq(st_forward(ctx, tok, pos, 4, lg, 0, &d), ST_OK);
    cr_assert_eq(kv->n_slots, 4);
    for (uint32_t i = 0; i < 4; i++)
        cr_assert_eq(kv->pos[i], (int32_t)i);
    free(lg);
    st_forward_ctx_free(ctx);
    st_kv_cache_free(kv);
    fx_close(&f);
}
