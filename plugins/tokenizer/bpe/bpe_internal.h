/*
 * bpe_internal.h - shared state of the `bpe` tokenizer plugin's files:
 * bpe_vocab.c (loading the vocabulary from model metadata, lookups),
 * bpe_pretok.c (special-token splitting and the pre-tokenizer regex),
 * bpe_merge.c (merging one word by rank), bpe_plugin.c (the ops).
 */
#ifndef ST_BPE_INTERNAL_H
#define ST_BPE_INTERNAL_H

#include <stretch/plugin.h>
#include "bpe_unicode.h"

/* GGUF tokenizer.ggml.token_type values. */
enum {
    ST_BPE_TYPE_UNDEFINED = 0,
    ST_BPE_TYPE_NORMAL = 1,
    ST_BPE_TYPE_UNKNOWN = 2,
    ST_BPE_TYPE_CONTROL = 3,
    ST_BPE_TYPE_USER_DEFINED = 4,
    ST_BPE_TYPE_UNUSED = 5,
    ST_BPE_TYPE_BYTE = 6
};

#define ST_BPE_NO_KEY UINT32_MAX

typedef struct st_bpe_token {
    const char *text;   /* as in the vocabulary (host memory, not NUL-terminated) */
    uint32_t text_len;
    uint32_t piece_off; /* what the token decodes to, in `arena` */
    uint32_t piece_len;
    uint32_t key_off;   /* its bytes as BPE sees them (text through the byte */
    uint32_t key_len;   /* map), or key_len = ST_BPE_NO_KEY if not byte-level */
    uint8_t type;
} st_bpe_token;

typedef struct st_bpe_merge {
    uint32_t left_off, left_len;   /* in `arena`, raw bytes */
    uint32_t right_off, right_len;
} st_bpe_merge;

typedef struct st_bpe {
    const st_host_services *host;
    int32_t n_vocab;
    st_bpe_token *tokens;
    char *arena;                 /* decoded pieces, keys and merge halves */
    size_t arena_len, arena_cap;

    int32_t *key_table;          /* open addressing: key bytes -> token id */
    uint32_t key_mask;
    st_bpe_merge *merges;        /* index = rank */
    uint32_t n_merges;
    int32_t *merge_table;        /* open addressing: (left, right) -> rank */
    uint32_t merge_mask;

    int32_t single_byte_token[256]; /* token whose text is exactly that byte */
    int32_t *specials;           /* ids split out before BPE, longest text first */
    size_t n_specials;

    st_special_tokens special;
    bool split_digits;           /* the pre-tokenizer isolates \p{N} first */
    uint16_t byte_cp[256];
    int16_t cp_byte[ST_BPE_CP_BYTE_SIZE];
} st_bpe;

/* bpe_vocab.c */
st_status st_bpe_vocab_load(st_bpe *b, st_error *err);
void st_bpe_vocab_free(st_bpe *b);
int32_t st_bpe_key_lookup(const st_bpe *b, const uint8_t *bytes, size_t len);
int32_t st_bpe_merge_rank(const st_bpe *b, const uint8_t *left, size_t left_len,
                          const uint8_t *right, size_t right_len);
uint32_t st_bpe_hash(const uint8_t *bytes, size_t len, uint32_t seed);

/* Where encode's ids go: at most `cap` are written, `n` counts them all. */
typedef struct st_bpe_out {
    int32_t *ids;
    size_t cap;
    size_t n;
} st_bpe_out;

static inline void st_bpe_out_push(st_bpe_out *o, int32_t id)
{
    if (o->n < o->cap)
        o->ids[o->n] = id;
    o->n++;
}

/* bpe_pretok.c */
typedef struct st_bpe_fragment {
    size_t off, len; /* raw text, when token < 0 */
    int32_t token;   /* a special token split out of the text, or -1 */
} st_bpe_fragment;

/* Split text into raw fragments and special tokens the way llama.cpp's
 * tokenizer_st_partition does. *out is allocated with the host's allocator. */
st_status st_bpe_split_specials(const st_bpe *b, const char *text, size_t len,
                                bool parse_special, st_bpe_fragment **out,
                                size_t *n_out, st_error *err);

/* The GPT-2 regex of llama.cpp's pre-tokenizer type "smollm": first every
 * \p{N} code point is isolated, then each remaining run is split by
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (without the first step when split_digits is false: plain GPT-2).
 * `cls` holds st_bpe_class_of of each code point. Writes the end index of
 * each word to `ends` (room for n) and returns the word count. */
size_t st_bpe_pretokenize(const uint32_t *cpts, const uint8_t *cls, size_t n,
                          bool split_digits, uint32_t *ends);

/* bpe_merge.c: per-call scratch for merging one word. */
typedef struct st_bpe_symbol {
    int32_t prev, next;
    uint32_t start, len;
} st_bpe_symbol;

typedef struct st_bpe_bigram {
    int32_t rank;
    int32_t left, right;
    uint32_t left_len, right_len; /* lengths when queued: stale if changed */
} st_bpe_bigram;

typedef struct st_bpe_scratch {
    const st_host_services *host;
    st_bpe_symbol *symbols;
    size_t symbols_cap;
    st_bpe_bigram *heap;
    size_t heap_len, heap_cap;
} st_bpe_scratch;

/* Byte-pair merge `word` (raw bytes) and push its token ids. */
st_status st_bpe_merge_word(const st_bpe *b, st_bpe_scratch *s, const uint8_t *word,
                            size_t len, st_bpe_out *out, st_error *err);
void st_bpe_scratch_free(st_bpe_scratch *s);

#endif
