/*
 * tools/stretch/cmd_embed.c - `stretch embed`: the sentence vector (and the
 * token ids) a BERT-family encoder gives a text, one text or one per line
 * of a file, as JSON lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/encoder.h>

#include "cli_common.h"
#include "commands.h"
#include "engine_cli.h"
#include "json_out.h"

#define EMBED_DEFAULT_MODEL "models/all-MiniLM-L6-v2.gguf"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: stretch embed [--model GGUF] [--threads N] TEXT\n"
            "       stretch embed [--model GGUF] [--threads N] --batch FILE\n\n"
            "  Prints one JSON object per text: {\"ids\": [...], \"embedding\": [...]}\n"
            "  (the token ids with [CLS] and [SEP], and the pooled vector). --batch\n"
            "  embeds every line of FILE. The model is a BERT-family GGUF (default\n"
            "  " EMBED_DEFAULT_MODEL ", made by tools/convert_minilm.py), tokenized\n"
            "  by the wordpiece plugin.\n");
}

static void print_one(const st_encoder *enc, const int32_t *ids, size_t n, const float *vec)
{
    st_json j;
    st_json_init(&j, stdout, false);
    st_json_begin_object(&j);
    st_json_key(&j, "ids");
    st_json_begin_array(&j);
    for (size_t i = 0; i < n; i++)
        st_json_int(&j, ids[i]);
    st_json_end_array(&j);
    st_json_key(&j, "embedding");
    st_json_begin_array(&j);
    for (uint32_t i = 0; i < st_encoder_dim(enc); i++)
        st_json_double(&j, vec[i]);
    st_json_end_array(&j);
    st_json_end_object(&j);
    st_json_end(&j);
}

/* Lines embedded per st_encoder_embed_batch call. */
#define EMBED_BATCH 64

/* Embed n texts in one batch and print them in order. */
static int embed_some(st_encoder *enc, size_t n, const char *const *texts, const size_t *lens,
                      float *vecs)
{
    st_error err;
    memset(&err, 0, sizeof err);
    int32_t *ids[EMBED_BATCH];
    size_t n_ids[EMBED_BATCH];
    if (st_encoder_embed_batch(enc, n, texts, lens, vecs, ids, n_ids, &err) != ST_OK) {
        fprintf(stderr, "stretch: %s\n", st_cli_safe(err.message));
        return ST_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < n; i++) {
        print_one(enc, ids[i], n_ids[i], vecs + i * st_encoder_dim(enc));
        st_free(ids[i]);
    }
    return 0;
}

int st_cmd_embed(int argc, char **argv)
{
    const char *model = EMBED_DEFAULT_MODEL, *batch = NULL, *text = NULL;
    long long v;
    st_engine_options opts = {.struct_size = sizeof opts};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return ST_EXIT_OK;
        } else if (!strcmp(a, "--model") && next) {
            model = argv[++i];
        } else if (!strcmp(a, "--batch") && next) {
            batch = argv[++i];
        } else if (!strcmp(a, "--threads")) {
            if ((v = st_cli_parse_count(a, next, 1024)) < 0)
                return ST_EXIT_USAGE;
            opts.n_threads = (uint32_t)v;
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "stretch embed: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return ST_EXIT_USAGE;
        } else if (!text) {
            text = a;
        } else {
            fprintf(stderr, "stretch embed: one TEXT only (quote it)\n");
            return ST_EXIT_USAGE;
        }
    }
    if (!text == !batch) {
        fprintf(stderr, "stretch embed: give a TEXT or --batch FILE\n");
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    char *data = NULL;
    size_t size = 0;
    if (batch && !(data = st_cli_read_file(batch, &size)))
        return ST_EXIT_MODEL;
    st_encoder *enc = NULL;
    st_error err;
    memset(&err, 0, sizeof err);
    st_status st = st_encoder_open(model, &opts, &enc, &err);
    if (st != ST_OK) {
        fprintf(stderr, "stretch: %s\n", st_cli_safe(err.message));
        free(data);
        return st_cli_exit_for(st);
    }
    float *vecs = malloc(EMBED_BATCH * st_encoder_dim(enc) * sizeof *vecs);
    int rc = vecs ? 0 : ST_EXIT_RUNTIME;
    if (!rc && text) {
        const char *one = text;
        size_t len = strlen(text);
        rc = embed_some(enc, 1, &one, &len, vecs);
    }
    const char *texts[EMBED_BATCH];
    size_t lens[EMBED_BATCH], k = 0;
    for (char *at = data; !rc && at && at < data + size;) {
        char *end = memchr(at, '\n', (size_t)(data + size - at));
        size_t n = end ? (size_t)(end - at) : (size_t)(data + size - at);
        texts[k] = at;
        lens[k++] = n;
        if (k == EMBED_BATCH) {
            rc = embed_some(enc, k, texts, lens, vecs);
            k = 0;
        }
        at += n + 1;
    }
    if (!rc && k)
        rc = embed_some(enc, k, texts, lens, vecs);
    free(vecs);
    free(data);
    st_encoder_close(enc);
    return rc;
}
