/*
 * core/chat_template.h - render a single-turn chat prompt from a GGUF's
 * tokenizer.chat_template. We do not run Jinja: we recognise the template
 * family by its markers (as llama.cpp's llama_chat_apply_template does) and
 * render it natively. Recognised: ChatML (<|im_start|>), with the default
 * system message the template itself inserts when the conversation has none
 * (SmolLM2's does).
 */
#ifndef ST_CORE_CHAT_TEMPLATE_H
#define ST_CORE_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stretch/common.h>

/* template may be NULL (no template in the model). *out is malloc'd and
 * NUL-terminated; the user's text is copied verbatim at *user_at (optional)
 * so a caller can tokenize it apart from the template's markers.
 * ST_E_UNAVAILABLE names the unrecognised template. */
st_status st_chat_render(const char *tmpl, size_t tmpl_len, const char *user,
                         char **out, size_t *user_at, st_error *err);

/* A rendered conversation is its text cut into parts: the template's
 * markup (markers, roles: tokenized with special tokens parsed) and the
 * messages' contents (plain text). */
typedef struct st_chat_part {
    size_t at, len;
    bool markup;
} st_chat_part;

/* Render n turns (roles already checked by the caller) the way the
 * template does, ending with the assistant's opening marker; the
 * template's default system message comes first when no turn is a system
 * one. *out (NUL-terminated) and *parts are malloc'd. */
st_status st_chat_render_turns(const char *tmpl, size_t tmpl_len, const char *const *roles,
                               const char *const *contents, size_t n, char **out,
                               st_chat_part **parts, size_t *n_parts, st_error *err);

#endif
