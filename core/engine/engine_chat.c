/*
 * core/engine/engine_chat.c - a whole conversation rendered with the chat
 * template and tokenized part by part, so only the template's markers are
 * special tokens and what the users wrote stays text.
 */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "chat_template.h"

static const char *const known_roles[] = {"system", "user", "assistant"};

static bool role_known(const char *role)
{
    for (size_t i = 0; i < sizeof known_roles / sizeof known_roles[0]; i++)
        if (strcmp(role, known_roles[i]) == 0)
            return true;
    return false;
}

/* Append the ids of one part to *all. */
static st_status append_part(st_engine *e, const char *text, size_t len, uint32_t flags,
                             int32_t **all, size_t *n_all, st_error *err)
{
    int32_t *got = NULL;
    size_t n_got = 0;
    st_status st = st_engine_tokenize(e, text, len, flags, &got, &n_got, err);
    if (st != ST_OK)
        return st;
    int32_t *grown = realloc(*all, (*n_all + n_got + 1) * sizeof **all);
    if (!grown) {
        free(got);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    memcpy(grown + *n_all, got, n_got * sizeof *got);
    *all = grown;
    *n_all += n_got;
    free(got);
    return ST_OK;
}

st_status st_engine_chat_tokenize_messages(st_engine *e, const st_chat_message *msgs,
                                           size_t n_msgs, uint32_t flags, int32_t **ids,
                                           size_t *n_ids, st_error *err)
{
    if (!msgs || n_msgs == 0)
        return st_error_set(err, ST_E_INVALID, "the conversation has no messages");
    const char **roles = malloc(n_msgs * sizeof *roles);
    const char **contents = malloc(n_msgs * sizeof *contents);
    if (!roles || !contents) {
        free(roles);
        free(contents);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    st_status st = ST_OK;
    for (size_t i = 0; i < n_msgs && st == ST_OK; i++) {
        roles[i] = msgs[i].role;
        contents[i] = msgs[i].content;
        if (!roles[i] || !role_known(roles[i]))
            st = st_error_set(err, ST_E_INVALID,
                              "message %zu: role '%s' is not one of system, user, assistant",
                              i, roles[i] ? roles[i] : "(null)");
        else if (!contents[i])
            st = st_error_set(err, ST_E_INVALID, "message %zu: no content", i);
    }
    const char *tmpl = NULL;
    uint64_t tmpl_len = 0;
    if (st_gguf_get_string(e->gguf, "tokenizer.chat_template", &tmpl, &tmpl_len) != ST_OK)
        tmpl = NULL;
    char *text = NULL;
    st_chat_part *parts = NULL;
    size_t n_parts = 0;
    if (st == ST_OK)
        st = st_chat_render_turns(tmpl, tmpl_len, roles, contents, n_msgs, &text, &parts,
                                  &n_parts, err);
    int32_t *all = NULL;
    size_t n_all = 0;
    for (size_t i = 0; i < n_parts && st == ST_OK; i++) {
        uint32_t part_flags = parts[i].markup ? ST_ENCODE_PARSE_SPECIAL
                                              : flags & ST_ENCODE_PARSE_SPECIAL;
        if (i == 0)
            part_flags |= flags & ST_ENCODE_ADD_BOS;
        st = append_part(e, text + parts[i].at, parts[i].len, part_flags, &all, &n_all, err);
    }
    free(text);
    free(parts);
    free(roles);
    free(contents);
    if (st != ST_OK) {
        free(all);
        return st;
    }
    *ids = all;
    *n_ids = n_all;
    return ST_OK;
}
