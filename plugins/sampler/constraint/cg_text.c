/*
 * plugins/sampler/constraint/cg_text.c - the GBNF text buffer (cg_text.h).
 */
#include "cg_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cg_buf_free(cg_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

void cg_buf_put(cg_buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

void cg_buf_puts(cg_buf *b, const char *s) { cg_buf_put(b, s, strlen(s)); }

void cg_buf_printf(cg_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        cg_buf_put(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    cg_buf_put(b, big, (size_t)n);
    free(big);
}

int cg_utf8_decode(const char *s, size_t left, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    if (!left)
        return 0;
    int n = u[0] < 0x80 ? 1 : (u[0] >> 5) == 6 ? 2 : (u[0] >> 4) == 14 ? 3 : (u[0] >> 3) == 30 ? 4 : 0;
    if (!n || (size_t)n > left)
        return 0;
    uint32_t v = n == 1 ? u[0] : n == 2 ? (u[0] & 0x1Fu) : n == 3 ? (u[0] & 0x0Fu) : (u[0] & 0x07u);
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (u[i] & 0x3Fu);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8
     * (a pattern's F6 A6 9E 95 became U+1A6795, which GBNF cannot write). */
    static const uint32_t least[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < least[n] || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF)
        return 0;
    *cp = v;
    return n;
}

void cg_buf_put_utf8(cg_buf *b, uint32_t cp)
{
    uint8_t u[4];
    int n = cg_utf8_encode(cp, u);
    cg_buf_put(b, (const char *)u, (size_t)n);
}

void cg_buf_gbnf_char(cg_buf *b, uint32_t cp, bool in_class)
{
    if (cp == '"' && !in_class)
        cg_buf_puts(b, "\\\"");
    else if (cp == '\\')
        cg_buf_puts(b, "\\\\");
    else if (in_class && (cp == ']' || cp == '[' || cp == '-' || cp == '^'))
        cg_buf_printf(b, "\\%c", (char)cp);
    else if (cp < 0x20 || cp == 0x7F)
        cg_buf_printf(b, "\\x%02X", (unsigned)cp);
    else if (cp < 0x80)
        cg_buf_put(b, (const char *)&(char){(char)cp}, 1);
    else if (cp < 0x10000)
        cg_buf_printf(b, "\\u%04X", (unsigned)cp);
    else
        cg_buf_printf(b, "\\U%08X", (unsigned)cp);
}

/* Bytes >= 0x80 are copied raw: the GBNF reader decodes them as UTF-8. A
 * byte string that is not valid UTF-8 would be refused there. */
void cg_buf_gbnf_literal(cg_buf *b, const char *s, size_t n)
{
    cg_buf_puts(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80)
            cg_buf_put(b, (const char *)&s[i], 1);
        else
            cg_buf_gbnf_char(b, c, false);
    }
    cg_buf_puts(b, "\"");
}
