/*
 * The byte grammar, the GBNF reader and the parser, with no plugin around
 * them: sentences the grammars must accept and reject, refusals with their
 * positions, and the token masks checked token by token.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cg_mask.h"

static cg_grammar g;
static cg_parser *parser;

static bool compile(const char *text, cg_error *err)
{
    cg_grammar_free(&g);
    cg_parser_free(parser);
    parser = NULL;
    cg_grammar_init(&g);
    if (!cg_gbnf_parse(&g, text, strlen(text), err))
        return false;
    parser = cg_parser_new(&g);
    cr_assert_not_null(parser);
    return true;
}

static void compile_ok(const char *text)
{
    cg_error err;
    cr_assert(compile(text, &err), "grammar refused: %s (offset %ld)", err.message, err.offset);
}

static char *read_fixture(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", ST_TEST_GRAMMARS, name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* 1 = complete sentence, 0 = valid prefix only, -1 = rejected. */
static int run(const char *s)
{
    uint32_t st = cg_parser_start(parser);
    for (const char *p = s; *p && st; p++)
        st = cg_parser_step(parser, st, (uint8_t)*p);
    cr_assert_neq(st, UINT32_MAX);
    return st == 0 ? -1 : cg_parser_accepting(parser, st) ? 1 : 0;
}

static void cleanup(void)
{
    cg_parser_free(parser);
    parser = NULL;
    cg_grammar_free(&g);
}

TestSuite(grammar, .fini = cleanup);

Test(grammar, literals_classes_and_repetition)
{
    compile_ok("root ::= \"ab\" [0-9]+ (\"x\" | \"yz\")? [^a-c]{2,3}\n");
    cr_expect_eq(run("ab1x!!"), 1);
    cr_expect_eq(run("ab12yzdd!"), 1);
    cr_expect_eq(run("ab1"), 0);
    cr_expect_eq(run("ab1x!!!!"), -1);
    cr_expect_eq(run("abx"), -1);
    cr_expect_eq(run("ab1xa"), -1);
}

Test(grammar, utf8_classes_are_byte_exact)
{
    compile_ok("root ::= [à-ÿ€]+ \"!\"");
    cr_expect_eq(run("àé€!"), 1);
    cr_expect_eq(run("\xc3"), 0);        /* half of a character: still a prefix */
    cr_expect_eq(run("\xc3\x80!"), -1);  /* À (c3 80) lies below the range */
    cr_expect_eq(run("a!"), -1);
    compile_ok("root ::= [^\"]*");
    cr_expect_eq(run("日本"), 1);
    cr_expect_eq(run("\xed\xa0\x80"), -1); /* a surrogate is not a character */
}

Test(grammar, stock_grammars_accept_their_language)
{
    compile_ok(read_fixture("json.gbnf"));
    cr_expect_eq(run("{\"a\": [1, -2.5e3, \"x\\n\\u00e9\"], \"b\": {\"c\": null}}"), 1);
    cr_expect_eq(run("{\"a\": tru"), 0);
    cr_expect_eq(run("{\"a\": 01}"), -1);
    cr_expect_eq(run("[1]"), -1);
    compile_ok(read_fixture("arithmetic.gbnf"));
    cr_expect_eq(run("(x1 + 2) * y = 3\n"), 1);
    cr_expect_eq(run("x + = 3\n"), -1);
    compile_ok(read_fixture("chess.gbnf"));
    cr_expect_eq(run("1. e4 e5\n2. Nf3 Nc6\n3. O-O Qxd8#\n"), 1);
    cr_expect_eq(run("1. e9"), -1);
    compile_ok(read_fixture("list.gbnf"));
    cr_expect_eq(run("- milk\n- Brot und Käse\n"), 1);
    cr_expect_eq(run("- a\xe2\x80\xa8"), -1); /* U+2028 is excluded */
    compile_ok(read_fixture("c.gbnf"));
    cr_expect_eq(run("int main(){int x = 1;while(x<10){x = x+1;}return x;}"), 1);
    cr_expect_eq(run("int main(){/* note */return 0;}"), 1);
    cr_expect_eq(run("int main(){return;}"), -1);
}

static void expect_refused(const char *text, const char *fragment, int line, int col)
{
    cg_error err;
    cr_assert_not(compile(text, &err), "grammar accepted: %s", text);
    cr_expect(strstr(err.message, fragment), "message '%s' lacks '%s'", err.message, fragment);
    if (line > 0) {
        int l, c;
        cg_line_col(text, strlen(text), err.offset, &l, &c);
        cr_expect(l == line && c == col, "%s: at %d:%d, expected %d:%d", err.message, l, c,
                  line, col);
    }
}

Test(grammar, bad_grammars_are_refused_with_their_position)
{
    expect_refused("root ::= \"a\" b\n", "rule 'b' is used but never defined", 1, 14);
    expect_refused("root ::= \"a\"\nx ::= [ab\n", "not closed", 2, 7);
    expect_refused("root ::= \"a\" )\n", "unexpected ')'", 1, 14);
    expect_refused("root = \"a\"\n", "expected '::='", 1, 6);
    expect_refused("a ::= \"x\"\n", "no rule named 'root'", 0, 0);
    expect_refused("root ::= root \"a\" | \"b\"\n", "left-recursive", 0, 0);
    expect_refused("root ::= (\"a\"?)*\n", "left-recursive", 0, 0);
    expect_refused("root ::= \"a\" root\n", "can never finish", 0, 0);
    expect_refused("root ::= \"\\q\"\n", "unknown escape", 1, 11);
    expect_refused("root ::= [z-a]\n", "below its start", 1, 13);
    expect_refused("root ::= \"a\"{3,1}\n", "maximum is below", 1, 13);
    expect_refused("root ::= \"a\"{99999}\n", "repetition count above", 1, 14);
    expect_refused("root ::= * \"a\"\n", "follows nothing", 1, 10);
    expect_refused("root ::= \"a\"\nroot ::= \"b\"\n", "defined twice", 2, 1);
}

/* The masks over the test vocabulary equal a brute-force check of every
 * token, in each state along a sentence. */
static bool tv_bytes(void *ctx, int32_t id, const char **bytes, size_t *len, bool *special)
{
    static char one[256];
    static const char *const pieces[] = {"{\"", "\":", "\",", "true", "  ", "ab", "\xc3",
                                         "\xa9", "é", "12", "\"}", "", "null"};
    (void)ctx;
    if (id < 256) {
        one[id] = (char)id;
        *bytes = &one[id];
        *len = 1;
    } else {
        *bytes = pieces[id - 256];
        *len = strlen(pieces[id - 256]);
    }
    *special = false;
    return true;
}

Test(grammar, masks_equal_a_brute_force_check)
{
    compile_ok(read_fixture("json.gbnf"));
    enum { NV = 256 + 13 };
    cg_vocab *v = cg_vocab_new(NV, tv_bytes, NULL);
    cr_assert_not_null(v);
    cg_masker *m = cg_masker_new(v, parser);
    cr_assert_not_null(m);
    const char *sentence = "{\"ab\": [true, \"é\\n\", 12], \"c\": null}";
    uint32_t st = cg_parser_start(parser);
    for (const char *p = sentence; *p; p++) {
        const uint8_t *mask = cg_masker_get(m, st);
        cr_assert_not_null(mask);
        for (int32_t id = 0; id < NV; id++) {
            bool brute = cg_advance_token(parser, v, st, id) != 0;
            bool masked = (mask[id >> 3] >> (id & 7)) & 1;
            cr_assert_eq(brute, masked, "token %d at offset %td: brute %d, mask %d", id,
                         p - sentence, brute, masked);
        }
        st = cg_parser_step(parser, st, (uint8_t)*p);
        cr_assert_neq(st, 0, "the sentence was rejected at %td", p - sentence);
    }
    cr_expect(cg_parser_accepting(parser, st));
    cg_masker_free(m);
    cg_vocab_free(v);
}

/* The mask walk takes whole trie subtrees without walking them when their
 * bytes lead, depth after depth, from one state to the next: bounded
 * repetitions (a string's maxLength) count through such states, and near
 * the bound only the tokens short enough may stay. Every mask along the
 * sentences equals the brute-force check, on a vocabulary with long runs
 * of letters, UTF-8 pieces and letters followed by a quote. */
static const char *const counted_pieces[] = {
    "a", "ab", "abc", "abcd", "abcde", "abcdef", "abcdefg", "abcdefgh", "abcdefghi",
    "abcdefghijk", "bcd", "bb", "bbbbbbbbbbbbbbbb", "é", "éa", "aé", "a\"", "ab\"}",
    "\"", "xyz\"", "\xc3", "zz", "z\"}", "\"}", "12", "1a", " a", "a b", "aaaa\\n"};
enum { N_COUNTED = sizeof counted_pieces / sizeof *counted_pieces };

/* Then "q" + two letters (676 tokens): a subtree large enough for the
 * walk's ready bitmaps. */
enum { N_AXY = 26 * 26 };

static bool counted_bytes(void *ctx, int32_t id, const char **bytes, size_t *len, bool *special)
{
    static char one[256];
    static char axy[N_AXY][3];
    (void)ctx;
    if (id < 256) {
        one[id] = (char)id;
        *bytes = &one[id];
        *len = 1;
    } else if (id < 256 + N_COUNTED) {
        *bytes = counted_pieces[id - 256];
        *len = strlen(counted_pieces[id - 256]);
    } else {
        int k = id - 256 - N_COUNTED;
        axy[k][0] = 'q';
        axy[k][1] = (char)('a' + k / 26);
        axy[k][2] = (char)('a' + k % 26);
        *bytes = axy[k];
        *len = 3;
    }
    *special = false;
    return true;
}

static void masks_along(cg_masker *m, cg_vocab *v, int32_t nv, const char *sentence)
{
    uint32_t st = cg_parser_start(parser);
    for (const char *p = sentence;; p++) {
        const uint8_t *mask = cg_masker_get(m, st);
        cr_assert_not_null(mask);
        for (int32_t id = 0; id < nv; id++) {
            bool brute = cg_advance_token(parser, v, st, id) != 0;
            bool masked = (mask[id >> 3] >> (id & 7)) & 1;
            cr_assert_eq(brute, masked, "'%s': token %d at offset %td: brute %d, mask %d",
                         sentence, id, p - sentence, brute, masked);
        }
        if (!*p)
            break;
        st = cg_parser_step(parser, st, (uint8_t)*p);
        cr_assert_neq(st, 0, "'%s' was rejected at %td", sentence, p - sentence);
    }
    cr_expect(cg_parser_accepting(parser, st), "'%s' is not complete", sentence);
}

Test(grammar, counted_repetitions_and_whole_subtrees_mask_like_a_brute_force_check)
{
    enum { NV = 256 + N_COUNTED + N_AXY };
    cg_vocab *v = cg_vocab_new(NV, counted_bytes, NULL);
    cr_assert_not_null(v);
    /* A JSON string with 2 to 12 characters (as a maxLength compiles),
     * then a closing brace; a bounded run of letters with a tail; a JSON
     * string of any length. */
    const char *grammars[] = {
        "root ::= \"\\\"\" ch ch ch? ch? ch? ch? ch? ch? ch? ch? ch? ch? \"\\\"}\"\n"
        "ch ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" [\"\\\\/bfnrt]\n",
        "root ::= [a-z]{3,9} \"1\"? [a-z]{0,4} \"!\"\n",
        "root ::= \"\\\"\" ch* \"\\\"}\"\n"
        "ch ::= [^\"\\\\\\x00-\\x1f] | \"\\\\\" [\"\\\\/bfnrt]\n"};
    const char *sentences[][3] = {
        {"\"ab\"}", "\"abcdefghijkl\"}", "\"aébcdefg\\n\"}"},
        {"abc!", "abcdefghi1zz!", "abcdefghizzzz!"},
        {"\"\"}", "\"qzz b\"}", "\"é\\\"abcdefghijkabcdefghijk\"}"}};
    for (size_t gi = 0; gi < sizeof grammars / sizeof *grammars; gi++) {
        compile_ok(grammars[gi]);
        for (size_t si = 0; si < 3; si++) {
            /* A fresh masker each time, so the cached masks and byte
             * classes of one sentence do not hide another's walk. */
            cg_masker *m = cg_masker_new(v, parser);
            cr_assert_not_null(m);
            masks_along(m, v, NV, sentences[gi][si]);
            cg_masker_free(m);
        }
    }
    cg_vocab_free(v);
}
