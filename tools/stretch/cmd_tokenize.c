/*
 * tools/stretch/cmd_tokenize.c - `stretch tokenize`: the strategy's
 * tokenizer on one text, or on a JSON-lines batch (one JSON string a line,
 * the form tools/compare_llama.py feeds it).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "engine_cli.h"
#include "json_out.h"

static void tok_usage(FILE *f)
{
    fprintf(f, "usage: stretch tokenize [-m MANIFEST] [--json] [--no-special] [--bos] TEXT\n"
               "       stretch tokenize [-m MANIFEST] --batch FILE.jsonl\n\n"
               "  --json        print {\"ids\": [...], \"pieces\": [...]}\n"
               "  --no-special  treat special-token text as plain text\n"
               "  --bos         prepend BOS when the vocabulary has one\n"
               "  --batch FILE  one JSON string per line in; one {\"ids\": [...]} per line out\n");
}

static void print_one(st_engine *e, const int32_t *ids, size_t n, bool json, bool pieces)
{
    if (json) {
        st_json j;
        st_json_init(&j, stdout, false);
        st_json_begin_object(&j);
        st_json_key(&j, "ids");
        st_json_begin_array(&j);
        for (size_t i = 0; i < n; i++)
            st_json_int(&j, ids[i]);
        st_json_end_array(&j);
        if (pieces) {
            st_json_key(&j, "pieces");
            st_json_begin_array(&j);
            for (size_t i = 0; i < n; i++) {
                const char *p;
                size_t len;
                if (st_engine_token_piece(e, ids[i], &p, &len, NULL) == ST_OK)
                    st_json_string_n(&j, p, len);
                else
                    st_json_null(&j);
            }
            st_json_end_array(&j);
        }
        st_json_end_object(&j);
        st_json_end(&j);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *p;
        size_t len;
        printf("%6d  ", ids[i]);
        if (st_engine_token_piece(e, ids[i], &p, &len, NULL) == ST_OK)
            st_json_write_escaped(stdout, p, len);
        fputc('\n', stdout);
    }
}

static int run_batch(st_engine *e, const char *path, uint32_t flags)
{
    char why[128];
    FILE *f = st_cli_input_open(path, why, sizeof why);
    if (!f) {
        fprintf(stderr, "stretch: %s: %s\n", st_cli_input_name(path), why);
        return ST_EXIT_MODEL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int rc = ST_EXIT_OK;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len == 0 || (len == 1 && line[0] == '\n'))
            continue;
        size_t n_text = 0;
        char *text = st_cli_json_string_decode(line, (size_t)len, &n_text);
        if (!text) {
            fprintf(stderr, "stretch: %s:%ld:1: expected one JSON string on the line\n",
                    st_cli_input_name(path), lineno);
            rc = ST_EXIT_USAGE;
            break;
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        st_error err;
        memset(&err, 0, sizeof err);
        st_status st = st_engine_tokenize(e, text, n_text, flags, &ids, &n_ids, &err);
        free(text);
        if (st != ST_OK) {
            fprintf(stderr, "stretch: %s:%ld: %s\n", st_cli_input_name(path), lineno,
                    err.message);
            rc = st_cli_exit_for(st);
            break;
        }
        print_one(e, ids, n_ids, true, false);
        st_free(ids);
    }
    /* getline's -1 is the end or a failed read: a failure is not the end. */
    if (rc == ST_EXIT_OK && ferror(f)) {
        fprintf(stderr, "stretch: %s: %s\n", st_cli_input_name(path), strerror(errno));
        rc = ST_EXIT_MODEL;
    }
    free(line);
    st_cli_input_close(f);
    return rc;
}

int st_cmd_tokenize(int argc, char **argv)
{
    const char *manifest = NULL, *text = NULL, *batch = NULL;
    bool json = false, special = true, bos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tok_usage(stdout);
            return ST_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--manifest")) && i + 1 < argc) {
            manifest = argv[++i];
        } else if (!strcmp(a, "--batch") && i + 1 < argc) {
            batch = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--no-special")) {
            special = false;
        } else if (!strcmp(a, "--bos")) {
            bos = true;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "stretch tokenize: unknown or incomplete option '%s'\n", a);
            tok_usage(stderr);
            return ST_EXIT_USAGE;
        } else if (!text) {
            text = a;
        } else {
            fprintf(stderr, "stretch tokenize: one TEXT only (quote it)\n");
            return ST_EXIT_USAGE;
        }
    }
    if (!text == !batch) {
        tok_usage(stderr);
        return ST_EXIT_USAGE;
    }
    if (!(manifest = st_cli_default_manifest(manifest)))
        return ST_EXIT_USAGE;
    st_engine *e = NULL;
    st_engine_options opts = {.struct_size = sizeof opts, .context = 16};
    int rc = st_cli_open_engine(manifest, &opts, &e);
    if (rc)
        return rc;
    uint32_t flags = (special ? ST_ENCODE_PARSE_SPECIAL : 0) | (bos ? ST_ENCODE_ADD_BOS : 0);
    if (batch) {
        rc = run_batch(e, batch, flags);
    } else {
        int32_t *ids = NULL;
        size_t n = 0;
        st_error err;
        memset(&err, 0, sizeof err);
        st_status st = st_engine_tokenize(e, text, strlen(text), flags, &ids, &n, &err);
        if (st == ST_OK)
            print_one(e, ids, n, json, true);
        else {
            fprintf(stderr, "stretch: %s\n", err.message);
            rc = st_cli_exit_for(st);
        }
        st_free(ids);
    }
    st_engine_close(e);
    return rc;
}
