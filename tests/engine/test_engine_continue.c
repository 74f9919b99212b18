/*
 * st_sequence_continue (ABI 1.10): a request that goes on from the
 * sequence's last one. Its tokens must see the whole past at the right
 * positions, as if prompt, answer and new tokens had been one prompt
 * (the same logits up to the rounding of other block cuts); the answer's
 * unfed last token goes first, an end-of-generation token does not; a
 * bounded cache goes on past the context; and every state with nothing
 * to go on from is refused.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/stretch.h>

#include "test_engine_open.h"
#include "tiny_model.h"

static char dir[256];
static char model_path[300];

static void make_model(void)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = 256;
    st_diag d;
    cr_assert_eq(st_tiny_model_in_tmp("st_engine_continue", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
}

static void cleanup(void)
{
    cr_assert_eq(st_tiny_model_tmp_remove(dir), 0);
}

TestSuite(engine_continue, .init = make_model, .fini = cleanup);

static st_engine *open_engine(const char *attention, int context)
{
    char text[1024];
    snprintf(text, sizeof text,
             "format: 1\nmodel: %s\ncontext: %d\nthreads: 2\nparallel: 2\n"
             "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
             "attention: %s\nsamplers: [{plugin: greedy}]\n", model_path, context, attention);
    return st_test_open_engine(dir, "s.yaml", text);
}

typedef struct answer {
    int32_t ids[256];
    size_t n;
} answer;

static int collect(void *user, int32_t token, const char *text, size_t len)
{
    (void)text;
    (void)len;
    answer *a = user;
    if (token >= 0 && a->n < 256)
        a->ids[a->n++] = token;
    return 0;
}

/* Deterministic prompt tokens, away from the special ids at the start. */
static void tokens(int32_t *out, size_t n, int32_t seed)
{
    for (size_t i = 0; i < n; i++)
        out[i] = 16 + (int32_t)((seed * 7919 + (int32_t)i * 104729) % 200);
}

/* Run a started request on s to its end; its status. */
static st_status run_out(st_engine *e, st_sequence *s, st_generate_stats *stats, st_error *err)
{
    for (uint32_t active = 1; active;)
        cr_assert_eq(st_engine_step(e, &active, err), ST_OK, "%s", err->message);
    *stats = (st_generate_stats){.struct_size = sizeof *stats};
    return st_sequence_result(s, stats, err);
}

static float max_diff(const float *a, const float *b, size_t n)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* The first logits of `all` run as one fresh prompt on the engine itself. */
static void fresh_logits(st_engine *e, const int32_t *all, size_t n, float *logits)
{
    st_error err = {0};
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 1, .fresh_cache = true,
                             .first_logits = logits};
    cr_assert_eq(st_engine_generate(e, all, n, &gp, NULL, NULL, NULL, &err), ST_OK, "%s",
                 err.message);
}

/* Turn 1 (prompt a, an answer of ng tokens cut by max_tokens), then
 * turn 2 (b) by st_sequence_continue, with `idle` idle steps between;
 * checked against a + answer + b as one prompt. */
static void check_continuation(const char *attention, int context, size_t na, size_t ng,
                               size_t nb, int idle)
{
    st_engine *e = open_engine(attention, context);
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    st_sequence *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_sequence_open(e, &s, &err), ST_OK, "%s", err.message);
    int32_t a[600], b[100];
    cr_assert(na <= 600 && nb <= 100 && ng <= 256);
    tokens(a, na, 1);
    tokens(b, nb, 2);
    answer first = {0}, second = {0};
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = (uint32_t)ng,
                             .ignore_eos = true};
    cr_assert_eq(st_sequence_start(s, a, na, &gp, collect, &first, &err), ST_OK, "%s",
                 err.message);
    st_generate_stats st1, st2;
    cr_assert_eq(run_out(e, s, &st1, &err), ST_OK, "%s", err.message);
    cr_assert_eq(first.n, ng);
    int32_t all[1000];
    memcpy(all, a, na * sizeof *a);
    memcpy(all + na, first.ids, ng * sizeof *all);
    memcpy(all + na + ng, b, nb * sizeof *b);
    for (int i = 0; i < idle; i++)
        cr_assert_eq(st_engine_idle_step(e, NULL, &err), ST_OK, "%s", err.message);
    if (idle)
        cr_assert(st_sequence_cached_prefix(s, all, na + ng + nb) > na,
                  "the idle steps prefilled some of the answer again");

    /* A caller with the whole prompt finds where the past ends: the
     * prompt, the answer (its last token not fed yet, but in the past). */
    cr_assert_eq(st_sequence_continued_prefix(s, all, na + ng + nb), na + ng);
    cr_assert_eq(st_sequence_continued_prefix(s, all, na + ng), 0, "nothing new to run");
    all[na + ng - 1]++;
    cr_assert_eq(st_sequence_continued_prefix(s, all, na + ng + nb), 0, "another answer");
    all[na + ng - 1]--;
    all[0]++;
    cr_assert_eq(st_sequence_continued_prefix(s, all, na + ng + nb), 0, "another prompt");
    all[0]--;

    float *cont = malloc(sizeof(float) * info.n_vocab), *want = malloc(sizeof(float) * info.n_vocab),
          *alone = malloc(sizeof(float) * info.n_vocab);
    gp.first_logits = cont;
    cr_assert_eq(st_sequence_continue(s, b, nb, &gp, collect, &second, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(run_out(e, s, &st2, &err), ST_OK, "%s", err.message);
    /* The past counts as the prompt's cached part: turn 1's prompt and
     * the answer's tokens but the last, which goes first now (with what
     * a refill cut and has not computed again). */
    if (!idle)
        cr_assert_eq(st2.n_cached, na + ng - 1, "%u", st2.n_cached);
    cr_assert_eq(st2.n_prompt, na + ng + nb, "%u", st2.n_prompt);
    cr_assert_eq(st2.n_generated, ng);

    /* The past now holds both turns, the refill's rest noted once. */
    memcpy(all + na + ng + nb, second.ids, ng * sizeof *all);
    all[na + 2 * ng + nb] = 7;
    cr_assert_eq(st_sequence_continued_prefix(s, all, na + 2 * ng + nb + 1), na + 2 * ng + nb);

    fresh_logits(e, all, na + ng + nb, want);
    fresh_logits(e, b, nb, alone);
    float d = max_diff(cont, want, info.n_vocab), far = max_diff(alone, want, info.n_vocab);
    cr_assert(d < 1e-3f, "continued logits differ from one prompt's by %g", (double)d);
    cr_assert(far > 100 * d && far > 1e-2f,
              "the past must matter: %g apart from turn 2 alone, %g from one prompt",
              (double)far, (double)d);
    free(cont);
    free(want);
    free(alone);
    st_sequence_close(s);
    st_engine_close(e);
}

Test(engine_continue, a_continuation_sees_the_whole_past)
{
    check_continuation("{plugin: dense}", 128, 20, 6, 9, 0);
}

/* On a strategy with the prefix cache, the answer is prefilled again
 * between the turns (st_engine_idle_step): the continuation follows it,
 * whole, or cut at a block's end with the rest still to do (the answer at
 * 500..519 crosses the 512-token block: the first idle step cuts the
 * cache to 500 and prefills to 512). */
Test(engine_continue, a_continuation_follows_the_idle_refill)
{
    check_continuation("{plugin: dense}", 128, 20, 12, 9, 3);
    check_continuation("{plugin: dense}", 600, 500, 20, 9, 1);
}

/* sliding-window masks by true distance and keeps what later queries can
 * see, so its answers do not depend on where blocks are cut: two turns
 * four times the context long equal one prompt of both. */
Test(engine_continue, a_bounded_cache_goes_on_past_the_context)
{
    check_continuation("{plugin: sliding-window, params: {window: 24, sinks: 4}}", 64, 200, 6,
                       60, 0);
}

/* An answer ended by an end-of-generation token: the token is not fed
 * (the caller closes the turn), so the continuation starts right after
 * the prompt. */
Test(engine_continue, an_end_of_generation_token_is_not_fed)
{
    st_engine *e = open_engine("{plugin: dense}", 128);
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    cr_assert(info.eos >= 0);
    cr_assert(!info.bounded_cache);
    st_sequence *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_sequence_open(e, &s, &err), ST_OK, "%s", err.message);
    int32_t a[20], b[5];
    tokens(a, 20, 3);
    tokens(b, 5, 4);
    st_logit_bias eos = {.token = info.eos, .bias = 100.0f};
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 6, .logit_bias = &eos,
                             .n_logit_bias = 1};
    answer first = {0};
    cr_assert_eq(st_sequence_start(s, a, 20, &gp, collect, &first, &err), ST_OK, "%s",
                 err.message);
    st_generate_stats stats;
    cr_assert_eq(run_out(e, s, &stats, &err), ST_OK, "%s", err.message);
    cr_assert(stats.stopped_by_eos && stats.n_generated == 1);
    gp.logit_bias = NULL;
    gp.n_logit_bias = 0;
    /* The past is the prompt: the end-of-generation token may follow it
     * in the next prompt or not. */
    int32_t with_eos[26];
    memcpy(with_eos, a, sizeof a);
    with_eos[20] = info.eos;
    memcpy(with_eos + 21, b, sizeof b);
    cr_assert_eq(st_sequence_continued_prefix(s, with_eos, 26), 20);
    memcpy(with_eos + 20, b, sizeof b);
    cr_assert_eq(st_sequence_continued_prefix(s, with_eos, 25), 20);
    answer second = {0};
    cr_assert_eq(st_sequence_continue(s, b, 5, &gp, collect, &second, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(run_out(e, s, &stats, &err), ST_OK, "%s", err.message);
    cr_assert_eq(stats.n_cached, 20);
    cr_assert_eq(stats.n_prompt, 25);
    st_sequence_close(s);
    st_engine_close(e);
}

/* Nothing to go on from, a running request, an empty continuation; a
 * dense cache that fills ends the request with the context-full error,
 * after which there is nothing to go on from either. */
Test(engine_continue, states_with_nothing_to_continue_are_refused)
{
    st_engine *e = open_engine("{plugin: dense}", 64);
    st_sequence *s = NULL;
    st_error err = {0};
    cr_assert_eq(st_sequence_open(e, &s, &err), ST_OK, "%s", err.message);
    int32_t a[40];
    tokens(a, 40, 5);
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 4, .ignore_eos = true};
    answer got = {0};
    cr_assert_eq(st_sequence_continue(s, a, 4, &gp, collect, &got, &err), ST_E_STATE);
    cr_assert(strstr(err.message, "nothing to continue"), "%s", err.message);
    cr_assert_eq(st_sequence_continued_prefix(s, a, 40), 0);

    cr_assert_eq(st_sequence_start(s, a, 10, &gp, collect, &got, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(st_sequence_continue(s, a, 4, &gp, collect, &got, &err), ST_E_INVALID);
    st_generate_stats stats;
    cr_assert_eq(run_out(e, s, &stats, &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_sequence_continue(s, a, 0, &gp, collect, &got, &err), ST_E_INVALID);
    uint32_t forgotten = 0;
    cr_assert_eq(st_sequence_forget(s, &forgotten, &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_sequence_continue(s, a, 4, &gp, collect, &got, &err), ST_E_STATE);

    /* 10 + 4 answered, then 40 more and 40 again: the second does not fit
     * the 64 slots. */
    cr_assert_eq(st_sequence_start(s, a, 10, &gp, collect, &got, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(run_out(e, s, &stats, &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_sequence_continue(s, a, 40, &gp, collect, &got, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(run_out(e, s, &stats, &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_sequence_continue(s, a, 40, &gp, collect, &got, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(run_out(e, s, &stats, &err), ST_E_RANGE);
    cr_assert(strstr(err.message, "the context is full"), "%s", err.message);
    cr_assert_eq(st_sequence_continue(s, a, 4, &gp, collect, &got, &err), ST_E_STATE);
    cr_assert_eq(st_sequence_continued_prefix(s, a, 40), 0);
    st_sequence_close(s);
    st_engine_close(e);
}
