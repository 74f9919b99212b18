/*
 * The hybrid retriever against a direct computation: the bm25 and embedding
 * retrievers are opened alone over the same documents (the tiny generated
 * BERT as the encoder), their scores for every document fused here by the
 * formulas of docs/plugins/hybrid.md, and the hybrid's ranking and scores
 * must equal that. Also its index's save/load round trip and refusals.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stretch/retrieval.h>

#include "test_dir.h"
#include "tiny_bert.h"

static char dir[128];

static const char *path_in(const char *name)
{
    return st_test_path(dir, name);
}

static void write_file(const char *name, const char *text)
{
    st_test_write(dir, name, text);
}

#define BASE "format: 1\ntokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n" \
             "attention: {plugin: dense}\nsamplers: [{plugin: greedy}]\n"

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/st_hybrid_%d", (int)getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(tb_write(path_in("bert.gguf"), 11, NULL, NULL), ST_OK);
    write_file("bm25.yaml", BASE "retriever: {plugin: bm25, params: {k1: 1.2, b: 0.75}}\n");
    write_file("emb.yaml", BASE "retriever: {plugin: embedding, params: {model: bert.gguf}}\n");
    write_file("rrf.yaml", BASE "retriever: {plugin: hybrid, params: {model: bert.gguf, "
                                "fusion: rrf, weight: 0.6, rrf_k: 2}}\n");
    write_file("wsum.yaml", BASE "retriever: {plugin: hybrid, params: {model: bert.gguf, "
                                 "fusion: weighted, weight: 0.3}}\n");
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(hybrid, .init = setup, .fini = teardown);

static const char *const docs[][2] = {
    {"d0", "the cat sat"}, {"d1", "dogs playing"},    {"d2", "a b c"},
    {"d3", "the cat"},     {"d4", "cat a b the dogs"}, {"d5", "playing c"},
};
#define N_DOCS 6
static const char *const queries[] = {"the cat", "dogs", "a b playing", "zebra", "c c c sat"};

static st_retriever *open_with(const char *yaml)
{
    const char *dirs[] = {ST_TEST_PLUGIN_DIR};
    st_engine_options o = {.struct_size = sizeof o, .n_threads = 1, .plugin_dirs = dirs,
                           .n_plugin_dirs = 1};
    st_retriever *r = NULL;
    st_error err = {0};
    cr_assert_eq(st_retriever_open(path_in(yaml), &o, ST_RETRIEVER_NO_INDEX, &r, &err), ST_OK,
                 "%s", err.message);
    for (int i = 0; i < N_DOCS; i++)
        cr_assert_eq(st_retriever_add(r, docs[i][0], 2, docs[i][1], strlen(docs[i][1]), &err),
                     ST_OK, "%s", err.message);
    return r;
}

/* Every document's score (0 / unranked where the retriever gives no hit)
 * and its rank from 1 (0 = not a hit). */
static void scores_of(st_retriever *r, const char *q, double *score, int *rank)
{
    st_retrieval *h = NULL;
    st_error err = {0};
    cr_assert_eq(st_retriever_query(r, q, strlen(q), N_DOCS, &h, &err), ST_OK, "%s",
                 err.message);
    for (int d = 0; d < N_DOCS; d++)
        score[d] = 0, rank[d] = 0;
    for (size_t i = 0; i < st_retrieval_count(h); i++) {
        const st_retrieved *x = st_retrieval_at(h, i);
        score[x->doc] = x->score;
        rank[x->doc] = (int)i + 1;
    }
    st_retrieval_free(h);
}

static void expected(bool rrf, double w, double k, const char *q, double *want)
{
    st_retriever *lex = open_with("bm25.yaml"), *dense = open_with("emb.yaml");
    double ls[N_DOCS], ds[N_DOCS];
    int lr[N_DOCS], dr[N_DOCS];
    scores_of(lex, q, ls, lr);
    scores_of(dense, q, ds, dr);
    st_retriever_close(lex);
    st_retriever_close(dense);
    double lmin = INFINITY, lmax = -INFINITY, dmin = INFINITY, dmax = -INFINITY;
    for (int d = 0; d < N_DOCS; d++) {
        lmin = fmin(lmin, ls[d]), lmax = fmax(lmax, ls[d]);
        dmin = fmin(dmin, ds[d]), dmax = fmax(dmax, ds[d]);
    }
    for (int d = 0; d < N_DOCS; d++) {
        cr_assert_gt(dr[d], 0, "the embedding ranks every document");
        if (rrf)
            want[d] = w / (k + dr[d]) + (lr[d] ? (1 - w) / (k + lr[d]) : 0.0);
        else
            want[d] = w * (dmax > dmin ? (ds[d] - dmin) / (dmax - dmin) : 0) +
                      (1 - w) * (lmax > lmin ? (ls[d] - lmin) / (lmax - lmin) : 0);
    }
}

static void check_against_direct(const char *yaml, bool rrf, double w, double k)
{
    st_retriever *r = open_with(yaml);
    for (size_t qi = 0; qi < sizeof queries / sizeof *queries; qi++) {
        const char *q = queries[qi];
        double want[N_DOCS];
        expected(rrf, w, k, q, want);
        st_retrieval *h = NULL;
        st_error err = {0};
        cr_assert_eq(st_retriever_query(r, q, strlen(q), N_DOCS, &h, &err), ST_OK, "%s",
                     err.message);
        cr_assert_eq(st_retrieval_count(h), N_DOCS, "'%s': every document is a hit", q);
        for (size_t i = 0; i < N_DOCS; i++) {
            const st_retrieved *x = st_retrieval_at(h, i);
            cr_assert(fabs(x->score - want[x->doc]) < 1e-5, "%s '%s' rank %zu: %s scores %.7f, "
                      "directly %.7f", yaml, q, i + 1, x->id, (double)x->score, want[x->doc]);
            /* In order: no document left out scores clearly above this one. */
            for (int d = 0; d < N_DOCS; d++) {
                bool listed = false;
                for (size_t j = 0; j <= i; j++)
                    listed |= st_retrieval_at(h, j)->doc == (uint64_t)d;
                cr_assert(listed || want[d] <= want[x->doc] + 1e-6,
                          "%s '%s': document %d (%.7f) ranked below %s (%.7f)", yaml, q, d,
                          want[d], x->id, want[x->doc]);
            }
        }
        st_retrieval_free(h);
    }
    st_retriever_close(r);
}

Test(hybrid, rrf_equals_the_direct_fusion_of_bm25_and_embedding)
{
    check_against_direct("rrf.yaml", true, 0.6, 2.0);
}

Test(hybrid, weighted_sum_equals_the_direct_fusion_of_normalised_scores)
{
    check_against_direct("wsum.yaml", false, 0.3, 0.0);
}

Test(hybrid, index_saves_loads_and_refuses_foreign_files)
{
    st_retriever *r = open_with("wsum.yaml");
    st_error err = {0};
    st_retrieval *before = NULL, *after = NULL;
    cr_assert_eq(st_retriever_query(r, "the cat", 7, N_DOCS, &before, &err), ST_OK);
    cr_assert_eq(st_retriever_save(r, path_in("h.idx"), &err), ST_OK, "%s", err.message);
    st_retriever_close(r);

    const char *dirs[] = {ST_TEST_PLUGIN_DIR};
    st_engine_options o = {.struct_size = sizeof o, .n_threads = 1, .plugin_dirs = dirs,
                           .n_plugin_dirs = 1};
    cr_assert_eq(st_retriever_open(path_in("wsum.yaml"), &o, ST_RETRIEVER_NO_INDEX, &r, &err),
                 ST_OK, "%s", err.message);
    cr_assert_eq(st_retriever_load(r, path_in("h.idx"), &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_retriever_count(r), N_DOCS);
    cr_assert_eq(st_retriever_query(r, "the cat", 7, N_DOCS, &after, &err), ST_OK);
    for (size_t i = 0; i < N_DOCS; i++) {
        cr_assert_eq(st_retrieval_at(after, i)->doc, st_retrieval_at(before, i)->doc);
        cr_assert_eq(st_retrieval_at(after, i)->score, st_retrieval_at(before, i)->score);
    }
    cr_assert_str_eq(st_retrieval_at(after, 0)->text, docs[st_retrieval_at(after, 0)->doc][1]);
    st_retrieval_free(before);
    st_retrieval_free(after);

    /* Truncated, a bm25 index, an embedding index: refused by name, the
     * index kept. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && head -c 200 h.idx > cut.idx", dir);
    cr_assert_eq(system(cmd), 0);
    cr_assert_neq(st_retriever_load(r, path_in("cut.idx"), &err), ST_OK);
    cr_assert(strstr(err.message, "cut.idx") && strstr(err.message, "truncated"),
              "%s", err.message);
    const char *other[] = {"bm25.yaml", "emb.yaml"};
    for (int i = 0; i < 2; i++) {
        st_retriever *x = open_with(other[i]);
        cr_assert_eq(st_retriever_save(x, path_in("other.idx"), &err), ST_OK);
        st_retriever_close(x);
        cr_assert_neq(st_retriever_load(r, path_in("other.idx"), &err), ST_OK);
        cr_assert(strstr(err.message, "other.idx") && strstr(err.message, "not a hybrid index"),
                  "%s", err.message);
    }
    cr_assert_eq(st_retriever_count(r), N_DOCS);
    st_retriever_close(r);
}
