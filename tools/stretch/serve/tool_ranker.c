/*
 * tools/stretch/serve/tool_ranker.c - `stretch serve --tool-retriever`:
 * which of a request's tools the model is shown. A request may list
 * hundreds of functions (the Massive Tool Retrieval Benchmark's MetaTool
 * has 199), far more than a small model's prompt should hold; the
 * retriever a strategy manifest names (bm25, embedding, hybrid) ranks
 * them for the conversation's last user message and the best tool_top_k
 * are shown, as `stretch eval retrieval` ranks MTRB's tools.
 *
 * Clients send the same tool list with every request, so each list is
 * indexed once: the last few lists' retrievers stay open, found by a hash
 * of the tools' texts, and a request with a known list only queries. One
 * lock guards them (a retriever serves one thread at a time); runners of
 * different models wait for each other only while one indexes.
 */
#include "tool_ranker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/retrieval.h>

#include "tool_calls.h"

/* Tool lists kept indexed. Each holds its own retriever, and an embedding
 * retriever its own encoder (MiniLM: 90 MB), so only a few. */
#define RANKER_SLOTS 4

typedef struct ranked_list {
    uint64_t hash;             /* of the tools' texts, in order */
    size_t n;
    st_retriever *ret;
    uint64_t last_used;
} ranked_list;

struct st_tool_ranker {
    char *manifest;
    bool with_names;
    st_engine_options opts;
    uv_mutex_t lock;
    ranked_list slots[RANKER_SLOTS];
    uint64_t clock;
    atomic_uint_fast64_t lists_indexed;
};

/* What tool i is found by: "name: description", or the description. */
static char *tool_text(const st_gen_request *req, size_t i, bool with_names)
{
    const char *d = st_tools_description(req, i), *name = req->tool_names[i];
    size_t n = strlen(name) + strlen(d) + 3;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", with_names ? name : "", with_names ? ": " : "", d);
    return s;
}

/* FNV-1a over every text and its terminating NUL. */
static uint64_t hash_texts(char *const *texts, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        for (const char *p = texts[i];; p++) {
            h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
            if (!*p)
                break;
        }
    return h;
}

st_tool_ranker *st_tool_ranker_open(const char *manifest, bool with_names, uint32_t n_threads,
                                    char *msg, size_t size)
{
    st_engine_options opts = {.struct_size = sizeof opts, .n_threads = n_threads};
    st_retriever *probe = NULL;
    st_error err;
    memset(&err, 0, sizeof err);
    /* Opened once now, so a wrong manifest stops the start-up. */
    if (st_retriever_open(manifest, &opts, ST_RETRIEVER_NO_INDEX, &probe, &err) != ST_OK) {
        snprintf(msg, size, "%.400s", err.message);
        return NULL;
    }
    bool rerank = st_retriever_rerank(probe) > 0;
    st_retriever_close(probe);
    if (rerank) {
        snprintf(msg, size, "%.300s: its retriever re-ranks with a model (rerank:), which "
                 "choosing tools does not run; leave rerank out", manifest);
        return NULL;
    }
    st_tool_ranker *t = calloc(1, sizeof *t);
    if (!t || !(t->manifest = strdup(manifest)) || uv_mutex_init(&t->lock) != 0) {
        if (t)
            free(t->manifest);
        free(t);
        snprintf(msg, size, "out of memory");
        return NULL;
    }
    t->with_names = with_names;
    t->opts = opts;
    return t;
}

void st_tool_ranker_close(st_tool_ranker *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < RANKER_SLOTS; i++)
        if (t->slots[i].ret)
            st_retriever_close(t->slots[i].ret);
    uv_mutex_destroy(&t->lock);
    free(t->manifest);
    free(t);
}

uint64_t st_tool_ranker_lists_indexed(st_tool_ranker *t)
{
    return t ? atomic_load(&t->lists_indexed) : 0;
}

/* The retriever holding these texts: a kept one, or a new one in the
 * least recently used slot. Under the lock. */
static st_status list_for(st_tool_ranker *t, char *const *texts, size_t n, st_retriever **out,
                          st_error *err)
{
    uint64_t h = hash_texts(texts, n);
    ranked_list *victim = &t->slots[0];
    for (size_t i = 0; i < RANKER_SLOTS; i++) {
        ranked_list *s = &t->slots[i];
        if (s->ret && s->hash == h && s->n == n) {
            s->last_used = ++t->clock;
            *out = s->ret;
            return ST_OK;
        }
        if (!s->ret || (victim->ret && s->last_used < victim->last_used))
            victim = s;
    }
    st_retriever *ret = NULL;
    st_status st = st_retriever_open(t->manifest, &t->opts, ST_RETRIEVER_NO_INDEX, &ret, err);
    char **ids = st == ST_OK ? calloc(n, sizeof *ids) : NULL;
    size_t *id_lens = ids ? calloc(n, sizeof *id_lens) : NULL;
    size_t *lens = id_lens ? calloc(n, sizeof *lens) : NULL;
    if (st == ST_OK && !lens)
        st = ST_E_NOMEM;
    for (size_t i = 0; st == ST_OK && i < n; i++) {
        char id[24];
        id_lens[i] = (size_t)snprintf(id, sizeof id, "%zu", i);
        if (!(ids[i] = strdup(id)))
            st = ST_E_NOMEM;
        lens[i] = strlen(texts[i]);
    }
    if (st == ST_OK)
        st = st_retriever_add_batch(ret, n, (const char *const *)ids, id_lens,
                                    (const char *const *)texts, lens, err);
    for (size_t i = 0; ids && i < n; i++)
        free(ids[i]);
    free(ids);
    free(id_lens);
    free(lens);
    if (st != ST_OK) {
        if (st == ST_E_NOMEM)
            snprintf(err->message, sizeof err->message, "out of memory indexing the tools");
        st_retriever_close(ret);
        return st;
    }
    if (victim->ret)
        st_retriever_close(victim->ret);
    *victim = (ranked_list){h, n, ret, ++t->clock};
    atomic_fetch_add(&t->lists_indexed, 1);
    *out = ret;
    return ST_OK;
}

st_status st_tool_ranker_pick(st_tool_ranker *t, const st_gen_request *req, const char *query,
                              size_t k, size_t *keep, float *scores, size_t *n_keep,
                              st_error *err)
{
    size_t n = req->n_tools;
    *n_keep = 0;
    char **texts = calloc(n, sizeof *texts);
    st_status st = texts ? ST_OK : ST_E_NOMEM;
    for (size_t i = 0; st == ST_OK && i < n; i++)
        if (!(texts[i] = tool_text(req, i, t->with_names)))
            st = ST_E_NOMEM;
    st_retrieval *hits = NULL;
    if (st == ST_OK) {
        uv_mutex_lock(&t->lock);
        st_retriever *ret = NULL;
        st = list_for(t, texts, n, &ret, err);
        if (st == ST_OK)
            st = st_retriever_query(ret, query, strlen(query), k, &hits, err);
        uv_mutex_unlock(&t->lock);
    } else {
        snprintf(err->message, sizeof err->message, "out of memory");
    }
    for (size_t i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    if (st != ST_OK)
        return st;
    for (size_t i = 0; i < st_retrieval_count(hits) && *n_keep < k; i++) {
        const st_retrieved *h = st_retrieval_at(hits, i);
        keep[*n_keep] = (size_t)h->doc;
        scores[(*n_keep)++] = h->score;
    }
    st_retrieval_free(hits);
    /* A retriever may find fewer (bm25 finds no tool that shares no word
     * with the query): the rest in the request's order, unscored. */
    for (size_t i = 0; i < n && *n_keep < k; i++) {
        bool kept = false;
        for (size_t j = 0; j < *n_keep && !kept; j++)
            kept = keep[j] == i;
        if (!kept) {
            keep[*n_keep] = i;
            scores[(*n_keep)++] = NAN;
        }
    }
    return ST_OK;
}
