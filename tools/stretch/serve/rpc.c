/*
 * tools/stretch/serve/rpc.c - msgpack-RPC (msgpack-c) on a second
 * listener, `--rpc unix:PATH` or `--rpc tcp:PORT`: the same operations as
 * the HTTP API (generate with a token stream, tokenize, models, cancel),
 * framed as the msgpack-RPC spec says. docs/server.md lists the messages.
 * Completions and tokenizations run as jobs on the model runners like HTTP
 * requests; their answers come back through the job's output.
 */
#include "server.h"
#include "msgpack_frame.h"
#include "msgpack_json.h"
#include "tool_pick.h"
#include "utf8_text.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct st_rpc_conn {
    st_server *srv;
    union {
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    /* Bytes read and not yet a whole message (msgpack_frame.h): at most
     * one request body's limit plus one read. */
    uint8_t *in;
    size_t in_len, in_cap;
    int pending_writes;
    bool closing;
    st_rpc_conn *next;
};

typedef struct rpc_write {
    uv_write_t req;
    st_rpc_conn *conn;
    char bytes[];
} rpc_write;

static void on_closed(uv_handle_t *h)
{
    st_rpc_conn *c = h->data;
    free(c->in);
    free(c);
}

static void rpc_close(st_rpc_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    st_server *srv = c->srv;
    for (st_rpc_conn **pp = &srv->rpc_conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    /* Its jobs stop at their next token; their answers have no reader. */
    for (st_job *j = srv->jobs; j; j = j->next)
        if (j->rpc == c) {
            j->rpc = NULL;
            atomic_store(&j->cancel, 1);
        }
    uv_close((uv_handle_t *)&c->h, on_closed);
}

static void on_written(uv_write_t *req, int status)
{
    rpc_write *w = (rpc_write *)req;
    st_rpc_conn *c = w->conn;
    free(w);
    c->pending_writes--;
    if (status < 0)
        rpc_close(c);
}

void st_rpc_write(st_rpc_conn *c, const char *bytes, size_t len)
{
    if (c->closing || len == 0)
        return;
    rpc_write *w = malloc(sizeof *w + len);
    if (!w) {
        rpc_close(c);
        return;
    }
    w->conn = c;
    memcpy(w->bytes, bytes, len);
    uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)len);
    c->pending_writes++;
    if (uv_write(&w->req, (uv_stream_t *)&c->h, &buf, 1, on_written) < 0) {
        c->pending_writes--;
        free(w);
        rpc_close(c);
    }
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

char *st_rpc_error_frame(uint32_t msgid, int code, const char *message, const char *param,
                         size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_uint32(&pk, msgid);
    msgpack_pack_map(&pk, 3);
    pack_str(&pk, "code");
    msgpack_pack_int(&pk, code);
    pack_str(&pk, "message");
    /* msgpack-RPC clients decode str as UTF-8; the message may quote a cut name. */
    char clean[1024];
    pack_str(&pk, st_utf8_clean(message, clean, sizeof clean));
    pack_str(&pk, "param");
    if (param)
        pack_str(&pk, param);
    else
        msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    *len = sb.size;
    return msgpack_sbuffer_release(&sb);
}

static void reply_error(st_rpc_conn *c, uint32_t msgid, int code, const char *message,
                        const char *param)
{
    atomic_fetch_add(&c->srv->metrics.errors, 1);
    size_t len = 0;
    char *frame = st_rpc_error_frame(msgid, code, message, param, &len);
    if (frame)
        st_rpc_write(c, frame, len);
    free(frame);
}

/* The start of [1, msgid, nil, result]. */
static void reply_begin(msgpack_sbuffer *sb, msgpack_packer *pk, uint32_t msgid)
{
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(pk, 4);
    msgpack_pack_int(pk, 1);
    msgpack_pack_uint32(pk, msgid);
    msgpack_pack_nil(pk);
}

static bool str_eq(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static char *str_dup(const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return NULL;
    if (o->via.str.size == 0) /* msgpack-c leaves its pointer NULL */
        return strdup("");
    if (memchr(o->via.str.ptr, 0, o->via.str.size))
        return NULL;
    return strndup(o->via.str.ptr, o->via.str.size);
}

/* A job queued for its model; refused when too many wait. A tracked job
 * answers through its own output (the drain frees it), another is freed
 * here. */
static void enqueue(st_job *job)
{
    if (st_job_enqueue(job->srv, job))
        return;
    static const char busy[] = "too many requests are waiting: try again shortly";
    if (job->tracked) {
        st_job_fail(job, 429, busy, NULL);
        return;
    }
    reply_error(job->rpc, job->rpc_msgid, 429, busy, NULL);
    st_job_free(job);
}

/* Its tools chosen (tool_pick.h): queued, unless its connection closed
 * meanwhile (the drain frees it then). */
static void tools_picked(st_job *job)
{
    if (!job->rpc) {
        uv_mutex_lock(&job->lock);
        job->done = true;
        uv_mutex_unlock(&job->lock);
        uv_async_send(&job->srv->wake);
        return;
    }
    if (job->srv->stopping)
        atomic_store(&job->cancel, 1);
    enqueue(job);
}

static void queue_job(st_rpc_conn *c, uint32_t msgid, st_gen_request *req, bool tokenize,
                      bool special)
{
    char *path = st_models_resolve(c->srv->cfg.manifests_dir, req->model);
    if (!path) {
        char msg[300];
        snprintf(msg, sizeof msg, "the model '%.200s' does not exist (\"models\" lists the "
                 "served ones)", req->model);
        st_gen_request_free(req);
        reply_error(c, msgid, 404, msg, "model");
        return;
    }
    free(path);
    st_job *job = st_job_new(c->srv, NULL, req, false);
    if (!job) {
        st_gen_request_free(req);
        reply_error(c, msgid, 500, "out of memory", NULL);
        return;
    }
    job->rpc = c;
    job->is_rpc = true;
    job->rpc_msgid = msgid;
    job->tokenize_only = tokenize;
    job->tokenize_special = special;
    job->req.stream = true; /* tokens as notifications */
    if (st_tool_pick_start(job, tools_picked)) {
        /* Tracked from now on, so that the connection closing, a cancel or
         * the server stopping finds it while its tools are chosen. */
        st_jobs_track(c->srv, job);
        return;
    }
    enqueue(job);
}

static void on_generate(st_rpc_conn *c, uint32_t msgid, const msgpack_object *params)
{
    char msg[512] = "the request could not be read";
    const char *param = NULL;
    if (params->via.array.size != 1 || params->via.array.ptr[0].type != MSGPACK_OBJECT_MAP) {
        reply_error(c, msgid, 400, "generate takes one parameter: a map of the OpenAI "
                    "request fields (model, prompt or messages, max_tokens, ...)", NULL);
        return;
    }
    st_gen_request req;
    if (!st_gen_request_from_msgpack(&params->via.array.ptr[0], &req, msg, sizeof msg,
                                     &param)) {
        reply_error(c, msgid, 400, msg, param);
        return;
    }
    queue_job(c, msgid, &req, false, false);
}

static void on_tokenize(st_rpc_conn *c, uint32_t msgid, const msgpack_object *params)
{
    const msgpack_object *p = params->via.array.ptr;
    uint32_t n = params->via.array.size;
    st_gen_request req;
    memset(&req, 0, sizeof req);
    st_req_prompt *text = calloc(1, sizeof *text);
    req.prompts = text;
    req.n_prompts = text ? 1 : 0;
    if (!text || (n != 2 && n != 3) || !(req.model = str_dup(&p[0])) ||
        !(text->text = str_dup(&p[1])) || (n == 3 && p[2].type != MSGPACK_OBJECT_BOOLEAN)) {
        st_gen_request_free(&req);
        reply_error(c, msgid, 400, "tokenize takes [model, text] or [model, text, "
                    "parse_special]: two strings (no NUL) and a boolean", NULL);
        return;
    }
    json_t *check = json_stringn(text->text, strlen(text->text));
    if (!check) {
        st_gen_request_free(&req);
        reply_error(c, msgid, 400, "the text is not valid UTF-8", "text");
        return;
    }
    json_decref(check);
    queue_job(c, msgid, &req, true, n == 3 && p[2].via.boolean);
}

/* [model, text] or [model, [text, ...]]: the texts' sentence vectors. */
static void on_embed(st_rpc_conn *c, uint32_t msgid, const msgpack_object *params)
{
    const msgpack_object *p = params->via.array.ptr;
    const char *usage = "embed takes [model, text] or [model, [text, ...]]: non-empty UTF-8 "
                        "strings without NUL bytes, at most 2048 of them";
    bool one = params->via.array.size == 2 && p[1].type == MSGPACK_OBJECT_STR;
    if (params->via.array.size != 2 || (!one && p[1].type != MSGPACK_OBJECT_ARRAY)) {
        reply_error(c, msgid, 400, usage, NULL);
        return;
    }
    uint32_t n = one ? 1 : p[1].via.array.size;
    st_embed_request *req = calloc(1, sizeof *req);
    bool ok = req && n >= 1 && n <= ST_SERVE_MAX_EMBED_INPUTS &&
              (req->model = str_dup(&p[0])) && (req->texts = calloc(n, sizeof *req->texts)) &&
              (req->lens = calloc(n, sizeof *req->lens));
    for (uint32_t i = 0; ok && i < n; i++) {
        const msgpack_object *t = one ? &p[1] : &p[1].via.array.ptr[i];
        json_t *check = NULL;
        ok = (req->texts[i] = str_dup(t)) && req->texts[i][0] &&
             (check = json_string(req->texts[i])) != NULL;
        json_decref(check);
        req->n = i + 1;
        if (ok)
            req->lens[i] = strlen(req->texts[i]);
    }
    if (!ok) {
        if (req)
            st_embed_request_free(req);
        free(req);
        reply_error(c, msgid, 400, usage, "input");
        return;
    }
    req->dimensions = -1;
    if (!st_embedder_exists(c->srv, req->model)) {
        char msg[300];
        snprintf(msg, sizeof msg, "'%.200s' is not a served sentence encoder (\"models\" "
                 "lists the served models)", req->model);
        st_embed_request_free(req);
        free(req);
        reply_error(c, msgid, 404, msg, "model");
        return;
    }
    st_job *job = st_job_new_embed(c->srv, NULL, req, false);
    if (!job) {
        st_embed_request_free(req);
        free(req);
        reply_error(c, msgid, 500, "out of memory", NULL);
        return;
    }
    job->rpc = c;
    job->is_rpc = true;
    job->rpc_msgid = msgid;
    if (!st_embed_enqueue(c->srv, job)) {
        st_job_free(job);
        reply_error(c, msgid, 429, "too many requests are waiting: try again shortly", NULL);
    }
}

static void on_models(st_rpc_conn *c, uint32_t msgid)
{
    size_t n = 0, n_enc = 0;
    char **stems = st_models_list(c->srv->cfg.manifests_dir, &n);
    while (st_embedder_name_at(c->srv, n_enc))
        n_enc++;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    reply_begin(&sb, &pk, msgid);
    msgpack_pack_array(&pk, n + n_enc);
    for (size_t i = 0; i < n; i++)
        pack_str(&pk, stems[i]);
    for (size_t i = 0; i < n_enc; i++)
        pack_str(&pk, st_embedder_name_at(c->srv, i));
    st_models_free(stems, n);
    st_rpc_write(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static void on_cancel(st_rpc_conn *c, uint32_t msgid, const msgpack_object *params)
{
    if (params->via.array.size != 1 ||
        params->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        reply_error(c, msgid, 400, "cancel takes [msgid]: the id of a generate request", NULL);
        return;
    }
    uint64_t target = params->via.array.ptr[0].via.u64;
    bool found = false;
    for (st_job *j = c->srv->jobs; j; j = j->next)
        if (j->rpc == c && j->rpc_msgid == target) {
            atomic_store(&j->cancel, 1);
            found = true;
        }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    reply_begin(&sb, &pk, msgid);
    if (found)
        msgpack_pack_true(&pk);
    else
        msgpack_pack_false(&pk);
    st_rpc_write(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* One message: [0, msgid, method, params]. */
static void on_message(st_rpc_conn *c, const msgpack_object *o)
{
    atomic_fetch_add(&c->srv->metrics.requests, 1);
    const msgpack_object *a = o->type == MSGPACK_OBJECT_ARRAY ? o->via.array.ptr : NULL;
    if (!a || o->via.array.size != 4 || a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[0].via.u64 != 0 || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        a[1].via.u64 > UINT32_MAX) {
        /* Not a request we can answer by id: the connection is not
         * speaking msgpack-RPC. */
        rpc_close(c);
        return;
    }
    uint32_t msgid = (uint32_t)a[1].via.u64;
    if (a[3].type != MSGPACK_OBJECT_ARRAY) {
        reply_error(c, msgid, 400, "params must be an array", NULL);
    } else if (c->srv->stopping) {
        reply_error(c, msgid, 503, "the server is shutting down", NULL);
    } else if (str_eq(&a[2], "generate")) {
        on_generate(c, msgid, &a[3]);
    } else if (str_eq(&a[2], "tokenize")) {
        on_tokenize(c, msgid, &a[3]);
    } else if (str_eq(&a[2], "embed")) {
        on_embed(c, msgid, &a[3]);
    } else if (str_eq(&a[2], "models")) {
        on_models(c, msgid);
    } else if (str_eq(&a[2], "cancel")) {
        on_cancel(c, msgid, &a[3]);
    } else {
        reply_error(c, msgid, 404, "no such method: expected generate, tokenize, embed, "
                    "models or cancel", NULL);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static bool take_bytes(st_rpc_conn *c, const char *bytes, size_t n)
{
    if (c->in_cap - c->in_len < n) {
        size_t cap = c->in_cap ? c->in_cap : 64 * 1024;
        while (cap - c->in_len < n)
            cap *= 2;
        uint8_t *in = realloc(c->in, cap);
        if (!in)
            return false;
        c->in = in;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, bytes, n);
    c->in_len += n;
    return true;
}

/* Answer every whole message read so far; a message that cannot be one
 * (not msgpack, nested deeper than msgpack-c reads, or larger than a
 * request body may be, by its own counts) ends the connection. */
static void answer_messages(st_rpc_conn *c)
{
    size_t done = 0;
    while (!c->closing) {
        size_t len = 0;
        st_msgpack_frame f = st_msgpack_frame_scan(c->in + done, c->in_len - done,
                                                   c->srv->cfg.max_body, &len);
        if (f == ST_FRAME_INCOMPLETE)
            break;
        msgpack_unpacked msg;
        msgpack_unpacked_init(&msg);
        size_t used = 0;
        if (f == ST_FRAME_INVALID ||
            msgpack_unpack_next(&msg, (const char *)c->in + done, len, &used) !=
                MSGPACK_UNPACK_SUCCESS || used != len) {
            msgpack_unpacked_destroy(&msg);
            rpc_close(c);
            break;
        }
        on_message(c, &msg.data);
        msgpack_unpacked_destroy(&msg);
        done += len;
    }
    if (!c->closing && done > 0) {
        memmove(c->in, c->in + done, c->in_len - done);
        c->in_len -= done;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    st_rpc_conn *c = s->data;
    if (nread < 0) {
        free(buf->base);
        rpc_close(c);
        return;
    }
    if (nread == 0 || c->closing) {
        free(buf->base);
        return;
    }
    bool ok = take_bytes(c, buf->base, (size_t)nread);
    free(buf->base);
    if (!ok) {
        rpc_close(c);
        return;
    }
    answer_messages(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    st_server *srv = server->data;
    if (status < 0 || srv->stopping)
        return;
    st_rpc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = srv;
    if (srv->rpc_is_pipe)
        uv_pipe_init(srv->loop, &c->h.pipe, 0);
    else
        uv_tcp_init(srv->loop, &c->h.tcp);
    c->h.tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->h) < 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->h, on_closed);
        return;
    }
    c->next = srv->rpc_conns;
    srv->rpc_conns = c;
    uv_read_start((uv_stream_t *)&c->h, alloc_cb, on_read);
}

int st_rpc_listen(st_server *srv, const char *spec)
{
    int rc;
    if (strncmp(spec, "unix:", 5) == 0 && spec[5]) {
        srv->rpc_is_pipe = true;
        srv->rpc_path = spec + 5;
        uv_pipe_init(srv->loop, &srv->rpc_listener.pipe, 0);
        srv->rpc_listener.pipe.data = srv;
        unlink(srv->rpc_path); /* a socket left by a previous run */
        rc = uv_pipe_bind(&srv->rpc_listener.pipe, srv->rpc_path);
    } else if (strncmp(spec, "tcp:", 4) == 0 && spec[4]) {
        char *end;
        long port = strtol(spec + 4, &end, 10);
        struct sockaddr_in addr;
        if (*end || port < 0 || port > 65535 ||
            uv_ip4_addr(srv->cfg.host, (int)port, &addr) < 0) {
            fprintf(stderr, "stretch serve: --rpc %s: expected tcp:PORT (0..65535) on an "
                            "IPv4 --host\n", spec);
            return -1;
        }
        uv_tcp_init(srv->loop, &srv->rpc_listener.tcp);
        srv->rpc_listener.tcp.data = srv;
        rc = uv_tcp_bind(&srv->rpc_listener.tcp, (const struct sockaddr *)&addr, 0);
    } else {
        fprintf(stderr, "stretch serve: --rpc %s: expected unix:PATH or tcp:PORT\n", spec);
        return -1;
    }
    srv->rpc_on = true;
    if (rc >= 0)
        rc = uv_listen((uv_stream_t *)&srv->rpc_listener, 128, on_connection);
    if (rc < 0) {
        fprintf(stderr, "stretch serve: --rpc %s: %s\n", spec, uv_strerror(rc));
        return rc;
    }
    if (srv->rpc_is_pipe) {
        printf("stretch serve: msgpack-RPC on unix:%s\n", srv->rpc_path);
    } else {
        struct sockaddr_in bound;
        int len = sizeof bound;
        uv_tcp_getsockname(&srv->rpc_listener.tcp, (struct sockaddr *)&bound, &len);
        printf("stretch serve: msgpack-RPC on tcp:%s:%d\n", srv->cfg.host,
               ntohs(bound.sin_port));
    }
    fflush(stdout);
    return 0;
}

bool st_rpc_stop(st_server *srv, bool close_conns)
{
    if (srv->rpc_on && !uv_is_closing((uv_handle_t *)&srv->rpc_listener)) {
        uv_close((uv_handle_t *)&srv->rpc_listener, NULL);
        if (srv->rpc_is_pipe)
            unlink(srv->rpc_path);
    }
    /* A connection with answers still being written closes on a later
     * call, so its last frames are not cut off. */
    for (st_rpc_conn *c = srv->rpc_conns, *next; close_conns && c; c = next) {
        next = c->next;
        if (c->pending_writes == 0)
            rpc_close(c);
    }
    return srv->rpc_conns == NULL;
}
