/*
 * tools/stretch/answer_text.c - see answer_text.h.
 */
#include "answer_text.h"

#include <stdio.h>
#include <string.h>

void st_cli_answer_init(st_cli_answer *a, const char *const *stops, size_t n_stops, bool print,
                        bool keep)
{
    memset(a, 0, sizeof *a);
    st_stop_text_init(&a->stop, stops, n_stops);
    a->print = print;
    a->keep = keep;
}

static void show(void *user, const char *text, size_t len)
{
    st_cli_answer *a = user;
    if (a->print) {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    if (a->keep)
        a->out_of_memory |= st_text_buf_put(&a->text, text, len) != 0;
}

int st_cli_answer_feed(st_cli_answer *a, const char *text, size_t len)
{
    int stop = st_stop_text_feed(&a->stop, text, len, show, a);
    a->out_of_memory |= stop < 0;
    return stop != 0 || a->out_of_memory;
}

void st_cli_answer_end(st_cli_answer *a)
{
    a->by_stop_text = a->stop.hit;
    st_stop_text_end(&a->stop, show, a);
}
