/*
 * core/diag.c - fill and format one diagnostic ("file:line:col: message").
 * Messages are kept on one line: a newline inside a message (say, copied
 * from a library) would split one error into two for a reader or a grep.
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void st_diag_flatten(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t')
            *s = ' ';
}

st_status st_diag_set(st_diag *d, st_status status, const char *file, int line,
                      int col, const char *fmt, ...)
{
    if (!d)
        return status;
    d->status = status;
    snprintf(d->file, sizeof d->file, "%s", file ? file : "");
    d->line = line > 0 ? line : 0;
    d->col = col > 0 && d->line > 0 ? col : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
    st_diag_flatten(d->message);
    return status;
}

const char *st_diag_format(const st_diag *d, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return buf;
    if (!d) {
        buf[0] = '\0';
        return buf;
    }
    if (d->file[0] && d->line > 0 && d->col > 0)
        snprintf(buf, cap, "%s:%d:%d: %s", d->file, d->line, d->col, d->message);
    else if (d->file[0] && d->line > 0)
        snprintf(buf, cap, "%s:%d: %s", d->file, d->line, d->message);
    else if (d->file[0])
        snprintf(buf, cap, "%s: %s", d->file, d->message);
    else
        snprintf(buf, cap, "%s", d->message);
    return buf;
}

void st_diag_clear(st_diag *d)
{
    if (d)
        memset(d, 0, sizeof *d);
}
