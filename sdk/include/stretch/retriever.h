/*
 * stretch/retriever.h - ops of a `retriever` plugin: which documents,
 * segments or tools reach the prompt. Documents are added with an id and
 * text; queries return ranked hits with scores; the index is saved to and
 * loaded from a file the plugin owns the format of (msgpack by convention).
 *
 * Threading: `query`, `doc_id` and `count` may run concurrently with each
 * other; `add`, `save`, `load` and `clear` need exclusive access.
 */
#ifndef STRETCH_RETRIEVER_H
#define STRETCH_RETRIEVER_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct st_hit {
    uint64_t doc;   /* index in insertion order */
    float score;    /* higher is better */
} st_hit;

typedef struct st_retriever_ops {
    uint32_t struct_size;

    st_status (*add)(void *inst, const char *id, size_t id_len,
                     const char *text, size_t text_len, st_error *err);

    /* Up to k hits, best first, into hits[0..*n_hits). Ties are broken by
     * ascending doc index so results are deterministic. */
    st_status (*query)(void *inst, const char *text, size_t len, size_t k,
                       st_hit *hits, size_t *n_hits, st_error *err);

    /* The id of document `doc`, valid until the next add/load/clear. */
    st_status (*doc_id)(void *inst, uint64_t doc, const char **id, size_t *len,
                        st_error *err);

    uint64_t (*count)(void *inst);

    st_status (*save)(void *inst, const char *path, st_error *err);
    /* Replaces the current index; on failure the old one is kept. */
    st_status (*load)(void *inst, const char *path, st_error *err);
    void (*clear)(void *inst);

    /* Since 1.5, optional (absent or NULL: the host calls `add` once per
     * document): n documents at once, in order, as n calls of `add` would
     * add them; on failure none of them is added. Lets a plugin whose
     * documents go through a model batch them (`embedding`, `hybrid`). */
    st_status (*add_batch)(void *inst, size_t n, const char *const *ids, const size_t *id_lens,
                           const char *const *texts, const size_t *text_lens, st_error *err);
} st_retriever_ops;

#ifdef __cplusplus
}
#endif
#endif
