/*
 * tools/stretch/serve/routes.c - what each request means: authentication,
 * the quick endpoints answered on the loop thread (/health, /metrics,
 * /v1/models), and the completion, embeddings, rerank and score
 * endpoints, which are checked here and queued for their model's runner
 * or encoder.
 */
#include "server.h"
#include "tool_pick.h"
#include "tool_ranker.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void send_body(st_conn *c, int status, const char *type, const char *body, size_t len,
                      bool keep_alive)
{
    size_t n = 0;
    char *resp = st_http_response(status, type, body, len, keep_alive, NULL, &n);
    if (resp)
        st_conn_write(c, resp, n);
    free(resp);
    st_conn_request_done(c, keep_alive && resp);
}

static void send_json(st_conn *c, json_t *v, bool keep_alive)
{
    char *body = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!body) {
        st_conn_send_error(c, 500, "out of memory", NULL, false);
        return;
    }
    send_body(c, 200, "application/json", body, strlen(body), keep_alive);
    free(body);
}

/* Compare without stopping at the first difference, so the time taken
 * says nothing about how much of a guessed key was right. */
static bool key_matches(const char *given, const char *key)
{
    size_t n = strlen(key), m = given ? strlen(given) : 0;
    unsigned diff = (unsigned)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned)(unsigned char)key[i] ^ (unsigned)(unsigned char)(i < m ? given[i] : 0);
    return diff == 0;
}

static bool authorized(st_conn *c)
{
    const char *key = c->srv->cfg.api_key;
    if (!key)
        return true;
    const char *h = c->authorization;
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    return key_matches(h + 7, key);
}

static void models(st_conn *c, bool keep_alive)
{
    size_t n = 0;
    char **stems = st_models_list(c->srv->cfg.manifests_dir, &n);
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s.yaml", c->srv->cfg.manifests_dir, stems[i]);
        json_int_t created = stat(path, &st) == 0 ? (json_int_t)st.st_mtime : 0;
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s}", "id", stems[i], "object",
                                              "model", "created", created, "owned_by",
                                              "stretch"));
    }
    st_models_free(stems, n);
    st_embedders_list(c->srv, data);
    /* Manifests that failed to load (the old version, if any, serves). */
    json_t *errors = json_array();
    st_runners_errors(c->srv, errors);
    send_json(c, json_pack("{s:s, s:o, s:o}", "object", "list", "data", data, "errors", errors),
              keep_alive);
}

static void metrics(st_conn *c, bool keep_alive)
{
    st_server *srv = c->srv;
    st_server_metrics *m = &srv->metrics;
    uv_mutex_lock(&srv->queue_lock);
    uint32_t queued = srv->queue_len, running = srv->running;
    uv_mutex_unlock(&srv->queue_lock);
    uint32_t refilling = st_runners_idle_work(srv);
    uint64_t gen = atomic_load(&m->generated_tokens), done = atomic_load(&m->completions);
    double decode_s = atomic_load(&m->decode_us) / 1e6;
    uint64_t tool_lists = st_tool_ranker_lists_indexed(srv->tool_ranker);
    char body[4608];
    int n = snprintf(body, sizeof body,
        "# HELP stretch_requests_total HTTP requests received.\n"
        "# TYPE stretch_requests_total counter\nstretch_requests_total %llu\n"
        "# HELP stretch_request_errors_total Requests answered with an error.\n"
        "# TYPE stretch_request_errors_total counter\nstretch_request_errors_total %llu\n"
        "# HELP stretch_completions_total Completions generated.\n"
        "# TYPE stretch_completions_total counter\nstretch_completions_total %llu\n"
        "# HELP stretch_prompt_tokens_total Prompt tokens processed.\n"
        "# TYPE stretch_prompt_tokens_total counter\nstretch_prompt_tokens_total %llu\n"
        "# HELP stretch_prompt_tokens_cached_total Prompt tokens taken from a sequence's cache.\n"
        "# TYPE stretch_prompt_tokens_cached_total counter\n"
        "stretch_prompt_tokens_cached_total %llu\n"
        "# HELP stretch_retrieval_queries_total Retriever lookups for retrieval-augmented "
        "prompts.\n"
        "# TYPE stretch_retrieval_queries_total counter\n"
        "stretch_retrieval_queries_total %llu\n"
        "# HELP stretch_tool_retrievals_total Chat requests whose tools --tool-retriever "
        "chose.\n"
        "# TYPE stretch_tool_retrievals_total counter\nstretch_tool_retrievals_total %llu\n"
        "# HELP stretch_tool_lists_indexed_total Tool lists --tool-retriever indexed (a list "
        "seen again is not).\n"
        "# TYPE stretch_tool_lists_indexed_total counter\n"
        "stretch_tool_lists_indexed_total %llu\n"
        "# HELP stretch_generated_tokens_total Tokens generated.\n"
        "# TYPE stretch_generated_tokens_total counter\nstretch_generated_tokens_total %llu\n"
        "# HELP stretch_prefill_seconds_total Time spent on prompts.\n"
        "# TYPE stretch_prefill_seconds_total counter\nstretch_prefill_seconds_total %.6f\n"
        "# HELP stretch_decode_seconds_total Time spent generating after the first token.\n"
        "# TYPE stretch_decode_seconds_total counter\nstretch_decode_seconds_total %.6f\n"
        "# HELP stretch_time_per_token_seconds Mean decode time per generated token.\n"
        "# TYPE stretch_time_per_token_seconds gauge\nstretch_time_per_token_seconds %.6f\n"
        "# HELP stretch_time_to_first_token_seconds Mean time from queueing to the first token.\n"
        "# TYPE stretch_time_to_first_token_seconds gauge\n"
        "stretch_time_to_first_token_seconds %.6f\n"
        "# HELP stretch_embedded_texts_total Texts embedded on /v1/embeddings and "
        "/v1/rerank.\n"
        "# TYPE stretch_embedded_texts_total counter\nstretch_embedded_texts_total %llu\n"
        "# HELP stretch_embedded_tokens_total Tokens of the texts embedded.\n"
        "# TYPE stretch_embedded_tokens_total counter\nstretch_embedded_tokens_total %llu\n"
        "# HELP stretch_embedding_batches_total Batches the sentence encoders ran.\n"
        "# TYPE stretch_embedding_batches_total counter\n"
        "stretch_embedding_batches_total %llu\n"
        "# HELP stretch_embedding_cache_hits_total Texts whose vector came from the "
        "encoder's cache (--embedding-cache).\n"
        "# TYPE stretch_embedding_cache_hits_total counter\n"
        "stretch_embedding_cache_hits_total %llu\n"
        "# HELP stretch_queue_length Requests waiting for a sequence.\n"
        "# TYPE stretch_queue_length gauge\nstretch_queue_length %u\n"
        "# HELP stretch_requests_running Requests generating now.\n"
        "# TYPE stretch_requests_running gauge\nstretch_requests_running %u\n"
        "# HELP stretch_models_refilling Models whose idle engine is prefilling answers again "
        "for the prefix cache.\n"
        "# TYPE stretch_models_refilling gauge\nstretch_models_refilling %u\n",
        (unsigned long long)atomic_load(&m->requests), (unsigned long long)atomic_load(&m->errors),
        (unsigned long long)done, (unsigned long long)atomic_load(&m->prompt_tokens),
        (unsigned long long)atomic_load(&m->cached_prompt_tokens),
        (unsigned long long)atomic_load(&m->retrieval_queries),
        (unsigned long long)atomic_load(&m->tool_retrievals), (unsigned long long)tool_lists,
        (unsigned long long)gen,
        atomic_load(&m->prefill_us) / 1e6, decode_s,
        gen > done ? decode_s / (double)(gen - done) : 0.0,
        done ? atomic_load(&m->ttft_us) / 1e6 / (double)done : 0.0,
        (unsigned long long)atomic_load(&m->embedded_texts),
        (unsigned long long)atomic_load(&m->embedded_tokens),
        (unsigned long long)atomic_load(&m->embedding_batches),
        (unsigned long long)atomic_load(&m->embedding_cache_hits), queued, running, refilling);
    send_body(c, 200, "text/plain; version=0.0.4", body, (size_t)n, keep_alive);
}

/* A job for a model runner that exists, or the 404 naming the model
 * (and, for an encoder, what it answers); NULL when answered already. */
static st_job *model_job(st_conn *c, st_gen_request *req, const char *what, bool keep_alive)
{
    char msg[512];
    char *path = st_models_resolve(c->srv->cfg.manifests_dir, req->model);
    if (!path) {
        if (st_embedder_exists(c->srv, req->model))
            snprintf(msg, sizeof msg, "the model '%.200s' is a sentence encoder: it answers "
                     "POST /v1/embeddings, not %s", req->model, what);
        else
            snprintf(msg, sizeof msg, "the model '%.200s' does not exist (GET /v1/models "
                     "lists the served ones)", req->model);
        st_gen_request_free(req);
        st_conn_send_error(c, 404, msg, "model", keep_alive);
        return NULL;
    }
    free(path);
    st_job *job = st_job_new(c->srv, c, req, keep_alive);
    if (!job) {
        st_gen_request_free(req);
        st_conn_send_error(c, 500, "out of memory", NULL, false);
    }
    return job;
}

static void enqueue(st_conn *c, st_job *job, bool keep_alive)
{
    c->job = job;
    if (!st_job_enqueue(c->srv, job)) {
        c->job = NULL;
        st_job_free(job);
        st_conn_send_error(c, 429, "too many requests are waiting: try again shortly", NULL,
                           keep_alive);
    }
}

/* A request whose tools --tool-retriever chose: queued for its model now,
 * unless its client left meanwhile (or the server is stopping: it is
 * then answered as a request that had not started). */
static void tools_picked(st_job *job)
{
    st_conn *c = job->conn;
    if (!c) {
        st_job_free(job);
        return;
    }
    if (c->srv->stopping)
        atomic_store(&job->cancel, 1);
    enqueue(c, job, job->keep_alive_asked);
}

/* POST /v1/chat/completions (chat), /v1/completions, or /apply-template
 * (template_only: a chat request whose prompt is answered as text, not
 * run; its tools are chosen as the chat's would be). */
static void completion(st_conn *c, bool chat, bool template_only, bool keep_alive)
{
    st_gen_request req;
    char msg[512];
    const char *param = NULL;
    if (!st_gen_request_parse(c->body, c->body_len, chat, &req, msg, sizeof msg, &param)) {
        st_conn_send_error(c, 400, msg, param, keep_alive);
        return;
    }
    if (template_only)
        req.stream = false; /* the answer is one object */
    st_job *job = model_job(c, &req, template_only ? "/apply-template" : "completions",
                            keep_alive);
    if (job)
        job->template_only = template_only;
    if (job && st_tool_pick_start(job, tools_picked)) {
        c->job = job; /* the client leaving detaches it meanwhile */
        return;
    }
    if (job)
        enqueue(c, job, keep_alive);
}

/* POST /tokenize and /detokenize: the model's own tokenizer, run by its
 * runner (which owns the engine) without a sequence. */
static void tokenizer(st_conn *c, bool detokenize, bool keep_alive)
{
    st_gen_request req;
    char msg[512];
    const char *param = NULL;
    bool add_special = true;
    if (!st_tokenize_request_parse(c->body, c->body_len, detokenize, &req, &add_special, msg,
                                   sizeof msg, &param)) {
        st_conn_send_error(c, 400, msg, param, keep_alive);
        return;
    }
    st_job *job = model_job(c, &req, detokenize ? "/detokenize" : "/tokenize", keep_alive);
    if (!job)
        return;
    job->tokenize_only = !detokenize;
    job->detokenize_only = detokenize;
    job->tokenize_special = true; /* as a text completion's prompt */
    job->tokenize_bos = add_special;
    enqueue(c, job, keep_alive);
}

/* The value of `key` in the URL's query string, into out; false when absent. */
static bool query_value(const char *url, const char *key, char *out, size_t cap)
{
    const char *q = url ? strchr(url, '?') : NULL;
    size_t k = strlen(key);
    for (const char *p = q; p && *p;) {
        p++;
        size_t n = strcspn(p, "&#");
        if (n > k && !strncmp(p, key, k) && p[k] == '=') {
            snprintf(out, cap, "%.*s", (int)(n - k - 1), p + k + 1);
            return true;
        }
        p += n;
        if (*p != '&')
            break;
    }
    return false;
}

/* GET /props[?model=NAME] (llama-server's): a model's context, slots,
 * special tokens and strategy, from its runner (which opens the engine).
 * Without ?model= the server's only manifest is meant. */
static void props(st_conn *c, bool keep_alive)
{
    char name[256], msg[512];
    if (!query_value(c->url, "model", name, sizeof name)) {
        size_t n = 0;
        char **stems = st_models_list(c->srv->cfg.manifests_dir, &n);
        if (n == 1)
            snprintf(name, sizeof name, "%s", stems[0]);
        st_models_free(stems, n);
        if (n != 1) {
            snprintf(msg, sizeof msg, "this server has %zu models: name one, GET "
                     "/props?model=NAME (GET /v1/models lists them)", n);
            st_conn_send_error(c, 400, msg, "model", keep_alive);
            return;
        }
    }
    st_gen_request req;
    memset(&req, 0, sizeof req);
    if (!(req.model = strdup(name))) {
        st_conn_send_error(c, 500, "out of memory", NULL, false);
        return;
    }
    st_job *job = model_job(c, &req, "GET /props", keep_alive);
    if (!job)
        return;
    job->props_only = true;
    enqueue(c, job, keep_alive);
}

/* POST /slots/ID?action=save|restore|erase: llama-server's slot files. A
 * slot is one of a model's sequences (0 .. parallel - 1); its runner does
 * the work when the sequence is free. */
static void slots(st_conn *c, const char *path, bool keep_alive)
{
    char msg[512], action[16] = "";
    const char *param = NULL;
    const char *digits = path + strlen("/slots/");
    char *end = NULL;
    unsigned long id = strtoul(digits, &end, 10);
    if (!*digits || *digits < '0' || *digits > '9' || *end || id >= ST_PARALLEL_MAX) {
        snprintf(msg, sizeof msg, "no such slot: '%.100s' (slots are numbered from 0)", digits);
        st_conn_send_error(c, 404, msg, NULL, keep_alive);
        return;
    }
    query_value(c->url, "action", action, sizeof action);
    int what = !strcmp(action, "save") ? ST_SLOT_SAVE : !strcmp(action, "restore")
               ? ST_SLOT_RESTORE : !strcmp(action, "erase") ? ST_SLOT_ERASE : 0;
    if (!what) {
        snprintf(msg, sizeof msg, "?action=%.16s: expected save, restore or erase", action);
        st_conn_send_error(c, 400, msg, "action", keep_alive);
        return;
    }
    const char *dir = c->srv->cfg.slot_save_path;
    if (what != ST_SLOT_ERASE && !dir) {
        st_conn_send_error(c, 501, "slot files are off: start the server with "
                           "--slot-save-path DIR", NULL, keep_alive);
        return;
    }
    st_gen_request req;
    char *name = NULL;
    if (!st_slot_request_parse(c->body, c->body_len, what != ST_SLOT_ERASE, &req, &name, msg,
                               sizeof msg, &param)) {
        st_conn_send_error(c, 400, msg, param, keep_alive);
        return;
    }
    st_job *job = model_job(c, &req, "/slots", keep_alive);
    if (!job) {
        free(name);
        return;
    }
    job->slot_action = what;
    job->slot_id = (uint32_t)id;
    if (name) {
        size_t n = strlen(dir) + strlen(name) + 2;
        if ((job->slot_file = malloc(n)))
            snprintf(job->slot_file, n, "%s/%s", dir, name);
        free(name);
        if (!job->slot_file) {
            st_job_free(job);
            st_conn_send_error(c, 500, "out of memory", NULL, false);
            return;
        }
    }
    enqueue(c, job, keep_alive);
}

/* A rerank or score request that names no model takes the server's only
 * encoder (llama-server's clients often leave it out); false, with the
 * refusal in msg, when there is none or more than one to choose from. */
static bool default_encoder(st_conn *c, st_embed_request *req, char *msg, size_t size)
{
    const char *only = st_embedder_name_at(c->srv, 0);
    if (!only || st_embedder_name_at(c->srv, 1)) {
        snprintf(msg, size, "'model' is required: this server has %s sentence encoders (GET "
                 "/v1/models lists them)", only ? "several" : "no");
        return false;
    }
    if (!(req->model = strdup(only))) {
        snprintf(msg, size, "out of memory");
        return false;
    }
    return true;
}

/* POST /v1/embeddings, /v1/rerank or /v1/score (task: ST_ENCODE_*): all
 * run on a sentence encoder's thread. */
static void encoder_request(st_conn *c, int task, bool keep_alive)
{
    st_embed_request *req = calloc(1, sizeof *req);
    char msg[512];
    const char *param = NULL;
    const char *path = task == ST_ENCODE_RERANK  ? "/v1/rerank"
                       : task == ST_ENCODE_SCORE ? "/v1/score"
                                                 : "/v1/embeddings";
    if (!req) {
        st_conn_send_error(c, 500, "out of memory", NULL, false);
        return;
    }
    bool (*parse)(const char *, size_t, st_embed_request *, char *, size_t, const char **) =
        task == ST_ENCODE_RERANK  ? st_rerank_request_parse
        : task == ST_ENCODE_SCORE ? st_score_request_parse
                                  : st_embed_request_parse;
    bool parsed = parse(c->body, c->body_len, req, msg, sizeof msg, &param);
    if (parsed && !req->model && !default_encoder(c, req, msg, sizeof msg)) {
        st_embed_request_free(req);
        parsed = false;
        param = "model";
    }
    if (!parsed) {
        free(req);
        st_conn_send_error(c, 400, msg, param, keep_alive);
        return;
    }
    if (!st_embedder_exists(c->srv, req->model)) {
        char *manifest = st_models_resolve(c->srv->cfg.manifests_dir, req->model);
        int status = manifest ? 400 : 404;
        if (manifest)
            snprintf(msg, sizeof msg, "the model '%.200s' generates text: %s serves the "
                     "sentence encoders given with 'stretch serve --embedding-model' (GET "
                     "/v1/models lists them)", req->model, path);
        else
            snprintf(msg, sizeof msg, "the model '%.200s' does not exist (GET /v1/models "
                     "lists the served ones)", req->model);
        free(manifest);
        st_embed_request_free(req);
        free(req);
        st_conn_send_error(c, status, msg, "model", keep_alive);
        return;
    }
    st_job *job = st_job_new_embed(c->srv, c, req, keep_alive);
    if (!job) {
        st_embed_request_free(req);
        free(req);
        st_conn_send_error(c, 500, "out of memory", NULL, false);
        return;
    }
    c->job = job;
    if (!st_embed_enqueue(c->srv, job)) {
        c->job = NULL;
        st_job_free(job);
        st_conn_send_error(c, 429, "too many requests are waiting: try again shortly", NULL,
                           keep_alive);
    }
}

void st_route_request(st_conn *c)
{
    st_server *srv = c->srv;
    atomic_fetch_add(&srv->metrics.requests, 1);
    bool keep_alive = http_should_keep_alive(&c->parser) != 0;
    const char *method = http_method_str((enum http_method)c->parser.method);
    /* The path without a query string. */
    char path[256];
    size_t n = strcspn(c->url ? c->url : "", "?#");
    snprintf(path, sizeof path, "%.*s", (int)(n < sizeof path ? n : sizeof path - 1),
             c->url ? c->url : "");
    if (srv->stopping) {
        st_conn_send_error(c, 503, "the server is shutting down", NULL, false);
        return;
    }
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0;
    if (strcmp(path, "/health") == 0) {
        if (!get)
            st_conn_send_error(c, 405, "use GET /health", NULL, keep_alive);
        else
            send_body(c, 200, "application/json", "{\"status\":\"ok\"}", 15, keep_alive);
        return;
    }
    if (!authorized(c)) {
        st_conn_send_error(c, 401, "a valid API key is required: send the header "
                           "'Authorization: Bearer KEY'", NULL, keep_alive);
        return;
    }
    /* What each path runs; the index into the table is never the meaning. */
    enum route { METRICS, MODELS, PROPS, CHAT, COMPLETION, TEMPLATE, EMBED, RERANK, SCORE,
                 TOKENIZE, DETOKENIZE };
    static const struct { const char *path; bool post; enum route what; } routes[] = {
        {"/metrics", false, METRICS}, {"/v1/models", false, MODELS}, {"/props", false, PROPS},
        {"/v1/chat/completions", true, CHAT}, {"/v1/completions", true, COMPLETION},
        {"/apply-template", true, TEMPLATE}, {"/v1/embeddings", true, EMBED},
        /* llama-server's four spellings of one endpoint (vLLM's is the third) */
        {"/rerank", true, RERANK}, {"/reranking", true, RERANK}, {"/v1/rerank", true, RERANK},
        {"/v1/reranking", true, RERANK},
        {"/v1/score", true, SCORE}, {"/score", true, SCORE}, /* vLLM's */
        {"/tokenize", true, TOKENIZE}, {"/detokenize", true, DETOKENIZE},
    };
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if (routes[i].post ? !post : !get) {
            char m[160];
            snprintf(m, sizeof m, "use %s %s", routes[i].post ? "POST" : "GET", routes[i].path);
            st_conn_send_error(c, 405, m, NULL, keep_alive);
            return;
        }
        switch (routes[i].what) {
        case METRICS: metrics(c, keep_alive); break;
        case MODELS: models(c, keep_alive); break;
        case PROPS: props(c, keep_alive); break;
        case CHAT: completion(c, true, false, keep_alive); break;
        case COMPLETION: completion(c, false, false, keep_alive); break;
        case TEMPLATE: completion(c, true, true, keep_alive); break;
        case EMBED: encoder_request(c, ST_ENCODE_VECTORS, keep_alive); break;
        case RERANK: encoder_request(c, ST_ENCODE_RERANK, keep_alive); break;
        case SCORE: encoder_request(c, ST_ENCODE_SCORE, keep_alive); break;
        case TOKENIZE: tokenizer(c, false, keep_alive); break;
        case DETOKENIZE: tokenizer(c, true, keep_alive); break;
        }
        return;
    }
    if (!strncmp(path, "/slots/", 7)) {
        if (!post)
            st_conn_send_error(c, 405, "use POST /slots/ID?action=save|restore|erase", NULL,
                               keep_alive);
        else
            slots(c, path, keep_alive);
        return;
    }
    char m[320];
    snprintf(m, sizeof m, "no such endpoint: %s %.200s", method, path);
    st_conn_send_error(c, 404, m, NULL, keep_alive);
}

int st_serve_tool_format(const st_server_config *cfg, const char *model)
{
    size_t n = strlen(model);
    /* The last given for a model wins, as with any repeated option. */
    for (uint32_t k = cfg->n_tool_formats; k-- > 0;) {
        const char *e = cfg->tool_format_models[k];
        if (strncmp(e, model, n) == 0 && e[n] == '=' && !strchr(e + n + 1, '='))
            return cfg->tool_format_of[k];
    }
    return cfg->tool_format;
}
