/*
 * tools/stretch/serve/server.h - `stretch serve`: the pieces of the
 * OpenAI-compatible HTTP server (and its msgpack-RPC listener) and how
 * they share state.
 *
 * Threads: one libuv loop thread owns every socket, timer and the
 * connection structs; one runner thread per served model owns that
 * model's engine and runs up to `parallel` requests as its sequences,
 * stepped together. A job (one request) is the only thing both touch: the
 * loop creates it and queues it; the runner fills its output under its
 * lock and wakes the loop (uv_async_send), which writes what is there to
 * the socket. A client that goes away sets the job's cancel flag, which
 * the runner sees at the next step.
 */
#ifndef ST_CLI_SERVE_SERVER_H
#define ST_CLI_SERVE_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <stretch/stretch.h>
#include <uv.h>

#include "openai_request.h"

/* --tool-format MODEL=FORMAT may be given this many times. */
#define ST_SERVE_MAX_TOOL_FORMATS 16

/* What POST /slots/ID?action= asks (st_job.slot_action). */
enum { ST_SLOT_SAVE = 1, ST_SLOT_RESTORE, ST_SLOT_ERASE };

typedef struct st_server_config {
    const char *host;          /* default 127.0.0.1 */
    int port;                  /* default 8080; 0 = any free port (printed) */
    const char *manifests_dir; /* each *.yaml is a model named by its stem */
    uint32_t parallel;         /* requests generating at once per model (sequences);
                                  0 = each manifest's `parallel:` */
    const char *api_key;       /* NULL = no authentication */
    size_t max_body;           /* bytes; a larger body is 413 */
    uint32_t max_queue;        /* requests waiting for a sequence; beyond: 429 */
    uint32_t header_timeout_ms;/* a request's (and an idle keep-alive) deadline: 408 */
    uint32_t shutdown_timeout_ms; /* after SIGINT/SIGTERM, then running jobs are cancelled */
    uint32_t n_threads;        /* per engine; 0 = the manifest's */
    const char *slot_save_path; /* --slot-save-path: where slot files go; NULL = none */
    /* Sentence encoders served on /v1/embeddings: "NAME=GGUF" or "GGUF"
     * (named by the file's stem). */
    const char **embedding_models;
    uint32_t n_embedding_models;
    /* Each encoder's cache of recent vectors by text (embed_cache.h), in
     * bytes; 0: none. */
    size_t embedding_cache_bytes;
    /* Function calling: the strategy manifest whose retriever chooses the
     * tools a chat request's model is shown (NULL: all of them), how many
     * (a request's tool_top_k overrides), found by name and description
     * or by description alone. */
    const char *tool_retriever;
    uint32_t tool_top_k;
    bool tool_text_names;
    /* How tools and calls are written for the model (tool_calls.h's
     * ST_TOOL_FORMAT_*): tool_format, or for a model that one of
     * tool_format_models ("MODEL=FORMAT", --tool-format) names, its own. */
    int tool_format;
    const char *tool_format_models[ST_SERVE_MAX_TOOL_FORMATS];
    int tool_format_of[ST_SERVE_MAX_TOOL_FORMATS];
    uint32_t n_tool_formats;
} st_server_config;

/* The tool format of the served model `model` (its manifest's stem). */
int st_serve_tool_format(const st_server_config *cfg, const char *model);

typedef struct st_server st_server;
typedef struct st_conn st_conn;

typedef struct st_rpc_conn st_rpc_conn;

/* One request between the loop and a model runner. */
typedef struct st_job {
    st_server *srv;
    st_conn *conn;             /* loop thread only; NULL once the client left */
    /* A msgpack-RPC job (rpc.c) answers on `rpc` instead, in msgpack
     * frames for request `rpc_msgid`; tokenize_only asks the runner for the
     * prompt's ids and nothing else. */
    st_rpc_conn *rpc;
    bool is_rpc;
    uint32_t rpc_msgid;
    bool tokenize_only;
    bool tokenize_special;
    bool tokenize_bos;         /* /tokenize: the BOS a text completion gets */
    bool detokenize_only;      /* /detokenize: req.prompt_ids as text */
    bool template_only;        /* /apply-template: the chat's prompt as text */
    bool props_only;           /* GET /props: the model's properties */
    /* POST /slots/ID: save, restore or erase sequence slot_id's cached
     * prompt (slot_file: the file's path in --slot-save-path, owned). */
    int slot_action;           /* ST_SLOT_*; 0: not a slot job */
    uint32_t slot_id;
    char *slot_file;
    st_gen_request req;
    st_embed_request *embed;   /* a /v1/embeddings or /v1/rerank job (embed_runner.c),
                                  else NULL */
    bool keep_alive;
    bool keep_alive_asked;     /* the request's own (keep_alive is false for a stream) */
    char id[40];               /* "chatcmpl-..." / "cmpl-..." */
    int64_t created;
    double t_queued;
    atomic_int cancel;         /* the client left or the server is stopping */
    atomic_int running;        /* a runner took it */
    uv_mutex_t lock;           /* guards out*, done */
    char *out;                 /* HTTP bytes not yet handed to the socket */
    size_t out_len, out_cap;
    bool done;                 /* the runner will not touch the job again */
    /* A completion's answers, its prompts x n (generate_job.c). Once the
     * job is admitted only its model's runner thread touches these. */
    uint32_t n_choices;        /* 0 until st_job_prepare */
    uint32_t next_choice;      /* the next to hand out */
    uint32_t choices_ended;
    struct st_job_run **pending; /* [n_choices]: prepared, not yet handed out */
    /* Each prompt's retrieval hits (a chat's: [0]), shared by its answers;
     * owned, NULL where nothing was retrieved. */
    struct st_retrieval **prompt_hits;
    uint32_t n_prompt_hits;
    void *choices;             /* json_t array of the finished answers (not streamed) */
    void *retrieved;           /* json_t: one answer's retrieval hits, or NULL */
    void *tool_hits;           /* json_t: the tools --tool-retriever chose, or NULL */
    struct st_tool_pick *tool_pick; /* that choice, made before a runner took the job
                                       (tool_pick.h), or NULL */
    uint64_t usage_prompt, usage_completion, usage_cached;
    bool headers_sent;         /* streamed: the HTTP head is out */
    int fail_status;           /* the first answer that failed, 0 when none */
    const char *fail_param;
    char fail_msg[512];
    bool close_after;          /* the response has no length: close when written */
    struct st_job *next;       /* the server's list of live jobs (loop thread) */
    bool tracked;              /* in that list */
    struct st_job *queue_next; /* its runner's wait queue (queue_lock) */
} st_job;

/* The jobs waiting for one model runner or encoder, first come first
 * served (guarded by the server's queue_lock; job_queue.c). */
typedef struct st_job_queue {
    st_job *head, *tail;
    uint32_t n;
} st_job_queue;

void st_job_queue_push(st_job_queue *q, st_job *job);
/* The first job, marked running; NULL when none waits. */
st_job *st_job_queue_pop(st_job_queue *q);

/* Counters for /metrics; updated from any thread. */
typedef struct st_server_metrics {
    atomic_uint_fast64_t requests, errors, prompt_tokens, generated_tokens;
    atomic_uint_fast64_t decode_us, prefill_us, ttft_us, completions;
    atomic_uint_fast64_t embedded_texts, embedded_tokens, embedding_batches;
    atomic_uint_fast64_t embedding_cache_hits;
    atomic_uint_fast64_t cached_prompt_tokens; /* taken from a sequence's cache */
    atomic_uint_fast64_t retrieval_queries;    /* lookups of retrieval-augmented prompts */
    atomic_uint_fast64_t tool_retrievals;      /* requests whose tools --tool-retriever chose */
} st_server_metrics;

struct st_server {
    st_server_config cfg;
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_async_t wake;           /* a runner produced output */
    uv_signal_t sigint, sigterm;
    uv_timer_t shutdown_timer;
    bool stopping;
    double stop_started;       /* when SIGINT/SIGTERM came (st_serve_now) */
    st_conn *conns;            /* every open connection (loop thread) */
    /* msgpack-RPC (rpc.c, loop thread). */
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } rpc_listener;
    bool rpc_on, rpc_is_pipe;
    const char *rpc_path;
    st_rpc_conn *rpc_conns;
    st_job *jobs;              /* every job not yet freed (loop thread) */

    /* The model runners (model_runner.c), one per model asked for, and
     * their queues; all guarded by queue_lock. */
    uv_mutex_t queue_lock;
    struct st_runner *runners;
    struct st_embedder *embedders; /* embed_runner.c: fixed after start-up */
    struct st_tool_ranker *tool_ranker; /* --tool-retriever (tool_ranker.c), or NULL */
    uint32_t queue_len;        /* jobs waiting for a sequence, all models */
    uint32_t running;          /* jobs on a sequence, all models */
    bool quit;                 /* runners exit */

    /* The manifests directory's watcher (manifest_watch.c, loop thread). */
    uv_fs_event_t watcher;
    uv_timer_t watch_timer;
    char **pending_stems;
    uint32_t n_pending_stems;

    st_server_metrics metrics;
};

/* A connection: one socket and its HTTP parser (loop thread only). */
struct st_conn {
    st_server *srv;
    uv_tcp_t tcp;
    uv_timer_t timer;          /* header deadline */
    http_parser parser;
    char *url;
    size_t url_len;
    char *body;
    size_t body_len;
    char header_field[32];     /* the current header's name, lowercased, cut */
    bool header_field_done;
    char *authorization;       /* the Authorization header's value */
    bool expect_continue;
    bool in_request;           /* a request started and has not fully arrived */
    bool refused;              /* a response ended this connection: ignore more input */
    bool close_after_write;
    bool closing;
    int pending_writes;
    int handles_closed;        /* of tcp and timer; freed at 2 */
    st_job *job;               /* the request generating for this connection */
    st_conn *next;
};

/* http_conn.c */
int st_http_listen(st_server *srv);
/* Queue `len` bytes (copied) on the socket. */
void st_conn_write(st_conn *c, const char *bytes, size_t len);
/* Close once every queued write is done. */
void st_conn_end(st_conn *c);
void st_conn_close(st_conn *c);
/* The connection is ready for its next request (keep-alive). */
void st_conn_request_done(st_conn *c, bool keep_alive);

/* http_response.c: whole responses. */
char *st_http_response(int status, const char *content_type, const char *body,
                       size_t body_len, bool keep_alive, const char *extra_headers,
                       size_t *out_len);
/* An OpenAI-style error body: {"error": {"message", "type", "param", "code"}}. */
char *st_http_error(int status, const char *message, const char *param, bool keep_alive,
                    const char *extra_headers, size_t *out_len);
void st_conn_send_error(st_conn *c, int status, const char *message, const char *param,
                        bool keep_alive);
const char *st_http_reason(int status);

/* routes.c: a whole request arrived on c. */
void st_route_request(st_conn *c);

/* models_dir.c */
/* Every *.yaml stem in dir, sorted; *n set. NULL with *n = 0 on error. */
char **st_models_list(const char *dir, size_t *n);
void st_models_free(char **stems, size_t n);
/* Whether `stem` is a name a model may have (letters, digits, - _ ., not
 * starting with a dot). */
bool st_models_stem_ok(const char *stem);
/* The manifest path of a served model, or NULL when `stem` is not one. */
char *st_models_resolve(const char *dir, const char *stem);

/* model_runner.c: one thread per served model, running its jobs as
 * sequences of one engine. */
/* Queue a job for its model's runner (started on first use); false (and
 * nothing queued) when the queue is full. */
bool st_job_enqueue(st_server *srv, st_job *job);
/* Stop and join every runner (they are idle by then). */
void st_runners_stop(st_server *srv);
/* The manifest of `stem` was added, changed or removed: its runner
 * (started if need be) reloads it as soon as no request runs on it; a
 * manifest that fails to load leaves the old engine serving. */
void st_runner_manifest_changed(st_server *srv, const char *stem);
/* Append {"model", "message"} for every model whose manifest failed to
 * load last time it was read (a jansson array). */
void st_runners_errors(st_server *srv, void *json_array);
/* How many models' engines have idle work left (st_engine_idle_step:
 * answers being prefilled again for the prefix cache). */
uint32_t st_runners_idle_work(st_server *srv);

/* rpc.c: the msgpack-RPC listener, `spec` unix:PATH or tcp:PORT. */
int st_rpc_listen(st_server *srv, const char *spec);
/* Stop accepting, and with close_conns close every RPC connection whose
 * writes are done; true when none is left open. */
bool st_rpc_stop(st_server *srv, bool close_conns);
void st_rpc_write(st_rpc_conn *c, const char *bytes, size_t len);
/* [1, msgid, {"code", "message", "param"}, nil] (message cleaned to UTF-8),
 * malloc'd, *len bytes; NULL when out of memory. */
char *st_rpc_error_frame(uint32_t msgid, int code, const char *message, const char *param,
                         size_t *len);

/* embed_runner.c: one thread per sentence encoder, answering
 * /v1/embeddings and /v1/rerank jobs in order. */
/* Open every --embedding-model (before the loop runs); false after
 * printing why one cannot be served. */
bool st_embedders_open(st_server *srv);
/* Whether `name` is a served encoder. */
bool st_embedder_exists(const st_server *srv, const char *name);
/* The name of encoder i (in the order given), NULL past the last. */
const char *st_embedder_name_at(const st_server *srv, size_t i);
/* Queue an embeddings job; false (nothing queued) when --max-queue jobs
 * already wait for that encoder. */
bool st_embed_enqueue(st_server *srv, st_job *job);
/* Append the encoders to /v1/models' data (a jansson array). */
void st_embedders_list(const st_server *srv, void *json_array);
/* Stop and join the encoders' threads and close the encoders. */
void st_embedders_stop(st_server *srv);

/* similarity_json.c: a /v1/rerank job's answer from its n vectors of dim
 * (the query's first), named `model`; the job is done. */
void st_rerank_respond(st_job *job, const char *model, const float *vecs, uint32_t dim,
                       size_t tokens);
/* The same for a /v1/score job (text_1's vectors, then text_2's). */
void st_score_respond(st_job *job, const char *model, const float *vecs, uint32_t dim,
                      size_t tokens);

/* manifest_watch.c */
void st_watch_start(st_server *srv);
void st_watch_stop(st_server *srv);

/* generate_job.c: one job's request on an engine and its response. */
st_job *st_job_new(st_server *srv, st_conn *conn, st_gen_request *req, bool keep_alive);
/* An embeddings job for `req` (which it owns from then on); NULL when out
 * of memory (req is then the caller's still). */
st_job *st_job_new_embed(st_server *srv, st_conn *conn, st_embed_request *req, bool keep_alive);
/* Loop thread: a queued job joins the server's list of live jobs. */
void st_jobs_track(st_server *srv, st_job *job);
void st_job_free(st_job *job);
/* POST /apply-template (llama-server's): the prompt the job's chat request
 * would run, prepared as it would be (retrieval, the tools shown, a forced
 * call's opening tag) and answered as text, {"prompt"}; the job is done. */
void st_job_template(st_job *job, st_engine *e);
/* A tokenize-only job's answer (msgpack-RPC); the job is done. */
/* A tokenize job's answer: msgpack-RPC's ids, or /tokenize's JSON (with the
 * model's context). */
void st_job_tokens(st_job *job, const int32_t *ids, size_t n, uint32_t n_ctx);
/* The first of n token ids outside a vocabulary of n_vocab, or SIZE_MAX. */
size_t st_first_bad_token(const int32_t *ids, size_t n, uint32_t n_vocab);
/* /detokenize's answer. */
void st_job_detokenized(st_job *job, const char *text, size_t len);
/* The n bytes at s as a jansson string, each byte that does not start a
 * valid UTF-8 character (or is NUL) made '?' (st_utf8_clean_dup); NULL
 * when out of memory. */
void *st_json_clean(const char *s, size_t n);
/* A whole 200 answer whose body is the jansson value `value` (taken; NULL,
 * or one that cannot be written, is a 500 "out of memory"); the job is
 * done. */
void st_job_respond_value(st_job *job, void *value);
/* A whole 200 answer with a JSON body (len bytes); the job is done. */
void st_job_respond_json(st_job *job, const char *body, size_t len);
/* An embed job's msgpack-RPC answer, {"embeddings": [[float32 ...], ...],
 * "usage": {...}}, for n vectors of dim; the job is done. */
void st_job_embeddings_rpc(st_job *job, const float *vecs, size_t n, uint32_t dim,
                           size_t tokens);
/* An answer that is an error, written whole; the job is done. */
void st_job_fail(st_job *job, int status, const char *message, const char *param);
typedef struct st_job_run st_job_run;
/* Tokenize and check each of the job's answers (its prompts x n) against
 * the engine; false when the request was refused (its error response is
 * written). Then st_job_next_run hands them out one by one (NULL when all
 * are out); st_job_abandon ends those never started (a cancel). */
bool st_job_prepare(st_job *job, st_engine *e);
st_job_run *st_job_next_run(st_job *job);
void st_job_abandon(st_job *job);
/* What st_sequence_start needs. */
void st_job_run_args(st_job_run *r, const int32_t **ids, size_t *n_ids,
                     const st_generate_params **gp, st_token_fn *on_token, void **user);
/* An "auto" answer that opened a tool call goes on as a forced call:
 * true when r was set up to continue on its sequence (st_job_run_args
 * again, then st_sequence_start); false when its generation has ended. */
bool st_job_run_continues(st_job_run *r, st_engine *e, const st_generate_stats *stats);
/* One answer's generation ended: write its end (streamed) or keep it,
 * and once every answer of the job has ended, the response's end; frees
 * r. */
void st_job_run_end(st_job_run *r, st_status st, const st_generate_stats *stats,
                    const st_error *err);
/* Loop thread: hand every job's output to its socket, free finished jobs. */
void st_jobs_drain(st_server *srv);
/* Loop thread: the client of c left; its job is cancelled. */
void st_job_detach(st_job *job);
/* Cancel every queued or running job (shutdown). */
void st_jobs_cancel_all(st_server *srv);

double st_serve_now(void);

#endif
