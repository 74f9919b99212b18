/*
 * tools/stretch/serve/tool_ranker.c - `stretch serve --tool-retriever`:
 * which of a request's tools the model is shown. A request may list
 * hundreds of functions (the Massive Tool Retrieval Benchmark's MetaTool
 * has 199), far more than a small model's prompt should hold; the
 * retriever a strategy manifest names (bm25, embedding, hybrid) ranks
 * them for the conversation's last user message and the best tool_top_k
 * are shown, as `stretch eval retrieval` ranks MTRB's tools. A retriever
 * block with `rerank:` re-scores its best with the manifest's language
 * model: the ranker then opens that manifest as an engine of its own
 * (as `stretch retrieve query` does), used under the ranker's lock only,
 * so the runners' sequences never wait on its scratch cache.
 *
 * Clients send the same tool list with every request, so each list is
 * indexed once: the last few lists' indexes are kept as files (in a
 * folder of their own, removed at exit), found by a hash of the tools'
 * texts, and a request with a known list loads its index (when another
 * is loaded) and queries. One retriever, and so one encoder, serves them
 * all, under one lock (a retriever serves one thread at a time): runners
 * of different models wait for each other only while a list is indexed.
 */
#include "tool_ranker.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stretch/retrieval.h>

#include "fnv1a.h"
#include "tool_calls.h"

/* Tool lists kept indexed, as index files: one retriever (and so one
 * encoder) serves them all, loading the list a request names. */
#define RANKER_SLOTS 8

typedef struct ranked_list {
    uint64_t hash;             /* of the tools' names and texts, in order */
    size_t n;
    bool used;
    uint64_t last_used;
} ranked_list;

struct st_tool_ranker {
    st_retriever *ret;
    st_engine *engine;         /* re-ranking: the engine ret belongs to; else NULL */
    bool with_names;
    uv_mutex_t lock;
    char dir[64];              /* the index files: mkdtemp, removed at close */
    ranked_list slots[RANKER_SLOTS];
    int loaded;                /* the slot whose index ret holds; -1 empty, -2 unknown */
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

/* FNV-1a over every text and its terminating NUL, continuing from h. */
static uint64_t hash_texts(uint64_t h, const char *const *texts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = st_fnv1a(h, texts[i], strlen(texts[i]) + 1);
    return h;
}

/* Slot k's index file (k = RANKER_SLOTS: the empty index). */
static void slot_path(const st_tool_ranker *t, int k, char *out, size_t size)
{
    if (k == RANKER_SLOTS)
        snprintf(out, size, "%s/empty.idx", t->dir);
    else
        snprintf(out, size, "%s/list%d.idx", t->dir, k);
}

/* `rerank:` scores with the manifest's model: the retriever becomes the
 * one an engine of that manifest holds. */
static bool open_reranking(st_tool_ranker *t, const char *manifest,
                           const st_engine_options *opts, st_error *err)
{
    st_retriever_close(t->ret);
    t->ret = NULL;
    if (st_engine_open(manifest, opts, &t->engine, err) != ST_OK)
        return false;
    t->ret = st_engine_retriever(t->engine);
    return true;
}

st_tool_ranker *st_tool_ranker_open(const char *manifest, bool with_names, uint32_t n_threads,
                                    char *msg, size_t size)
{
    st_engine_options opts = {.struct_size = sizeof opts, .n_threads = n_threads};
    st_error err;
    memset(&err, 0, sizeof err);
    st_tool_ranker *t = calloc(1, sizeof *t);
    if (!t || uv_mutex_init(&t->lock) != 0) {
        free(t);
        snprintf(msg, size, "out of memory");
        return NULL;
    }
    t->with_names = with_names;
    t->loaded = -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/stretch-tools-XXXXXX",
             tmp && tmp[0] && strlen(tmp) < 32 ? tmp : "/tmp");
    char empty[96];
    bool made = mkdtemp(t->dir) != NULL;
    if (!made)
        snprintf(msg, size, "cannot make a folder for the tool indexes under %s", t->dir);
    else if (st_retriever_open(manifest, &opts, ST_RETRIEVER_NO_INDEX, &t->ret, &err) != ST_OK)
        snprintf(msg, size, "%.400s", err.message);
    /* The empty index every list is added to, saved before an engine
     * opens: that engine loads the manifest's `index:` when it names one,
     * and a list's documents must be its tools alone (their numbers map
     * hits back to the request's tools). */
    else if (slot_path(t, RANKER_SLOTS, empty, sizeof empty),
             st_retriever_save(t->ret, empty, &err) != ST_OK)
        snprintf(msg, size, "%.400s", err.message);
    else if (st_retriever_rerank(t->ret) > 0 && !open_reranking(t, manifest, &opts, &err))
        snprintf(msg, size, "%.400s", err.message);
    else
        return t;
    if (!made)
        t->dir[0] = '\0';
    st_tool_ranker_close(t);
    return NULL;
}

void st_tool_ranker_close(st_tool_ranker *t)
{
    if (!t)
        return;
    if (t->engine)
        st_engine_close(t->engine); /* and its retriever */
    else
        st_retriever_close(t->ret);
    if (t->dir[0]) {
        /* The index files and their .texts, then the folder. */
        for (int k = 0; k <= RANKER_SLOTS; k++) {
            char path[112];
            slot_path(t, k, path, sizeof path - 6);
            unlink(path);
            strcat(path, ".texts");
            unlink(path);
        }
        rmdir(t->dir);
    }
    uv_mutex_destroy(&t->lock);
    free(t);
}

uint64_t st_tool_ranker_lists_indexed(st_tool_ranker *t)
{
    return t ? atomic_load(&t->lists_indexed) : 0;
}

/* Load slot k's index into the retriever, unless it holds it already. */
static st_status load_slot(st_tool_ranker *t, int k, st_error *err)
{
    if (t->loaded == k)
        return ST_OK;
    char path[96];
    slot_path(t, k, path, sizeof path);
    t->loaded = -2;
    st_status st = st_retriever_load(t->ret, path, err);
    if (st == ST_OK)
        t->loaded = k == RANKER_SLOTS ? -1 : k;
    return st;
}

/* The retriever with this list's index loaded: a list seen before, or a
 * new one indexed into the least recently used slot. A tool's id is its
 * name (what a rerank template's {id} puts in); a hit is mapped back by
 * its document number. Under the lock. */
static st_status list_for(st_tool_ranker *t, char *const *names, char *const *texts, size_t n,
                          st_error *err)
{
    uint64_t h = hash_texts(hash_texts(ST_FNV1A_INIT, (const char *const *)names, n),
                            (const char *const *)texts, n);
    int victim = 0;
    for (int k = 0; k < RANKER_SLOTS; k++) {
        ranked_list *s = &t->slots[k];
        if (s->used && s->hash == h && s->n == n) {
            s->last_used = ++t->clock;
            return load_slot(t, k, err);
        }
        if (!s->used || (t->slots[victim].used && s->last_used < t->slots[victim].last_used))
            victim = k;
    }
    size_t *id_lens = calloc(n, sizeof *id_lens);
    size_t *lens = id_lens ? calloc(n, sizeof *lens) : NULL;
    st_status st = lens ? ST_OK : ST_E_NOMEM;
    for (size_t i = 0; st == ST_OK && i < n; i++) {
        id_lens[i] = strlen(names[i]);
        lens[i] = strlen(texts[i]);
    }
    t->slots[victim].used = false;
    if (st == ST_OK)
        st = load_slot(t, RANKER_SLOTS, err);
    if (st == ST_OK) {
        t->loaded = -2; /* the empty index is gaining documents */
        st = st_retriever_add_batch(t->ret, n, (const char *const *)names, id_lens,
                                    (const char *const *)texts, lens, err);
    }
    char path[96];
    slot_path(t, victim, path, sizeof path);
    if (st == ST_OK && (st = st_retriever_save(t->ret, path, err)) == ST_OK) {
        t->slots[victim] = (ranked_list){h, n, true, ++t->clock};
        t->loaded = victim;
        atomic_fetch_add(&t->lists_indexed, 1);
    }
    free(id_lens);
    free(lens);
    if (st == ST_E_NOMEM)
        snprintf(err->message, sizeof err->message, "out of memory indexing the tools");
    return st;
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
        st = list_for(t, req->tool_names, texts, n, err);
        if (st == ST_OK)
            st = st_retriever_query(t->ret, query, strlen(query), k, &hits, err);
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
        if (h->doc >= n) /* not one of this list's tools: never the case, never trusted */
            continue;
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
