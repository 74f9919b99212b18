/*
 * tests/fuzz/fuzz_tokenizer.h - the oracles the tokenizer targets
 * (fuzz_bpe, fuzz_wordpiece) share: the two-call sizing of encode and
 * decode, and decoding arbitrary bytes read as ids.
 */
#ifndef ST_FUZZ_TOKENIZER_H
#define ST_FUZZ_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include <stretch/tokenizer.h>

/* The ids of text (malloc'd; *n of them): encode must take any bytes, and
 * the sizing call (cap 0) and the real one must agree. */
int32_t *st_fuzz_encode(const st_tokenizer_ops *ops, void *inst, const char *text, size_t len,
                        uint32_t flags, size_t *n);

/* Every id inside the vocabulary, with a piece. */
void st_fuzz_check_pieces(const st_tokenizer_ops *ops, void *inst, const int32_t *ids, size_t n);

/* The text of ids (malloc'd; *len bytes), or NULL where decode refuses
 * them, with a message; the sizing call and the real one must agree. */
char *st_fuzz_decode(const st_tokenizer_ops *ops, void *inst, const int32_t *ids, size_t n,
                     size_t *len);

/* `bytes` read as int32 ids: they must decode when every one is inside the
 * vocabulary, and be refused (not read) otherwise. */
void st_fuzz_decode_raw_ids(const st_tokenizer_ops *ops, void *inst, const uint8_t *bytes,
                            size_t len);

#endif
