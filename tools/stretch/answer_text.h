/*
 * tools/stretch/answer_text.h - one generated answer's text on its way out
 * of `run` and `chat`: through the --stop texts (stop_strings.h), printed
 * to stdout as it may be shown, kept whole (for --json, or a
 * conversation), or both.
 */
#ifndef ST_CLI_ANSWER_TEXT_H
#define ST_CLI_ANSWER_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "eval_common.h"
#include "stop_strings.h"

typedef struct st_cli_answer {
    st_stop_text stop;
    st_text_buf text;         /* what was shown, when kept (the caller frees text.s) */
    bool print, keep;
    bool out_of_memory;
    bool by_stop_text;        /* after st_cli_answer_end: a stop text ended it */
} st_cli_answer;

void st_cli_answer_init(st_cli_answer *a, const char *const *stops, size_t n_stops, bool print,
                        bool keep);
/* A token's text: nonzero when generation should stop (a stop text
 * completed, or the kept text ran out of memory). */
int st_cli_answer_feed(st_cli_answer *a, const char *text, size_t len);
/* At the answer's end: what was held back is shown (unless a stop text
 * ended it) and by_stop_text is set. */
void st_cli_answer_end(st_cli_answer *a);

#endif
