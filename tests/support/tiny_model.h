/*
 * tests/support/tiny_model.h - write a tiny random-weight llama GGUF that
 * looks like SmolLM2's file (same metadata keys, tensor names, dims order
 * and tokenizer kind), so tests can load a real model without the real one.
 *
 * The tokenizer is a genuine GPT-2 byte-level BPE: ids 0..2 are
 * <|endoftext|>, <|im_start|>, <|im_end|> (as in SmolLM2), ids 3..258 the
 * 256 byte symbols in GPT-2's bytes_to_unicode order, then the merges learned
 * by a small deterministic BPE training over a built-in English + code text.
 * Everything is a pure function of the spec: same spec, same bytes.
 */
#ifndef ST_TEST_TINY_MODEL_H
#define ST_TEST_TINY_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stretch/common.h>
#include "diag.h"
#include "gguf.h"
#include "model.h"

#define ST_TINY_N_SPECIAL 3
#define ST_TINY_FIRST_BYTE_TOKEN 3
#define ST_TINY_FIRST_MERGE_TOKEN (ST_TINY_N_SPECIAL + 256)

typedef struct st_tiny_model_spec {
    st_ggml_type type;        /* 2-D weight matrices */
    st_ggml_type embd_type;   /* token_embd.weight (and output.weight) */
    uint64_t seed;
    uint32_t n_layers;
    uint32_t n_embd;          /* multiple of 32 for the block types */
    uint32_t n_heads;
    uint32_t n_kv_heads;
    uint32_t n_ff;            /* multiple of 32 for the block types */
    uint32_t n_ctx;
    uint32_t n_vocab;         /* 259 + merges wanted; the training may stop
                                 earlier, so read llama.vocab_size back */
    bool tied;                /* no output.weight (SmolLM2 is tied) */
    float rope_base;
    float rms_eps;
    uint32_t n_pos_table;     /* rows of an F32 position_embd.weight; 0 = none */
} st_tiny_model_spec;

/* Defaults: F32 matrices, Q8_0 token_embd, seed 1, 2 layers, 64 embd,
 * 4 heads, 2 kv heads, ffn 128, ctx 128, vocab 459 (200 merges), tied,
 * rope base 100000, rms eps 1e-5. */
void st_tiny_model_spec_default(st_tiny_model_spec *spec);

st_status st_gen_tiny_model(const st_tiny_model_spec *spec, const char *path, st_diag *diag);

/* A scratch directory /tmp/<name>_<pid> (into dir, dir_cap bytes) holding
 * the spec's model as tiny.gguf (its path into model): the fixture of the
 * engine tests. st_tiny_model_tmp_remove deletes the directory again;
 * 0 on success. */
st_status st_tiny_model_in_tmp(const char *name, const st_tiny_model_spec *spec, char *dir,
                               size_t dir_cap, char *model, size_t model_cap, st_diag *diag);
int st_tiny_model_tmp_remove(const char *dir);

/* The spec's model written to a temporary file, opened and loaded (*g and
 * *m for st_model_free / st_gguf_close); the file is removed once opened
 * (the mapping keeps it): the fixture of the reference-forward tests. */
st_status st_tiny_model_load(const st_tiny_model_spec *spec, st_gguf **g, st_model **m,
                             st_diag *diag);

/* The GPT-2 byte-level symbol (UTF-8, NUL-terminated, <= 2 bytes) for a
 * byte, and the token id the tiny vocabulary gives it. */
const char *st_tiny_byte_symbol(uint8_t byte);
uint32_t st_tiny_byte_token(uint8_t byte);

/* The ChatML template SmolLM2-Instruct carries (tokenizer.chat_template). */
extern const char st_tiny_chat_template[];

#endif
