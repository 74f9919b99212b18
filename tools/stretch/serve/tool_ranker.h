/*
 * tools/stretch/serve/tool_ranker.h - `stretch serve --tool-retriever`:
 * the tools of a request a retriever ranks best for its conversation, so
 * that the model is shown tool_top_k of them instead of every one.
 */
#ifndef ST_CLI_SERVE_TOOL_RANKER_H
#define ST_CLI_SERVE_TOOL_RANKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <stretch/stretch.h>
#include <uv.h>

#include "openai_request.h"

typedef struct st_tool_ranker st_tool_ranker;

/* The retriever of a strategy manifest (its `retriever:` block; an
 * `index:` in it is not used), checked by opening it once; with
 * `rerank:`, the manifest opened as an engine (its model re-scores, and
 * that engine reads the manifest whole, `index:` included). with_names:
 * a tool is found by "name: description", else by its description.
 * NULL with msg when the manifest cannot serve. */
st_tool_ranker *st_tool_ranker_open(const char *manifest, bool with_names, uint32_t n_threads,
                                    char *msg, size_t size);
void st_tool_ranker_close(st_tool_ranker *t);

/* The k tools of req ranked best for `query`, best first: indices into
 * req's tools in keep[], their retriever scores in scores[] (NAN for
 * those added after the retriever's hits ran out, in the request's order),
 * *n_keep = min(k, tools). Any thread. */
st_status st_tool_ranker_pick(st_tool_ranker *t, const st_gen_request *req, const char *query,
                              size_t k, size_t *keep, float *scores, size_t *n_keep,
                              st_error *err);

/* Tool lists indexed so far (a list seen again is not), for /metrics. */
uint64_t st_tool_ranker_lists_indexed(st_tool_ranker *t);

#endif
