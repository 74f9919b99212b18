/*
 * core/engine/retrieval.c - the host side of retrieval (stretch/retrieval.h):
 * a handle around the strategy's retriever plugin that keeps the documents'
 * texts beside the plugin's index, checks what the plugin hands back, and
 * renders hits into a prompt through the strategy's template.
 *
 * The handle either owns everything (st_retriever_open: strategy, registry,
 * host and plugin, no model) or borrows the engine's plugin.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/retrieval.h>
#include <stretch/retriever.h>

#include "abi_sizes.h"
#include "doc_texts.h"
#include "encoder_internal.h"
#include "engine_internal.h"
#include "retrieval_internal.h"
#include "retrieval_prereq.h"

/* Why: a small model answers better when the documents come first and the
 * question last, and the numbered list lets it cite them. */
static const char default_template[] =
    "Use the documents below to answer the question.\n\n{documents}Question: {query}";

struct st_retriever {
    /* Owned when opened alone; NULL when borrowed from an engine. */
    st_strategy *strategy;
    st_registry *registry;
    st_host *host;
    st_engine_plugin own;
    st_encoder_service *encoders; /* what the plugin embeds with, if it does */

    const st_strategy *s;        /* the strategy in use (own or the engine's) */
    st_engine *engine;           /* the engine it was borrowed from, else NULL */
    st_instance *in;
    const st_retriever_ops *ops;
    const char *name;
    st_doc_texts texts;
    bool texts_complete;         /* every document has its text */
    st_prereq_table *prereq;     /* `prerequisites:`; rebuilt when the count changes */
};

struct st_retrieval {
    st_retrieved *hits;
    size_t n;
};

static st_status from_plugin(const st_retriever *r, st_error *err, st_status st,
                             const char *what)
{
    return st_engine_fail_wrap(err, st, "retriever plugin '%s': %s", r->name, what);
}

/* Load the strategy's index, if it names one. */
static st_status load_strategy_index(st_retriever *r, st_error *err)
{
    if (!r->s->retriever_index)
        return ST_OK;
    st_status st = st_retriever_load(r, r->s->retriever_index, err);
    if (st != ST_OK)
        return st_engine_fail_wrap(err, st, "%s:%d:%d: retriever: index",
                                   r->s->retriever_index_file, r->s->retriever_index_line,
                                   r->s->retriever_index_col);
    return ST_OK;
}

static void bind_plugin(st_retriever *r, const st_strategy *s, st_instance *in)
{
    r->s = s;
    r->in = in;
    r->ops = in->ops;
    r->name = in->lib->entry->name;
    r->texts_complete = true;
}

st_status st_retrieval_attach(st_engine *e, const st_strategy *s, st_instance *in,
                              st_retriever **out, st_error *err)
{
    *out = NULL;
    st_retriever *r = calloc(1, sizeof *r);
    if (!r)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    bind_plugin(r, s, in);
    r->engine = e;
    st_status st = load_strategy_index(r, err);
    if (st != ST_OK) {
        st_retriever_close(r);
        return st;
    }
    *out = r;
    return ST_OK;
}

st_status st_retriever_open(const char *strategy_path, const st_engine_options *caller_opts,
                            uint32_t flags, st_retriever **out, st_error *err)
{
    *out = NULL;
    st_engine_options copy;
    const st_engine_options *opts;
    st_status st = st_engine_options_read(caller_opts, &copy, &opts, err);
    if (st != ST_OK)
        return st;
    st_retriever *r = calloc(1, sizeof *r);
    if (!r)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_diag d;
    st_diag_clear(&d);
    if ((st = st_strategy_load(strategy_path, &r->strategy, &d)) != ST_OK) {
        st_retriever_close(r);
        return st_error_from_diag(err, &d);
    }
    if (!r->strategy->retriever.plugin) {
        st_retriever_close(r);
        return st_error_set(err, ST_E_INVALID,
                            "%s: the strategy has no `retriever:` block (add one, e.g. "
                            "`retriever: {plugin: bm25}`; see manifests/bm25.yaml)",
                            strategy_path);
    }
    r->registry = st_registry_new();
    r->host = st_host_new();
    if (!r->registry || !r->host) {
        st_retriever_close(r);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    if (opts && opts->log) {
        st_host_set_log_sink(r->host, opts->log, opts->log_user);
        st_host_set_log_level(r->host, ST_LOG_DEBUG);
    }
    if ((st = st_engine_registry_fill(r->registry, opts, r->strategy, &d)) != ST_OK) {
        st_retriever_close(r);
        return st_error_from_diag(err, &d);
    }
    const st_plugin_site site = {r->registry, r->host, r->strategy->backend, false, false};
    if ((st = st_encoder_service_install(r->host, r->registry, r->strategy,
                                         opts && opts->n_threads ? opts->n_threads
                                                                 : r->strategy->threads,
                                         &r->encoders, err)) ||
        (st = st_engine_plugin_open(&site, ST_KIND_RETRIEVER, &r->strategy->retriever, &r->own,
                                    err)) != ST_OK) {
        st_retriever_close(r);
        return st;
    }
    bind_plugin(r, r->strategy, r->own.in);
    if (!(flags & ST_RETRIEVER_NO_INDEX) && (st = load_strategy_index(r, err)) != ST_OK) {
        st_retriever_close(r);
        return st;
    }
    *out = r;
    return ST_OK;
}

void st_retriever_close(st_retriever *r)
{
    if (!r)
        return;
    st_doc_texts_free(&r->texts);
    st_prereq_table_free(r->prereq);
    st_engine_plugin_release(&r->own);
    st_encoder_service_free(r->encoders);
    st_host_free(r->host);
    st_registry_free(r->registry);
    st_strategy_free(r->strategy);
    free(r);
}

st_retriever *st_engine_retriever(st_engine *e)
{
    return e ? e->retrieval : NULL;
}

const char *st_retriever_name(const st_retriever *r)
{
    return r->name;
}

uint32_t st_retriever_top_k(const st_retriever *r)
{
    return r->s->retriever_top_k ? r->s->retriever_top_k : ST_RETRIEVER_DEFAULT_TOP_K;
}

uint32_t st_retriever_rerank(const st_retriever *r)
{
    return r->s->retriever_rerank;
}

const char *st_retriever_index_path(const st_retriever *r)
{
    return r->s->retriever_index;
}

uint64_t st_retriever_count(const st_retriever *r)
{
    return r->ops->count(r->in->inst);
}

st_status st_retriever_add(st_retriever *r, const char *id, size_t id_len, const char *text,
                           size_t text_len, st_error *err)
{
    if ((!id && id_len) || (!text && text_len))
        return st_error_set(err, ST_E_INVALID, "st_retriever_add: NULL id or text");
    /* The text first, so a failure leaves the plugin and the texts in step. */
    bool keep = r->texts_complete && r->texts.n == st_retriever_count(r);
    if (keep && !st_doc_texts_push(&r->texts, text ? text : "", text_len))
        return st_error_set(err, ST_E_NOMEM, "out of memory keeping a document's text");
    st_status st = r->ops->add(r->in->inst, id ? id : "", id_len, text ? text : "", text_len, err);
    if (st != ST_OK) {
        if (keep)
            st_doc_texts_pop(&r->texts);
        return from_plugin(r, err, st, "add failed");
    }
    r->texts_complete = keep;
    return ST_OK;
}

st_status st_retriever_add_batch(st_retriever *r, size_t n, const char *const *ids,
                                 const size_t *id_lens, const char *const *texts,
                                 const size_t *text_lens, st_error *err)
{
    if (n && (!ids || !id_lens || !texts || !text_lens))
        return st_error_set(err, ST_E_INVALID, "st_retriever_add_batch: NULL argument");
    bool batched = r->ops->struct_size >= ST_END_OF(st_retriever_ops, add_batch) &&
                   r->ops->add_batch;
    if (!batched) {
        for (size_t i = 0; i < n; i++) {
            st_status st = st_retriever_add(r, ids[i], id_lens[i], texts[i], text_lens[i], err);
            if (st != ST_OK)
                return st;
        }
        return ST_OK;
    }
    for (size_t i = 0; i < n; i++)
        if ((!ids[i] && id_lens[i]) || (!texts[i] && text_lens[i]))
            return st_error_set(err, ST_E_INVALID, "st_retriever_add_batch: NULL id or text "
                                "(document %zu of the batch)", i);
    /* The texts first, so a failure leaves the plugin and the texts in step. */
    bool keep = r->texts_complete && r->texts.n == st_retriever_count(r);
    size_t pushed = 0;
    while (keep && pushed < n) {
        if (!st_doc_texts_push(&r->texts, texts[pushed] ? texts[pushed] : "",
                               text_lens[pushed])) {
            while (pushed--)
                st_doc_texts_pop(&r->texts);
            return st_error_set(err, ST_E_NOMEM, "out of memory keeping a document's text");
        }
        pushed++;
    }
    st_status st = r->ops->add_batch(r->in->inst, n, ids, id_lens, texts, text_lens, err);
    if (st != ST_OK) {
        while (pushed--)
            st_doc_texts_pop(&r->texts);
        return from_plugin(r, err, st, "add_batch failed");
    }
    r->texts_complete = keep;
    return ST_OK;
}

static st_status doc_id_of(void *ctx, uint64_t doc, const char **id, size_t *len, st_error *err)
{
    st_retriever *r = ctx;
    st_status st = r->ops->doc_id(r->in->inst, doc, id, len, err);
    if (st != ST_OK)
        return from_plugin(r, err, st, "doc_id failed");
    if (!*id && *len)
        return st_error_set(err, ST_E_PLUGIN, "retriever plugin '%s': doc_id(%llu) gave NULL",
                            r->name, (unsigned long long)doc);
    if (!*id)
        *id = "";
    return ST_OK;
}

st_status st_retriever_save(st_retriever *r, const char *path, st_error *err)
{
    st_status st = r->ops->save(r->in->inst, path, err);
    if (st != ST_OK)
        return from_plugin(r, err, st, "save failed");
    if (!r->texts_complete || r->texts.n != st_retriever_count(r)) {
        /* Ids only: a stale .texts would otherwise be paired with it. */
        char *texts = malloc(strlen(path) + sizeof ".texts");
        if (!texts)
            return st_error_set(err, ST_E_NOMEM, "out of memory");
        sprintf(texts, "%s.texts", path);
        remove(texts);
        free(texts);
        return ST_OK;
    }
    return st_doc_texts_save(&r->texts, path, doc_id_of, r, err);
}

st_status st_retriever_load(st_retriever *r, const char *path, st_error *err)
{
    st_doc_texts fresh;
    bool found = false;
    /* The texts file is checked against the index file before the plugin
     * reads it, so a refusal keeps the current index and texts. */
    st_status st = st_doc_texts_load(path, &fresh, &found, err);
    if (st != ST_OK)
        return st;
    st = r->ops->load(r->in->inst, path, err);
    if (st != ST_OK) {
        st_doc_texts_free(&fresh);
        return from_plugin(r, err, st, "load failed");
    }
    uint64_t n = st_retriever_count(r);
    st_doc_texts_free(&r->texts);
    r->texts = fresh;
    r->texts_complete = found && fresh.n == n;
    if (found && fresh.n != n) {
        st_doc_texts_free(&r->texts);
        r->texts_complete = false;
        return st_error_set(err, ST_E_FORMAT,
                            "%s.texts lists %zu documents but the index holds %llu", path,
                            fresh.n, (unsigned long long)n);
    }
    return ST_OK;
}

void st_retrieval_free(st_retrieval *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++)
        free((char *)h->hits[i].id);
    free(h->hits);
    free(h);
}

size_t st_retrieval_count(const st_retrieval *h)
{
    return h ? h->n : 0;
}

const st_retrieved *st_retrieval_at(const st_retrieval *h, size_t i)
{
    return h && i < h->n ? &h->hits[i] : NULL;
}

/* The plugin's k best, checked, with ids and texts. */
static st_status first_stage(st_retriever *r, const char *query, size_t len, size_t k,
                             st_retrieval **out, st_error *err)
{
    *out = NULL;
    uint64_t count = st_retriever_count(r);
    if (k > count)
        k = (size_t)count;
    st_retrieval *h = calloc(1, sizeof *h);
    st_hit *raw = calloc(k ? k : 1, sizeof *raw);
    if (h)
        h->hits = calloc(k ? k : 1, sizeof *h->hits);
    if (!h || !raw || !h->hits) {
        st_retrieval_free(h);
        free(raw);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    size_t n = 0;
    st_status st = k ? r->ops->query(r->in->inst, query ? query : "", len, k, raw, &n, err)
                     : ST_OK;
    if (st != ST_OK)
        st = from_plugin(r, err, st, "query failed");
    else if (n > k)
        st = st_error_set(err, ST_E_PLUGIN, "retriever plugin '%s' returned %zu hits for k=%zu",
                          r->name, n, k);
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        if (raw[i].doc >= count || !isfinite(raw[i].score) ||
            (i && raw[i].score > raw[i - 1].score))
            st = st_error_set(err, ST_E_PLUGIN,
                              "retriever plugin '%s': hit %zu (document %llu, score %g) is out "
                              "of range, not finite or ranked above a better one",
                              r->name, i, (unsigned long long)raw[i].doc, (double)raw[i].score);
    }
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        const char *id;
        size_t id_len;
        if ((st = doc_id_of(r, raw[i].doc, &id, &id_len, err)) != ST_OK)
            break;
        char *copy = malloc(id_len + 1);
        if (!copy) {
            st = st_error_set(err, ST_E_NOMEM, "out of memory");
            break;
        }
        memcpy(copy, id, id_len);
        copy[id_len] = '\0';
        st_retrieved *hit = &h->hits[h->n++];
        hit->struct_size = sizeof *hit;
        hit->doc = raw[i].doc;
        hit->score = raw[i].score;
        hit->id = copy;
        hit->id_len = id_len;
        if (r->texts_complete && raw[i].doc < r->texts.n) {
            hit->text = r->texts.text[raw[i].doc];
            hit->text_len = r->texts.len[raw[i].doc];
        }
    }
    free(raw);
    if (st != ST_OK) {
        st_retrieval_free(h);
        return st;
    }
    *out = h;
    return ST_OK;
}

/* Most prerequisites one hit brings in. */
#define PREREQ_MAX 16

/* `prerequisites:`: rebuild h's list, each hit followed by the documents
 * its text names (retrieval_prereq.h) that are not in the list yet, at the
 * hit's score (scores stay non-increasing); a hit already brought in is
 * not repeated; at most k hits. */
static st_status complete_prerequisites(st_retriever *r, st_retrieval *h, size_t k,
                                        st_error *err)
{
    uint64_t count = st_retriever_count(r);
    if (!r->texts_complete || r->texts.n != count)
        return st_error_set(err, ST_E_INVALID, "retriever: prerequisites: needs every "
                            "document's text (the INDEX.texts file `stretch retrieve index` "
                            "writes)");
    if (r->prereq && st_prereq_table_docs(r->prereq) != count) {
        st_prereq_table_free(r->prereq);
        r->prereq = NULL;
    }
    st_status st;
    if (!r->prereq && (st = st_prereq_table_build(count, doc_id_of, r, &r->prereq, err)))
        return st;
    st_retrieved *out = calloc(k ? k : 1, sizeof *out);
    if (!out)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    size_t n = 0, i = 0;
    st = ST_OK;
    for (; i < h->n && n < k && st == ST_OK; i++) {
        st_retrieved hit = h->hits[i];
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++)
            seen = out[j].doc == hit.doc;
        if (seen) {
            free((char *)hit.id);
            continue;
        }
        out[n++] = hit;
        uint64_t named[PREREQ_MAX];
        size_t m = st_prereq_named(r->prereq, r->texts.text[hit.doc], r->texts.len[hit.doc],
                                   hit.doc, named, PREREQ_MAX);
        for (size_t p = 0; p < m && n < k && st == ST_OK; p++) {
            seen = false;
            for (size_t j = 0; j < n && !seen; j++)
                seen = out[j].doc == named[p];
            const char *id;
            size_t id_len;
            if (seen || (st = doc_id_of(r, named[p], &id, &id_len, err)) != ST_OK)
                continue;
            char *copy = malloc(id_len + 1);
            if (!copy) {
                st = st_error_set(err, ST_E_NOMEM, "out of memory");
                break;
            }
            memcpy(copy, id, id_len);
            copy[id_len] = '\0';
            out[n++] = (st_retrieved){.struct_size = sizeof *out, .doc = named[p],
                                      .score = hit.score, .id = copy, .id_len = id_len,
                                      .text = r->texts.text[named[p]],
                                      .text_len = r->texts.len[named[p]]};
        }
    }
    for (; i < h->n; i++)
        free((char *)h->hits[i].id);
    free(h->hits);
    h->hits = out;
    h->n = n;
    return st;
}

static st_status ranked(st_retriever *r, const char *query, size_t len, size_t k,
                        st_retrieval **out, st_error *err);

st_status st_retriever_query(st_retriever *r, const char *query, size_t len, size_t k,
                             st_retrieval **out, st_error *err)
{
    st_status st = ranked(r, query, len, k, out, err);
    if (st != ST_OK || !r->s->retriever_prerequisites || k == 0)
        return st;
    if ((st = complete_prerequisites(r, *out, k, err)) != ST_OK) {
        st_retrieval_free(*out);
        *out = NULL;
    }
    return st;
}

/* The first stage, re-ranked when the strategy says so. */
static st_status ranked(st_retriever *r, const char *query, size_t len, size_t k,
                        st_retrieval **out, st_error *err)
{
    *out = NULL;
    if (!query && len)
        return st_error_set(err, ST_E_INVALID, "st_retriever_query: NULL query");
    uint32_t rerank = r->s->retriever_rerank;
    if (!rerank || k == 0)
        return first_stage(r, query, len, k, out, err);
    if (!r->engine)
        return st_error_set(err, ST_E_UNAVAILABLE,
                            "the strategy's retriever block asks for `rerank: %u`, which scores "
                            "with the strategy's model: open the retriever through an engine "
                            "(st_engine_retriever)", rerank);
    /* The best max(k, rerank) of the first stage; its best `rerank` are
     * re-scored by the model, the rest follow in their order, at the
     * lowest re-scored score (scores stay non-increasing). */
    st_retrieval *h = NULL;
    st_status st = first_stage(r, query ? query : "", len, k > rerank ? k : rerank, &h, err);
    if (st != ST_OK)
        return st;
    size_t n = h->n < rerank ? h->n : rerank;
    st = st_retrieval_rerank(r->engine, r->s->retriever_rerank_template, query ? query : "",
                             len, h->hits, n, err);
    if (st != ST_OK) {
        st_retrieval_free(h);
        return st_engine_fail_wrap(err, st, "retriever: rerank");
    }
    for (size_t i = n; i < h->n; i++)
        h->hits[i].score = n ? h->hits[n - 1].score : h->hits[i].score;
    while (h->n > k)
        free((char *)h->hits[--h->n].id);
    *out = h;
    return ST_OK;
}

/* A growing NUL-terminated string. */
typedef struct strbuf {
    char *s;
    size_t n, cap;
    bool failed;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->n + n + 1) * 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            b->failed = true;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_documents(strbuf *b, const st_retrieval *hits)
{
    char rank[32];
    for (size_t i = 0; i < st_retrieval_count(hits); i++) {
        const st_retrieved *h = &hits->hits[i];
        int w = snprintf(rank, sizeof rank, "[%zu] ", i + 1);
        sb_put(b, rank, (size_t)w);
        sb_put(b, h->id, h->id_len);
        sb_put(b, "\n", 1);
        if (h->text) {
            sb_put(b, h->text, h->text_len);
            sb_put(b, "\n", 1);
        }
        sb_put(b, "\n", 1);
    }
}

st_status st_retriever_render(const st_retriever *r, const char *query,
                              const st_retrieval *hits, char **prompt, st_error *err)
{
    *prompt = NULL;
    const char *t = r->s->retriever_template ? r->s->retriever_template : default_template;
    strbuf b = {0};
    sb_put(&b, "", 0);
    while (*t) {
        if (!strncmp(t, "{documents}", 11)) {
            sb_documents(&b, hits);
            t += 11;
        } else if (!strncmp(t, "{query}", 7)) {
            sb_put(&b, query, strlen(query));
            t += 7;
        } else {
            sb_put(&b, t++, 1);
        }
    }
    if (b.failed) {
        free(b.s);
        return st_error_set(err, ST_E_NOMEM, "out of memory rendering the prompt");
    }
    *prompt = b.s;
    return ST_OK;
}
