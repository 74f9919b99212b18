/*
 * tools/stretch/cmd_bench_prefill.c - `stretch bench-prefill`: prompts of
 * mixed lengths prefilled three ways, one way per run so each run's peak
 * memory is its own: one by one (st_engine_generate each), prepacked
 * (sequences started together: one pass per step holds every prompt's
 * next chunk at its own positions, attending only to itself) and padded to
 * the longest (the same sequences, every prompt right-padded, as a padded
 * batch computes). tools/bench_prefill.sh runs all three and compares.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli_common.h"
#include "commands.h"
#include "engine_cli.h"
#include "json_out.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: stretch bench-prefill --method single|prepacked|padded [-m MANIFEST]\n"
               "                             [--prompts N] [--min N] [--max N] [--seed N]\n"
               "                             [--threads N]\n\n"
               "  Prefills N pseudo-random prompts (seeded; lengths spread evenly over\n"
               "  min..max tokens, defaults 16 prompts of 32..1024) and takes each one's\n"
               "  greedy next token. Prints one JSON object: the method, seconds, peak RSS\n"
               "  before and after, the rows that went through the model and each prompt's\n"
               "  next token (prepacked and single must agree with a greedy manifest).\n"
               "  The context is max + 16 tokens; every sequence has its own cache of it.\n");
}

typedef struct first_token {
    int32_t token;
} first_token;

static int on_first(void *user, int32_t token, const char *text, size_t len)
{
    (void)text;
    (void)len;
    first_token *f = user;
    if (token >= 0 && f->token < 0)
        f->token = token;
    return 0;
}

/* All prompts at once as sequences, each `pad_to` long when set. */
static st_status run_sequences(st_engine *e, int32_t **prompts, const size_t *lens, size_t n,
                               size_t pad_to, int32_t pad, first_token *out, st_error *err)
{
    st_sequence **seqs = calloc(n, sizeof *seqs);
    if (!seqs)
        return ST_E_NOMEM;
    st_status st = ST_OK;
    int32_t *padded = pad_to ? malloc(pad_to * sizeof *padded) : NULL;
    if (pad_to && !padded)
        st = ST_E_NOMEM;
    /* fresh_cache: every prompt is prefilled whole, whatever another
     * sequence holds, so that the methods are timed on the same work. */
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 1, .ignore_eos = true,
                             .fresh_cache = true};
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        if ((st = st_sequence_open(e, &seqs[i], err)) != ST_OK)
            break;
        const int32_t *p = prompts[i];
        size_t len = lens[i];
        if (pad_to) {
            memcpy(padded, prompts[i], lens[i] * sizeof *padded);
            for (size_t t = lens[i]; t < pad_to; t++)
                padded[t] = pad;
            p = padded;
            len = pad_to;
        }
        st = st_sequence_start(seqs[i], p, len, &gp, on_first, &out[i], err);
    }
    uint32_t active = 1;
    while (st == ST_OK && active > 0)
        st = st_engine_step(e, &active, err);
    for (size_t i = 0; i < n && st == ST_OK; i++)
        st = st_sequence_result(seqs[i], NULL, err);
    for (size_t i = 0; i < n; i++)
        st_sequence_close(seqs[i]);
    free(padded);
    free(seqs);
    return st;
}

int st_cmd_bench_prefill(int argc, char **argv)
{
    const char *manifest = NULL, *method = NULL;
    long long n = 16, lo = 32, hi = 1024, seed = 1, v;
    st_engine_options opts = {.struct_size = sizeof opts};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--method") && next) {
            method = argv[++i];
        } else if (!strcmp(a, "--prompts")) {
            if ((n = st_cli_parse_range(a, next, 1, ST_PARALLEL_MAX)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--min")) {
            if ((lo = st_cli_parse_range(a, next, 1, 1 << 20)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--max")) {
            if ((hi = st_cli_parse_range(a, next, 1, 1 << 20)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if ((seed = st_cli_parse_count(a, next, INT32_MAX)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if ((v = st_cli_parse_count(a, next, 1024)) < 0) return ST_EXIT_USAGE;
            opts.n_threads = (uint32_t)v;
            i++;
        } else {
            fprintf(stderr, "stretch bench-prefill: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    if (!method || (strcmp(method, "single") && strcmp(method, "prepacked") &&
                    strcmp(method, "padded"))) {
        fprintf(stderr, "stretch bench-prefill: --method: expected single, prepacked or "
                        "padded\n");
        return ST_EXIT_USAGE;
    }
    if (lo > hi) {
        fprintf(stderr, "stretch bench-prefill: --min %lld is above --max %lld\n", lo, hi);
        return ST_EXIT_USAGE;
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    opts.parallel = (uint32_t)n;
    opts.context = (uint32_t)hi + 16 < ST_CONTEXT_MIN ? ST_CONTEXT_MIN : (uint32_t)hi + 16;
    st_engine *e = NULL;
    int rc = st_cli_open_engine(manifest, &opts, &e);
    if (rc)
        return rc;
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);

    /* Lengths spread evenly over lo..hi, handed out in a seeded order;
     * token ids from the upper three quarters of the vocabulary (no
     * control tokens). */
    size_t *lens = calloc((size_t)n, sizeof *lens);
    int32_t **prompts = calloc((size_t)n, sizeof *prompts);
    first_token *first = calloc((size_t)n, sizeof *first);
    uint64_t x = (uint64_t)seed * 0x9E3779B97F4A7C15ull + 1;
    size_t rows = 0, longest = 0;
    st_status st = lens && prompts && first ? ST_OK : ST_E_NOMEM;
    for (long long i = 0; i < n && st == ST_OK; i++) {
        lens[i] = (size_t)(n > 1 ? lo + (hi - lo) * i / (n - 1) : hi);
        longest = lens[i] > longest ? lens[i] : longest;
        first[i].token = -1;
        if (!(prompts[i] = malloc(lens[i] * sizeof(int32_t))))
            st = ST_E_NOMEM;
        for (size_t t = 0; st == ST_OK && t < lens[i]; t++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            prompts[i][t] = (int32_t)(info.n_vocab / 4 + x % (info.n_vocab - info.n_vocab / 4));
        }
    }
    for (long long i = n - 1; i > 0 && st == ST_OK; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t j = x % (uint64_t)(i + 1);
        size_t tl = lens[i];
        int32_t *tp = prompts[i];
        lens[i] = lens[j], prompts[i] = prompts[j];
        lens[j] = tl, prompts[j] = tp;
    }
    st_error err;
    memset(&err, 0, sizeof err);
    double rss_before = st_peak_rss_bytes() / 1048576.0;
    double t0 = now_s();
    if (st == ST_OK && !strcmp(method, "single")) {
        st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 1, .ignore_eos = true};
        for (long long i = 0; i < n && st == ST_OK; i++) {
            st = st_engine_generate(e, prompts[i], lens[i], &gp, on_first, &first[i], NULL, &err);
            rows += lens[i];
        }
    } else if (st == ST_OK) {
        bool pad = !strcmp(method, "padded");
        st = run_sequences(e, prompts, lens, (size_t)n, pad ? longest : 0,
                           info.eos >= 0 ? info.eos : 0, first, &err);
        for (long long i = 0; i < n; i++)
            rows += pad ? longest : lens[i];
    }
    double seconds = now_s() - t0;
    if (st == ST_OK) {
        st_json j;
        st_json_init(&j, stdout, false);
        st_json_begin_object(&j);
        st_json_key(&j, "method");
        st_json_string(&j, method);
        st_json_key(&j, "prompts");
        st_json_int(&j, n);
        st_json_key(&j, "min");
        st_json_int(&j, lo);
        st_json_key(&j, "max");
        st_json_int(&j, hi);
        st_json_key(&j, "threads");
        st_json_int(&j, info.n_threads);
        st_json_key(&j, "rows");
        st_json_int(&j, (long long)rows);
        st_json_key(&j, "seconds");
        st_json_double(&j, seconds);
        st_json_key(&j, "peak_rss_mb_before");
        st_json_double(&j, rss_before);
        st_json_key(&j, "peak_rss_mb");
        st_json_double(&j, st_peak_rss_bytes() / 1048576.0);
        st_json_key(&j, "next_tokens");
        st_json_begin_array(&j);
        for (long long i = 0; i < n; i++)
            st_json_int(&j, first[i].token);
        st_json_end_array(&j);
        st_json_end_object(&j);
        st_json_end(&j);
    } else {
        fprintf(stderr, "stretch: %s\n", st == ST_E_NOMEM && !err.message[0]
                                             ? "out of memory" : st_cli_safe(err.message));
        rc = ST_EXIT_RUNTIME;
    }
    for (long long i = 0; prompts && i < n; i++)
        free(prompts[i]);
    free(prompts);
    free(lens);
    free(first);
    st_engine_close(e);
    return rc;
}
