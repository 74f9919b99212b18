/*
 * stretch/reader.h - a plugin that reads inputs of any length by choosing,
 * chunk by chunk, what to carry forward (ABI 1.3).
 *
 * The host drives the reading (st_engine_read in stretch.h): it streams the
 * document, splits it at sentence boundaries into chunks of at most
 * `chunk` tokens, and for each chunk hands the plugin one step: the tokens
 * it kept so far followed by the chunk's tokens, every token's sentence
 * index, and the question. The plugin marks the tokens to carry to the next
 * step; after the last chunk, what it kept is the context the answer is
 * generated from. Only one chunk plus the kept tokens are ever resident,
 * so memory is flat in the input's length and time linear in it.
 *
 * How a plugin chooses is its own: InfiniRetri scores tokens by the
 * attention the question pays them, XL3M scores segments by the model's
 * certainty on the question. Both ask the model through the host's
 * ST_HOST_SCORE_V1 extension (services.h); `select` is a call that "may
 * score".
 *
 * A plugin of any kind offers this through its entry's get_extension:
 * get_extension(inst, ST_READER_V1) returns a `const st_reader_v1 *`. The
 * host asks the strategy's plugins in kind order (tokenizer, positional
 * encoding, attention, samplers, retriever) and uses the first that
 * answers; it never looks at plugin names.
 *
 * Threading: the engine thread calls these, one at a time, never while a
 * plan or another call of the plugin runs.
 */
#ifndef STRETCH_READER_H
#define STRETCH_READER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_READER_V1 "stretch.reader/1"

/* One step of the reading: what was kept, then the new chunk. Everything
 * is the host's, read-only, valid during the call. */
typedef struct st_read_step {
    uint32_t struct_size;
    const int32_t *tokens;     /* [n_tokens]: the kept tokens, then the chunk's */
    size_t n_tokens;
    size_t n_kept;             /* tokens[0..n_kept) were kept by earlier steps */
    /* [n_tokens] the sentence each token belongs to: non-decreasing, a
     * sentence's tokens contiguous. A sentence longer than the host's cut
     * (no boundary in the text) arrives as several. */
    const uint32_t *sentence;
    const int32_t *question;   /* [n_question] the question's tokens (no BOS) */
    size_t n_question;
    int32_t bos;               /* the model's BOS token to start a scored
                                  sequence with, -1 when it wants none */
    uint64_t chunk;            /* index of this chunk, from 0 */
    bool last;                 /* the document's last chunk */
} st_read_step;

typedef struct st_reader_v1 {
    uint32_t struct_size;      /* sizeof(st_reader_v1) */

    /* The most tokens `select` keeps (> 0). The host sizes each step as
     * kept_max + chunk + question + 1 and refuses, before reading, a chunk
     * that would not fit the model's context. */
    uint32_t (*kept_max)(void *inst);

    /* Choose what to carry: set keep[i] = 1 for each token to keep (the
     * host zeroes keep first), at most kept_max of them; the host keeps
     * them in order with their sentence indices. `score` (NULL when not
     * wanted) receives each token's relevance, higher = more relevant, as
     * the plugin's doc defines it (its tests compare it with a direct
     * computation). */
    st_status (*select)(void *inst, const st_read_step *step, uint8_t *keep, float *score,
                        st_error *err);
} st_reader_v1;

#ifdef __cplusplus
}
#endif
#endif
