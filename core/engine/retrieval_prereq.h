/*
 * core/engine/retrieval_prereq.h - the retriever block's `prerequisites:`
 * (docs/retrieval.md): which documents a document's text names as ones to
 * use first. Made for tool lists of API endpoints, where a tool that takes
 * an id says which tool gives it ("use this after /search/movie"): a
 * document's key is the last word of its id when that word is a path
 * (starts with '/'; "GET /search/movie" -> "/search/movie"), and a text
 * names a key when the key appears in it as a whole word. Derived from the
 * documents alone, never from queries.
 */
#ifndef ST_CORE_RETRIEVAL_PREREQ_H
#define ST_CORE_RETRIEVAL_PREREQ_H

#include <stddef.h>
#include <stdint.h>
#include <stretch/common.h>

#include "doc_texts.h"

typedef struct st_prereq_table st_prereq_table;

/* The keys of documents 0..n-1 (ids from `ids`). */
st_status st_prereq_table_build(uint64_t n, st_doc_id_fn ids, void *ctx, st_prereq_table **out,
                                st_error *err);
void st_prereq_table_free(st_prereq_table *t);
uint64_t st_prereq_table_docs(const st_prereq_table *t);

/* The documents `text` names, in the order it first names them, none
 * twice and never `self`; at most `cap` into out. Returns how many. */
size_t st_prereq_named(const st_prereq_table *t, const char *text, size_t len, uint64_t self,
                       uint64_t *out, size_t cap);

#endif
