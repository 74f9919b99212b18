/*
 * tools/stretch/serve/utf8_text.c - see utf8_text.h.
 */
#include "utf8_text.h"

#include <stdlib.h>
#include <string.h>

/* The length of the valid UTF-8 character at p (RFC 3629: no overlongs,
 * no surrogates, nothing past U+10FFFF) within `left` bytes, or 0. */
static size_t char_len(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
             : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n > left)
        return 0;
    for (size_t k = 1; k < n; k++)
        if ((p[k] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0)))
        return 0;
    if (n == 4 && ((c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90)))
        return 0;
    return n;
}

char *st_utf8_clean(const char *in, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    size_t used = 0;
    while (*p) {
        /* A NUL ends the string before any character runs past it. */
        size_t n = char_len(p, 4);
        if (used + (n ? n : 1) + 1 > cap)
            break;
        if (n) {
            memcpy(out + used, p, n);
        } else {
            out[used] = '?';
            n = 1;
        }
        used += n;
        p += n;
    }
    out[used] = '\0';
    return out;
}

char *st_utf8_clean_dup(const char *in, size_t len)
{
    char *out = malloc(len + 1);
    if (!out)
        return NULL;
    const unsigned char *p = (const unsigned char *)in;
    size_t i = 0;
    while (i < len) {
        size_t n = p[i] ? char_len(p + i, len - i) : 0;
        if (n) {
            memcpy(out + i, p + i, n);
        } else {
            out[i] = '?';
            n = 1;
        }
        i += n;
    }
    out[len] = '\0';
    return out;
}
