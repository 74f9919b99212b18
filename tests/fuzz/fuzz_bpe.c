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
#include "fuzz_tokenizer.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t flags = data[0] & (ST_ENCODE_ADD_BOS | ST_ENCODE_PARSE_SPECIAL);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    size_t n = 0;
    int32_t *ids = st_fuzz_encode(g_ops, g_inst, text, len, flags, &n);
    st_fuzz_check_pieces(g_ops, g_inst, ids, n);
    size_t back_len = 0;
    char *back = st_fuzz_decode(g_ops, g_inst, ids, n, &back_len);
    if (!back)
        st_fuzz_fail("the ids encode produced do not decode");
    if (!(flags & ST_ENCODE_ADD_BOS) && !(flags & ST_ENCODE_PARSE_SPECIAL) &&
        valid_utf8((const uint8_t *)text, len) &&
        (back_len != len || memcmp(back, text, len) != 0))
        st_fuzz_fail("valid UTF-8 of %zu bytes decodes back as %zu other bytes", len, back_len);
    free(back);
    free(ids);

    /* The same bytes as ids: out-of-range ones must be refused, not read. */
    st_fuzz_decode_raw_ids(g_ops, g_inst, (const uint8_t *)text, len);
    return 0;
}
