/*
 * Several sequences on one engine (ABI 1.3): st_sequence_start and
 * st_engine_step run requests together, prompts prepacked and decode
 * tokens batched. Every request must produce exactly what
 * st_engine_generate produces for it alone: same tokens, same text, same
 * stats; with a sampled chain, the same samples for the same seed; with a
 * bounded attention strategy, the same retention.
 */
#include <criterion/criterion.h>
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
    spec.type = ST_GGML_Q8_0;
    spec.n_ctx = 256;
    spec.tied = false;
    st_diag d;
    cr_assert_eq(st_tiny_model_in_tmp("st_engine_sequences", &spec, dir, sizeof dir,
                                      model_path, sizeof model_path, &d), ST_OK, "%s",
                 d.message);
}

static void cleanup(void)
{
    cr_assert_eq(st_tiny_model_tmp_remove(dir), 0);
}

TestSuite(engine_sequences, .init = make_model, .fini = cleanup);

static st_engine *open_engine(const char *attention, const char *samplers, int parallel)
{
    char text[1024];
    snprintf(text, sizeof text,
             "format: 1\nmodel: %s\ncontext: 128\nthreads: 2\nparallel: %d\n"
             "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
             "attention: %s\nsamplers:\n%s", model_path, parallel, attention, samplers);
    return st_test_open_engine(dir, "s.yaml", text);
}

typedef struct answer {
    int32_t ids[64];
    size_t n;
    char text[1024];
    size_t len;
} answer;

static int collect(void *user, int32_t token, const char *text, size_t len)
{
    answer *a = user;
    if (token >= 0 && a->n < 64)
        a->ids[a->n++] = token;
    if (a->len + len < sizeof a->text) {
        memcpy(a->text + a->len, text, len);
        a->len += len;
    }
    return 0;
}

enum { N_REQ = 4 };
static const char *const prompts[N_REQ] = {
    "The quick brown fox", "It was the best of times, it was the worst of times",
    "def main(): return 0", "a",
};
static const uint32_t budgets[N_REQ] = {20, 12, 30, 25};
/* Request 3 joins at step 5 (its prompt then packs beside the others'
 * decode tokens); request 1 leaves early by its budget. */
static const int joins[N_REQ] = {0, 0, 0, 5};

static void tokenize(st_engine *e, const char *text, int32_t **ids, size_t *n)
{
    st_error err = {0};
    cr_assert_eq(st_engine_tokenize(e, text, strlen(text), ST_ENCODE_PARSE_SPECIAL, ids, n,
                                    &err), ST_OK, "%s", err.message);
}

/* Run the requests alone (st_engine_generate) and together (sequences),
 * and compare. */
static void check_together_equals_alone(const char *attention, const char *samplers)
{
    st_engine *e = open_engine(attention, samplers, N_REQ);
    st_error err = {0};
    answer alone[N_REQ], together[N_REQ];
    st_generate_stats want[N_REQ];
    int32_t *ids[N_REQ];
    size_t n_ids[N_REQ];
    memset(alone, 0, sizeof alone);
    memset(together, 0, sizeof together);
    for (int i = 0; i < N_REQ; i++) {
        tokenize(e, prompts[i], &ids[i], &n_ids[i]);
        st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = budgets[i],
                                 .seed = 100 + (uint64_t)i};
        want[i] = (st_generate_stats){.struct_size = sizeof want[i]};
        cr_assert_eq(st_engine_generate(e, ids[i], n_ids[i], &gp, collect, &alone[i], &want[i],
                                        &err), ST_OK, "%s", err.message);
    }
    st_sequence *seq[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        cr_assert_eq(st_sequence_open(e, &seq[i], &err), ST_OK, "%s", err.message);
    uint32_t active = 0;
    for (int step = 0; step < 200; step++) {
        for (int i = 0; i < N_REQ; i++)
            if (joins[i] == step) {
                st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = budgets[i],
                                         .seed = 100 + (uint64_t)i};
                cr_assert_eq(st_sequence_start(seq[i], ids[i], n_ids[i], &gp, collect,
                                               &together[i], &err), ST_OK, "%s", err.message);
            }
        cr_assert_eq(st_engine_step(e, &active, &err), ST_OK, "%s", err.message);
        if (active == 0 && step > joins[N_REQ - 1])
            break;
    }
    cr_assert_eq(active, 0);
    for (int i = 0; i < N_REQ; i++) {
        st_generate_stats got = {.struct_size = sizeof got};
        cr_assert_eq(st_sequence_result(seq[i], &got, &err), ST_OK, "%s", err.message);
        cr_assert_eq(together[i].n, alone[i].n, "request %d: %zu tokens together, %zu alone", i,
                     together[i].n, alone[i].n);
        cr_assert_arr_eq(together[i].ids, alone[i].ids, alone[i].n * sizeof(int32_t),
                         "request %d: tokens differ", i);
        cr_assert_eq(together[i].len, alone[i].len);
        cr_assert_arr_eq(together[i].text, alone[i].text, alone[i].len);
        cr_assert_eq(got.n_prompt, want[i].n_prompt);
        cr_assert_eq(got.n_generated, want[i].n_generated);
        cr_assert_eq(got.stopped_by_eos, want[i].stopped_by_eos);
        st_free(ids[i]);
    }
    st_engine_close(e); /* closes the sequences too */
}

Test(engine_sequences, greedy_together_equals_alone)
{
    check_together_equals_alone("{plugin: dense}", "  - plugin: greedy\n");
}

Test(engine_sequences, sampled_together_equals_alone_for_the_same_seed)
{
    check_together_equals_alone("{plugin: dense}",
                                "  - {plugin: top-k, params: {k: 40}}\n  - plugin: dist\n");
}

Test(engine_sequences, sliding_window_together_equals_alone)
{
    check_together_equals_alone("{plugin: sliding-window, params: {window: 8, sinks: 2}}",
                                "  - plugin: greedy\n");
}

Test(engine_sequences, parallel_bounds_the_open_sequences)
{
    st_engine *e = open_engine("{plugin: dense}", "  - plugin: greedy\n", 2);
    st_error err = {0};
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    cr_assert_eq(info.parallel, 2, "the manifest's parallel");
    st_sequence *a, *b, *c;
    cr_assert_eq(st_sequence_open(e, &a, &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_sequence_open(e, &b, &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_sequence_open(e, &c, &err), ST_E_RANGE);
    cr_assert(strstr(err.message, "parallel"), "%s", err.message);
    st_sequence_close(a);
    cr_assert_eq(st_sequence_open(e, &c, &err), ST_OK, "a closed sequence frees its place");
    st_sequence_close(b);
    st_sequence_close(c);
    st_engine_close(e);

    /* The option overrides the manifest, within ST_PARALLEL_MAX. */
    char path[300];
    snprintf(path, sizeof path, "%s/s.yaml", dir);
    st_engine_options opts = {.struct_size = sizeof opts, .parallel = 5};
    cr_assert_eq(st_engine_open(path, &opts, &e, &err), ST_OK, "%s", err.message);
    st_engine_get_info(e, &info);
    cr_assert_eq(info.parallel, 5);
    st_engine_close(e);
    opts.parallel = ST_PARALLEL_MAX + 1;
    cr_assert_eq(st_engine_open(path, &opts, &e, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "parallel"), "%s", err.message);
}

Test(engine_sequences, cancel_stops_one_and_spares_the_others)
{
    st_engine *e = open_engine("{plugin: dense}", "  - plugin: greedy\n", 2);
    st_error err = {0};
    int32_t *ids;
    size_t n;
    tokenize(e, "Once upon a time", &ids, &n);
    answer want = {0}, a = {0}, b = {0};
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 30, .ignore_eos = true};
    cr_assert_eq(st_engine_generate(e, ids, n, &gp, collect, &want, NULL, &err), ST_OK);
    st_sequence *sa, *sb;
    cr_assert_eq(st_sequence_open(e, &sa, &err), ST_OK);
    cr_assert_eq(st_sequence_open(e, &sb, &err), ST_OK);
    cr_assert_eq(st_sequence_start(sa, ids, n, &gp, collect, &a, &err), ST_OK);
    cr_assert_eq(st_sequence_start(sb, ids, n, &gp, collect, &b, &err), ST_OK);
    cr_assert_eq(st_sequence_start(sb, ids, n, &gp, collect, &b, &err), ST_E_INVALID,
                 "a busy sequence takes no second request");
    uint32_t active = 2;
    for (int step = 0; active > 0 && step < 100; step++) {
        if (step == 5)
            st_sequence_cancel(sa);
        cr_assert_eq(st_engine_step(e, &active, &err), ST_OK, "%s", err.message);
    }
    cr_assert_eq(st_sequence_result(sa, NULL, &err), ST_E_CANCELLED);
    cr_assert(a.n < 30);
    cr_assert_eq(st_sequence_result(sb, NULL, &err), ST_OK);
    cr_assert_eq(b.n, want.n);
    cr_assert_arr_eq(b.ids, want.ids, want.n * sizeof(int32_t));
    /* The one-request call still works beside the sequences. */
    answer again = {0};
    cr_assert_eq(st_engine_generate(e, ids, n, &gp, collect, &again, NULL, &err), ST_OK);
    cr_assert_arr_eq(again.ids, want.ids, want.n * sizeof(int32_t));
    st_free(ids);
    st_engine_close(e);
}
