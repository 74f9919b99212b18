/*
 * A model with a learned absolute position table (GGUF position_embd.weight,
 * GPT-2 style) through the public engine API on tiny generated models: the
 * table is added to the token embeddings, the context may not exceed it,
 * long-clip stretches it (positions up to `keep` read the same rows as the
 * model's table, later ones read the stretched rows), and a position past
 * the table fails cleanly even under a bounded attention strategy.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stretch/stretch.h>

#include "tiny_model.h"

enum { ROWS = 32 };

static char dir[256];
static char with_table[300], without_table[300];

static void gen(const char *path, uint32_t rows)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = ROWS;
    spec.n_pos_table = rows;
    st_diag d;
    cr_assert_eq(st_gen_tiny_model(&spec, path, &d), ST_OK, "%s", d.message);
}

static void make_models(void)
{
    snprintf(dir, sizeof dir, "/tmp/st_pos_table_%d", (int)getpid());
    mkdir(dir, 0700);
    snprintf(with_table, sizeof with_table, "%s/table.gguf", dir);
    snprintf(without_table, sizeof without_table, "%s/plain.gguf", dir);
    gen(with_table, ROWS);
    gen(without_table, 0);
}

static void cleanup(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(pos_table, .init = make_models, .fini = cleanup);

static const char *write_manifest(const char *model, int context, const char *posenc,
                                  const char *attention)
{
    static char path[300];
    snprintf(path, sizeof path, "%s/s.yaml", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "format: 1\nmodel: %s\ncontext: %d\nthreads: 2\ntokenizer: {plugin: bpe}\n"
            "positional-encoding: %s\nattention: %s\nsamplers:\n  - plugin: greedy\n",
            model, context, posenc, attention);
    fclose(f);
    return path;
}

static st_engine *open_ok(const char *model, int context, const char *posenc,
                          const char *attention)
{
    st_engine *e = NULL;
    st_error err = {0};
    st_status st = st_engine_open(write_manifest(model, context, posenc, attention), NULL, &e,
                                  &err);
    cr_assert_eq(st, ST_OK, "open (%s, context %d): %s", posenc, context, err.message);
    return e;
}

static void tokens(int32_t *tok, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tok[i] = (int32_t)(3 + (i * 2654435761u + 7u) % 400u);
}

static void score(st_engine *e, const int32_t *tok, size_t n, float *nll)
{
    st_error err = {0};
    cr_assert_eq(st_engine_score(e, tok, n, 0, nll, NULL, NULL, &err), ST_OK, "%s", err.message);
}

/* Score tok[0..n) on `model` at context n with `posenc` and dense attention. */
static void score_with(const char *model, const char *posenc, const int32_t *tok, size_t n,
                       float *nll)
{
    st_engine *e = open_ok(model, (int)n, posenc, "{plugin: dense}");
    score(e, tok, n, nll);
    st_engine_close(e);
}

Test(pos_table, added_to_the_embeddings)
{
    int32_t tok[ROWS];
    float a[ROWS], b[ROWS];
    tokens(tok, ROWS);
    /* The same random weights but for the table (generated last). */
    score_with(with_table, "{plugin: nope}", tok, ROWS, a);
    score_with(without_table, "{plugin: nope}", tok, ROWS, b);
    size_t differ = 0;
    for (size_t i = 1; i < ROWS; i++) {
        cr_assert(isfinite(a[i]) && isfinite(b[i]));
        differ += fabsf(a[i] - b[i]) > 1e-3f;
    }
    cr_assert_eq(differ, ROWS - 1, "the table must change every score (%zu of %d did)", differ,
                 ROWS - 1);
}

Test(pos_table, context_beyond_the_table_is_refused)
{
    st_engine *e = NULL;
    st_error err = {0};
    const char *path = write_manifest(with_table, 2 * ROWS, "{plugin: nope}", "{plugin: dense}");
    cr_assert_eq(st_engine_open(path, NULL, &e, &err), ST_E_RANGE);
    cr_assert_null(e);
    cr_assert(strstr(err.message, path) && strstr(err.message, "context 64") &&
                  strstr(err.message, "learned position table (32 rows") &&
                  strstr(err.message, "long-clip"),
              "%s", err.message);
    /* long-clip on a model without a table: refused at configure. */
    path = write_manifest(without_table, ROWS, "{plugin: long-clip}", "{plugin: dense}");
    cr_assert_neq(st_engine_open(path, NULL, &e, &err), ST_OK);
    cr_assert(strstr(err.message, "no learned absolute position table"), "%s", err.message);
}

Test(pos_table, long_clip_stretches_the_table)
{
    /* keep 8, ratio 4: 32 rows -> 8 + 4 * 24 = 104. Slot 8 holds row 8,
     * slots 9-11 blend rows 8 and 9, slot 12 holds row 9, ... */
    enum { N = 100 };
    int32_t tok[N];
    float base[ROWS], got[N];
    tokens(tok, N);
    score_with(with_table, "{plugin: nope}", tok, ROWS, base);
    score_with(with_table, "{plugin: long-clip, params: {keep: 8, ratio: 4}}", tok, N, got);
    for (size_t i = 1; i < N; i++)
        cr_assert(isfinite(got[i]) && got[i] >= 0.0f, "token %zu: nll %g", i, got[i]);
    /* nll[i] comes from the logits at position i - 1. Positions 0..8 read
     * the model's own rows: the same scores up to token 9. */
    for (size_t i = 1; i <= 9; i++)
        cr_assert(fabsf(got[i] - base[i]) < 1e-4f * fmaxf(1.0f, base[i]),
                  "token %zu: %g with long-clip, %g without", i, got[i], base[i]);
    /* Position 9 reads a blend of rows 8 and 9, not row 9: from token 10
     * on, the scores differ. */
    for (size_t i = 10; i < ROWS; i++)
        cr_assert(fabsf(got[i] - base[i]) > 1e-4f, "token %zu: unchanged (%g)", i, got[i]);
}

Test(pos_table, position_past_the_table_fails_cleanly)
{
    /* Streaming keeps the cache bounded, but positions still grow: the
     * token at position 32 has no row. The error names the table; the
     * engine stays usable. */
    enum { N = 40 };
    int32_t tok[N];
    float nll[N];
    tokens(tok, N);
    st_engine *e = open_ok(with_table, ROWS, "{plugin: nope}",
                           "{plugin: streaming, params: {sinks: 4, window: 12}}");
    st_error err = {0};
    cr_assert_neq(st_engine_score(e, tok, N, 0, nll, NULL, NULL, &err), ST_OK);
    cr_assert(strstr(err.message, "beyond the model's learned position table (32 rows)"), "%s",
              err.message);
    score(e, tok, ROWS, nll);
    for (size_t i = 1; i < ROWS; i++)
        cr_assert(isfinite(nll[i]));
    st_engine_close(e);
}
