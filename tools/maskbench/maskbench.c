/*
 * tools/maskbench/maskbench.c - st-maskbench: the constraint engine's
 * per-token mask time on recorded outputs, without the model, so it can be
 * set beside llguidance's and XGrammar's replay of the same texts
 * (tools/jsonschema_peers.py) in one quiet run.
 *
 *   st-maskbench [-m MANIFEST] [--slow US] DATA_DIR POINTS.jsonl [...]
 *
 * POINTS are `stretch eval jsonschema` points: for each point with an
 * output (the greedy one and every sampled one), the schema DATA_DIR/FILE
 * is compiled as the eval's json-schema sampler compiles it (strict,
 * compact whitespace), the output is tokenized with the strategy's
 * tokenizer, and the token mask is computed before each token and before
 * the end, on a fresh parser (cold, as in a generation). The token trie is
 * built once. Prints one Markdown row per subset: masks, mean, p50, p99
 * and max in microseconds. --slow US lists each mask slower than US with
 * its schema and the output before it (for profiling); --cpu-time times
 * with the thread's CPU clock instead of the wall clock (on a shared
 * machine, where preemption would count as mask time; the tables in
 * docs/RESULTS.md use the wall clock, in quiet runs). --no-share walks
 * every mask from its own state instead of sharing masks between states
 * (cg_masker_set_shared), to measure what the sharing saves.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stretch/stretch.h>

#include "cg_constraint.h"
#include "cg_schema.h"
#include "compile_all.h"

typedef struct bench_vocab {
    st_engine *e;
} bench_vocab;

/* A token is a control token when only special-token parsing reads its
 * text back as itself. */
static bool is_special(st_engine *e, int32_t id, const char *b, size_t len)
{
    if (len < 2 || b[0] != '<')
        return false;
    int32_t *ids = NULL;
    size_t n = 0;
    st_error err = {0};
    bool plain_self = false, special_self = false;
    if (st_engine_tokenize(e, b, len, 0, &ids, &n, &err) == ST_OK)
        plain_self = n == 1 && ids[0] == id;
    st_free(ids);
    ids = NULL;
    if (st_engine_tokenize(e, b, len, ST_ENCODE_PARSE_SPECIAL, &ids, &n, &err) == ST_OK)
        special_self = n == 1 && ids[0] == id;
    st_free(ids);
    return special_self && !plain_self;
}

static bool token_bytes(void *ctx, int32_t id, const char **bytes, size_t *len, bool *special)
{
    bench_vocab *v = ctx;
    st_error err = {0};
    if (st_engine_token_piece(v->e, id, bytes, len, &err) != ST_OK)
        return false;
    *special = is_special(v->e, id, *bytes, *len);
    return true;
}

typedef struct series {
    double *us;
    size_t n, cap;
} series;

static void series_add(series *s, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        double *u = realloc(s->us, cap * sizeof *u);
        if (!u)
            return;
        s->us = u;
        s->cap = cap;
    }
    s->us[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_row(const char *subset, size_t outputs, series *s)
{
    if (!s->n)
        return;
    qsort(s->us, s->n, sizeof *s->us, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += s->us[i];
    size_t p50 = s->n / 2, p99 = (size_t)(0.99 * (double)s->n);
    if (p99 >= s->n)
        p99 = s->n - 1;
    printf("| %s | %zu | %zu | %.1f | %.1f | %.1f | %.1f |\n", subset, outputs, s->n,
           sum / (double)s->n, s->us[p50], s->us[p99], s->us[s->n - 1]);
}

/* Masks along one output on a fresh parser: -1 when the grammar rejects
 * the output (it was not generated under this schema), else the masks. */
static double slow_us = -1;
static const char *slow_file = "";
static bool cpu_time, no_share;

static double now_s(void)
{
    if (!cpu_time)
        return cg_now_s();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int replay(st_engine *e, const cg_vocab *v, const cg_grammar *g, const char *text,
                  series *s)
{
    int32_t *ids = NULL;
    size_t n = 0;
    st_error err = {0};
    if (st_engine_tokenize(e, text, strlen(text), 0, &ids, &n, &err) != ST_OK)
        return -1;
    cg_parser *p = cg_parser_new(g);
    cg_masker *m = p ? cg_masker_new(v, p) : NULL;
    int rc = m ? 0 : -1;
    if (m && no_share)
        cg_masker_set_shared(m, false);
    uint32_t state = p ? cg_parser_start(p) : 0;
    for (size_t i = 0; rc == 0 && i <= n; i++) {
        double t0 = now_s();
        const uint8_t *mask = cg_masker_get(m, state);
        double us = (now_s() - t0) * 1e6;
        series_add(s, us);
        if (slow_us >= 0 && us > slow_us) {
            char *before = NULL;
            size_t blen = 0;
            st_engine_detokenize(e, ids, i, &before, &blen, &err);
            fprintf(stderr, "slow: %s: %.0f us after '%.*s'\n", slow_file, us,
                    (int)(blen > 160 ? 160 : blen), before ? before + (blen > 160 ? blen - 160 : 0) : "");
            st_free(before);
        }
        if (!mask || i == n)
            break;
        if (!((mask[ids[i] >> 3] >> (ids[i] & 7)) & 1))
            rc = -1;
        else if ((state = cg_advance_token(p, v, state, ids[i])) == 0 || state == UINT32_MAX)
            rc = -1;
    }
    if (rc == 0 && !cg_parser_accepting(p, state))
        rc = -1;
    cg_masker_free(m);
    cg_parser_free(p);
    st_free(ids);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: st-maskbench [-m MANIFEST] [--slow US] [--cpu-time] [--no-share] DATA_DIR POINTS.jsonl [...]\n"
                    "       st-maskbench [-m MANIFEST] --compile-only [--subset NAME] [--limit N] "
                    "DATA_DIR > POINTS.jsonl\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *manifest = "manifests/greedy.yaml", *only_subset = NULL;
    bool compile_only = false;
    long limit = -1;
    int a = 1;
    for (; a + 1 < argc && argv[a][0] == '-'; a += 2) {
        if (strcmp(argv[a], "--cpu-time") == 0) {
            cpu_time = true;
            a--;
        } else if (strcmp(argv[a], "--no-share") == 0) {
            no_share = true;
            a--;
        } else if (strcmp(argv[a], "--compile-only") == 0) {
            compile_only = true;
            a--;
        } else if (strcmp(argv[a], "--subset") == 0) {
            only_subset = argv[a + 1];
        } else if (strcmp(argv[a], "--limit") == 0) {
            char *end;
            limit = strtol(argv[a + 1], &end, 10);
            if (*end || limit < 1)
                return usage();
        } else if (strcmp(argv[a], "-m") == 0)
            manifest = argv[a + 1];
        else if (strcmp(argv[a], "--slow") == 0)
            slow_us = atof(argv[a + 1]);
        else
            return usage();
    }
    if (argc - a < (compile_only ? 1 : 2))
        return usage();
    const char *data_dir = argv[a++];
    st_engine *e = NULL;
    st_error err = {0};
    if (st_engine_open(manifest, NULL, &e, &err) != ST_OK) {
        fprintf(stderr, "st-maskbench: %s: %s\n", manifest, err.message);
        return 1;
    }
    bench_vocab bv = {e};
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    double t0 = cg_now_s();
    cg_vocab *v = cg_vocab_new(info.n_vocab, token_bytes, &bv);
    if (!v) {
        fprintf(stderr, "st-maskbench: cannot build the token trie\n");
        st_engine_close(e);
        return 1;
    }
    fprintf(stderr, "st-maskbench: token trie of %d tokens in %.0f ms\n", info.n_vocab,
            (cg_now_s() - t0) * 1e3);
    if (compile_only) {
        int crc = mb_compile_all(v, data_dir, only_subset, limit, stdout);
        cg_vocab_free(v);
        st_engine_close(e);
        return crc;
    }
    printf("| subset | outputs | masks | mask us mean | p50 | p99 | max |\n");
    printf("|---|---|---|---|---|---|---|\n");
    char subset[256] = "";
    series s = {0}, all = {0};
    size_t outputs = 0, all_outputs = 0, rejected = 0;
    int rc = 0;
    for (; a < argc && rc == 0; a++) {
        size_t len = 0;
        char *text = mb_read_file(argv[a], &len);
        if (!text) {
            fprintf(stderr, "st-maskbench: cannot read %s\n", argv[a]);
            rc = 1;
            break;
        }
        /* The first line is the points file's header. */
        for (char *line = strchr(text, '\n'), *nl; line && *++line; line = nl) {
            nl = strchr(line, '\n');
            if (!nl)
                nl = line + strlen(line);
            cg_error jerr;
            cj_value *pt = cj_parse(line, (size_t)(nl - line), &jerr);
            const cj_value *file = cj_get(pt, "file"), *sub = cj_get(pt, "subset");
            const cj_value *out = cj_get(pt, "output"), *samples = cj_get(pt, "samples");
            if (!pt || !file || !sub || !out) {
                cj_free(pt);
                if (!*nl)
                    break;
                continue;
            }
            if (strcmp(sub->str, subset) != 0) {
                print_row(subset, outputs, &s);
                s.n = outputs = 0;
                snprintf(subset, sizeof subset, "%s", sub->str);
            }
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", data_dir, file->str);
            slow_file = file->str;
            size_t slen = 0;
            char *schema = mb_read_file(path, &slen);
            cg_schema_options opt = {.strict = true, .compact = true};
            cg_buf gbnf = {0}, warn = {0};
            cg_grammar g;
            cg_grammar_init(&g);
            bool ok = schema && cg_schema_to_gbnf(schema, slen, &opt, &gbnf, &warn, &jerr) &&
                      cg_gbnf_parse(&g, gbnf.s, gbnf.n, &jerr);
            if (!ok) {
                fprintf(stderr, "st-maskbench: %s: does not compile\n", path);
            } else {
                size_t before = s.n;
                const cj_value *texts[1 + 1000];
                size_t nt = 0;
                texts[nt++] = out;
                for (size_t k = 0; samples && k < samples->n && nt < 1001; k++)
                    if (cj_get(samples->items[k], "output"))
                        texts[nt++] = cj_get(samples->items[k], "output");
                for (size_t k = 0; k < nt; k++) {
                    size_t mark = s.n;
                    if (replay(e, v, &g, texts[k]->str, &s) != 0) {
                        /* An output cut at the token budget is not a sentence;
                         * its masks still count up to the cut. */
                        rejected++;
                    }
                    outputs++;
                    all_outputs++;
                    for (size_t i = mark; i < s.n; i++)
                        series_add(&all, s.us[i]);
                }
                (void)before;
            }
            cg_grammar_free(&g);
            cg_buf_free(&gbnf);
            cg_buf_free(&warn);
            free(schema);
            cj_free(pt);
            if (!*nl)
                break;
        }
        free(text);
    }
    print_row(subset, outputs, &s);
    print_row("all", all_outputs, &all);
    fprintf(stderr, "st-maskbench: %zu outputs, %zu not complete sentences (cut at the token "
                    "budget)\n", all_outputs, rejected);
    free(s.us);
    free(all.us);
    cg_vocab_free(v);
    st_engine_close(e);
    return rc;
}
