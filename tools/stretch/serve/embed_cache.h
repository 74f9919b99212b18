/*
 * tools/stretch/serve/embed_cache.h - the vectors a sentence encoder gave
 * recently, by their text, so a text sent again (a rerank request's
 * documents, a tool list sent with every chat, a RAG client's passages)
 * is not run through the model again. An encoder's vector for a text does
 * not depend on the batch it ran in, so a cached vector is the very one
 * the model would give. One cache per encoder, used by its thread only.
 */
#ifndef ST_SERVE_EMBED_CACHE_H
#define ST_SERVE_EMBED_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct st_embed_cache st_embed_cache;

/* A cache of at most max_bytes (texts, vectors and bookkeeping), the least
 * recently used entries leaving first; NULL when out of memory or when
 * max_bytes is 0 (every call below takes NULL as "no cache"). */
st_embed_cache *st_embed_cache_new(size_t max_bytes, uint32_t dim);
void st_embed_cache_free(st_embed_cache *c);

/* Whether text[len] is held: then its vector is copied into vec[dim] and
 * its token count into *n_tokens, and it becomes the most recently used. */
bool st_embed_cache_get(st_embed_cache *c, const char *text, size_t len, float *vec,
                        size_t *n_tokens);
/* Keep text[len]'s vector (a text already held, or one larger than the
 * whole cache, is left as it is). */
void st_embed_cache_put(st_embed_cache *c, const char *text, size_t len, const float *vec,
                        size_t n_tokens);

/* What it holds now: entries and bytes. */
size_t st_embed_cache_count(const st_embed_cache *c);
size_t st_embed_cache_bytes(const st_embed_cache *c);

#endif
