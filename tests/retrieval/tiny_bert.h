/*
 * tests/retrieval/tiny_bert.h - a tiny BERT sentence encoder GGUF with a
 * hand-made WordPiece vocabulary and seeded random weights, and a plain
 * double-precision forward pass to check the host's against.
 */
#ifndef ST_TEST_TINY_BERT_H
#define ST_TEST_TINY_BERT_H

#include <stddef.h>
#include <stdint.h>
#include <stretch/common.h>

#define TB_EMBD 8
#define TB_HEADS 2
#define TB_FF 16
#define TB_LAYERS 2
#define TB_POS 16

/* The vocabulary, in id order. */
extern const char *const tb_vocab[];
extern const size_t tb_n_vocab;

/* Write the model to `path`. `arch`
 * NULL = "bert"; `drop` names a tensor to leave out (NULL = none). */
st_status tb_write(const char *path, uint32_t seed, const char *arch, const char *drop);

/* The reference: mean-pooled, L2-normalised embedding of ids[n]. */
void tb_reference(uint32_t seed, const int32_t *ids, size_t n, double *out);

#endif
