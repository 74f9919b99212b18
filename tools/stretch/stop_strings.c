/*
 * tools/stretch/stop_strings.c - see stop_strings.h.
 */
#include "stop_strings.h"

#include <stdlib.h>
#include <string.h>

long st_stop_find(const char *const *stops, size_t n, const char *text, size_t len,
                  size_t from)
{
    long best = -1;
    for (size_t k = 0; k < n; k++) {
        size_t m = strlen(stops[k]);
        for (size_t i = from; m && i + m <= len && (best < 0 || (long)i < best); i++)
            if (memcmp(text + i, stops[k], m) == 0) {
                best = (long)i;
                break;
            }
    }
    return best;
}

size_t st_stop_safe_end(const char *text, size_t len, size_t longest, size_t floor)
{
    size_t safe = longest && len > longest - 1 ? len - (longest - 1) : longest ? 0 : len;
    while (safe > floor && safe < len && ((unsigned char)text[safe] & 0xC0) == 0x80)
        safe--;
    return safe < floor ? floor : safe;
}

void st_stop_text_init(st_stop_text *s, const char *const *stops, size_t n_stops)
{
    memset(s, 0, sizeof *s);
    s->stops = stops;
    s->n_stops = n_stops;
    for (size_t k = 0; k < n_stops; k++)
        if (strlen(stops[k]) > s->longest)
            s->longest = strlen(stops[k]);
}

int st_stop_text_feed(st_stop_text *s, const char *text, size_t len, st_stop_show_fn show,
                      void *user)
{
    if (s->hit)
        return 1;
    if (!s->longest) {
        if (len)
            show(user, text, len);
        return 0;
    }
    if (s->n_held + len > s->cap) {
        size_t cap = (s->n_held + len) * 2;
        char *grown = realloc(s->held, cap);
        if (!grown)
            return -1;
        s->held = grown;
        s->cap = cap;
    }
    memcpy(s->held + s->n_held, text, len);
    s->n_held += len;
    /* What was passed on holds no start of a stop string: it was held
     * back while one could still complete there. */
    long at = st_stop_find(s->stops, s->n_stops, s->held, s->n_held, 0);
    if (at >= 0) {
        if (at)
            show(user, s->held, (size_t)at);
        s->hit = true;
        s->n_held = 0;
        return 1;
    }
    size_t safe = st_stop_safe_end(s->held, s->n_held, s->longest, 0);
    if (safe) {
        show(user, s->held, safe);
        memmove(s->held, s->held + safe, s->n_held - safe);
        s->n_held -= safe;
    }
    return 0;
}

void st_stop_text_end(st_stop_text *s, st_stop_show_fn show, void *user)
{
    if (!s->hit && s->n_held)
        show(user, s->held, s->n_held);
    free(s->held);
    memset(s, 0, sizeof *s);
}
