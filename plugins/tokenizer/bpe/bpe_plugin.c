/*
 * tokenizer `bpe`: GPT-2 byte-level BPE over the model's own vocabulary
 * (tokenizer.ggml.model = "gpt2"), matching llama.cpp's ids for it:
 *   1. special tokens are cut out of the text (bpe_pretok.c),
 *   2. the rest is split into words by the pre-tokenizer regex,
 *   3. each word's bytes are merged by rank (bpe_merge.c),
 * with the vocabulary read through the host's metadata services
 * (bpe_vocab.c). All state is built in create and read-only afterwards,
 * so every op may run concurrently; encode allocates its own scratch.
 */
#include <string.h>

#include <stretch/params.h>
#include <stretch/plugin.h>

#include "bpe_internal.h"

typedef struct bpe_instance {
    st_bpe vocab;
    bool parse_special; /* false: ST_ENCODE_PARSE_SPECIAL is ignored */
} bpe_instance;

static void bpe_destroy(void *inst)
{
    bpe_instance *bi = inst;
    if (!bi)
        return;
    const st_host_services *h = bi->vocab.host;
    st_bpe_vocab_free(&bi->vocab);
    h->free(h->host, bi);
}

static st_status bpe_create(const st_host_services *host, const st_params *params,
                            void **inst, st_error *err)
{
    bool parse_special = st_param_bool(params, "parse_special");
    bpe_instance *bi = host->calloc(host->host, 1, sizeof *bi);
    if (!bi)
        return host->error(err, ST_E_NOMEM, "bpe: out of memory");
    bi->vocab.host = host;
    bi->parse_special = parse_special;
    st_status st = st_bpe_vocab_load(&bi->vocab, err);
    if (st != ST_OK) {
        bpe_destroy(bi);
        return st;
    }
    *inst = bi;
    return ST_OK;
}

/* Per-call buffers of encode, sized by the longest raw fragment. */
typedef struct encode_buffers {
    uint32_t *cpts;
    uint8_t *cls;
    uint32_t *ends;
    uint8_t *word;
} encode_buffers;

static st_status encode_fragment(const st_bpe *b, const uint8_t *text, size_t len,
                                 encode_buffers *eb, st_bpe_scratch *scratch,
                                 st_bpe_out *out, st_error *err)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        size_t used;
        uint32_t cp = st_bpe_utf8_decode(text + i, len - i, &used);
        eb->cpts[n] = cp;
        eb->cls[n] = st_bpe_class_of(cp);
        n++;
        i += used;
    }
    size_t n_words = st_bpe_pretokenize(eb->cpts, eb->cls, n, b->split_digits, eb->ends);
    size_t start = 0;
    for (size_t w = 0; w < n_words; w++) {
        /* Re-encode the word's code points: invalid input bytes became
         * U+FFFD, as in llama.cpp. */
        size_t nb = 0;
        for (size_t c = start; c < eb->ends[w]; c++)
            nb += st_bpe_utf8_encode(eb->cpts[c], eb->word + nb);
        start = eb->ends[w];
        st_status st = st_bpe_merge_word(b, scratch, eb->word, nb, out, err);
        if (st != ST_OK)
            return st;
    }
    return ST_OK;
}

static st_status bpe_encode(void *inst, const char *text, size_t len, uint32_t flags,
                            int32_t *ids, size_t cap, size_t *n_ids, st_error *err)
{
    bpe_instance *bi = inst;
    const st_bpe *b = &bi->vocab;
    const st_host_services *h = b->host;
    if (!n_ids || (!text && len > 0) || (!ids && cap > 0))
        return h->error(err, ST_E_INVALID, "bpe: encode needs text, ids and n_ids");
    *n_ids = 0;

    bool parse_special = bi->parse_special && (flags & ST_ENCODE_PARSE_SPECIAL);
    st_bpe_fragment *frags = NULL;
    size_t n_frags = 0;
    st_status st = st_bpe_split_specials(b, text, len, parse_special, &frags, &n_frags, err);
    if (st != ST_OK)
        return st;

    size_t longest = 0;
    for (size_t f = 0; f < n_frags; f++)
        if (frags[f].token < 0 && frags[f].len > longest)
            longest = frags[f].len;
    encode_buffers eb = {0};
    st_bpe_scratch scratch = {.host = h};
    if (longest > 0) {
        /* A byte becomes at most one code point, and a code point at most 3
         * bytes per input byte (U+FFFD for one invalid byte). */
        eb.cpts = h->alloc(h->host, longest * sizeof *eb.cpts);
        eb.cls = h->alloc(h->host, longest);
        eb.ends = h->alloc(h->host, longest * sizeof *eb.ends);
        eb.word = h->alloc(h->host, 3 * longest + 4);
        if (!eb.cpts || !eb.cls || !eb.ends || !eb.word) {
            st = h->error(err, ST_E_NOMEM, "bpe: out of memory encoding %zu bytes", len);
            goto done;
        }
    }

    st_bpe_out out = {ids, cap, 0};
    /* The caller decides (the engine passes the flag when the model's
     * tokenizer.ggml.add_bos_token says so, as llama.cpp's add_special). */
    if ((flags & ST_ENCODE_ADD_BOS) && b->special.bos >= 0)
        st_bpe_out_push(&out, b->special.bos);
    for (size_t f = 0; f < n_frags; f++) {
        if (frags[f].token >= 0) {
            st_bpe_out_push(&out, frags[f].token);
            continue;
        }
        st = encode_fragment(b, (const uint8_t *)text + frags[f].off, frags[f].len, &eb,
                             &scratch, &out, err);
        if (st != ST_OK)
            goto done;
    }
    *n_ids = out.n;
    if (out.n > cap)
        st = h->error(err, ST_E_RANGE, "bpe: the text needs %zu ids, room for %zu given",
                      out.n, cap);
done:
    st_bpe_scratch_free(&scratch);
    h->free(h->host, eb.cpts);
    h->free(h->host, eb.cls);
    h->free(h->host, eb.ends);
    h->free(h->host, eb.word);
    h->free(h->host, frags);
    return st;
}

static st_status check_id(const st_bpe *b, int32_t id, st_error *err)
{
    if (id < 0 || id >= b->n_vocab)
        return b->host->error(err, ST_E_INVALID,
                              "bpe: token id %d is outside the vocabulary (0..%d)", (int)id,
                              (int)b->n_vocab - 1);
    return ST_OK;
}

static st_status bpe_decode(void *inst, const int32_t *ids, size_t n_ids, char *out,
                            size_t cap, size_t *n_bytes, st_error *err)
{
    bpe_instance *bi = inst;
    const st_bpe *b = &bi->vocab;
    if (!n_bytes || (!ids && n_ids > 0) || (!out && cap > 0))
        return b->host->error(err, ST_E_INVALID, "bpe: decode needs ids, out and n_bytes");
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++) {
        st_status st = check_id(b, ids[i], err);
        if (st != ST_OK) {
            *n_bytes = 0;
            return st;
        }
        const st_bpe_token *t = &b->tokens[ids[i]];
        if (n < cap)
            memcpy(out + n, b->arena + t->piece_off,
                   t->piece_len < cap - n ? t->piece_len : cap - n);
        n += t->piece_len;
    }
    *n_bytes = n;
    if (n > cap)
        return b->host->error(err, ST_E_RANGE, "bpe: the text needs %zu bytes, room for %zu given",
                              n, cap);
    return ST_OK;
}

static st_status bpe_piece(void *inst, int32_t id, const char **bytes, size_t *len,
                           st_error *err)
{
    bpe_instance *bi = inst;
    const st_bpe *b = &bi->vocab;
    st_status st = check_id(b, id, err);
    if (st != ST_OK)
        return st;
    *bytes = b->arena + b->tokens[id].piece_off;
    *len = b->tokens[id].piece_len;
    return ST_OK;
}

static int32_t bpe_vocab_size(void *inst)
{
    return ((bpe_instance *)inst)->vocab.n_vocab;
}

static void bpe_special(void *inst, st_special_tokens *out)
{
    *out = ((bpe_instance *)inst)->vocab.special;
}

static bool bpe_is_special(void *inst, int32_t id)
{
    const st_bpe *b = &((bpe_instance *)inst)->vocab;
    if (id < 0 || id >= b->n_vocab)
        return false;
    uint8_t type = b->tokens[id].type;
    return type == ST_BPE_TYPE_CONTROL || type == ST_BPE_TYPE_UNKNOWN;
}

static const st_tokenizer_ops bpe_ops = {
    .struct_size = sizeof(st_tokenizer_ops),
    .encode = bpe_encode,
    .decode = bpe_decode,
    .piece = bpe_piece,
    .vocab_size = bpe_vocab_size,
    .special = bpe_special,
    .is_special = bpe_is_special,
};

ST_PLUGIN(ST_KIND_TOKENIZER, "bpe", "1.0.0",
          "GPT-2 byte-level BPE over the model's vocabulary, matching llama.cpp",
          bpe_create, bpe_destroy, &bpe_ops, NULL);
