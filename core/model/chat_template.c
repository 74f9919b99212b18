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
