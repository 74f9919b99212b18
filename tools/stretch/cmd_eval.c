/*
 * tools/stretch/cmd_eval.c - `stretch eval ppl`: perplexity of a text file
 * under a strategy, overall and by position within the window, so a
 * strategy's behaviour past the trained length shows as a curve.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "engine_cli.h"
#include "json_out.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: stretch eval ppl [-m MANIFEST] [options] TEXT_FILE\n"
            "       stretch eval passkey [-m MANIFEST] [options]   (see --help there)\n\n"
            "  Tokenizes the file, cuts it into windows of --length tokens and scores\n"
            "  every token of each window from a fresh cache (token 0 of a window is\n"
            "  not scored). Reports perplexity overall and per position bucket.\n\n"
            "  --length N       tokens per window (default: the engine's context)\n"
            "  --windows N      score at most N windows (default 4)\n"
            "  --buckets N      position buckets (default 8)\n"
            "  --chunk N        tokens per forward block (default 512)\n"
            "  --threads N      worker threads\n"
            "  --csv FILE       write bucket,start,end,tokens,nll,ppl rows\n"
            "  --json           print the result as JSON\n");
}

typedef struct progress {
    double t0;
    size_t base, total;
    bool tty;
} progress;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A progress bar with rate and ETA on stderr (only on a terminal). */
static int on_progress(void *user, size_t done, size_t total)
{
    progress *p = user;
    (void)total;
    if (!p->tty)
        return 0;
    size_t all = p->base + done;
    double dt = now_s() - p->t0;
    double rate = dt > 0 ? all / dt : 0;
    double eta = rate > 0 ? (p->total - all) / rate : 0;
    int width = 30, fill = (int)(width * (double)all / (double)p->total);
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu tokens  %.0f tok/s  ETA %.0fs ", fill,
            "##############################", width - fill, "", all, p->total, rate, eta);
    fflush(stderr);
    return 0;
}

int st_cmd_eval_passkey(int argc, char **argv);

int st_cmd_eval(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "passkey") == 0)
        return st_cmd_eval_passkey(argc, argv);
    if (argc < 2 || strcmp(argv[1], "ppl") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            eval_usage(stdout);
            return ST_EXIT_OK;
        }
        fprintf(stderr, "stretch eval: expected a task: ppl or passkey\n");
        eval_usage(stderr);
        return ST_EXIT_USAGE;
    }
    const char *manifest = NULL, *file = NULL, *csv = NULL;
    long long length = 0, windows = 4, buckets = 8, chunk = 512, v;
    bool json = false;
    st_engine_options opts = {.struct_size = sizeof opts};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            eval_usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--length")) {
            if ((length = st_cli_parse_count(a, next, 1 << 24)) < 2) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--windows")) {
            if ((windows = st_cli_parse_count(a, next, 1 << 20)) < 1) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--buckets")) {
            if ((buckets = st_cli_parse_count(a, next, 1024)) < 1) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--chunk")) {
            if ((chunk = st_cli_parse_count(a, next, 1 << 16)) < 1) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if ((v = st_cli_parse_count(a, next, 1024)) < 0) return ST_EXIT_USAGE;
            opts.n_threads = (uint32_t)v;
            i++;
        } else if (!strcmp(a, "--csv") && next) {
            csv = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "stretch eval ppl: unknown or incomplete option '%s'\n", a);
            return ST_EXIT_USAGE;
        } else if (!file) {
            file = a;
        } else {
            fprintf(stderr, "stretch eval ppl: one text file only\n");
            return ST_EXIT_USAGE;
        }
    }
    if (!file) {
        eval_usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    size_t text_len = 0;
    char *text = st_cli_read_file(file, &text_len);
    if (!text)
        return ST_EXIT_MODEL;
    st_engine *e = NULL;
    int rc = st_cli_open_engine(manifest, &opts, &e);
    if (rc) {
        free(text);
        return rc;
    }
    st_engine_info info;
    st_engine_get_info(e, &info);
    if (!length)
        length = info.n_ctx;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    st_error err;
    memset(&err, 0, sizeof err);
    st_status st = st_engine_tokenize(e, text, text_len, 0, &ids, &n_ids, &err);
    free(text);
    if (st == ST_OK && n_ids < (size_t)length) {
        err.status = st = ST_E_RANGE;
        snprintf(err.message, sizeof err.message,
                 "%s has %zu tokens, fewer than one window of --length %lld", file, n_ids,
                 length);
    }
    size_t n_win = st == ST_OK ? n_ids / (size_t)length : 0;
    if (n_win > (size_t)windows)
        n_win = (size_t)windows;
    double *b_nll = calloc((size_t)buckets, sizeof(double));
    size_t *b_n = calloc((size_t)buckets, sizeof(size_t));
    float *nll = malloc(sizeof(float) * (size_t)length);
    if (st == ST_OK && (!b_nll || !b_n || !nll))
        st = ST_E_NOMEM;
    progress pr = {now_s(), 0, n_win * (size_t)length, isatty(2)};
    st_cli_cancel_on_sigint(e);
    for (size_t w = 0; st == ST_OK && w < n_win; w++) {
        pr.base = w * (size_t)length;
        st = st_engine_score(e, ids + w * (size_t)length, (size_t)length, (size_t)chunk, nll,
                             on_progress, &pr, &err);
        for (long long t = 1; st == ST_OK && t < length; t++) {
            size_t b = (size_t)(t * buckets / length);
            b_nll[b] += nll[t];
            b_n[b]++;
        }
    }
    st_cli_cancel_on_sigint(NULL);
    if (pr.tty)
        fputc('\n', stderr);
    if (st == ST_OK) {
        double total = 0;
        size_t count = 0;
        for (long long b = 0; b < buckets; b++) {
            total += b_nll[b];
            count += b_n[b];
        }
        double ppl = exp(total / (double)(count ? count : 1));
        FILE *cf = csv ? fopen(csv, "w") : NULL;
        if (csv && !cf) {
            perror(csv);
            rc = ST_EXIT_RUNTIME;
        }
        if (cf)
            fprintf(cf, "bucket,start,end,tokens,nll,ppl\n");
        st_json j;
        if (json) {
            st_json_init(&j, stdout, false);
            st_json_begin_object(&j);
            st_json_key(&j, "file");
            st_json_string(&j, file);
            st_json_key(&j, "manifest");
            st_json_string(&j, manifest);
            st_json_key(&j, "length");
            st_json_int(&j, length);
            st_json_key(&j, "windows");
            st_json_uint(&j, n_win);
            st_json_key(&j, "tokens_scored");
            st_json_uint(&j, count);
            st_json_key(&j, "ppl");
            st_json_double(&j, ppl);
            st_json_key(&j, "buckets");
            st_json_begin_array(&j);
        } else {
            printf("%s: %zu windows of %lld tokens, %zu tokens scored, perplexity %.4f\n",
                   file, n_win, length, count, ppl);
            printf("%8s %8s %8s %10s\n", "start", "end", "tokens", "ppl");
        }
        for (long long b = 0; b < buckets; b++) {
            long long lo = b * length / buckets, hi = (b + 1) * length / buckets;
            double bp = b_n[b] ? exp(b_nll[b] / (double)b_n[b]) : NAN;
            if (json) {
                st_json_begin_object(&j);
                st_json_key(&j, "start");
                st_json_int(&j, lo);
                st_json_key(&j, "end");
                st_json_int(&j, hi);
                st_json_key(&j, "tokens");
                st_json_uint(&j, b_n[b]);
                st_json_key(&j, "ppl");
                st_json_double(&j, bp);
                st_json_end_object(&j);
            } else {
                printf("%8lld %8lld %8zu %10.4f\n", lo, hi, b_n[b], bp);
            }
            if (cf)
                fprintf(cf, "%lld,%lld,%lld,%zu,%.6f,%.6f\n", b, lo, hi, b_n[b],
                        b_n[b] ? b_nll[b] / (double)b_n[b] : NAN, bp);
        }
        if (json) {
            st_json_end_array(&j);
            st_json_end_object(&j);
            st_json_end(&j);
        }
        if (cf)
            fclose(cf);
    } else {
        fprintf(stderr, "stretch: %s\n", st == ST_E_NOMEM ? "out of memory" : err.message);
        rc = st_cli_exit_for(st);
    }
    free(b_nll);
    free(b_n);
    free(nll);
    st_free(ids);
    st_engine_close(e);
    return rc;
}
