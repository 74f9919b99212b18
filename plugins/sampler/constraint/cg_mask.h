/*
 * plugins/sampler/constraint/cg_mask.h - which vocabulary tokens keep the
 * output a valid prefix, for one parser state.
 *
 * The tokens' bytes form a trie, so tokens sharing a prefix ("\"name",
 * "\"names") are checked once for the shared part; a walk from the root
 * steps the parser one byte per edge and prunes every subtree the grammar
 * rejects. Masks are cached per parser state (a JSON string's body, for
 * example, returns to one state after every ordinary character).
 */
#ifndef ST_CG_MASK_H
#define ST_CG_MASK_H

#include "cg_parser.h"

typedef struct cg_vocab cg_vocab;

/* One token's bytes; `special` tokens (control tokens) never match text. */
typedef bool (*cg_token_bytes_fn)(void *ctx, int32_t id, const char **bytes, size_t *len,
                                  bool *special);

/* The trie over n_tokens tokens. NULL on OOM or when token_bytes fails
 * (its failure is the caller's to report). */
cg_vocab *cg_vocab_new(int32_t n_tokens, cg_token_bytes_fn token_bytes, void *ctx);
void cg_vocab_free(cg_vocab *v);
int32_t cg_vocab_size(const cg_vocab *v);
/* A token's bytes as the trie holds them (len 0 for special tokens). */
const uint8_t *cg_vocab_bytes(const cg_vocab *v, int32_t id, size_t *len);

typedef struct cg_masker cg_masker;

cg_masker *cg_masker_new(const cg_vocab *v, cg_parser *p);
void cg_masker_free(cg_masker *m);

/* The allowed tokens in `state` as a bitmap of (n_tokens + 7) / 8 bytes,
 * owned by the masker, valid until the next call. End-of-generation tokens
 * are not in it: they are allowed exactly when the state is accepting.
 * NULL when the parser ran out of budget. */
const uint8_t *cg_masker_get(cg_masker *m, uint32_t state);

/* Masks shared between states (the default): a state whose counts no
 * token can use up takes the mask of its cg_parser_horizon state, and a
 * state split at its context-free part (cg_parser_split) is the inner
 * state's cached mask plus the tokens that run past its end. Off, every
 * mask is one walk of the trie from its own state. For tests that
 * compare the two, and for benchmarks. */
void cg_masker_set_shared(cg_masker *m, bool on);

/* Advance `state` by a token's bytes; 0 when the grammar rejects them,
 * UINT32_MAX when the parser ran out of budget. */
uint32_t cg_advance_token(cg_parser *p, const cg_vocab *v, uint32_t state, int32_t id);

#endif
