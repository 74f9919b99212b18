/*
 * tools/stretch/serve/embed_runner.c - /v1/embeddings, /v1/rerank and
 * /v1/score: the sentence encoders given with --embedding-model, each
 * owned by one thread that answers its jobs in order (an encoder runs one
 * batch at a time, on the engine's threads, so a second thread per
 * encoder would only queue).
 * Requests that wait together share a batch: many clients sending a text
 * each cost one pass through the model, not one each.
 * The encoders open before the server listens: a file that is not a
 * sentence encoder stops the start-up with a message naming it, instead
 * of failing every request later.
 */
#include "embed_cache.h"
#include "server.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stretch/encoder.h>

/* Texts per st_encoder_embed_batch call: its tokens go through the model
 * together, and a client that leaves is noticed between batches. */
#define EMBED_BATCH 64

typedef struct st_embedder {
    st_server *srv;
    char *name;
    char *path;
    st_encoder *enc;
    uint32_t dim;
    st_embed_cache *cache;     /* the recent vectors by text; NULL: none */
    int64_t created;           /* the file's mtime, for /v1/models */
    uv_thread_t thread;
    bool started;
    uv_cond_t wake;
    st_job_queue waiting;      /* queue_lock */
    struct st_embedder *next;
} st_embedder;

/* -- the response -- */

typedef struct out_buf {
    char *p;
    size_t len, cap;
    bool failed;
} out_buf;

static void put(out_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *grown = realloc(b->p, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(out_buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* The vector's float32 bytes, little-endian, in standard base64 (what
 * OpenAI's clients ask for by default and decode themselves). */
static void put_base64(out_buf *b, const float *v, uint32_t n)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t nb = (size_t)n * 4;
    uint8_t tri[3];
    size_t k = 0;
    char quad[4];
    for (size_t i = 0; i < nb; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i / 4], 4);
        tri[k++] = (uint8_t)(bits >> (8 * (i % 4)));
        if (k == 3 || i + 1 == nb) {
            uint32_t w = (uint32_t)tri[0] << 16 | (k > 1 ? (uint32_t)tri[1] << 8 : 0) |
                         (k > 2 ? tri[2] : 0);
            quad[0] = A[w >> 18 & 63];
            quad[1] = A[w >> 12 & 63];
            quad[2] = k > 1 ? A[w >> 6 & 63] : '=';
            quad[3] = k > 2 ? A[w & 63] : '=';
            put(b, quad, 4);
            k = 0;
        }
    }
}

/* {"object":"list","data":[...],"model":...,"usage":{...}}. Nine
 * significant digits give back each float32 exactly. */
static bool respond(st_job *job, const st_embedder *e, const float *vecs, size_t tokens)
{
    const st_embed_request *q = job->embed;
    out_buf b = {0};
    char num[96];
    puts_(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < q->n; i++) {
        const float *v = vecs + i * e->dim;
        snprintf(num, sizeof num, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":",
                 i ? "," : "", i);
        puts_(&b, num);
        if (q->base64) {
            puts_(&b, "\"");
            put_base64(&b, v, e->dim);
            puts_(&b, "\"}");
            continue;
        }
        puts_(&b, "[");
        for (uint32_t d = 0; d < e->dim; d++) {
            int n = snprintf(num, sizeof num, "%s%.9g", d ? "," : "", (double)v[d]);
            put(&b, num, (size_t)n);
        }
        puts_(&b, "]}");
    }
    /* The name passed st_models_stem_ok: nothing in it needs escaping. */
    puts_(&b, "],\"model\":\"");
    puts_(&b, e->name);
    snprintf(num, sizeof num, "\",\"usage\":{\"prompt_tokens\":%zu,", tokens);
    puts_(&b, num);
    snprintf(num, sizeof num, "\"total_tokens\":%zu}}", tokens);
    puts_(&b, num);
    if (b.failed) {
        free(b.p);
        return false;
    }
    st_job_respond_json(job, b.p, b.len);
    free(b.p);
    return true;
}

/* -- one job (the encoder's thread) -- */

/* Whether the job can run: a cancelled one, or one asking for another
 * vector length, is answered here. */
static bool job_ready(st_embedder *e, st_job *job)
{
    st_embed_request *q = job->embed;
    if (atomic_load(&job->cancel)) {
        st_job_fail(job, 503, "the request was cancelled before it started", NULL);
        return false;
    }
    if (q->dimensions >= 0 && (uint64_t)q->dimensions != e->dim) {
        char msg[256];
        snprintf(msg, sizeof msg, "'dimensions' is %lld: the model '%s' gives %u-dimensional "
                 "vectors and cannot shorten them", (long long)q->dimensions, e->name, e->dim);
        st_job_fail(job, 400, msg, "dimensions");
        return false;
    }
    return true;
}

/* The job's answer from its n vectors. Answering hands the job to the
 * loop, which may free it at once (job_finish): nothing reads it after. */
static void finish_job(st_embedder *e, st_job *job, const float *vecs, size_t tokens)
{
    size_t n = job->embed->n;
    /* A model whose weights make NaN has no JSON for it. */
    for (size_t i = 0; i < n * e->dim; i++)
        if (!isfinite(vecs[i])) {
            st_job_fail(job, 500, "the encoder gave a value that is not a finite number "
                        "(its weights are broken)", "model");
            return;
        }
    /* Counted before the answer goes out, so that a client that has it
     * finds it in /metrics. */
    atomic_fetch_add(&e->srv->metrics.embedded_texts, n);
    atomic_fetch_add(&e->srv->metrics.embedded_tokens, tokens);
    if (job->is_rpc)
        st_job_embeddings_rpc(job, vecs, n, e->dim, tokens);
    else if (job->embed->task == ST_ENCODE_RERANK)
        st_rerank_respond(job, e->name, vecs, e->dim, tokens);
    else if (job->embed->task == ST_ENCODE_SCORE)
        st_score_respond(job, e->name, vecs, e->dim, tokens);
    else if (!respond(job, e, vecs, tokens))
        st_job_fail(job, 500, "out of memory", NULL);
}

/* texts[n] (n <= EMBED_BATCH) into vecs and their tokens into n_tokens:
 * what the cache holds from there, the rest through the encoder in one
 * batch, then kept. */
static st_status embed_batch(st_embedder *e, size_t n, const char *const *texts,
                             const size_t *lens, float *vecs, size_t *n_tokens, st_error *err)
{
    const char *miss_texts[EMBED_BATCH];
    size_t miss_lens[EMBED_BATCH], miss_at[EMBED_BATCH], miss_tokens[EMBED_BATCH], n_miss = 0;
    memset(err, 0, sizeof *err);
    for (size_t k = 0; k < n; k++)
        if (!st_embed_cache_get(e->cache, texts[k], lens[k], vecs + k * e->dim, &n_tokens[k])) {
            miss_texts[n_miss] = texts[k];
            miss_lens[n_miss] = lens[k];
            miss_at[n_miss++] = k;
        }
    atomic_fetch_add(&e->srv->metrics.embedding_cache_hits, n - n_miss);
    if (n_miss == 0)
        return ST_OK;
    float *got = n_miss == n ? vecs : malloc(n_miss * e->dim * sizeof *got);
    if (!got) {
        snprintf(err->message, sizeof err->message, "out of memory");
        return ST_E_NOMEM;
    }
    int32_t *ids[EMBED_BATCH];
    st_status st = st_encoder_embed_batch(e->enc, n_miss, miss_texts, miss_lens, got, ids,
                                          miss_tokens, err);
    if (st == ST_OK) {
        atomic_fetch_add(&e->srv->metrics.embedding_batches, 1);
        for (size_t k = 0; k < n_miss; k++) {
            st_free(ids[k]);
            const float *v = got + k * e->dim;
            if (got != vecs)
                memcpy(vecs + miss_at[k] * e->dim, v, e->dim * sizeof *v);
            n_tokens[miss_at[k]] = miss_tokens[k];
            st_embed_cache_put(e->cache, miss_texts[k], miss_lens[k], v, miss_tokens[k]);
        }
    }
    if (got != vecs)
        free(got);
    return st;
}

/* One job on its own, EMBED_BATCH texts at a time. */
static void run_alone(st_embedder *e, st_job *job)
{
    st_embed_request *q = job->embed;
    float *vecs = malloc(q->n * e->dim * sizeof *vecs);
    if (!vecs) {
        st_job_fail(job, 500, "out of memory", NULL);
        return;
    }
    size_t tokens = 0;
    for (size_t i = 0; i < q->n; i += EMBED_BATCH) {
        if (atomic_load(&job->cancel)) {
            st_job_fail(job, 503, "the request was cancelled", NULL);
            free(vecs);
            return;
        }
        size_t m = q->n - i < EMBED_BATCH ? q->n - i : EMBED_BATCH, n_tok[EMBED_BATCH];
        st_error err;
        st_status st = embed_batch(e, m, (const char *const *)q->texts + i, q->lens + i,
                                   vecs + i * e->dim, n_tok, &err);
        if (st != ST_OK) {
            char msg[512];
            snprintf(msg, sizeof msg, "input[%zu..%zu]: %.400s", i, i + m - 1, err.message);
            st_job_fail(job, st == ST_E_INVALID ? 400 : 500, msg, "input");
            free(vecs);
            return;
        }
        for (size_t k = 0; k < m; k++)
            tokens += n_tok[k];
    }
    finish_job(e, job, vecs, tokens);
    free(vecs);
}

/* Jobs that waited together, their texts at most EMBED_BATCH in all: one
 * batch through the encoder for all of them (each vector is the one its
 * text gets alone, so a request's answer does not depend on its company).
 * Should the batch fail, each job runs alone, so only its own input can
 * fail it. */
static void run_group(st_embedder *e, st_job **jobs, size_t n_jobs)
{
    const char *texts[EMBED_BATCH];
    size_t lens[EMBED_BATCH], n_tok[EMBED_BATCH], first[EMBED_BATCH + 1], n = 0, n_live = 0;
    st_job *live[EMBED_BATCH];
    for (size_t j = 0; j < n_jobs; j++) {
        st_embed_request *q = jobs[j]->embed;
        if (!job_ready(e, jobs[j]))
            continue;
        first[n_live] = n;
        live[n_live++] = jobs[j];
        for (size_t i = 0; i < q->n; i++, n++) {
            texts[n] = q->texts[i];
            lens[n] = q->lens[i];
        }
    }
    first[n_live] = n;
    if (n_live == 0)
        return;
    float *vecs = malloc(n * e->dim * sizeof *vecs);
    st_error err;
    if (!vecs || embed_batch(e, n, texts, lens, vecs, n_tok, &err) != ST_OK) {
        free(vecs);
        for (size_t j = 0; j < n_live; j++)
            run_alone(e, live[j]);
        return;
    }
    for (size_t j = 0; j < n_live; j++) {
        size_t tokens = 0;
        for (size_t i = first[j]; i < first[j + 1]; i++)
            tokens += n_tok[i];
        finish_job(e, live[j], vecs + first[j] * e->dim, tokens);
    }
    free(vecs);
}

static void embedder_main(void *arg)
{
    st_embedder *e = arg;
    st_server *srv = e->srv;
    for (;;) {
        uv_mutex_lock(&srv->queue_lock);
        while (!srv->quit && !e->waiting.head)
            uv_cond_wait(&e->wake, &srv->queue_lock);
        /* The first waiting job, and those after it whose texts still fit
         * one batch with it. */
        st_job *group[EMBED_BATCH];
        size_t n_jobs = 0, n_texts = 0;
        while (e->waiting.head && n_jobs < EMBED_BATCH &&
               (n_jobs == 0 || n_texts + e->waiting.head->embed->n <= EMBED_BATCH)) {
            st_job *job = st_job_queue_pop(&e->waiting);
            group[n_jobs++] = job;
            n_texts += job->embed->n;
        }
        uv_mutex_unlock(&srv->queue_lock);
        if (n_jobs == 0)
            return; /* quit with nothing queued */
        if (n_jobs == 1 && n_texts > EMBED_BATCH) {
            if (job_ready(e, group[0]))
                run_alone(e, group[0]);
        } else {
            run_group(e, group, n_jobs);
        }
    }
}

/* -- start-up, lookup, shutdown -- */

static void embedder_free(st_embedder *e)
{
    st_embed_cache_free(e->cache);
    st_encoder_close(e->enc);
    free(e->name);
    free(e->path);
    free(e);
}

/* "NAME=PATH", or "PATH" named by its file name without .gguf. */
static st_embedder *embedder_new(st_server *srv, const char *spec)
{
    st_embedder *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->srv = srv;
    const char *eq = strchr(spec, '='), *path = eq ? eq + 1 : spec;
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    size_t n = eq ? (size_t)(eq - spec) : strlen(base);
    const char *from = eq ? spec : base;
    if (!eq && n > 5 && strcmp(base + n - 5, ".gguf") == 0)
        n -= 5;
    e->name = strndup(from, n);
    e->path = strdup(path);
    if (!e->name || !e->path) {
        embedder_free(e);
        return NULL;
    }
    return e;
}

static bool open_one(st_server *srv, const char *spec)
{
    st_embedder *e = embedder_new(srv, spec);
    if (!e) {
        fprintf(stderr, "stretch serve: out of memory\n");
        return false;
    }
    const char *why = NULL;
    char msg[600];
    char *manifest = st_models_resolve(srv->cfg.manifests_dir, e->name);
    if (!st_models_stem_ok(e->name))
        why = "the name may hold only letters, digits, '-', '_' and '.' (give NAME=GGUF)";
    else if (st_embedder_exists(srv, e->name))
        why = "another --embedding-model has this name (give NAME=GGUF)";
    else if (manifest)
        why = "a manifest in --manifests has this name (give NAME=GGUF)";
    free(manifest);
    st_error err;
    memset(&err, 0, sizeof err);
    st_engine_options opts = {.struct_size = sizeof opts, .n_threads = srv->cfg.n_threads};
    if (!why && st_encoder_open(e->path, &opts, &e->enc, &err) != ST_OK) {
        snprintf(msg, sizeof msg, "%.500s", err.message);
        why = msg;
    }
    if (why) {
        fprintf(stderr, "stretch serve: --embedding-model %s: %s\n", spec, why);
        embedder_free(e);
        return false;
    }
    e->dim = st_encoder_dim(e->enc);
    /* Without memory for it the encoder serves all the same, uncached. */
    e->cache = st_embed_cache_new(srv->cfg.embedding_cache_bytes, e->dim);
    struct stat st;
    e->created = stat(e->path, &st) == 0 ? (int64_t)st.st_mtime : 0;
    if (uv_cond_init(&e->wake) != 0) {
        embedder_free(e);
        return false;
    }
    if (uv_thread_create(&e->thread, embedder_main, e) != 0) {
        fprintf(stderr, "stretch serve: --embedding-model %s: cannot start its thread\n", spec);
        uv_cond_destroy(&e->wake);
        embedder_free(e);
        return false;
    }
    e->started = true;
    st_embedder **end = &srv->embedders; /* in the order given */
    while (*end)
        end = &(*end)->next;
    *end = e;
    fprintf(stderr, "stretch serve: embedding model '%s' (%u dimensions, at most %u tokens a "
                    "text) from %s\n", e->name, e->dim, st_encoder_max_tokens(e->enc), e->path);
    return true;
}

bool st_embedders_open(st_server *srv)
{
    for (uint32_t i = 0; i < srv->cfg.n_embedding_models; i++)
        if (!open_one(srv, srv->cfg.embedding_models[i]))
            return false;
    return true;
}

static st_embedder *find(const st_server *srv, const char *name)
{
    st_embedder *e = srv->embedders;
    while (e && strcmp(e->name, name) != 0)
        e = e->next;
    return e;
}

const char *st_embedder_name_at(const st_server *srv, size_t i)
{
    const st_embedder *e = srv->embedders;
    while (e && i--)
        e = e->next;
    return e ? e->name : NULL;
}

bool st_embedder_exists(const st_server *srv, const char *name)
{
    return name && find(srv, name) != NULL;
}

bool st_embed_enqueue(st_server *srv, st_job *job)
{
    st_embedder *e = find(srv, job->embed->model);
    if (!e)
        return false;
    uv_mutex_lock(&srv->queue_lock);
    if (e->waiting.n >= srv->cfg.max_queue) {
        uv_mutex_unlock(&srv->queue_lock);
        return false;
    }
    st_job_queue_push(&e->waiting, job);
    uv_cond_signal(&e->wake);
    uv_mutex_unlock(&srv->queue_lock);
    st_jobs_track(srv, job);
    return true;
}

void st_embedders_list(const st_server *srv, void *json_array)
{
    for (const st_embedder *e = srv->embedders; e; e = e->next)
        json_array_append_new(json_array,
                              json_pack("{s:s, s:s, s:I, s:s, s:i}", "id", e->name, "object",
                                        "model", "created", (json_int_t)e->created, "owned_by",
                                        "stretch", "dimensions", (int)e->dim));
}

void st_embedders_stop(st_server *srv)
{
    uv_mutex_lock(&srv->queue_lock);
    srv->quit = true;
    for (st_embedder *e = srv->embedders; e; e = e->next)
        uv_cond_signal(&e->wake);
    uv_mutex_unlock(&srv->queue_lock);
    for (st_embedder *e = srv->embedders, *next; e; e = next) {
        next = e->next;
        if (e->started) {
            uv_thread_join(&e->thread);
            uv_cond_destroy(&e->wake);
        }
        embedder_free(e);
    }
    srv->embedders = NULL;
}
