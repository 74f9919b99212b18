/*
 * tools/stretch/serve/logprobs_json.c - see logprobs_json.h. A token's
 * text is its piece: the bytes it adds, which need not be whole UTF-8 (a
 * byte-level BPE splits characters), so "token" is the piece made valid
 * UTF-8 and "bytes" the exact bytes, as OpenAI gives them.
 */
#include "logprobs_json.h"

#include <stdlib.h>
#include <string.h>

#include "server.h"

bool st_lp_add(st_lp_log *log, int32_t token, float logprob, const int32_t *top_ids,
               const float *top, size_t n_top)
{
    if (log->n == log->cap) {
        size_t cap = log->cap ? log->cap * 2 : 64;
        st_lp_entry *grown = realloc(log->entries, cap * sizeof *grown);
        if (!grown)
            return false;
        log->entries = grown;
        log->cap = cap;
    }
    st_lp_entry *e = &log->entries[log->n++];
    e->token = token;
    e->none = false;
    e->logprob = logprob;
    e->n_top = n_top > ST_TOP_LOGPROBS_MAX ? ST_TOP_LOGPROBS_MAX : (uint32_t)n_top;
    if (e->n_top) {
        memcpy(e->top_ids, top_ids, e->n_top * sizeof *top_ids);
        memcpy(e->top, top, e->n_top * sizeof *top);
    }
    return true;
}

bool st_lp_add_none(st_lp_log *log, int32_t token)
{
    if (!st_lp_add(log, token, 0.0f, NULL, NULL, 0))
        return false;
    log->entries[log->n - 1].none = true;
    return true;
}

void st_lp_free(st_lp_log *log)
{
    free(log->entries);
    memset(log, 0, sizeof *log);
}

/* The bytes token `id` adds ("" when the engine has none for it). */
static void piece_of(st_engine *e, int32_t id, const char **p, size_t *n)
{
    st_error err;
    memset(&err, 0, sizeof err);
    if (st_engine_token_piece(e, id, p, n, &err) != ST_OK) {
        *p = "";
        *n = 0;
    }
}

/* A piece as text, cleaned as the answer's text is (st_json_clean: a
 * byte that is not valid UTF-8, or NUL, becomes '?'); "" when out of
 * memory. */
static json_t *piece_text(const char *p, size_t n)
{
    json_t *v = st_json_clean(p, n);
    return v ? v : json_string("");
}

static json_t *chat_entry(st_engine *e, int32_t id, float logprob)
{
    const char *p;
    size_t n;
    piece_of(e, id, &p, &n);
    json_t *bytes = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(bytes, json_integer((unsigned char)p[i]));
    return json_pack("{s:o, s:f, s:o}", "token", piece_text(p, n), "logprob", (double)logprob,
                     "bytes", bytes);
}

json_t *st_lp_json(st_engine *e, st_lp_log *log, bool chat)
{
    json_t *out;
    if (chat) {
        json_t *content = json_array();
        for (size_t i = log->sent; i < log->n; i++) {
            const st_lp_entry *en = &log->entries[i];
            json_t *item = chat_entry(e, en->token, en->logprob), *top = json_array();
            for (uint32_t k = 0; k < en->n_top; k++)
                json_array_append_new(top, chat_entry(e, en->top_ids[k], en->top[k]));
            json_object_set_new(item, "top_logprobs", top);
            json_array_append_new(content, item);
        }
        out = json_pack("{s:o, s:n}", "content", content, "refusal");
    } else {
        json_t *tokens = json_array(), *lps = json_array(), *tops = json_array();
        json_t *offsets = json_array();
        for (size_t i = log->sent; i < log->n; i++) {
            const st_lp_entry *en = &log->entries[i];
            const char *p;
            size_t n;
            piece_of(e, en->token, &p, &n);
            json_array_append_new(tokens, piece_text(p, n));
            json_array_append_new(lps, en->none ? json_null() : json_real(en->logprob));
            json_array_append_new(offsets, json_integer((json_int_t)log->chars));
            /* text_offset counts characters: the bytes that start one. */
            for (size_t b = 0; b < n; b++)
                log->chars += ((unsigned char)p[b] & 0xC0) != 0x80;
            json_t *top = en->none ? json_null() : json_object();
            for (uint32_t k = 0; k < en->n_top; k++) {
                piece_of(e, en->top_ids[k], &p, &n);
                json_t *alt = piece_text(p, n);
                const char *key = alt ? json_string_value(alt) : "";
                /* Two pieces that clean to the same text keep the likelier. */
                if (!json_object_get(top, key))
                    json_object_set_new(top, key, json_real(en->top[k]));
                json_decref(alt);
            }
            json_array_append_new(tops, top);
        }
        out = json_pack("{s:o, s:o, s:o, s:o}", "tokens", tokens, "token_logprobs", lps,
                        "top_logprobs", tops, "text_offset", offsets);
    }
    log->sent = log->n;
    return out;
}
