/*
 * tools/stretch/cmd_eval_passkey.c - `stretch eval passkey`: hide a random
 * pass key at a chosen depth of filler text of a chosen length and ask for
 * it back (the template docs/RESULTS.md states, fixed here). Prints an
 * accuracy table by length and depth, writes CSV (tools/plots.py draws it), and
 * resumes from the points file of an interrupted run.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "engine_cli.h"
#include "eval_common.h"
#include "json_out.h"
#include "reading.h"

#define MAX_AXIS ST_EVAL_AXIS_MAX

static const char task_text[] =
    "There is an important info hidden inside a lot of irrelevant text. Find it and "
    "memorize it. I will quiz you about the important information there.";
static const char filler_text[] =
    " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
static const char key_fmt[] = " The pass key is %d. Remember it. %d is the pass key.";
/* The question starts on its own line. Joined directly to the document, a
 * key line at depth 100% ("... 48213 is the pass key. What is the pass
 * key? The pass key is") makes SmolLM2-135M continue the phrase ("the pass
 * key.") instead of answering; with the line break it answers. Every
 * strategy gets this same text: dense prompts end with it, and a reading
 * strategy reads with it as the question and appends it to what it kept. */
static const char question_text[] = "\n What is the pass key? The pass key is";

static void passkey_usage(FILE *f)
{
    fprintf(f,
            "usage: stretch eval passkey [-m MANIFEST] [options]\n\n"
            "  --lengths L,L,...  prompt lengths in tokens (default 1024 doubling to 4x the\n"
            "                     model's trained context)\n"
            "  --depths D,D,...   key depths in percent (default 0,25,50,75,100)\n"
            "  --samples N        samples per length and depth (default 5)\n"
            "  --seed N           seed for the keys (default 1)\n"
            "  --out DIR          points.jsonl and passkey.csv (default out/passkey)\n"
            "  --fresh            discard the points of an earlier run instead of resuming\n"
            "  --threads N        worker threads\n"
            "  --model FILE       use this GGUF instead of the manifest's\n"
            "  --json             print the table as JSON\n"
            "  --chunk N          with a reading strategy (infiniretri, xl3m): tokens per\n"
            "                     chunk (default 1024)\n"
            "  --progress         when stderr is not a terminal, print the progress as a\n"
            "                     line at most every second (a terminal gets the bar)\n"
            "  A sample is correct when the first integer of up to 10 generated tokens equals\n"
            "  the key. Use a greedy strategy (manifests/greedy.yaml and its children).\n"
            "  With a reading strategy the haystack is generated as a stream and read chunk\n"
            "  by chunk with the question (never held whole), so lengths may pass the\n"
            "  context: 1048576 and beyond.\n");
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* The prompt text for n filler repeats with the key after round(n*depth/100). */
static char *build_prompt(int n_fill, int depth, int key)
{
    size_t cap = sizeof task_text + (size_t)n_fill * sizeof filler_text + 256;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t w = (size_t)snprintf(s, cap, "%s", task_text);
    int at = (n_fill * depth + 50) / 100;
    for (int i = 0; i <= n_fill; i++) {
        if (i == at)
            w += (size_t)snprintf(s + w, cap - w, key_fmt, key, key);
        if (i < n_fill)
            w += (size_t)snprintf(s + w, cap - w, "%s", filler_text);
    }
    snprintf(s + w, cap - w, "%s", question_text);
    return s;
}

/* The haystack of build_prompt without the question, generated piece by
 * piece for a reading strategy: a million-token document is never held. */
typedef struct haystack {
    int n_fill, at, key, i;
    bool task_done, key_done;
    char piece[160];
    size_t len, off;
} haystack;

static bool haystack_next_piece(haystack *h)
{
    if (!h->task_done) {
        h->len = (size_t)snprintf(h->piece, sizeof h->piece, "%s", task_text);
        h->task_done = true;
    } else if (h->i == h->at && !h->key_done) {
        h->len = (size_t)snprintf(h->piece, sizeof h->piece, key_fmt, h->key, h->key);
        h->key_done = true;
    } else if (h->i < h->n_fill) {
        h->len = (size_t)snprintf(h->piece, sizeof h->piece, "%s", filler_text);
        h->i++;
    } else {
        return false;
    }
    h->off = 0;
    return true;
}

static size_t haystack_read(void *user, char *buf, size_t cap)
{
    haystack *h = user;
    size_t w = 0;
    while (w < cap) {
        if (h->off == h->len && !haystack_next_piece(h))
            break;
        size_t n = h->len - h->off < cap - w ? h->len - h->off : cap - w;
        memcpy(buf + w, h->piece + h->off, n);
        h->off += n;
        w += n;
    }
    return w;
}

/* Tokens of a text (no BOS), or -1 with err filled. */
static long count_tokens(st_engine *e, const char *text, st_error *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (st_engine_tokenize(e, text, strlen(text), 0, &ids, &n, err) != ST_OK)
        return -1;
    st_free(ids);
    return (long)n;
}

/* A sample read chunk by chunk: the haystack sized to about `length`
 * tokens from the template's token counts, then the answer prompt. */
static st_status reading_prompt(st_engine *e, int length, int depth, int key, uint32_t chunk,
                                st_progress *pr, int32_t **ids, size_t *n, size_t *doc_tokens,
                                st_error *err)
{
    char key_line[160];
    snprintf(key_line, sizeof key_line, key_fmt, key, key);
    long task = count_tokens(e, task_text, err), fill = count_tokens(e, filler_text, err);
    long kl = count_tokens(e, key_line, err), q = count_tokens(e, question_text, err);
    if (task < 0 || fill <= 0 || kl < 0 || q < 0)
        return err->status ? err->status : ST_E_INVALID;
    long room = (long)length - 10 - task - kl - q;
    if (room < fill) {
        snprintf(err->message, sizeof err->message,
                 "length %d is too short for the passkey template", length);
        return ST_E_RANGE;
    }
    haystack h = {.n_fill = (int)(room / fill), .key = key};
    h.at = (h.n_fill * depth + 50) / 100;
    /* A million-token sample reads for many minutes: the bar moves with
     * each chunk, by the share of the haystack's bytes read. */
    st_progress_read rp = {pr, pr->done, (size_t)length,
                           strlen(task_text) + strlen(key_line) +
                               (uint64_t)h.n_fill * strlen(filler_text)};
    st_cli_document doc = {NULL, NULL, 0, haystack_read, &h, st_progress_on_read, &rp};
    st_read_stats stats = {.struct_size = sizeof stats};
    st_status st = st_cli_reading_prompt(e, &doc, question_text, chunk, false, ids, n, &stats,
                                         err);
    pr->done = rp.base;
    *doc_tokens = (size_t)stats.n_tokens + (size_t)q;
    return st;
}

/* Tokenize the largest prompt that fits in `length` tokens. */
static st_status fit_prompt(st_engine *e, int length, int depth, int key, uint32_t flags,
                            int32_t **ids, size_t *n, st_error *err)
{
    int lo = 0, hi = length / 8 + 1, best = -1; /* a filler is >= 8 tokens */
    int32_t *best_ids = NULL;
    size_t best_n = 0;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        char *text = build_prompt(mid, depth, key);
        if (!text) {
            st_free(best_ids);
            snprintf(err->message, sizeof err->message, "out of memory building a prompt");
            return ST_E_NOMEM;
        }
        int32_t *t = NULL;
        size_t tn = 0;
        st_status st = st_engine_tokenize(e, text, strlen(text), flags, &t, &tn, err);
        free(text);
        if (st != ST_OK) {
            st_free(best_ids);
            return st;
        }
        if (tn <= (size_t)length) {
            st_free(best_ids);
            best_ids = t;
            best_n = tn;
            best = mid;
            lo = mid + 1;
        } else {
            st_free(t);
            hi = mid - 1;
        }
    }
    if (best < 0) {
        snprintf(err->message, sizeof err->message,
                 "length %d is too short for the passkey template", length);
        return ST_E_RANGE;
    }
    *ids = best_ids;
    *n = best_n;
    return ST_OK;
}


/* The key hidden in sample s of (length, depth): a function of the seed,
 * so a resumed point can be checked against it. */
static int sample_key(long long seed, long long length, long long depth, long long s)
{
    uint64_t h = mix(mix(mix((uint64_t)seed) ^ (uint64_t)length) ^ (uint64_t)(depth << 20)) ^
                 mix((uint64_t)s + 1);
    return 10000 + (int)(h % 90000);
}

/* Whether the points file already has (length, depth, sample): 1 and *ok
 * set, 0 when absent, -1 (message printed) when its line is not what this
 * run would have written: another key, or "correct" not what the answer
 * and key give (a hand-edited verdict is not taken on trust). */
static int find_point(const char *existing, const char *path, long length, long depth,
                      long sample, int key, bool *ok)
{
    if (!existing)
        return 0;
    char needle[96];
    int n = snprintf(needle, sizeof needle, "{\"length\":%ld,\"depth\":%ld,\"sample\":%ld,",
                     length, depth, sample);
    for (const char *p = existing; (p = strstr(p, needle)); p += n) {
        const char *line_end = strchr(p, '\n');
        if (!line_end)
            break; /* a torn last line from a kill: redo that point */
        const char *bad = NULL;
        char *end;
        const char *k = strstr(p, "\"key\":");
        const char *a = strstr(p, "\"answer\":");
        const char *c = strstr(p, "\"correct\":");
        if (!k || k > line_end || strtol(k + 6, &end, 10) != key || *end != ',')
            bad = "\"key\" (expected the key this seed hides there)";
        /* The answer is the JSON string between `"answer":` and
         * `,"correct":` (at least its two quotes). */
        else if (!a || a > line_end || !c || c > line_end || c < a + 9 + 3 || c[-1] != ',')
            bad = "\"answer\" and \"correct\" (expected both, in that order)";
        size_t alen = 0;
        char *answer = bad ? NULL : st_cli_json_string_decode(a + 9, (size_t)(c - 1 - (a + 9)),
                                                              &alen);
        if (!bad && !answer)
            bad = "\"answer\" (expected a JSON string)";
        bool said = !bad && strncmp(c + 10, "true}", 5) == 0;
        if (!bad && !said && strncmp(c + 10, "false}", 6) != 0)
            bad = "\"correct\" (expected true or false)";
        if (!bad && said != (st_first_integer(answer) == key))
            bad = "\"correct\" (it does not follow from the answer and the key)";
        free(answer);
        if (bad) {
            fprintf(stderr, "stretch: %s:%zu: bad %s; rerun with --fresh to redo the points\n",
                    path, st_points_line(existing, p), bad);
            return -1;
        }
        *ok = said;
        return 1;
    }
    return 0;
}

int st_cmd_eval_passkey(int argc, char **argv)
{
    const char *manifest = NULL, *out_dir = "out/passkey";
    long long lengths[MAX_AXIS], depths[MAX_AXIS] = {0, 25, 50, 75, 100};
    int nl = 0, nd = 5;
    long long samples = 5, seed = 1, v, chunk = 0;
    bool json = false, fresh = false, progress_lines = false;
    st_engine_options opts = {.struct_size = sizeof opts};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            passkey_usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--model") && next) {
            opts.model = argv[++i]; /* as `run --model`: this GGUF, not the manifest's */
        } else if (!strcmp(a, "--lengths") && next) {
            if ((nl = st_parse_list(a, argv[++i], lengths, MAX_AXIS, 64, 1 << 22)) < 0)
                return ST_EXIT_USAGE;
        } else if (!strcmp(a, "--depths") && next) {
            if ((nd = st_parse_list(a, argv[++i], depths, MAX_AXIS, 0, 100)) < 0)
                return ST_EXIT_USAGE;
        } else if (!strcmp(a, "--samples")) {
            if ((samples = st_cli_parse_range(a, next, 1, 100000)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if ((seed = st_cli_parse_count(a, next, INT64_MAX)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if ((v = st_cli_parse_count(a, next, 1024)) < 0) return ST_EXIT_USAGE;
            opts.n_threads = (uint32_t)v;
            i++;
        } else if (!strcmp(a, "--out") && next) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "--chunk")) {
            if ((chunk = st_cli_parse_range(a, next, 16, 1 << 20)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--fresh")) {
            fresh = true;
        } else if (!strcmp(a, "--progress")) {
            progress_lines = true;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else {
            fprintf(stderr, "stretch eval passkey: unknown or incomplete option '%s'\n", a);
            passkey_usage(stderr);
            return ST_EXIT_USAGE;
        }
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    /* Open once to learn the trained length, then with a context that
     * holds the longest prompt (bounded strategies keep their budget). */
    st_engine *e = NULL;
    int rc = st_cli_open_engine(manifest, &opts, &e);
    if (rc)
        return rc;
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    if (nl == 0)
        for (long long L = 1024; L <= 4LL * info.n_ctx_train && nl < MAX_AXIS; L *= 2)
            lengths[nl++] = L;
    long long max_len = 0;
    for (int l = 0; l < nl; l++)
        max_len = lengths[l] > max_len ? lengths[l] : max_len;
    /* A reading strategy reads the prompt in chunks: its context holds a
     * step, not the prompt. */
    bool reading = info.reader != NULL;
    if (!reading && !opts.context && max_len + 16 > info.n_ctx) {
        st_engine_close(e);
        opts.context = (uint32_t)(max_len + 16);
        if ((rc = st_cli_open_engine(manifest, &opts, &e)))
            return rc;
        /* info's strings belonged to the engine just closed. */
        st_engine_get_info(e, &info);
    }
    /* What every point depends on, for the points file's header. */
    st_points_field fields[3];
    if (!st_eval_input_fields(info.model_path, manifest, fields)) {
        fprintf(stderr, "stretch: cannot read the model or manifest to fingerprint the run\n");
        st_engine_close(e);
        return ST_EXIT_RUNTIME;
    }
    fields[2].key = "settings";
    if (reading)
        snprintf(fields[2].value, sizeof fields[2].value,
                 "seed %lld, template 2, read by %s in chunks of %lld", seed, info.reader,
                 chunk ? chunk : ST_READ_CHUNK_DEFAULT);
    else
        snprintf(fields[2].value, sizeof fields[2].value, "seed %lld, template 2", seed);
    char *existing = NULL;
    size_t existing_len = 0;
    FILE *points = st_points_open(out_dir, "points.jsonl", fresh, "passkey", fields, 3,
                                  &existing, &existing_len);
    if (!points) {
        st_engine_close(e);
        return ST_EXIT_RUNTIME;
    }
    char points_path[4096];
    snprintf(points_path, sizeof points_path, "%s/points.jsonl", out_dir);
    uint32_t flags = info.add_bos ? ST_ENCODE_ADD_BOS : 0;
    static double acc[MAX_AXIS][MAX_AXIS];
    size_t total = 0;
    for (int l = 0; l < nl; l++)
        total += (size_t)(lengths[l] * nd * samples);
    st_progress pr;
    st_progress_start(&pr, "passkey", total);
    pr.lines = progress_lines;
    st_error err;
    memset(&err, 0, sizeof err);
    st_status st = ST_OK;
    st_cli_cancel_on_sigint(e);
    for (int l = 0; l < nl && st == ST_OK; l++) {
        for (int d = 0; d < nd && st == ST_OK; d++) {
            int correct = 0;
            for (long long s = 0; s < samples && st == ST_OK; s++) {
                bool ok = false;
                int key = sample_key(seed, lengths[l], depths[d], s);
                int got = find_point(existing, points_path, (long)lengths[l], (long)depths[d],
                                     (long)s, key, &ok);
                if (got < 0) {
                    st = ST_E_FORMAT;
                    break;
                }
                if (got) {
                    correct += ok;
                    pr.done += (size_t)lengths[l];
                    pr.skipped += (size_t)lengths[l];
                    continue;
                }
                int32_t *ids = NULL;
                size_t n = 0;
                size_t prompt_tokens = 0;
                if (reading)
                    st = reading_prompt(e, (int)lengths[l], (int)depths[d], key, (uint32_t)chunk,
                                        &pr, &ids, &n, &prompt_tokens, &err);
                else
                    st = fit_prompt(e, (int)lengths[l] - 10, (int)depths[d], key, flags, &ids,
                                    &n, &err);
                if (!reading)
                    prompt_tokens = n;
                if (st != ST_OK)
                    break;
                st_answer ans = {{0}, 0};
                st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 10,
                                         .seed = (uint64_t)seed};
                st = st_engine_generate(e, ids, n, &gp, st_answer_on_token, &ans, NULL, &err);
                st_free(ids);
                if (st != ST_OK)
                    break;
                ok = st_first_integer(ans.text) == key;
                correct += ok;
                fprintf(points, "{\"length\":%lld,\"depth\":%lld,\"sample\":%lld,\"key\":%d,"
                                "\"prompt_tokens\":%zu,\"answer\":",
                        lengths[l], depths[d], s, key, prompt_tokens);
                st_json_write_escaped(points, ans.text, ans.len);
                fprintf(points, ",\"correct\":%s}\n", ok ? "true" : "false");
                fflush(points);
                pr.done += (size_t)lengths[l];
                st_progress_show(&pr);
            }
            acc[l][d] = (double)correct / (double)samples;
        }
    }
    st_cli_cancel_on_sigint(NULL);
    st_progress_end(&pr);
    fclose(points);
    free(existing);
    if (st == ST_E_FORMAT) { /* a points line was refused; the message is printed */
        st_engine_close(e);
        return ST_EXIT_RUNTIME;
    }
    if (st != ST_OK) {
        fprintf(stderr, "stretch: %s\n", st == ST_E_CANCELLED
                                             ? "interrupted: finished points are kept; rerun "
                                               "the same command to resume"
                                             : err.message);
        st_engine_close(e);
        return ST_EXIT_RUNTIME;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/passkey.csv", out_dir);
    int rc_out = ST_EXIT_OK;
    st_accuracy_grid grid = {"depth", lengths, nl, depths, nd, samples, acc};
    if (!st_accuracy_csv(path, &grid))
        rc_out = ST_EXIT_RUNTIME;
    if (json) {
        st_accuracy_json(manifest, &grid);
    } else {
        printf("passkey accuracy (%%), %s, %lld samples per cell\n%8s", manifest, samples,
               "length");
        for (int d = 0; d < nd; d++)
            printf("  d=%3lld%%", depths[d]);
        printf("     all\n");
        for (int l = 0; l < nl; l++) {
            double row = 0;
            printf("%8lld", lengths[l]);
            for (int d = 0; d < nd; d++) {
                printf("  %6.0f", acc[l][d] * 100);
                row += acc[l][d];
            }
            printf("  %6.0f\n", row / nd * 100);
        }
        if (!rc_out)
            printf("wrote %s/passkey.csv, %s/points.jsonl; heatmap: python3 tools/plots.py "
                   "passkey --out %s/passkey.png %s/passkey.csv\n", out_dir, out_dir, out_dir,
                   out_dir);
    }
    st_engine_close(e);
    return rc_out;
}
