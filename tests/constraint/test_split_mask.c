/*
 * Masks of split states (cg_parser_split: a state inside a string, number
 * or any rule, cut at the context it continues into) against the masks
 * walked whole and against a brute-force check of every token, on many
 * states of random walks through JSON grammars in which the same string
 * and number rules are entered from many contexts. A wrong inner mask, a
 * missed exit (a token that runs past the closing quote) or an inner mask
 * reused for the wrong context makes a mask differ.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_mask.h"
#include "cg_schema.h"
#include "cg_text.h"

/* Single bytes, then pieces that run from inside a string or number past
 * its end into the context (the exits), then 2-letter words (a subtree
 * large enough for the walk's ready bitmaps). */
static const char *const pieces[] = {
    "\"", "\":", "\",", "\"}", "\"]", "\"},", "\"}]", "\", \"", "\":\"", "\":[", "\":{",
    "ab\"", "ab\",", "ab\":", "ab\"}", "x\"]", "é\",", "\\n\",", "\\\"", "\\u00e9",
    "12", "12,", "1]", "3}", "0.5", "-1", "-12,", "-123]", "123}", "1.25,", "e5,", "1e", "true", "true,", "false}", "null",
    "null]", "{\"", "[\"", "[{\"", ",\"", ", \"", "[1", "[]", "{}", "\xc3", "\xa9", "é",
    "  ", " \"", "abc", "abcdefghij", "na", "name", "name\":", "age\":", "a b", "é\"}", "qrs", "qrst"};
enum { N_PIECES = sizeof pieces / sizeof *pieces, N_WORDS = 26 * 26 };
enum { NV = 256 + N_PIECES + N_WORDS };

static bool vocab_bytes(void *ctx, int32_t id, const char **bytes, size_t *len, bool *special)
{
    static char one[256];
    static char words[N_WORDS][2];
    (void)ctx;
    if (id < 256) {
        one[id] = (char)id;
        *bytes = &one[id];
        *len = 1;
    } else if (id < 256 + N_PIECES) {
        *bytes = pieces[id - 256];
        *len = strlen(pieces[id - 256]);
    } else {
        int k = id - 256 - N_PIECES;
        words[k][0] = (char)('a' + k / 26);
        words[k][1] = (char)('a' + k % 26);
        *bytes = words[k];
        *len = 2;
    }
    *special = false;
    return true;
}

static uint64_t rng_next(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ULL;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static bool has(const uint8_t *mask, int32_t id) { return (mask[id >> 3] >> (id & 7)) & 1; }

typedef struct walk_counts {
    size_t states, split, inner_shared, moved;
} walk_counts;

/* `walks` random walks of at most `steps` tokens from the start: in each
 * state the split masker's mask equals the whole-walk masker's and the
 * brute-force check, then a random allowed token is taken. */
static walk_counts check_walks(const cg_grammar *g, const cg_vocab *v, int walks, int steps,
                               uint64_t seed)
{
    cg_parser *p = cg_parser_new(g);
    cr_assert_not_null(p);
    cg_masker *split = cg_masker_new(v, p), *whole = cg_masker_new(v, p);
    cr_assert(split && whole);
    cg_masker_set_shared(whole, false);
    walk_counts wc = {0};
    uint32_t last_inner = 0;
    int32_t allowed[NV];
    for (int w = 0; w < walks; w++) {
        uint32_t st = cg_parser_start(p);
        for (int k = 0; k < steps && st; k++) {
            const uint8_t *a = cg_masker_get(split, st);
            cr_assert_not_null(a);
            /* Copied: the other masker's walk may not move it, but the
             * check below steps the shared parser. */
            static uint8_t got[(NV + 63) / 64 * 8];
            memcpy(got, a, sizeof got);
            const uint8_t *b = cg_masker_get(whole, st);
            cr_assert_not_null(b);
            size_t n_allowed = 0;
            for (int32_t id = 0; id < NV; id++) {
                bool brute = cg_advance_token(p, v, st, id) != 0;
                cr_assert_eq(has(got, id), has(b, id), "walk %d step %d token %d: split %d, whole %d",
                             w, k, id, has(got, id), has(b, id));
                cr_assert_eq(has(got, id), brute, "walk %d step %d token %d: mask %d, brute %d", w,
                             k, id, has(got, id), brute);
                if (brute)
                    allowed[n_allowed++] = id;
            }
            wc.states++;
            uint32_t in, out;
            int r = cg_parser_split(p, st, &in, &out);
            cr_assert_geq(r, 0);
            if (r == 1) {
                wc.split++;
                wc.inner_shared += in == last_inner;
                last_inner = in;
            }
            /* The longest token of this vocabulary is 10 bytes. */
            uint32_t h = cg_parser_horizon(p, st, 10);
            cr_assert_neq(h, UINT32_MAX);
            wc.moved += h != st;
            if (n_allowed == 0)
                break;
            st = cg_advance_token(p, v, st, allowed[rng_next(&seed) % n_allowed]);
            cr_assert(st != 0 && st != UINT32_MAX);
        }
    }
    cg_masker_free(split);
    cg_masker_free(whole);
    cg_parser_free(p);
    return wc;
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[1 << 16];
    *len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

Test(split_mask, generic_json_masks_equal_the_whole_walk_and_brute_force)
{
    size_t len;
    const char *text = read_file(ST_TEST_GRAMMARS, "json.gbnf", &len);
    cg_grammar g;
    cg_grammar_init(&g);
    cg_error err;
    cr_assert(cg_gbnf_parse(&g, text, len, &err), "%s", err.message);
    cg_vocab *v = cg_vocab_new(NV, vocab_bytes, NULL);
    cr_assert_not_null(v);
    walk_counts wc = check_walks(&g, v, 60, 80, 1);
    /* The check must have exercised the split: most states inside nested
     * values are split, and the same inner state recurs. */
    cr_expect_gt(wc.split, wc.states / 2, "%zu of %zu states split", wc.split, wc.states);
    cr_expect_gt(wc.inner_shared, 100, "an inner state recurred only %zu times", wc.inner_shared);
    cg_vocab_free(v);
    cg_grammar_free(&g);
}

Test(split_mask, schema_grammar_masks_equal_the_whole_walk_and_brute_force)
{
    /* Strings free and counted, an integer range, enums, a recursive
     * member: contexts differ by position in the object and by depth. */
    size_t len;
    const char *schema = read_file(ST_TEST_SCHEMAS, "person.json", &len);
    const char *extra =
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
        "\"b\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
        "\"c\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"},"
        "\"n\":{\"type\":\"number\"}}},\"d\":{\"type\":\"integer\"}},"
        "\"required\":[\"a\",\"b\",\"c\",\"d\"]}";
    const char *schemas[] = {schema, extra};
    size_t lens[] = {len, strlen(extra)};
    cg_vocab *v = cg_vocab_new(NV, vocab_bytes, NULL);
    cr_assert_not_null(v);
    for (int i = 0; i < 2; i++) {
        cg_schema_options opt = {.strict = true, .compact = true, .open_objects = false};
        cg_buf gbnf = {0}, warn = {0};
        cg_error err;
        cr_assert(cg_schema_to_gbnf(schemas[i], lens[i], &opt, &gbnf, &warn, &err), "%s",
                  err.message);
        cg_grammar g;
        cg_grammar_init(&g);
        cr_assert(cg_gbnf_parse(&g, gbnf.s, gbnf.n, &err), "%s\n%s", err.message, gbnf.s);
        walk_counts wc = check_walks(&g, v, 40, 60, 7 + (uint64_t)i);
        cr_expect_gt(wc.split, wc.states / 4, "schema %d: %zu of %zu states split", i, wc.split,
                     wc.states);
        cg_grammar_free(&g);
        cg_buf_free(&gbnf);
        cg_buf_free(&warn);
    }
    cg_vocab_free(v);
}

Test(split_mask, a_string_in_two_contexts_shares_its_inner_state)
{
    /* The body of the same string rule after "a": and inside [ ... ]:
     * two states, one inner state, different outer ones. */
    const char *text = "root ::= \"{\\\"a\\\":\" s \",\\\"b\\\":[\" s \"]}\"\n"
                       "s ::= \"\\\"\" [a-z]* \"\\\"\"\n";
    cg_grammar g;
    cg_grammar_init(&g);
    cg_error err;
    cr_assert(cg_gbnf_parse(&g, text, strlen(text), &err), "%s", err.message);
    cg_parser *p = cg_parser_new(&g);
    cr_assert_not_null(p);
    const char *one = "{\"a\":\"x", *two = "{\"a\":\"x\",\"b\":[\"x";
    uint32_t s1 = cg_parser_start(p), s2 = s1;
    for (const char *c = one; *c; c++)
        s1 = cg_parser_step(p, s1, (uint8_t)*c);
    for (const char *c = two; *c; c++)
        s2 = cg_parser_step(p, s2, (uint8_t)*c);
    cr_assert(s1 && s2 && s1 != s2);
    uint32_t in1, out1, in2, out2;
    cr_assert_eq(cg_parser_split(p, s1, &in1, &out1), 1);
    cr_assert_eq(cg_parser_split(p, s2, &in2, &out2), 1);
    cr_expect_eq(in1, in2);
    cr_expect_neq(out1, out2);
    /* The inner state ends at the closing quote; the outer one starts
     * with what follows it in each context. */
    cr_expect(cg_parser_accepting(p, cg_parser_step(p, in1, '"')));
    cr_expect_neq(cg_parser_step(p, out1, ','), 0);
    cr_expect_eq(cg_parser_step(p, out1, ']'), 0);
    cr_expect_neq(cg_parser_step(p, out2, ']'), 0);
    /* The start state (nothing below its top) is not split. */
    uint32_t a, b;
    cr_expect_eq(cg_parser_split(p, cg_parser_start(p), &a, &b), 0);
    cg_parser_free(p);
    cg_grammar_free(&g);
}

Test(split_mask, exits_inside_a_counted_run_are_recorded)
{
    /* A run of one or two letters, then the context: one more letter and
     * '>', or a digit and ']'. From inside the run, "qrs" is allowed (q
     * and r in the run, s in the context) though the run alone dies at s:
     * the inner walk must record "qr" as an exit even where it would take
     * the letters below "q" whole. */
    const char *text = "root ::= \"<\" v [a-z] \">\" | \"[\" v [0-9] \"]\"\n"
                       "v ::= \"'\" [a-z]{1,2}\n";
    cg_grammar g;
    cg_grammar_init(&g);
    cg_error err;
    cr_assert(cg_gbnf_parse(&g, text, strlen(text), &err), "%s", err.message);
    cg_vocab *v = cg_vocab_new(NV, vocab_bytes, NULL);
    cr_assert_not_null(v);
    walk_counts wc = check_walks(&g, v, 40, 6, 3);
    cr_expect_gt(wc.split, 10, "%zu of %zu states split", wc.split, wc.states);
    cg_vocab_free(v);
    cg_grammar_free(&g);
}

Test(split_mask, long_counts_share_their_unbounded_twin)
{
    /* Counts far past the longest token (10 bytes here) mask like no
     * count at all; near their end they do not. Strings of up to 40
     * characters in two members, a run of 3 to 30 letters. */
    const char *text = "root ::= \"{\\\"a\\\":\" s \",\\\"b\\\":[\" s (\",\" s)* \"],\\\"c\\\":\" w \"}\"\n"
                       "s ::= \"\\\"\" ch{0,40} \"\\\"\"\n"
                       "ch ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" [\"\\\\/bfnrt]\n"
                       "w ::= [a-z]{3,30}\n";
    cg_grammar g;
    cg_grammar_init(&g);
    cg_error err;
    cr_assert(cg_gbnf_parse(&g, text, strlen(text), &err), "%s", err.message);
    cg_vocab *v = cg_vocab_new(NV, vocab_bytes, NULL);
    cr_assert_not_null(v);
    walk_counts wc = check_walks(&g, v, 60, 120, 11);
    cr_expect_gt(wc.moved, wc.states / 4, "%zu of %zu states moved", wc.moved, wc.states);
    cg_vocab_free(v);
    cg_grammar_free(&g);
}
