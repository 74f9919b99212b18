/*
 * tools/stretch/cmd_eval.c - `stretch eval ppl`: perplexity of a text file
 * under a strategy, overall and by position within the window, so a
 * strategy's behaviour past the trained length shows as a curve.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "engine_cli.h"
#include "eval_common.h"
#include "json_out.h"

static void eval_usage(FILE *f)
{
    fprintf(f,
            "usage: stretch eval ppl [-m MANIFEST] [options] TEXT_FILE\n"
            "       stretch eval passkey [-m MANIFEST] [options]   (see --help there)\n"
            "       stretch eval jsonschema [-m MANIFEST] [options] DIR   (see --help there)\n"
            "       stretch eval length [-m MANIFEST] [options]   (see --help there)\n"
            "       stretch eval retrieval -m MANIFEST --dataset NAME DATA_DIR   (MTRB)\n"
            "       stretch eval facts [-m MANIFEST] [options] TEXT_FILE   (see --help there)\n\n"
            "  Tokenizes the file, cuts it into windows of --length tokens and scores\n"
            "  every token of each window from a fresh cache (token 0 of a window is\n"
            "  not scored). Reports perplexity overall and per position bucket.\n\n"
            "  --length N       tokens per window (default: the engine's context)\n"
            "  --windows N      score at most N windows (default 4)\n"
            "  --buckets N      position buckets (default 8)\n"
            "  --chunk N        tokens per forward block (default 512)\n"
            "  --threads N      worker threads\n"
            "  --model FILE     use this GGUF instead of the manifest's\n"
            "  --out DIR        ppl.csv and points.jsonl (default out/ppl); an\n"
            "                   interrupted run resumes from the windows already scored\n"
            "  --fresh          discard the windows of an earlier run\n"
            "  --progress       when stderr is not a terminal, print the progress as a\n"
            "                   line at most every second (a terminal gets the bar)\n"
            "  --json           print the result as JSON\n"
            "  (llama-perplexity's spellings work too: -f FILE, -c N for --length,\n"
            "   --chunks N for --windows, -b N for --chunk, -t N, -m MODEL.gguf)\n");
    fputs(st_cli_backend_usage, f);
}

/* Points file line for one scored window: bucket sums, so a resumed run
 * rebuilds the totals without rescoring. */
static void write_point(FILE *f, size_t w, long long length, long long buckets,
                        const double *nll, const size_t *n)
{
    fprintf(f, "{\"window\":%zu,\"length\":%lld,\"buckets\":%lld,\"nll\":[", w, length, buckets);
    for (long long b = 0; b < buckets; b++)
        fprintf(f, "%s%.17g", b ? "," : "", nll[b]);
    fprintf(f, "],\"n\":[");
    for (long long b = 0; b < buckets; b++)
        fprintf(f, "%s%zu", b ? "," : "", n[b]);
    fprintf(f, "]}\n");
    fflush(f);
}

/* Add a finished window's sums from the points file: 1 when there, 0 when
 * absent, -1 (message printed) when its line does not hold what a scored
 * window can: a finite non-negative nll and the bucket's exact token count. */
static int read_point(const char *existing, const char *path, size_t w, long long length,
                      long long buckets, double *nll, size_t *n)
{
    if (!existing)
        return 0;
    char needle[128];
    snprintf(needle, sizeof needle, "{\"window\":%zu,\"length\":%lld,\"buckets\":%lld,\"nll\":[",
             w, length, buckets);
    const char *line = strstr(existing, needle);
    if (!line || !strchr(line, '\n'))
        return 0; /* absent, or torn by a kill: score it again */
    const char *p = line + strlen(needle);
    double tmp_nll[1024];
    size_t tmp_n[1024];
    const char *bad = NULL;
    for (long long b = 0; b < buckets && !bad; b++) {
        char *end;
        tmp_nll[b] = strtod(p, &end);
        if (end == p || *end != (b + 1 < buckets ? ',' : ']') || !isfinite(tmp_nll[b]) ||
            tmp_nll[b] < 0)
            bad = "\"nll\" (expected finite values >= 0, one per bucket)";
        p = end + 1;
    }
    if (!bad && strncmp(p, ",\"n\":[", 6) != 0)
        bad = "\"n\" (expected after \"nll\")";
    p += 6;
    for (long long b = 0; b < buckets && !bad; b++) {
        /* Token t in [1, length) falls in bucket t * buckets / length. */
        long long lo = (b * length + buckets - 1) / buckets, hi = ((b + 1) * length + buckets - 1) / buckets;
        size_t want = (size_t)(hi - (lo < 1 ? 1 : lo));
        char *end;
        tmp_n[b] = (size_t)strtoull(p, &end, 10);
        if (end == p || *end != (b + 1 < buckets ? ',' : ']') || tmp_n[b] != want)
            bad = "\"n\" (expected each bucket's token count)";
        p = end + 1;
    }
    if (bad) {
        fprintf(stderr, "stretch: %s:%zu: window %zu: bad %s; rerun with --fresh to score "
                        "again\n", path, st_points_line(existing, line), w, bad);
        return -1;
    }
    for (long long b = 0; b < buckets; b++) {
        nll[b] += tmp_nll[b];
        n[b] += tmp_n[b];
    }
    return 1;
}

/* What a window's scores depend on, for the points file's header. */
static bool ppl_fields(const char *manifest, const char *model, const char *text,
                       size_t text_len, long long length, long long buckets, long long chunk,
                       st_points_field f[4])
{
    if (!st_eval_input_fields(model, manifest, f))
        return false;
    f[2].key = "text";
    snprintf(f[2].value, sizeof f[2].value, "%016llx",
             (unsigned long long)st_eval_hash(ST_EVAL_HASH_INIT, text, text_len));
    f[3].key = "settings";
    snprintf(f[3].value, sizeof f[3].value, "length %lld, buckets %lld, chunk %lld", length,
             buckets, chunk);
    return true;
}

typedef struct window_progress {
    st_progress *p;
    size_t base; /* units done before this window */
} window_progress;

static int on_progress(void *user, size_t done, size_t total)
{
    window_progress *wp = user;
    (void)total;
    wp->p->done = wp->base + done;
    st_progress_show(wp->p);
    return 0;
}

int st_cmd_eval_passkey(int argc, char **argv);
int st_cmd_eval_jsonschema(int argc, char **argv);
int st_cmd_eval_length(int argc, char **argv);
int st_cmd_eval_retrieval(int argc, char **argv);
int st_cmd_eval_facts(int argc, char **argv);

static void print_result(const char *file, const char *manifest, long long length,
                         size_t n_win, long long buckets, const double *b_nll,
                         const size_t *b_n, bool json, FILE *csv)
{
    double total = 0;
    size_t count = 0;
    for (long long b = 0; b < buckets; b++) {
        total += b_nll[b];
        count += b_n[b];
    }
    double ppl = exp(total / (double)(count ? count : 1));
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
        printf("%s: %zu windows of %lld tokens, %zu tokens scored, perplexity %.4f\n", file,
               n_win, length, count, ppl);
        printf("%8s %8s %8s %10s\n", "start", "end", "tokens", "ppl");
    }
    if (csv)
        fprintf(csv, "bucket,start,end,tokens,nll,ppl\n");
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
        if (csv)
            fprintf(csv, "%lld,%lld,%lld,%zu,%.6f,%.6f\n", b, lo, hi, b_n[b],
                    b_n[b] ? b_nll[b] / (double)b_n[b] : NAN, bp);
    }
    if (json) {
        st_json_end_array(&j);
        st_json_end_object(&j);
        st_json_end(&j);
    }
}

int st_cmd_eval(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "passkey") == 0)
        return st_cmd_eval_passkey(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "jsonschema") == 0)
        return st_cmd_eval_jsonschema(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "length") == 0)
        return st_cmd_eval_length(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "retrieval") == 0)
        return st_cmd_eval_retrieval(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "facts") == 0)
        return st_cmd_eval_facts(argc, argv);
    if (argc < 2 || strcmp(argv[1], "ppl") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            eval_usage(stdout);
            return ST_EXIT_OK;
        }
        fprintf(stderr, "stretch eval: expected a task: ppl, passkey, facts, jsonschema, length or retrieval\n");
        eval_usage(stderr);
        return ST_EXIT_USAGE;
    }
    const char *manifest = NULL, *file = NULL, *out_dir = "out/ppl";
    long long length = 0, windows = 4, buckets = 8, chunk = 512, v;
    bool json = false, fresh = false, progress_lines = false;
    st_engine_options opts = {.struct_size = sizeof opts};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            eval_usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--model") && next) {
            opts.model = argv[++i]; /* as `run --model`: this GGUF, not the manifest's */
        } else if (!strcmp(a, "--length") || !strcmp(a, "-c")) { /* llama-perplexity's -c */
            /* The window plus the margin below must be a context `context:` takes. */
            if ((length = st_cli_parse_range(a, next, 2, ST_CONTEXT_MAX - 16)) < 0)
                return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--windows") || !strcmp(a, "--chunks")) {
            if ((windows = st_cli_parse_range(a, next, 1, 1 << 20)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--buckets")) {
            if ((buckets = st_cli_parse_range(a, next, 1, 1024)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--chunk") || !strcmp(a, "-b")) {
            if ((chunk = st_cli_parse_range(a, next, 1, 1 << 16)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) {
            if ((v = st_cli_parse_count(a, next, 1024)) < 0) return ST_EXIT_USAGE;
            opts.n_threads = (uint32_t)v;
            i++;
        } else if ((v = st_cli_backend_option("eval ppl", argc, argv, &i, &opts)) != 0) {
            if (v < 0)
                return ST_EXIT_USAGE;
        } else if (!strcmp(a, "--out") && next) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "-f") && next && !file) {
            file = argv[++i];
        } else if (!strcmp(a, "--fresh")) {
            fresh = true;
        } else if (!strcmp(a, "--progress")) {
            progress_lines = true;
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
        fprintf(stderr, "stretch eval ppl: which text file?\n");
        eval_usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    if (buckets > 1024)
        buckets = 1024;
    size_t text_len = 0;
    char *text = st_cli_read_file(file, &text_len);
    if (!text)
        return ST_EXIT_MODEL;
    /* A dense strategy needs the whole window in its cache; a bounded one
     * sizes its own. */
    if (length && !opts.context)
        opts.context = (uint32_t)length + 16;
    st_engine *e = NULL;
    int rc = st_cli_open_engine(manifest, &opts, &e);
    if (rc) {
        free(text);
        return rc;
    }
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    if (!length)
        length = info.n_ctx;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    st_error err;
    memset(&err, 0, sizeof err);
    st_status st = st_engine_tokenize(e, text, text_len, 0, &ids, &n_ids, &err);
    st_points_field fields[4];
    bool have_fields = ppl_fields(manifest, info.model_path, text, text_len, length, buckets,
                                  chunk, fields);
    free(text);
    if (st == ST_OK && !have_fields) {
        err.status = st = ST_E_IO;
        snprintf(err.message, sizeof err.message,
                 "cannot read the model or manifest to fingerprint the run");
    }
    if (st == ST_OK && n_ids < (size_t)length) {
        rc = ST_EXIT_MANIFEST; /* --length does not suit the file: a parameter error */
        err.status = st = ST_E_RANGE;
        snprintf(err.message, sizeof err.message,
                 "%s has %zu tokens, fewer than one window of --length %lld", file, n_ids,
                 length);
    }
    size_t n_win = st == ST_OK ? n_ids / (size_t)length : 0;
    if (n_win > (size_t)windows)
        n_win = (size_t)windows;
    double *b_nll = calloc((size_t)buckets, sizeof(double)), *w_nll = calloc((size_t)buckets, sizeof(double));
    size_t *b_n = calloc((size_t)buckets, sizeof(size_t)), *w_n = calloc((size_t)buckets, sizeof(size_t));
    float *nll = malloc(sizeof(float) * (size_t)length);
    if (st == ST_OK && (!b_nll || !b_n || !w_nll || !w_n || !nll)) {
        st = ST_E_NOMEM;
        snprintf(err.message, sizeof err.message, "out of memory");
    }
    char *existing = NULL;
    size_t existing_len = 0;
    FILE *points = NULL;
    if (st == ST_OK &&
        !(points = st_points_open(out_dir, "points.jsonl", fresh, "ppl", fields, 4, &existing,
                                  &existing_len))) {
        rc = ST_EXIT_RUNTIME; /* the message is printed */
        st = ST_E_IO;
    }
    char points_path[4096];
    snprintf(points_path, sizeof points_path, "%s/points.jsonl", out_dir);
    st_progress pr;
    st_progress_start(&pr, "ppl", n_win * (size_t)length);
    pr.lines = progress_lines;
    st_cli_cancel_on_sigint(e);
    for (size_t w = 0; st == ST_OK && w < n_win; w++) {
        int got = read_point(existing, points_path, w, length, buckets, b_nll, b_n);
        if (got < 0) {
            rc = ST_EXIT_RUNTIME;
            st = ST_E_FORMAT;
            break;
        }
        if (got) {
            pr.done += (size_t)length;
            pr.skipped += (size_t)length;
            continue;
        }
        window_progress wp = {&pr, pr.done};
        st = st_engine_score(e, ids + w * (size_t)length, (size_t)length, (size_t)chunk, nll,
                             on_progress, &wp, &err);
        if (st != ST_OK)
            break;
        memset(w_nll, 0, sizeof(double) * (size_t)buckets);
        memset(w_n, 0, sizeof(size_t) * (size_t)buckets);
        for (long long t = 1; t < length; t++) {
            size_t b = (size_t)(t * buckets / length);
            w_nll[b] += nll[t];
            w_n[b]++;
        }
        for (long long b = 0; b < buckets; b++) {
            b_nll[b] += w_nll[b];
            b_n[b] += w_n[b];
        }
        write_point(points, w, length, buckets, w_nll, w_n);
    }
    st_cli_cancel_on_sigint(NULL);
    st_progress_end(&pr);
    if (points)
        fclose(points);
    free(existing);
    if (st == ST_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/ppl.csv", out_dir);
        FILE *csv = fopen(path, "w");
        if (!csv) {
            fprintf(stderr, "stretch: %s: cannot write: %s\n", path, strerror(errno));
            rc = ST_EXIT_RUNTIME;
        }
        print_result(file, manifest, length, n_win, buckets, b_nll, b_n, json, csv);
        if (csv && (ferror(csv) | fclose(csv))) {
            fprintf(stderr, "stretch: %s: write failed\n", path);
            rc = ST_EXIT_RUNTIME;
        }
        /* Charts come from tools/plots.py (matplotlib), which puts several
         * strategies on one log-scale chart with the trained length marked. */
        if (!json && !rc)
            printf("wrote %s/ppl.csv, %s/points.jsonl; chart: python3 tools/plots.py ppl "
                   "--trained %u --out %s/ppl.png %s/ppl.csv\n", out_dir, out_dir,
                   info.n_ctx_train, out_dir, out_dir);
    } else if (!rc) { /* a failure that set rc has printed why */
        fprintf(stderr, "stretch: %s\n", st == ST_E_CANCELLED
                                             ? "interrupted: finished windows are kept; rerun "
                                               "the same command to resume"
                                             : err.message);
        if (!rc)
            rc = ST_EXIT_RUNTIME;
    }
    free(b_nll);
    free(b_n);
    free(w_nll);
    free(w_n);
    free(nll);
    st_free(ids);
    st_engine_close(e);
    return rc;
}
