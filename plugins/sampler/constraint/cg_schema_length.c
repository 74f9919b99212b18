/*
 * plugins/sampler/constraint/cg_schema_length.c - a string with a pattern
 * AND minLength/maxLength: the product of the pattern's automaton with a
 * character count.
 *
 * A grammar has no intersection, so the product is built here: the
 * pattern is compiled (as the body of a JSON string) and run by the
 * engine's own parser, whose states are the pattern's automaton; each
 * (state, characters so far) reachable within the length limits becomes
 * one GBNF rule. The product runs over printable ASCII characters other
 * than the quote and the backslash, each one byte and one character, so
 * counting is exact; a string with escapes or other characters is not
 * generated (every string generated is valid, not every valid string can
 * be generated). Product states that cannot reach an accepting one are
 * dropped, so every rule can finish.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_parser.h"
#include "cg_schema_int.h"

#define SC_PRODUCT_STATES_MAX 20000

typedef struct pstate {
    uint32_t st;
    long count;
} pstate;

typedef struct product {
    pstate *ps;
    size_t n, cap;
    uint32_t *hash;       /* index + 1, 0 empty */
    size_t hash_cap;
    int32_t *edge;        /* [n][95]: target index, -1 none (printable byte b at b - 32) */
} product;

static size_t key_of(pstate x, size_t cap)
{
    uint64_t k = ((uint64_t)x.st << 20) ^ (uint64_t)x.count;
    k *= 0x9e3779b97f4a7c15ULL;
    return (size_t)(k >> 17) & (cap - 1);
}

/* The index of x, added when new; -1 on OOM or past the limit. */
static long intern(product *p, pstate x)
{
    size_t j = key_of(x, p->hash_cap);
    for (uint32_t i; (i = p->hash[j]); j = (j + 1) & (p->hash_cap - 1))
        if (p->ps[i - 1].st == x.st && p->ps[i - 1].count == x.count)
            return (long)i - 1;
    if (p->n >= SC_PRODUCT_STATES_MAX)
        return -1;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        pstate *ps = realloc(p->ps, cap * sizeof *ps);
        int32_t *edge = ps ? realloc(p->edge, cap * 95 * sizeof *edge) : NULL;
        if (ps)
            p->ps = ps;
        if (!edge)
            return -1;
        p->edge = edge;
        p->cap = cap;
    }
    p->ps[p->n] = x;
    for (int b = 0; b < 95; b++)
        p->edge[p->n * 95 + (size_t)b] = -1;
    p->hash[j] = (uint32_t)++p->n;
    return (long)p->n - 1;
}

static bool printable(int b)
{
    return b >= 0x20 && b < 0x7f && b != '"' && b != '\\';
}

bool sc_pattern_with_length(sc *s, const cj_value *at, const char *path, const char *pattern,
                            size_t len, long min, long max, cg_buf *e)
{
    cg_buf gbnf = {0};
    cg_error rerr;
    cg_grammar g;
    cg_grammar_init(&g);
    cg_buf_puts(&gbnf, "root ::= ");
    if (!cg_regex_to_gbnf(pattern, len, true, &gbnf, &rerr) || gbnf.oom ||
        !cg_gbnf_parse(&g, gbnf.s, gbnf.n, &rerr)) {
        cg_buf_free(&gbnf);
        cg_grammar_free(&g);
        return sc_unsupported(s, at, path, "pattern", rerr.message);
    }
    cg_buf_free(&gbnf);
    cg_parser *parser = cg_parser_new(&g);
    product p = {.hash_cap = 1u << 16};
    p.hash = calloc(p.hash_cap, sizeof *p.hash);
    bool ok = parser && p.hash;
    const char *why = "out of memory";
    /* Breadth first over (state, count); a count past maxLength is dead,
     * one past minLength (without a maxLength) is the same as minLength. */
    if (ok && intern(&p, (pstate){cg_parser_start(parser), 0}) < 0)
        ok = false;
    for (size_t i = 0; ok && i < p.n; i++) {
        for (int b = 0x20; ok && b < 0x7f; b++) {
            if (!printable(b))
                continue;
            uint32_t next = cg_parser_step(parser, p.ps[i].st, (uint8_t)b);
            if (next == UINT32_MAX) {
                ok = false;
                why = "the pattern's automaton is too large";
                break;
            }
            long c = p.ps[i].count + 1;
            if (next == 0 || (max >= 0 && c > max))
                continue;
            if (max < 0 && c > min)
                c = min;
            long t = intern(&p, (pstate){next, c});
            if (t < 0) {
                ok = false;
                why = "more than 20000 states of the pattern times the length";
                break;
            }
            p.edge[i * 95 + (size_t)(b - 32)] = (int32_t)t;
        }
    }
    /* Which states can still end: accepting ones, then backwards to a
     * fixed point (the product is small; its longest path is the length). */
    bool *alive = ok ? calloc(p.n ? p.n : 1, 1) : NULL;
    ok = ok && alive;
    for (size_t i = 0; ok && i < p.n; i++)
        alive[i] = cg_parser_accepting(parser, p.ps[i].st) && p.ps[i].count >= min;
    for (bool changed = ok; changed;) {
        changed = false;
        for (size_t i = p.n; i-- > 0;) {
            if (alive[i])
                continue;
            for (int b = 0; b < 95 && !alive[i]; b++) {
                int32_t t = p.edge[i * 95 + (size_t)b];
                if (t >= 0 && alive[t])
                    alive[i] = changed = true;
            }
        }
    }
    if (ok && !alive[0]) {
        /* Not "matches nothing": other characters might match. */
        ok = false;
        why = "no string of printable ASCII characters (the product's alphabet) matches the "
              "pattern within the length limits";
    }
    if (ok) {
        char base[24];
        snprintf(base, sizeof base, "s%d", s->next_id++);
        for (size_t i = 0; i < p.n; i++) {
            if (!alive[i])
                continue;
            cg_buf_printf(s->out, "%s-q%zu ::= ", base, i);
            size_t alts = 0;
            bool done[95] = {0};
            for (int b = 0; b < 95; b++) {
                int32_t t = p.edge[i * 95 + (size_t)b];
                if (t < 0 || !alive[t] || done[b])
                    continue;
                /* Every byte that leads to t, as one class. */
                cg_buf_printf(s->out, "%s[", alts++ ? " | " : "");
                for (int c = b; c < 95; c++)
                    if (p.edge[i * 95 + (size_t)c] == t) {
                        done[c] = true;
                        cg_buf_gbnf_char(s->out, (uint32_t)(c + 32), true);
                    }
                cg_buf_printf(s->out, "] %s-q%d", base, t);
            }
            if (cg_parser_accepting(parser, p.ps[i].st) && p.ps[i].count >= min)
                cg_buf_printf(s->out, "%s\"\"", alts++ ? " | " : "");
            cg_buf_puts(s->out, "\n");
        }
        cg_buf_printf(e, "\"\\\"\" %s-q0 \"\\\"\"", base);
    } else if (why) {
        ok = sc_unsupported(s, at, path, max >= 0 ? "maxLength" : "minLength", why);
        if (ok) {
            /* Not strict: the pattern alone, the length not enforced. */
            cg_buf_puts(e, "\"\\\"\" ");
            cg_error err2;
            ok = cg_regex_to_gbnf(pattern, len, true, e, &err2);
            cg_buf_puts(e, " \"\\\"\"");
        }
    }
    free(alive);
    free(p.ps);
    free(p.edge);
    free(p.hash);
    cg_parser_free(parser);
    cg_grammar_free(&g);
    return ok;
}
