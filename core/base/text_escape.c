/*
 * core/text_escape.c - see text_escape.h.
 */
#include "text_escape.h"

#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at `p` that is printable (not a C1
 * control), or 0 when the byte at `p` must be escaped. */
static size_t st_printable_utf8(const unsigned char *p)
{
    unsigned char c = p[0];
    if (c >= 0x20 && c < 0x7f)
        return 1;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
             : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0)
        return 0; /* a control, DEL, a stray continuation or an invalid lead */
    for (size_t k = 1; k < n; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    if (c == 0xc2 && p[1] < 0xa0)
        return 0; /* U+0080..U+009F: C1 controls (0x9b is CSI) */
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xf0 && p[1] < 0x90))
        return 0; /* overlong */
    if ((c == 0xed && p[1] >= 0xa0) || (c == 0xf4 && p[1] >= 0x90))
        return 0; /* surrogates, beyond U+10FFFF */
    return n;
}

/* The escape for the byte `c` ("\n", "\x1b") into buf[5]. */
static size_t st_escape_byte(unsigned char c, char *buf)
{
    switch (c) {
    case '\n': memcpy(buf, "\\n", 3); return 2;
    case '\r': memcpy(buf, "\\r", 3); return 2;
    case '\t': memcpy(buf, "\\t", 3); return 2;
    default: snprintf(buf, 5, "\\x%02x", c); return 4;
    }
}

/* Escape `s` into `out` (NULL: only measure); returns the size written or
 * needed, terminator included. One walk for both so they cannot disagree. */
static size_t st_escape_walk(const char *s, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t used = 0;
    while (*p) {
        char esc[5];
        const char *piece = (const char *)p;
        size_t n = st_printable_utf8(p), advance = n;
        if (n == 0) {
            n = st_escape_byte(*p, esc);
            piece = esc;
            advance = 1;
        }
        if (out) {
            if (used + n + 1 > cap)
                break;
            memcpy(out + used, piece, n);
        }
        used += n;
        p += advance;
    }
    if (out && cap)
        out[used] = '\0';
    return used + 1;
}

const char *st_text_escape(const char *s, char *out, size_t cap)
{
    if (!out || cap == 0)
        return out;
    st_escape_walk(s ? s : "", out, cap);
    return out;
}

size_t st_text_escaped_size(const char *s)
{
    return st_escape_walk(s ? s : "", NULL, 0);
}
