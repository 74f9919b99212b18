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
            "                              [--text description|name+description] [--json]\n"
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
            "             the paper) or its name followed by the description\n");
}

typedef struct scores {
    double s5, s10, n5, n10;
    double index_s, query_s;
} scores;

static int evaluate(st_retriever *r, const st_mtrb *d, bool with_names, scores *out)
{
    st_error err;
    memset(&err, 0, sizeof err);
    double t0 = st_now_s();
    for (size_t i = 0; i < d->n_tools; i++) {
        const st_mtrb_tool *t = &d->tools[i];
        char *text = NULL;
        size_t len = strlen(t->description);
        if (with_names) {
            len += strlen(t->name) + 2;
            if (!(text = malloc(len + 1)))
                return ST_EXIT_RUNTIME;
            snprintf(text, len + 1, "%s: %s", t->name, t->description);
        }
        st_status st = st_retriever_add(r, t->name, strlen(t->name),
                                        text ? text : t->description, len, &err);
        free(text);
        if (st != ST_OK) {
            fprintf(stderr, "stretch: %s\n", err.message);
            return ST_EXIT_RUNTIME;
        }
    }
    out->index_s = st_now_s() - t0;
    size_t ranked[RANK_DEPTH];
    double query_s = 0;
    for (size_t q = 0; q < d->n_queries; q++) {
        const st_mtrb_query *mq = &d->queries[q];
        st_retrieval *hits = NULL;
        t0 = st_now_s();
        st_status st = st_retriever_query(r, mq->text, strlen(mq->text), RANK_DEPTH, &hits, &err);
        query_s += st_now_s() - t0;
        if (st != ST_OK) {
            fprintf(stderr, "stretch: query %zu: %s\n", q, err.message);
            return ST_EXIT_RUNTIME;
        }
        size_t n = st_retrieval_count(hits);
        for (size_t i = 0; i < n; i++)
            ranked[i] = (size_t)st_retrieval_at(hits, i)->doc;
        st_retrieval_free(hits);
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
    bool with_names = !strcmp(text, "name+description");
    const char *problem = !dataset ? "--dataset restbench|metatool is required"
                          : !dir   ? "give the dataset's DATA_DIR"
                          : (!with_names && strcmp(text, "description"))
                              ? "--text: expected description or name+description"
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
    st_retriever *r = NULL;
    int rc = st_cli_open_retriever(manifest, ST_RETRIEVER_NO_INDEX, &r);
    scores s = {0};
    if (!rc)
        rc = evaluate(r, &d, with_names, &s);
    if (!rc && json) {
        st_json j;
        st_json_init(&j, stdout, false);
        st_json_begin_object(&j);
        st_json_key(&j, "dataset");
        st_json_string(&j, dataset);
        st_json_key(&j, "retriever");
        st_json_string(&j, st_retriever_name(r));
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
        printf("%-10s %-10s %-17s %5s %7s %6s %6s %7s %7s %9s\n", "dataset", "retriever",
               "text", "tools", "queries", "S@5", "S@10", "nDCG@5", "nDCG@10", "ms/query");
        printf("%-10s %-10s %-17s %5zu %7zu %6.2f %6.2f %7.2f %7.2f %9.3f\n", dataset,
               st_retriever_name(r), text, d.n_tools, d.n_queries, s.s5, s.s10, s.n5, s.n10,
               s.query_s * 1e3);
    }
    st_retriever_close(r);
    st_mtrb_free(&d);
    return rc;
}
