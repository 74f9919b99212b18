/*
 * tests/fuzz/fuzz_wordpiece.c - the `wordpiece` tokenizer (its sources
 * compiled in, not dlopened, so libFuzzer sees their coverage): the text of
 * every document `stretch retrieve index` embeds and every query. Two
 * instances over one small vocabulary: BERT-uncased (lowercase, accents
 * stripped, words up to 100 characters) and cased with words of at most 4
 * characters (longer ones become [UNK]). The first byte picks the instance
 * and the encode flags, the rest is the text. Arbitrary bytes must encode
 * (the sizing call and the real call agreeing), every id must have a piece,
 * the ids must decode, and the normalized text they decode to must encode
 * to the same ids (the contract of ST_TOKENIZER_NORMALIZES_V1, which the
 * conformance suite checks on one sentence). The same bytes read as ids
 * must decode or be refused.
 */
#include <stdlib.h>
#include <string.h>

#include <stretch/plugin.h>
#include <stretch/tokenizer.h>

#include "fake_meta.h"
#include "fuzz_tokenizer.h"
#include "fuzz_util.h"

extern const st_plugin_entry stretch_plugin_entry;

/* Specials first, then whole words, word pieces (##), punctuation, a CJK
 * character, accented pieces (only the cased instance can reach them) and
 * the letters of the special tokens' names. */
static const char *const vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "##s", "##ing", "play",
    "un", "##aff", "##able", "a", "##a", "b", "##b", ".", ",", "!", "[", "]", "unk", "UNK",
    "\xe7\x8c\xab", "\xc3\xa9", "##\xc3\xa9", "Caf", "caf", "x", "##x", "##xx", "0", "##0",
    "1", "cls", "sep", "##p"};

static fake_meta_host g_fh[2];
static void *g_inst[2];
static const st_tokenizer_ops *g_ops;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    for (int k = 0; k < 2; k++) {
        fake_meta_host *fh = &g_fh[k];
        fake_meta_init(fh);
        fake_meta_set_str(fh, "tokenizer.ggml.model", "bert");
        fake_meta_set_strs(fh, "tokenizer.ggml.tokens", vocab, sizeof vocab / sizeof *vocab);
        if (k == 1) {
            fake_meta_set_int(fh, "tokenizer.wordpiece.lowercase", 0);
            fake_meta_set_int(fh, "tokenizer.wordpiece.max_word_chars", 4);
        }
        st_error err = {0};
        if (stretch_plugin_entry.create(&fh->th.services, NULL, &g_inst[k], &err) != ST_OK)
            st_fuzz_fail("wordpiece create: %s", err.message);
        if (!stretch_plugin_entry.get_extension ||
            !stretch_plugin_entry.get_extension(g_inst[k], ST_TOKENIZER_NORMALIZES_V1))
            st_fuzz_fail("wordpiece does not say it normalizes");
    }
    g_ops = stretch_plugin_entry.ops;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    void *inst = g_inst[data[0] & 1];
    uint32_t flags = (data[0] >> 1) & (ST_ENCODE_ADD_BOS | ST_ENCODE_PARSE_SPECIAL);
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    size_t n = 0;
    int32_t *ids = st_fuzz_encode(g_ops, inst, text, len, flags, &n);
    st_fuzz_check_pieces(g_ops, inst, ids, n);
    size_t back_len = 0;
    char *back = st_fuzz_decode(g_ops, inst, ids, n, &back_len);
    if (!back)
        st_fuzz_fail("the ids encode produced do not decode");
    /* Decoded text is normalized: it encodes to the same ids (its special
     * tokens, [UNK] and the [CLS] / [SEP] of ADD_BOS, by their text). */
    size_t n2 = 0;
    int32_t *again = st_fuzz_encode(g_ops, inst, back, back_len, ST_ENCODE_PARSE_SPECIAL, &n2);
    if (n2 != n || memcmp(again, ids, n * sizeof *ids) != 0)
        st_fuzz_fail("%zu ids decode to %zu bytes that encode to %zu other ids", n, back_len,
                     n2);
    free(again);
    free(back);
    free(ids);
    /* The same bytes as ids: out-of-range ones must be refused, not read. */
    st_fuzz_decode_raw_ids(g_ops, inst, (const uint8_t *)text, len);
    return 0;
}
