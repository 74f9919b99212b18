/*
 * tools/stretch/serve/generate_job.c - one completion job: its request
 * tokenized and checked against the model's engine, its tokens turned into
 * the HTTP response (whole, or as server-sent events) in the job's output
 * for the loop thread to send, and the loop thread's side of jobs (drain,
 * detach, free). model_runner.c decides when a job runs.
 */
#include "../stop_strings.h"
#include "logprobs_json.h"
#include "msgpack_json.h"
#include "server.h"
#include "tool_calls.h"
#include "tool_pick.h"
#include "utf8_text.h"

#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stretch/retrieval.h>
#include <stretch/stretch.h>

double st_serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* -- the job's output, shared with the loop thread -- */

static void job_emit(st_job *job, const char *bytes, size_t len)
{
    uv_mutex_lock(&job->lock);
    if (job->out_len + len > job->out_cap) {
        size_t cap = (job->out_len + len) * 2 + 256;
        char *grown = realloc(job->out, cap);
        if (grown) {
            job->out = grown;
            job->out_cap = cap;
        }
    }
    if (job->out_len + len <= job->out_cap) {
        memcpy(job->out + job->out_len, bytes, len);
        job->out_len += len;
    }
    uv_mutex_unlock(&job->lock);
    uv_async_send(&job->srv->wake);
}

/* After this the runner never touches the job: the loop frees it. */
static void job_finish(st_job *job, bool close_after)
{
    uv_async_t *wake = &job->srv->wake;
    uv_mutex_lock(&job->lock);
    job->close_after = close_after;
    job->done = true;
    uv_mutex_unlock(&job->lock);
    uv_async_send(wake);
}

/* -- msgpack-RPC frames (docs/server.md) -- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void emit_frame(st_job *job, msgpack_sbuffer *sb)
{
    job_emit(job, sb->data, sb->size);
    msgpack_sbuffer_destroy(sb);
}

static void rpc_error(st_job *job, int status, const char *message, const char *param)
{
    size_t len = 0;
    char *frame = st_rpc_error_frame(job->rpc_msgid, status, message, param, &len);
    if (frame)
        job_emit(job, frame, len);
    free(frame);
}

/* The start of the job's reply, [1, msgid, nil, result]: the result next. */
static void reply_begin(st_job *job, msgpack_sbuffer *sb, msgpack_packer *pk)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(pk, 4);
    msgpack_pack_int(pk, 1);
    msgpack_pack_uint32(pk, job->rpc_msgid);
    msgpack_pack_nil(pk);
}

/* [2, "token", [msgid, text]] */
static void rpc_token(st_job *job, const char *text, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_int(&pk, 2);
    pack_str(&pk, "token", 5);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_uint32(&pk, job->rpc_msgid);
    pack_str(&pk, text, len);
    emit_frame(job, &sb);
}

/* A stored id or text as a reply's string: JSON and the RPC clients'
 * decoders take UTF-8 only, and an index holds whatever files it read. */
static void pack_clean(msgpack_packer *pk, const char *s, size_t n)
{
    char *c = st_utf8_clean_dup(s, n);
    pack_str(pk, c ? c : "", c ? n : 0);
    free(c);
}

void *st_json_clean(const char *s, size_t n)
{
    char *c = st_utf8_clean_dup(s, n);
    json_t *v = c ? json_stringn(c, n) : NULL;
    free(c);
    return v;
}

/* The hits as `stretch run --json` lists them: [{rank, doc, id, score,
 * text}], text null when the index keeps none. */
static void pack_hits(msgpack_packer *pk, const st_retrieval *hits)
{
    size_t n = st_retrieval_count(hits);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        const st_retrieved *h = st_retrieval_at(hits, i);
        msgpack_pack_map(pk, 5);
        pack_str(pk, "rank", 4);
        msgpack_pack_uint64(pk, i + 1);
        pack_str(pk, "doc", 3);
        msgpack_pack_uint64(pk, h->doc);
        pack_str(pk, "id", 2);
        pack_clean(pk, h->id, h->id_len);
        pack_str(pk, "score", 5);
        msgpack_pack_double(pk, h->score);
        pack_str(pk, "text", 4);
        if (h->text)
            pack_clean(pk, h->text, h->text_len);
        else
            msgpack_pack_nil(pk);
    }
}

static json_t *hits_json(const st_retrieval *hits)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < st_retrieval_count(hits); i++) {
        const st_retrieved *h = st_retrieval_at(hits, i);
        json_t *o = json_object();
        /* json_object_set_new takes each value's reference even when it
         * fails, so a NULL from an allocation only leaves a key out. */
        if (!o || json_object_set_new(o, "rank", json_integer((json_int_t)(i + 1))) ||
            json_object_set_new(o, "doc", json_integer((json_int_t)h->doc)) ||
            json_object_set_new(o, "id", st_json_clean(h->id, h->id_len)) ||
            json_object_set_new(o, "score", json_real(h->score)) ||
            json_object_set_new(o, "text", h->text ? st_json_clean(h->text, h->text_len)
                                                   : json_null())) {
            json_decref(o);
            json_decref(a);
            return NULL;
        }
        if (json_array_append_new(a, o)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* [1, msgid, nil, {"text", "finish_reason", "usage": {...}[, "retrieved":
 * [...]][, "tool_calls": [...]]}]: an answer that calls tools has them
 * as the HTTP API's message does, and its content (the text before the
 * calls) as text. */
static void rpc_result(st_job *job, const char *text, size_t len, const char *finish,
                       uint32_t n_prompt, uint32_t n_generated, const st_retrieval *hits,
                       const json_t *calls)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    reply_begin(job, &sb, &pk);
    msgpack_pack_map(&pk, 3 + (hits != NULL) + (calls != NULL));
    pack_str(&pk, "text", 4);
    pack_str(&pk, text, len);
    pack_str(&pk, "finish_reason", 13);
    pack_str(&pk, finish, strlen(finish));
    pack_str(&pk, "usage", 5);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "prompt_tokens", 13);
    msgpack_pack_uint32(&pk, n_prompt);
    pack_str(&pk, "completion_tokens", 17);
    msgpack_pack_uint32(&pk, n_generated);
    pack_str(&pk, "total_tokens", 12);
    msgpack_pack_uint32(&pk, n_prompt + n_generated);
    if (hits) {
        pack_str(&pk, "retrieved", 9);
        pack_hits(&pk, hits);
    }
    if (calls) {
        pack_str(&pk, "tool_calls", 10);
        st_json_pack_msgpack(&pk, calls);
    }
    emit_frame(job, &sb);
}

void st_job_respond_value(st_job *job, void *value)
{
    json_t *v = value;
    char *body = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!body) {
        st_job_fail(job, 500, "out of memory building the response", NULL);
        return;
    }
    st_job_respond_json(job, body, strlen(body));
    free(body);
}

void st_job_tokens(st_job *job, const int32_t *ids, size_t n, uint32_t n_ctx)
{
    if (!job->is_rpc) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++)
            json_array_append_new(a, json_integer(ids[i]));
        st_job_respond_value(job, a ? json_pack("{s:o, s:I, s:I}", "tokens", a, "count",
                                              (json_int_t)n, "max_model_len",
                                              (json_int_t)n_ctx)
                                  : NULL);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    reply_begin(job, &sb, &pk);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_int32(&pk, ids[i]);
    emit_frame(job, &sb);
    job_finish(job, false);
}

size_t st_first_bad_token(const int32_t *ids, size_t n, uint32_t n_vocab)
{
    for (size_t i = 0; i < n; i++)
        if ((uint32_t)ids[i] >= n_vocab)
            return i;
    return SIZE_MAX;
}

void st_job_detokenized(st_job *job, const char *text, size_t len)
{
    st_job_respond_value(job, json_pack("{s:o}", "prompt", st_json_clean(text, len)));
}

void st_job_respond_json(st_job *job, const char *body, size_t len)
{
    size_t n = 0;
    char *resp = st_http_response(200, "application/json", body, len, job->keep_alive, NULL,
                                  &n);
    if (resp)
        job_emit(job, resp, n);
    free(resp);
    job_finish(job, !job->keep_alive || !resp);
}

void st_job_embeddings_rpc(st_job *job, const float *vecs, size_t n, uint32_t dim,
                           size_t tokens)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    reply_begin(job, &sb, &pk);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "embeddings", 10);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_array(&pk, dim);
        for (uint32_t d = 0; d < dim; d++)
            msgpack_pack_float(&pk, vecs[i * dim + d]);
    }
    pack_str(&pk, "usage", 5);
    msgpack_pack_map(&pk, 2);
    pack_str(&pk, "prompt_tokens", 13);
    msgpack_pack_uint64(&pk, tokens);
    pack_str(&pk, "total_tokens", 12);
    msgpack_pack_uint64(&pk, tokens);
    emit_frame(job, &sb);
    job_finish(job, false);
}

void st_job_fail(st_job *job, int status, const char *message, const char *param)
{
    atomic_fetch_add(&job->srv->metrics.errors, 1);
    if (job->is_rpc) {
        rpc_error(job, status, message, param);
        job_finish(job, false);
        return;
    }
    size_t len = 0;
    char *resp = st_http_error(status, message, param, job->keep_alive, NULL, &len);
    if (resp)
        job_emit(job, resp, len);
    free(resp);
    job_finish(job, !job->keep_alive || !resp);
}

/* -- one generation -- */

typedef struct gen_state {
    st_job *job;
    const st_retrieval *hits;  /* what the prompt was augmented with, or NULL (the job's) */
    char *text;
    size_t len, cap;
    size_t sent;               /* bytes of text already streamed */
    size_t echo_len;           /* bytes of echoed prompt that start the text */
    size_t max_stop;
    bool stopped_by_string;
    bool first_chunk_sent;
    uint32_t index;            /* the answer's place among the job's choices */
    bool first_token_seen;
    uint32_t n_tokens;
    size_t watch_from;         /* where an opening tag may start a tool call, or SIZE_MAX
                                  (text that is not watched: a call's JSON, no tools) */
    const char *watch_tag;     /* what opens it there (tool_calls.h's syntax) */
    size_t tool_at;            /* where the answer opened a tool call, or SIZE_MAX */
    st_engine *engine;         /* for the pieces of log-probability entries */
    st_lp_log lp;              /* the answer's log-probabilities, when asked for */
} gen_state;

/* A choice's "logprobs": what is new since the last chunk, or null. */
static json_t *lp_value(gen_state *g)
{
    if (!g->job->req.logprobs)
        return json_null();
    json_t *v = st_lp_json(g->engine, &g->lp, g->job->req.chat);
    return v ? v : json_null();
}

static void on_logprobs(void *user, int32_t token, float logprob, const int32_t *top_ids,
                        const float *top, size_t n_top)
{
    gen_state *g = user;
    /* Out of memory loses the entry; the answer itself goes on. */
    (void)st_lp_add(&g->lp, token, logprob, top_ids, top, n_top);
}

static json_t *chunk_base(const st_job *job)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", job->id, "object",
                     job->req.chat ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)job->created, "model", job->req.model);
}

static void emit_event(st_job *job, json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!s)
        return;
    size_t n = strlen(s);
    char *ev = malloc(n + 9);
    if (ev) {
        memcpy(ev, "data: ", 6);
        memcpy(ev + 6, s, n);
        memcpy(ev + 6 + n, "\n\n", 2);
        job_emit(job, ev, n + 8);
    }
    free(ev);
    free(s);
}

/* One streamed piece of text (possibly empty), the answer's tool calls
 * (calls, taken), or the last chunk with its finish reason. */
static void emit_chunk(gen_state *g, const char *text, size_t len, const char *finish,
                       json_t *calls)
{
    st_job *job = g->job;
    if (job->is_rpc) {
        json_decref(calls);
        if (len)
            rpc_token(job, text, len);
        return;
    }
    if (!job->headers_sent) {
        static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                   "Cache-Control: no-cache\r\nConnection: close\r\n\r\n";
        job_emit(job, head, sizeof head - 1);
        job->headers_sent = true;
    }
    json_t *choice;
    if (job->req.chat) {
        json_t *delta = json_object();
        if (!g->first_chunk_sent)
            json_object_set_new(delta, "role", json_string("assistant"));
        if (calls)
            json_object_set_new(delta, "tool_calls", calls);
        else if (len || !finish)
            json_object_set_new(delta, "content", json_stringn(text, len));
        choice = json_pack("{s:i, s:o, s:o, s:o}", "index", (int)g->index, "delta", delta,
                           "finish_reason", finish ? json_string(finish) : json_null(),
                           "logprobs", lp_value(g));
    } else {
        choice = json_pack("{s:i, s:s%, s:o, s:o}", "index", (int)g->index, "text", text, len,
                           "finish_reason", finish ? json_string(finish) : json_null(),
                           "logprobs", lp_value(g));
    }
    json_t *chunk = chunk_base(job);
    json_object_set_new(chunk, "choices", json_pack("[o]", choice));
    if (!g->first_chunk_sent && g->hits)
        json_object_set_new(chunk, "retrieved", hits_json(g->hits));
    if (!g->first_chunk_sent && job->tool_hits)
        json_object_set(chunk, "retrieved_tools", job->tool_hits);
    emit_event(job, chunk);
    g->first_chunk_sent = true;
}

static int on_token(void *user, int32_t token, const char *text, size_t len)
{
    gen_state *g = user;
    st_job *job = g->job;
    if (token >= 0)
        g->n_tokens++;
    if (!g->first_token_seen && token >= 0) {
        g->first_token_seen = true;
        atomic_fetch_add(&job->srv->metrics.ttft_us,
                         (uint64_t)((st_serve_now() - job->t_queued) * 1e6));
    }
    if (g->len + len + 1 > g->cap) {
        size_t cap = (g->len + len + 1) * 2;
        char *grown = realloc(g->text, cap);
        if (!grown)
            return 1;
        g->text = grown;
        g->cap = cap;
    }
    memcpy(g->text + g->len, text, len);
    size_t old_len = g->len;
    g->len += len;
    g->text[g->len] = '\0';
    /* An "auto" answer (or the choice after a call) that opens a tool
     * call stops here and goes on as a forced call (st_job_run_continues):
     * its JSON is then generated under the tools' schemas, as llama.cpp's
     * lazy grammars do. */
    if (g->watch_from != SIZE_MAX && g->tool_at == SIZE_MAX && token >= 0) {
        /* A tag this token completes starts after old_len - its length;
         * none starts in the calls before watch_from. */
        size_t from = old_len > 16 ? old_len - 16 : 0;
        if (from < g->watch_from)
            from = g->watch_from;
        size_t at = from + st_tools_find(g->text + from, g->len - from, g->watch_tag);
        if (at < g->len) {
            g->tool_at = at;
            return 1;
        }
    }

    size_t safe = g->len;
    if (g->max_stop) {
        size_t from = old_len >= g->max_stop ? old_len - g->max_stop + 1 : 0;
        /* Stop strings end the answer; an echoed prompt holds none. */
        if (from < g->echo_len)
            from = g->echo_len;
        long at = st_stop_find((const char *const *)g->job->req.stops, g->job->req.n_stops,
                               g->text, g->len, from < g->sent ? g->sent : from);
        if (at >= 0) {
            g->len = (size_t)at;
            g->text[g->len] = '\0';
            g->stopped_by_string = true;
            safe = g->len;
        } else {
            /* Hold back what could still become a stop string, cut at a
             * character boundary so every chunk is whole UTF-8. */
            safe = st_stop_safe_end(g->text, g->len, g->max_stop, g->sent);
        }
    }
    /* What may be a tool call waits for the answer's end (a forced
     * answer is one, all of it). No call starts in what was sent. */
    if (job->req.stream && safe > g->sent) {
        if (job->req.tool_mode == ST_TOOLS_FORCED)
            safe = g->sent;
        else if (job->req.tool_mode == ST_TOOLS_AUTO)
            safe = g->sent + st_tools_text_safe(g->text + g->sent, safe - g->sent);
        /* White space before a call is not the content's (as in the
         * whole answer): it goes out once something else follows it. */
        while (job->req.tool_mode != ST_TOOLS_OFF && safe > g->sent &&
               st_tools_is_blank(g->text[safe - 1]))
            safe--;
    }
    if (job->req.stream && safe > g->sent) {
        emit_chunk(g, g->text + g->sent, safe - g->sent, NULL, NULL);
        g->sent = safe;
    }
    if (g->stopped_by_string || atomic_load(&job->cancel))
        return 1;
    return 0;
}

/* The first failure is the response's. */
static void fail_once(st_job *job, int status, const char *msg, const char *param)
{
    if (job->fail_status)
        return;
    job->fail_status = status;
    job->fail_param = param;
    snprintf(job->fail_msg, sizeof job->fail_msg, "%s", msg);
}

/* Every answer of the job has ended: the response's end, or the first
 * failure's error (an error event once the stream has begun). */
static void job_respond(st_job *job)
{
    json_t *choices = job->choices;
    job->choices = NULL;
    json_t *retrieved = job->retrieved;
    job->retrieved = NULL;
    if (job->fail_status) {
        json_decref(choices);
        json_decref(retrieved);
        if (job->headers_sent && !job->is_rpc) {
            emit_event(job, json_pack("{s:{s:s, s:s}}", "error", "message", job->fail_msg,
                                      "type", "server_error"));
            job_finish(job, true);
        } else {
            st_job_fail(job, job->fail_status, job->fail_msg, job->fail_param);
        }
        return;
    }
    if (job->is_rpc) {
        json_decref(choices);
        json_decref(retrieved);
        job_finish(job, false);
        return;
    }
    json_t *usage = json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens",
                              (json_int_t)job->usage_prompt, "completion_tokens",
                              (json_int_t)job->usage_completion, "total_tokens",
                              (json_int_t)(job->usage_prompt + job->usage_completion),
                              "prompt_tokens_details", "cached_tokens",
                              (json_int_t)job->usage_cached);
    if (job->req.stream) {
        json_decref(choices);
        json_decref(retrieved);
        if (job->req.include_usage) {
            json_t *chunk = chunk_base(job);
            json_object_set_new(chunk, "choices", json_array());
            json_object_set(chunk, "usage", usage);
            emit_event(job, chunk);
        }
        static const char done[] = "data: [DONE]\n\n";
        job_emit(job, done, sizeof done - 1);
        json_decref(usage);
        job_finish(job, true);
        return;
    }
    json_t *resp = json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", job->id, "object",
                             job->req.chat ? "chat.completion" : "text_completion", "created",
                             (json_int_t)job->created, "model", job->req.model, "choices",
                             choices ? choices : json_array(), "usage", usage);
    if (resp && retrieved)
        json_object_set(resp, "retrieved", retrieved);
    if (resp && job->tool_hits)
        json_object_set(resp, "retrieved_tools", job->tool_hits);
    json_decref(retrieved);
    char *body = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
    json_decref(resp);
    size_t n = 0;
    char *http = body ? st_http_response(200, "application/json", body, strlen(body),
                                         job->keep_alive, NULL, &n)
                      : NULL;
    free(body);
    if (!http) {
        st_job_fail(job, 500, "out of memory building the response", NULL);
        return;
    }
    job_emit(job, http, n);
    free(http);
    job_finish(job, !job->keep_alive);
}

/* One more of the job's answers has ended (or was never started). */
static void answer_ended(st_job *job)
{
    if (++job->choices_ended == job->n_choices)
        job_respond(job);
}

/* An answer is complete: its last streamed chunk, or its choice kept for
 * the response; its tokens counted (a prompt's once, however many answers
 * it has). */
static void choice_done(gen_state *g, st_job *job, const st_generate_stats *stats,
                        const char *finish)
{
    /* A chat answer that calls the request's tools (tool_calls.c). */
    size_t content_len = g->len;
    json_t *calls = NULL;
    if (job->req.chat && job->req.tool_mode != ST_TOOLS_OFF) {
        char id_base[64];
        const char *dash = strchr(job->id, '-');
        snprintf(id_base, sizeof id_base, "%s_%u", dash ? dash + 1 : job->id, g->index);
        if ((calls = st_tools_answer_calls(&job->req, g->text, g->len, id_base, &content_len)))
            finish = "tool_calls";
    }
    if (job->is_rpc) {
        /* The notifications held back what might be a call (on_token):
         * the rest of the content goes now, the calls with the result. */
        if (content_len > g->sent)
            rpc_token(job, g->text + g->sent, content_len - g->sent);
        rpc_result(job, g->text ? g->text : "", content_len, finish, stats->n_prompt,
                   g->n_tokens, g->hits, calls);
        json_decref(calls);
        answer_ended(job);
        return;
    }
    if (g->index % job->req.n == 0) {
        job->usage_prompt += stats->n_prompt;
        job->usage_cached += stats->n_cached;
    }
    job->usage_completion += g->n_tokens;
    if (job->req.stream) {
        if (content_len > g->sent)
            emit_chunk(g, g->text + g->sent, content_len - g->sent, NULL, NULL);
        if (calls) {
            size_t k;
            json_t *c;
            json_array_foreach(calls, k, c)
                json_object_set_new(c, "index", json_integer((json_int_t)k));
            emit_chunk(g, "", 0, NULL, calls);
        }
        emit_chunk(g, "", 0, finish, NULL);
        answer_ended(job);
        return;
    }
    json_t *choice;
    if (job->req.chat) {
        /* Content is null when the answer is calls alone, as OpenAI's. */
        json_t *content = calls && !content_len ? json_null()
                                                : json_stringn(g->text ? g->text : "",
                                                               content_len);
        choice = json_pack("{s:i, s:{s:s, s:o}, s:s, s:o}", "index", (int)g->index, "message",
                           "role", "assistant", "content", content, "finish_reason", finish,
                           "logprobs", lp_value(g));
        if (choice && calls)
            json_object_set_new(json_object_get(choice, "message"), "tool_calls", calls);
        else
            json_decref(calls);
    } else
        choice = json_pack("{s:i, s:s%, s:s, s:o}", "index", (int)g->index, "text",
                           g->text ? g->text : "", g->len, "finish_reason", finish,
                           "logprobs", lp_value(g));
    /* One answer's hits go beside the choices, as they always have; with
     * several, each choice carries its own. */
    if (g->hits && choice && job->n_choices > 1)
        json_object_set_new(choice, "retrieved", hits_json(g->hits));
    else if (g->hits)
        job->retrieved = hits_json(g->hits);
    if (choice && job->choices)
        json_array_set_new(job->choices, g->index, choice);
    else
        fail_once(job, 500, "out of memory building the response", NULL);
    if (!job->choices || !choice)
        json_decref(choice);
    answer_ended(job);
}

enum { PART_TEXT, PART_OPEN_CHOICE, PART_CALL, PART_AFTER_CALL };

struct st_job_run {
    st_job *job;
    const st_req_prompt *prompt; /* a completion's prompt for this answer, NULL for a chat */
    char *augmented;           /* the prompt or user message with g.hits */
    int32_t *ids;              /* the tokenized prompt (st_free) */
    int32_t *ids_copy;         /* or its first answer's, copied (free) */
    bool bos_added;            /* the server put a BOS before the prompt */
    const int32_t *run_ids;    /* what runs: ids, or the request's token-id prompt */
    size_t n_ids;
    st_sampler_override ov[ST_SERVE_MAX_SAMPLING];
    /* the request's response_format or grammar, or a call's */
    st_param_text constraint[ST_GEN_CONSTRAINT_PARAMS];
    char *tool_schema;         /* the schema a tool call is generated under, or NULL */
    /* Function calling: an answer is free text, a call's JSON, or after a
     * call the choice of another or the end; each next part goes on, on
     * the same sequence, from a prompt that holds the parts before it
     * (st_job_run_continues). */
    int part;                  /* PART_TEXT, PART_OPEN_CHOICE, PART_CALL or PART_AFTER_CALL */
    size_t in_prompt;          /* bytes of the answer's text its prompt holds */
    size_t calls_end;          /* the text's end after its last whole call, or SIZE_MAX */
    size_t call_from;          /* where the current call's JSON starts in the text */
    size_t *calls;             /* [2 * n_calls]: each whole call's JSON, start and end */
    size_t n_calls;
    uint32_t max_total;        /* the answer's max_tokens, every part together */
    bool continued;            /* the answer went on at least once */
    uint32_t n_prompt, n_cached; /* the answer's own prompt, before it went on */
    st_generate_params gp;
    gen_state g;
};

static void st_job_run_free(st_job_run *r)
{
    free(r->g.text);
    st_lp_free(&r->g.lp);
    st_free(r->ids);
    st_free(r->augmented);
    free(r->ids_copy);
    free(r->tool_schema);
    free(r->calls);
    free(r);
}

/* Retrieval-augmented requests (docs/server.md): when the model's manifest
 * names a retriever index, the prompt (a completion) or the last user
 * message (a chat) is looked up and replaced by the manifest's template
 * with the best hits, as `stretch run` and `run --chat` do. This runs on
 * the model's runner thread, which owns the engine and its retriever. */
static st_status augment(st_job_run *r, st_engine *e, const st_gen_request *req,
                         st_retrieval **hits, size_t *user_at, st_error *err)
{
    st_retriever *ret = req->no_retrieval ? NULL : st_engine_retriever(e);
    if (!ret || !st_retriever_index_path(ret))
        return ST_OK;
    /* A token-id prompt has no text to look up: it runs as given. */
    const char *query = req->chat ? st_gen_request_last_user(req, user_at) : r->prompt->text;
    if (!query)
        return ST_OK; /* a chat without a user message: nothing to look up */
    atomic_fetch_add(&r->job->srv->metrics.retrieval_queries, 1);
    st_status st = st_retriever_query(ret, query, strlen(query), st_retriever_top_k(ret), hits,
                                      err);
    r->g.hits = *hits;
    if (st == ST_OK)
        st = st_retriever_render(ret, query, r->g.hits, &r->augmented, err);
    if (st != ST_OK)
        *user_at = SIZE_MAX;
    return st;
}

/* echo: the prompt starts the answer's text (the text the client sent,
 * or what retrieval made of it; a token-id prompt's pieces), and with
 * logprobs its first token's entry, which nothing predicts, is null. A
 * BOS the server added is in neither: the client did not send it, and
 * the engine scores the first token after it. */
static bool echo_prompt(st_job_run *r, st_engine *e, const char *augmented, bool bos_added)
{
    gen_state *g = &r->g;
    const st_gen_request *req = &r->job->req;
    char *text = NULL;
    size_t len = 0;
    if (!r->prompt->ids) {
        const char *p = augmented ? augmented : r->prompt->text;
        len = strlen(p);
        text = malloc(len + 1);
        if (text)
            memcpy(text, p, len + 1);
    } else {
        for (size_t i = 0; i < r->n_ids; i++) {
            const char *piece = "";
            size_t n = 0;
            st_error err;
            memset(&err, 0, sizeof err);
            if (st_engine_token_piece(e, r->run_ids[i], &piece, &n, &err) != ST_OK)
                n = 0;
            char *grown = realloc(text, len + n + 1);
            if (!grown) {
                free(text);
                return false;
            }
            text = grown;
            memcpy(text + len, piece, n);
            len += n;
            text[len] = '\0';
        }
        /* Pieces may split a character: the text sent is valid UTF-8. */
        char *clean = text ? st_utf8_clean_dup(text, len) : NULL;
        free(text);
        text = clean;
    }
    if (!text)
        return false;
    g->text = text;
    g->len = g->echo_len = len;
    g->cap = len + 1;
    if (req->logprobs && !bos_added && !st_lp_add_none(&g->lp, r->run_ids[0]))
        return false;
    return true;
}

/* Answer j > 0 of a prompt runs its first answer's tokens, with its
 * retrieval hits: retrieval (which may re-rank with the model) and
 * tokenization are not done again. */
static st_status same_as_first(st_job_run *r, const st_job_run *first, st_error *err)
{
    r->g.hits = first->g.hits;
    r->n_ids = first->n_ids;
    r->bos_added = first->bos_added;
    if (first->prompt && first->run_ids == first->prompt->ids) {
        r->run_ids = first->run_ids; /* the request's token ids: the job's */
        return ST_OK;
    }
    if (!(r->ids_copy = malloc(r->n_ids * sizeof *r->ids_copy))) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return ST_E_NOMEM;
    }
    memcpy(r->ids_copy, first->run_ids, r->n_ids * sizeof *r->ids_copy);
    r->run_ids = r->ids_copy;
    return ST_OK;
}

/* A tool call's JSON under its tools' schemas: compact, as the calls
 * the prompt shows, and at most 16 digits a run in a number (as
 * llama.cpp's JSON grammars), which SmolLM2 otherwise writes on and on
 * ("n":1000000000000...) until max_tokens cuts the call. */
static void set_call_constraint(st_job_run *r)
{
    r->constraint[0] = (st_param_text){"whitespace", "compact"};
    r->constraint[1] = (st_param_text){"schema", r->tool_schema};
    r->constraint[2] = (st_param_text){"max-digits", ST_SERVE_MAX_DIGITS};
    r->gp.constraint = "json-schema";
    r->gp.constraint_params = r->constraint;
    r->gp.n_constraint_params = 3;
}

/* The tools the model is shown, at the end of the system turn of msgs
 * (a system turn of their own at the start when there is none; *text is
 * that turn's text, to free): every one, or with --tool-retriever the
 * best tool_top_k for the last user message, a named tool_choice's
 * function always among them. A forced call's schema: r->tool_schema. */
static st_status show_tools(st_job_run *r, const st_gen_request *req, st_chat_message *msgs,
                            size_t *n_msgs, char **text, st_error *err)
{
    st_job *job = r->job;
    size_t n = req->n_tools, n_keep = n;
    size_t *keep = malloc(n * sizeof *keep);
    float *scores = malloc(n * sizeof *scores);
    st_status st = keep && scores ? ST_OK : ST_E_NOMEM;
    size_t k;
    const char *query;
    bool pick = st == ST_OK && st_tool_pick_wanted(job->srv, req, &query, &k);
    if (pick)
        st = st_tool_pick_take(job, query, k, keep, scores, &n_keep, err);
    for (size_t i = 0; !pick && keep && i < n; i++)
        keep[i] = i;
    if (st == ST_OK && pick && req->tool_forced) {
        size_t f = st_tools_index(req, req->tool_forced), j = 0;
        while (j < n_keep && keep[j] != f)
            j++;
        if (j == n_keep) { /* the last place goes to the function asked for */
            keep[n_keep - 1] = f;
            scores[n_keep - 1] = NAN;
        }
    }
    if (st == ST_OK && pick) {
        json_t *hits = json_array();
        for (size_t j = 0; hits && j < n_keep; j++)
            json_array_append_new(hits, json_pack("{s:s, s:o}", "name",
                                                  req->tool_names[keep[j]], "score",
                                                  isnan(scores[j]) ? json_null()
                                                                   : json_real(scores[j])));
        json_decref(job->tool_hits);
        job->tool_hits = hits;
        atomic_fetch_add(&job->srv->metrics.tool_retrievals, 1);
    }
    char *block = NULL;
    if (st == ST_OK && !st_tools_render(req, keep, n_keep, &block, &r->tool_schema))
        st = ST_E_NOMEM;
    free(keep);
    free(scores);
    size_t sys = 0;
    while (sys < *n_msgs && strcmp(msgs[sys].role, "system") != 0)
        sys++;
    if (st == ST_OK && sys == *n_msgs) {
        memmove(msgs + 1, msgs, *n_msgs * sizeof *msgs);
        msgs[0] = (st_chat_message){"system", block};
        (*n_msgs)++;
        *text = block;
        return ST_OK;
    }
    const char *was = st == ST_OK ? msgs[sys].content : "";
    if (st == ST_OK && (*text = malloc(strlen(was) + strlen(block) + 3)))
        sprintf(*text, "%s%s%s", was, was[0] ? "\n\n" : "", block);
    else if (st == ST_OK)
        st = ST_E_NOMEM;
    free(block);
    if (st == ST_E_NOMEM)
        snprintf(err->message, sizeof err->message, "out of memory");
    if (st == ST_OK)
        msgs[sys].content = *text;
    return st;
}

/* The prompt r runs with the tokens of text[0, len) after it (no BOS, no
 * special tokens parsed): a forced call's opening tag, or what an "auto"
 * answer wrote before the call it goes on with. */
static st_status extend_prompt(st_job_run *r, st_engine *e, const char *text, size_t len,
                               st_error *err)
{
    int32_t *add = NULL;
    size_t n_add = 0;
    st_status st = len ? st_engine_tokenize(e, text, len, 0, &add, &n_add, err) : ST_OK;
    if (st != ST_OK)
        return st;
    const int32_t *from = r->run_ids ? r->run_ids : r->ids;
    int32_t *ids = malloc((r->n_ids + n_add) * sizeof *ids);
    if (ids) {
        memcpy(ids, from, r->n_ids * sizeof *ids);
        if (n_add)
            memcpy(ids + r->n_ids, add, n_add * sizeof *ids);
        free(r->ids_copy); /* after the copy: `from` may be it */
        r->ids_copy = ids;
        r->run_ids = ids;
        r->n_ids += n_add;
    }
    st_free(add);
    if (!ids) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return ST_E_NOMEM;
    }
    return ST_OK;
}

/* One answer (choice `choice`) of the job: its prompt tokenized (after
 * retrieval) and checked, its generation parameters. NULL with *status,
 * msg and *param when the request is refused. */
static st_job_run *run_prepare(st_job *job, st_engine *e, uint32_t choice, int *status,
                               char *msg, size_t msg_size, const char **param)
{
    st_gen_request *req = &job->req;
    *param = NULL;
    st_job_run *r = calloc(1, sizeof *r);
    if (!r) {
        *status = 500;
        snprintf(msg, msg_size, "out of memory");
        return NULL;
    }
    r->job = job;
    r->g.job = job;
    r->g.index = choice;
    r->g.tool_at = SIZE_MAX;
    r->g.watch_from = req->tool_mode == ST_TOOLS_AUTO ? 0 : SIZE_MAX;
    r->g.watch_tag = ST_TOOL_CALL_TAG;
    r->part = req->tool_mode == ST_TOOLS_FORCED ? PART_CALL : PART_TEXT;
    r->calls_end = SIZE_MAX;
    r->prompt = req->chat ? NULL : &req->prompts[choice / req->n];
    st_engine_info info = {.struct_size = sizeof info};
    st_engine_get_info(e, &info);
    st_error err;
    memset(&err, 0, sizeof err);
    uint32_t bos = info.add_bos ? ST_ENCODE_ADD_BOS : 0;
    size_t user_at = SIZE_MAX;
    st_status st = ST_OK;
    /* The prompt's other answers run what its first one runs (still
     * pending: every answer is prepared before any starts). */
    uint32_t j = choice % req->n;
    const st_job_run *first = j ? job->pending[choice - j] : NULL;
    const char *augmented = first ? first->augmented : NULL;
    if (!first && (st = augment(r, e, req, &job->prompt_hits[choice / req->n], &user_at,
                                &err)) != ST_OK) {
        snprintf(msg, msg_size, "retrieval failed: %.400s", err.message);
        st_job_run_free(r);
        *status = st == ST_E_INVALID ? 400 : 500;
        return NULL;
    }
    if (first) {
        st = same_as_first(r, first, &err);
        if (st == ST_OK && first->tool_schema && !(r->tool_schema = strdup(first->tool_schema)))
            st = ST_E_NOMEM;
    } else if (req->chat) {
        /* One more place: a system turn for the tools, when there is none. */
        st_chat_message *msgs = calloc(req->n_messages + 1, sizeof *msgs);
        if (!msgs) {
            st_job_run_free(r);
            *status = 500;
            snprintf(msg, msg_size, "out of memory");
            return NULL;
        }
        for (size_t i = 0; i < req->n_messages; i++) {
            const st_req_message *m = &req->messages[i];
            bool list = req->tool_format == ST_TOOL_FORMAT_LIST && m->list_content;
            msgs[i] = (st_chat_message){m->role, i == user_at ? r->augmented
                                                 : list      ? m->list_content
                                                             : m->content};
        }
        size_t n_msgs = req->n_messages;
        char *system_text = NULL;
        if (req->tool_mode != ST_TOOLS_OFF &&
            (st = show_tools(r, req, msgs, &n_msgs, &system_text, &err)) != ST_OK) {
            free(msgs);
            snprintf(msg, msg_size, "choosing the tools to show failed: %.400s", err.message);
            st_job_run_free(r);
            *status = st == ST_E_INVALID ? 400 : 500;
            *param = "tools";
            return NULL;
        }
        /* Message text is plain text: no special tokens parsed from it. */
        st = st_engine_chat_tokenize_messages(e, msgs, n_msgs, bos, &r->ids, &r->n_ids, &err);
        free(system_text);
        free(msgs);
        /* A forced call's answer starts inside its tags: the opening tag
         * ends the prompt, so the model writes the call as it was shown
         * one, and the constraint holds only its JSON. */
        const char *opening = st_tools_syntax(req->tool_format)->open;
        if (st == ST_OK && req->tool_mode == ST_TOOLS_FORCED)
            st = extend_prompt(r, e, opening, strlen(opening), &err);
    } else if (r->prompt->ids) {
        /* Token ids run as given: no BOS added, nothing looked up. */
        r->run_ids = r->prompt->ids;
        r->n_ids = r->prompt->n_ids;
        bos = 0;
    } else {
        /* A completion prompt is the client's own formatting, markers
         * included, as `stretch run` reads a raw prompt. */
        const char *prompt = r->augmented ? r->augmented : r->prompt->text;
        st = st_engine_tokenize(e, prompt, strlen(prompt), bos | ST_ENCODE_PARSE_SPECIAL,
                                &r->ids, &r->n_ids, &err);
    }
    if (!first) {
        augmented = r->augmented;
        r->bos_added = bos != 0;
    }
    if (!r->run_ids)
        r->run_ids = r->ids;
    *status = 0;
    *param = req->chat ? "messages" : "prompt";
    /* Where the attention evicts, the context bounds what the model sees,
     * not how long the prompt or the answer may be: a default answer is
     * then capped at a context's worth. */
    bool bounded = info.bounded_cache;
    int64_t room = bounded ? (int64_t)info.n_ctx : (int64_t)info.n_ctx - (int64_t)r->n_ids;
    /* Ids the tokenizer made are in the vocabulary; a client's may not be. */
    size_t bad_id = r->prompt && r->prompt->ids
                        ? st_first_bad_token(r->run_ids, r->n_ids, info.n_vocab)
                        : SIZE_MAX;
    size_t bad_bias = SIZE_MAX;
    for (size_t k = 0; k < req->n_logit_bias && bad_bias == SIZE_MAX; k++)
        if ((uint32_t)req->logit_bias[k].token >= info.n_vocab)
            bad_bias = k;
    if (st != ST_OK) {
        snprintf(msg, msg_size, "the prompt cannot be tokenized: %.400s", err.message);
        *status = st == ST_E_NOMEM ? 500 : 400;
    } else if (bad_bias != SIZE_MAX) {
        snprintf(msg, msg_size, "logit_bias: token %d is outside the vocabulary of model "
                 "'%.100s' (%u tokens)", req->logit_bias[bad_bias].token, req->model,
                 info.n_vocab);
        *status = 400;
        *param = "logit_bias";
    } else if (bad_id != SIZE_MAX) {
        snprintf(msg, msg_size, "token %zu is %d, outside the vocabulary of model '%.100s' "
                 "(%u tokens)", bad_id, r->run_ids[bad_id], req->model, info.n_vocab);
        *status = 400;
    } else if (job->template_only) {
        /* /apply-template shows the prompt, which need not fit to be seen */
    } else if (!bounded && r->n_ids >= info.n_ctx) {
        snprintf(msg, msg_size, "the prompt is %zu tokens, and model '%.100s' has a context "
                 "of %u tokens, which must also hold the answer; shorten the prompt (nothing "
                 "is truncated)", r->n_ids, req->model, info.n_ctx);
        *status = 400;
    } else if (!bounded && req->max_tokens > room) {
        snprintf(msg, msg_size, "max_tokens is %lld, but the prompt is %zu tokens and the "
                 "context of model '%.100s' is %u: at most %lld tokens fit",
                 (long long)req->max_tokens, r->n_ids, req->model, info.n_ctx, (long long)room);
        *status = 400;
        *param = "max_tokens";
    } else if (req->echo && !echo_prompt(r, e, augmented, r->bos_added)) {
        snprintf(msg, msg_size, "out of memory echoing the prompt");
        *status = 500;
    }
    if (*status) {
        st_job_run_free(r);
        return NULL;
    }
    *param = NULL;
    size_t n_ov = req->n_sampling;
    for (size_t k = 0; k < n_ov; k++)
        r->ov[k] = (st_sampler_override){req->sampling[k].plugin, req->sampling[k].param,
                                         req->sampling[k].value};
    static atomic_uint_fast64_t seed_counter;
    /* Each answer to a prompt draws its own stream: with a seed, seed + j
     * for its j-th answer, so n answers differ and each is reproducible. */
    uint64_t seed = req->has_seed
                        ? req->seed + choice % req->n
                        : (uint64_t)time(NULL) ^ (atomic_fetch_add(&seed_counter, 1) << 32);
    r->gp = (st_generate_params){
        .struct_size = sizeof r->gp,
        .max_tokens = (uint32_t)(req->max_tokens >= 0 ? req->max_tokens : room),
        .seed = seed,
        .sampler_overrides = r->ov,
        .n_sampler_overrides = n_ov,
        .constraint = req->constraint,
        .constraint_params = r->constraint,
        .n_constraint_params = req->n_constraint_params,
        .on_logprobs = req->logprobs && !job->is_rpc ? on_logprobs : NULL,
        .n_top_logprobs = req->top_logprobs,
        /* An echoed prompt's entries come first, in the same list. */
        .on_prompt_logprobs = req->echo && req->logprobs ? on_logprobs : NULL,
        .logit_bias = req->logit_bias,
        .n_logit_bias = req->n_logit_bias,
        .fresh_cache = req->fresh_cache,
    };
    r->max_total = r->gp.max_tokens;
    r->g.engine = e;
    for (size_t k = 0; k < req->n_constraint_params; k++)
        r->constraint[k] = (st_param_text){req->constraint_names[k], req->constraint_values[k]};
    if (r->tool_schema && req->tool_mode == ST_TOOLS_FORCED) {
        /* A forced call: its JSON under the tools' schemas, as compact as
         * the calls the prompt shows. */
        set_call_constraint(r);
    }
    for (size_t k = 0; k < req->n_stops; k++)
        if (strlen(req->stops[k]) > r->g.max_stop)
            r->g.max_stop = strlen(req->stops[k]);
    return r;
}

/* The answer goes on from the first `upto` bytes of its text, then
 * `add`: the prompt gets the text it does not hold yet and `add`, each
 * tokenized anew (a tag may have ended inside a token) and prefilled
 * after the prompt the sequence's cache still holds; the text ends with
 * `add`. False when out of memory: the answer then ends as it is. */
static bool go_on(st_job_run *r, st_engine *e, size_t upto, const char *add)
{
    gen_state *g = &r->g;
    size_t n_add = strlen(add), need = upto + n_add + 1;
    char *text = need > g->cap ? realloc(g->text, need) : g->text;
    if (!text)
        return false;
    if (text != g->text) {
        g->text = text;
        g->cap = need;
    }
    st_error err;
    memset(&err, 0, sizeof err);
    if (extend_prompt(r, e, g->text + r->in_prompt, upto - r->in_prompt, &err) != ST_OK ||
        extend_prompt(r, e, add, n_add, &err) != ST_OK)
        return false;
    memcpy(g->text + upto, add, n_add + 1);
    g->len = r->in_prompt = upto + n_add;
    g->tool_at = SIZE_MAX;
    return true;
}

/* The part that follows generated under the regex `pattern`: after a
 * call, what opens the next or nothing; after an "auto" list's opening
 * tag, its empty list or the line a call starts on. */
static void set_pattern_constraint(st_job_run *r, const char *pattern)
{
    r->constraint[0] = (st_param_text){"pattern", pattern};
    r->gp.constraint = "regex";
    r->gp.constraint_params = r->constraint;
    r->gp.n_constraint_params = 1;
}

/* Whether the whole call that ends the text is new: one the answer made
 * already ends it, left out. Small models given several calls write the
 * same ones over and over (SmolLM2-135M, asked for Tokyo's time and
 * weather, calls get_time and get_weather, then both again until
 * max_tokens); a repeated call returns what the first one does. False,
 * the call left out too, when out of memory. */
static bool new_call(st_job_run *r)
{
    gen_state *g = &r->g;
    size_t from = r->call_from, n = g->len - from;
    for (size_t k = 0; k < r->n_calls; k++)
        if (r->calls[2 * k + 1] - r->calls[2 * k] == n &&
            memcmp(g->text + r->calls[2 * k], g->text + from, n) == 0) {
            g->len = r->calls_end;
            g->text[g->len] = '\0';
            return false;
        }
    size_t *grown = realloc(r->calls, 2 * (r->n_calls + 1) * sizeof *grown);
    if (!grown) {
        g->len = r->calls_end != SIZE_MAX ? r->calls_end : g->len;
        g->text[g->len] = '\0';
        return false;
    }
    r->calls = grown;
    r->calls[2 * r->n_calls] = from;
    r->calls[2 * r->n_calls + 1] = g->len;
    r->n_calls++;
    return true;
}

bool st_job_run_continues(st_job_run *r, st_engine *e, const st_generate_stats *stats)
{
    gen_state *g = &r->g;
    const st_gen_request *req = &r->job->req;
    const st_tool_syntax *syn = st_tools_syntax(req->tool_format);
    const char *open_rest = syn->open + strlen(ST_TOOL_CALL_TAG); /* past the tag: "[\n" */
    if (!r->tool_schema || g->n_tokens >= r->max_total || atomic_load(&r->job->cancel))
        return false;
    if (r->part == PART_CALL) {
        /* A whole call (its JSON ended the run) may be followed by more
         * when the request allows several: its closing tag, then the
         * choice of another opening tag or the end. */
        if (!stats->stopped_by_eos || !req->tool_parallel || req->tool_forced ||
            !new_call(r) || !go_on(r, e, g->len, syn->after))
            return false;
        r->calls_end = g->len;
        r->part = PART_AFTER_CALL;
        g->watch_from = g->len;
        g->watch_tag = syn->next_tag;
        set_pattern_constraint(r, syn->next_pattern);
    } else if (r->part == PART_TEXT && syn->open_choice) {
        /* The text opened the list: it may be empty ("no call needed",
         * which the format's own data writes), so the answer chooses
         * that or the line its first call starts on. */
        if (g->tool_at == SIZE_MAX || !go_on(r, e, g->tool_at, ST_TOOL_CALL_TAG))
            return false;
        r->part = PART_OPEN_CHOICE;
        g->watch_from = g->len;
        g->watch_tag = open_rest;
        set_pattern_constraint(r, syn->open_choice);
    } else {
        /* The text, or the choice after a call or in a list's opening,
         * opened a call: the opening as a forced call's prompt ends, then
         * its JSON under the schemas. */
        const char *opening = r->part == PART_AFTER_CALL    ? syn->next_open
                              : r->part == PART_OPEN_CHOICE ? open_rest
                                                            : syn->open;
        if (g->tool_at == SIZE_MAX || !go_on(r, e, g->tool_at, opening))
            return false;
        r->part = PART_CALL;
        r->call_from = g->len;
        g->watch_from = SIZE_MAX;
        set_call_constraint(r);
    }
    if (!r->continued) {
        r->continued = true;
        r->n_prompt = stats->n_prompt;
        r->n_cached = stats->n_cached;
    }
    r->gp.max_tokens = r->max_total - g->n_tokens;
    /* Each part draws on from a seed of its own (the sequence's chain
     * is seeded again at every start): with the part before's, a sampled
     * answer would write its calls' first choices over again. */
    r->gp.seed = r->gp.seed * 6364136223846793005ull + 1442695040888963407ull;
    return true;
}

bool st_job_prepare(st_job *job, st_engine *e)
{
    st_gen_request *req = &job->req;
    /* The job has met its model: its calls are written the model's way. */
    req->tool_format = st_serve_tool_format(&job->srv->cfg, req->model);
    uint32_t n = req->chat ? req->n : (uint32_t)(req->n_prompts * req->n);
    job->pending = calloc(n, sizeof *job->pending);
    job->n_prompt_hits = n / req->n;
    job->prompt_hits = calloc(job->n_prompt_hits, sizeof *job->prompt_hits);
    if (!job->req.stream && !job->is_rpc) {
        job->choices = json_array();
        for (uint32_t i = 0; job->choices && i < n; i++)
            json_array_append_new(job->choices, json_null());
    }
    if (!job->pending || !job->prompt_hits ||
        (!job->req.stream && !job->is_rpc && !job->choices)) {
        st_job_fail(job, 500, "out of memory", NULL);
        return false;
    }
    for (uint32_t c = 0; c < n; c++) {
        char msg[512];
        int status = 0;
        const char *param = NULL;
        job->pending[c] = run_prepare(job, e, c, &status, msg, sizeof msg, &param);
        if (job->pending[c])
            continue;
        /* Refused whole, before any answer starts: say which prompt. */
        for (uint32_t k = 0; k < c; k++)
            st_job_run_free(job->pending[k]);
        free(job->pending);
        job->pending = NULL;
        json_decref(job->choices);
        job->choices = NULL;
        if (req->n_prompts > 1) {
            char which[600];
            snprintf(which, sizeof which, "prompt[%u]: %s", c / req->n, msg);
            st_job_fail(job, status, which, param);
        } else {
            st_job_fail(job, status, msg, param);
        }
        return false;
    }
    job->n_choices = n;
    return true;
}

void st_job_template(st_job *job, st_engine *e)
{
    job->req.n = 1;
    if (!st_job_prepare(job, e))
        return; /* refused: the answer is written */
    st_job_run *r = st_job_next_run(job);
    char *text = NULL;
    size_t len = 0;
    st_error err;
    memset(&err, 0, sizeof err);
    if (st_engine_detokenize(e, r->run_ids, r->n_ids, &text, &len, &err) == ST_OK)
        st_job_detokenized(job, text, len);
    else
        st_job_fail(job, 500, err.message, NULL);
    st_free(text);
    st_job_run_free(r);
}

st_job_run *st_job_next_run(st_job *job)
{
    if (!job->pending || job->next_choice >= job->n_choices)
        return NULL;
    st_job_run *r = job->pending[job->next_choice];
    job->pending[job->next_choice++] = NULL;
    return r;
}

void st_job_abandon(st_job *job)
{
    st_job_run *r;
    while ((r = st_job_next_run(job))) {
        st_job_run_free(r);
        fail_once(job, 503, "the request was cancelled before it started", NULL);
        answer_ended(job);
    }
}

void st_job_run_args(st_job_run *r, const int32_t **ids, size_t *n_ids,
                     const st_generate_params **gp, st_token_fn *on_token_fn, void **user)
{
    *ids = r->run_ids;
    *n_ids = r->n_ids;
    *gp = &r->gp;
    *on_token_fn = on_token;
    *user = &r->g;
}

void st_job_run_end(st_job_run *r, st_status st, const st_generate_stats *stats_in,
                    const st_error *err)
{
    st_job *job = r->job;
    gen_state *g = &r->g;
    /* An answer that went on as a forced call counts its own prompt once
     * (its continuation's prompt held the answer's first part). */
    st_generate_stats cont = *stats_in;
    const st_generate_stats *stats = stats_in;
    if (r->continued) {
        cont.n_prompt = r->n_prompt;
        cont.n_cached = r->n_cached;
        stats = &cont;
    }
    /* After whole calls, a call cut short (max_tokens, a cancel) or the
     * choice that ended the answer is not part of it: the answer is its
     * whole calls. */
    if (r->calls_end != SIZE_MAX && (r->part == PART_AFTER_CALL || !stats_in->stopped_by_eos)) {
        g->len = r->calls_end;
        g->text[g->len] = '\0';
    }
    st_server_metrics *m = &job->srv->metrics;
    atomic_fetch_add(&m->prompt_tokens, stats_in->n_prompt);
    atomic_fetch_add(&m->cached_prompt_tokens, stats_in->n_cached);
    atomic_fetch_add(&m->generated_tokens, g->n_tokens);
    atomic_fetch_add(&m->prefill_us, (uint64_t)(stats->prefill_s * 1e6));
    atomic_fetch_add(&m->decode_us, (uint64_t)(stats->decode_s * 1e6));
    if (g->first_token_seen)
        atomic_fetch_add(&m->completions, 1);
    if (st != ST_OK && st != ST_E_CANCELLED) {
        char msg[512];
        /* A constraint the plugin refused is the request's field (the
         * engine names no plugin file for a request's constraint). */
        const char *why = err ? err->message : "";
        const char *field = job->req.constraint                  ? job->req.constraint_field
                            : job->req.tool_mode == ST_TOOLS_FORCED ? "tools"
                                                                     : NULL;
        const char *param = !strncmp(why, "constraint '", 12) ? field : NULL;
        snprintf(msg, sizeof msg, "%s: %.400s", param ? param : "generation failed", why);
        fail_once(job, st == ST_E_INVALID ? 400 : 500, msg, param);
        /* The job's other answers stop: the response is this error. */
        atomic_store(&job->cancel, 1);
        answer_ended(job);
    } else if (job->fail_status) {
        answer_ended(job);
    } else {
        choice_done(g, job, stats,
                    stats->stopped_by_eos || g->stopped_by_string ? "stop" : "length");
    }
    st_job_run_free(r);
}

/* -- the loop thread's side -- */

st_job *st_job_new(st_server *srv, st_conn *conn, st_gen_request *req, bool keep_alive)
{
    static atomic_uint_fast64_t counter;
    st_job *job = calloc(1, sizeof *job);
    if (!job)
        return NULL;
    if (uv_mutex_init(&job->lock) != 0) {
        free(job);
        return NULL;
    }
    job->srv = srv;
    job->conn = conn;
    job->req = *req;
    job->keep_alive = keep_alive && !req->stream;
    job->keep_alive_asked = keep_alive;
    job->created = (int64_t)time(NULL);
    job->t_queued = st_serve_now();
    snprintf(job->id, sizeof job->id, "%s-%llx%llx", req->chat ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), (unsigned long long)atomic_fetch_add(&counter, 1));
    return job;
}

st_job *st_job_new_embed(st_server *srv, st_conn *conn, st_embed_request *req, bool keep_alive)
{
    st_gen_request none;
    memset(&none, 0, sizeof none);
    st_job *job = st_job_new(srv, conn, &none, keep_alive);
    if (job)
        job->embed = req;
    return job;
}

void st_jobs_track(st_server *srv, st_job *job)
{
    if (job->tracked)
        return;
    job->tracked = true;
    job->next = srv->jobs;
    srv->jobs = job;
}

void st_job_free(st_job *job)
{
    for (uint32_t i = 0; job->pending && i < job->n_choices; i++)
        if (job->pending[i])
            st_job_run_free(job->pending[i]);
    free(job->pending);
    for (uint32_t i = 0; job->prompt_hits && i < job->n_prompt_hits; i++)
        st_retrieval_free(job->prompt_hits[i]);
    free(job->prompt_hits);
    json_decref(job->choices);
    json_decref(job->retrieved);
    json_decref(job->tool_hits);
    st_tool_pick_free(job->tool_pick);
    st_gen_request_free(&job->req);
    free(job->slot_file);
    if (job->embed)
        st_embed_request_free(job->embed);
    free(job->embed);
    uv_mutex_destroy(&job->lock);
    free(job->out);
    free(job);
}

void st_job_detach(st_job *job)
{
    job->conn = NULL;
    atomic_store(&job->cancel, 1);
}

void st_jobs_cancel_all(st_server *srv)
{
    for (st_job *j = srv->jobs; j; j = j->next)
        atomic_store(&j->cancel, 1);
}

void st_jobs_drain(st_server *srv)
{
    for (st_job **pp = &srv->jobs; *pp;) {
        st_job *job = *pp;
        uv_mutex_lock(&job->lock);
        char *out = job->out;
        size_t len = job->out_len;
        bool done = job->done, close_after = job->close_after;
        job->out = NULL;
        job->out_len = job->out_cap = 0;
        uv_mutex_unlock(&job->lock);
        st_conn *c = job->conn;
        if (c && len)
            st_conn_write(c, out, len);
        if (job->rpc && len)
            st_rpc_write(job->rpc, out, len);
        free(out);
        if (!done) {
            pp = &job->next;
            continue;
        }
        *pp = job->next;
        if (c)
            st_conn_request_done(c, !close_after && job->keep_alive && !c->refused);
        st_job_free(job);
    }
}
