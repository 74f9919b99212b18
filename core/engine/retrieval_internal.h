/*
 * core/engine/retrieval_internal.h - how the engine hands its retriever
 * plugin to the retrieval handle (retrieval.c).
 */
#ifndef ST_CORE_RETRIEVAL_INTERNAL_H
#define ST_CORE_RETRIEVAL_INTERNAL_H

#include <stretch/retrieval.h>

#include "manifest.h"
#include "registry.h"

/* A handle borrowing `in` (the engine's retriever) and the strategy; loads
 * the strategy's `index:` when it names one. */
st_status st_retrieval_attach(st_engine *e, const st_strategy *s, st_instance *in,
                              st_retriever **out, st_error *err);

/* Re-rank hits[0..n) by the log-likelihood of the query given each hit's
 * text under the engine's model (retrieval_rerank.c); `tmpl` NULL = the
 * default template. Every hit needs its text. Scores become the
 * log-likelihoods, best first, ties in the order given. */
st_status st_retrieval_rerank(st_engine *e, const char *tmpl, const char *query, size_t len,
                              st_retrieved *hits, size_t n, st_error *err);

#endif
