/*
 * plugins/sampler/constraint/cg_regex.c - regular expressions (the common
 * subset of ECMA-262 and PCRE that JSON Schema patterns use) parsed into a
 * tree (cg_regex.h) and translated to GBNF text (cg_text.h):
 *
 *   literals, \-escapes, .  [a-z] [^...]  \d \D \w \W \s \S
 *   ( ) (?: )  |  * + ? {m} {m,} {m,n} (and their lazy ?-forms)
 *   ^ at the start and $ at the end
 *
 * Lookaround, backreferences, word boundaries and anchors elsewhere are
 * refused with their column. A repetition without bound of something that
 * can match the empty string ((a*)*, (a?)+) is refused too: it is the
 * catastrophic-backtracking form, and as a grammar it is left-recursive.
 */
#include "cg_regex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RX_DEPTH_MAX 100
#define RX_QUANTIFIERS_MAX 8   /* stacked on one atom, as in a{2}{3} */
#define RX_RANGES_MAX 1024

typedef struct rx {
    const char *re, *p, *end;
    cg_rx *tree;
    cg_error *err;
    int depth;
} rx;

static bool rx_fail(rx *r, const char *at, const char *msg)
{
    r->err->offset = (long)(at - r->re);
    snprintf(r->err->message, sizeof r->err->message, "pattern column %ld: %s",
             (long)(at - r->re) + 1, msg);
    return false;
}

typedef struct ranges {
    uint32_t v[2 * RX_RANGES_MAX];
    size_t n;
} ranges;

static void add_range(ranges *s, uint32_t lo, uint32_t hi)
{
    if (s->n < RX_RANGES_MAX) {
        s->v[2 * s->n] = lo;
        s->v[2 * s->n + 1] = hi;
        s->n++;
    }
}

static int cmp_pair(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

static void normalise(ranges *s, bool negate)
{
    qsort(s->v, s->n, 2 * sizeof *s->v, cmp_pair);
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (m && s->v[2 * i] <= s->v[2 * m - 1] + 1) {
            if (s->v[2 * i + 1] > s->v[2 * m - 1])
                s->v[2 * m - 1] = s->v[2 * i + 1];
        } else {
            s->v[2 * m] = s->v[2 * i];
            s->v[2 * m + 1] = s->v[2 * i + 1];
            m++;
        }
    }
    s->n = m;
    if (!negate)
        return;
    ranges c = {.n = 0};
    uint32_t next = 0;
    for (size_t i = 0; i < m; i++) {
        if (s->v[2 * i] > next)
            add_range(&c, next, s->v[2 * i] - 1);
        next = s->v[2 * i + 1] + 1;
    }
    if (next <= 0x10FFFF)
        add_range(&c, next, 0x10FFFF);
    *s = c;
}

static bool contains(const ranges *s, uint32_t cp)
{
    for (size_t i = 0; i < s->n; i++)
        if (cp >= s->v[2 * i] && cp <= s->v[2 * i + 1])
            return true;
    return false;
}

static cg_rx_node *new_node(rx *r, cg_rx_kind kind, const char *at)
{
    cg_rx *t = r->tree;
    if (t->n_all == t->cap_all) {
        size_t cap = t->cap_all ? 2 * t->cap_all : 16;
        cg_rx_node **all = realloc(t->all, cap * sizeof *all);
        if (!all)
            return rx_fail(r, at, "out of memory"), NULL;
        t->all = all;
        t->cap_all = cap;
    }
    cg_rx_node *n = calloc(1, sizeof *n);
    if (!n)
        return rx_fail(r, at, "out of memory"), NULL;
    n->kind = kind;
    t->all[t->n_all++] = n;
    return n;
}

static bool add_kid(rx *r, cg_rx_node *parent, cg_rx_node *kid, const char *at)
{
    if (parent->n_kids == parent->cap_kids) {
        size_t cap = parent->cap_kids ? 2 * parent->cap_kids : 4;
        cg_rx_node **kids = realloc(parent->kids, cap * sizeof *kids);
        if (!kids)
            return rx_fail(r, at, "out of memory");
        parent->kids = kids;
        parent->cap_kids = cap;
    }
    parent->kids[parent->n_kids++] = kid;
    return true;
}

/* A SET node of `s` (normalised). */
static cg_rx_node *set_node(rx *r, const ranges *s, const char *at)
{
    if (!s->n)
        return rx_fail(r, at, "this character class matches no character"), NULL;
    cg_rx_node *n = new_node(r, CG_RX_SET, at);
    if (!n)
        return NULL;
    n->ranges = malloc(2 * s->n * sizeof *n->ranges);
    if (!n->ranges)
        return rx_fail(r, at, "out of memory"), NULL;
    memcpy(n->ranges, s->v, 2 * s->n * sizeof *n->ranges);
    n->n_ranges = s->n;
    return n;
}

static cg_rx_node *char_node(rx *r, uint32_t cp, const char *at)
{
    ranges s = {.n = 0};
    add_range(&s, cp, cp);
    return set_node(r, &s, at);
}

/* Write the set as one GBNF symbol. In a JSON string, '"', '\' and
 * control characters appear as their escapes (in Python's json.dumps
 * spelling), so they become literal alternatives beside the class. */
void cg_rx_emit_set(cg_buf *o, const uint32_t *v, size_t n, bool json)
{
    ranges raw = {.n = 0}, s = {.n = 0};
    for (size_t i = 0; i < n; i++)
        add_range(&s, v[2 * i], v[2 * i + 1]);
    for (size_t i = 0; i < s.n; i++) {
        uint32_t lo = s.v[2 * i], hi = s.v[2 * i + 1];
        if (!json) {
            add_range(&raw, lo, hi);
            continue;
        }
        /* Split around the characters JSON escapes: what is left of
         * [lo, hi] in the three spans between them. */
        static const uint32_t plain[3][2] = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}};
        for (int k = 0; k < 3; k++) {
            uint32_t a = lo > plain[k][0] ? lo : plain[k][0];
            uint32_t b = hi < plain[k][1] ? hi : plain[k][1];
            if (a <= b)
                add_range(&raw, a, b);
        }
    }
    size_t n_alts = 0;
    cg_buf_puts(o, "(");
    if (raw.n) {
        cg_buf_puts(o, "[");
        for (size_t i = 0; i < raw.n; i++) {
            cg_buf_gbnf_char(o, raw.v[2 * i], true);
            if (raw.v[2 * i + 1] != raw.v[2 * i]) {
                cg_buf_puts(o, "-");
                cg_buf_gbnf_char(o, raw.v[2 * i + 1], true);
            }
        }
        cg_buf_puts(o, "]");
        n_alts++;
    }
    if (json) {
        static const char *const short_esc[0x20] = {
            [0x08] = "\\\\b", [0x09] = "\\\\t", [0x0A] = "\\\\n", [0x0C] = "\\\\f",
            [0x0D] = "\\\\r"};
        for (uint32_t c = 0; c < 0x20; c++)
            if (contains(&s, c)) {
                if (short_esc[c])
                    cg_buf_printf(o, "%s\"%s\"", n_alts++ ? " | " : "", short_esc[c]);
                else
                    cg_buf_printf(o, "%s\"\\\\u%04x\"", n_alts++ ? " | " : "", (unsigned)c);
            }
        if (contains(&s, '"'))
            cg_buf_printf(o, "%s\"\\\\\\\"\"", n_alts++ ? " | " : "");
        if (contains(&s, '\\'))
            cg_buf_printf(o, "%s\"\\\\\\\\\"", n_alts++ ? " | " : "");
    }
    cg_buf_puts(o, ")");
}

static long hex(rx *r, int digits)
{
    long v = 0;
    for (int i = 0; i < digits; i++) {
        if (r->p >= r->end)
            return -1;
        char c = *r->p++;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A class escape (\d \w \s and negations) into `s`; false if `c` is not one. */
static bool class_escape(char c, ranges *s)
{
    ranges t = {.n = 0};
    char lower = (char)(c | 0x20);
    if (lower == 'd') {
        add_range(&t, '0', '9');
    } else if (lower == 'w') {
        add_range(&t, '0', '9');
        add_range(&t, 'A', 'Z');
        add_range(&t, '_', '_');
        add_range(&t, 'a', 'z');
    } else if (lower == 's') {
        add_range(&t, '\t', '\r');
        add_range(&t, ' ', ' ');
        add_range(&t, 0xA0, 0xA0);
        add_range(&t, 0x2028, 0x2029);
        add_range(&t, 0xFEFF, 0xFEFF);
    } else {
        return false;
    }
    normalise(&t, c != lower);
    for (size_t i = 0; i < t.n; i++)
        add_range(s, t.v[2 * i], t.v[2 * i + 1]);
    return true;
}

/* A single escaped character after '\' (r->p past the backslash); -1 and
 * the failure filled when it is not one this translator knows. */
static long escaped_char(rx *r, const char *at)
{
    /* (A class's range end, `[a-\`, reaches here with nothing left.) */
    if (r->p >= r->end)
        return rx_fail(r, at, "'\\' at the end of the pattern"), -1;
    char c = *r->p++;
    switch (c) {
    case 'n': return '\n';
    case 't': return '\t';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    case '0': return 0;
    case 'x': {
        long v = hex(r, 2);
        return v < 0 ? (rx_fail(r, at, "\\x needs two hex digits"), -1) : v;
    }
    case 'u': {
        long v = hex(r, 4);
        return v < 0 ? (rx_fail(r, at, "\\u needs four hex digits"), -1) : v;
    }
    case 'b': case 'B':
        return rx_fail(r, at, "word boundaries (\\b, \\B) are not supported"), -1;
    default:
        if (c >= '1' && c <= '9')
            return rx_fail(r, at, "backreferences are not supported"), -1;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            return rx_fail(r, at, "unknown escape"), -1;
        return (unsigned char)c;
    }
}

static long utf8_char(rx *r)
{
    uint32_t cp;
    int n = cg_utf8_decode(r->p, (size_t)(r->end - r->p), &cp);
    if (!n)
        return -1;
    r->p += n;
    return cp;
}

static cg_rx_node *parse_class(rx *r)
{
    const char *open = r->p++;
    bool negate = r->p < r->end && *r->p == '^';
    if (negate)
        r->p++;
    ranges s = {.n = 0};
    bool first = true;
    while (r->p < r->end && (*r->p != ']' || first)) {
        first = false;
        const char *at = r->p;
        long lo;
        if (*r->p == '\\' && r->p + 1 < r->end) {
            r->p++;
            if (class_escape(*r->p, &s)) {
                r->p++;
                continue;
            }
            if (*r->p == 'b') {     /* backspace inside a class */
                r->p++;
                lo = 8;
            } else if ((lo = escaped_char(r, at)) < 0) {
                return NULL;
            }
        } else if ((lo = utf8_char(r)) < 0) {
            return rx_fail(r, at, "malformed UTF-8"), NULL;
        }
        long hi = lo;
        if (r->p + 1 < r->end && *r->p == '-' && r->p[1] != ']') {
            r->p++;
            const char *hat = r->p;
            if (*r->p == '\\') {
                r->p++;
                if ((hi = escaped_char(r, hat)) < 0)
                    return NULL;
            } else if ((hi = utf8_char(r)) < 0) {
                return rx_fail(r, hat, "malformed UTF-8"), NULL;
            }
            if (hi < lo)
                return rx_fail(r, hat, "range end is below its start"), NULL;
        }
        add_range(&s, (uint32_t)lo, (uint32_t)hi);
    }
    if (r->p >= r->end)
        return rx_fail(r, open, "character class is not closed: expected ']'"), NULL;
    r->p++;
    normalise(&s, negate);
    return set_node(r, &s, open);
}

static cg_rx_node *parse_alt(rx *r, bool *nullable);

/* One atom; *nullable when it can match "". */
static cg_rx_node *parse_atom(rx *r, bool *nullable)
{
    const char *at = r->p;
    char c = *r->p;
    *nullable = false;
    if (c == '(') {
        r->p++;
        if (r->p < r->end && *r->p == '?') {
            if (r->p + 1 < r->end && r->p[1] == ':') {
                r->p += 2;
            } else if (r->p + 2 < r->end && r->p[1] == '<' && r->p[2] != '=' && r->p[2] != '!') {
                /* A named group captures; here it only groups. */
                const char *close = memchr(r->p, '>', (size_t)(r->end - r->p));
                if (!close)
                    return rx_fail(r, at, "named group without '>'"), NULL;
                r->p = close + 1;
            } else {
                return rx_fail(r, at, "lookaround and (?...) groups are not supported"), NULL;
            }
        }
        if (++r->depth > RX_DEPTH_MAX)
            return rx_fail(r, at, "groups nested too deeply"), NULL;
        cg_rx_node *g = parse_alt(r, nullable);
        if (!g)
            return NULL;
        r->depth--;
        if (r->p >= r->end || *r->p != ')')
            return rx_fail(r, at, "group is not closed: expected ')'"), NULL;
        r->p++;
        return g;
    }
    if (c == '[')
        return parse_class(r);
    if (c == '.') {
        r->p++;
        ranges s = {.n = 0};
        add_range(&s, '\n', '\n');
        add_range(&s, '\r', '\r');
        add_range(&s, 0x2028, 0x2029);
        normalise(&s, true);
        return set_node(r, &s, at);
    }
    if (c == '\\') {
        if (r->p + 1 >= r->end)
            return rx_fail(r, at, "'\\' at the end of the pattern"), NULL;
        r->p++;
        ranges s = {.n = 0};
        if (class_escape(*r->p, &s)) {
            r->p++;
            normalise(&s, false);
            return set_node(r, &s, at);
        }
        long cp = escaped_char(r, at);
        return cp >= 0 ? char_node(r, (uint32_t)cp, at) : NULL;
    }
    if (c == '^' || c == '$')
        return rx_fail(r, at, "anchors are supported only at the start (^) and end ($)"), NULL;
    if (c == '*' || c == '+' || c == '?' || c == '{')
        return rx_fail(r, at, "quantifier follows nothing it could repeat"), NULL;
    if (c == ')')
        return rx_fail(r, at, "unmatched ')'"), NULL;
    long cp = utf8_char(r);
    if (cp < 0)
        return rx_fail(r, at, "malformed UTF-8"), NULL;
    return char_node(r, (uint32_t)cp, at);
}

static bool parse_count(rx *r, long *v)
{
    long x = 0;
    const char *start = r->p;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        x = x * 10 + (*r->p++ - '0');
        if (x > 10000)
            return rx_fail(r, start, "repetition count above 10000");
    }
    *v = x;
    return r->p > start || rx_fail(r, start, "expected a number in { }");
}

static cg_rx_node *parse_concat(rx *r, bool *nullable)
{
    *nullable = true;
    cg_rx_node *cat = new_node(r, CG_RX_CAT, r->p);
    if (!cat)
        return NULL;
    while (r->p < r->end && *r->p != '|' && *r->p != ')') {
        if (*r->p == '$' && r->p + 1 == r->end && r->depth == 0)
            break;   /* the end anchor, handled by the caller */
        bool atom_null;
        int n_quantifiers = 0;
        const char *atom_at = r->p;
        cg_rx_node *item = parse_atom(r, &atom_null);
        if (!item)
            return NULL;
        while (r->p < r->end && (*r->p == '*' || *r->p == '+' || *r->p == '?' || *r->p == '{')) {
            const char *at = r->p;
            /* Each quantifier wraps the last: bounded, so the tree's
             * readers never recurse deeper than groups and this allow. */
            if (++n_quantifiers > RX_QUANTIFIERS_MAX)
                return rx_fail(r, at, "too many quantifiers on one atom"), NULL;
            char q = *r->p++;
            long min = q == '+' ? 1 : 0, max = q == '?' ? 1 : -1;
            if (q == '{') {
                /* A '{' that does not open a quantifier is a literal in
                 * ECMA-262's Annex B; be strict instead. */
                if (!parse_count(r, &min))
                    return NULL;
                max = min;
                if (r->p < r->end && *r->p == ',') {
                    r->p++;
                    max = -1;
                    if (r->p < r->end && *r->p != '}' && !parse_count(r, &max))
                        return NULL;
                }
                if (r->p >= r->end || *r->p != '}')
                    return rx_fail(r, at, "repetition is not closed: expected '}'"), NULL;
                r->p++;
                if (max >= 0 && max < min)
                    return rx_fail(r, at, "repetition maximum below its minimum"), NULL;
            }
            if (r->p < r->end && *r->p == '?')
                r->p++;   /* lazy: the same language */
            if (r->p < r->end && *r->p == '+')
                return rx_fail(r, r->p, "possessive quantifiers are not supported"), NULL;
            if (atom_null && max < 0)
                return rx_fail(r, at, "unbounded repetition of something that can match the "
                                      "empty string (catastrophic, e.g. (a*)*)"), NULL;
            cg_rx_node *rep = new_node(r, CG_RX_REP, atom_at);
            if (!rep || !add_kid(r, rep, item, at))
                return NULL;
            rep->min = min;
            rep->max = max;
            rep->q = q;
            item = rep;
            atom_null = atom_null || min == 0;
        }
        if (!add_kid(r, cat, item, atom_at))
            return NULL;
        *nullable = *nullable && atom_null;
    }
    return cat;
}

static cg_rx_node *parse_alt(rx *r, bool *nullable)
{
    cg_rx_node *alt = new_node(r, CG_RX_ALT, r->p);
    if (!alt)
        return NULL;
    *nullable = false;
    for (;;) {
        bool n;
        const char *at = r->p;
        cg_rx_node *cat = parse_concat(r, &n);
        if (!cat || !add_kid(r, alt, cat, at))
            return NULL;
        *nullable = *nullable || n;
        if (r->p < r->end && *r->p == '|') {
            r->p++;
            continue;
        }
        break;
    }
    return alt;
}

void cg_rx_free(cg_rx *t)
{
    for (size_t i = 0; i < t->n_all; i++) {
        free(t->all[i]->ranges);
        free(t->all[i]->kids);
        free(t->all[i]);
    }
    free(t->all);
    memset(t, 0, sizeof *t);
}

bool cg_rx_parse(const char *re, size_t len, cg_rx *out, cg_error *err)
{
    memset(out, 0, sizeof *out);
    rx r = {re, re, re + len, out, err, 0};
    err->offset = -1;
    err->message[0] = '\0';
    out->anchored_start = len && re[0] == '^';
    if (out->anchored_start)
        r.p++;
    bool nullable;
    if (!(out->root = parse_alt(&r, &nullable)))
        return false;
    if (r.p < r.end && *r.p == '$' && r.p + 1 == r.end) {
        out->anchored_end = true;
        r.p++;
    }
    if (r.p < r.end)
        return rx_fail(&r, r.p, *r.p == ')' ? "unmatched ')'" : "unexpected character");
    return true;
}

static void emit_node(const cg_rx_node *n, bool json, cg_buf *o)
{
    switch (n->kind) {
    case CG_RX_SET:
        cg_rx_emit_set(o, n->ranges, n->n_ranges, json);
        break;
    case CG_RX_ALT:
        cg_buf_puts(o, "(");
        for (size_t i = 0; i < n->n_kids; i++) {
            if (i)
                cg_buf_puts(o, " | ");
            emit_node(n->kids[i], json, o);
        }
        cg_buf_puts(o, ")");
        break;
    case CG_RX_CAT:
        if (!n->n_kids)
            cg_buf_puts(o, "\"\"");
        for (size_t i = 0; i < n->n_kids; i++) {
            if (i)
                cg_buf_puts(o, " ");
            emit_node(n->kids[i], json, o);
        }
        break;
    case CG_RX_REP: {
        /* A repeated repetition (a+*, a{2}{3}: the parser allows a few
         * quantifiers on one atom) is grouped: GBNF takes one quantifier
         * per symbol, and read the bare `x+*` as a syntax error. */
        bool group = n->kids[0]->kind == CG_RX_REP || n->kids[0]->kind == CG_RX_CAT;
        if (group)
            cg_buf_puts(o, "(");
        emit_node(n->kids[0], json, o);
        if (group)
            cg_buf_puts(o, ")");
        if (n->q != '{')
            cg_buf_put(o, &n->q, 1);
        else if (n->max < 0)
            cg_buf_printf(o, "{%ld,}", n->min);
        else
            cg_buf_printf(o, "{%ld,%ld}", n->min, n->max);
        break;
    }
    }
}

bool cg_regex_to_gbnf(const char *re, size_t len, bool json_string, cg_buf *out, cg_error *err)
{
    cg_rx t;
    bool ok = cg_rx_parse(re, len, &t, err);
    if (ok) {
        /* A JSON Schema pattern searches: an unanchored side may be anything. */
        cg_buf_puts(out, "(");
        if (json_string && !t.anchored_start)
            cg_buf_puts(out, CG_RX_ANY_JSON_CHARS " ");
        emit_node(t.root, json_string, out);
        if (json_string && !t.anchored_end)
            cg_buf_puts(out, " " CG_RX_ANY_JSON_CHARS);
        cg_buf_puts(out, ")");
        if (out->oom) {
            err->offset = (long)len;
            snprintf(err->message, sizeof err->message, "out of memory");
            ok = false;
        }
    }
    cg_rx_free(&t);
    return ok;
}
