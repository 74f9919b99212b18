/*
 * tools/stretch/stop_strings.h - stop strings (OpenAI's `stop`, `run
 * --stop`): an answer ends where one of them first appears, and the text
 * shown as it streams never holds the start of one that may still
 * complete. The server scans its whole answer with st_stop_find and
 * st_stop_safe_end; the CLI streams through an st_stop_text.
 */
#ifndef ST_CLI_STOP_STRINGS_H
#define ST_CLI_STOP_STRINGS_H

#include <stdbool.h>
#include <stddef.h>

/* Where the earliest of the n stop strings starts in text[from, len), or
 * -1 when none does. */
long st_stop_find(const char *const *stops, size_t n, const char *text, size_t len,
                  size_t from);

/* How much of text[0, len) can be shown when no stop string is complete:
 * all but the last longest - 1 bytes (which may begin one), moved back to
 * a UTF-8 character's start, and never below floor (what was shown). */
size_t st_stop_safe_end(const char *text, size_t len, size_t longest, size_t floor);

/* A stream of text with stop strings: st_stop_text_feed passes on to
 * `show` what can be shown, and st_stop_text_end the rest. */
typedef void (*st_stop_show_fn)(void *user, const char *text, size_t len);

typedef struct st_stop_text {
    const char *const *stops; /* borrowed */
    size_t n_stops, longest;
    char *held;               /* text not passed on yet */
    size_t n_held, cap;
    bool hit;                 /* a stop string was found: nothing more is shown */
} st_stop_text;

void st_stop_text_init(st_stop_text *s, const char *const *stops, size_t n_stops);
/* 1 when a stop string completes in the text (what precedes it has been
 * shown: stop generating), 0 when not, -1 when out of memory. */
int st_stop_text_feed(st_stop_text *s, const char *text, size_t len, st_stop_show_fn show,
                      void *user);
/* At the answer's end: what is held back is shown (unless a stop string
 * ended it), and the stream is freed. */
void st_stop_text_end(st_stop_text *s, st_stop_show_fn show, void *user);

#endif
