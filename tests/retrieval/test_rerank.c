/*
 * The retriever block's `rerank:` against a direct computation on a tiny
 * generated Llama: every candidate's score must equal the sum of the
 * query's log-probs after BOS + the rendered template, computed here with
 * st_engine_tokenize and st_engine_score (the strategy's dense attention
 * with RoPE is the model as trained, as model_score runs it), and the hits
 * must come in that order. Also: a standalone handle refuses to re-rank.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stretch/retrieval.h>
#include <stretch/stretch.h>
#include <stretch/tokenizer.h>

#include "test_dir.h"
#include "tiny_model.h"

static char dir[128];

static const char *path_in(const char *name)
{
    return st_test_path(dir, name);
}

static void write_file(const char *name, const char *text)
{
    st_test_write(dir, name, text);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/st_rerank_%d", (int)getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.n_ctx = 512;
    st_diag d;
    cr_assert_eq(st_gen_tiny_model(&spec, path_in("tiny.gguf"), &d), ST_OK, "%s", d.message);
    write_file("r.yaml", "format: 1\nmodel: tiny.gguf\ncontext: 512\nthreads: 1\n"
                         "plugin-dirs: [" ST_TEST_PLUGIN_DIR "]\n"
                         "tokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
                         "attention: {plugin: dense}\nsamplers: [{plugin: greedy}]\n"
                         "retriever: {plugin: bm25, rerank: 3,\n"
                         "  rerank_template: \"[{id}] {text} =>\"}\n");
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(rerank, .init = setup, .fini = teardown);

static const char *const docs[][2] = {
    {"a", "the cat sat on the mat"}, {"b", "a cat and a dog"}, {"c", "the dog ran"},
    {"d", "cat food"},
};

/* sum of log p(query tokens | BOS + prefix) by the engine's own scoring. */
static double direct(st_engine *e, const char *prefix, const char *query)
{
    int32_t *p = NULL, *q = NULL;
    size_t np = 0, nq = 0;
    st_error err = {0};
    cr_assert_eq(st_engine_tokenize(e, prefix, strlen(prefix), ST_ENCODE_ADD_BOS, &p, &np, &err),
                 ST_OK, "%s", err.message);
    cr_assert_eq(st_engine_tokenize(e, query, strlen(query), 0, &q, &nq, &err), ST_OK);
    int32_t *all = malloc((np + nq) * sizeof *all);
    float *nll = malloc((np + nq) * sizeof *nll);
    memcpy(all, p, np * sizeof *all);
    memcpy(all + np, q, nq * sizeof *all);
    cr_assert_eq(st_engine_score(e, all, np + nq, 0, nll, NULL, NULL, &err), ST_OK, "%s",
                 err.message);
    double sum = 0;
    for (size_t i = np; i < np + nq; i++)
        sum -= nll[i];
    free(all);
    free(nll);
    st_free(p);
    st_free(q);
    return sum;
}

Test(rerank, scores_are_the_query_log_likelihood_given_each_document)
{
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(path_in("r.yaml"), NULL, &e, &err), ST_OK, "%s", err.message);
    st_retriever *r = st_engine_retriever(e);
    cr_assert_not_null(r);
    cr_assert_eq(st_retriever_rerank(r), 3);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(st_retriever_add(r, docs[i][0], 1, docs[i][1], strlen(docs[i][1]), &err),
                     ST_OK, "%s", err.message);
    const char *query = "cat dog";
    /* bm25 matches a, b, c, d; the best three are re-scored, the fourth
     * follows at the lowest re-scored score. */
    st_retrieval *h = NULL;
    cr_assert_eq(st_retriever_query(r, query, strlen(query), 4, &h, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(st_retrieval_count(h), 4);
    double prev = INFINITY;
    for (size_t i = 0; i < 3; i++) {
        const st_retrieved *x = st_retrieval_at(h, i);
        char prefix[256];
        snprintf(prefix, sizeof prefix, "[%s] %s =>", x->id, x->text);
        double want = direct(e, prefix, query);
        cr_assert(fabs(x->score - want) < 1e-3 * (1 + fabs(want)),
                  "rank %zu (%s): %.6f, directly %.6f", i + 1, x->id, (double)x->score, want);
        cr_assert_leq(want, prev + 1e-3, "rank %zu (%s) out of order", i + 1, x->id);
        prev = want;
    }
    cr_assert_eq(st_retrieval_at(h, 3)->score, st_retrieval_at(h, 2)->score);
    /* k below the candidates: the same head. */
    st_retrieval *h1 = NULL;
    cr_assert_eq(st_retriever_query(r, query, strlen(query), 1, &h1, &err), ST_OK);
    cr_assert_eq(st_retrieval_count(h1), 1);
    cr_assert_str_eq(st_retrieval_at(h1, 0)->id, st_retrieval_at(h, 0)->id);
    st_retrieval_free(h1);
    st_retrieval_free(h);
    st_engine_close(e);
}

Test(rerank, a_retriever_without_the_model_refuses_by_name)
{
    const char *dirs[] = {ST_TEST_PLUGIN_DIR};
    st_engine_options o = {.struct_size = sizeof o, .plugin_dirs = dirs, .n_plugin_dirs = 1};
    st_retriever *r = NULL;
    st_error err = {0};
    cr_assert_eq(st_retriever_open(path_in("r.yaml"), &o, 0, &r, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(st_retriever_add(r, "a", 1, "cat", 3, &err), ST_OK);
    st_retrieval *h = NULL;
    cr_assert_eq(st_retriever_query(r, "cat", 3, 1, &h, &err), ST_E_UNAVAILABLE);
    cr_assert(strstr(err.message, "rerank"), "%s", err.message);
    st_retriever_close(r);
}

Test(rerank, a_bad_rerank_key_is_refused_with_its_place)
{
    write_file("bad.yaml", "format: 1\nextends: r.yaml\nretriever: {rerank_template: \"no slot\"}\n");
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_neq(st_engine_open(path_in("bad.yaml"), NULL, &e, &err), ST_OK);
    cr_assert(strstr(err.message, "bad.yaml:3") && strstr(err.message, "{text}"), "%s",
              err.message);
    write_file("bad2.yaml", "format: 1\nextends: r.yaml\nretriever: {rerank: 101}\n");
    cr_assert_neq(st_engine_open(path_in("bad2.yaml"), NULL, &e, &err), ST_OK);
    cr_assert(strstr(err.message, "rerank"), "%s", err.message);
}
