/*
 * tools/stretch/json_out.c - see json_out.h.
 */
#include "json_out.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void st_json_init(st_json *j, FILE *f, bool pretty)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    j->pretty = pretty;
}

static void indent(st_json *j)
{
    if (!j->pretty)
        return;
    fputc('\n', j->f);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->f);
}

/* Before any value: a comma when it is not the first in its container. */
static void before_value(st_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0) {
        if (j->need_comma[j->depth])
            fputc(',', j->f);
        j->need_comma[j->depth] = true;
        indent(j);
    }
}

static void open_container(st_json *j, char c)
{
    before_value(j);
    fputc(c, j->f);
    if (j->depth + 1 < ST_JSON_MAX_DEPTH)
        j->depth++;
    j->need_comma[j->depth] = false;
}

static void close_container(st_json *j, char c)
{
    bool had = j->need_comma[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (had)
        indent(j);
    fputc(c, j->f);
}

void st_json_begin_object(st_json *j) { open_container(j, '{'); }
void st_json_end_object(st_json *j) { close_container(j, '}'); }
void st_json_begin_array(st_json *j) { open_container(j, '['); }
void st_json_end_array(st_json *j) { close_container(j, ']'); }

void st_json_key(st_json *j, const char *key)
{
    before_value(j);
    st_json_write_escaped(j->f, key, strlen(key));
    fputs(j->pretty ? ": " : ":", j->f);
    j->after_key = true;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return 0;
    if (len > n)
        return 0;
    unsigned cp = c & (0xFFu >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

void st_json_write_escaped(FILE *f, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc((int)c, f);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n': fputs("\\n", f); break;
            case '\r': fputs("\\r", f); break;
            case '\t': fputs("\\t", f); break;
            case '\b': fputs("\\b", f); break;
            case '\f': fputs("\\f", f); break;
            default: fprintf(f, "\\u%04x", c); break;
            }
            i++;
        } else if (c < 0x80) {
            fputc((int)c, f);
            i++;
        } else {
            size_t len = utf8_len(s + i, n - i);
            if (len == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(s + i, 1, len, f);
                i += len;
            }
        }
    }
    fputc('"', f);
}

void st_json_string_n(st_json *j, const char *s, size_t n)
{
    before_value(j);
    st_json_write_escaped(j->f, s, n);
}

void st_json_string(st_json *j, const char *s)
{
    if (!s) {
        st_json_null(j);
        return;
    }
    st_json_string_n(j, s, strlen(s));
}

void st_json_int(st_json *j, int64_t v)
{
    before_value(j);
    fprintf(j->f, "%lld", (long long)v);
}

void st_json_uint(st_json *j, uint64_t v)
{
    before_value(j);
    fprintf(j->f, "%llu", (unsigned long long)v);
}

void st_json_double(st_json *j, double v)
{
    before_value(j);
    if (!isfinite(v)) {
        fputs("null", j->f);
        return;
    }
    char buf[32];
    fputs(st_number_text(v, buf, sizeof buf), j->f);
}

const char *st_number_text(double v, char *buf, size_t cap)
{
    /* The shortest %g that reads back exactly: 1e-06 as written, not
     * 9.9999999999999995e-07; 17 digits always round-trip. */
    /* At least as many digits as the integer part has, so 100 prints as
     * 100 and not 1e+02 (%g turns to exponents when they exceed the
     * precision); 1e-06 keeps its exponent. */
    int whole = isfinite(v) && fabs(v) >= 1.0 ? (int)floor(log10(fabs(v))) + 1 : 1;
    for (int digits = 1; digits <= 17; digits++) {
        int precision = digits > whole ? digits : whole > 17 ? 17 : whole;
        snprintf(buf, cap, "%.*g", precision, v);
        if (!isfinite(v) || strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

void st_json_bool(st_json *j, bool v)
{
    before_value(j);
    fputs(v ? "true" : "false", j->f);
}

void st_json_null(st_json *j)
{
    before_value(j);
    fputs("null", j->f);
}

void st_json_end(st_json *j) { fputc('\n', j->f); }
