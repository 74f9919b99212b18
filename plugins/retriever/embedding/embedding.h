/*
 * plugins/retriever/embedding/embedding.h - the embedding retriever's flat
 * index as a library, for plugins that combine it with another retriever
 * (hybrid). embedding.c is compiled into such a plugin with
 * ST_RETRIEVER_NO_ENTRY defined, so only the combining plugin's entry is
 * exported. `inst` is what emb_create made.
 */
#ifndef ST_PLUGIN_EMBEDDING_H
#define ST_PLUGIN_EMBEDDING_H

#include <msgpack.h>
#include <stretch/plugin.h>

typedef struct emb_index emb_index;

st_status emb_create(const st_host_services *host, const st_params *params, void **inst,
                     st_error *err);
void emb_destroy(void *inst);
st_status emb_add(void *inst, const char *id, size_t id_len, const char *text, size_t text_len,
                  st_error *err);
/* n documents at once, their texts through the encoder in batches; on
 * failure none is added. */
st_status emb_add_batch(void *inst, size_t n, const char *const *ids, const size_t *id_lens,
                        const char *const *texts, const size_t *text_lens, st_error *err);
st_status emb_doc_id(void *inst, uint64_t doc, const char **id, size_t *len, st_error *err);
uint64_t emb_count(void *inst);
void emb_clear(void *inst);
/* Forget the newest document (undoes the last emb_add). */
void emb_drop_last(void *inst);

/* The cosine similarity of every document to `text` into
 * scores[emb_count] (one embedding of the text, then a flat pass). */
st_status emb_score_all(void *inst, const char *text, size_t len, float *scores, st_error *err);

/* The index as one msgpack map (the file format of
 * docs/plugins/embedding.md). */
void emb_pack(void *inst, msgpack_packer *pk);
/* Build an index from such a map (every inconsistency refused naming
 * `path`); put it in place with emb_swap, which hands back the index it replaces,
 * and free either with emb_discard. */
st_status emb_parse(void *inst, const msgpack_object *root, const char *path, emb_index **out,
                    st_error *err);
emb_index *emb_swap(void *inst, emb_index *fresh);
void emb_discard(void *inst, emb_index *fresh);

#endif
