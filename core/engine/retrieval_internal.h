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
st_status st_retrieval_attach(const st_strategy *s, st_instance *in, st_retriever **out,
                              st_error *err);

#endif
