/*
 * tools/stretch/mtrb.h - the Massive Tool Retrieval Benchmark (MTRB) as
 * `stretch eval retrieval` reads it: a tool list and 90 test queries with
 * the positions of their gold tools in that list, for the RestBench and
 * MetaTool subsets (docs/datasets.md says where the files come from), and
 * the paper's metrics, Sufficiency@k and nDCG@k.
 */
#ifndef ST_CLI_MTRB_H
#define ST_CLI_MTRB_H

#include <stdbool.h>
#include <stddef.h>

typedef struct st_mtrb_tool {
    char *name;          /* RestBench: "GET /search/movie"; MetaTool: the key */
    char *description;   /* the benchmark's (rewritten) description */
    char *example;       /* the tool list's usage example (RestBench's
                            Example.Scenario), NULL where it gives none */
} st_mtrb_tool;

typedef struct st_mtrb_query {
    char *text;
    size_t *gold;        /* positions in the tool list */
    size_t n_gold;
} st_mtrb_query;

typedef struct st_mtrb {
    st_mtrb_tool *tools;
    size_t n_tools;
    st_mtrb_query *queries;
    size_t n_queries;
} st_mtrb;

/* Read DATA_DIR of `dataset` ("restbench" or "metatool"). Every gold
 * position must name the tool the query file names. false with a message
 * (file, entry and what was expected) printed on failure. */
bool st_mtrb_load(const char *dataset, const char *dir, st_mtrb *out);
void st_mtrb_free(st_mtrb *d);

/* Whether every gold document is among the first k of `ranked` (n ranked). */
bool st_mtrb_sufficient(const size_t *ranked, size_t n, const size_t *gold, size_t n_gold,
                        size_t k);
/* nDCG@k with binary relevance: DCG = sum over ranks i <= k holding a gold
 * document of 1/log2(i+1), divided by the DCG of the ideal ranking (all
 * min(n_gold, k) gold documents first). */
double st_mtrb_ndcg(const size_t *ranked, size_t n, const size_t *gold, size_t n_gold,
                    size_t k);

#endif
