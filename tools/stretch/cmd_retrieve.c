/*
 * tools/stretch/cmd_retrieve.c - `stretch retrieve index` builds a
 * retriever's index from files or a JSONL file and saves it; `stretch
 * retrieve query` loads one and prints the best hits for a query. The
 * retriever is the one the strategy manifest's `retriever:` block names;
 * no model is read.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_common.h"
#include "commands.h"
#include "engine_cli.h"
#include "eval_common.h"
#include "json_error_place.h"
#include "json_out.h"

#define RETRIEVE_K_MAX 100000

static void retrieve_usage(FILE *f)
{
    fprintf(f,
            "usage: stretch retrieve index [-m MANIFEST] --out INDEX [--chunk WORDS] FILE...\n"
            "       stretch retrieve index [-m MANIFEST] --out INDEX --jsonl FILE\n"
            "                              [--id-field F] [--text-field F]\n"
            "       stretch retrieve query [-m MANIFEST] [--index INDEX] [-k N] [--json] QUERY\n\n"
            "  The retriever is the strategy's `retriever:` plugin (default manifest:\n"
            "  manifests/default.yaml; manifests/bm25.yaml has one). No model is read.\n\n"
            "  index   one document per FILE (its path is the id, its content the text;\n"
            "          with --chunk, one per passage of WORDS words, id \"PATH#N\"),\n"
            "          or one per line of a JSONL file (--id-field, default \"id\"; a\n"
            "          number is used as its decimal text; --text-field, default \"text\").\n"
            "          Writes INDEX in the plugin's format and INDEX.texts (the texts, so\n"
            "          retrieval-augmented `stretch run` can quote them).\n"
            "  query   loads --index (default: the manifest's `retriever: index:`) and\n"
            "          prints the best -k hits (default: the manifest's top_k, else 3)\n"
            "          with their scores; --json prints them as one JSON object.\n");
}

/* Progress on a terminal, at most every 0.2 s; nothing when piped. */
typedef struct progress {
    bool tty;
    struct timespec last;
} progress;

static void progress_show(progress *p, size_t done, size_t total, bool final)
{
    if (!p->tty)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - p->last.tv_sec) + (now.tv_nsec - p->last.tv_nsec) / 1e9;
    if (!final && dt < 0.2)
        return;
    p->last = now;
    fprintf(stderr, "\rindexing: %zu/%zu documents (%.0f%%)%s", done, total,
            total ? 100.0 * (double)done / (double)total : 100.0, final ? "\n" : "");
}

/* Documents go to the retriever BATCH at a time (st_retriever_add_batch):
 * an encoder-backed plugin embeds them together, many times faster than
 * one by one. The batch holds copies, since a file's text is freed before
 * the next file is read. */
#define BATCH 64

typedef struct batcher {
    st_retriever *r;
    size_t n;
    char *ids[BATCH], *texts[BATCH];
    size_t id_lens[BATCH], text_lens[BATCH];
} batcher;

static void batch_drop(batcher *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->ids[i]);
        free(b->texts[i]);
    }
    b->n = 0;
}

static int batch_flush(batcher *b)
{
    st_error err;
    memset(&err, 0, sizeof err);
    st_status st = st_retriever_add_batch(b->r, b->n, (const char *const *)b->ids, b->id_lens,
                                          (const char *const *)b->texts, b->text_lens, &err);
    batch_drop(b);
    if (st == ST_OK)
        return 0;
    fprintf(stderr, "\nstretch: %s\n", st_cli_safe(err.message));
    return ST_EXIT_RUNTIME;
}

static int add_or_fail(batcher *b, const char *id, size_t id_len, const char *text, size_t len)
{
    char *idc = malloc(id_len + 1), *textc = malloc(len + 1);
    if (!idc || !textc) {
        free(idc);
        free(textc);
        fprintf(stderr, "\nstretch: out of memory\n");
        return ST_EXIT_RUNTIME;
    }
    memcpy(idc, id, id_len);
    memcpy(textc, text, len);
    b->ids[b->n] = idc;
    b->texts[b->n] = textc;
    b->id_lens[b->n] = id_len;
    b->text_lens[b->n++] = len;
    return b->n == BATCH ? batch_flush(b) : 0;
}

/* The end of the passage starting at `at`: right after its `words`-th word
 * (a run of non-space bytes), or the end of the text; with 0 words, the
 * start of the next word. */
static size_t passage_end(const char *text, size_t len, size_t at, size_t words)
{
    size_t i = at, seen = 0;
    while (i < len) {
        while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r'))
            i++;
        if (i == len || seen == words)
            break;
        while (i < len && !(text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r'))
            i++;
        if (++seen == words)
            break;
    }
    return i;
}

/* One document per file, or per passage of `chunk` words ("path#N"). */
static int index_files(batcher *r, char **files, size_t n, size_t chunk)
{
    progress p = {.tty = isatty(STDERR_FILENO)};
    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *text = st_cli_read_file(files[i], &len);
        if (!text)
            return ST_EXIT_MODEL;
        int rc = 0;
        if (!chunk) {
            rc = add_or_fail(r, files[i], strlen(files[i]), text, len);
        } else {
            size_t at = 0, part = 0;
            while (!rc && at < len) {
                /* A passage starts at its first word. */
                at = passage_end(text, len, at, 0);
                if (at == len)
                    break;
                size_t end = passage_end(text, len, at, chunk);
                char id[4200];
                int w = snprintf(id, sizeof id, "%s#%zu", files[i], ++part);
                rc = add_or_fail(r, id, w > 0 && (size_t)w < sizeof id ? (size_t)w : strlen(id),
                                 text + at, end - at);
                at = end;
            }
        }
        free(text);
        if (rc)
            return rc;
        progress_show(&p, i + 1, n, i + 1 == n);
    }
    return 0;
}

/* The field as text: a string as it is, an integer in decimal. NULL with
 * *why set otherwise. */
static const char *field_text(json_t *obj, const char *field, char *buf, size_t cap,
                              size_t *len, const char **why)
{
    json_t *v = json_object_get(obj, field);
    if (!v) {
        *why = "is missing";
        return NULL;
    }
    if (json_is_string(v)) {
        *len = json_string_length(v);
        return json_string_value(v);
    }
    if (json_is_integer(v)) {
        int w = snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *len = (size_t)w;
        return buf;
    }
    *why = "is not a string or an integer";
    return NULL;
}

static int index_jsonl(batcher *r, const char *path, const char *id_field,
                       const char *text_field)
{
    size_t size;
    char *data = st_cli_read_file(path, &size);
    if (!data)
        return ST_EXIT_MODEL;
    size_t total = 0;
    for (size_t i = 0; i < size; i++)
        total += data[i] == '\n' || (i + 1 == size);
    progress p = {.tty = isatty(STDERR_FILENO)};
    int rc = 0;
    size_t line = 0, done = 0;
    for (char *at = data; at < data + size && !rc;) {
        char *end = memchr(at, '\n', (size_t)(data + size - at));
        size_t n = end ? (size_t)(end - at) : (size_t)(data + size - at);
        line++;
        bool blank = true;
        for (size_t i = 0; i < n && blank; i++)
            blank = at[i] == ' ' || at[i] == '\t' || at[i] == '\r';
        if (!blank) {
            json_error_t jerr;
            json_t *obj = json_loadb(at, n, JSON_REJECT_DUPLICATES, &jerr);
            char idbuf[32];
            size_t id_len = 0, text_len = 0;
            const char *why = NULL, *bad = NULL;
            const char *id = NULL, *text = NULL;
            if (!obj) {
                fprintf(stderr, "stretch: %s:%zu:%d: expected one JSON object per line: %s\n",
                        st_cli_safe(path), line, st_json_error_column(&jerr),
                        st_cli_safe(jerr.text));
                rc = ST_EXIT_MODEL;
            } else if (!json_is_object(obj)) {
                fprintf(stderr, "stretch: %s:%zu: expected a JSON object, found another "
                                "value\n", st_cli_safe(path), line);
                rc = ST_EXIT_MODEL;
            } else if (!(id = field_text(obj, id_field, idbuf, sizeof idbuf, &id_len, &why))) {
                bad = id_field;
            } else if (!(text = field_text(obj, text_field, NULL, 0, &text_len, &why)) ||
                       !json_is_string(json_object_get(obj, text_field))) {
                bad = text_field;
                why = why ? why : "is not a string";
            }
            if (bad) {
                fprintf(stderr, "stretch: %s:%zu: field \"%s\" %s (set --id-field and "
                                "--text-field to the keys your lines use)\n",
                        st_cli_safe(path), line, st_cli_safe(bad), why);
                rc = ST_EXIT_MODEL;
            }
            if (!rc)
                rc = add_or_fail(r, id, id_len, text, text_len);
            json_decref(obj);
        }
        done++;
        if (!rc)
            progress_show(&p, done, total, done == total);
        at += n + 1;
    }
    free(data);
    return rc;
}

static int cmd_index(int argc, char **argv)
{
    const char *manifest = NULL, *out = NULL, *jsonl = NULL;
    const char *id_field = "id", *text_field = "text";
    long long chunk = 0;
    char **files = calloc((size_t)argc, sizeof *files);
    size_t n_files = 0;
    if (!files)
        return ST_EXIT_RUNTIME;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            retrieve_usage(stdout);
            free(files);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--out") && next) {
            out = argv[++i];
        } else if (!strcmp(a, "--jsonl") && next) {
            jsonl = argv[++i];
        } else if (!strcmp(a, "--chunk")) {
            if ((chunk = st_cli_parse_range(a, next, 1, 1 << 20)) < 0) {
                free(files);
                return ST_EXIT_USAGE;
            }
            i++;
        } else if (!strcmp(a, "--id-field") && next) {
            id_field = argv[++i];
        } else if (!strcmp(a, "--text-field") && next) {
            text_field = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "stretch retrieve index: unknown or incomplete option '%s'\n", a);
            free(files);
            return ST_EXIT_USAGE;
        } else {
            files[n_files++] = argv[i];
        }
    }
    const char *problem = !out                  ? "--out INDEX is required"
                          : !jsonl == !n_files  ? "give FILE... or --jsonl FILE (not both)"
                                                : NULL;
    if (problem || !(manifest = st_cli_default_manifest(manifest))) {
        if (problem) {
            fprintf(stderr, "stretch retrieve index: %s\n", problem);
            retrieve_usage(stderr);
        }
        free(files);
        return ST_EXIT_USAGE;
    }
    st_retriever *r = NULL;
    int rc = st_cli_open_retriever(manifest, ST_RETRIEVER_NO_INDEX, &r);
    if (!rc)
    if (!rc) {
        batcher b = {.r = r};
        rc = jsonl ? index_jsonl(&b, jsonl, id_field, text_field)
                   : index_files(&b, files, n_files, (size_t)chunk);
        rc = rc ? rc : batch_flush(&b);
        batch_drop(&b);
    }
    /* Like eval's --out, a fresh checkout's out/ is made on demand. */
    char *slash = strrchr(out, '/');
    if (!rc && slash && slash != out) {
        char *parent = strndup(out, (size_t)(slash - out));
        if (!parent || st_make_dirs(parent) != 0) {
            fprintf(stderr, "stretch: %s: cannot create the directory: %s\n",
                    st_cli_safe(parent ? parent : out), strerror(errno));
            rc = ST_EXIT_RUNTIME;
        }
        free(parent);
    }
    if (!rc) {
        st_error err;
        memset(&err, 0, sizeof err);
        st_status st = st_retriever_save(r, out, &err);
        if (st != ST_OK) {
            fprintf(stderr, "stretch: %s\n", st_cli_safe(err.message));
            rc = ST_EXIT_RUNTIME;
        } else {
            fprintf(stderr, "stretch: indexed %llu documents with %s into %s (and %s.texts)\n",
                    (unsigned long long)st_retriever_count(r), st_retriever_name(r),
                    st_cli_safe(out), st_cli_safe(out));
        }
    }
    st_retriever_close(r);
    free(files);
    return rc;
}

static void print_hits_text(const st_retrieval *hits)
{
    for (size_t i = 0; i < st_retrieval_count(hits); i++) {
        const st_retrieved *h = st_retrieval_at(hits, i);
        printf("%zu\t%.4f\t%s", i + 1, (double)h->score, st_cli_safe(h->id));
        if (h->text) {
            /* The text's start on the same line, for a glance. */
            char snip[81];
            size_t n = h->text_len < 80 ? h->text_len : 80;
            memcpy(snip, h->text, n);
            snip[n] = '\0';
            for (size_t j = 0; j < n; j++)
                if (snip[j] == '\n' || snip[j] == '\t' || snip[j] == '\r')
                    snip[j] = ' ';
            printf("\t%s%s", st_cli_safe(snip), h->text_len > 80 ? "..." : "");
        }
        putchar('\n');
    }
}

void st_cli_hits_json(st_json *j, const st_retrieval *hits)
{
    st_json_begin_array(j);
    for (size_t i = 0; i < st_retrieval_count(hits); i++) {
        const st_retrieved *h = st_retrieval_at(hits, i);
        st_json_begin_object(j);
        st_json_key(j, "rank");
        st_json_uint(j, i + 1);
        st_json_key(j, "doc");
        st_json_uint(j, h->doc);
        st_json_key(j, "id");
        st_json_string_n(j, h->id, h->id_len);
        st_json_key(j, "score");
        st_json_double(j, h->score);
        st_json_key(j, "text");
        if (h->text)
            st_json_string_n(j, h->text, h->text_len);
        else
            st_json_null(j);
        st_json_end_object(j);
    }
    st_json_end_array(j);
}

static int cmd_query(int argc, char **argv)
{
    const char *manifest = NULL, *index = NULL, *query = NULL;
    long long k = 0;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            retrieve_usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && next) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--index") && next) {
            index = argv[++i];
        } else if (!strcmp(a, "-k")) {
            if ((k = st_cli_parse_range(a, next, 1, RETRIEVE_K_MAX)) < 0)
                return ST_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "stretch retrieve query: unknown or incomplete option '%s'\n", a);
            return ST_EXIT_USAGE;
        } else if (!query) {
            query = a;
        } else {
            fprintf(stderr, "stretch retrieve query: one QUERY only (quote it)\n");
            return ST_EXIT_USAGE;
        }
    }
    if (!query) {
        fprintf(stderr, "stretch retrieve query: give a QUERY\n");
        retrieve_usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    st_retriever *r = NULL;
    st_engine *e = NULL;
    int rc = st_cli_open_ranker(manifest, index ? ST_RETRIEVER_NO_INDEX : 0, &r, &e);
    if (rc)
        return rc;
    st_error err;
    memset(&err, 0, sizeof err);
    st_status st = ST_OK;
    if (index) {
        st = st_retriever_load(r, index, &err);
    } else if (!st_retriever_index_path(r)) {
        st = ST_E_INVALID;
        snprintf(err.message, sizeof err.message,
                 "%s: no index to search: pass --index INDEX or set `index:` in the "
                 "manifest's retriever block", manifest);
    }
    st_retrieval *hits = NULL;
    if (st == ST_OK)
        st = st_retriever_query(r, query, strlen(query),
                                k ? (size_t)k : st_retriever_top_k(r), &hits, &err);
    if (st != ST_OK) {
        fprintf(stderr, "stretch: %s\n", st_cli_safe(err.message));
        rc = st_cli_exit_for(st);
    } else if (json) {
        st_json j;
        st_json_init(&j, stdout, false);
        st_json_begin_object(&j);
        st_json_key(&j, "query");
        st_json_string(&j, query);
        st_json_key(&j, "retriever");
        st_json_string(&j, st_retriever_name(r));
        st_json_key(&j, "documents");
        st_json_uint(&j, st_retriever_count(r));
        st_json_key(&j, "hits");
        st_cli_hits_json(&j, hits);
        st_json_end_object(&j);
        st_json_end(&j);
    } else {
        print_hits_text(hits);
    }
    st_retrieval_free(hits);
    st_cli_close_ranker(r, e);
    return rc;
}

int st_cmd_retrieve(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "index"))
        return cmd_index(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "query"))
        return cmd_query(argc - 1, argv + 1);
    if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        retrieve_usage(stdout);
        return ST_EXIT_OK;
    }
    fprintf(stderr, "stretch retrieve: expected a task: index or query\n");
    retrieve_usage(stderr);
    return ST_EXIT_USAGE;
}
