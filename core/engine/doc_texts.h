/*
 * core/engine/doc_texts.h - the documents' texts, kept by the host beside a
 * retriever's index (the plugin keeps only what it ranks with), so hits can
 * be quoted in a prompt. Saved as INDEX.texts (msgpack; docs/retrieval.md),
 * tied to the exact index file by its size and a 64-bit hash of its bytes.
 */
#ifndef ST_CORE_DOC_TEXTS_H
#define ST_CORE_DOC_TEXTS_H

#include <stddef.h>
#include <stdint.h>
#include <stretch/common.h>

typedef struct st_doc_texts {
    char **text;    /* [n], NUL-terminated copies */
    size_t *len;
    size_t n, cap;
} st_doc_texts;

void st_doc_texts_free(st_doc_texts *t);
/* Append a copy; false when out of memory. */
bool st_doc_texts_push(st_doc_texts *t, const char *text, size_t len);
void st_doc_texts_pop(st_doc_texts *t);

/* Write `path`.texts for the index just saved at `path`: `ids` gives each
 * document's id (the plugin's doc_id), for readers and for checks. */
typedef st_status (*st_doc_id_fn)(void *ctx, uint64_t doc, const char **id, size_t *len,
                                  st_error *err);
st_status st_doc_texts_save(const st_doc_texts *t, const char *path, st_doc_id_fn ids,
                            void *ctx, st_error *err);

/* Read `path`.texts into *out (empty, with *found false, when there is
 * none) and check it belongs to the index file at `path` as it is now. */
st_status st_doc_texts_load(const char *path, st_doc_texts *out, bool *found, st_error *err);

#endif
