/*
 * The host's model_score service on a tiny model: what it answers equals a
 * plain forward pass over the same tokens computed here (one block, a
 * fresh cache, log-softmax by hand), it crosses its internal block size
 * without a seam, and it leaves the engine's own sequence alone.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "plain_forward.h"
#include "test_engine_open.h"
#include "tiny_model.h"

static char dir[256];
static char model_path[300];
static st_engine *engine;

static void open_tiny(void)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = 256;
    st_diag d;
    cr_assert_eq(st_tiny_model_in_tmp("st_model_score", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
    char text[1024];
    snprintf(text, sizeof text,
             "format: 1\nmodel: %s\ncontext: 200\nthreads: 2\nkv-type: f32\n"
             "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
             "attention: {plugin: dense}\nsamplers:\n  - plugin: greedy\n", model_path);
    engine = st_test_open_engine(dir, "s.yaml", text);
}

static void close_tiny(void)
{
    st_engine_close(engine);
    cr_assert_eq(st_tiny_model_tmp_remove(dir), 0);
}

TestSuite(model_score, .init = open_tiny, .fini = close_tiny);

static void some_tokens(int32_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        t[i] = (int32_t)(3 + (i * 37 + 11) % 400);
}

Test(model_score, logprobs_and_weights_equal_a_plain_forward)
{
    const st_host_services *s = st_host_services_of(engine->host);
    const st_host_score_v1 *ext = s->get_extension(s->host, ST_HOST_SCORE_V1);
    cr_assert_not_null(ext, "an engine with a model offers " ST_HOST_SCORE_V1);
    enum { N = 150 }; /* more than one of the scorer's 64-token blocks */
    int32_t tokens[N];
    some_tokens(tokens, N);
    static float lp[N], ent[N], w[N * N], want_lp[N], want_w[N * N];
    st_score_request req = {.struct_size = sizeof req, .tokens = tokens, .n_tokens = N,
                            .logprob = lp, .entropy = ent, .attn_layer = -1,
                            .attn_weights = w};
    st_error err = {0};
    cr_assert_eq(ext->model_score(s->host, &req, &err), ST_OK, "%s", err.message);
    st_diag d;
    cr_assert_eq(st_test_plain_forward(engine->model, tokens, N, -1, want_lp, want_w, &d),
                 ST_OK, "%s", d.message);
    float max_ent = 0.0f;
    for (size_t t = 0; t < N; t++) {
        cr_assert_float_eq(lp[t], want_lp[t], 1e-3, "logprob[%zu] %f vs %f", t, lp[t],
                           want_lp[t]);
        if (t) {
            cr_assert_float_eq(ent[t], -want_lp[t], 1e-3);
            max_ent = ent[t] > max_ent ? ent[t] : max_ent;
        }
    }
    cr_assert_float_eq(ent[0], max_ent, 1e-6, "the first token gets the largest surprisal");
    float heads = (float)engine->shape.n_heads;
    for (size_t q = 0; q < N; q++) {
        double row = 0.0;
        for (size_t k = 0; k < N; k++) {
            cr_assert_float_eq(w[q * N + k], want_w[q * N + k], 1e-4, "w[%zu][%zu]", q, k);
            if (k > q)
                cr_assert_eq(w[q * N + k], 0.0f, "causal: no weight on a later key");
            row += w[q * N + k];
        }
        cr_assert_float_eq(row, heads, 1e-3, "each head's row sums to 1");
    }
}

/* score_from (ABI 1.4): the rows before it run as a plain prefill (more
 * than one of its blocks here) and come back 0; the rows from it on are
 * what a whole request gives. */
Test(model_score, score_from_scores_only_the_rows_asked_for)
{
    const st_host_services *s = st_host_services_of(engine->host);
    const st_host_score_v1 *ext = s->get_extension(s->host, ST_HOST_SCORE_V1);
    enum { N = 190, FROM = 131 };
    int32_t tokens[N];
    some_tokens(tokens, N);
    static float lp[N], ent[N], w[N * N], want_lp[N], want_w[N * N];
    for (size_t t = 0; t < N; t++)
        lp[t] = ent[t] = 7.0f; /* must be overwritten with 0 before FROM */
    st_score_request req = {.struct_size = sizeof req, .tokens = tokens, .n_tokens = N,
                            .logprob = lp, .entropy = ent, .attn_layer = 0,
                            .attn_weights = w, .score_from = FROM};
    st_error err = {0};
    cr_assert_eq(ext->model_score(s->host, &req, &err), ST_OK, "%s", err.message);
    st_diag d;
    cr_assert_eq(st_test_plain_forward(engine->model, tokens, N, 0, want_lp, want_w, &d),
                 ST_OK, "%s", d.message);
    for (size_t t = 0; t < N; t++) {
        if (t < FROM) {
            cr_assert_eq(lp[t], 0.0f, "logprob[%zu] before score_from", t);
            cr_assert_eq(ent[t], 0.0f, "entropy[%zu] before score_from", t);
            for (size_t k = 0; k < N; k++)
                cr_assert_eq(w[t * N + k], 0.0f, "w[%zu][%zu] before score_from", t, k);
            continue;
        }
        cr_assert_float_eq(lp[t], want_lp[t], 1e-3, "logprob[%zu] %f vs %f", t, lp[t],
                           want_lp[t]);
        cr_assert_float_eq(ent[t], -want_lp[t], 1e-3, "entropy[%zu]", t);
        for (size_t k = 0; k < N; k++)
            cr_assert_float_eq(w[t * N + k], want_w[t * N + k], 1e-4, "w[%zu][%zu]", t, k);
    }
    /* Weights alone (no logits) take the prefill blocks for every row. */
    req.logprob = req.entropy = NULL;
    cr_assert_eq(ext->model_score(s->host, &req, &err), ST_OK, "%s", err.message);
    for (size_t t = FROM; t < N; t++)
        for (size_t k = 0; k < N; k++)
            cr_assert_float_eq(w[t * N + k], want_w[t * N + k], 1e-4, "w[%zu][%zu]", t, k);
    req.score_from = N;
    cr_assert_eq(ext->model_score(s->host, &req, &err), ST_E_RANGE);
    cr_assert(strstr(err.message, "score_from is 190"), "%s", err.message);
}

/* A 1.3 plugin's request ends before score_from: whatever lies past its
 * struct_size is not read, every row is scored. */
Test(model_score, a_request_without_score_from_scores_every_row)
{
    const st_host_services *s = st_host_services_of(engine->host);
    enum { N = 40 };
    int32_t tokens[N];
    some_tokens(tokens, N);
    float lp[N], want_lp[N];
    static float want_w[N * N];
    st_score_request req = {.struct_size = (uint32_t)offsetof(st_score_request, score_from),
                            .tokens = tokens, .n_tokens = N, .logprob = lp,
                            .score_from = 1000 /* past the old struct: never read */};
    st_error err = {0};
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_OK, "%s", err.message);
    st_diag d;
    cr_assert_eq(st_test_plain_forward(engine->model, tokens, N, -1, want_lp, want_w, &d),
                 ST_OK, "%s", d.message);
    for (size_t t = 0; t < N; t++)
        cr_assert_float_eq(lp[t], want_lp[t], 1e-3, "logprob[%zu]", t);
}

Test(model_score, leaves_the_engines_sequence_alone)
{
    int32_t prompt[20];
    some_tokens(prompt, 20);
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 4, .ignore_eos = true};
    st_error err = {0};
    cr_assert_eq(st_engine_generate(engine, prompt, 20, &gp, NULL, NULL, NULL, &err), ST_OK,
                 "%s", err.message);
    uint32_t slots = engine->kv->n_slots;
    cr_assert_gt(slots, 20);
    int32_t pos_before = engine->kv->pos[slots - 1];
    float a[40], b[40];
    int32_t tokens[40];
    some_tokens(tokens, 40);
    const st_host_services *s = st_host_services_of(engine->host);
    st_score_request req = {.struct_size = sizeof req, .tokens = tokens, .n_tokens = 40,
                            .logprob = a};
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_OK, "%s", err.message);
    req.logprob = b;
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_OK, "%s", err.message);
    cr_assert_arr_eq(a, b, sizeof a, "scoring twice gives the same answer");
    cr_assert_eq(engine->kv->n_slots, slots, "the engine's cache is untouched");
    cr_assert_eq(engine->kv->pos[slots - 1], pos_before);
}

Test(model_score, refuses_bad_requests_with_a_reason)
{
    const st_host_services *s = st_host_services_of(engine->host);
    int32_t tokens[201];
    some_tokens(tokens, 201);
    float lp[201];
    st_error err = {0};
    st_score_request req = {.struct_size = sizeof req, .tokens = tokens, .n_tokens = 201,
                            .logprob = lp};
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_E_RANGE);
    cr_assert(strstr(err.message, "context of 200"), "%s", err.message);
    req.n_tokens = 5;
    tokens[2] = 100000;
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "token 2 is 100000"), "%s", err.message);
    tokens[2] = 5;
    float w[25];
    req.attn_weights = w;
    req.attn_layer = 7;
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "attn_layer 7"), "%s", err.message);
    req.struct_size = 8;
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_E_ABI);
    req.struct_size = sizeof req;
    req.n_tokens = 0;
    cr_assert_eq(s->model_score(s->host, &req, &err), ST_E_INVALID);
}
