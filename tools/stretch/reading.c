/*
 * tools/stretch/reading.c - see reading.h.
 */
#include "reading.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_cli.h"

typedef struct doc_source {
    FILE *f;
    const char *text;
    size_t len, at;
} doc_source;

static size_t read_doc(void *user, char *buf, size_t cap)
{
    doc_source *s = user;
    if (s->f) {
        size_t n = fread(buf, 1, cap, s->f);
        return n == 0 && ferror(s->f) ? ST_READ_ERROR : n;
    }
    size_t n = s->len - s->at < cap ? s->len - s->at : cap;
    memcpy(buf, s->text + s->at, n);
    s->at += n;
    return n;
}

static st_status answer_prompt(st_engine *e, int32_t *kept, size_t n_kept,
                               const char *question, bool chat, int32_t **ids, size_t *n_ids,
                               st_error *err)
{
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    uint32_t bos = info.add_bos ? ST_ENCODE_ADD_BOS : 0;
    st_status st;
    if (chat) {
        char *text = NULL;
        size_t len = 0;
        if ((st = st_engine_detokenize(e, kept, n_kept, &text, &len, err)) != ST_OK)
            return st;
        size_t qlen = strlen(question);
        char *message = malloc(len + qlen + 2);
        if (!message) {
            st_free(text);
            snprintf(err->message, sizeof err->message, "out of memory");
            return ST_E_NOMEM;
        }
        memcpy(message, text, len);
        message[len] = '\n';
        memcpy(message + len + 1, question, qlen + 1);
        st_free(text);
        st = st_engine_chat_tokenize(e, message, bos, ids, n_ids, err);
        free(message);
        return st;
    }
    int32_t *q = NULL;
    size_t n_q = 0;
    if ((st = st_engine_tokenize(e, question, strlen(question), 0, &q, &n_q, err)) != ST_OK)
        return st;
    int32_t *all = malloc((n_kept + n_q + 1) * sizeof *all);
    if (!all) {
        st_free(q);
        snprintf(err->message, sizeof err->message, "out of memory");
        return ST_E_NOMEM;
    }
    size_t n = 0;
    if (info.add_bos && info.bos >= 0)
        all[n++] = info.bos;
    memcpy(all + n, kept, n_kept * sizeof *all);
    n += n_kept;
    memcpy(all + n, q, n_q * sizeof *all);
    st_free(q);
    *ids = all;
    *n_ids = n + n_q;
    return ST_OK;
}

st_status st_cli_reading_prompt(st_engine *e, const st_cli_document *doc, const char *question,
                                uint32_t chunk, bool chat, int32_t **ids, size_t *n_ids,
                                st_read_stats *stats, st_error *err)
{
    doc_source src = {NULL, doc->text, doc->len, 0};
    char why[128];
    if (doc->path && !(src.f = st_cli_input_open(doc->path, why, sizeof why))) {
        snprintf(err->message, sizeof err->message, "%.300s: cannot open: %s",
                 st_cli_input_name(doc->path), why);
        return ST_E_IO;
    }
    bool own = doc->path || doc->text;
    st_read_params p = {.struct_size = sizeof p, .read = own ? read_doc : doc->read,
                        .read_user = own ? (void *)&src : doc->read_user,
                        .question = question, .question_len = strlen(question),
                        .chunk = chunk, .progress = doc->progress,
                        .progress_user = doc->progress_user};
    int32_t *kept = NULL;
    size_t n_kept = 0;
    stats->struct_size = sizeof *stats;
    st_status st = st_engine_read(e, &p, &kept, &n_kept, stats, err);
    st_cli_input_close(src.f);
    if (st == ST_E_IO && doc->path) {
        char why[sizeof err->message];
        snprintf(why, sizeof why, "%s", err->message);
        snprintf(err->message, sizeof err->message, "%.200s: %.300s", doc->path, why);
    }
    if (st == ST_OK)
        st = answer_prompt(e, kept, n_kept, question, chat, ids, n_ids, err);
    st_free(kept);
    return st;
}
