/*
 * tools/stretch/eval_common.h - what the long evaluations share: a progress
 * line with rate and ETA, comma-separated number lists from the command
 * line, and a points file that makes a run resumable (each finished point
 * is appended as one line and flushed; a rerun skips the points present).
 */
#ifndef ST_CLI_EVAL_COMMON_H
#define ST_CLI_EVAL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct st_progress {
    double t0;
    size_t done, total;   /* work units (tokens) */
    size_t skipped;       /* units resumed from a previous run */
    bool tty;
    const char *label;
} st_progress;

double st_now_s(void);
void st_progress_start(st_progress *p, const char *label, size_t total);
/* Print "\r[####   ] label done/total  rate/s  ETA" to stderr when a tty. */
void st_progress_show(const st_progress *p);
void st_progress_end(const st_progress *p);

/* "1024,2048,4096" -> values; returns the count, or -1 (message printed). */
int st_parse_list(const char *flag, const char *s, long long *out, int cap, long long min,
                  long long max);

/* Open DIR/name for appending finished points (creating DIR). The lines
 * already there are returned through *existing (malloc'd, NUL-separated
 * text, may be NULL) for the caller to parse. NULL + message on failure. */
FILE *st_points_open(const char *dir, const char *name, bool fresh, char **existing,
                     size_t *existing_len);

#endif
