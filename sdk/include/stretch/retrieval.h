/*
 * stretch/retrieval.h - the host API for retrieval (since 1.3): build, save
 * and load a retriever's index, query it, and render hits into a prompt.
 * `stretch retrieve`, retrieval-augmented `stretch run` and `stretch eval
 * retrieval` use this and nothing private. The retriever is the plugin a
 * strategy manifest's `retriever:` block names (the plugin's side of the
 * contract is stretch/retriever.h); docs/retrieval.md describes the block,
 * the template and the files an index is saved in.
 *
 * A retriever handle comes either from st_retriever_open (the strategy's
 * retriever alone: no model is read, for indexing and querying) or from
 * st_engine_retriever (the one an engine holds, for retrieval-augmented
 * generation).
 *
 * Threading: one thread at a time per handle. Strings in results are the
 * result's; free results with st_retrieval_free and prompts with st_free.
 */
#ifndef STRETCH_RETRIEVAL_H
#define STRETCH_RETRIEVAL_H

#include "stretch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct st_retriever st_retriever;

/* The hits put into the prompt when a strategy's `retriever:` block has no
 * `top_k`. */
#define ST_RETRIEVER_DEFAULT_TOP_K 3

/* Do not load the strategy's `index:` (to build a new index). */
#define ST_RETRIEVER_NO_INDEX 1u

/* Open the retriever a strategy names, with its validated parameters, and
 * load the strategy's `index:` when it has one (unless flags has
 * ST_RETRIEVER_NO_INDEX). opts: plugin_dirs and log are honoured (may be
 * NULL). A strategy without a retriever is ST_E_INVALID naming the file. */
ST_API st_status st_retriever_open(const char *strategy_path, const st_engine_options *opts,
                                   uint32_t flags, st_retriever **out, st_error *err);
ST_API void st_retriever_close(st_retriever *r);

/* The retriever of an engine's strategy (its `index:` loaded when the
 * manifest names one), or NULL when the strategy has none. Owned by the
 * engine: valid until st_engine_close. */
ST_API st_retriever *st_engine_retriever(st_engine *e);

/* The plugin's name, the strategy's top_k (ST_RETRIEVER_DEFAULT_TOP_K when
 * unset), the index the strategy named (NULL when none). */
ST_API const char *st_retriever_name(const st_retriever *r);
ST_API uint32_t st_retriever_top_k(const st_retriever *r);
ST_API const char *st_retriever_index_path(const st_retriever *r);
/* The retriever block's `rerank:` (since 1.4): how many of the plugin's
 * best hits a query re-scores with the strategy's model, 0 when none.
 * Re-ranking needs the model: on a handle from st_retriever_open a query
 * then answers ST_E_UNAVAILABLE; open the strategy with st_engine_open and
 * query st_engine_retriever. */
ST_API uint32_t st_retriever_rerank(const st_retriever *r);
/* Documents in the index. */
ST_API uint64_t st_retriever_count(const st_retriever *r);

/* Add one document. Its text is kept beside the index (so hits can be
 * quoted in a prompt) and handed to the plugin. */
ST_API st_status st_retriever_add(st_retriever *r, const char *id, size_t id_len,
                                  const char *text, size_t text_len, st_error *err);
/* Add n documents at once (since 1.5), as n calls of st_retriever_add
 * would. A plugin with `add_batch` (embedding, hybrid) embeds them
 * together, many times faster than one by one, and on failure adds none;
 * others get one `add` each, and on failure keep those before the one
 * that failed. */
ST_API st_status st_retriever_add_batch(st_retriever *r, size_t n, const char *const *ids,
                                        const size_t *id_lens, const char *const *texts,
                                        const size_t *text_lens, st_error *err);

/* Save the index: the plugin writes `path` in its own format; the host
 * writes the documents' texts to `path`.texts (docs/retrieval.md). */
ST_API st_status st_retriever_save(st_retriever *r, const char *path, st_error *err);
/* Load an index saved by st_retriever_save: the plugin reads `path`
 * (refusing a truncated, corrupt or foreign file with a message naming it),
 * then the host reads `path`.texts and checks that it lists the same
 * documents. An index without a .texts file loads with ids only. On failure
 * the current index is kept. */
ST_API st_status st_retriever_load(st_retriever *r, const char *path, st_error *err);

/* One hit. */
typedef struct st_retrieved {
    uint32_t struct_size; /* the size the library filled in */
    uint64_t doc;         /* index in insertion order */
    float score;          /* the plugin's score; higher is better */
    const char *id;       /* NUL-terminated copy of the id */
    size_t id_len;
    const char *text;     /* the document's text; NULL when the index has none */
    size_t text_len;
} st_retrieved;

typedef struct st_retrieval st_retrieval;

/* Up to k hits for `query`, best first. With `rerank: N` the plugin's best
 * max(k, N) are fetched, the best N re-ordered by the model's
 * log-likelihood of the query given each document (their score; the rest
 * follow at the lowest of those), and the first k returned. */
ST_API st_status st_retriever_query(st_retriever *r, const char *query, size_t len, size_t k,
                                    st_retrieval **out, st_error *err);
ST_API size_t st_retrieval_count(const st_retrieval *h);
/* NULL past the end. */
ST_API const st_retrieved *st_retrieval_at(const st_retrieval *h, size_t i);
ST_API void st_retrieval_free(st_retrieval *h);

/* The prompt for `query` with `hits` put in through the strategy's
 * `template:` (or the default one; docs/retrieval.md): {documents} becomes
 * each hit as "[rank] id\ntext\n\n", {query} the query. *prompt is
 * NUL-terminated; st_free it. */
ST_API st_status st_retriever_render(const st_retriever *r, const char *query,
                                     const st_retrieval *hits, char **prompt, st_error *err);

#ifdef __cplusplus
}
#endif
#endif
