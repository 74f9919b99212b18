/*
 * plugins/sampler/constraint/cg_gbnf.c - llama.cpp's GBNF grammar format
 * (grammars/README.md there) read into the byte grammar:
 *
 *   name ::= alt | alt        a rule; it ends at a newline outside ( )
 *   "lit" [a-z] [^"\\] .      literals, classes, any character
 *   ( ... )  x* x+ x? x{m} x{m,} x{m,n}   groups and repetition
 *   # comment
 *
 * Literals and classes are code points (\xHH, \uHHHH, \UHHHHHHHH escapes),
 * matched as their UTF-8 bytes. The start rule is `root`.
 */
#include "cg_grammar.h"
#include "cg_text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Repetitions are expanded into copies; past this the grammar is refused
 * rather than grown without bound. */
#define CG_REPEAT_MAX 10000

typedef struct gbnf {
    cg_grammar *g;
    const char *src, *end, *p;
    cg_error *err;
    int depth;
} gbnf;

static bool fail_at(gbnf *s, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool fail_at(gbnf *s, const char *at, const char *fmt, ...)
{
    s->err->offset = (long)(at - s->src);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err->message, sizeof s->err->message, fmt, ap);
    va_end(ap);
    return false;
}

static bool oom(gbnf *s) { return fail_at(s, s->p, "out of memory"); }

static bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static void skip_space(gbnf *s, bool newlines)
{
    while (s->p < s->end) {
        char c = *s->p;
        if (c == ' ' || c == '\t' || (newlines && (c == '\n' || c == '\r'))) {
            s->p++;
        } else if (c == '#') {
            while (s->p < s->end && *s->p != '\n')
                s->p++;
        } else {
            break;
        }
    }
}

/* One UTF-8 code point from the source; -1 when malformed. */
static long decode_utf8(gbnf *s)
{
    uint32_t cp;
    int n = cg_utf8_decode(s->p, (size_t)(s->end - s->p), &cp);
    if (!n)
        return -1;
    s->p += n;
    return cp;
}

static long hex_escape(gbnf *s, int digits)
{
    long v = 0;
    for (int i = 0; i < digits; i++, s->p++) {
        if (s->p >= s->end)
            return -1;
        char c = *s->p;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A character of a literal or class, escapes decoded; -1 after an error. */
static long parse_char(gbnf *s)
{
    const char *at = s->p;
    if (s->p >= s->end)
        return fail_at(s, at, "unexpected end of grammar inside a literal or class"), -1;
    if (*s->p != '\\') {
        long cp = decode_utf8(s);
        if (cp < 0)
            fail_at(s, at, "malformed UTF-8 in the grammar");
        return cp;
    }
    s->p++;
    if (s->p >= s->end)
        return fail_at(s, at, "'\\' at the end of the grammar"), -1;
    char c = *s->p++;
    long v;
    switch (c) {
    case 'x': v = hex_escape(s, 2); break;
    case 'u': v = hex_escape(s, 4); break;
    case 'U': v = hex_escape(s, 8); break;
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case '\\': case '"': case '[': case ']': case '-': case '^': return c;
    default:
        return fail_at(s, at, "unknown escape '\\%c' (expected one of \\x \\u \\U \\n \\r "
                              "\\t \\\\ \\\" \\[ \\])", c), -1;
    }
    if (v < 0 || v > 0x10FFFF)
        return fail_at(s, at, "bad hex escape: expected hex digits of a code point up to "
                              "U+10FFFF"), -1;
    return v;
}

static bool push_cp(gbnf *s, cg_seq *seq, uint32_t cp)
{
    uint32_t r[2] = {cp, cp};
    return cg_push_codepoint_ranges(s->g, seq, r, 1) || oom(s);
}

static int cmp_u32pair(const void *a, const void *b)
{
    const uint32_t *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]);
}

/* Sort and merge inclusive ranges; negate over all code points when asked. */
static size_t normalise_ranges(uint32_t *r, size_t n, bool negate)
{
    qsort(r, n, 2 * sizeof *r, cmp_u32pair);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && r[2 * i] <= r[2 * (m - 1) + 1] + 1) {
            if (r[2 * i + 1] > r[2 * (m - 1) + 1])
                r[2 * (m - 1) + 1] = r[2 * i + 1];
        } else {
            r[2 * m] = r[2 * i];
            r[2 * m + 1] = r[2 * i + 1];
            m++;
        }
    }
    if (!negate)
        return m;
    /* The complement has at most m + 1 ranges; the caller gave room. */
    uint32_t out[2 * 258];
    size_t k = 0;
    uint32_t next = 0;
    for (size_t i = 0; i < m; i++) {
        if (r[2 * i] > next) {
            out[2 * k] = next;
            out[2 * k + 1] = r[2 * i] - 1;
            k++;
        }
        next = r[2 * i + 1] + 1;
    }
    if (next <= 0x10FFFF) {
        out[2 * k] = next;
        out[2 * k + 1] = 0x10FFFF;
        k++;
    }
    memcpy(r, out, k * 2 * sizeof *r);
    return k;
}

static bool parse_class(gbnf *s, cg_seq *seq)
{
    const char *open = s->p++;
    bool negate = s->p < s->end && *s->p == '^';
    if (negate)
        s->p++;
    uint32_t r[2 * 258];
    size_t n = 0;
    while (s->p < s->end && *s->p != ']') {
        if (n == 256)
            return fail_at(s, open, "character class with more than 256 items");
        long lo = parse_char(s);
        if (lo < 0)
            return false;
        long hi = lo;
        if (s->p + 1 < s->end && *s->p == '-' && s->p[1] != ']') {
            s->p++;
            const char *at = s->p;
            if ((hi = parse_char(s)) < 0)
                return false;
            if (hi < lo)
                return fail_at(s, at, "range end U+%04lX is below its start U+%04lX", hi, lo);
        }
        r[2 * n] = (uint32_t)lo;
        r[2 * n + 1] = (uint32_t)hi;
        n++;
    }
    if (s->p >= s->end)
        return fail_at(s, open, "character class is not closed: expected ']'");
    s->p++;
    n = normalise_ranges(r, n, negate);
    if (n == 0)
        return fail_at(s, open, "character class matches no character");
    return cg_push_codepoint_ranges(s->g, seq, r, n) || oom(s);
}

static bool parse_alternates(gbnf *s, int32_t rule, bool nested);

/* Replace seq[start..] (one symbol) by its repetition min..max (max < 0:
 * unbounded). */
static bool repeat(gbnf *s, cg_seq *seq, size_t start, long min, long max, const char *at)
{
    cg_seq sym = {0};
    bool ok = true;
    for (size_t i = start; ok && i < seq->n; i++)
        ok = cg_seq_push(&sym, seq->e[i].kind, seq->e[i].arg);
    seq->n = start;
    long copies = min + (max < 0 ? 1 : max - min);
    if (ok && (copies > CG_REPEAT_MAX || (long)sym.n * copies > 10 * CG_REPEAT_MAX)) {
        cg_seq_free(&sym);
        return fail_at(s, at, "repetition too large (%ld copies; at most %d)", copies,
                       CG_REPEAT_MAX);
    }
    for (long i = 0; ok && i < min; i++)
        for (size_t j = 0; ok && j < sym.n; j++)
            ok = cg_seq_push(seq, sym.e[j].kind, sym.e[j].arg);
    int32_t tail = -1;
    cg_seq alt = {0}, empty = {0};
    if (ok && max < 0) {
        /* star ::= sym star | (empty): right recursion, which the parser
         * runs in constant stack depth. */
        tail = cg_rule_fresh(s->g, "star");
        ok = tail >= 0;
        for (size_t j = 0; ok && j < sym.n; j++)
            ok = cg_seq_push(&alt, sym.e[j].kind, sym.e[j].arg);
        ok = ok && cg_seq_push(&alt, CG_REF, tail) && cg_rule_add_alt(s->g, tail, &alt) &&
             cg_rule_add_alt(s->g, tail, &empty);
    } else {
        /* The chain's unbounded twin (see cg_rule.count_star), when the
         * count is more than a couple. */
        int32_t star = -1;
        if (ok && max - min > 2) {
            star = cg_rule_fresh(s->g, "twin");
            ok = star >= 0;
            for (size_t j = 0; ok && j < sym.n; j++)
                ok = cg_seq_push(&alt, sym.e[j].kind, sym.e[j].arg);
            ok = ok && cg_seq_push(&alt, CG_REF, star) && cg_rule_add_alt(s->g, star, &alt) &&
                 cg_rule_add_alt(s->g, star, &empty);
        }
        /* opt_k ::= sym opt_{k-1} | (empty); opt_1 ::= sym | (empty). */
        for (long k = 0; ok && k < max - min; k++) {
            int32_t r = cg_rule_fresh(s->g, "opt");
            alt.n = 0;
            ok = r >= 0;
            if (ok && star >= 0) {
                s->g->rules[r].count_left = (int32_t)(k + 1);
                s->g->rules[r].count_star = star;
            }
            for (size_t j = 0; ok && j < sym.n; j++)
                ok = cg_seq_push(&alt, sym.e[j].kind, sym.e[j].arg);
            if (ok && tail >= 0)
                ok = cg_seq_push(&alt, CG_REF, tail);
            ok = ok && cg_rule_add_alt(s->g, r, &alt) && cg_rule_add_alt(s->g, r, &empty);
            tail = r;
        }
    }
    if (ok && tail >= 0)
        ok = cg_seq_push(seq, CG_REF, tail);
    cg_seq_free(&alt);
    cg_seq_free(&sym);
    return ok || oom(s);
}

static bool parse_count(gbnf *s, long *v)
{
    const char *at = s->p;
    long x = 0;
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
        return fail_at(s, at, "expected a number in { }");
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        x = x * 10 + (*s->p++ - '0');
        if (x > CG_REPEAT_MAX)
            return fail_at(s, at, "repetition count above %d", CG_REPEAT_MAX);
    }
    *v = x;
    return true;
}

static bool parse_sequence(gbnf *s, cg_seq *seq, bool nested)
{
    size_t last = (size_t)-1;
    while (s->p < s->end) {
        char c = *s->p;
        const char *at = s->p;
        if (c == '"') {
            s->p++;
            last = seq->n;
            while (s->p < s->end && *s->p != '"') {
                long cp = parse_char(s);
                if (cp < 0 || !push_cp(s, seq, (uint32_t)cp))
                    return false;
            }
            if (s->p >= s->end)
                return fail_at(s, at, "literal is not closed: expected '\"'");
            s->p++;
        } else if (c == '[') {
            last = seq->n;
            if (!parse_class(s, seq))
                return false;
        } else if (c == '.') {
            s->p++;
            last = seq->n;
            uint32_t r[2] = {0, 0x10FFFF};
            if (!cg_push_codepoint_ranges(s->g, seq, r, 1))
                return oom(s);
        } else if (is_word(c)) {
            const char *name = s->p;
            while (s->p < s->end && is_word(*s->p))
                s->p++;
            int32_t r = cg_rule_get(s->g, name, (size_t)(s->p - name));
            if (r < 0)
                return oom(s);
            if (s->g->rules[r].first_use < 0)
                s->g->rules[r].first_use = (int32_t)(name - s->src);
            last = seq->n;
            if (!cg_seq_push(seq, CG_REF, r))
                return oom(s);
        } else if (c == '(') {
            s->p++;
            if (++s->depth > 200)
                return fail_at(s, at, "groups nested more than 200 deep");
            int32_t r = cg_rule_fresh(s->g, "group");
            if (r < 0)
                return oom(s);
            skip_space(s, true);
            if (!parse_alternates(s, r, true))
                return false;
            if (s->p >= s->end || *s->p != ')')
                return fail_at(s, at, "group is not closed: expected ')'");
            s->p++;
            s->depth--;
            last = seq->n;
            if (!cg_seq_push(seq, CG_REF, r))
                return oom(s);
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (last == (size_t)-1)
                return fail_at(s, at, "'%c' follows nothing it could repeat", c);
            s->p++;
            long min = c == '+' ? 1 : 0, max = c == '?' ? 1 : -1;
            if (c == '{') {
                skip_space(s, false);
                if (!parse_count(s, &min))
                    return false;
                skip_space(s, false);
                max = min;
                if (s->p < s->end && *s->p == ',') {
                    s->p++;
                    skip_space(s, false);
                    max = -1;
                    if (s->p < s->end && *s->p != '}' && !parse_count(s, &max))
                        return false;
                    if (max >= 0 && max < min)
                        return fail_at(s, at, "repetition {%ld,%ld}: the maximum is below "
                                              "the minimum", min, max);
                }
                skip_space(s, false);
                if (s->p >= s->end || *s->p != '}')
                    return fail_at(s, at, "repetition is not closed: expected '}'");
                s->p++;
            }
            if (!repeat(s, seq, last, min, max, at))
                return false;
            last = (size_t)-1;
        } else if (c == '<') {
            return fail_at(s, at, "token references (<...>) are not supported: write the "
                                  "token's text as a literal");
        } else {
            break;
        }
        skip_space(s, nested);
    }
    return true;
}

static bool parse_alternates(gbnf *s, int32_t rule, bool nested)
{
    cg_seq seq = {0};
    for (;;) {
        seq.n = 0;
        if (!parse_sequence(s, &seq, nested)) {
            cg_seq_free(&seq);
            return false;
        }
        if (!cg_rule_add_alt(s->g, rule, &seq)) {
            cg_seq_free(&seq);
            return oom(s);
        }
        if (s->p < s->end && *s->p == '|') {
            s->p++;
            skip_space(s, true);
            continue;
        }
        break;
    }
    cg_seq_free(&seq);
    return true;
}

bool cg_gbnf_parse(cg_grammar *g, const char *text, size_t len, cg_error *err)
{
    gbnf s = {g, text, text + len, text, err, 0};
    err->offset = -1;
    err->message[0] = '\0';
    skip_space(&s, true);
    while (s.p < s.end) {
        const char *name = s.p;
        while (s.p < s.end && is_word(*s.p))
            s.p++;
        if (s.p == name)
            return fail_at(&s, name, "expected a rule name ([a-zA-Z0-9_-]+), found '%c'", *name);
        int32_t r = cg_rule_get(g, name, (size_t)(s.p - name));
        if (r < 0)
            return oom(&s);
        if (g->rules[r].defined)
            return fail_at(&s, name, "rule '%s' is defined twice", g->rules[r].name);
        g->rules[r].defined = true;
        skip_space(&s, false);
        if (s.end - s.p < 3 || memcmp(s.p, "::=", 3) != 0)
            return fail_at(&s, s.p, "expected '::=' after the rule name '%s'", g->rules[r].name);
        s.p += 3;
        skip_space(&s, true);
        if (!parse_alternates(&s, r, false))
            return false;
        if (s.p < s.end && *s.p != '\n' && *s.p != '\r')
            return fail_at(&s, s.p, "unexpected '%c': expected a symbol, '|' or the end of "
                                    "the rule", *s.p);
        skip_space(&s, true);
    }
    return cg_grammar_finish(g, "root", err);
}
