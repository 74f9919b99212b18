/*
 * tests/bpe/test_bpe.c - the `bpe` tokenizer plugin, loaded from its built
 * .so, on a tiny vocabulary served as fake model metadata. Expected ids come
 * from Hugging Face `tokenizers` (make_expected.py -> bpe_fixture.h).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_fixture.h"
#include "fake_meta.h"

#define N_TOKENS (sizeof fx_tokens / sizeof fx_tokens[0])
#define N_MERGES (sizeof fx_merges / sizeof fx_merges[0])
#define N_CASES (sizeof fx_cases / sizeof fx_cases[0])

static fake_meta_host g_fh;
static const st_plugin_entry *g_entry;
static const st_tokenizer_ops *g_ops;

static void setup(void)
{
    char why[512];
    g_entry = st_test_load_plugin(ST_TEST_PLUGIN_DIR, "tokenizer", "bpe", why, sizeof why);
    cr_assert(g_entry, "%s", why);
    cr_assert_eq(g_entry->kind, ST_KIND_TOKENIZER);
    cr_assert_str_eq(g_entry->name, "bpe");
    g_ops = g_entry->ops;
    fake_meta_init(&g_fh);
    fake_meta_set_str(&g_fh, "tokenizer.ggml.model", "gpt2");
    fake_meta_set_str(&g_fh, "tokenizer.ggml.pre", "smollm");
    fake_meta_set_strs(&g_fh, "tokenizer.ggml.tokens", fx_tokens, N_TOKENS);
    fake_meta_set_ints(&g_fh, "tokenizer.ggml.token_type", fx_token_types, N_TOKENS);
    fake_meta_set_strs(&g_fh, "tokenizer.ggml.merges", fx_merges, N_MERGES);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.bos_token_id", 1);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.eos_token_id", 2);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.unknown_token_id", 0);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.padding_token_id", 2);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.add_bos_token", 0);
}

TestSuite(bpe, .init = setup);

static st_status create(st_test_params *params, void **inst, st_error *err)
{
    memset(err, 0, sizeof *err);
    return st_test_create(g_entry, &g_fh.th.services, params, inst, err);
}

static void *create_ok(void)
{
    void *inst = NULL;
    st_error err;
    st_status st = create(NULL, &inst, &err);
    cr_assert_eq(st, ST_OK, "create: %s", err.message);
    cr_assert(inst);
    return inst;
}

/* Encode into a fresh array (caller frees); *n gets the count. */
static int32_t *encode(void *inst, const char *text, size_t len, uint32_t flags, size_t *n)
{
    st_error err = {0};
    size_t need = 0;
    st_status st = g_ops->encode(inst, text, len, flags, NULL, 0, &need, &err);
    cr_assert(st == ST_OK || st == ST_E_RANGE, "encode sizing: %s", err.message);
    int32_t *ids = malloc((need ? need : 1) * sizeof *ids);
    st = g_ops->encode(inst, text, len, flags, ids, need, n, &err);
    cr_assert_eq(st, ST_OK, "encode: %s", err.message);
    cr_assert_eq(*n, need);
    return ids;
}

static char *decode(void *inst, const int32_t *ids, size_t n, size_t *len)
{
    st_error err = {0};
    size_t need = 0;
    st_status st = g_ops->decode(inst, ids, n, NULL, 0, &need, &err);
    cr_assert(st == ST_OK || st == ST_E_RANGE, "decode sizing: %s", err.message);
    char *out = malloc(need + 1);
    st = g_ops->decode(inst, ids, n, out, need, len, &err);
    cr_assert_eq(st, ST_OK, "decode: %s", err.message);
    return out;
}

Test(bpe, matches_reference_ids)
{
    void *inst = create_ok();
    for (size_t c = 0; c < N_CASES; c++) {
        const fx_case *fc = &fx_cases[c];
        uint32_t flags = fc->parse_special ? ST_ENCODE_PARSE_SPECIAL : 0;
        size_t n;
        int32_t *ids = encode(inst, fc->text, fc->len, flags, &n);
        cr_expect_eq(n, fc->n_ids, "case %zu \"%s\": %zu ids, expected %zu", c, fc->text, n,
                     fc->n_ids);
        for (size_t i = 0; i < n && i < fc->n_ids; i++)
            cr_expect_eq(ids[i], fc->ids[i], "case %zu \"%s\": id %zu is %d, expected %d", c,
                         fc->text, i, ids[i], fc->ids[i]);
        size_t len;
        char *text = decode(inst, ids, n, &len);
        cr_expect(len == fc->len && memcmp(text, fc->text, len) == 0,
                  "case %zu: decode does not give the text back", c);
        free(text);
        free(ids);
    }
    g_entry->destroy(inst);
}

Test(bpe, frees_everything)
{
    long before = g_fh.th.live_allocs;
    void *inst = create_ok();
    size_t n;
    int32_t *ids = encode(inst, "Hello <|im_end|> world", 22, ST_ENCODE_PARSE_SPECIAL, &n);
    free(ids);
    g_entry->destroy(inst);
    cr_assert_eq(g_fh.th.live_allocs, before, "%ld allocations leaked",
                 g_fh.th.live_allocs - before);
}

Test(bpe, capacity_contract)
{
    void *inst = create_ok();
    const char *text = "Hello, world! 12345";
    size_t need;
    int32_t *ids = encode(inst, text, strlen(text), 0, &need);
    cr_assert_gt(need, 3);
    int32_t small[3];
    size_t n = 0;
    st_error err = {0};
    cr_assert_eq(g_ops->encode(inst, text, strlen(text), 0, small, 3, &n, &err), ST_E_RANGE);
    cr_assert_eq(n, need);
    cr_assert(err.message[0]);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(small[i], ids[i]);

    char buf[4];
    size_t nb = 0;
    cr_assert_eq(g_ops->decode(inst, ids, need, buf, sizeof buf, &nb, &err), ST_E_RANGE);
    cr_assert_eq(nb, strlen(text));
    cr_assert(memcmp(buf, text, sizeof buf) == 0);

    int32_t bad = (int32_t)N_TOKENS;
    cr_assert_eq(g_ops->decode(inst, &bad, 1, buf, sizeof buf, &nb, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "outside the vocabulary"), "%s", err.message);
    free(ids);
    g_entry->destroy(inst);
}

Test(bpe, special_ids_and_bos)
{
    void *inst = create_ok();
    st_special_tokens sp;
    g_ops->special(inst, &sp);
    cr_assert_eq(sp.bos, 1);
    cr_assert_eq(sp.eos, 2);
    cr_assert_eq(sp.unk, 0);
    cr_assert_eq(sp.pad, 2);
    cr_assert_eq(sp.eot, 2, "<|im_end|> is the end-of-turn token");
    cr_assert_eq(sp.sep, -1);
    cr_assert_eq(g_ops->vocab_size(inst), (int32_t)N_TOKENS);
    cr_assert(g_ops->is_special(inst, 0));
    cr_assert(g_ops->is_special(inst, 1));
    cr_assert(!g_ops->is_special(inst, 40));
    cr_assert(!g_ops->is_special(inst, (int32_t)N_TOKENS - 1), "user-defined is not control");
    cr_assert(!g_ops->is_special(inst, -1));

    /* ST_ENCODE_ADD_BOS prepends BOS whenever the vocabulary has one; the
     * engine passes it only when tokenizer.ggml.add_bos_token says so. */
    size_t n;
    int32_t *ids = encode(inst, "a", 1, ST_ENCODE_ADD_BOS, &n);
    cr_assert_eq(n, 2);
    cr_assert_eq(ids[0], 1);
    free(ids);
    ids = encode(inst, "a", 1, 0, &n);
    cr_assert_eq(n, 1);
    cr_assert_neq(ids[0], 1);
    free(ids);
    g_entry->destroy(inst);

    fake_meta_remove(&g_fh, "tokenizer.ggml.bos_token_id");
    inst = create_ok();
    g_ops->special(inst, &sp);
    cr_assert_eq(sp.bos, -1);
    ids = encode(inst, "a", 1, ST_ENCODE_ADD_BOS, &n);
    cr_assert_eq(n, 1, "no BOS to add");
    free(ids);
    g_entry->destroy(inst);
}

Test(bpe, pieces_are_raw_bytes)
{
    void *inst = create_ok();
    st_error err = {0};
    const char *bytes;
    size_t len;
    cr_assert_eq(g_ops->piece(inst, 1, &bytes, &len, &err), ST_OK);
    cr_assert(len == 12 && memcmp(bytes, "<|im_start|>", 12) == 0);
    /* The token for " world" is stored as "Ġworld"; its piece has the space. */
    size_t n;
    int32_t *ids = encode(inst, " the", 4, 0, &n);
    cr_assert_eq(n, 1);
    cr_assert_eq(g_ops->piece(inst, ids[0], &bytes, &len, &err), ST_OK);
    cr_assert(len == 4 && memcmp(bytes, " the", 4) == 0);
    cr_assert_eq(g_ops->piece(inst, -5, &bytes, &len, &err), ST_E_INVALID);
    free(ids);
    g_entry->destroy(inst);
}

Test(bpe, invalid_utf8_becomes_replacement_char)
{
    void *inst = create_ok();
    /* Each invalid byte is U+FFFD, as in llama.cpp: same ids as the text
     * with EF BF BD in its place. */
    static const struct {
        const char *bad, *good;
    } pairs[] = {
        {"a\xff" "b", "a\xef\xbf\xbd" "b"},
        {"\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"x\xc3", "x\xef\xbf\xbd"},
        {"\xe2\x82 z", "\xef\xbf\xbd\xef\xbf\xbd z"},
        {"\xf0\x9f\x98", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf8\x88\x80\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf5\x80\x80\x80!", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!"},
        /* Overlong forms of '/' and NUL: invalid bytes, not characters. */
        {"a\xc0\xaf", "a\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xf0\x80\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"x\xc0\x80", "x\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xc1\xbf", "\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        size_t n1, n2;
        int32_t *a = encode(inst, pairs[p].bad, strlen(pairs[p].bad), 0, &n1);
        int32_t *b = encode(inst, pairs[p].good, strlen(pairs[p].good), 0, &n2);
        cr_expect_eq(n1, n2, "pair %zu", p);
        cr_expect(n1 == n2 && memcmp(a, b, n1 * sizeof *a) == 0, "pair %zu", p);
        free(a);
        free(b);
    }
    /* Surrogates decode without checks (llama.cpp) and come back
     * re-encoded; all that matters here is that nothing breaks. */
    const char nasty[] = "\xc0\x80\xed\xa0\x80\xc1\xbf\x00\xff\xfe\xfd";
    size_t n;
    int32_t *ids = encode(inst, nasty, sizeof nasty - 1, ST_ENCODE_PARSE_SPECIAL, &n);
    cr_assert_gt(n, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert(ids[i] >= 0 && ids[i] < (int32_t)N_TOKENS);
    free(ids);
    g_entry->destroy(inst);
}

Test(bpe, long_inputs_round_trip)
{
    void *inst = create_ok();
    /* A long run of one letter (worst case for merging), a long run of
     * spaces, and a long repetition whose ids must be the repetition of one
     * copy's ids (words never cross "\n" + letter). */
    size_t len = 20000;
    char *text = malloc(len);
    memset(text, 'a', len);
    size_t n, out_len;
    int32_t *ids = encode(inst, text, len, 0, &n);
    char *back = decode(inst, ids, n, &out_len);
    cr_assert(out_len == len && memcmp(back, text, len) == 0);
    free(ids);
    free(back);
    memset(text, ' ', len);
    ids = encode(inst, text, len, 0, &n);
    back = decode(inst, ids, n, &out_len);
    cr_assert(out_len == len && memcmp(back, text, len) == 0);
    free(ids);
    free(back);
    free(text);

    const char *unit = "The quick brown fox, 42 times!\n";
    size_t ulen = strlen(unit), reps = 5000;
    size_t n_unit;
    int32_t *unit_ids = encode(inst, unit, ulen, 0, &n_unit);
    text = malloc(ulen * reps);
    for (size_t r = 0; r < reps; r++)
        memcpy(text + r * ulen, unit, ulen);
    ids = encode(inst, text, ulen * reps, ST_ENCODE_PARSE_SPECIAL, &n);
    cr_assert_eq(n, n_unit * reps);
    for (size_t r = 0; r < reps; r++)
        cr_assert(memcmp(ids + r * n_unit, unit_ids, n_unit * sizeof *ids) == 0, "copy %zu", r);
    free(ids);
    free(unit_ids);
    free(text);
    g_entry->destroy(inst);
}

Test(bpe, parse_special_parameter_off)
{
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_bool(&p, "parse_special", false);
    void *inst = NULL;
    st_error err;
    cr_assert_eq(create(&p, &inst, &err), ST_OK, "%s", err.message);
    size_t n;
    int32_t *ids = encode(inst, "<|im_end|>", 10, ST_ENCODE_PARSE_SPECIAL, &n);
    cr_assert_gt(n, 1, "the parameter overrides the flag");
    free(ids);
    g_entry->destroy(inst);
    st_test_params_destroy(&p);
}

Test(bpe, refuses_other_tokenizer_models)
{
    fake_meta_set_str(&g_fh, "tokenizer.ggml.model", "llama");
    void *inst = NULL;
    st_error err;
    long before = g_fh.th.live_allocs;
    cr_assert_eq(create(NULL, &inst, &err), ST_E_INVALID);
    cr_assert_null(inst);
    cr_assert(strstr(err.message, "\"llama\"") && strstr(err.message, "gpt2"), "%s",
              err.message);
    cr_assert_eq(g_fh.th.live_allocs, before);
}

Test(bpe, refuses_unknown_pre_tokenizer)
{
    fake_meta_set_str(&g_fh, "tokenizer.ggml.pre", "qwen2");
    void *inst = NULL;
    st_error err;
    cr_assert_eq(create(NULL, &inst, &err), ST_E_INVALID);
    cr_assert(strstr(err.message, "qwen2"), "%s", err.message);
}

Test(bpe, refuses_missing_or_bad_metadata)
{
    void *inst = NULL;
    st_error err;
    long before = g_fh.th.live_allocs;
    fake_meta_remove(&g_fh, "tokenizer.ggml.merges");
    cr_assert_eq(create(NULL, &inst, &err), ST_E_FORMAT);
    cr_assert(strstr(err.message, "tokenizer.ggml.merges"), "%s", err.message);
    cr_assert_eq(g_fh.th.live_allocs, before);

    setup();
    fake_meta_set_int(&g_fh, "tokenizer.ggml.bos_token_id", 100000);
    cr_assert_eq(create(NULL, &inst, &err), ST_E_FORMAT);
    cr_assert(strstr(err.message, "bos_token_id"), "%s", err.message);

    setup();
    fake_meta_set_ints(&g_fh, "tokenizer.ggml.token_type", fx_token_types, 5);
    cr_assert_eq(create(NULL, &inst, &err), ST_E_FORMAT);
    cr_assert(strstr(err.message, "token_type"), "%s", err.message);

    setup();
    fake_meta_remove(&g_fh, "tokenizer.ggml.model");
    cr_assert_eq(create(NULL, &inst, &err), ST_E_FORMAT);
    cr_assert_null(inst);
}

Test(bpe, plain_gpt2_pre_tokenizer_keeps_digit_runs)
{
    /* "gpt2" pre-tokenization does not isolate digits first: " 42" stays
     * one word, so it cannot give the same ids as the "smollm" rule, which
     * splits " ", "4", "2". */
    void *inst = create_ok();
    size_t n_smollm, n_gpt2;
    int32_t *a = encode(inst, "x 4242", 6, 0, &n_smollm);
    g_entry->destroy(inst);
    fake_meta_set_str(&g_fh, "tokenizer.ggml.pre", "gpt2");
    inst = create_ok();
    int32_t *b = encode(inst, "x 4242", 6, 0, &n_gpt2);
    cr_assert_eq(n_smollm, 6, "x, space, 4, 2, 4, 2");
    /* The fixture has merges "4 2" and "Ġ 4": only plain GPT-2 can use them. */
    cr_assert_eq(n_gpt2, 4, "x, space, 42, 42: got %zu ids", n_gpt2);
    size_t len;
    char *back = decode(inst, b, n_gpt2, &len);
    cr_assert(len == 6 && memcmp(back, "x 4242", 6) == 0);
    free(back);
    free(a);
    free(b);
    g_entry->destroy(inst);
}

static uint32_t lcg(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*state >> 33);
}

Test(bpe, random_text_round_trips)
{
    /* Random code points from every plane (surrogates excluded) with
     * plenty of ASCII, spaces and digits: valid UTF-8 must decode back to
     * exactly itself. */
    void *inst = create_ok();
    uint64_t state = 12345;
    uint8_t *text = malloc(4 * 30000);
    for (int round = 0; round < 4; round++) {
        size_t len = 0;
        for (int i = 0; i < 30000; i++) {
            uint32_t r = lcg(&state), cp;
            switch (r % 6) {
            case 0: cp = 0x20 + lcg(&state) % 0x5F; break;
            case 1: cp = " \t\n0123456789'"[lcg(&state) % 14]; break;
            case 2: cp = 0x80 + lcg(&state) % 0x780; break;
            case 3: cp = 0x800 + lcg(&state) % 0xF800; break;
            case 4: cp = 0x10000 + lcg(&state) % 0x100000; break;
            default: cp = 'a' + lcg(&state) % 26; break;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 'x';
            if (cp < 0x80) {
                text[len++] = (uint8_t)cp;
            } else if (cp < 0x800) {
                text[len++] = (uint8_t)(0xC0 | (cp >> 6));
                text[len++] = (uint8_t)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                text[len++] = (uint8_t)(0xE0 | (cp >> 12));
                text[len++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                text[len++] = (uint8_t)(0x80 | (cp & 0x3F));
            } else {
                text[len++] = (uint8_t)(0xF0 | (cp >> 18));
                text[len++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
                text[len++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
                text[len++] = (uint8_t)(0x80 | (cp & 0x3F));
            }
        }
        size_t n, out_len;
        int32_t *ids = encode(inst, (const char *)text, len, 0, &n);
        char *back = decode(inst, ids, n, &out_len);
        cr_assert(out_len == len && memcmp(back, text, len) == 0, "round %d", round);
        free(ids);
        free(back);
    }
    free(text);
    g_entry->destroy(inst);
}

Test(bpe, random_bytes_give_valid_ids)
{
    void *inst = create_ok();
    uint64_t state = 777;
    size_t len = 1 << 16;
    char *text = malloc(len);
    for (size_t i = 0; i < len; i++)
        text[i] = (char)(lcg(&state) & 0xFF);
    /* Sprinkle special-token text in to cross the splitting paths too. */
    memcpy(text + 100, "<|im_start|>", 12);
    memcpy(text + 5000, "<tool_call>", 11);
    size_t n;
    int32_t *ids = encode(inst, text, len, ST_ENCODE_PARSE_SPECIAL, &n);
    cr_assert_gt(n, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert(ids[i] >= 0 && ids[i] < (int32_t)N_TOKENS, "id %zu = %d", i, ids[i]);
    free(ids);
    free(text);
    g_entry->destroy(inst);
}

/* Two million control tokens, the longer half after the shorter one (the
 * order that made the old insertion sort move every entry: hours, not
 * seconds). The timeout only catches that quadratic load; sorted loading
 * takes about a second. */
#define MANY_SPECIALS (1 << 21)

Test(bpe, many_control_tokens_load_and_longest_wins, .timeout = 120)
{
    static char texts[MANY_SPECIALS][16];
    static const char *strs[MANY_SPECIALS];
    static int types[MANY_SPECIALS];
    const int half = MANY_SPECIALS / 2;
    for (int i = 0; i < MANY_SPECIALS; i++) {
        if (i < half)
            snprintf(texts[i], sizeof texts[i], "<%07d", i);
        else
            snprintf(texts[i], sizeof texts[i], "<%07d>", i - half);
        strs[i] = texts[i];
        types[i] = 3; /* control */
    }
    static const char *const no_merges[] = {"a b"};
    fake_meta_set_strs(&g_fh, "tokenizer.ggml.tokens", strs, MANY_SPECIALS);
    fake_meta_set_ints(&g_fh, "tokenizer.ggml.token_type", types, MANY_SPECIALS);
    fake_meta_set_strs(&g_fh, "tokenizer.ggml.merges", no_merges, 1);
    fake_meta_remove(&g_fh, "tokenizer.ggml.bos_token_id");
    fake_meta_remove(&g_fh, "tokenizer.ggml.eos_token_id");
    fake_meta_remove(&g_fh, "tokenizer.ggml.unknown_token_id");
    fake_meta_remove(&g_fh, "tokenizer.ggml.padding_token_id");
    void *inst = create_ok();
    /* "<0000042>" holds "<0000042": the longer control token must win. */
    size_t n;
    int32_t *ids = encode(inst, "<0000042><0000007", 17, ST_ENCODE_PARSE_SPECIAL, &n);
    cr_assert_eq(n, 2);
    cr_expect_eq(ids[0], half + 42);
    cr_expect_eq(ids[1], 7);
    free(ids);
    g_entry->destroy(inst);
}

Test(bpe, empty_token_texts_load)
{
    /* Empty token strings (a fuzzed vocabulary) have empty keys: they must
     * load, compare and encode without touching a NULL arena. */
    static const char *const tokens[] = {"", "", "a", ""};
    static const int types[] = {1, 1, 1, 3};
    static const char *const merges[] = {"a a"};
    fake_meta_set_strs(&g_fh, "tokenizer.ggml.tokens", tokens, 4);
    fake_meta_set_ints(&g_fh, "tokenizer.ggml.token_type", types, 4);
    fake_meta_set_strs(&g_fh, "tokenizer.ggml.merges", merges, 1);
    fake_meta_remove(&g_fh, "tokenizer.ggml.bos_token_id");
    fake_meta_remove(&g_fh, "tokenizer.ggml.eos_token_id");
    fake_meta_remove(&g_fh, "tokenizer.ggml.unknown_token_id");
    fake_meta_remove(&g_fh, "tokenizer.ggml.padding_token_id");
    void *inst = create_ok();
    size_t n;
    int32_t *ids = encode(inst, "a", 1, ST_ENCODE_PARSE_SPECIAL, &n);
    cr_assert_eq(n, 1);
    cr_expect_eq(ids[0], 2);
    free(ids);
    g_entry->destroy(inst);

    /* Only empty tokens: nothing else would ever allocate the arena. */
    static const char *const only_empty[] = {"", ""};
    fake_meta_set_strs(&g_fh, "tokenizer.ggml.tokens", only_empty, 2);
    fake_meta_set_ints(&g_fh, "tokenizer.ggml.token_type", types, 2);
    inst = create_ok();
    g_entry->destroy(inst);
}
