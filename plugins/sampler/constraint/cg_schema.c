/*
 * plugins/sampler/constraint/cg_schema.c - see cg_schema.h. Each schema
 * becomes one GBNF rule; a type-less schema is the alternatives of every
 * type with the keywords that apply to it, as JSON Schema reads it.
 */
#include "cg_schema_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SC_DEPTH_MAX 200
#define SC_COUNT_MAX 1000      /* minItems / minLength expanded at most */

enum {
    P_WS = 1 << 0, P_VALUE = 1 << 1, P_STRING = 1 << 2, P_NUMBER = 1 << 3,
    P_INTEGER = 1 << 4, P_CHAR = 1 << 5, P_DATE = 1 << 6, P_TIME = 1 << 7,
    P_UUID = 1 << 8, P_EMAIL = 1 << 9, P_URI = 1 << 10, P_IPV4 = 1 << 11, P_HOSTNAME = 1 << 12
};

bool sc_fail(sc *s, const cj_value *at, const char *path, const char *fmt, ...)
{
    s->err->offset = at ? at->offset : -1;
    int n = snprintf(s->err->message, sizeof s->err->message, "at %s: ", *path ? path : "/");
    if (n < 0 || (size_t)n >= sizeof s->err->message)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err->message + n, sizeof s->err->message - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

bool sc_fail_unsat(sc *s, const cj_value *at, const char *path, const char *fmt, ...)
{
    char msg[sizeof s->err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sc_fail(s, at, path, "%s", msg);
    s->unsat = true;
    return false;
}

sc_mark sc_mark_now(const sc *s)
{
    return (sc_mark){s->out->n, s->n_refs};
}

bool sc_recover(sc *s, sc_mark m)
{
    if (!s->unsat)
        return false;
    /* Rules written and references named while compiling the schema that
     * failed are dropped with it (a reference named but never written
     * would leave an undefined rule). */
    s->unsat = false;
    s->err->message[0] = '\0';
    s->err->offset = -1;
    s->out->n = m.out_n;
    if (s->out->s)
        s->out->s[m.out_n] = '\0';
    s->n_refs = m.n_refs;
    return true;
}

/* A keyword the compiler cannot enforce: refused under strict, else a
 * warning and the keyword is left out. */
bool sc_unsupported(sc *s, const cj_value *at, const char *path, const char *keyword,
                        const char *why)
{
    if (s->opt.strict)
        return sc_fail(s, at, path, "unsupported keyword '%s'%s%s (set strict: false to "
                                    "accept the schema without enforcing it)",
                       keyword, *why ? ": " : "", why);
    cg_buf_printf(s->warn, "%s: '%s' is not enforced%s%s\n", *path ? path : "/", keyword,
                  *why ? ": " : "", why);
    return true;
}

void sc_fresh(sc *s, char name[24])
{
    snprintf(name, 24, "s%d", s->next_id++);
}

static const char *const annotations[] = {
    "title", "description", "$comment", "default", "examples", "$schema", "$id", "id", "deprecated",
    "readOnly", "writeOnly", "contentMediaType", "contentEncoding", "$defs", "definitions",
    "$anchor", NULL};
/* Validation keywords of draft 2020-12 (and older drafts) not enforced. */
static const char *const not_enforced[] = {
    "not", "if", "then", "else", "unevaluatedProperties",
    "unevaluatedItems", "contains", "minContains", "maxContains", "$dynamicRef",
    "$dynamicAnchor", "$recursiveRef", "$recursiveAnchor", NULL};

bool sc_in_list(const char *const *list, const char *k)
{
    for (; *list; list++)
        if (strcmp(*list, k) == 0)
            return true;
    return false;
}

void sc_child_path(char *out, size_t cap, const char *path, const char *key)
{
    /* `out` may be `path`: extend in place. JSON Pointer escapes: ~ -> ~0,
     * / -> ~1. */
    size_t n = strlen(path);
    if (out != path)
        n = (size_t)snprintf(out, cap, "%s", path);
    if (n + 1 < cap)
        out[n++] = '/';
    for (const char *k = key; *k && n + 3 < cap; k++) {
        if (*k == '~' || *k == '/') {
            out[n++] = '~';
            out[n++] = *k == '~' ? '0' : '1';
        } else {
            out[n++] = *k;
        }
    }
    out[n < cap ? n : cap - 1] = '\0';
}

/* ---- merging (allOf, and siblings of anyOf) ---- */

cj_value *sc_owned_node(sc *s, cj_type t)
{
    if (s->n_owned == s->cap_owned) {
        size_t cap = s->cap_owned ? s->cap_owned * 2 : 16;
        cj_value **o = realloc(s->owned, cap * sizeof *o);
        if (!o)
            return NULL;
        s->owned = o;
        s->cap_owned = cap;
    }
    cj_value *v = calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->type = t;
    s->owned[s->n_owned++] = v;
    return v;
}

bool sc_node_push(cj_value *v, const char *key, const cj_value *item)
{
    cj_value **it = realloc(v->items, (v->n + 1) * sizeof *it);
    if (!it)
        return false;
    v->items = it;
    if (v->type == CJ_OBJECT) {
        char **k = realloc(v->keys, (v->n + 1) * sizeof *k);
        if (!k)
            return false;
        v->keys = k;
        v->keys[v->n] = (char *)key;
    }
    v->items[v->n++] = (cj_value *)item;
    return true;
}

const cj_value *sc_resolve_ref(sc *s, const cj_value *ref, const char *path);

unsigned sc_type_bits(const cj_value *t);

/* a AND b as one schema object (shallow). NULL after a failure. */
const cj_value *sc_merge(sc *s, const cj_value *a, const cj_value *b, const char *path)
{
    for (int pass = 0; pass < 2; pass++) {
        const cj_value **x = pass ? &b : &a;
        if ((*x)->type == CJ_BOOL) {
            if (!(*x)->boolean)
                return sc_fail_unsat(s, *x, path, "allOf contains false: nothing matches"), NULL;
            return pass ? a : b;
        }
        const cj_value *ref = cj_get(*x, "$ref");
        if (ref && !(*x = sc_resolve_ref(s, ref, path)))
            return NULL;
        if ((*x)->type == CJ_BOOL)
            return sc_merge(s, a, b, path);
    }
    cj_value *m = sc_owned_node(s, CJ_OBJECT);
    if (!m)
        return sc_fail(s, a, path, "out of memory"), NULL;
    m->offset = a->offset;
    for (size_t i = 0; i < a->n; i++) {
        const char *k = a->keys[i];
        if (strcmp(k, "$ref") == 0)
            continue;
        const cj_value *va = a->items[i], *vb = cj_get(b, k);
        const cj_value *v = va;
        if (vb && !cj_equal(va, vb)) {
            if (strcmp(k, "properties") == 0 && va->type == CJ_OBJECT && vb->type == CJ_OBJECT) {
                cj_value *p = sc_owned_node(s, CJ_OBJECT);
                if (!p)
                    return NULL;
                for (size_t j = 0; j < va->n; j++) {
                    const cj_value *o = cj_get(vb, va->keys[j]);
                    const cj_value *x = va->items[j];
                    /* A member forbidden on either side stays forbidden. */
                    bool no = (x->type == CJ_BOOL && !x->boolean) ||
                              (o && o->type == CJ_BOOL && !o->boolean);
                    const cj_value *pv = no ? (x->type == CJ_BOOL ? x : o)
                                       : o ? sc_merge(s, x, o, path) : x;
                    if (!pv || !sc_node_push(p, va->keys[j], pv))
                        return NULL;
                }
                for (size_t j = 0; j < vb->n; j++)
                    if (!cj_get(va, vb->keys[j]) && !sc_node_push(p, vb->keys[j], vb->items[j]))
                        return NULL;
                v = p;
            } else if (strcmp(k, "required") == 0 && va->type == CJ_ARRAY &&
                       vb->type == CJ_ARRAY) {
                cj_value *r = sc_owned_node(s, CJ_ARRAY);
                if (!r)
                    return NULL;
                for (size_t j = 0; j < va->n; j++)
                    if (!sc_node_push(r, NULL, va->items[j]))
                        return NULL;
                for (size_t j = 0; j < vb->n; j++) {
                    bool dup = false;
                    for (size_t q = 0; q < va->n; q++)
                        dup = dup || cj_equal(va->items[q], vb->items[j]);
                    if (!dup && !sc_node_push(r, NULL, vb->items[j]))
                        return NULL;
                }
                v = r;
            } else if (strcmp(k, "type") == 0) {
                unsigned both = sc_type_bits(va) & sc_type_bits(vb);
                static const char *const names[] = {"null", "boolean", "object", "array",
                                                    "string", "number", "integer"};
                cj_value *t = sc_owned_node(s, CJ_ARRAY);
                if (!t)
                    return NULL;
                for (int j = 0; j < 7; j++)
                    if (both & (1u << j)) {
                        cj_value *n = sc_owned_node(s, CJ_STRING);
                        if (!n || !sc_node_push(t, NULL, n))
                            return NULL;
                        n->str = (char *)names[j];
                        n->len = strlen(names[j]);
                    }
                if (!t->n)
                    return sc_fail_unsat(s, va, path, "allOf: the types of its schemas exclude "
                                                "each other"), NULL;
                v = t;
            } else if (va->type == CJ_NUMBER && vb->type == CJ_NUMBER &&
                       (strncmp(k, "min", 3) == 0 || strcmp(k, "exclusiveMinimum") == 0)) {
                v = va->number >= vb->number ? va : vb;
            } else if (va->type == CJ_NUMBER && vb->type == CJ_NUMBER &&
                       (strncmp(k, "max", 3) == 0 || strcmp(k, "exclusiveMaximum") == 0)) {
                v = va->number <= vb->number ? va : vb;
            } else if (sc_in_list(annotations, k)) {
                v = va;
            } else {
                if (!sc_unsupported(s, vb, path, "allOf", "its schemas set the same keyword "
                                                       "differently"))
                    return NULL;
                v = va;
            }
        }
        if (!sc_node_push(m, k, v))
            return NULL;
    }
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->keys[i], "$ref") != 0 && !cj_get(a, b->keys[i]) &&
            !sc_node_push(m, b->keys[i], b->items[i]))
            return NULL;
    return m;
}

/* The schema without `skip` (one key), shallow. */
const cj_value *sc_without(sc *s, const cj_value *v, const char *skip)
{
    cj_value *m = sc_owned_node(s, CJ_OBJECT);
    if (!m)
        return NULL;
    m->offset = v->offset;
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->keys[i], skip) != 0 && !sc_node_push(m, v->keys[i], v->items[i]))
            return NULL;
    return m;
}

/* ---- references ---- */

const cj_value *sc_resolve_ref(sc *s, const cj_value *ref, const char *path)
{
    if (ref->type != CJ_STRING)
        return sc_fail(s, ref, path, "$ref must be a string"), NULL;
    const char *p = ref->str;
    if (p[0] != '#' || (p[1] && p[1] != '/')) {
        if (!sc_unsupported(s, ref, path, "$ref", "only local references (#/...) are resolved"))
            return NULL;
        static const cj_value any = {.type = CJ_BOOL, .boolean = true};
        return &any;
    }
    const cj_value *v = s->doc;
    p++;
    while (*p == '/') {
        p++;
        char key[256];
        size_t n = 0;
        while (*p && *p != '/' && n + 1 < sizeof key) {
            if (p[0] == '~' && p[1] == '1') {
                key[n++] = '/';
                p += 2;
            } else if (p[0] == '~' && p[1] == '0') {
                key[n++] = '~';
                p += 2;
            } else if (p[0] == '%' && p[1] && p[2]) {
                char hex[3] = {p[1], p[2], 0};
                key[n++] = (char)strtol(hex, NULL, 16);
                p += 3;
            } else {
                key[n++] = *p++;
            }
        }
        key[n] = '\0';
        if (v->type == CJ_ARRAY) {
            char *end;
            long i = strtol(key, &end, 10);
            v = *end || i < 0 || (size_t)i >= v->n ? NULL : v->items[i];
        } else {
            v = cj_get(v, key);
        }
        if (!v)
            return sc_fail(s, ref, path, "$ref '%s' points at nothing in this schema",
                           ref->str), NULL;
    }
    return v;
}

/* ---- generation ---- */

bool sc_gen_rule(sc *s, const cj_value *schema, const char *path, char name[24]);
bool sc_gen_schema(sc *s, const cj_value *v, const char *path, cg_buf *e);

static unsigned type_bit(const char *t)
{
    static const char *const names[] = {"null", "boolean", "object", "array",
                                        "string", "number", "integer"};
    for (unsigned i = 0; i < 7; i++)
        if (strcmp(t, names[i]) == 0)
            return 1u << i;
    return 0;
}


unsigned sc_type_bits(const cj_value *t)
{
    if (!t)
        return T_ALL;
    unsigned bits = 0;
    if (t->type == CJ_STRING)
        bits = type_bit(t->str);
    for (size_t i = 0; t->type == CJ_ARRAY && i < t->n; i++)
        if (t->items[i]->type == CJ_STRING)
            bits |= type_bit(t->items[i]->str);
    if (bits & T_NUMBER)
        bits |= T_INTEGER;
    return bits;
}

static bool value_has_type(const cj_value *v, unsigned bits)
{
    switch (v->type) {
    case CJ_NULL: return bits & T_NULL;
    case CJ_BOOL: return bits & T_BOOL;
    case CJ_OBJECT: return bits & T_OBJECT;
    case CJ_ARRAY: return bits & T_ARRAY;
    case CJ_STRING: return bits & T_STRING;
    case CJ_NUMBER:
        return (bits & T_NUMBER) || ((bits & T_INTEGER) && v->number == floor(v->number));
    }
    return false;
}

/* The code point a name continues with at byte `depth`; 0 bytes when the
 * name ends there or its bytes are not UTF-8 (no model can write such a
 * name, so it needs no excluding). */
static int key_next(const char *key, size_t depth, uint32_t *cp)
{
    size_t len = strlen(key);
    return len > depth ? cg_utf8_decode(key + depth, len - depth, cp) : 0;
}

/* A JSON string (with its quotes) whose name is none of keys[0..n): a
 * trie over the names' characters (code points, as the grammar matches
 * them), one rule per trie node, each allowing the closing quote unless
 * the path so far is a whole name, a character that continues some name,
 * or any other character and then anything. */
static void key_not_in(sc *s, const char **keys, size_t n, size_t depth, cg_buf *e)
{
    char name[24];
    sc_fresh(s, name);
    cg_buf_printf(e, "%s", name);
    cg_buf body = {0};
    bool whole = false;
    /* The distinct continuing characters, ascending. */
    uint32_t *next = malloc((n ? n : 1) * sizeof *next);
    size_t n_next = 0;
    if (!next) {
        s->out->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t cp;
        if (strlen(keys[i]) == depth) {
            whole = true;
        } else if (key_next(keys[i], depth, &cp)) {
            size_t j = 0;
            while (j < n_next && next[j] < cp)
                j++;
            if (j < n_next && next[j] == cp)
                continue;
            memmove(next + j + 1, next + j, (n_next - j) * sizeof *next);
            next[j] = cp;
            n_next++;
        }
    }
    bool next_backslash = false;
    for (size_t j = 0; j < n_next; j++)
        next_backslash = next_backslash || next[j] == '\\';
    size_t alts = 0;
    if (!whole) {
        cg_buf_puts(&body, "\"\\\"\"");
        alts++;
    }
    /* Any character that is not where a name continues: a plain one
     * outside the continuation set, or an escape. */
    cg_buf_printf(&body, "%s([^\"\\\\\\x00-\\x1F", alts++ ? " | " : "");
    for (size_t j = 0; j < n_next; j++)
        if (next[j] >= 0x20 && next[j] != '"' && next[j] != '\\')
            cg_buf_gbnf_char(&body, next[j], true);
    cg_buf_puts(&body, "]");
    /* An escape is "another character" only where no name continues
     * with a backslash (else it would let an excluded name through). */
    if (!next_backslash)
        cg_buf_puts(&body, " | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4})");
    cg_buf_puts(&body, ") char* \"\\\"\"");
    const char **sub = malloc(n * sizeof *sub);
    if (!sub && n_next)
        s->out->oom = true;
    for (size_t j = 0; sub && j < n_next; j++) {
        size_t m = 0;
        int width = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t cp;
            int w = key_next(keys[i], depth, &cp);
            if (w && cp == next[j]) {
                sub[m++] = keys[i];
                width = w;
            }
        }
        cg_buf_puts(&body, " | ");
        cg_buf_gbnf_literal(&body, sub[0] + depth, (size_t)width);
        cg_buf_puts(&body, " ");
        key_not_in(s, sub, m, depth + (size_t)width, &body);
    }
    free(sub);
    free(next);
    cg_buf_printf(s->out, "%s ::= %s\n", name, body.s ? body.s : "\"\"");
    if (body.oom)
        s->out->oom = true;
    cg_buf_free(&body);
    s->prims |= P_CHAR;
}

static void literal(sc *s, const cj_value *v, cg_buf *e)
{
    /* 1, 1.0 and 1.00 are one number to JSON Schema: an integer-valued
     * number is written either way. */
    if (v->type == CJ_NUMBER && v->number == floor(v->number) && fabs(v->number) < 1e15) {
        cg_buf_printf(e, "(\"%lld\" (\".\" \"0\"+)?)", (long long)v->number);
        return;
    }
    if (v->type == CJ_ARRAY || v->type == CJ_OBJECT) {
        cg_buf_puts(e, v->type == CJ_ARRAY ? "\"[\"" : "\"{\"");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                cg_buf_puts(e, " \",\"");
            if (v->type == CJ_OBJECT) {
                cg_buf key = {0};
                cj_write_string(v->keys[i], strlen(v->keys[i]), &key);
                cg_buf_puts(e, " ");
                cg_buf_gbnf_literal(e, key.s, key.n);
                cg_buf_puts(e, " \":\"");
                cg_buf_free(&key);
            }
            cg_buf_puts(e, " ");
            literal(s, v->items[i], e);
        }
        cg_buf_puts(e, v->type == CJ_ARRAY ? " \"]\"" : " \"}\"");
        return;
    }
    cg_buf tmp = {0};
    cj_write(v, &tmp);
    cg_buf_gbnf_literal(e, tmp.s ? tmp.s : "", tmp.n);
    if (tmp.oom)
        e->oom = true;
    cg_buf_free(&tmp);
    (void)s;
}

/* ---- integers in a range ---- */

static void fixed_range(cg_buf *e, const char *lo, const char *hi, size_t n)
{
    if (n == 1) {
        if (lo[0] == hi[0])
            cg_buf_printf(e, "\"%c\"", lo[0]);
        else
            cg_buf_printf(e, "[%c-%c]", lo[0], hi[0]);
        return;
    }
    bool lo_zeros = true, hi_nines = true;
    for (size_t i = 1; i < n; i++) {
        lo_zeros = lo_zeros && lo[i] == '0';
        hi_nines = hi_nines && hi[i] == '9';
    }
    if (lo[0] == hi[0]) {
        cg_buf_printf(e, "\"%c\" ", lo[0]);
        fixed_range(e, lo + 1, hi + 1, n - 1);
        return;
    }
    if (lo_zeros && hi_nines) {
        cg_buf_printf(e, "[%c-%c] [0-9]{%zu}", lo[0], hi[0], n - 1);
        return;
    }
    char nines[24], zeros[24];
    memset(nines, '9', n - 1);
    memset(zeros, '0', n - 1);
    cg_buf_printf(e, "(\"%c\" (", lo[0]);
    fixed_range(e, lo + 1, nines, n - 1);
    cg_buf_puts(e, ")");
    if (lo[0] + 1 <= hi[0] - 1)
        cg_buf_printf(e, " | [%c-%c] [0-9]{%zu}", lo[0] + 1, hi[0] - 1, n - 1);
    cg_buf_printf(e, " | \"%c\" (", hi[0]);
    fixed_range(e, zeros, hi + 1, n - 1);
    cg_buf_puts(e, "))");
}

/* Decimal numerals (no leading zeros) of a..b, b < 0 meaning unbounded;
 * unbounded ones have at most cap digits when cap > 0 (and a has no more). */
static void nonneg_range(cg_buf *e, long long a, long long b, int cap)
{
    char la[24], lb[24];
    int na = snprintf(la, sizeof la, "%lld", a);
    int nb = b < 0 ? 19 : snprintf(lb, sizeof lb, "%lld", b);
    bool capped = b < 0 && cap > 0 && cap >= na;
    int upto = capped && cap < 18 ? cap : 18;
    cg_buf_puts(e, "(");
    bool first = true;
    long long p10 = 1;
    for (int i = 1; i < na; i++)
        p10 *= 10;
    for (int len = na; len <= nb && len <= upto; len++, p10 *= 10) {
        long long lo = len == na ? a : p10;
        long long top = p10 * 10 - 1;
        long long hi = b >= 0 && b < top ? b : top;
        if (lo > hi)
            continue;
        char slo[24], shi[24];
        snprintf(slo, sizeof slo, "%lld", lo);
        snprintf(shi, sizeof shi, "%lld", hi);
        if (!first)
            cg_buf_puts(e, " | ");
        first = false;
        cg_buf_puts(e, "(");
        fixed_range(e, slo, shi, (size_t)len);
        cg_buf_puts(e, ")");
    }
    if (b < 0 && capped && cap > 18)
        cg_buf_printf(e, "%s[1-9] [0-9]{18,%d}", first ? "" : " | ", cap - 1);
    else if (b < 0 && !capped) {
        int from = na > 18 ? na : 18;
        cg_buf_printf(e, "%s[1-9] [0-9]{%d,}", first ? "" : " | ", na > 18 ? from : 18);
    }
    cg_buf_puts(e, ")");
}

static void int_range(cg_buf *e, bool has_lo, long long lo, bool has_hi, long long hi, int cap)
{
    if (!has_lo && !has_hi) {
        cg_buf_puts(e, "integer");
        return;
    }
    cg_buf_puts(e, "(");
    if (has_lo && lo >= 0) {
        nonneg_range(e, lo, has_hi ? hi : -1, cap);
    } else if (has_hi && hi < 0) {
        cg_buf_puts(e, "\"-\" ");
        nonneg_range(e, -hi, has_lo ? -lo : -1, cap);
    } else {
        cg_buf_puts(e, "\"-\" ");
        nonneg_range(e, 1, has_lo ? -lo : -1, cap);
        cg_buf_puts(e, " | ");
        nonneg_range(e, 0, has_hi ? hi : -1, cap);
    }
    cg_buf_puts(e, ")");
}

static bool bound(sc *s, const cj_value *v, const char *key, const char *path, double *out)
{
    const cj_value *b = cj_get(v, key);
    if (!b)
        return false;
    if (b->type != CJ_NUMBER) {
        sc_fail(s, b, path, "'%s' must be a number", key);
        return false;
    }
    *out = b->number;
    return true;
}

static int multiple_digits(sc *s, const cj_value *v, const char *path, bool *bad);

static bool gen_integer(sc *s, const cj_value *v, const char *path, cg_buf *e)
{
    double x;
    bool has_lo = false, has_hi = false;
    double lo = 0, hi = 0;
    if (bound(s, v, "minimum", path, &x)) {
        has_lo = true;
        lo = ceil(x);
    }
    if (bound(s, v, "exclusiveMinimum", path, &x)) {
        double l = floor(x) + 1;
        lo = has_lo && lo > l ? lo : l;
        has_lo = true;
    }
    if (bound(s, v, "maximum", path, &x)) {
        has_hi = true;
        hi = floor(x);
    }
    if (bound(s, v, "exclusiveMaximum", path, &x)) {
        double h = ceil(x) - 1;
        hi = has_hi && hi < h ? hi : h;
        has_hi = true;
    }
    bool bad = false;
    int k = multiple_digits(s, v, path, &bad);
    if (s->err->message[0])
        return false;
    /* Every integer is a multiple of 1, 0.1, 0.01, ... */
    if (k == -2 && !sc_unsupported(s, cj_get(v, "multipleOf"), path, "multipleOf",
                                   "for integers, only 1 and the powers of ten below it"))
        return false;
    if ((has_lo && fabs(lo) > 1e17) || (has_hi && fabs(hi) > 1e17))
        return sc_unsupported(s, v, path, "minimum", "bounds beyond 1e17") &&
               (cg_buf_puts(e, "integer"), true);
    if (has_lo && has_hi && lo > hi)
        return sc_fail_unsat(s, v, path, "no integer lies between the minimum and the maximum");
    int_range(e, has_lo, (long long)lo, has_hi, (long long)hi, s->opt.max_digits);
    s->prims |= P_INTEGER;
    return true;
}

/* multipleOf as the number of fraction digits it allows: 10^-k -> k
 * (1 -> 0); -1 when it is absent; -2 when it is not a power of ten at or
 * below 1 (which a grammar of decimals cannot check digit by digit). */
static int multiple_digits(sc *s, const cj_value *v, const char *path, bool *bad)
{
    const cj_value *m = cj_get(v, "multipleOf");
    if (!m)
        return -1;
    if (m->type != CJ_NUMBER || !(m->number > 0)) {
        *bad = true;
        sc_fail(s, m, path, "'multipleOf' must be a number above 0");
        return -2;
    }
    double p = 1;
    for (int k = 0; k <= 12; k++, p *= 10)
        if (fabs(m->number * p - 1) < 1e-9)
            return k;
    return -2;
}

/* Fractions: any (k < 0: any digits, at most cap when cap > 0; else at
 * most k significant ones), zero-valued, or non-zero. */
static void frac_any(cg_buf *e, int k, int cap)
{
    if (k < 0 && cap > 0)
        cg_buf_printf(e, "(\".\" [0-9]{1,%d})?", cap);
    else if (k < 0)
        cg_buf_puts(e, "(\".\" [0-9]+)?");
    else if (k == 0)
        cg_buf_puts(e, "(\".\" \"0\"+)?");
    else
        cg_buf_printf(e, "(\".\" [0-9]{1,%d} \"0\"*)?", k);
}

/* Decimals (no sign, no exponent) of y with lo <(=) y <(=) hi, lo >= 0,
 * lo and hi integers (hi absent: unbounded), at most k fraction digits
 * that are not 0 (k < 0: any). Alternatives appended to e after " | "
 * when *n > 0; *n counts them. */
static void nonneg_decimals(cg_buf *e, size_t *n, const char *sign, long long lo, bool lo_incl,
                            bool has_hi, long long hi, bool hi_incl, int k, int cap)
{
#define ALT_D() cg_buf_printf(e, "%s%s", (*n)++ ? " | " : "", sign)
    long long ilo = lo_incl ? lo : lo + 1;       /* integer parts with any fraction */
    long long ihi = has_hi ? hi - 1 : -1;
    if (!has_hi || ilo <= ihi) {
        ALT_D();
        cg_buf_puts(e, "(");
        nonneg_range(e, ilo, ihi, cap);
        cg_buf_puts(e, " ");
        frac_any(e, k, cap);
        cg_buf_puts(e, ")");
    }
    /* lo itself with a non-zero fraction, where lo is excluded. */
    if (!lo_incl && k != 0 && (!has_hi || lo < hi)) {
        ALT_D();
        if (k < 0)
            cg_buf_printf(e, "(\"%lld\" \".\" [0-9]* [1-9] [0-9]*)", lo);
        else
            cg_buf_printf(e, "(\"%lld\" \".\" [0-9]{0,%d} [1-9] \"0\"*)", lo, k - 1);
    }
    /* hi itself, a zero fraction only, where hi is included. */
    if (has_hi && hi_incl && (hi > lo || (hi == lo && lo_incl))) {
        ALT_D();
        cg_buf_printf(e, "(\"%lld\" (\".\" \"0\"+)?)", hi);
    }
#undef ALT_D
}

static bool gen_number(sc *s, const cj_value *v, const char *path, cg_buf *e)
{
    double lo = 0, hi = 0, xlo = 0, xhi = 0;
    bool has_lo = bound(s, v, "minimum", path, &lo), has_hi = bound(s, v, "maximum", path, &hi);
    bool has_xlo = bound(s, v, "exclusiveMinimum", path, &xlo);
    bool has_xhi = bound(s, v, "exclusiveMaximum", path, &xhi);
    bool bad = false;
    int k = multiple_digits(s, v, path, &bad);
    if (s->err->message[0])
        return false;
    s->prims |= P_NUMBER | P_INTEGER;
    if (k == -2) {
        cg_buf_puts(e, "number");
        return sc_unsupported(s, cj_get(v, "multipleOf"), path, "multipleOf",
                              "only powers of ten at or below 1 (1, 0.1, 0.01, ...)");
    }
    if (!has_lo && !has_hi && !has_xlo && !has_xhi && k < 0) {
        cg_buf_puts(e, "number");
        return true;
    }
    /* The tighter of each pair of bounds. */
    bool lo_incl = true, hi_incl = true;
    if (has_xlo && (!has_lo || xlo >= lo)) {
        lo = xlo;
        lo_incl = false;
        has_lo = true;
    }
    if (has_xhi && (!has_hi || xhi <= hi)) {
        hi = xhi;
        hi_incl = false;
        has_hi = true;
    }
    /* With multipleOf 10^-k, a bound with k fraction digits is one step
     * from an integer: x <= 99.99 is x < 100, x >= -0.99 is x > -1. */
    double step = 1;
    for (int i = 0; i < k; i++)
        step /= 10;
    if (k > 0 && has_hi && hi != floor(hi) && fabs(hi + step - round(hi + step)) < 1e-9 &&
        hi_incl) {
        hi = round(hi + step);
        hi_incl = false;
    }
    if (k > 0 && has_lo && lo != floor(lo) && fabs(lo - step - round(lo - step)) < 1e-9 &&
        lo_incl) {
        lo = round(lo - step);
        lo_incl = false;
    }
    /* Integer-valued bounds below 1e17 are decided on the integer part; a
     * bound with a fraction would need its digits compared. */
    if ((has_lo && (lo != floor(lo) || fabs(lo) >= 1e17)) ||
        (has_hi && (hi != floor(hi) || fabs(hi) >= 1e17))) {
        cg_buf_puts(e, "number");
        const char *kw = has_lo && (lo != floor(lo) || fabs(lo) >= 1e17)
                             ? (lo_incl ? "minimum" : "exclusiveMinimum")
                             : (hi_incl ? "maximum" : "exclusiveMaximum");
        return sc_unsupported(s, cj_get(v, kw), path, kw,
                              "bounds on numbers are enforced when they are integers below 1e17");
    }
    if (has_lo && has_hi && (lo > hi || (lo == hi && !(lo_incl && hi_incl))))
        return sc_fail_unsat(s, v, path, "no number lies between the minimum and the maximum");
    size_t n = 0;
    cg_buf_puts(e, "(");
    /* x >= 0, written without a sign. */
    if (!has_hi || hi >= 0) {
        bool from_zero = !has_lo || lo < 0;
        nonneg_decimals(e, &n, "", from_zero ? 0 : (long long)lo, from_zero || lo_incl, has_hi,
                        (long long)hi, hi_incl, k, s->opt.max_digits);
    }
    /* x < 0 as "-" y, y = -x > 0: y's bounds are x's, mirrored. */
    if (!has_lo || lo < 0) {
        bool to_zero = !has_hi || hi >= 0;
        long long ylo = to_zero ? 0 : (long long)-hi;
        bool ylo_incl = to_zero ? false : hi_incl;
        nonneg_decimals(e, &n, "\"-\" ", ylo, ylo_incl, has_lo, (long long)-lo, lo_incl, k,
                        s->opt.max_digits);
    }
    cg_buf_puts(e, ")");
    if (!n)
        return sc_fail_unsat(s, v, path, "no number lies between the minimum and the maximum");
    (void)bad;
    return true;
}

static bool count(sc *s, const cj_value *v, const char *key, const char *path, long *out)
{
    const cj_value *c = cj_get(v, key);
    if (!c)
        return true;
    if (c->type != CJ_NUMBER || c->number < 0 || c->number != floor(c->number))
        return sc_fail(s, c, path, "'%s' must be a non-negative integer", key);
    *out = c->number > 1e9 ? 1000000000L : (long)c->number;
    return true;
}

/* A pattern that is one repeated character class, "^X*$", "^X+$",
 * "^X{m,n}$" (X a bracket class, an escape like \w, or "."), intersected
 * with minLength/maxLength: "^X{lo,hi}$". False for any other pattern. */
static bool narrow_pattern(const char *pattern, long min, long max, char *out, size_t cap)
{
    /* An unanchored "X+" searches: any string containing an X matches.
     * Strings made only of X are among them, so narrowing it as if it
     * were anchored generates only valid strings (not every valid one). */
    char anchored[600];
    const char *p = pattern;
    size_t n = strlen(p);
    if (n && p[0] != '^' && p[n - 1] != '$' && n + 3 < sizeof anchored) {
        snprintf(anchored, sizeof anchored, "^%s$", pattern);
        p = anchored;
        n += 2;
    }
    if (n < 4 || p[0] != '^' || p[n - 1] != '$' || (n >= 2 && p[n - 2] == '\\'))
        return false;
    const char *a = p + 1, *q;
    if (*a == '[') {
        q = a + 1;
        if (*q == '^')
            q++;
        if (*q == ']')
            q++;
        while (*q && *q != ']')
            q += *q == '\\' && q[1] ? 2 : 1;
        if (*q != ']')
            return false;
        q++;
    } else if (*a == '\\' && a[1] && strchr("wdsWDS", a[1])) {
        q = a + 2;
    } else if (*a == '.') {
        q = a + 1;
    } else {
        return false;
    }
    long qmin, qmax;
    const char *end = p + n - 1;
    if (q + 1 == end && *q == '*') {
        qmin = 0;
        qmax = -1;
    } else if (q + 1 == end && *q == '+') {
        qmin = 1;
        qmax = -1;
    } else if (*q == '{' && end[-1] == '}') {
        char *e;
        qmin = strtol(q + 1, &e, 10);
        if (e == q + 1)
            return false;
        if (*e == '}') {
            qmax = qmin;
        } else if (*e == ',') {
            const char *m = e + 1;
            if (*m == '}') {
                qmax = -1;
                e = (char *)m;
            } else {
                qmax = strtol(m, &e, 10);
            }
            if (*e != '}' || e + 1 != end)
                return false;
        } else {
            return false;
        }
    } else {
        return false;
    }
    long lo = qmin > min ? qmin : min;
    long hi = qmax < 0 ? max : max < 0 ? qmax : (qmax < max ? qmax : max);
    if (hi >= 0 && lo > hi)
        return false;
    int k = hi < 0 ? snprintf(out, cap, "^%.*s{%ld,}$", (int)(q - a), a, lo)
                   : snprintf(out, cap, "^%.*s{%ld,%ld}$", (int)(q - a), a, lo, hi);
    return k > 0 && (size_t)k < cap;
}

/* The fewest characters any match of `pattern` has (a lower bound: a
 * byte set that may hold a UTF-8 continuation byte counts as no
 * character); -1 when the pattern does not compile. A string the pattern
 * searches contains a match, so it is at least that long: a minLength up
 * to it holds for every string the pattern allows. */
static long pattern_min_chars(const char *pattern, size_t len)
{
    cg_buf gbnf = {0};
    cg_error err;
    cg_grammar g;
    cg_grammar_init(&g);
    cg_buf_puts(&gbnf, "root ::= ");
    long best = -1;
    if (cg_regex_to_gbnf(pattern, len, false, &gbnf, &err) && !gbnf.oom &&
        cg_gbnf_parse(&g, gbnf.s, gbnf.n, &err)) {
        const long inf = 1L << 40;
        long *min = malloc((g.n_rules ? g.n_rules : 1) * sizeof *min);
        for (size_t r = 0; min && r < g.n_rules; r++)
            min[r] = inf;
        /* Shortest derivations, to a fixed point (a rule's minimum only
         * falls, and is bounded below by 0). */
        for (bool changed = min != NULL; changed;) {
            changed = false;
            for (size_t r = 0; r < g.n_rules; r++)
                for (size_t a = 0; a < g.rules[r].n_alts; a++) {
                    long sum = 0;
                    for (const cg_elem *el = &g.elems[g.rules[r].alts[a]];
                         el->kind != CG_END && sum < inf; el++) {
                        if (el->kind == CG_REF) {
                            sum += min[el->arg];
                        } else {
                            bool cont = false;
                            for (int b = 0x80; b < 0xC0 && !cont; b++)
                                cont = cg_set_has(g.sets[el->arg], (uint8_t)b);
                            sum += cont ? 0 : 1;
                        }
                    }
                    if (sum < min[r]) {
                        min[r] = sum;
                        changed = true;
                    }
                }
        }
        if (min && min[g.root] < inf)
            best = min[g.root];
        free(min);
    }
    cg_grammar_free(&g);
    cg_buf_free(&gbnf);
    return best;
}

/* A reference to the rule of strings of min..max characters (max -1: no
 * bound), added to the list write_primitives writes out when new. */
static bool counted_string(sc *s, long min, long max, cg_buf *e)
{
    size_t i = 0;
    while (i < s->n_counted && !(s->counted[i].min == min && s->counted[i].max == max))
        i++;
    if (i == s->n_counted) {
        if (s->n_counted == s->cap_counted) {
            size_t cap = s->cap_counted ? s->cap_counted * 2 : 8;
            void *c = realloc(s->counted, cap * sizeof *s->counted);
            if (!c)
                return sc_fail(s, NULL, "", "out of memory");
            s->counted = c;
            s->cap_counted = cap;
        }
        s->counted[s->n_counted].min = min;
        s->counted[s->n_counted++].max = max;
    }
    if (max < 0)
        cg_buf_printf(e, "string-%ld-up", min);
    else
        cg_buf_printf(e, "string-%ld-%ld", min, max);
    return true;
}

static bool gen_string(sc *s, const cj_value *v, const char *path, cg_buf *e)
{
    const cj_value *fmt = cj_get(v, "format"), *pat = cj_get(v, "pattern");
    long min = 0, max = -1;
    if (!count(s, v, "minLength", path, &min) || !count(s, v, "maxLength", path, &max))
        return false;
    if (max >= 0 && min > max)
        return sc_fail_unsat(s, v, path, "minLength is above maxLength");
    bool lengths = min > 0 || max >= 0;
    if (fmt && fmt->type == CJ_STRING) {
        static const struct { const char *name; unsigned prim; const char *expr; } formats[] = {
            {"date", P_DATE, "date"},
            {"time", P_TIME, "time"},
            {"date-time", P_DATE | P_TIME, "date [Tt] time"},
            {"uuid", P_UUID, "uuid"},
            {"email", P_EMAIL, "email"},
            {"uri", P_URI, "uri"},
            {"ipv4", P_IPV4, "ipv4"},
            {"hostname", P_HOSTNAME, "hostname"},
        };
        /* Formats whose every string has one length: a length limit
         * either holds for all of them or for none. */
        static const struct { const char *name; long len; } fixed[] = {{"date", 10},
                                                                        {"uuid", 36}};
        for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
            if (strcmp(fmt->str, formats[i].name) == 0) {
                s->prims |= formats[i].prim;
                cg_buf_printf(e, "\"\\\"\" %s \"\\\"\"", formats[i].expr);
                if (pat && !sc_unsupported(s, pat, path, "pattern", "together with format"))
                    return false;
                long len = -1;
                for (size_t j = 0; j < sizeof fixed / sizeof fixed[0]; j++)
                    if (strcmp(fmt->str, fixed[j].name) == 0)
                        len = fixed[j].len;
                bool implied = len >= 0 && min <= len && (max < 0 || len <= max);
                if (lengths && !implied &&
                    !sc_unsupported(s, v, path, "minLength", "length limits together with format"))
                    return false;
                return true;
            }
        /* The formats draft 2020-12 defines and this compiler does not
         * enforce are reported; any other name is an annotation, which the
         * specification says a validator ignores. */
        static const char *const spec_formats[] = {
            "duration", "idn-email", "idn-hostname", "ipv6", "uri-reference", "iri",
            "iri-reference", "uri-template", "json-pointer", "relative-json-pointer", "regex",
            NULL};
        if (sc_in_list(spec_formats, fmt->str) && !sc_unsupported(s, fmt, path, "format", fmt->str))
            return false;
    }
    char narrowed[600];
    if (pat && pat->type == CJ_STRING && lengths &&
        narrow_pattern(pat->str, min, max, narrowed, sizeof narrowed)) {
        cg_error rerr;
        cg_buf_puts(e, "\"\\\"\" ");
        if (cg_regex_to_gbnf(narrowed, strlen(narrowed), true, e, &rerr)) {
            cg_buf_puts(e, " \"\\\"\"");
            return true;
        }
        return sc_unsupported(s, pat, path, "pattern", rerr.message);
    }
    if (pat) {
        if (pat->type != CJ_STRING)
            return sc_fail(s, pat, path, "'pattern' must be a string");
        /* Lengths the pattern implies need nothing more; others take the
         * product of the pattern with a character count. */
        if (lengths && !(max < 0 && min <= pattern_min_chars(pat->str, pat->len)))
            return sc_pattern_with_length(s, pat, path, pat->str, pat->len, min,
                                          max > SC_COUNT_MAX ? SC_COUNT_MAX : max, e);
        cg_error rerr;
        cg_buf_puts(e, "\"\\\"\" ");
        if (!cg_regex_to_gbnf(pat->str, pat->len, true, e, &rerr)) {
            if (!sc_unsupported(s, pat, path, "pattern", rerr.message))
                return false;
            cg_buf_puts(e, "char*");
            s->prims |= P_CHAR;
        }
        cg_buf_puts(e, " \"\\\"\"");
        return true;
    }
    s->prims |= P_CHAR | P_STRING;
    if (!lengths) {
        cg_buf_puts(e, "string");
        return true;
    }
    if (min > SC_COUNT_MAX)
        return sc_unsupported(s, v, path, "minLength", "above 1000") &&
               (cg_buf_puts(e, "string"), true);
    /* A large maxLength (65535 is common) is generated as at most 1000
     * characters: every output stays valid, and the grammar stays small. */
    if (max > SC_COUNT_MAX)
        max = SC_COUNT_MAX > min ? SC_COUNT_MAX : min;
    return counted_string(s, min, max, e);
}

static bool gen_object(sc *s, const cj_value *v, const char *path, cg_buf *e)
{
    const cj_value *props = cj_get(v, "properties"), *req = cj_get(v, "required");
    const cj_value *add = cj_get(v, "additionalProperties");
    const cj_value *pprops = cj_get(v, "patternProperties");
    char p[600];
    s->prims |= P_WS;
    if (props && props->type != CJ_OBJECT)
        return sc_fail(s, props, path, "'properties' must be an object");
    if (req && req->type != CJ_ARRAY)
        return sc_fail(s, req, path, "'required' must be an array");
    if (pprops && pprops->type != CJ_OBJECT)
        return sc_fail(s, pprops, path, "'patternProperties' must be an object");
    sc_patterns pats;
    if (!sc_patterns_open(s, v, path, (props && props->n) || (req && req->n), &pats)) {
        sc_patterns_close(&pats);
        return false;
    }
    /* Property list: declared ones, then required names not declared. */
    size_t n = (props ? props->n : 0) + (req ? req->n : 0);
    const char **keys = calloc(n ? n : 1, sizeof *keys);
    char (*rules)[24] = calloc(n ? n : 1, sizeof *rules);
    bool *required = calloc(n ? n : 1, sizeof *required);
    size_t k = 0;
    bool ok = keys && rules && required;
    bool *forbidden = calloc(n ? n : 1, sizeof *forbidden);
    ok = ok && forbidden;
    for (size_t i = 0; ok && props && i < props->n; i++) {
        keys[k] = props->keys[i];
        sc_child_path(p, sizeof p, path, "properties");
        sc_child_path(p, sizeof p, p, props->keys[i]);
        /* A property whose schema is false may not appear at all. */
        const cj_value *ps = props->items[i];
        if (!(ps->type == CJ_BOOL && !ps->boolean) &&
            !(ok = sc_patterns_declared(s, &pats, props->keys[i], p, &ps)))
            break;
        bool is_required = false;
        for (size_t j = 0; req && req->type == CJ_ARRAY && j < req->n; j++)
            is_required = is_required || (req->items[j]->type == CJ_STRING &&
                                          strcmp(req->items[j]->str, props->keys[i]) == 0);
        sc_mark mark = sc_mark_now(s);
        if (ps->type == CJ_BOOL && !ps->boolean)
            forbidden[k] = true;
        else if (!(ok = sc_gen_rule(s, ps, p, rules[k])) && !is_required && sc_recover(s, mark))
            ok = forbidden[k] = true;   /* matches nothing: the member cannot appear */
        k++;
    }
    for (size_t i = 0; ok && req && i < req->n; i++) {
        if (req->items[i]->type != CJ_STRING) {
            ok = sc_fail(s, req->items[i], path, "'required' must list strings");
            break;
        }
        size_t j = 0;
        while (j < k && strcmp(keys[j], req->items[i]->str) != 0)
            j++;
        if (j == k) {
            keys[k] = req->items[i]->str;
            /* Any value, or what the patterns it matches allow. */
            const cj_value *rs = NULL;
            sc_child_path(p, sizeof p, path, "required");
            ok = sc_patterns_declared(s, &pats, keys[k], p, &rs);
            if (ok && rs && rs->type == CJ_BOOL && !rs->boolean) {
                forbidden[k] = true;
            } else if (ok && rs) {
                ok = sc_gen_rule(s, rs, p, rules[k]);
            } else {
                snprintf(rules[k], 24, "value");
                s->prims |= P_VALUE;
            }
            k++;
            if (!ok)
                break;
        }
        required[j] = true;
        if (forbidden[j])
            ok = sc_fail_unsat(s, req->items[i], path, "property '%s' is required but its schema is "
                                                  "false", keys[j]);
    }
    /* What may follow the declared properties: pattern-named members (a
     * name equal to a declared one is not excluded) and other members. */
    cg_buf extra = {0};
    size_t n_extra = 0;
    sc_other_names others = {0};
    if (ok)
        ok = sc_patterns_gen(s, &pats, keys, k, &extra, &n_extra, &others);
    /* minProperties: implied by enough required members, or 1 (a
     * non-empty object); maxProperties and larger minimums are reported. */
    long min_props = 0, n_required = 0;
    if (ok)
        ok = count(s, v, "minProperties", path, &min_props);
    for (size_t i = 0; i < k; i++)
        n_required += required[i];
    if (min_props <= n_required)
        min_props = 0;
    if (ok && min_props > 1) {
        ok = sc_unsupported(s, cj_get(v, "minProperties"), path, "minProperties",
                         "above 1 and above the number of required members");
        min_props = 0;
    }
    /* propertyNames: true, or {pattern} on an object whose members are all
     * "additional" ones (no declared names, no patterns to reconcile with
     * it); anything else is reported. */
    const cj_value *pnames = cj_get(v, "propertyNames"), *name_pattern = NULL;
    if (ok && pnames && !(pnames->type == CJ_BOOL && pnames->boolean)) {
        bool only_pattern = pnames->type == CJ_OBJECT;
        for (size_t i = 0; only_pattern && i < pnames->n; i++)
            only_pattern = strcmp(pnames->keys[i], "pattern") == 0 ||
                           strcmp(pnames->keys[i], "type") == 0 ||
                           sc_in_list(annotations, pnames->keys[i]);
        name_pattern = only_pattern ? cj_get(pnames, "pattern") : NULL;
        if (name_pattern && name_pattern->type != CJ_STRING)
            name_pattern = NULL;
        if (!name_pattern || k > 0 || n_extra > 0)
            ok = sc_unsupported(s, pnames, path, "propertyNames",
                                "enforced as {pattern} on objects without declared or "
                                "pattern-named members");
        if (add && add->type == CJ_BOOL && !add->boolean)
            name_pattern = NULL;   /* closed and without members: nothing to name */
    }
    /* maxProperties: 0 (the empty object), or at least the members a
     * closed object can have (nothing to check); other limits are
     * reported. */
    bool closed = add && add->type == CJ_BOOL && !add->boolean;
    long max_props = -1;
    if (ok)
        ok = count(s, v, "maxProperties", path, &max_props);
    size_t n_possible = 0;
    for (size_t i = 0; i < k; i++)
        n_possible += !forbidden[i];
    if (ok && max_props == 0) {
        if (n_required > 0 || min_props > 0)
            ok = sc_fail_unsat(s, cj_get(v, "maxProperties"), path,
                               "maxProperties 0 but the object must have members");
        for (size_t i = 0; i < k; i++)
            forbidden[i] = true;
        n_extra = 0;
        closed = true;
    } else if (ok && max_props > 0 && !(closed && n_extra == 0 && (size_t)max_props >= n_possible)) {
        ok = sc_unsupported(s, cj_get(v, "maxProperties"), path, "maxProperties",
                            "enforced when 0 or when the object cannot have more members");
    }
    if (ok && !closed) {
        char r[24] = "value";
        if (add && !(add->type == CJ_BOOL)) {
            sc_child_path(p, sizeof p, path, "additionalProperties");
            ok = sc_gen_rule(s, add, p, r);
        } else {
            s->prims |= P_VALUE;
        }
        s->prims |= P_STRING | P_CHAR;
        /* Beside declared properties or patterns, an absent
         * additionalProperties closes the object unless open_objects is
         * set (XGrammar's strict mode does the same): a model writes what
         * the schema names rather than inventing members. */
        bool open = add || (k == 0 && n_extra == 0 && !others.named) || s->opt.open_objects;
        if (ok && open && k == 0 && name_pattern) {
            /* propertyNames {pattern}: every member name matches it. */
            cg_error rerr;
            cg_buf name = {0};
            if (!cg_regex_to_gbnf(name_pattern->str, name_pattern->len, true, &name, &rerr)) {
                ok = sc_unsupported(s, name_pattern, path, "propertyNames", rerr.message);
                cg_buf_free(&name);
                cg_buf_puts(&name, "char*");
            }
            s->prims |= P_CHAR;
            cg_buf_printf(&extra, "%s\"\\\"\" %s \"\\\"\" ws \":\" ws %s", n_extra++ ? " | " : "",
                          name.s ? name.s : "", r);
            if (name.oom)
                s->out->oom = true;
            cg_buf_free(&name);
        } else if (ok && open && others.decided) {
            /* Beside patterns: a name no pattern matches, no declared one. */
            cg_buf name = {0};
            bool written = false;
            ok = sc_gen_other_name(s, &others, keys, k, path, &name, &written);
            if (ok && written)
                cg_buf_printf(&extra, "%s%s ws \":\" ws %s", n_extra++ ? " | " : "", name.s, r);
            if (name.oom)
                s->out->oom = true;
            cg_buf_free(&name);
        } else if (ok && open && k == 0) {
            cg_buf_printf(&extra, "%sstring ws \":\" ws %s", n_extra++ ? " | " : "", r);
        } else if (ok && open) {
            /* A declared name is the declared property's, never another. */
            /* Names as written in JSON (escaped), so the trie runs over
             * the bytes the model writes. */
            char **enc = calloc(k, sizeof *enc);
            for (size_t i = 0; enc && i < k; i++) {
                cg_buf w = {0};
                cj_write_string(keys[i], strlen(keys[i]), &w);
                if (w.s) {
                    w.s[w.n - 1] = '\0';
                    enc[i] = strdup(w.s + 1);
                }
                cg_buf_free(&w);
                ok = ok && enc[i];
            }
            cg_buf_printf(&extra, "%s\"\\\"\" ", n_extra++ ? " | " : "");
            if (ok && enc)
                key_not_in(s, (const char **)enc, k, 0, &extra);
            for (size_t i = 0; enc && i < k; i++)
                free(enc[i]);
            if (!enc)
                ok = false;
            free(enc);
            cg_buf_printf(&extra, " ws \":\" ws %s", r);
        }
    }
    bool *a_alive = calloc(k + 1, sizeof *a_alive);
    if (!a_alive)
        ok = false;
    if (ok) {
        char base[24];
        sc_fresh(s, base);
        /* B_i: after something was written; A_i: nothing written yet. */
        cg_buf *o = s->out;
        cg_buf_printf(o, "%s-b%zu ::= ", base, k);
        if (n_extra)
            cg_buf_printf(o, "(ws \",\" ws (%s))*\n", extra.s);
        else
            cg_buf_puts(o, "\"\"\n");
        /* A_k: nothing written yet and no declared member left. With
         * minProperties 1 it may not be empty; without other members it
         * then has no alternative at all, and A_{k-1} does not refer to it. */
        bool a_k_dead = min_props > 0 && !n_extra;
        if (a_k_dead && k == 0) {
            ok = sc_fail_unsat(s, v, path, "minProperties asks for a member but the object allows "
                                     "none");
        } else if (!a_k_dead) {
            cg_buf_printf(o, "%s-a%zu ::= ", base, k);
            if (n_extra)
                cg_buf_printf(o, "(%s) %s-b%zu%s\n", extra.s, base, k,
                              min_props > 0 ? "" : " | \"\"");
            else
                cg_buf_puts(o, "\"\"\n");
        }
        for (size_t i = k; i-- > 0;) {
            /* Whether A_i may fall through to A_{i+1} (a skipped member). */
            bool a_next = !(a_k_dead && i + 1 == k) && !(a_k_dead && i + 1 < k && !a_alive[i + 1]);
            if (forbidden[i]) {
                cg_buf_printf(o, "%s-b%zu ::= %s-b%zu\n", base, i, base, i + 1);
                if (a_next)
                    cg_buf_printf(o, "%s-a%zu ::= %s-a%zu\n", base, i, base, i + 1);
                a_alive[i] = a_next;
                continue;
            }
            cg_buf kv = {0};
            cg_buf tmp = {0};
            cj_write_string(keys[i], strlen(keys[i]), &tmp);
            cg_buf_gbnf_literal(&kv, tmp.s, tmp.n);
            cg_buf_printf(&kv, " ws \":\" ws %s", rules[i]);
            cg_buf_printf(o, "%s-b%zu ::= ws \",\" ws %s %s-b%zu", base, i, kv.s, base, i + 1);
            if (!required[i])
                cg_buf_printf(o, " | %s-b%zu", base, i + 1);
            cg_buf_puts(o, "\n");
            cg_buf_printf(o, "%s-a%zu ::= %s %s-b%zu", base, i, kv.s, base, i + 1);
            if (!required[i] && a_next)
                cg_buf_printf(o, " | %s-a%zu", base, i + 1);
            a_alive[i] = true;
            cg_buf_puts(o, "\n");
            if (kv.oom || tmp.oom)
                o->oom = true;
            cg_buf_free(&kv);
            cg_buf_free(&tmp);
        }
        if (ok && k > 0 && !a_alive[0])
            ok = sc_fail_unsat(s, v, path, "minProperties asks for a member but the object allows "
                                     "none");
        cg_buf_printf(e, "\"{\" ws %s-a0 ws \"}\"", base);
    }
    free(a_alive);
    cg_dfa_free(&others.names);
    sc_patterns_close(&pats);
    cg_buf_free(&extra);
    free(keys);
    free(rules);
    free(required);
    free(forbidden);
    return ok;
}

static bool gen_array(sc *s, const cj_value *v, const char *path, cg_buf *e)
{
    const cj_value *items = cj_get(v, "items"), *prefix = cj_get(v, "prefixItems");
    const cj_value *add_items = cj_get(v, "additionalItems");
    const cj_value *uniq = cj_get(v, "uniqueItems");
    char p[600];
    long min = 0, max = -1;
    s->prims |= P_WS;
    if (!count(s, v, "minItems", path, &min) || !count(s, v, "maxItems", path, &max))
        return false;
    if (max >= 0 && min > max)
        return sc_fail_unsat(s, v, path, "minItems is above maxItems");
    if (uniq && uniq->type == CJ_BOOL && uniq->boolean &&
        !sc_unsupported(s, uniq, path, "uniqueItems", "a grammar cannot compare items"))
        return false;
    /* Draft 7's tuple form: items as an array, additionalItems for the rest. */
    if (items && items->type == CJ_ARRAY && !prefix) {
        prefix = items;
        items = add_items;
    }
    if (prefix && prefix->type != CJ_ARRAY)
        return sc_fail(s, prefix, path, "'prefixItems' must be an array");
    size_t k = prefix ? prefix->n : 0;
    char (*pr)[24] = calloc(k ? k : 1, sizeof *pr);
    if (!pr)
        return sc_fail(s, v, path, "out of memory");
    bool ok = true;
    for (size_t i = 0; ok && i < k; i++) {
        char idx[24];
        snprintf(idx, sizeof idx, "%zu", i);
        sc_child_path(p, sizeof p, path, "prefixItems");
        sc_child_path(p, sizeof p, p, idx);
        ok = sc_gen_rule(s, prefix->items[i], p, pr[i]);
    }
    char rest[24] = "";
    bool rest_allowed = !(items && items->type == CJ_BOOL && !items->boolean);
    if (ok && rest_allowed) {
        if (items) {
            sc_child_path(p, sizeof p, path, "items");
            sc_mark mark = sc_mark_now(s);
            ok = sc_gen_rule(s, items, p, rest);
            if (!ok && min <= (long)k && sc_recover(s, mark)) {
                ok = true;   /* no item matches: the array ends after the prefix */
                rest_allowed = false;
                rest[0] = '\0';
            }
        } else {
            snprintf(rest, sizeof rest, "value");
            s->prims |= P_VALUE;
        }
    }
    if (ok && (long)k > SC_COUNT_MAX - 1)
        ok = sc_fail(s, v, path, "more than %d prefixItems", SC_COUNT_MAX);
    if (ok && min > SC_COUNT_MAX)
        ok = sc_unsupported(s, v, path, "minItems", "above 1000") && ((min = 0), true);
    if (!ok) {
        free(pr);
        return false;
    }
    long limit = rest_allowed ? max : (max >= 0 && max < (long)k ? max : (long)k);
    if (!rest_allowed && min > (long)k) {
        free(pr);
        return sc_fail_unsat(s, v, path, "minItems is above the number of prefixItems, and items "
                                   "is false");
    }
    /* E_i: the elements from index i on, i >= 1, each after a comma. */
    char base[24];
    sc_fresh(s, base);
    long fixed_upto = (long)k > min ? (long)k : min;
    if (limit >= 0 && fixed_upto > limit)
        fixed_upto = limit;
    cg_buf *o = s->out;
    for (long i = fixed_upto; i >= 1; i--) {
        cg_buf_printf(o, "%s-e%ld ::= ", base, i);
        if (i == fixed_upto) {
            /* From here on every element is `rest`, up to the limit. */
            long left = limit < 0 ? -1 : limit - i;
            if (left == 0 || !rest_allowed || !*rest)
                cg_buf_puts(o, "\"\"\n");
            else if (left < 0)
                cg_buf_printf(o, "(ws \",\" ws %s)*\n", rest);
            else
                cg_buf_printf(o, "(ws \",\" ws %s){0,%ld}\n", rest, left);
            continue;
        }
        const char *item = i < (long)k ? pr[i] : rest;
        if (i < min)
            cg_buf_printf(o, "ws \",\" ws %s %s-e%ld\n", item, base, i + 1);
        else
            cg_buf_printf(o, "(ws \",\" ws %s %s-e%ld)?\n", item, base, i + 1);
    }
    const char *first = k ? pr[0] : rest;
    if (limit == 0 || !*first) {
        cg_buf_puts(e, "\"[\" ws \"]\"");
    } else {
        char tail[40] = "";
        if (fixed_upto >= 1)
            snprintf(tail, sizeof tail, " %s-e1", base);
        else if (limit < 0)
            snprintf(tail, sizeof tail, " (ws \",\" ws %s)*", rest);
        if (fixed_upto >= 1 || limit < 0)
            cg_buf_printf(e, "\"[\" ws (%s%s)%s ws \"]\"", first, tail, min > 0 ? "" : "?");
        else
            cg_buf_printf(e, "\"[\" ws (%s (ws \",\" ws %s){0,%ld})%s ws \"]\"", first, rest,
                          limit - 1, min > 0 ? "" : "?");
    }
    free(pr);
    return true;
}

static bool gen_types(sc *s, const cj_value *v, unsigned bits, const char *path, cg_buf *e)
{
    size_t n = 0;
    cg_buf_puts(e, "(");
#define ALT() (n++ ? cg_buf_puts(e, " | ") : (void)0)
    if (bits & T_NULL) {
        ALT();
        cg_buf_puts(e, "\"null\"");
    }
    if (bits & T_BOOL) {
        ALT();
        cg_buf_puts(e, "\"true\" | \"false\"");
    }
    if (bits & T_OBJECT) {
        ALT();
        if (!gen_object(s, v, path, e))
            return false;
    }
    if (bits & T_ARRAY) {
        ALT();
        if (!gen_array(s, v, path, e))
            return false;
    }
    if (bits & T_STRING) {
        ALT();
        if (!gen_string(s, v, path, e))
            return false;
    }
    if (bits & T_NUMBER) {
        ALT();
        if (!gen_number(s, v, path, e))
            return false;
    } else if (bits & T_INTEGER) {
        ALT();
        if (!gen_integer(s, v, path, e))
            return false;
    }
#undef ALT
    cg_buf_puts(e, ")");
    if (!n)
        return sc_fail(s, v, path, "'type' names no JSON type (expected null, boolean, object, "
                                   "array, string, number or integer)");
    return true;
}

bool sc_gen_schema(sc *s, const cj_value *v, const char *path, cg_buf *e)
{
    if (++s->depth > SC_DEPTH_MAX)
        return sc_fail(s, v, path, "schemas nested deeper than %d", SC_DEPTH_MAX);
    bool ok = true;
    char p[600];
    if (v->type == CJ_BOOL) {
        if (!v->boolean)
            ok = sc_fail_unsat(s, v, path, "the schema false matches nothing");
        else
            cg_buf_puts(e, "value");
        s->prims |= P_VALUE;
        s->depth--;
        return ok;
    }
    if (v->type != CJ_OBJECT) {
        s->depth--;
        return sc_fail(s, v, path, "a schema must be an object or a boolean");
    }
    bool deps_ok;
    if (sc_gen_dependencies(s, v, path, e, &deps_ok)) {
        s->depth--;
        return deps_ok;
    }
    for (size_t i = 0; ok && i < v->n; i++)
        if (sc_in_list(not_enforced, v->keys[i])) {
            sc_child_path(p, sizeof p, path, v->keys[i]);
            ok = sc_unsupported(s, v->items[i], p, v->keys[i], "");
        }
    const cj_value *ref = cj_get(v, "$ref"), *all = cj_get(v, "allOf");
    const cj_value *any = cj_get(v, "anyOf");
    const cj_value *one = cj_get(v, "oneOf");
    const cj_value *en = cj_get(v, "enum"), *cn = cj_get(v, "const");
    bool siblings = false;
    for (size_t i = 0; i < v->n; i++)
        if (!sc_in_list(annotations, v->keys[i]) && strcmp(v->keys[i], "$ref") != 0)
            siblings = true;
    if (!ok) {
    } else if (ref && !siblings) {
        /* A reference is one rule per target, named before it is built, so
         * recursion refers back to it. */
        const cj_value *t = sc_resolve_ref(s, ref, path);
        size_t i = 0;
        while (t && i < s->n_refs && s->refs[i].target != t)
            i++;
        if (!t) {
            ok = false;
        } else if (i < s->n_refs) {
            cg_buf_puts(e, s->refs[i].name);
        } else {
            if (s->n_refs == s->cap_refs) {
                size_t cap = s->cap_refs ? s->cap_refs * 2 : 16;
                sc_ref *r = realloc(s->refs, cap * sizeof *r);
                if (!r) {
                    s->depth--;
                    return sc_fail(s, v, path, "out of memory");
                }
                s->refs = r;
                s->cap_refs = cap;
            }
            sc_ref *r = &s->refs[s->n_refs++];
            r->target = t;
            sc_fresh(s, r->name);
            char name[24];
            memcpy(name, r->name, sizeof name);
            cg_buf body = {0};
            ok = sc_gen_schema(s, t, ref->str, &body);
            if (ok)
                cg_buf_printf(s->out, "%s ::= %s\n", name, body.s);
            cg_buf_free(&body);
            cg_buf_puts(e, name);
        }
    } else if (ref || all) {
        /* allOf (and $ref beside other keywords): one merged schema. */
        const cj_value *m = ref ? sc_without(s, v, "$ref") : sc_without(s, v, "allOf");
        if (m && ref) {
            const cj_value *t = sc_resolve_ref(s, ref, path);
            m = t ? sc_merge(s, m, t, path) : NULL;
        }
        for (size_t i = 0; m && !ref && all->type == CJ_ARRAY && i < all->n; i++)
            m = sc_merge(s, m, all->items[i], path);
        if (!ref && all->type != CJ_ARRAY)
            ok = sc_fail(s, all, path, "'allOf' must be an array");
        else
            ok = m && sc_gen_schema(s, m, path, e);
    } else if (any || one) {
        const cj_value *alts = any ? any : one;
        const char *key = any ? "anyOf" : "oneOf";
        if (alts->type != CJ_ARRAY || alts->n == 0) {
            ok = sc_fail(s, alts, path, "'%s' must be a non-empty array", key);
        } else if (any && one) {
            ok = sc_unsupported(s, one, path, "oneOf", "beside anyOf");
        }
        const cj_value *rest = ok ? sc_without(s, v, key) : NULL;
        bool rest_empty = true;
        for (size_t i = 0; rest && i < rest->n; i++)
            if (!sc_in_list(annotations, rest->keys[i]) && strcmp(rest->keys[i], "anyOf") &&
                strcmp(rest->keys[i], "oneOf"))
                rest_empty = false;
        cg_buf_puts(e, "(");
        size_t n = 0;
        for (size_t i = 0; ok && i < alts->n; i++) {
            if (alts->items[i]->type == CJ_BOOL && !alts->items[i]->boolean)
                continue;   /* false: an alternative nothing takes */
            char idx[24], name[24];
            snprintf(idx, sizeof idx, "%zu", i);
            sc_child_path(p, sizeof p, path, key);
            sc_child_path(p, sizeof p, p, idx);
            sc_mark mark = sc_mark_now(s);
            const cj_value *branch =
                rest_empty ? alts->items[i] : sc_merge(s, sc_without(s, rest, "oneOf"), alts->items[i], p);
            ok = branch && sc_gen_rule(s, branch, p, name);
            if (ok)
                cg_buf_printf(e, "%s%s", n++ ? " | " : "", name);
            else if (sc_recover(s, mark))
                ok = true;   /* an alternative nothing matches */
        }
        cg_buf_puts(e, ")");
        if (ok && !n)
            ok = sc_fail_unsat(s, alts, path, "every alternative of '%s' is false", key);
    } else if (en || cn) {
        unsigned bits = sc_type_bits(cj_get(v, "type"));
        size_t n = 0;
        cg_buf_puts(e, "(");
        if (cn) {
            literal(s, cn, e);
            n++;
        } else if (en->type != CJ_ARRAY) {
            ok = sc_fail(s, en, path, "'enum' must be an array");
        } else {
            for (size_t i = 0; i < en->n; i++)
                if (value_has_type(en->items[i], bits)) {
                    if (n++)
                        cg_buf_puts(e, " | ");
                    literal(s, en->items[i], e);
                }
        }
        cg_buf_puts(e, ")");
        if (ok && !n)
            ok = sc_fail_unsat(s, en ? en : cn, path, "no value of 'enum' has the schema's type");
    } else {
        const cj_value *t = cj_get(v, "type");
        if (t && t->type != CJ_STRING && t->type != CJ_ARRAY)
            ok = sc_fail(s, t, path, "'type' must be a string or an array of strings");
        else
            ok = gen_types(s, v, sc_type_bits(t), path, e);
    }
    s->depth--;
    return ok;
}

bool sc_gen_rule(sc *s, const cj_value *schema, const char *path, char name[24])
{
    if (schema->type == CJ_BOOL && schema->boolean) {
        snprintf(name, 24, "value");
        s->prims |= P_VALUE;
        return true;
    }
    cg_buf body = {0};
    bool ok = sc_gen_schema(s, schema, path, &body);
    if (ok) {
        sc_fresh(s, name);
        cg_buf_printf(s->out, "%s ::= %s\n", name, body.s);
    }
    if (body.oom)
        s->out->oom = true;
    cg_buf_free(&body);
    return ok;
}

static void write_primitives(sc *s)
{
    cg_buf *o = s->out;
    unsigned p = s->prims;
    if (p & P_VALUE)
        p |= P_STRING | P_NUMBER | P_WS | P_CHAR | P_INTEGER;
    if (p & P_STRING)
        p |= P_CHAR;
    if (p & P_NUMBER)
        p |= P_INTEGER;
    if (p & P_WS)
        cg_buf_puts(o, s->opt.compact ? "ws ::= \"\"\n" : "ws ::= [ \\t\\n]{0,20}\n");
    if (p & P_VALUE) {
        cg_buf_puts(o, "value ::= anyobject | anyarray | string | number | \"true\" | \"false\" "
                       "| \"null\"\n");
        cg_buf_puts(o, "anyobject ::= \"{\" ws (string ws \":\" ws value (ws \",\" ws string ws "
                       "\":\" ws value)*)? ws \"}\"\n");
        cg_buf_puts(o, "anyarray ::= \"[\" ws (value (ws \",\" ws value)*)? ws \"]\"\n");
    }
    if (p & P_STRING)
        cg_buf_puts(o, "string ::= \"\\\"\" char* \"\\\"\"\n");
    for (size_t i = 0; i < s->n_counted; i++) {
        if (s->counted[i].max < 0)
            cg_buf_printf(o, "string-%ld-up ::= \"\\\"\" char{%ld,} \"\\\"\"\n",
                          s->counted[i].min, s->counted[i].min);
        else
            cg_buf_printf(o, "string-%ld-%ld ::= \"\\\"\" char{%ld,%ld} \"\\\"\"\n",
                          s->counted[i].min, s->counted[i].max, s->counted[i].min,
                          s->counted[i].max);
    }
    if (p & P_CHAR)
        cg_buf_puts(o, "char ::= [^\"\\\\\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" "
                       "[0-9a-fA-F]{4})\n");
    /* With max-digits D, each digit run has at most D (llama.cpp's JSON
     * grammars have 16): a model cannot write one digit after another
     * until its budget runs out. */
    int d = s->opt.max_digits;
    if ((p & P_NUMBER) && d > 0)
        cg_buf_printf(o, "number ::= integer (\".\" [0-9]{1,%d})? ([eE] [-+]? [0-9]{1,%d})?\n",
                      d, d);
    else if (p & P_NUMBER)
        cg_buf_puts(o, "number ::= integer (\".\" [0-9]+)? ([eE] [-+]? [0-9]+)?\n");
    if ((p & P_INTEGER) && d > 1)
        cg_buf_printf(o, "integer ::= \"-\"? (\"0\" | [1-9] [0-9]{0,%d})\n", d - 1);
    else if ((p & P_INTEGER) && d == 1)
        cg_buf_puts(o, "integer ::= \"-\"? [0-9]\n");
    else if (p & P_INTEGER)
        cg_buf_puts(o, "integer ::= \"-\"? (\"0\" | [1-9] [0-9]*)\n");
    if (p & P_DATE)
        cg_buf_puts(o, "date ::= [0-9]{4} \"-\" (\"0\" [1-9] | \"1\" [0-2]) \"-\" (\"0\" [1-9] | "
                       "[12] [0-9] | \"3\" [01])\n");
    if (p & P_TIME)
        cg_buf_puts(o, "time ::= ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] [0-9] \":\" [0-5] [0-9] "
                       "(\".\" [0-9]+)? ([Zz] | [-+] ([01] [0-9] | \"2\" [0-3]) \":\" [0-5] "
                       "[0-9])\n");
    if (p & P_UUID)
        cg_buf_puts(o, "uuid ::= [0-9a-fA-F]{8} \"-\" [0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{4} \"-\" "
                       "[0-9a-fA-F]{4} \"-\" [0-9a-fA-F]{12}\n");
    if (p & P_EMAIL)
        cg_buf_puts(o, "email ::= [a-zA-Z0-9_+-] [a-zA-Z0-9._+-]{0,63} \"@\" [a-zA-Z0-9] "
                       "[a-zA-Z0-9-]{0,62} (\".\" [a-zA-Z0-9] [a-zA-Z0-9-]{0,62})+\n");
    if (p & P_URI)
        cg_buf_puts(o, "uri ::= [a-zA-Z] [a-zA-Z0-9+.-]* \":\" [a-zA-Z0-9._~:/?#@!$&'()*+,;=%-]+\n");
    /* RFC 1123 labels of at most 62 characters, at most 4 of them: at
     * most 251 characters, inside the 253 a hostname may have (longer
     * valid names are not generated; none generated is invalid). */
    if (p & P_HOSTNAME)
        cg_buf_puts(o, "hostname ::= hlabel (\".\" hlabel){0,3}\n"
                       "hlabel ::= [a-zA-Z0-9] ([a-zA-Z0-9-]{0,60} [a-zA-Z0-9])?\n");
    if (p & P_IPV4)
        cg_buf_puts(o, "ipv4 ::= octet \".\" octet \".\" octet \".\" octet\n"
                       "octet ::= \"25\" [0-5] | \"2\" [0-4] [0-9] | \"1\" [0-9] [0-9] | [1-9] "
                       "[0-9] | [0-9]\n");
}

bool cg_schema_to_gbnf(const char *text, size_t len, const cg_schema_options *opt, cg_buf *out,
                       cg_buf *warnings, cg_error *err)
{
    err->offset = -1;
    err->message[0] = '\0';
    cj_value *doc = cj_parse(text, len, err);
    if (!doc)
        return false;
    sc s = {.doc = doc, .out = out, .warn = warnings, .err = err, .opt = *opt,
            .dfa = {CG_DFA_WORK_MAX}};
    cg_buf body = {0};
    bool ok = sc_gen_schema(&s, doc, "", &body);
    if (ok) {
        cg_buf_printf(out, "root ::= %s\n", body.s);
        write_primitives(&s);
        if (out->oom || body.oom)
            ok = sc_fail(&s, NULL, "", "out of memory");
    }
    cg_buf_free(&body);
    for (size_t i = 0; i < s.n_owned; i++) {
        free(s.owned[i]->items);
        free(s.owned[i]->keys);
        free(s.owned[i]);
    }
    free(s.owned);
    free(s.refs);
    free(s.counted);
    cj_free(doc);
    return ok;
}
