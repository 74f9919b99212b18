/*
 * stretch/encoder.h - sentence encoders (since 1.3): turn a text into one
 * vector with a BERT-family model from GGUF (all-MiniLM-L6-v2 converted by
 * tools/convert_minilm.py), tokenized by the `wordpiece` tokenizer plugin.
 * `stretch embed` uses this; retriever plugins reach the same encoder
 * through the host extension ST_HOST_ENCODER_V1 (stretch/services.h).
 *
 * Threading: one thread at a time per encoder.
 */
#ifndef STRETCH_ENCODER_H
#define STRETCH_ENCODER_H

#include "stretch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct st_encoder st_encoder;

/* Open the encoder in `model` (a GGUF of general.architecture "bert"). opts:
 * n_threads, plugin_dirs and log are honoured (may be NULL). */
ST_API st_status st_encoder_open(const char *model, const st_engine_options *opts,
                                 st_encoder **out, st_error *err);
ST_API void st_encoder_close(st_encoder *e);

/* The vector's length (the model's embedding width). */
ST_API uint32_t st_encoder_dim(const st_encoder *e);
/* The longest input in tokens, [CLS] and [SEP] included; longer texts are
 * cut there (as sentence-transformers does). */
ST_API uint32_t st_encoder_max_tokens(const st_encoder *e);

/* Embed `len` bytes of text into out[st_encoder_dim]. When ids is not NULL,
 * *ids gets the token ids the model saw ([CLS] ... [SEP]; st_free it). */
ST_API st_status st_encoder_embed(st_encoder *e, const char *text, size_t len, float *out,
                                  int32_t **ids, size_t *n_ids, st_error *err);

/* Embed n texts at once into out[n][st_encoder_dim] (since 1.5): their
 * tokens go through the model together, a few thousand at a time, so each
 * weight row is read once per tile of tokens instead of once per text;
 * each vector equals the one st_encoder_embed gives for its text. When ids
 * is not NULL, ids[i] and n_ids[i] get text i's token ids (st_free each);
 * on failure none are returned. */
ST_API st_status st_encoder_embed_batch(st_encoder *e, size_t n, const char *const *texts,
                                        const size_t *lens, float *out, int32_t **ids,
                                        size_t *n_ids, st_error *err);

#ifdef __cplusplus
}
#endif
#endif
