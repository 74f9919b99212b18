/*
 * tests/support/tiny_bert.h - a tiny BERT sentence encoder GGUF with a
 * hand-made WordPiece vocabulary and seeded random weights, and a plain
 * double-precision forward pass to check the host's against.
 */
#ifndef ST_TEST_TINY_BERT_H
#define ST_TEST_TINY_BERT_H

#include <stddef.h>
#include <stdint.h>
#include <stretch/common.h>

#include "gguf.h"

/* 32 and 64: whole Q8_0 blocks, so the matrices can be written in Q8_0. */
#define TB_EMBD 32
#define TB_HEADS 2
#define TB_FF 64
#define TB_LAYERS 2
#define TB_POS 16

/* The vocabulary, in id order. */
extern const char *const tb_vocab[];
extern const size_t tb_n_vocab;

/* Write the model to `path`. `arch`
 * NULL = "bert"; `drop` names a tensor to leave out (NULL = none). */
st_status tb_write(const char *path, uint32_t seed, const char *arch, const char *drop);
/* The same with the six matrices of each layer (Q, K, V, attention output,
 * FFN up and down) quantized to `matrix_type` (ST_GGML_F32 = tb_write). */
st_status tb_write_typed(const char *path, uint32_t seed, const char *arch, const char *drop,
                         st_ggml_type matrix_type);

/* The f32 model with the one tensor `odd` written in odd_type. */
st_status tb_write_odd(const char *path, uint32_t seed, const char *odd, st_ggml_type odd_type);

/* The reference: mean-pooled, L2-normalised embedding of ids[n]. */
void tb_reference(uint32_t seed, const int32_t *ids, size_t n, double *out);

#endif
