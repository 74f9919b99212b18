/*
 * plugins/retriever/bm25/bm25.h - the bm25 retriever's index as a library,
 * for plugins that combine it with another retriever (hybrid). bm25.c is
 * compiled into such a plugin with ST_RETRIEVER_NO_ENTRY defined, so only
 * the combining plugin's entry is exported. `inst` is what bm25_create
 * made.
 */
#ifndef ST_PLUGIN_BM25_H
#define ST_PLUGIN_BM25_H

#include <msgpack.h>
#include <stretch/plugin.h>

typedef struct bm25_index bm25_index;

st_status bm25_create(const st_host_services *host, const st_params *params, void **inst,
                      st_error *err);
void bm25_destroy(void *inst);
st_status bm25_add(void *inst, const char *id, size_t id_len, const char *text,
                   size_t text_len, st_error *err);
st_status bm25_doc_id(void *inst, uint64_t doc, const char **id, size_t *len, st_error *err);
uint64_t bm25_count(void *inst);
void bm25_clear(void *inst);
/* Forget the newest document (undoes the last bm25_add). */
void bm25_drop_last(void *inst);

/* The BM25 score of every document for `text` into scores[bm25_count]
 * (0 for a document sharing no term with it); *n_matched gets how many
 * share at least one term, and matched[d] (when not NULL) whether d does. */
st_status bm25_score_all(void *inst, const char *text, size_t len, double *scores,
                         uint8_t *matched, size_t *n_matched, st_error *err);

/* The index as one msgpack map (the file format of docs/plugins/bm25.md). */
void bm25_pack(void *inst, msgpack_packer *pk);
/* Build an index from such a map (every inconsistency refused naming
 * `path`); put it in place with bm25_swap, which hands back the index it replaces,
 * and free either with bm25_discard. */
st_status bm25_parse(void *inst, const msgpack_object *root, const char *path,
                     bm25_index **out, st_error *err);
bm25_index *bm25_swap(void *inst, bm25_index *fresh);
void bm25_discard(void *inst, bm25_index *fresh);

#endif
