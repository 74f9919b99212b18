/*
 * tools/stretch/serve/logprobs_json.h - a completion's log-probabilities
 * (the engine's on_logprobs, ABI 1.6) kept per generated token and written
 * in OpenAI's two forms: chat's "content" entries and the legacy
 * completion's parallel lists.
 */
#ifndef ST_CLI_SERVE_LOGPROBS_JSON_H
#define ST_CLI_SERVE_LOGPROBS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <stretch/stretch.h>

typedef struct st_lp_entry {
    int32_t token;
    bool none;                 /* no log-probability: an echoed prompt's first token */
    float logprob;
    uint32_t n_top;
    int32_t top_ids[ST_TOP_LOGPROBS_MAX];
    float top[ST_TOP_LOGPROBS_MAX];
} st_lp_entry;

typedef struct st_lp_log {
    st_lp_entry *entries;
    size_t n, cap;
    size_t sent;               /* entries already in a streamed chunk */
    size_t chars;              /* characters of text before entry `sent` (text_offset) */
} st_lp_log;

/* Keep one token's; false when out of memory. */
bool st_lp_add(st_lp_log *log, int32_t token, float logprob, const int32_t *top_ids,
               const float *top, size_t n_top);
/* Keep a token that has none (null in the legacy lists). */
bool st_lp_add_none(st_lp_log *log, int32_t token);
void st_lp_free(st_lp_log *log);

/* Entries [log->sent, log->n) as a choice's "logprobs" value (chat: true
 * for {"content": [...]}, else the legacy lists), their pieces read from
 * the engine; log->sent moves to the end. NULL when out of memory. */
json_t *st_lp_json(st_engine *e, st_lp_log *log, bool chat);

#endif
