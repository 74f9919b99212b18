/*
 * The automata of cg_regex_dfa.c against direct checks: a pattern's
 * automaton against the grammar cg_regex_to_gbnf writes for it (the same
 * parse, a different back end), products against the boolean combination
 * of their operands, and the GBNF an automaton is written as against the
 * automaton itself, all on random strings over characters that JSON
 * escapes and characters it does not.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_json.h"
#include "cg_mask.h"
#include "cg_regex.h"
#include "cg_regex_dfa.h"

static const char *const patterns[] = {
    "a", "^a", "b$", "^ab*c$", "a|bc", "[a-c]{2,3}", "^[^a]*$", "\\d+", ".", "^.$", "\"",
    "\\\\", "^(a|b)*c", "\u00e9", "^\\n?$", "x?y?", "^$", "", "a{0,2}b", "(?:ab)+", "[\\s]",
    "^[a-c\"]{1,3}$", "1\\\\?2", "^\\x01", "[^\\d\\s]$", "^\\w+$", "^\U0001F600|c$",
    /* Quantifiers on a quantifier (fuzz_regex found the translation of
     * these, and of the next three, refused by the GBNF reader). */
    "^ab\\w+*c", "^(?:ab){1}{2}$", "a?{2}b$",
    /* A bounded count of something that can match nothing (refused as
     * left-recursive). */
    "^(?:a*){0,3}b$", "(?:b?){2,5}c", "^/*{0,3}x",
};
#define N_PATTERNS (sizeof patterns / sizeof *patterns)

static const uint32_t alphabet[] = {'a', 'b', 'c', '1', '2', ' ', '"', '\\', '\n', 0x01, 0xE9,
                                    0x1F600, 'x', 'y'};

static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static size_t random_cps(uint32_t *cps)
{
    size_t n = next_rand() % 7;
    for (size_t i = 0; i < n; i++)
        cps[i] = alphabet[next_rand() % (sizeof alphabet / sizeof *alphabet)];
    return n;
}

/* The characters as UTF-8 text. */
static void raw_text(const uint32_t *cps, size_t n, cg_buf *b)
{
    for (size_t i = 0; i < n; i++)
        cg_buf_put_utf8(b, cps[i]);
    cg_buf_puts(b, "");
}

/* The characters as a JSON string body in json.dumps's spelling, what the
 * searching mode's grammars read: cj_write_string's, without its quotes. */
static void json_body(const uint32_t *cps, size_t n, cg_buf *b)
{
    cg_buf raw = {0};
    raw_text(cps, n, &raw);
    cj_write_string(raw.s, raw.n, b);
    memmove(b->s, b->s + 1, b->n - 2);
    b->n -= 2;
    cg_buf_puts(b, "");
    cg_buf_free(&raw);
}

typedef struct checker {
    cg_grammar g;
    cg_parser *p;
} checker;

static void checker_open(checker *c, const char *gbnf)
{
    cg_error err;
    cg_grammar_init(&c->g);
    cr_assert(cg_gbnf_parse(&c->g, gbnf, strlen(gbnf), &err), "grammar refused: %s\n%s",
              err.message, gbnf);
    c->p = cg_parser_new(&c->g);
    cr_assert_not_null(c->p);
}

static void checker_close(checker *c)
{
    cg_parser_free(c->p);
    cg_grammar_free(&c->g);
}

static bool accepts(checker *c, const cg_buf *text)
{
    uint32_t st = cg_parser_start(c->p);
    for (size_t i = 0; i < text->n && st; i++)
        st = cg_parser_step(c->p, st, (uint8_t)text->s[i]);
    cr_assert_neq(st, UINT32_MAX);
    return st && cg_parser_accepting(c->p, st);
}

static void dfa_of(const char *re, bool search, cg_dfa *d)
{
    cg_error err;
    cg_dfa_budget b = {CG_DFA_WORK_MAX};
    cr_assert(cg_dfa_from_regex(re, strlen(re), search, d, &b, &err), "/%s/: %s", re,
              err.message);
}

/* A pattern's automaton decides what the grammar of the same pattern
 * matches: searching, on JSON string bodies; whole, on raw text. */
static void check_against_grammar(bool search)
{
    for (size_t i = 0; i < N_PATTERNS; i++) {
        cg_dfa d;
        dfa_of(patterns[i], search, &d);
        cg_buf gbnf = {0};
        cg_error err;
        cg_buf_puts(&gbnf, "root ::= ");
        cr_assert(cg_regex_to_gbnf(patterns[i], strlen(patterns[i]), search, &gbnf, &err));
        cg_buf_puts(&gbnf, "\n");
        checker c;
        checker_open(&c, gbnf.s);
        for (int t = 0; t < 400; t++) {
            uint32_t cps[8];
            size_t n = random_cps(cps);
            cg_buf text = {0};
            if (search)
                json_body(cps, n, &text);
            else
                raw_text(cps, n, &text);
            cr_assert_eq(cg_dfa_match(&d, cps, n), accepts(&c, &text),
                         "/%s/ (search %d) on \"%s\": automaton %d", patterns[i], search,
                         text.s, cg_dfa_match(&d, cps, n));
            cg_buf_free(&text);
        }
        checker_close(&c);
        cg_buf_free(&gbnf);
        cg_dfa_free(&d);
    }
}

Test(regex_dfa, search_matches_the_json_string_grammar) { check_against_grammar(true); }

Test(regex_dfa, whole_match_matches_the_plain_grammar) { check_against_grammar(false); }

static const char *const names[] = {"a", "ab", "\"", "\xc3\xa9x", "", "bc1"};
#define N_NAMES (sizeof names / sizeof *names)

static bool in_names(const uint32_t *cps, size_t n)
{
    cg_buf t = {0};
    raw_text(cps, n, &t);
    bool found = false;
    for (size_t i = 0; i < N_NAMES; i++)
        found = found || strcmp(t.s, names[i]) == 0;
    cg_buf_free(&t);
    return found;
}

/* Products, complement and minus names against the boolean combination
 * of their operands; the GBNF of each against the automaton. */
Test(regex_dfa, products_and_their_gbnf)
{
    cg_dfa nm;
    cg_error err;
    cr_assert(cg_dfa_names(names, N_NAMES, &nm, &err));
    for (size_t i = 0; i < N_PATTERNS; i++) {
        size_t j = (i * 7 + 3) % N_PATTERNS;
        cg_dfa a, b, d[5];
        dfa_of(patterns[i], true, &a);
        dfa_of(patterns[j], true, &b);
        cg_dfa_budget bud = {CG_DFA_WORK_MAX};
        cr_assert(cg_dfa_product(&a, &b, CG_DFA_OR, &d[0], &bud, &err));
        cr_assert(cg_dfa_product(&a, &b, CG_DFA_AND, &d[1], &bud, &err));
        cr_assert(cg_dfa_product(&a, &b, CG_DFA_MINUS, &d[2], &bud, &err));
        cr_assert(cg_dfa_complement(&d[0], &d[3], &bud, &err));
        cr_assert(cg_dfa_product(&d[3], &nm, CG_DFA_MINUS, &d[4], &bud, &err));
        checker c[5];
        cg_buf gbnf[5] = {{0}};
        for (int k = 0; k < 5; k++) {
            cg_buf_puts(&gbnf[k], "root ::= ");
            cg_buf rules = {0};
            if (cg_dfa_is_empty(&d[k]))
                cg_buf_puts(&gbnf[k], "\"\\\"\"");   /* a bare quote: no body is one */
            cg_dfa_emit_gbnf(&d[k], "x", &rules, &gbnf[k]);
            cg_buf_puts(&gbnf[k], "\n");
            if (rules.s)
                cg_buf_puts(&gbnf[k], rules.s);
            cg_buf_free(&rules);
            checker_open(&c[k], gbnf[k].s);
        }
        for (int t = 0; t < 300 + (int)N_NAMES; t++) {
            uint32_t cps[8];
            size_t n;
            if (t < (int)N_NAMES) {   /* the names themselves, then random strings */
                n = 0;
                for (size_t at = 0; names[t][at]; n++)
                    at += (size_t)cg_utf8_decode(names[t] + at, strlen(names[t] + at), &cps[n]);
            } else {
                n = random_cps(cps);
            }
            bool x = cg_dfa_match(&a, cps, n), y = cg_dfa_match(&b, cps, n);
            bool want[5] = {x || y, x && y, x && !y, !(x || y), !(x || y) && !in_names(cps, n)};
            cg_buf body = {0};
            json_body(cps, n, &body);
            for (int k = 0; k < 5; k++) {
                cr_assert_eq(cg_dfa_match(&d[k], cps, n), want[k], "/%s/ op %d /%s/ on \"%s\"",
                             patterns[i], k, patterns[j], body.s);
                cr_assert_eq(accepts(&c[k], &body), want[k], "GBNF of /%s/ op %d /%s/ on \"%s\"",
                             patterns[i], k, patterns[j], body.s);
            }
            cg_buf_free(&body);
        }
        for (int k = 0; k < 5; k++) {
            checker_close(&c[k]);
            cg_buf_free(&gbnf[k]);
            cg_dfa_free(&d[k]);
        }
        cg_dfa_free(&a);
        cg_dfa_free(&b);
    }
    cg_dfa_free(&nm);
}

/* Every bound is an error that says which one, never a smaller language. */
Test(regex_dfa, bounds_are_refused_by_name)
{
    cg_dfa d;
    cg_error err;
    cg_dfa_budget b = {CG_DFA_WORK_MAX};
    /* The n-th last character is an 'a': 2^13 states. */
    cr_assert_not(cg_dfa_from_regex("a[ab]{12}$", 10, true, &d, &b, &err));
    cr_expect(strstr(err.message, "more than 4096 states"), "%s", err.message);
    b.work = CG_DFA_WORK_MAX;
    cr_assert_not(cg_dfa_from_regex("(ab{1000}){1000}", 16, true, &d, &b, &err));
    cr_expect(strstr(err.message, "20000"), "%s", err.message);
    b.work = 1000;
    cr_assert_not(cg_dfa_from_regex("^[a-z]{200}$", 12, true, &d, &b, &err));
    cr_expect(strstr(err.message, "too long"), "%s", err.message);
    b.work = CG_DFA_WORK_MAX;
    cr_assert_not(cg_dfa_from_regex("(?=a)", 5, true, &d, &b, &err));
    cr_expect(strstr(err.message, "lookaround"), "%s", err.message);
    /* Just under the bound is built: the 11th last character, 2^12 states. */
    cr_assert(cg_dfa_from_regex("a[ab]{10}$", 10, true, &d, &b, &err), "%s", err.message);
    cr_expect_leq(d.n_states, CG_DFA_STATES_MAX);
    cg_dfa_free(&d);
}

/* Bad patterns, each in a buffer of exactly its length (no terminating
 * NUL to stop a read past the end, which ASan reports): refused by the
 * parser with a message and a column inside the pattern, and by both back
 * ends. fuzz_regex found `[^\<-\` read one byte past its end, and bytes
 * past U+10FFFF taken for a character GBNF cannot write. */
Test(regex_dfa, bad_patterns_are_refused_inside_their_bytes)
{
    static const char *const bad[] = {"[a-\\", "[^\\<-\\", "\\", "[\\", "a{2", "a{3,2}",
                                      "(?=a)", "\\x4", "[z-a]", "(a", "a)", "\\1", "a**",
                                      "[", "\\u12",
                                      /* Not UTF-8: past U+10FFFF, overlong, a surrogate. */
                                      "a\xf6\xa6\x9e\x95", "\xc0\xaf", "[\xed\xa0\x80]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len = strlen(bad[i]);
        char *re = malloc(len);
        memcpy(re, bad[i], len);
        cg_rx t;
        cg_error err = {0};
        cr_expect_not(cg_rx_parse(re, len, &t, &err), "/%s/ parsed", bad[i]);
        cg_rx_free(&t);
        cr_expect(err.message[0], "/%s/: no message", bad[i]);
        cr_expect(err.offset >= 0 && err.offset <= (long)len, "/%s/: column %ld", bad[i],
                  err.offset);
        cg_buf gbnf = {0};
        cr_expect_not(cg_regex_to_gbnf(re, len, true, &gbnf, &err), "/%s/ translated", bad[i]);
        cg_buf_free(&gbnf);
        cg_dfa d;
        cg_dfa_budget b = {CG_DFA_WORK_MAX};
        cr_expect_not(cg_dfa_from_regex(re, len, true, &d, &b, &err), "/%s/ built", bad[i]);
        free(re);
    }
}
