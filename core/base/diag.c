/*
 * core/diag.c - fill and format one diagnostic ("file:line:col: message").
 * Messages are kept on one line: a newline inside a message (say, copied
 * from a library) would split one error into two for a reader or a grep;
 * other control characters are escaped (text_escape.h).
 */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "text_escape.h"

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
    char message[ST_DIAG_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    st_diag_flatten(message);
    /* Names and messages quote files and plugins: no byte of theirs may
     * reach a terminal as a control. `file` may alias d->file. */
    char path[ST_DIAG_FILE_MAX];
    st_text_escape(file ? file : "", path, sizeof path);
    d->status = status;
    memcpy(d->file, path, sizeof d->file);
    d->line = line > 0 ? line : 0;
    d->col = col > 0 && d->line > 0 ? col : 0;
    st_text_escape(message, d->message, sizeof d->message);
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

st_status st_error_set(st_error *err, st_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

st_status st_error_from_diag(st_error *err, const st_diag *d)
{
    char line[ST_DIAG_FILE_MAX + ST_DIAG_MESSAGE_MAX + 32];
    return st_error_set(err, d->status ? d->status : ST_E_INTERNAL, "%s",
                        st_diag_format(d, line, sizeof line));
}
