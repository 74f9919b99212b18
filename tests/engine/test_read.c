/*
 * Reading a document chunk by chunk on a tiny model: the two readers'
 * scores and choices against a direct computation (a plain forward pass
 * and the formulas of docs/plugins/infiniretri.md and xl3m.md written out
 * here), st_engine_read's loop (flat steps, chunks linear in the length),
 * and the bad inputs of issue 15, each handled or refused with a reason.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stretch/reader.h>

#include "conformance.h"
#include "engine_internal.h"
#include "plain_forward.h"
#include "test_host.h"
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
    cr_assert_eq(st_tiny_model_in_tmp("st_read_test", &spec, dir, sizeof dir, model_path,
                                      sizeof model_path, &d), ST_OK, "%s", d.message);
}

static void remove_model(void) { cr_assert_eq(st_tiny_model_tmp_remove(dir), 0); }

TestSuite(read, .init = make_model, .fini = remove_model);

/* An engine whose attention is `attention` (YAML flow mapping). */
static st_engine *open_with(const char *attention)
{
    char text[1024];
    snprintf(text, sizeof text,
             "format: 1\nmodel: %s\ncontext: 192\nthreads: 2\nkv-type: f32\n"
             "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
             "attention: %s\nsamplers:\n  - plugin: greedy\n", model_path, attention);
    return st_test_open_engine(dir, "s.yaml", text);
}

static const st_reader_v1 *reader_of(st_engine *e)
{
    const st_reader_v1 *r =
        e->attention.lib->entry->get_extension(e->attention.in->inst, ST_READER_V1);
    cr_assert_not_null(r, "the plugin offers " ST_READER_V1);
    return r;
}

enum { N = 40, NQ = 6, SENT = 5 };

/* 40 context tokens in sentences of 5, a 6-token question, BOS 0. */
static void make_step(st_read_step *step, int32_t *tokens, uint32_t *sentence,
                      int32_t *question)
{
    for (uint32_t i = 0; i < N; i++) {
        tokens[i] = (int32_t)(3 + (i * 29 + 7) % 400);
        sentence[i] = i / SENT;
    }
    for (uint32_t i = 0; i < NQ; i++)
        question[i] = (int32_t)(40 + 13 * i);
    *step = (st_read_step){.struct_size = sizeof *step, .tokens = tokens, .n_tokens = N,
                           .n_kept = 0, .sentence = sentence, .question = question,
                           .n_question = NQ, .bos = 0, .chunk = 0, .last = true};
}

static size_t sequence(const st_read_step *step, size_t b, size_t e, int32_t *seq)
{
    size_t n = 0;
    seq[n++] = step->bos;
    for (size_t i = b; i < e; i++)
        seq[n++] = step->tokens[i];
    for (size_t i = 0; i < step->n_question; i++)
        seq[n++] = step->question[i];
    return n;
}

static int by_score(const void *a, const void *b)
{
    const float *x = a, *y = b; /* {score, index} pairs */
    if (x[0] != y[0])
        return x[0] > y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : 1;
}

Test(read, infiniretri_scores_equal_a_direct_computation)
{
    st_engine *e = open_with("{plugin: infiniretri, params: {top_k: 8, window: 4, budget: 12}}");
    st_read_step step;
    int32_t tokens[N], question[NQ], seq[N + NQ + 1];
    uint32_t sentence[N];
    make_step(&step, tokens, sentence, question);
    uint8_t keep[N] = {0};
    float score[N];
    st_error err = {0};
    cr_assert_eq(reader_of(e)->select(e->attention.in->inst, &step, keep, score, &err), ST_OK,
                 "%s", err.message);

    /* Direct: the last layer's weights of [BOS] + context + question. */
    size_t n = sequence(&step, 0, N, seq), q0 = 1 + N;
    static float A[(N + NQ + 1) * (N + NQ + 1)];
    st_diag d;
    cr_assert_eq(st_test_plain_forward(e->model, seq, n, -1, NULL, A, &d), ST_OK, "%s",
                 d.message);
    double w[NQ], total = 0.0;
    for (size_t q = 0; q < NQ; q++) {
        w[q] = 0.0;
        for (size_t r = q0; r < n; r++)
            w[q] += A[r * n + q0 + q];
        total += w[q];
    }
    double a[N] = {0};
    for (size_t q = 0; q < NQ; q++)
        for (size_t c = 0; c < N; c++)
            a[c] += w[q] / total * A[(q0 + q) * n + 1 + c];
    float want[N][2];
    for (int c = 0; c < N; c++) {
        double s = 0.0;
        for (int j = c - 2; j < c + 2; j++) /* window 4: [c - 2, c + 2) */
            if (j >= 0 && j < N)
                s += a[j];
        cr_assert_float_eq(score[c], s, 1e-5 + 1e-4 * fabs(s), "score[%d] %g vs %g", c,
                           (double)score[c], s);
        want[c][0] = (float)s;
        want[c][1] = (float)c;
    }
    /* The choice: sentences of the 8 best tokens, best first, while 12 fit. */
    qsort(want, N, sizeof want[0], by_score);
    uint8_t expect[N] = {0};
    int kept = 0;
    for (int i = 0; i < 8; i++) {
        int c = (int)want[i][1], b = c / SENT * SENT;
        if (expect[c] || kept + SENT > 12)
            continue;
        memset(expect + b, 1, SENT);
        kept += SENT;
    }
    cr_assert_eq(kept, 10, "two whole sentences of 5 fit a budget of 12");
    cr_assert_arr_eq(keep, expect, N, "the kept tokens are the best sentences");
    st_engine_close(e);
}

Test(read, xl3m_scores_equal_a_direct_computation)
{
    st_engine *e = open_with("{plugin: xl3m, params: {segment: 16, budget: 32}}");
    st_read_step step;
    int32_t tokens[N], question[NQ], seq[N + NQ + 1];
    uint32_t sentence[N];
    make_step(&step, tokens, sentence, question);
    uint8_t keep[N] = {0};
    float score[N];
    st_error err = {0};
    cr_assert_eq(reader_of(e)->select(e->attention.in->inst, &step, keep, score, &err), ST_OK,
                 "%s", err.message);
    /* Segments of whole 5-token sentences up to 16 tokens: 15, 15, 10. */
    const size_t begin[] = {0, 15, 30, 40};
    float rel[3][2];
    for (size_t s = 0; s < 3; s++) {
        size_t n = sequence(&step, begin[s], begin[s + 1], seq);
        float lp[N + NQ + 1];
        st_diag d;
        cr_assert_eq(st_test_plain_forward(e->model, seq, n, -1, lp, NULL, &d), ST_OK, "%s",
                     d.message);
        double sum = 0.0;
        for (size_t t = n - NQ; t < n; t++)
            sum += lp[t];
        double want = sum / NQ;
        for (size_t t = begin[s]; t < begin[s + 1]; t++)
            cr_assert_float_eq(score[t], want, 1e-4, "segment %zu token %zu: %g vs %g", s, t,
                               (double)score[t], want);
        rel[s][0] = (float)want;
        rel[s][1] = (float)s;
    }
    qsort(rel, 3, sizeof rel[0], by_score);
    uint8_t expect[N] = {0};
    size_t kept = 0;
    for (size_t i = 0; i < 3; i++) {
        size_t s = (size_t)rel[i][1], len = begin[s + 1] - begin[s];
        if (kept + len > 32)
            continue;
        memset(expect + begin[s], 1, len);
        kept += len;
    }
    cr_assert_arr_eq(keep, expect, N, "the most relevant segments that fit are kept");
    st_engine_close(e);
}

typedef struct source {
    const char *text;
    size_t len, at;
} source;

static size_t read_source(void *user, char *buf, size_t cap)
{
    source *s = user;
    size_t n = s->len - s->at < cap ? s->len - s->at : cap;
    if (n > 333)
        n = 333; /* an uneven stream */
    memcpy(buf, s->text + s->at, n);
    s->at += n;
    return n;
}

static char *filler(int repeats, const char *hidden)
{
    const char *f = " The grass is green. The sky is blue. The sun is yellow.";
    size_t cap = (size_t)repeats * strlen(f) + strlen(hidden) + 1;
    char *s = malloc(cap), *w = s;
    for (int i = 0; i < repeats; i++) {
        if (i == repeats / 2)
            w += sprintf(w, "%s", hidden);
        w += sprintf(w, "%s", f);
    }
    return s;
}

static st_status read_text(st_engine *e, const char *text, size_t len, const char *question,
                           uint32_t chunk, st_read_stats *stats, int32_t **kept, size_t *n_kept,
                           st_error *err)
{
    source src = {text, len, 0};
    st_read_params p = {.struct_size = sizeof p, .read = read_source, .read_user = &src,
                        .question = question, .question_len = strlen(question),
                        .chunk = chunk};
    stats->struct_size = sizeof *stats;
    return st_engine_read(e, &p, kept, n_kept, stats, err);
}

Test(read, steps_stay_flat_and_chunks_grow_linearly)
{
    const char *attn[] = {"{plugin: infiniretri, params: {top_k: 16, budget: 32}}",
                          "{plugin: xl3m, params: {segment: 16, budget: 32}}"};
    for (int k = 0; k < 2; k++) {
        st_engine *e = open_with(attn[k]);
        uint64_t chunks[2];
        for (int i = 0; i < 2; i++) {
            char *doc = filler(i ? 160 : 40, " The pass key is 4242. Remember it.");
            st_read_stats stats;
            int32_t *kept = NULL;
            size_t n_kept = 0;
            st_error err = {0};
            cr_assert_eq(read_text(e, doc, strlen(doc), " What is the pass key?", 64, &stats,
                                   &kept, &n_kept, &err), ST_OK, "%s", err.message);
            cr_assert_gt(n_kept, 0);
            cr_assert_leq(n_kept, 32, "at most the budget is kept");
            cr_assert_eq(stats.n_kept, n_kept);
            cr_assert_leq(stats.max_step_tokens, 32 + 64, "a step is kept + one chunk");
            cr_assert_geq(stats.n_chunks * 64, stats.n_tokens, "every token was read");
            cr_assert_eq(stats.n_bytes, strlen(doc));
            chunks[i] = stats.n_chunks;
            st_free(kept);
            free(doc);
        }
        cr_assert_geq(chunks[1], 3 * chunks[0], "4x the text, ~4x the chunks: %llu vs %llu",
                      (unsigned long long)chunks[1], (unsigned long long)chunks[0]);
        cr_assert_leq(chunks[1], 5 * chunks[0]);
        st_engine_close(e);
    }
}

/* Records the bytes each progress call reports; cancels at call `stop`. */
typedef struct progress_log {
    size_t calls, stop, last, first;
    bool increasing;
} progress_log;

static int log_progress(void *user, size_t bytes, size_t unused)
{
    progress_log *l = user;
    (void)unused;
    if (l->calls == 0)
        l->first = bytes;
    l->increasing = l->increasing && bytes > l->last;
    l->last = bytes;
    return ++l->calls == l->stop;
}

Test(read, progress_reports_the_bytes_read_and_can_cancel)
{
    st_engine *e = open_with("{plugin: xl3m, params: {segment: 16, budget: 32}}");
    char *doc = filler(80, " The pass key is 4242. Remember it.");
    size_t len = strlen(doc);
    for (int cancel = 0; cancel < 2; cancel++) {
        source src = {doc, len, 0};
        progress_log log = {.stop = cancel ? 2 : 0, .increasing = true};
        st_read_params p = {.struct_size = sizeof p, .read = read_source, .read_user = &src,
                            .question = " What is the pass key?", .question_len = 22,
                            .chunk = 64, .progress = log_progress, .progress_user = &log};
        st_read_stats stats = {.struct_size = sizeof stats};
        int32_t *kept = NULL;
        size_t n_kept = 0;
        st_error err = {0};
        st_status st = st_engine_read(e, &p, &kept, &n_kept, &stats, &err);
        if (cancel) {
            cr_assert_eq(st, ST_E_CANCELLED, "%s", err.message);
            cr_assert_eq(log.calls, 2);
        } else {
            cr_assert_eq(st, ST_OK, "%s", err.message);
            /* One call per chunk but the last, each further into the
             * document and never past the bytes taken into sentences. */
            cr_assert_eq(log.calls + 1, stats.n_chunks);
            cr_assert(log.increasing);
            cr_assert_gt(log.first, 0);
            cr_assert_lt(log.last, len);
            /* A chunk is 64 tokens of at least a byte each. */
            cr_assert_geq(log.first, 64);
        }
        st_free(kept);
    }
    free(doc);
    st_engine_close(e);
}

Test(read, bad_inputs_are_handled_or_refused_with_a_reason)
{
    st_engine *e = open_with("{plugin: infiniretri, params: {top_k: 16, budget: 32}}");
    st_read_stats stats;
    int32_t *kept = NULL;
    size_t n_kept = 0;
    st_error err = {0};
    const char *q = " What is the pass key?";

    cr_assert_eq(read_text(e, "", 0, q, 64, &stats, &kept, &n_kept, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "the document is empty"), "%s", err.message);
    cr_assert_eq(read_text(e, " \n\n ", 4, q, 64, &stats, &kept, &n_kept, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "the document is empty"), "%s", err.message);
    cr_assert_null(kept);

    st_read_params tiny = {.struct_size = 8};
    cr_assert_eq(st_engine_read(e, &tiny, &kept, &n_kept, NULL, &err), ST_E_ABI);
    cr_assert(strstr(err.message, "st_read_params.struct_size is 8"), "%s", err.message);

    cr_assert_eq(read_text(e, "Some text.", 10, "", 64, &stats, &kept, &n_kept, &err),
                 ST_E_INVALID);
    cr_assert(strstr(err.message, "the question is empty"), "%s", err.message);

    const char *long_q = " What is the pass key that was hidden somewhere in all of this long "
                         "and very repetitive text about grass and sky and sun?";
    cr_assert_eq(read_text(e, "Some text.", 10, long_q, 16, &stats, &kept, &n_kept, &err),
                 ST_E_RANGE);
    cr_assert(strstr(err.message, "longer than a chunk of 16"), "%s", err.message);

    cr_assert_eq(read_text(e, "Some text.", 10, q, 1000, &stats, &kept, &n_kept, &err),
                 ST_E_RANGE);
    cr_assert(strstr(err.message, "does not fit the context"), "%s", err.message);
    cr_assert(strstr(err.message, "the context 192"), "%s", err.message);

    /* One 100k-character line without a sentence end: cut, then read. Its
     * words are the tiny vocabulary's (a few tokens each, not one a byte),
     * which keeps the sanitizer build's forward passes to seconds. */
    size_t len = 100000;
    const char *words = " the grass is green and the sky is blue and the sun is yellow";
    char *line = malloc(len);
    for (size_t i = 0; i < len; i++)
        line[i] = words[i % strlen(words)];
    cr_assert_eq(read_text(e, line, len, q, 64, &stats, &kept, &n_kept, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(stats.n_bytes, len);
    cr_assert_geq(stats.n_tokens, len / 16, "%llu tokens", (unsigned long long)stats.n_tokens);
    cr_assert_geq(stats.n_sentences, stats.n_tokens / 64, "cut at most every 64 tokens");
    cr_assert_leq(n_kept, 32);
    st_free(kept);
    free(line);
    st_engine_close(e);

    e = open_with("{plugin: dense}");
    cr_assert_eq(read_text(e, "Some text.", 10, q, 64, &stats, &kept, &n_kept, &err),
                 ST_E_NOT_FOUND);
    cr_assert(strstr(err.message, "offers " ST_READER_V1), "%s", err.message);
    st_engine_close(e);
}

/* The conformance suite with a host that can score (the engine's): the
 * reader checks run for real (`stretch inspect` skips reader.select, its
 * host has no model to score with). */
Test(read, readers_pass_conformance_with_a_scoring_host)
{
    st_engine *e = open_with("{plugin: dense}");
    const char *names[] = {"infiniretri", "xl3m"};
    for (int i = 0; i < 2; i++) {
        char why[512];
        const st_plugin_entry *entry =
            st_test_load_plugin(ST_TEST_PLUGIN_DIR, "attention", names[i], why, sizeof why);
        cr_assert_not_null(entry, "%s", why);
        st_test_params p;
        st_test_params_init(&p);
        st_error err = {0};
        const msgpack_object *params = st_test_params_validated(entry, &p, &err);
        cr_assert_not_null(params, "%s", err.message);
        static st_conformance_report rep;
        st_status st = st_conformance_run(entry, st_host_services_of(e->host), params, &rep);
        st_test_params_destroy(&p);
        bool ran_select = false;
        for (size_t c = 0; c < rep.n_checks; c++) {
            cr_expect(rep.checks[c].passed, "%s: %s: %s", names[i], rep.checks[c].name,
                      rep.checks[c].message);
            if (!strcmp(rep.checks[c].name, "reader.select"))
                ran_select = !strstr(rep.checks[c].message, "skipped");
        }
        cr_assert_eq(st, ST_OK, "%s", names[i]);
        cr_assert(ran_select, "%s: reader.select ran with a scoring host", names[i]);
    }
    st_engine_close(e);
}
