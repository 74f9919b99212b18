#include "chat_template.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static st_status fail(st_error *err, st_status st, const char *msg)
{
    if (err) {
        err->status = st;
        snprintf(err->message, sizeof err->message, "%s", msg);
    }
    return st;
}

static const char *find_n(const char *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; m <= n && i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return hay + i;
    return NULL;
}

/* The template's own default system message: the literal between
 * "<|im_start|>system\n" and "<|im_end|>" inside a quoted string of the
 * template source, when there is one. */
static char *default_system(const char *tmpl, size_t len)
{
    static const char open[] = "<|im_start|>system\n";
    const char *p = find_n(tmpl, len, open);
    if (!p)
        return NULL;
    p += sizeof open - 1;
    const char *end = find_n(p, len - (size_t)(p - tmpl), "<|im_end|>");
    if (!end || end == p)
        return NULL;
    /* Jinja code between them ("{{ message['content'] }}") is not a literal. */
    for (const char *q = p; q < end; q++)
        if (*q == '{' || *q == '\'' || *q == '"')
            return NULL;
    size_t n = (size_t)(end - p);
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

st_status st_chat_render(const char *tmpl, size_t tmpl_len, const char *user,
                         char **out, size_t *user_at, st_error *err)
{
    if (!tmpl || tmpl_len == 0)
        return fail(err, ST_E_UNAVAILABLE,
                    "the model has no tokenizer.chat_template; run without --chat");
    if (!find_n(tmpl, tmpl_len, "<|im_start|>"))
        return fail(err, ST_E_UNAVAILABLE,
                    "the model's chat template is not one stretch recognises (only ChatML "
                    "is supported); run without --chat and format the prompt yourself");
    char *system = default_system(tmpl, tmpl_len);
    size_t need = strlen(user) + (system ? strlen(system) : 0) + 128;
    char *s = malloc(need);
    if (!s) {
        free(system);
        return fail(err, ST_E_NOMEM, "out of memory rendering the chat prompt");
    }
    size_t w = 0;
    if (system)
        w += (size_t)snprintf(s + w, need - w, "<|im_start|>system\n%s<|im_end|>\n", system);
    static const char user_open[] = "<|im_start|>user\n";
    if (user_at)
        *user_at = w + sizeof user_open - 1;
    snprintf(s + w, need - w, "%s%s<|im_end|>\n<|im_start|>assistant\n", user_open, user);
    free(system);
    *out = s;
    return ST_OK;
}

/* The text and its parts as they grow. */
typedef struct turn_writer {
    char *s;
    size_t len, cap;
    st_chat_part *parts;
    size_t n_parts, cap_parts;
} turn_writer;

static bool turn_put(turn_writer *w, const char *text, bool markup)
{
    size_t n = strlen(text);
    if (n == 0)
        return true;
    if (w->len + n + 1 > w->cap) {
        size_t cap = (w->len + n + 1) * 2;
        char *grown = realloc(w->s, cap);
        if (!grown)
            return false;
        w->s = grown;
        w->cap = cap;
    }
    /* Adjacent markup joins one part, so the tokenizer sees "<|im_end|>\n<|im_start|>". */
    if (w->n_parts && w->parts[w->n_parts - 1].markup == markup) {
        w->parts[w->n_parts - 1].len += n;
    } else {
        if (w->n_parts == w->cap_parts) {
            size_t cap = w->cap_parts ? w->cap_parts * 2 : 16;
            st_chat_part *grown = realloc(w->parts, cap * sizeof *grown);
            if (!grown)
                return false;
            w->parts = grown;
            w->cap_parts = cap;
        }
        w->parts[w->n_parts++] = (st_chat_part){w->len, n, markup};
    }
    memcpy(w->s + w->len, text, n + 1);
    w->len += n;
    return true;
}

st_status st_chat_render_turns(const char *tmpl, size_t tmpl_len, const char *const *roles,
                               const char *const *contents, size_t n, char **out,
                               st_chat_part **parts, size_t *n_parts, st_error *err)
{
    /* The same checks and messages as the single-turn render. */
    char *probe = NULL;
    st_status st = st_chat_render(tmpl, tmpl_len, "", &probe, NULL, err);
    free(probe);
    if (st != ST_OK)
        return st;
    bool has_system = false;
    for (size_t i = 0; i < n; i++)
        has_system |= strcmp(roles[i], "system") == 0;
    char *system = has_system ? NULL : default_system(tmpl, tmpl_len);
    turn_writer w = {0};
    bool ok = true;
    if (system)
        ok = turn_put(&w, "<|im_start|>system\n", true) && turn_put(&w, system, true) &&
             turn_put(&w, "<|im_end|>\n", true);
    for (size_t i = 0; ok && i < n; i++)
        ok = turn_put(&w, "<|im_start|>", true) && turn_put(&w, roles[i], true) &&
             turn_put(&w, "\n", true) && turn_put(&w, contents[i], false) &&
             turn_put(&w, "<|im_end|>\n", true);
    ok = ok && turn_put(&w, "<|im_start|>assistant\n", true);
    free(system);
    if (!ok) {
        free(w.s);
        free(w.parts);
        return fail(err, ST_E_NOMEM, "out of memory rendering the chat prompt");
    }
    *out = w.s;
    *parts = w.parts;
    *n_parts = w.n_parts;
    return ST_OK;
}
