/*
 * plugins/sampler/constraint/cg_json.c - see cg_json.h.
 */
#include "cg_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jr {
    const char *src, *p, *end;
    cg_error *err;
} jr;

static cj_value *jfail(jr *r, const char *msg)
{
    r->err->offset = (long)(r->p - r->src);
    snprintf(r->err->message, sizeof r->err->message, "%s", msg);
    return NULL;
}

static void skip_ws(jr *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static cj_value *new_value(jr *r, cj_type t)
{
    cj_value *v = calloc(1, sizeof *v);
    if (!v)
        return jfail(r, "out of memory");
    v->type = t;
    v->offset = (long)(r->p - r->src);
    return v;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void put_utf8(cg_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18);
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    cg_buf_put(b, u, n);
}

static bool read_hex4(jr *r, uint32_t *out)
{
    if (r->end - r->p < 4)
        return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hexval(r->p[i]);
        if (d < 0)
            return false;
        v = v * 16 + (uint32_t)d;
    }
    r->p += 4;
    *out = v;
    return true;
}

/* A string at r->p (on the quote) into a fresh buffer. */
static bool read_string(jr *r, char **out, size_t *len)
{
    cg_buf b = {0};
    r->p++;
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20) {
            cg_buf_free(&b);
            return jfail(r, "control character in a string: write it as an escape"), false;
        }
        if (c >= 0x80) {
            /* JSON text is UTF-8 (RFC 8259): a malformed sequence would
             * reach the grammar as bytes no character matches. */
            int n = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
            bool ok = n && r->end - r->p >= n && !(c == 0xC0 || c == 0xC1) && c <= 0xF4;
            for (int i = 1; ok && i < n; i++)
                ok = ((unsigned char)r->p[i] & 0xC0) == 0x80;
            if (ok && n == 3) {
                unsigned char c1 = (unsigned char)r->p[1];
                ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
            }
            if (ok && n == 4) {
                unsigned char c1 = (unsigned char)r->p[1];
                ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
            }
            if (!ok) {
                cg_buf_free(&b);
                return jfail(r, "malformed UTF-8 in a string"), false;
            }
            cg_buf_put(&b, r->p, (size_t)n);
            r->p += n;
            continue;
        }
        if (c != '\\') {
            cg_buf_put(&b, r->p++, 1);
            continue;
        }
        r->p++;
        if (r->p >= r->end)
            break;
        char e = *r->p++;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e && simple) {
            static const char out_of[] = "\"\\/\b\f\n\r\t";
            cg_buf_put(&b, &out_of[simple - "\"\\/bfnrt"], 1);
        } else if (e == 'u') {
            uint32_t cp, lo;
            if (!read_hex4(r, &cp)) {
                cg_buf_free(&b);
                return jfail(r, "\\u needs four hex digits"), false;
            }
            if (cp >= 0xD800 && cp < 0xDC00 && r->end - r->p >= 6 && r->p[0] == '\\' &&
                r->p[1] == 'u') {
                const char *save = r->p;
                r->p += 2;
                if (read_hex4(r, &lo) && lo >= 0xDC00 && lo < 0xE000)
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                else
                    r->p = save;
            }
            put_utf8(&b, cp);
        } else {
            r->p--;
            cg_buf_free(&b);
            return jfail(r, "unknown escape in a string"), false;
        }
    }
    if (r->p >= r->end) {
        cg_buf_free(&b);
        return jfail(r, "string is not closed: expected '\"'"), false;
    }
    r->p++;
    if (b.oom) {
        cg_buf_free(&b);
        return jfail(r, "out of memory"), false;
    }
    if (!b.s) {
        b.s = calloc(1, 1);
        if (!b.s)
            return jfail(r, "out of memory"), false;
    }
    *out = b.s;
    *len = b.n;
    return true;
}

static cj_value *read_value(jr *r, int depth);

static bool push(cj_value *v, cj_value *item, char *key)
{
    if ((v->n & (v->n - 1)) == 0) {   /* grow at powers of two */
        size_t cap = v->n ? v->n * 2 : 4;
        cj_value **it = realloc(v->items, cap * sizeof *it);
        if (!it)
            return false;
        v->items = it;
        if (v->type == CJ_OBJECT) {
            char **k = realloc(v->keys, cap * sizeof *k);
            if (!k)
                return false;
            v->keys = k;
        }
    }
    v->items[v->n] = item;
    if (v->type == CJ_OBJECT)
        v->keys[v->n] = key;
    v->n++;
    return true;
}

static cj_value *read_container(jr *r, int depth, bool object)
{
    cj_value *v = new_value(r, object ? CJ_OBJECT : CJ_ARRAY);
    if (!v)
        return NULL;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == (object ? '}' : ']')) {
        r->p++;
        return v;
    }
    for (;;) {
        char *key = NULL;
        size_t klen;
        skip_ws(r);
        if (object) {
            if (r->p >= r->end || *r->p != '"') {
                jfail(r, "expected a member name in quotes");
                goto fail;
            }
            if (!read_string(r, &key, &klen))
                goto fail;
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':') {
                free(key);
                jfail(r, "expected ':' after the member name");
                goto fail;
            }
            r->p++;
        }
        cj_value *item = read_value(r, depth + 1);
        if (!item || !push(v, item, key)) {
            free(key);
            cj_free(item);
            if (item)
                jfail(r, "out of memory");
            goto fail;
        }
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == (object ? '}' : ']')) {
            r->p++;
            return v;
        }
        jfail(r, object ? "expected ',' or '}'" : "expected ',' or ']'");
        goto fail;
    }
fail:
    cj_free(v);
    return NULL;
}

static cj_value *read_value(jr *r, int depth)
{
    skip_ws(r);
    if (depth > 512)
        return jfail(r, "nested deeper than 512 levels");
    if (r->p >= r->end)
        return jfail(r, "unexpected end of the JSON text: expected a value");
    char c = *r->p;
    if (c == '{' || c == '[')
        return read_container(r, depth, c == '{');
    if (c == '"') {
        cj_value *v = new_value(r, CJ_STRING);
        if (v && !read_string(r, &v->str, &v->len)) {
            free(v);
            return NULL;
        }
        return v;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(r->end - r->p) >= n && memcmp(r->p, words[i], n) == 0) {
            cj_value *v = new_value(r, i == 2 ? CJ_NULL : CJ_BOOL);
            if (v)
                v->boolean = i == 0;
            r->p += n;
            return v;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        const char *s = r->p;
        if (*r->p == '-')
            r->p++;
        if (r->p < r->end && *r->p == '0')
            r->p++;
        else if (r->p < r->end && *r->p >= '1' && *r->p <= '9')
            while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
                r->p++;
        else
            return jfail(r, "malformed number");
        if (r->p < r->end && *r->p == '.') {
            r->p++;
            if (r->p >= r->end || *r->p < '0' || *r->p > '9')
                return jfail(r, "malformed number: expected a digit after '.'");
            while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
                r->p++;
        }
        if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
            r->p++;
            if (r->p < r->end && (*r->p == '+' || *r->p == '-'))
                r->p++;
            if (r->p >= r->end || *r->p < '0' || *r->p > '9')
                return jfail(r, "malformed number: expected an exponent");
            while (r->p < r->end && *r->p >= '0' && *r->p <= '9')
                r->p++;
        }
        const char *e = r->p;
        r->p = s;
        cj_value *v = new_value(r, CJ_NUMBER);
        r->p = e;
        if (!v)
            return NULL;
        v->len = (size_t)(e - s);
        if (!(v->str = malloc(v->len + 1))) {
            free(v);
            return jfail(r, "out of memory");
        }
        memcpy(v->str, s, v->len);
        v->str[v->len] = '\0';
        v->number = strtod(v->str, NULL);
        return v;
    }
    return jfail(r, "expected a JSON value");
}

cj_value *cj_parse(const char *text, size_t len, cg_error *err)
{
    jr r = {text, text, text + len, err};
    err->offset = -1;
    cj_value *v = read_value(&r, 0);
    if (!v)
        return NULL;
    skip_ws(&r);
    if (r.p < r.end) {
        cj_free(v);
        return jfail(&r, "unexpected text after the JSON value");
    }
    return v;
}

void cj_free(cj_value *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++) {
        cj_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    free(v);
}

const cj_value *cj_get(const cj_value *obj, const char *key)
{
    if (!obj || obj->type != CJ_OBJECT)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0)
            return obj->items[i];
    return NULL;
}

void cj_write_string(const char *s, size_t len, cg_buf *out)
{
    cg_buf_puts(out, "\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': cg_buf_puts(out, "\\\""); break;
        case '\\': cg_buf_puts(out, "\\\\"); break;
        case '\n': cg_buf_puts(out, "\\n"); break;
        case '\r': cg_buf_puts(out, "\\r"); break;
        case '\t': cg_buf_puts(out, "\\t"); break;
        case '\b': cg_buf_puts(out, "\\b"); break;
        case '\f': cg_buf_puts(out, "\\f"); break;
        default:
            if (c < 0x20)
                cg_buf_printf(out, "\\u%04x", c);
            else
                cg_buf_put(out, (const char *)&s[i], 1);
        }
    }
    cg_buf_puts(out, "\"");
}

void cj_write(const cj_value *v, cg_buf *out)
{
    switch (v->type) {
    case CJ_NULL: cg_buf_puts(out, "null"); break;
    case CJ_BOOL: cg_buf_puts(out, v->boolean ? "true" : "false"); break;
    case CJ_NUMBER: cg_buf_put(out, v->str, v->len); break;
    case CJ_STRING: cj_write_string(v->str, v->len, out); break;
    case CJ_ARRAY:
    case CJ_OBJECT:
        cg_buf_puts(out, v->type == CJ_ARRAY ? "[" : "{");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                cg_buf_puts(out, ",");
            if (v->type == CJ_OBJECT) {
                cj_write_string(v->keys[i], strlen(v->keys[i]), out);
                cg_buf_puts(out, ":");
            }
            cj_write(v->items[i], out);
        }
        cg_buf_puts(out, v->type == CJ_ARRAY ? "]" : "}");
        break;
    }
}

bool cj_equal(const cj_value *a, const cj_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case CJ_NULL: return true;
    case CJ_BOOL: return a->boolean == b->boolean;
    case CJ_NUMBER: return a->number == b->number;
    case CJ_STRING: return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
    case CJ_ARRAY:
        if (a->n != b->n)
            return false;
        for (size_t i = 0; i < a->n; i++)
            if (!cj_equal(a->items[i], b->items[i]))
                return false;
        return true;
    case CJ_OBJECT:
        if (a->n != b->n)
            return false;
        for (size_t i = 0; i < a->n; i++) {
            const cj_value *o = cj_get(b, a->keys[i]);
            if (!o || !cj_equal(a->items[i], o))
                return false;
        }
        return true;
    }
    return false;
}
