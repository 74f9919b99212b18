/*
 * stretch/tokenizer.h - ops of a `tokenizer` plugin: text <-> token ids.
 *
 * Threading: encode, decode, piece, vocab_size and special may be called
 * concurrently on one instance (a tokenizer holds no per-call state).
 */
#ifndef STRETCH_TOKENIZER_H
#define STRETCH_TOKENIZER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags for encode. */
#define ST_ENCODE_ADD_BOS       (1u << 0) /* prepend BOS when the vocabulary has one */
#define ST_ENCODE_PARSE_SPECIAL (1u << 1) /* text like "<|im_start|>" becomes the special id */

/* The longest piece() a token may have, in bytes. */
#define ST_PIECE_MAX_BYTES 256

/* Special token ids; -1 where the vocabulary has none. */
typedef struct st_special_tokens {
    uint32_t struct_size;
    int32_t bos, eos, eot, pad, unk, sep;
} st_special_tokens;

typedef struct st_tokenizer_ops {
    uint32_t struct_size;

    /* Encode `len` bytes of UTF-8 (or arbitrary bytes) into `ids`. Writes at
     * most `cap` ids and always sets *n_ids to the number needed; when
     * *n_ids > cap it returns ST_E_RANGE and the caller retries larger.
     * The host refuses ST_OK with *n_ids > cap, and ids outside
     * [0, vocab_size). */
    st_status (*encode)(void *inst, const char *text, size_t len, uint32_t flags,
                        int32_t *ids, size_t cap, size_t *n_ids, st_error *err);

    /* Decode ids into bytes (not NUL-terminated). Same sizing contract as
     * encode on `cap`/`*n_bytes`. Special tokens decode to their text. An
     * id outside [0, vocab_size) is refused with ST_E_INVALID (ST_E_RANGE
     * says only that `cap` is too small; piece() likewise). */
    st_status (*decode)(void *inst, const int32_t *ids, size_t n_ids,
                        char *out, size_t cap, size_t *n_bytes, st_error *err);

    /* The bytes token `id` stands for (a fragment: may split a UTF-8 char).
     * The pointer stays valid for the life of the instance; it is never
     * NULL, and the piece is at most ST_PIECE_MAX_BYTES long (the host
     * refuses a longer one: it cannot tell a real length from garbage). */
    st_status (*piece)(void *inst, int32_t id, const char **bytes, size_t *len,
                       st_error *err);

    int32_t (*vocab_size)(void *inst);

    void (*special)(void *inst, st_special_tokens *out);

    /* Whether `id` is a control/special token (not rendered in plain text). */
    bool (*is_special)(void *inst, int32_t id);
} st_tokenizer_ops;

/* Since 1.3: a tokenizer that normalizes text (case, accents, spacing:
 * BERT's WordPiece) answers this id from its entry's get_extension, so
 * decode(encode(x)) gives the normalized text, not x. The conformance
 * suite then checks that encode(decode(encode(x))) == encode(x) instead
 * of the byte round trip. The struct carries only its size for now. */
#define ST_TOKENIZER_NORMALIZES_V1 "stretch.tokenizer.normalizes/1"
typedef struct st_tokenizer_normalizes_v1 {
    uint32_t struct_size;
} st_tokenizer_normalizes_v1;

#ifdef __cplusplus
}
#endif
#endif
