/*
 * core/engine/sentence_reader.c - see sentence_reader.h.
 */
#include "sentence_reader.h"

#include <stdlib.h>
#include <string.h>

#include "diag.h"

st_status st_sentence_reader_init(st_sentence_reader *r, st_read_fn read, void *user,
                                  size_t max_bytes, st_error *err)
{
    memset(r, 0, sizeof *r);
    r->read = read;
    r->user = user;
    r->max_bytes = max_bytes < 4 ? 4 : max_bytes;
    /* Room for one whole sentence plus the byte that tells where it ends,
     * and a read's worth more so refills are not byte by byte. */
    r->cap = 2 * r->max_bytes + 4096;
    r->buf = malloc(r->cap);
    if (!r->buf)
        return st_error_set(err, ST_E_NOMEM, "out of memory for a %zu-byte read buffer",
                            r->cap);
    return ST_OK;
}

void st_sentence_reader_free(st_sentence_reader *r)
{
    free(r->buf);
    r->buf = NULL;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Top the buffer up until it holds more than max_bytes or the document
 * ended. */
static st_status fill(st_sentence_reader *r, st_error *err)
{
    if (r->start) {
        memmove(r->buf, r->buf + r->start, r->len);
        r->start = 0;
    }
    while (!r->eof && r->len <= r->max_bytes) {
        size_t got = r->read(r->user, r->buf + r->len, r->cap - r->len);
        if (got == ST_READ_ERROR)
            return st_error_set(err, ST_E_IO, "reading the document failed after %llu bytes",
                                r->n_bytes);
        if (got == 0 || got > r->cap - r->len) {
            r->eof = true;
            break;
        }
        r->len += got;
        r->n_bytes += got;
    }
    return ST_OK;
}

/* Where a sentence starting at p ends: after the first boundary within
 * p[0..n), 0 when none is. `avail` bytes are buffered (>= n); a '.' as the
 * last of them is no boundary yet unless the document ended (the next
 * byte decides). */
static size_t boundary(const char *p, size_t n, size_t avail, bool eof)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            return i + 1;
        if (p[i] == '.' || p[i] == '!' || p[i] == '?') {
            if (i + 2 <= n && p[i + 1] == '\n')
                return i + 2; /* the line's end belongs to its sentence */
            if (i + 1 < avail && is_space(p[i + 1]))
                return i + 1;
            if (i + 1 == avail && eof)
                return i + 1;
        }
    }
    return 0;
}

/* A cut inside p[0..max) of a stretch without a boundary: before the last
 * space, else at the last UTF-8 lead byte, never 0. */
static size_t forced_cut(const char *p, size_t max)
{
    for (size_t i = max; i-- > 1;)
        if (p[i] == ' ')
            return i;
    for (size_t i = max; i > 0; i--)
        if (((unsigned char)p[i] & 0xC0) != 0x80)
            return i;
    return max;
}

st_status st_sentence_next(st_sentence_reader *r, const char **s, size_t *n, st_error *err)
{
    *s = NULL;
    *n = 0;
    st_status st = fill(r, err);
    if (st != ST_OK || r->len == 0)
        return st;
    const char *p = r->buf + r->start;
    size_t look = r->len < r->max_bytes ? r->len : r->max_bytes;
    size_t end = boundary(p, look, r->len, r->eof);
    if (end == 0)
        end = (r->eof && r->len <= r->max_bytes) ? r->len : forced_cut(p, look);
    *s = p;
    *n = end;
    r->start += end;
    r->len -= end;
    return ST_OK;
}
