/*
 * core/diag.h - one diagnostic: where (file, line, column) and what.
 * Every user-facing error in stretch is formatted from one of these as
 * "file:line:col: message" (line/col omitted when 0), on one line.
 */
#ifndef ST_CORE_DIAG_H
#define ST_CORE_DIAG_H

#include <stretch/common.h>

#define ST_DIAG_FILE_MAX 1024
#define ST_DIAG_MESSAGE_MAX 1024

typedef struct st_diag {
    st_status status;
    char file[ST_DIAG_FILE_MAX];
    int line;   /* 1-based; 0 = not applicable */
    int col;    /* 1-based; 0 = not applicable */
    char message[ST_DIAG_MESSAGE_MAX];
} st_diag;

/* Fill `d` (may be NULL) and return `status`. */
st_status st_diag_set(st_diag *d, st_status status, const char *file, int line,
                      int col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* "file:line:col: message" into buf; returns buf. */
const char *st_diag_format(const st_diag *d, char *buf, size_t cap);

void st_diag_clear(st_diag *d);

/* Fill `err` (may be NULL) with `status` and a printf message; returns
 * status, so a failure reads `return st_error_set(err, ST_E_..., ...)`.
 * The one filler of an st_error for the host, its services table and the
 * public API. */
st_status st_error_set(st_error *err, st_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fill `err` (may be NULL) from `d` as one "file:line:col: message" line;
 * returns d's status, ST_E_INTERNAL when d carries none (a failure is never
 * reported as success). */
st_status st_error_from_diag(st_error *err, const st_diag *d);

#endif
