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

#include <stddef.h>
#include <stretch/common.h>

/* template may be NULL (no template in the model). *out is malloc'd and
 * NUL-terminated; the user's text is copied verbatim at *user_at (optional)
 * so a caller can tokenize it apart from the template's markers.
 * ST_E_UNAVAILABLE names the unrecognised template. */
st_status st_chat_render(const char *tmpl, size_t tmpl_len, const char *user,
                         char **out, size_t *user_at, st_error *err);

#endif
