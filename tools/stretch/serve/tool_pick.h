/*
 * tools/stretch/serve/tool_pick.h - the tools `serve --tool-retriever`
 * shows a chat request, chosen before its model's runner takes the job.
 *
 * Why not on the runner: ranking a tool list the server has not seen
 * indexes it first (about a second for MetaTool's 199 tools with MiniLM),
 * and the runner thread steps every answer its model is generating, so
 * each of them would stop for that second. A request's tools (HTTP in
 * routes.c, msgpack-RPC in rpc.c) are chosen on libuv's thread pool
 * instead, and the job is queued for its model once they are; the runner
 * then only reads the choice, or makes it when it could not be started.
 */
#ifndef ST_CLI_SERVE_TOOL_PICK_H
#define ST_CLI_SERVE_TOOL_PICK_H

#include <stdbool.h>
#include <stddef.h>

#include "server.h"

typedef struct st_tool_pick st_tool_pick;

/* Whether req's tools are to be chosen, and then the query (the last
 * user message) and how many to keep. */
bool st_tool_pick_wanted(const st_server *srv, const st_gen_request *req, const char **query,
                         size_t *k);

/* Choose job's tools on the thread pool when they are to be chosen
 * (st_tool_pick_wanted), then call then(job) on the loop thread (the
 * client may have left: job->conn or job->rpc is NULL then). False when
 * there is nothing to choose, or the choice could not start (out of
 * memory: the runner makes it). */
bool st_tool_pick_start(st_job *job, void (*then)(st_job *job));

/* On the runner: the k tools for query (st_tool_ranker_pick's contract),
 * as chosen before, or chosen now. */
st_status st_tool_pick_take(st_job *job, const char *query, size_t k, size_t *keep,
                            float *scores, size_t *n_keep, st_error *err);

void st_tool_pick_free(st_tool_pick *p);

#endif
