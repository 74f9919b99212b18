/*
 * tests/fuzz/fuzz_regex.c - the constraint engine's regular expressions
 * (plugins/sampler/constraint): one parse, two back ends that must agree.
 * The input is a pattern A, then after ST_FUZZ_SEPARATOR a pattern B, then
 * text. For each of the two modes (whole match on raw text; JSON Schema's
 * searching `pattern` on a JSON string body):
 * - a refused pattern has a message and a column inside it, and both
 *   the GBNF translator and the automaton builder refuse it (the builder
 *   may also refuse a valid one at its size and work bounds, by message);
 * - the translator's GBNF is read by the GBNF reader, and its parser
 *   accepts the text exactly when A's automaton matches it;
 * - A OR B, A AND B, A AND NOT B and NOT (A OR B) match the text exactly
 *   when the boolean combination of A's and B's matches says, and the GBNF
 *   each product is written as accepts its JSON body just then.
 * The text is also tried cut after each of its first characters, so the
 * automata meet more than one string per input.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cg_json.h"
#include "cg_parser.h"
#include "cg_regex.h"
#include "cg_regex_dfa.h"
#include "fuzz_util.h"

/* Small enough that an input takes milliseconds under the sanitizers: a
 * long pattern's repetitions multiply into large grammars and automata,
 * which the bounds tests of tests/constraint cover. */
enum { MAX_PATTERN = 96, MAX_CPS = 24, MAX_GBNF = 1 << 13 };
#define WORK (CG_DFA_WORK_MAX / 20)

typedef struct checker {
    cg_grammar g;
    cg_parser *p;
} checker;

static bool checker_open(checker *c, const cg_buf *gbnf, const char *what)
{
    cg_error err;
    cg_grammar_init(&c->g);
    c->p = NULL;
    if (!cg_gbnf_parse(&c->g, gbnf->s, gbnf->n, &err))
        st_fuzz_fail("the GBNF reader refused the %s: %s\n%s", what, err.message, gbnf->s);
    c->p = cg_parser_new(&c->g);
    return c->p != NULL;
}

static void checker_close(checker *c)
{
    cg_parser_free(c->p);
    cg_grammar_free(&c->g);
}

/* 1 accepted, 0 not, -1 the parser ran out of its memory budget. */
static int accepts(checker *c, const cg_buf *text)
{
    uint32_t st = cg_parser_start(c->p);
    for (size_t i = 0; i < text->n && st && st != UINT32_MAX; i++)
        st = cg_parser_step(c->p, st, (uint8_t)text->s[i]);
    if (st == UINT32_MAX)
        return -1;
    return st && cg_parser_accepting(c->p, st);
}

/* The characters as raw text, or as a JSON string body in json.dumps's
 * spelling (what the searching mode's grammars read: cj_write_string's,
 * without its quotes). */
static void spell(const uint32_t *cps, size_t n, bool json, cg_buf *b)
{
    cg_buf raw = {0};
    for (size_t i = 0; i < n; i++)
        cg_buf_put_utf8(&raw, cps[i]);
    cg_buf_puts(&raw, "");
    b->n = 0;
    if (json) {
        cj_write_string(raw.s, raw.n, b);
        memmove(b->s, b->s + 1, b->n - 2);
        b->n -= 2;
        cg_buf_puts(b, "");
    } else {
        cg_buf_put(b, raw.s, raw.n);
    }
    cg_buf_free(&raw);
}

/* The automaton of a pattern the parser accepted, or false when the
 * builder's bounds refuse it (with a message). */
static bool dfa_of(const char *re, size_t len, bool search, cg_dfa *d)
{
    cg_error err = {0};
    cg_dfa_budget b = {WORK};
    memset(d, 0, sizeof *d);
    if (cg_dfa_from_regex(re, len, search, d, &b, &err))
        return true;
    if (!err.message[0])
        st_fuzz_fail("the automaton of /%.*s/ was refused without a message", (int)len, re);
    return false;
}

/* Whether the parser both back ends read accepts `re`; a refusal must
 * come with a message and a column inside the pattern. */
static bool parses(const char *re, size_t len)
{
    cg_rx t;
    cg_error err = {0};
    bool ok = cg_rx_parse(re, len, &t, &err);
    cg_rx_free(&t);
    if (!ok && (!err.message[0] || err.offset < 0 || err.offset > (long)len))
        st_fuzz_fail("/%.*s/ refused at column %ld without a message or outside it: %s",
                      (int)len, re, err.offset, err.message);
    return ok;
}

/* A's translation against A's automaton on each prefix of the text. */
static void check_translation(const char *re, size_t len, bool search, const cg_dfa *d,
                              const uint32_t *cps, size_t n)
{
    cg_buf gbnf = {0};
    cg_error err = {0};
    cg_buf_puts(&gbnf, "root ::= ");
    if (!cg_regex_to_gbnf(re, len, search, &gbnf, &err))
        st_fuzz_fail("/%.*s/: the automaton was built, the translation refused: %s", (int)len,
                     re, err.message);
    cg_buf_puts(&gbnf, "\n");
    checker c;
    if (gbnf.n <= MAX_GBNF && checker_open(&c, &gbnf, "translation")) {
        cg_buf text = {0};
        for (size_t k = 0; k <= n; k++) {
            spell(cps, k, search, &text);
            int got = accepts(&c, &text);
            bool want = cg_dfa_match(d, cps, k);
            if (got >= 0 && got != want)
                st_fuzz_fail("/%.*s/ (search %d) on \"%s\": automaton %d, grammar %d", (int)len,
                             re, search, text.s, want, got);
        }
        cg_buf_free(&text);
        checker_close(&c);
    }
    cg_buf_free(&gbnf);
}

/* The products of A and B against the combination of their matches, and
 * each product's GBNF against the product. */
static void check_products(const cg_dfa *a, const cg_dfa *b, const uint32_t *cps, size_t n)
{
    cg_dfa d[4];
    cg_dfa_budget bud = {WORK};
    cg_error err = {0};
    memset(d, 0, sizeof d);
    bool ok = cg_dfa_product(a, b, CG_DFA_OR, &d[0], &bud, &err) &&
              cg_dfa_product(a, b, CG_DFA_AND, &d[1], &bud, &err) &&
              cg_dfa_product(a, b, CG_DFA_MINUS, &d[2], &bud, &err) &&
              cg_dfa_complement(&d[0], &d[3], &bud, &err);
    if (!ok && !err.message[0])
        st_fuzz_fail("a product was refused without a message");
    for (int k = 0; ok && k < 4; k++) {
        cg_buf gbnf = {0}, rules = {0}, body = {0};
        cg_buf_puts(&gbnf, "root ::= ");
        if (cg_dfa_is_empty(&d[k]))
            cg_buf_puts(&gbnf, "\"\\\"\""); /* a bare quote: no body is one */
        cg_dfa_emit_gbnf(&d[k], "x", &rules, &gbnf);
        cg_buf_puts(&gbnf, "\n");
        if (rules.s)
            cg_buf_puts(&gbnf, rules.s);
        checker c;
        bool open = gbnf.n <= MAX_GBNF && checker_open(&c, &gbnf, "automaton's GBNF");
        for (size_t j = 0; j <= n; j++) {
            bool x = cg_dfa_match(a, cps, j), y = cg_dfa_match(b, cps, j);
            bool want[4] = {x || y, x && y, x && !y, !(x || y)};
            spell(cps, j, true, &body);
            if (cg_dfa_match(&d[k], cps, j) != want[k])
                st_fuzz_fail("product %d on \"%s\": %d, the operands say %d", k, body.s,
                             !want[k], want[k]);
            int got = open ? accepts(&c, &body) : -1;
            if (got >= 0 && got != want[k])
                st_fuzz_fail("the GBNF of product %d on \"%s\": %d, want %d\n%s", k, body.s,
                             got, want[k], gbnf.s);
        }
        if (open)
            checker_close(&c);
        cg_buf_free(&gbnf);
        cg_buf_free(&rules);
        cg_buf_free(&body);
    }
    for (int k = 0; k < 4; k++)
        cg_dfa_free(&d[k]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *part[3];
    size_t len[3] = {0, 0, 0};
    size_t parts = st_fuzz_split(data, size, part, len, 3);
    if (len[0] > MAX_PATTERN || (parts > 1 && len[1] > MAX_PATTERN))
        return 0;
    /* The text's code points, up to the first byte that is not UTF-8. */
    uint32_t cps[MAX_CPS];
    size_t n = 0;
    for (size_t at = 0; parts > 2 && at < len[2] && n < MAX_CPS;) {
        int k = cg_utf8_decode((const char *)part[2] + at, len[2] - at, &cps[n]);
        if (k <= 0)
            break;
        at += (size_t)k;
        n++;
    }
    const char *re = (const char *)part[0];
    if (!parses(re, len[0])) {
        /* Both back ends read the same parse, so both refuse. */
        cg_buf gbnf = {0};
        cg_error err = {0};
        cg_dfa d;
        cg_dfa_budget bud = {WORK};
        if (cg_regex_to_gbnf(re, len[0], false, &gbnf, &err))
            st_fuzz_fail("/%.*s/: the parser refused it, the translator did not", (int)len[0],
                         re);
        if (cg_dfa_from_regex(re, len[0], false, &d, &bud, &err))
            st_fuzz_fail("/%.*s/: the parser refused it, the automaton builder did not",
                         (int)len[0], re);
        cg_buf_free(&gbnf);
        return 0;
    }
    bool b_ok = parts > 1 && parses((const char *)part[1], len[1]);
    for (int search = 0; search < 2; search++) {
        cg_dfa a, b;
        if (!dfa_of(re, len[0], search, &a))
            continue;
        check_translation(re, len[0], search, &a, cps, n);
        if (search && b_ok && dfa_of((const char *)part[1], len[1], true, &b)) {
            check_products(&a, &b, cps, n);
            cg_dfa_free(&b);
        }
        cg_dfa_free(&a);
    }
    return 0;
}
