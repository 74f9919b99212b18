/* Several sequences in one forward pass (st_forward_batch): prompts of
 * different lengths prepacked into one block, and decode steps of many
 * sequences batched, each attending only to its own cache with its own
 * plan. Every sequence must get what st_forward gives it alone: logits
 * within float tolerance (F32 weights), the same greedy tokens (Q8_0). */
#include "fwd_fixture.h"

#define CAP 96

typedef struct seq_fx {
    st_kv_cache *kv;
    st_forward_ctx *ctx;
} seq_fx;

/* A sliding window of `window` tokens, so a batch can mix plans. */
static st_status window_plan(void *user, const st_attn_query *q, const st_attn_plan_builder *b,
                             st_error *err)
{
    (void)err;
    int32_t window = *(const int32_t *)user;
    st_attn_range r = { ST_ALL_HEADS, 0, q->kv->n_slots, 0, window - 1, ST_POS_TRUE, 0 };
    return b->add_range(b->host, &r);
}

static int32_t window4 = 4;

static void seq_open(fwd_fixture *f, st_threadpool *pool, bool windowed, seq_fx *s)
{
    st_diag d;
    cr_assert_eq(st_kv_cache_create(f->m->hp.n_layers, f->m->hp.n_kv_heads, f->m->hp.head_dim,
                                    CAP, ST_KV_F32, &s->kv, &d), ST_OK);
    st_forward_config cfg = { .model = f->m, .kv = s->kv, .pool = pool,
                              .plan = windowed ? window_plan : NULL,
                              .plan_user = windowed ? &window4 : NULL };
    cr_assert_eq(st_forward_ctx_create(&cfg, &s->ctx, &d), ST_OK, "%s", d.message);
}

static void seq_close(seq_fx *s)
{
    st_forward_ctx_free(s->ctx);
    st_kv_cache_free(s->kv);
}

static void prompt_of(uint32_t i, size_t n, uint32_t V, int32_t *tokens, int32_t *pos)
{
    for (size_t t = 0; t < n; t++) {
        tokens[t] = (int32_t)((7 + 31 * i + 13 * t) % V);
        pos[t] = (int32_t)t;
    }
}

static int32_t argmax(const float *x, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

/* Three prompts of 5, 17 and 9 tokens in one block; the middle one under a
 * sliding window, the others dense. */
static void check_prepacked(st_ggml_type type, double tol)
{
    fwd_fixture f;
    fx_open(&f, type, type == ST_GGML_F32 ? ST_GGML_F32 : ST_GGML_Q8_0);
    st_diag d;
    st_threadpool *pool;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    const size_t len[3] = { 5, 17, 9 };
    int32_t tokens[3][32], pos[3][32];
    float *alone[3], *packed[3];
    seq_fx solo[3], batch[3];
    st_forward_seq seqs[3];
    for (uint32_t i = 0; i < 3; i++) {
        prompt_of(i, len[i], f.V, tokens[i], pos[i]);
        alone[i] = malloc(len[i] * f.V * sizeof(float));
        packed[i] = malloc(len[i] * f.V * sizeof(float));
        seq_open(&f, pool, i == 1, &solo[i]);
        seq_open(&f, pool, i == 1, &batch[i]);
        cr_assert_eq(st_forward(solo[i].ctx, tokens[i], pos[i], len[i], alone[i],
                                ST_FORWARD_ALL_LOGITS, &d), ST_OK, "%s", d.message);
        seqs[i] = (st_forward_seq){ batch[i].ctx, tokens[i], pos[i], len[i], packed[i],
                                    ST_FORWARD_ALL_LOGITS };
    }
    cr_assert_eq(st_forward_batch(seqs, 3, &d), ST_OK, "%s", d.message);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(batch[i].kv->n_slots, len[i]);
        double rd = fx_rel_diff(packed[i], alone[i], len[i] * f.V);
        cr_assert(rd < tol, "sequence %u: prepacked differs from alone by %g", i, rd);
        for (size_t t = 0; t < len[i]; t++)
            cr_assert_eq(argmax(packed[i] + t * f.V, f.V), argmax(alone[i] + t * f.V, f.V),
                         "sequence %u token %zu", i, t);
        seq_close(&solo[i]);
        seq_close(&batch[i]);
        free(alone[i]);
        free(packed[i]);
    }
    st_threadpool_destroy(pool);
    fx_close(&f);
}

Test(forward_batch, prepacked_prompts_equal_each_alone_f32)
{
    check_prepacked(ST_GGML_F32, 1e-4);
}

Test(forward_batch, prepacked_prompts_equal_each_alone_q8_0)
{
    check_prepacked(ST_GGML_Q8_0, 2e-2);
}

/* Greedy decoding of three sequences, batched step by step, with the third
 * joining at step 4 and the first leaving after step 6: every sequence's
 * tokens are those it generates alone. */
Test(forward_batch, continuous_batching_equals_each_alone)
{
    fwd_fixture f;
    fx_open(&f, ST_GGML_Q8_0, ST_GGML_Q8_0);
    st_diag d;
    st_threadpool *pool;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    enum { STEPS = 12 };
    const size_t len[3] = { 6, 11, 3 };
    const int join[3] = { 0, 0, 4 }, leave[3] = { 6, STEPS, STEPS };
    int32_t want[3][STEPS], got[3][STEPS];
    float *logits = malloc(3 * f.V * sizeof(float));
    /* Alone: prefill, then greedy one token at a time. */
    for (uint32_t i = 0; i < 3; i++) {
        int32_t tokens[32], pos[32];
        prompt_of(i, len[i], f.V, tokens, pos);
        seq_fx s;
        seq_open(&f, pool, i == 1, &s);
        cr_assert_eq(st_forward(s.ctx, tokens, pos, len[i], logits, 0, &d), ST_OK);
        for (int k = 0; k < leave[i] - join[i]; k++) {
            want[i][k] = argmax(logits, f.V);
            int32_t p = (int32_t)(len[i] + (size_t)k);
            cr_assert_eq(st_forward(s.ctx, &want[i][k], &p, 1, logits, 0, &d), ST_OK);
        }
        seq_close(&s);
    }
    /* Together: a sequence joins with its prompt at its step (prefilled
     * alone, as a server does), then decodes in the shared batch. */
    seq_fx s[3];
    int32_t next[3];
    int n_out[3] = { 0 };
    for (uint32_t i = 0; i < 3; i++)
        seq_open(&f, pool, i == 1, &s[i]);
    for (int step = 0; step < STEPS; step++) {
        for (uint32_t i = 0; i < 3; i++)
            if (join[i] == step) {
                int32_t tokens[32], pos[32];
                prompt_of(i, len[i], f.V, tokens, pos);
                cr_assert_eq(st_forward(s[i].ctx, tokens, pos, len[i], logits + i * f.V, 0, &d),
                             ST_OK);
                next[i] = argmax(logits + i * f.V, f.V);
            }
        st_forward_seq batch[3];
        int32_t pos[3];
        uint32_t ids[3];
        size_t n = 0;
        for (uint32_t i = 0; i < 3; i++) {
            if (step < join[i] || step >= leave[i])
                continue;
            got[i][n_out[i]++] = next[i];
            pos[i] = (int32_t)(len[i] + (size_t)(step - join[i]));
            batch[n] = (st_forward_seq){ s[i].ctx, &next[i], &pos[i], 1, logits + i * f.V, 0 };
            ids[n++] = i;
        }
        cr_assert_eq(st_forward_batch(batch, n, &d), ST_OK, "step %d: %s", step, d.message);
        for (size_t k = 0; k < n; k++)
            next[ids[k]] = argmax(logits + ids[k] * f.V, f.V);
    }
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(n_out[i], leave[i] - join[i]);
        cr_assert_arr_eq(got[i], want[i], (size_t)n_out[i] * sizeof(int32_t),
                         "sequence %u: batched tokens differ from its tokens alone", i);
        cr_assert_eq(s[i].kv->n_slots, len[i] + (size_t)n_out[i]);
        seq_close(&s[i]);
    }
    free(logits);
    st_threadpool_destroy(pool);
    fx_close(&f);
}

Test(forward_batch, a_bad_sequence_moves_no_cache)
{
    fwd_fixture f;
    fx_open(&f, ST_GGML_F32, ST_GGML_F32);
    st_diag d;
    st_threadpool *pool;
    cr_assert_eq(st_threadpool_create(1, &pool, &d), ST_OK);
    seq_fx a, b;
    seq_open(&f, pool, false, &a);
    seq_open(&f, pool, false, &b);
    int32_t tok[2] = { 5, 6 }, good[2] = { 0, 1 }, bad[2] = { 1, 0 };
    st_forward_seq seqs[2] = { { a.ctx, tok, good, 2, NULL, 0 }, { b.ctx, tok, bad, 2, NULL, 0 } };
    cr_assert_eq(st_forward_batch(seqs, 2, &d), ST_E_INVALID);
    cr_assert(strstr(d.message, "ascend"), "%s", d.message);
    cr_assert_eq(a.kv->n_slots, 0);
    cr_assert_eq(b.kv->n_slots, 0);
    st_forward_seq same[2] = { { a.ctx, tok, good, 2, NULL, 0 }, { a.ctx, tok, good, 2, NULL, 0 } };
    cr_assert_eq(st_forward_batch(same, 2, &d), ST_E_INVALID);
    cr_assert(strstr(d.message, "share a cache"), "%s", d.message);
    seq_close(&a);
    seq_close(&b);
    st_threadpool_destroy(pool);
    fx_close(&f);
}
