/*
 * tools/stretch/cmd_eval_facts.c - `stretch eval facts TEXT_FILE`: a long-
 * document question-answering check that is not a passkey. Several
 * key-value facts ("The secret number of the red lantern is 48213.") are
 * scattered at line starts through a slice of a real text (tinyshakespeare)
 * of about the asked length; the question names one key. Correct when the
 * first integer of up to 10 generated tokens is that key's value. Accuracy
 * by length and number of facts, as a table and CSV.
 *
 * With a reading strategy (infiniretri, xl3m) the document is read chunk by
 * chunk with the question; with any other the whole text is the prompt and
 * must fit the context.
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
#define MAX_FACTS 64

static const char *const colours[] = {"red", "blue", "green", "golden", "silver", "black",
                                      "white", "amber"};
static const char *const things[] = {"lantern", "harbour", "falcon", "orchard", "bridge",
                                     "tower", "violin", "compass"};

static void facts_usage(FILE *f)
{
    fprintf(f,
            "usage: stretch eval facts [-m MANIFEST] [options] TEXT_FILE\n\n"
            "  Scatters key-value facts (\" The secret number of the red lantern is 48213.\")\n"
            "  at line starts through a slice of TEXT_FILE of about each length, asks for\n"
            "  one key (\" What is the secret number of the red lantern? The secret number\n"
            "  of the red lantern is\") and checks the first integer of up to 10 tokens.\n\n"
            "  --lengths L,L,...  document lengths in tokens (default 4096,8192)\n"
            "  --facts N,N,...    facts per document, 1..%d (default 1,4,8)\n"
            "  --samples N        samples per cell (default 3)\n"
            "  --seed N           seed for the slices, keys and values (default 1)\n"
            "  --chunk N          with a reading strategy: tokens per chunk (default 1024)\n"
            "  --threads N        worker threads\n"
            "  --out DIR          points.jsonl and facts.csv (default out/facts)\n"
            "  --json             print the table as JSON\n", MAX_FACTS);
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

typedef struct fact {
    char key[48];
    int value;
    size_t at;   /* byte offset in the slice it goes before (a line start) */
} fact;

static int by_offset(const void *a, const void *b)
{
    const fact *x = a, *y = b;
    return (x->at > y->at) - (x->at < y->at);
}

/* The document: `bytes` bytes of text from a seeded line start (wrapping),
 * with the facts inserted before line starts at seeded offsets. Keys are
 * distinct colour-thing pairs. malloc'd, NUL-terminated. */
static char *build_document(const char *text, size_t len, size_t bytes, fact *facts, int n,
                            uint64_t h)
{
    if (bytes > len)
        bytes = len;
    size_t start = (size_t)(mix(h) % len);
    while (start > 0 && text[start - 1] != '\n')
        start--;
    bool used[8][8] = {{false}};
    for (int i = 0; i < n; i++) {
        uint64_t r = mix(h ^ (uint64_t)(i + 1) * 0x51ED27);
        int c = (int)(r % 8), t = (int)((r >> 8) % 8);
        while (used[c][t]) { /* n <= 64 pairs exist */
            t = (t + 1) % 8;
            if (t == 0)
                c = (c + 1) % 8;
        }
        used[c][t] = true;
        snprintf(facts[i].key, sizeof facts[i].key, "the %s %s", colours[c], things[t]);
        facts[i].value = 10000 + (int)((r >> 16) % 90000);
        facts[i].at = (size_t)((r >> 40) % (bytes ? bytes : 1));
    }
    qsort(facts, (size_t)n, sizeof *facts, by_offset);
    char *doc = malloc(bytes + (size_t)n * 96 + 1);
    if (!doc)
        return NULL;
    size_t w = 0;
    int next = 0;
    for (size_t i = 0; i < bytes; i++) {
        char ch = text[(start + i) % len];
        bool line_start = i == 0 || text[(start + i - 1) % len] == '\n';
        while (next < n && facts[next].at <= i && line_start) {
            w += (size_t)sprintf(doc + w, "The secret number of %s is %d.\n",
                                 facts[next].key, facts[next].value);
            next++;
        }
        doc[w++] = ch;
    }
    for (; next < n; next++)
        w += (size_t)sprintf(doc + w, "\nThe secret number of %s is %d.", facts[next].key,
                             facts[next].value);
    doc[w] = '\0';
    return doc;
}


/* One sample: the prompt (read or whole), the answer, right or wrong. */
static st_status run_sample(st_engine *e, bool reading, uint32_t chunk, const char *doc,
                            const char *question, st_answer *ans, size_t *n_prompt, st_error *err)
{
    int32_t *ids = NULL;
    size_t n = 0;
    st_status st;
    if (reading) {
        st_cli_document d = {NULL, doc, strlen(doc), NULL, NULL, NULL, NULL};
        st_read_stats stats = {.struct_size = sizeof stats};
        st = st_cli_reading_prompt(e, &d, question, chunk, false, &ids, &n, &stats, err);
        *n_prompt = (size_t)stats.n_tokens;
    } else {
        st_engine_info info = {.struct_size = sizeof info};
        st_engine_get_info(e, &info);
        size_t dl = strlen(doc), ql = strlen(question);
        char *all = malloc(dl + ql + 1);
        if (!all) {
            snprintf(err->message, sizeof err->message, "out of memory");
            return ST_E_NOMEM;
        }
        memcpy(all, doc, dl);
        memcpy(all + dl, question, ql + 1);
        st = st_engine_tokenize(e, all, dl + ql, info.add_bos ? ST_ENCODE_ADD_BOS : 0, &ids,
                                &n, err);
        free(all);
        *n_prompt = n;
    }
    if (st != ST_OK)
        return st;
    st_generate_params gp = {.struct_size = sizeof gp, .max_tokens = 10, .seed = 1};
    st = st_engine_generate(e, ids, n, &gp, st_answer_on_token, ans, NULL, err);
    st_free(ids);
    return st;
}

int st_cmd_eval_facts(int argc, char **argv)
{
    const char *manifest = NULL, *file = NULL, *out_dir = "out/facts";
    long long lengths[MAX_AXIS] = {4096, 8192}, n_facts[MAX_AXIS] = {1, 4, 8};
    int nl = 2, nf = 3;
    long long samples = 3, seed = 1, chunk = 0, v;
    bool json = false;
    st_engine_options opts = {.struct_size = sizeof opts};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            facts_usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--lengths") && next) {
            if ((nl = st_parse_list(a, argv[++i], lengths, MAX_AXIS, 64, 1 << 22)) < 0)
                return ST_EXIT_USAGE;
        } else if (!strcmp(a, "--facts") && next) {
            if ((nf = st_parse_list(a, argv[++i], n_facts, MAX_AXIS, 1, MAX_FACTS)) < 0)
                return ST_EXIT_USAGE;
        } else if (!strcmp(a, "--samples")) {
            if ((samples = st_cli_parse_range(a, next, 1, 100000)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--seed")) {
            if ((seed = st_cli_parse_count(a, next, INT64_MAX)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--chunk")) {
            if ((chunk = st_cli_parse_range(a, next, 16, 1 << 20)) < 0) return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if ((v = st_cli_parse_count(a, next, 1024)) < 0) return ST_EXIT_USAGE;
            opts.n_threads = (uint32_t)v;
            i++;
        } else if (!strcmp(a, "--out") && next) {
            out_dir = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-' || file) {
            fprintf(stderr, "stretch eval facts: unknown or incomplete option '%s'\n", a);
            facts_usage(stderr);
            return ST_EXIT_USAGE;
        } else {
            file = a;
        }
    }
    if (!file) {
        fprintf(stderr, "stretch eval facts: give the TEXT_FILE to hide the facts in\n");
        facts_usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    size_t text_len = 0;
    char *text = st_cli_read_file(file, &text_len);
    if (!text)
        return ST_EXIT_MODEL;
    if (text_len < 1024) {
        fprintf(stderr, "stretch: %s: %zu bytes; the facts need a text of at least 1024\n",
                file, text_len);
        free(text);
        return ST_EXIT_MODEL;
    }
    st_engine *e = NULL;
    int rc = st_cli_open_engine(manifest, &opts, &e);
    if (rc) {
        free(text);
        return rc;
    }
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    bool reading = info.reader != NULL;
    st_error err;
    memset(&err, 0, sizeof err);
    /* Bytes per token of this text, from its first 4 KiB, to size slices. */
    int32_t *probe = NULL;
    size_t n_probe = 0;
    size_t probe_len = text_len < 4096 ? text_len : 4096;
    st_status st = st_engine_tokenize(e, text, probe_len, 0, &probe, &n_probe, &err);
    st_free(probe);
    double bytes_per_token = st == ST_OK && n_probe ? (double)probe_len / n_probe : 4.0;
    st_points_field fields[3];
    FILE *points = NULL;
    if (st == ST_OK && !st_eval_input_fields(info.model_path, manifest, fields)) {
        snprintf(err.message, sizeof err.message,
                 "cannot read the model or manifest to fingerprint the run");
        st = ST_E_IO;
    }
    if (st == ST_OK) {
        fields[2].key = "settings";
        snprintf(fields[2].value, sizeof fields[2].value, "seed %lld, template 1, chunk %lld",
                 seed, chunk);
        char *existing = NULL;
        size_t existing_len = 0;
        points = st_points_open(out_dir, "points.jsonl", true, "facts", fields, 3, &existing,
                                &existing_len);
        free(existing);
        if (!points) { /* the message is printed */
            st_engine_close(e);
            free(text);
            return ST_EXIT_RUNTIME;
        }
    }
    char path[4096];
    static double acc[MAX_AXIS][MAX_AXIS];
    st_cli_cancel_on_sigint(e);
    for (int l = 0; l < nl && st == ST_OK; l++)
        for (int f = 0; f < nf && st == ST_OK; f++) {
            int correct = 0;
            for (long long s = 0; s < samples && st == ST_OK; s++) {
                fact facts[MAX_FACTS];
                uint64_t h = mix(mix((uint64_t)seed) ^ ((uint64_t)lengths[l] * 31) ^
                                 ((uint64_t)n_facts[f] << 24) ^ ((uint64_t)s << 40));
                size_t bytes = (size_t)((double)lengths[l] * bytes_per_token);
                char *doc = build_document(text, text_len, bytes, facts, (int)n_facts[f], h);
                if (!doc) {
                    snprintf(err.message, sizeof err.message, "out of memory");
                    st = ST_E_NOMEM;
                    break;
                }
                const fact *asked = &facts[mix(h ^ 0xA5) % (uint64_t)n_facts[f]];
                char question[160];
                snprintf(question, sizeof question,
                         "\nWhat is the secret number of %s? The secret number of %s is",
                         asked->key, asked->key);
                st_answer ans = {{0}, 0};
                size_t n_prompt = 0;
                st = run_sample(e, reading, (uint32_t)chunk, doc, question, &ans, &n_prompt,
                                &err);
                free(doc);
                if (st != ST_OK)
                    break;
                bool ok = st_first_integer(ans.text) == asked->value;
                correct += ok;
                fprintf(points, "{\"length\":%lld,\"facts\":%lld,\"sample\":%lld,"
                                "\"key\":\"%s\",\"value\":%d,\"document_tokens\":%zu,"
                                "\"answer\":", lengths[l], n_facts[f], s, asked->key,
                        asked->value, n_prompt);
                st_json_write_escaped(points, ans.text, ans.len);
                fprintf(points, ",\"correct\":%s}\n", ok ? "true" : "false");
                fflush(points);
            }
            acc[l][f] = (double)correct / (double)samples;
        }
    st_cli_cancel_on_sigint(NULL);
    if (points)
        fclose(points);
    free(text);
    if (st != ST_OK) {
        fprintf(stderr, "stretch: %s\n", st == ST_E_CANCELLED ? "interrupted" : err.message);
        st_engine_close(e);
        return ST_EXIT_RUNTIME;
    }
    snprintf(path, sizeof path, "%s/facts.csv", out_dir);
    st_accuracy_grid grid = {"facts", lengths, nl, n_facts, nf, samples, acc};
    if (!st_accuracy_csv(path, &grid))
        rc = ST_EXIT_RUNTIME;
    if (json) {
        st_accuracy_json(manifest, &grid);
    } else {
        printf("multi-fact accuracy (%%), %s, %lld samples per cell\n%8s", manifest, samples,
               "length");
        for (int f = 0; f < nf; f++)
            printf("  f=%-4lld", n_facts[f]);
        printf("\n");
        for (int l = 0; l < nl; l++) {
            printf("%8lld", lengths[l]);
            for (int f = 0; f < nf; f++)
                printf("  %6.0f", acc[l][f] * 100);
            printf("\n");
        }
    }
    st_engine_close(e);
    return rc;
}
