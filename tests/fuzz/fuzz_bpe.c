/*
 * tests/fuzz/fuzz_bpe.c - the `bpe` tokenizer (its sources compiled in,
 * not dlopened, so libFuzzer sees its coverage) on the tests' tiny
 * vocabulary. The first byte chooses the encode flags, the rest is the
 * text: arbitrary bytes must encode, every id must decode and have a
 * piece, and valid UTF-8 encoded without special-token parsing must decode
 * back to itself. The same bytes read as ids must decode or be refused.
 */
#include <stdlib.h>
#include <string.h>

#include <stretch/plugin.h>
#include <stretch/tokenizer.h>

#include "bpe_fixture.h"
#include "fake_meta.h"
#include "fuzz_util.h"

extern const st_plugin_entry stretch_plugin_entry;

static fake_meta_host g_fh;
static void *g_inst;
static const st_tokenizer_ops *g_ops;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fake_meta_init(&g_fh);
    fake_meta_set_str(&g_fh, "tokenizer.ggml.model", "gpt2");
    fake_meta_set_str(&g_fh, "tokenizer.ggml.pre", "smollm");
    fake_meta_set_strs(&g_fh, "tokenizer.ggml.tokens", fx_tokens, sizeof fx_tokens / sizeof *fx_tokens);
    fake_meta_set_ints(&g_fh, "tokenizer.ggml.token_type", fx_token_types,
                       sizeof fx_token_types / sizeof *fx_token_types);
    fake_meta_set_strs(&g_fh, "tokenizer.ggml.merges", fx_merges, sizeof fx_merges / sizeof *fx_merges);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.bos_token_id", 1);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.eos_token_id", 2);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.unknown_token_id", 0);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.padding_token_id", 2);
    fake_meta_set_int(&g_fh, "tokenizer.ggml.add_bos_token", 0);
    st_error err = {0};
    if (stretch_plugin_entry.create(&g_fh.th.services, NULL, &g_inst, &err) != ST_OK)
        st_fuzz_fail("bpe create: %s", err.message);
    g_ops = stretch_plugin_entry.ops;
    return 0;
}

/* Strict UTF-8: no overlong forms, surrogates or code points past U+10FFFF. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                   : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + len > n)
            return false;
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static char *decode_all(const int32_t *ids, size_t n, size_t *len, st_status *st)
{
    st_error err = {0};
    size_t need = 0;
    *st = g_ops->decode(g_inst, ids, n, NULL, 0, &need, &err);
    if (*st != ST_OK && *st != ST_E_RANGE)
        return NULL;
    char *out = malloc(need ? need : 1);
    *st = g_ops->decode(g_inst, ids, n, out, need, len, &err);
    if (*st != ST_OK || *len != need)
        st_fuzz_fail("decode: sized %zu bytes, then %s (%zu bytes)", need, err.message, *len);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t flags = data[0] & (ST_ENCODE_ADD_BOS | ST_ENCODE_PARSE_SPECIAL);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    st_error err = {0};
    size_t need = 0, n = 0;
    st_status st = g_ops->encode(g_inst, text, len, flags, NULL, 0, &need, &err);
    if (st != ST_OK && st != ST_E_RANGE)
        st_fuzz_fail("encode refused %zu bytes: %s", len, err.message);
    int32_t *ids = malloc((need ? need : 1) * sizeof *ids);
    if (g_ops->encode(g_inst, text, len, flags, ids, need, &n, &err) != ST_OK || n != need)
        st_fuzz_fail("encode: sized %zu ids, then %s (%zu ids)", need, err.message, n);
    int32_t vocab = g_ops->vocab_size(g_inst);
    for (size_t k = 0; k < n; k++) {
        const char *piece;
        size_t plen;
        if (ids[k] < 0 || ids[k] >= vocab || g_ops->piece(g_inst, ids[k], &piece, &plen, &err) != ST_OK)
            st_fuzz_fail("encode produced id %d, which has no piece", ids[k]);
    }
    size_t back_len = 0;
    char *back = decode_all(ids, n, &back_len, &st);
    if (!back)
        st_fuzz_fail("the ids encode produced do not decode");
    if (!(flags & ST_ENCODE_ADD_BOS) && !(flags & ST_ENCODE_PARSE_SPECIAL) &&
        valid_utf8((const uint8_t *)text, len) &&
        (back_len != len || memcmp(back, text, len) != 0))
        st_fuzz_fail("valid UTF-8 of %zu bytes decodes back as %zu other bytes", len, back_len);
    free(back);
    free(ids);

    /* The same bytes as ids: out-of-range ones must be refused, not read. */
    size_t n_raw = len / sizeof(int32_t);
    int32_t *raw = malloc((n_raw ? n_raw : 1) * sizeof *raw);
    memcpy(raw, text, n_raw * sizeof *raw);
    back = decode_all(raw, n_raw, &back_len, &st);
    bool in_range = true;
    for (size_t k = 0; k < n_raw; k++)
        in_range = in_range && raw[k] >= 0 && raw[k] < vocab;
    if (!back && in_range)
        st_fuzz_fail("ids inside the vocabulary were refused");
    free(back);
    free(raw);
    return 0;
}
