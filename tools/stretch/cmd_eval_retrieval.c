/*
 * tools/stretch/cmd_eval_retrieval.c - `stretch eval retrieval`: tool
 * retrieval on MTRB (RestBench or MetaTool): index the tool list with the
 * strategy's retriever, rank the tools for each of the test queries, and
 * report Sufficiency@5/@10 and nDCG@5/@10 (the MTRB paper's definitions,
 * docs/retrieval.md) with the time per query.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "engine_cli.h"
#include "eval_common.h"
#include "json_out.h"
#include "mtrb.h"

#define RANK_DEPTH 10

static void usage(FILE *f)
{
    fprintf(f,
            "usage: stretch eval retrieval -m MANIFEST --dataset restbench|metatool\n"
            "                              [--text [name+]description[+example]] [--json]\n"
            "                              [--fuse MANIFEST2 [--rrf-k K]]\n"
            "                              DATA_DIR\n\n"
            "  Indexes the dataset's tools with the manifest's retriever (its `index:` is\n"
            "  not used), ranks them for every test query and prints Sufficiency@5/@10\n"
            "  (share of queries whose gold tools are all in the top k) and nDCG@5/@10, in\n"
            "  percent, with the mean time per query.\n\n"
            "  DATA_DIR   the dataset's folder: restbench holds tmdb_tool_rewrite.json\n"
            "             and mtr_restbench_test.json, metatool holds\n"
            "             ts_metatool_api_list_rewrite.json and mtr_metatool_test.json\n"
            "             (docs/datasets.md)\n"
            "  --text     what a tool's document is: its description (default, as in\n"
            "             the paper), with name+ its name first (\"NAME: ...\"), with\n"
            "             +example the usage example the tool list gives after it\n"
            "             (\" Example: ...\"; RestBench's Example.Scenario, MetaTool has\n"
            "             none): description, name+description, description+example\n"
            "             or name+description+example\n"
            "  --fuse     also rank with MANIFEST2's retriever and fuse the two rankings\n"
            "             by reciprocal rank: score = sum of 1 / (K + rank), K = --rrf-k\n"
            "             (default 60)\n");
}

typedef struct scores {
    double s5, s10, n5, n10;
    double index_s, query_s;
} scores;

/* What a tool's document is made of (--text). */
typedef struct text_shape {
    bool names;    /* "NAME: " first */
    bool examples; /* " Example: SCENARIO" last, where the tool list has one */
} text_shape;

static const char *const text_choices[] = {"description", "name+description",
                                           "description+example",
                                           "name+description+example"};

static bool parse_text(const char *text, text_shape *out)
{
    for (size_t i = 0; i < sizeof text_choices / sizeof text_choices[0]; i++)
        if (!strcmp(text, text_choices[i])) {
            out->names = i & 1;
            out->examples = i >= 2;
            return true;
        }
    return false;
}

/* The tool's document: [NAME ": "] DESCRIPTION [" Example: " SCENARIO]. */
static char *tool_text(const st_mtrb_tool *t, text_shape shape)
{
    const char *name = shape.names ? t->name : "", *sep = shape.names ? ": " : "";
    const char *ex = shape.examples && t->example ? t->example : "";
    const char *ex_sep = *ex ? " Example: " : "";
    size_t n = strlen(name) + strlen(sep) + strlen(t->description) + strlen(ex_sep) +
               strlen(ex) + 1;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s%s%s%s%s", name, sep, t->description, ex_sep, ex);
    return out;
}

static int add_tools(st_retriever *r, const st_mtrb *d, text_shape shape)
{
    /* All tools in one batch, so an encoder embeds them together. */
    st_error err;
    memset(&err, 0, sizeof err);
    size_t n = d->n_tools;
    const char **ids = calloc(n ? n : 1, sizeof *ids), **texts = calloc(n ? n : 1, sizeof *texts);
    size_t *id_lens = calloc(n ? n : 1, sizeof *id_lens);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    char **owned = calloc(n ? n : 1, sizeof *owned);
    int rc = ids && texts && id_lens && lens && owned ? 0 : ST_EXIT_RUNTIME;
    for (size_t i = 0; i < n && !rc; i++) {
        const st_mtrb_tool *t = &d->tools[i];
        ids[i] = t->name;
        id_lens[i] = strlen(t->name);
        if (!(owned[i] = tool_text(t, shape))) {
            rc = ST_EXIT_RUNTIME;
            break;
        }
        texts[i] = owned[i];
        lens[i] = strlen(owned[i]);
    }
    if (!rc && st_retriever_add_batch(r, n, ids, id_lens, texts, lens, &err) != ST_OK) {
        fprintf(stderr, "stretch: %s\n", err.message);
        rc = ST_EXIT_RUNTIME;
    }
    for (size_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(ids);
    free(texts);
    free(id_lens);
    free(lens);
    return rc;
}

/* Reciprocal-rank fusion (Cormack et al., 2009): a tool's score is the sum
 * over the rankings of 1 / (rrf_k + rank), rank from 1; every tool each
 * retriever returns counts. Both indexes hold the tools in list order, so
 * document indices agree. */
typedef struct fused {
    size_t doc;
    double score;
} fused;

static int fused_cmp(const void *a, const void *b)
{
    const fused *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

/* The top RANK_DEPTH of `query` by r[0] alone, or fused with r[1]. */
static int rank_query(st_retriever *const *r, size_t n_r, size_t n_docs, double rrf_k,
                      const char *query, size_t *ranked, size_t *n_ranked, double *query_s)
{
    st_error err;
    memset(&err, 0, sizeof err);
    fused *all = calloc(n_docs ? n_docs : 1, sizeof *all);
    if (!all)
        return ST_EXIT_RUNTIME;
    for (size_t i = 0; i < n_docs; i++)
        all[i].doc = i;
    size_t depth = n_r > 1 ? n_docs : RANK_DEPTH;
    for (size_t k = 0; k < n_r; k++) {
        st_retrieval *hits = NULL;
        double t0 = st_now_s();
        st_status st = st_retriever_query(r[k], query, strlen(query), depth, &hits, &err);
        *query_s += st_now_s() - t0;
        if (st != ST_OK) {
            fprintf(stderr, "stretch: %s\n", err.message);
            free(all);
            return ST_EXIT_RUNTIME;
        }
        for (size_t i = 0; i < st_retrieval_count(hits); i++) {
            size_t doc = (size_t)st_retrieval_at(hits, i)->doc;
            all[doc].score += n_r > 1 ? 1.0 / (rrf_k + (double)(i + 1))
                                      : (double)(RANK_DEPTH - i); /* keeps the order */
        }
        st_retrieval_free(hits);
    }
    qsort(all, n_docs, sizeof *all, fused_cmp);
    *n_ranked = 0;
    for (size_t i = 0; i < n_docs && i < RANK_DEPTH && all[i].score > 0; i++)
        ranked[(*n_ranked)++] = all[i].doc;
    free(all);
    return 0;
}

static int evaluate(st_retriever *const *r, size_t n_r, double rrf_k, const st_mtrb *d,
                    text_shape shape, scores *out)
{
    double t0 = st_now_s();
    for (size_t k = 0; k < n_r; k++) {
        int rc = add_tools(r[k], d, shape);
        if (rc)
            return rc;
    }
    out->index_s = st_now_s() - t0;
    size_t ranked[RANK_DEPTH], n = 0;
    double query_s = 0;
    for (size_t q = 0; q < d->n_queries; q++) {
        const st_mtrb_query *mq = &d->queries[q];
        int rc = rank_query(r, n_r, d->n_tools, rrf_k, mq->text, ranked, &n, &query_s);
        if (rc)
            return rc;
        out->s5 += st_mtrb_sufficient(ranked, n, mq->gold, mq->n_gold, 5);
        out->s10 += st_mtrb_sufficient(ranked, n, mq->gold, mq->n_gold, 10);
        out->n5 += st_mtrb_ndcg(ranked, n, mq->gold, mq->n_gold, 5);
        out->n10 += st_mtrb_ndcg(ranked, n, mq->gold, mq->n_gold, 10);
    }
    double nq = d->n_queries ? (double)d->n_queries : 1.0;
    out->s5 *= 100.0 / nq;
    out->s10 *= 100.0 / nq;
    out->n5 *= 100.0 / nq;
    out->n10 *= 100.0 / nq;
    out->query_s = query_s / nq;
    return 0;
}

int st_cmd_eval_retrieval(int argc, char **argv)
{
    const char *manifest = NULL, *dataset = NULL, *dir = NULL, *text = "description";
    const char *fuse = NULL;
    long long rrf_k = 60;
    bool json = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--dataset") && next) {
            dataset = argv[++i];
        } else if (!strcmp(a, "--text") && next) {
            text = argv[++i];
        } else if (!strcmp(a, "--fuse") && next) {
            fuse = argv[++i];
        } else if (!strcmp(a, "--rrf-k")) {
            if ((rrf_k = st_cli_parse_range(a, next, 1, 100000)) < 0)
                return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "stretch eval retrieval: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return ST_EXIT_USAGE;
        } else if (!dir) {
            dir = a;
        } else {
            fprintf(stderr, "stretch eval retrieval: one DATA_DIR only\n");
            return ST_EXIT_USAGE;
        }
    }
    text_shape shape = {0};
    const char *problem = !dataset ? "--dataset restbench|metatool is required"
                          : !dir   ? "give the dataset's DATA_DIR"
                          : !parse_text(text, &shape)
                              ? "--text: expected description, name+description, "
                                "description+example or name+description+example"
                              : NULL;
    if (problem) {
        fprintf(stderr, "stretch eval retrieval: %s\n", problem);
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    st_mtrb d;
    if (!st_mtrb_load(dataset, dir, &d))
        return ST_EXIT_MODEL;
    st_retriever *r = NULL, *r2 = NULL;
    st_engine *e = NULL, *e2 = NULL;
    int rc = st_cli_open_ranker(manifest, ST_RETRIEVER_NO_INDEX, &r, &e);
    if (!rc && fuse)
        rc = st_cli_open_ranker(fuse, ST_RETRIEVER_NO_INDEX, &r2, &e2);
    if (!rc && (st_retriever_count(r) || (r2 && st_retriever_count(r2)))) {
        fprintf(stderr, "stretch eval retrieval: a re-ranking strategy opens with its "
                "`index:`; give one that names none\n");
        rc = ST_EXIT_USAGE;
    }
    char name[128];
    snprintf(name, sizeof name, "%s%s%s", r ? st_retriever_name(r) : "", r2 ? "+" : "",
             r2 ? st_retriever_name(r2) : "");
    scores s = {0};
    st_retriever *both[2] = {r, r2};
    if (!rc)
        rc = evaluate(both, r2 ? 2 : 1, (double)rrf_k, &d, shape, &s);
    if (!rc && json) {
        st_json j;
        st_json_init(&j, stdout, false);
        st_json_begin_object(&j);
        st_json_key(&j, "dataset");
        st_json_string(&j, dataset);
        st_json_key(&j, "retriever");
        st_json_string(&j, name);
        if (r2) {
            st_json_key(&j, "rrf_k");
            st_json_int(&j, rrf_k);
        }
        st_json_key(&j, "text");
        st_json_string(&j, text);
        st_json_key(&j, "tools");
        st_json_uint(&j, d.n_tools);
        st_json_key(&j, "queries");
        st_json_uint(&j, d.n_queries);
        const char *keys[] = {"s@5", "s@10", "ndcg@5", "ndcg@10"};
        const double vals[] = {s.s5, s.s10, s.n5, s.n10};
        for (int i = 0; i < 4; i++) {
            st_json_key(&j, keys[i]);
            st_json_double(&j, vals[i]);
        }
        st_json_key(&j, "index_s");
        st_json_double(&j, s.index_s);
        st_json_key(&j, "query_ms");
        st_json_double(&j, s.query_s * 1e3);
        st_json_end_object(&j);
        st_json_end(&j);
    } else if (!rc) {
        printf("%-10s %-10s %-24s %5s %7s %6s %6s %7s %7s %9s\n", "dataset", "retriever",
               "text", "tools", "queries", "S@5", "S@10", "nDCG@5", "nDCG@10", "ms/query");
        printf("%-10s %-10s %-24s %5zu %7zu %6.2f %6.2f %7.2f %7.2f %9.3f\n", dataset,
               name, text, d.n_tools, d.n_queries, s.s5, s.s10, s.n5, s.n10,
               s.query_s * 1e3);
    }
    st_cli_close_ranker(r2, e2);
    st_cli_close_ranker(r, e);
    st_mtrb_free(&d);
    return rc;
}
