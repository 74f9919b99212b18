/*
 * retriever `bm25`: Okapi BM25 (Robertson & Zaragoza, 2009, "The
 * Probabilistic Relevance Framework: BM25 and Beyond") over an in-memory
 * inverted index. For a query with distinct terms t present in the index:
 *
 *   score(D) = sum_t idf(t) * tf(t,D) * (k1 + 1)
 *                           / (tf(t,D) + k1 * (1 - b + b * |D| / avgdl))
 *   idf(t)   = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))
 *
 * (the non-negative idf of Lucene). A term repeated in the query counts
 * once. Only documents sharing at least one term with the query are hits.
 * The on-disk format (msgpack) is documented in docs/plugins/bm25.md.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/msgpack_bounds.h>
#include <stretch/msgpack_map.h>
#include <stretch/params.h>
#include <stretch/plugin.h>

#include "bm25.h"
#include "../index_file.h"

#define BM25_FORMAT_NAME "stretch.bm25"
#define BM25_FORMAT_VERSION 1

typedef struct bm25_doc {
    char *id;
    size_t id_len;
    uint32_t len; /* terms in the document */
} bm25_doc;

typedef struct bm25_term {
    char *text;
    size_t len;
    uint64_t hash;
    uint32_t *doc; /* postings, ascending doc index */
    uint32_t *tf;  /* occurrences in that document */
    uint32_t n, cap;
} bm25_term;

struct bm25_index {
    bm25_doc *docs;
    size_t n_docs, cap_docs;
    uint64_t total_len;
    bm25_term *terms;
    size_t n_terms, cap_terms;
    int64_t *slots; /* open addressing: term index or -1 */
    size_t n_slots; /* power of two */
};

typedef struct bm25 {
    const st_host_services *host;
    double k1, b;
    bm25_index idx;
} bm25;

/* ---- small helpers ---- */

static void *xalloc(const st_host_services *h, size_t n)
{
    return h->alloc(h->host, n);
}

static void xfree(const st_host_services *h, void *p)
{
    h->free(h->host, p);
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t x = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        x ^= (unsigned char)s[i];
        x *= 1099511628211ULL;
    }
    return x;
}

/* Grow array `*p` of `*cap` elements of `size` bytes to hold `need`. */
static bool grow(const st_host_services *h, void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *q = h->realloc(h->host, *p, n * size);
    if (!q)
        return false;
    *p = q;
    *cap = n;
    return true;
}

/* ---- the index ---- */

static void index_free(const st_host_services *h, bm25_index *ix)
{
    for (size_t i = 0; i < ix->n_docs; i++)
        xfree(h, ix->docs[i].id);
    for (size_t i = 0; i < ix->n_terms; i++) {
        xfree(h, ix->terms[i].text);
        xfree(h, ix->terms[i].doc);
        xfree(h, ix->terms[i].tf);
    }
    xfree(h, ix->docs);
    xfree(h, ix->terms);
    xfree(h, ix->slots);
    memset(ix, 0, sizeof *ix);
}

static int64_t index_find(const bm25_index *ix, const char *s, size_t n, uint64_t hash)
{
    if (!ix->n_slots)
        return -1;
    for (size_t i = hash & (ix->n_slots - 1);; i = (i + 1) & (ix->n_slots - 1)) {
        int64_t t = ix->slots[i];
        if (t < 0)
            return -1;
        const bm25_term *term = &ix->terms[t];
        if (term->hash == hash && term->len == n && memcmp(term->text, s, n) == 0)
            return t;
    }
}

static void slots_insert(bm25_index *ix, int64_t t)
{
    size_t i = ix->terms[t].hash & (ix->n_slots - 1);
    while (ix->slots[i] >= 0)
        i = (i + 1) & (ix->n_slots - 1);
    ix->slots[i] = t;
}

/* The term's index, adding it when new. -1 when out of memory. */
static int64_t index_term(const st_host_services *h, bm25_index *ix, const char *s, size_t n)
{
    uint64_t hash = hash_bytes(s, n);
    int64_t t = index_find(ix, s, n, hash);
    if (t >= 0)
        return t;
    /* Keep the table at most half full. */
    if ((ix->n_terms + 1) * 2 > ix->n_slots) {
        size_t ns = ix->n_slots ? ix->n_slots * 2 : 64;
        int64_t *slots = xalloc(h, ns * sizeof *slots);
        if (!slots)
            return -1;
        xfree(h, ix->slots);
        ix->slots = slots;
        ix->n_slots = ns;
        for (size_t i = 0; i < ns; i++)
            slots[i] = -1;
        for (size_t i = 0; i < ix->n_terms; i++)
            slots_insert(ix, (int64_t)i);
    }
    if (!grow(h, (void **)&ix->terms, &ix->cap_terms, ix->n_terms + 1, sizeof *ix->terms))
        return -1;
    char *text = xalloc(h, n ? n : 1);
    if (!text)
        return -1;
    memcpy(text, s, n);
    bm25_term *term = &ix->terms[ix->n_terms];
    memset(term, 0, sizeof *term);
    term->text = text;
    term->len = n;
    term->hash = hash;
    t = (int64_t)ix->n_terms++;
    slots_insert(ix, t);
    return t;
}

/* Count one more occurrence of term t in document `doc` (the newest). */
static bool posting_add(const st_host_services *h, bm25_term *term, uint32_t doc, uint32_t tf)
{
    if (term->n && term->doc[term->n - 1] == doc) {
        term->tf[term->n - 1] += tf;
        return true;
    }
    if (term->n == term->cap) {
        uint32_t nc = term->cap ? term->cap * 2 : 4;
        uint32_t *d = h->realloc(h->host, term->doc, nc * sizeof *d);
        if (!d)
            return false;
        term->doc = d;
        uint32_t *f = h->realloc(h->host, term->tf, nc * sizeof *f);
        if (!f)
            return false;
        term->tf = f;
        term->cap = nc;
    }
    term->doc[term->n] = doc;
    term->tf[term->n] = tf;
    term->n++;
    return true;
}

static bool index_add_doc(const st_host_services *h, bm25_index *ix, const char *id,
                          size_t id_len, uint32_t len)
{
    if (!grow(h, (void **)&ix->docs, &ix->cap_docs, ix->n_docs + 1, sizeof *ix->docs))
        return false;
    char *copy = xalloc(h, id_len ? id_len : 1);
    if (!copy)
        return false;
    if (id_len)
        memcpy(copy, id, id_len);
    ix->docs[ix->n_docs].id = copy;
    ix->docs[ix->n_docs].id_len = id_len;
    ix->docs[ix->n_docs].len = len;
    ix->n_docs++;
    ix->total_len += len;
    return true;
}

/* ---- the `words` tokenizer ---- */

static bool is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

/* Next word at or after *pos: lowercased into buf (cap bytes; longer words
 * are cut there). Returns its length, 0 at the end of the text. */
static size_t next_word(const char *text, size_t len, size_t *pos, char *buf, size_t cap)
{
    size_t i = *pos;
    while (i < len && !is_word_byte((unsigned char)text[i]))
        i++;
    size_t n = 0;
    while (i < len && is_word_byte((unsigned char)text[i])) {
        unsigned char c = (unsigned char)text[i++];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (n < cap)
            buf[n++] = (char)c;
    }
    *pos = i;
    return n;
}

#define BM25_WORD_MAX 256

/* ---- ops ---- */

st_status bm25_create(const st_host_services *host, const st_params *params,
                             void **inst, st_error *err)
{
    double k1 = st_param_float(params, "k1"), b = st_param_float(params, "b");
    /* The one tokenizer today; plugin.yaml's enum already holds only it. */
    if (!st_param_is(params, "tokenizer", "words"))
        return host->error(err, ST_E_INVALID,
                           "bm25: parameter tokenizer must be one of: words");
    bm25 *r = host->calloc(host->host, 1, sizeof *r);
    if (!r)
        return host->error(err, ST_E_NOMEM, "bm25: out of memory");
    r->host = host;
    r->k1 = k1;
    r->b = b;
    *inst = r;
    return ST_OK;
}

void bm25_destroy(void *inst)
{
    bm25 *r = inst;
    if (!r)
        return;
    index_free(r->host, &r->idx);
    r->host->free(r->host->host, r);
}

st_status bm25_add(void *inst, const char *id, size_t id_len, const char *text,
                          size_t text_len, st_error *err)
{
    bm25 *r = inst;
    const st_host_services *h = r->host;
    bm25_index *ix = &r->idx;
    if ((!id && id_len) || (!text && text_len))
        return h->error(err, ST_E_INVALID, "bm25: add given a NULL id or text");
    if (ix->n_docs >= UINT32_MAX)
        return h->error(err, ST_E_RANGE, "bm25: the index is full (%zu documents)", ix->n_docs);
    uint32_t doc = (uint32_t)ix->n_docs;
    char word[BM25_WORD_MAX];
    size_t pos = 0, n;
    uint64_t len = 0;
    while ((n = next_word(text, text_len, &pos, word, sizeof word)) > 0) {
        int64_t t = index_term(h, ix, word, n);
        if (t < 0 || !posting_add(h, &ix->terms[t], doc, 1))
            goto nomem;
        len++;
    }
    if (len > UINT32_MAX)
        len = UINT32_MAX;
    if (!index_add_doc(h, ix, id, id_len, (uint32_t)len))
        goto nomem;
    return ST_OK;

nomem:
    /* Undo the postings this document got, so the index stays consistent. */
    for (size_t i = 0; i < ix->n_terms; i++) {
        bm25_term *t = &ix->terms[i];
        if (t->n && t->doc[t->n - 1] == doc)
            t->n--;
    }
    return h->error(err, ST_E_NOMEM, "bm25: out of memory adding document %u", doc);
}

st_status bm25_score_all(void *inst, const char *text, size_t len, double *score,
                         uint8_t *matched, size_t *n_matched, st_error *err)
{
    bm25 *r = inst;
    const st_host_services *h = r->host;
    const bm25_index *ix = &r->idx;
    *n_matched = 0;
    for (size_t d = 0; d < ix->n_docs; d++)
        score[d] = 0;
    if (matched)
        memset(matched, 0, ix->n_docs);
    if (!text && len)
        return h->error(err, ST_E_INVALID, "bm25: query given NULL text");
    if (ix->n_docs == 0)
        return ST_OK;

    /* Distinct query terms that occur in the index. */
    size_t n_q = 0, cap_q = 0;
    int64_t *qterms = NULL;
    char word[BM25_WORD_MAX];
    size_t pos = 0, n;
    while ((n = next_word(text, len, &pos, word, sizeof word)) > 0) {
        int64_t t = index_find(ix, word, n, hash_bytes(word, n));
        if (t < 0)
            continue;
        bool seen = false;
        for (size_t i = 0; i < n_q && !seen; i++)
            seen = qterms[i] == t;
        if (seen)
            continue;
        if (!grow(h, (void **)&qterms, &cap_q, n_q + 1, sizeof *qterms)) {
            xfree(h, qterms);
            return h->error(err, ST_E_NOMEM, "bm25: out of memory");
        }
        qterms[n_q++] = t;
    }
    uint8_t *hit = matched ? matched : h->calloc(h->host, ix->n_docs, 1);
    if (!hit) {
        xfree(h, qterms);
        return h->error(err, ST_E_NOMEM, "bm25: out of memory");
    }
    double N = (double)ix->n_docs;
    double avgdl = ix->total_len ? (double)ix->total_len / N : 1.0;
    size_t n_hit = 0;
    for (size_t q = 0; q < n_q; q++) {
        const bm25_term *t = &ix->terms[qterms[q]];
        double df = (double)t->n;
        double idf = log(1.0 + (N - df + 0.5) / (df + 0.5));
        for (uint32_t i = 0; i < t->n; i++) {
            uint32_t d = t->doc[i];
            double tf = (double)t->tf[i];
            double dl = (double)ix->docs[d].len;
            score[d] += idf * tf * (r->k1 + 1.0) /
                        (tf + r->k1 * (1.0 - r->b + r->b * dl / avgdl));
            if (!hit[d]) {
                hit[d] = 1;
                n_hit++;
            }
        }
    }
    xfree(h, qterms);
    if (hit != matched)
        xfree(h, hit);
    *n_matched = n_hit;
    return ST_OK;
}

#ifndef ST_RETRIEVER_NO_ENTRY
typedef struct scored {
    uint32_t doc;
    double score;
} scored;

static int scored_cmp(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score > y->score)
        return -1;
    if (x->score < y->score)
        return 1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

static st_status bm25_query(void *inst, const char *text, size_t len, size_t k, st_hit *hits,
                            size_t *n_hits, st_error *err)
{
    bm25 *r = inst;
    const st_host_services *h = r->host;
    const bm25_index *ix = &r->idx;
    *n_hits = 0;
    if (!text && len)
        return h->error(err, ST_E_INVALID, "bm25: query given NULL text");
    if (k == 0 || ix->n_docs == 0)
        return ST_OK;
    double *score = h->calloc(h->host, ix->n_docs, sizeof *score);
    uint8_t *hit = h->calloc(h->host, ix->n_docs, 1);
    if (!score || !hit) {
        xfree(h, score);
        xfree(h, hit);
        return h->error(err, ST_E_NOMEM, "bm25: out of memory");
    }
    size_t n_hit = 0;
    st_status st = bm25_score_all(inst, text, len, score, hit, &n_hit, err);
    scored *all = st == ST_OK && n_hit ? xalloc(h, n_hit * sizeof *all) : NULL;
    if (st != ST_OK || n_hit == 0) {
        xfree(h, score);
        xfree(h, hit);
        return st;
    }
    if (!all) {
        xfree(h, score);
        xfree(h, hit);
        return h->error(err, ST_E_NOMEM, "bm25: out of memory");
    }
    size_t m = 0;
    for (size_t d = 0; d < ix->n_docs; d++)
        if (hit[d])
            all[m++] = (scored){(uint32_t)d, score[d]};
    qsort(all, m, sizeof *all, scored_cmp);
    size_t out = m < k ? m : k;
    for (size_t i = 0; i < out; i++) {
        hits[i].doc = all[i].doc;
        hits[i].score = (float)all[i].score;
    }
    *n_hits = out;
    xfree(h, all);
    xfree(h, score);
    xfree(h, hit);
    return ST_OK;
}
#endif

st_status bm25_doc_id(void *inst, uint64_t doc, const char **id, size_t *len,
                             st_error *err)
{
    bm25 *r = inst;
    if (doc >= r->idx.n_docs)
        return r->host->error(err, ST_E_RANGE, "bm25: document %llu does not exist (%zu indexed)",
                              (unsigned long long)doc, r->idx.n_docs);
    *id = r->idx.docs[doc].id;
    *len = r->idx.docs[doc].id_len;
    return ST_OK;
}

uint64_t bm25_count(void *inst)
{
    bm25 *r = inst;
    return r->idx.n_docs;
}

void bm25_clear(void *inst)
{
    bm25 *r = inst;
    index_free(r->host, &r->idx);
}

void bm25_drop_last(void *inst)
{
    bm25 *r = inst;
    bm25_index *ix = &r->idx;
    if (!ix->n_docs)
        return;
    uint32_t doc = (uint32_t)(ix->n_docs - 1);
    /* Postings are ascending, so the newest document is each list's last. */
    for (size_t i = 0; i < ix->n_terms; i++) {
        bm25_term *t = &ix->terms[i];
        if (t->n && t->doc[t->n - 1] == doc)
            t->n--;
    }
    ix->total_len -= ix->docs[doc].len;
    xfree(r->host, ix->docs[doc].id);
    ix->n_docs--;
}

/* ---- persistence ---- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void bm25_pack(void *inst, msgpack_packer *pk)
{
    const bm25 *r = inst;
    const bm25_index *ix = &r->idx;
    msgpack_pack_map(pk, 5);
    pack_str(pk, "format", 6);
    pack_str(pk, BM25_FORMAT_NAME, strlen(BM25_FORMAT_NAME));
    pack_str(pk, "version", 7);
    msgpack_pack_uint32(pk, BM25_FORMAT_VERSION);
    pack_str(pk, "tokenizer", 9);
    pack_str(pk, "words", 5);
    pack_str(pk, "docs", 4);
    msgpack_pack_array(pk, ix->n_docs);
    for (size_t i = 0; i < ix->n_docs; i++) {
        msgpack_pack_array(pk, 2);
        pack_str(pk, ix->docs[i].id, ix->docs[i].id_len);
        msgpack_pack_uint32(pk, ix->docs[i].len);
    }
    /* A term left without postings (its only document dropped) is not saved. */
    size_t n_terms = 0;
    for (size_t i = 0; i < ix->n_terms; i++)
        n_terms += ix->terms[i].n > 0;
    pack_str(pk, "terms", 5);
    msgpack_pack_array(pk, n_terms);
    for (size_t i = 0; i < ix->n_terms; i++) {
        const bm25_term *t = &ix->terms[i];
        if (!t->n)
            continue;
        msgpack_pack_array(pk, 2);
        pack_str(pk, t->text, t->len);
        msgpack_pack_array(pk, (size_t)t->n * 2);
        for (uint32_t j = 0; j < t->n; j++) {
            msgpack_pack_uint32(pk, t->doc[j]);
            msgpack_pack_uint32(pk, t->tf[j]);
        }
    }
}

#ifndef ST_RETRIEVER_NO_ENTRY
static st_status bm25_save(void *inst, const char *path, st_error *err)
{
    bm25 *r = inst;
    const st_host_services *h = r->host;
    const bm25_index *ix = &r->idx;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bm25_pack(inst, &pk);
    if (!sb.data && ix->n_docs) {
        msgpack_sbuffer_destroy(&sb);
        return h->error(err, ST_E_NOMEM, "bm25: out of memory saving the index");
    }
    st_status st = st_index_file_write(h, "bm25", path, &sb, err);
    msgpack_sbuffer_destroy(&sb);
    return st;
}

#endif

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
    return st_mp_find(map, key);
}

static bool is_uint(const msgpack_object *o, uint64_t max)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= max;
}

/* Build `ix` from the decoded file; every inconsistency is refused. */
static st_status index_from_msgpack(const st_host_services *h, const msgpack_object *root,
                                    const char *path, bm25_index *ix, st_error *err)
{
    if (root->type != MSGPACK_OBJECT_MAP)
        return h->error(err, ST_E_FORMAT, "%s: not a bm25 index (top level is not a map)", path);
    const msgpack_object *fmt = map_get(root, "format");
    if (!fmt || fmt->type != MSGPACK_OBJECT_STR || fmt->via.str.size != strlen(BM25_FORMAT_NAME) ||
        memcmp(fmt->via.str.ptr, BM25_FORMAT_NAME, fmt->via.str.size) != 0)
        return h->error(err, ST_E_FORMAT, "%s: not a bm25 index (format is not \"%s\")", path,
                        BM25_FORMAT_NAME);
    const msgpack_object *ver = map_get(root, "version");
    if (!ver || ver->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return h->error(err, ST_E_FORMAT, "%s: bm25 index has no version", path);
    if (ver->via.u64 != BM25_FORMAT_VERSION)
        return h->error(err, ST_E_FORMAT, "%s: bm25 index version %llu, expected %d", path,
                        (unsigned long long)ver->via.u64, BM25_FORMAT_VERSION);
    const msgpack_object *tok = map_get(root, "tokenizer");
    if (!tok || tok->type != MSGPACK_OBJECT_STR || tok->via.str.size != 5 ||
        memcmp(tok->via.str.ptr, "words", 5) != 0)
        return h->error(err, ST_E_FORMAT, "%s: bm25 index tokenizer is not \"words\"", path);
    const msgpack_object *docs = map_get(root, "docs");
    const msgpack_object *terms = map_get(root, "terms");
    if (!docs || docs->type != MSGPACK_OBJECT_ARRAY || !terms ||
        terms->type != MSGPACK_OBJECT_ARRAY)
        return h->error(err, ST_E_FORMAT, "%s: bm25 index lacks the docs or terms array", path);

    uint32_t n_docs = docs->via.array.size;
    for (uint32_t i = 0; i < n_docs; i++) {
        const msgpack_object *d = &docs->via.array.ptr[i];
        if (d->type != MSGPACK_OBJECT_ARRAY || d->via.array.size != 2 ||
            d->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            !is_uint(&d->via.array.ptr[1], UINT32_MAX))
            return h->error(err, ST_E_FORMAT, "%s: document %u is not [id, length]", path, i);
        if (!index_add_doc(h, ix, d->via.array.ptr[0].via.str.ptr,
                           d->via.array.ptr[0].via.str.size,
                           (uint32_t)d->via.array.ptr[1].via.u64))
            return h->error(err, ST_E_NOMEM, "%s: out of memory loading", path);
    }

    /* Postings must add up to each document's length. */
    uint64_t *seen_len = h->calloc(h->host, n_docs ? n_docs : 1, sizeof *seen_len);
    if (!seen_len)
        return h->error(err, ST_E_NOMEM, "%s: out of memory loading", path);
    st_status st = ST_OK;
    for (uint32_t i = 0; i < terms->via.array.size && st == ST_OK; i++) {
        const msgpack_object *t = &terms->via.array.ptr[i];
        if (t->type != MSGPACK_OBJECT_ARRAY || t->via.array.size != 2 ||
            t->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            t->via.array.ptr[0].via.str.size == 0 ||
            t->via.array.ptr[1].type != MSGPACK_OBJECT_ARRAY ||
            t->via.array.ptr[1].via.array.size % 2 != 0 ||
            t->via.array.ptr[1].via.array.size == 0) {
            st = h->error(err, ST_E_FORMAT, "%s: term %u is not [text, [doc, tf, ...]]", path, i);
            break;
        }
        const char *text = t->via.array.ptr[0].via.str.ptr;
        size_t tlen = t->via.array.ptr[0].via.str.size;
        if (index_find(ix, text, tlen, hash_bytes(text, tlen)) >= 0) {
            st = h->error(err, ST_E_FORMAT, "%s: term %u appears twice", path, i);
            break;
        }
        int64_t ti = index_term(h, ix, text, tlen);
        if (ti < 0) {
            st = h->error(err, ST_E_NOMEM, "%s: out of memory loading", path);
            break;
        }
        const msgpack_object *post = t->via.array.ptr[1].via.array.ptr;
        uint32_t n_post = t->via.array.ptr[1].via.array.size / 2;
        for (uint32_t j = 0; j < n_post; j++) {
            const msgpack_object *d = &post[2 * j], *f = &post[2 * j + 1];
            if (!is_uint(d, n_docs ? n_docs - 1 : 0) || n_docs == 0 || !is_uint(f, UINT32_MAX) ||
                f->via.u64 == 0 ||
                (j > 0 && d->via.u64 <= post[2 * j - 2].via.u64)) {
                st = h->error(err, ST_E_FORMAT,
                              "%s: term %u posting %u: expected an ascending document index "
                              "below %u and a positive count", path, i, j, n_docs);
                break;
            }
            seen_len[d->via.u64] += f->via.u64;
            if (!posting_add(h, &ix->terms[ti], (uint32_t)d->via.u64, (uint32_t)f->via.u64)) {
                st = h->error(err, ST_E_NOMEM, "%s: out of memory loading", path);
                break;
            }
        }
    }
    for (uint32_t i = 0; i < n_docs && st == ST_OK; i++)
        if (seen_len[i] != ix->docs[i].len)
            st = h->error(err, ST_E_FORMAT,
                          "%s: document %u has length %u but its postings count %llu terms", path,
                          i, ix->docs[i].len, (unsigned long long)seen_len[i]);
    xfree(h, seen_len);
    return st;
}

st_status bm25_parse(void *inst, const msgpack_object *root, const char *path,
                     bm25_index **out, st_error *err)
{
    bm25 *r = inst;
    const st_host_services *h = r->host;
    *out = NULL;
    bm25_index *fresh = h->calloc(h->host, 1, sizeof *fresh);
    if (!fresh)
        return h->error(err, ST_E_NOMEM, "%s: out of memory loading", path);
    st_status st = index_from_msgpack(h, root, path, fresh, err);
    if (st != ST_OK) {
        bm25_discard(inst, fresh);
        return st;
    }
    *out = fresh;
    return ST_OK;
}

bm25_index *bm25_swap(void *inst, bm25_index *fresh)
{
    bm25 *r = inst;
    bm25_index old = r->idx;
    r->idx = *fresh;
    *fresh = old;
    return fresh;
}

void bm25_discard(void *inst, bm25_index *fresh)
{
    bm25 *r = inst;
    if (!fresh)
        return;
    index_free(r->host, fresh);
    xfree(r->host, fresh);
}

#ifndef ST_RETRIEVER_NO_ENTRY
static st_status bm25_load(void *inst, const char *path, st_error *err)
{
    bm25 *r = inst;
    const st_host_services *h = r->host;
    st_index_bytes file;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    st_status st = st_index_file_unpack(h, path, "bm25 index", &file, &up, err);
    if (st != ST_OK) {
        msgpack_unpacked_destroy(&up);
        return st;
    }
    bm25_index *fresh = NULL;
    if (st == ST_OK)
        st = bm25_parse(inst, &up.data, path, &fresh, err);
    msgpack_unpacked_destroy(&up);
    st_index_file_release(h, &file);
    if (st != ST_OK)
        return st; /* the old index stays */
    bm25_discard(inst, bm25_swap(inst, fresh));
    return ST_OK;
}

static const st_retriever_ops bm25_ops = {
    .struct_size = sizeof(st_retriever_ops),
    .add = bm25_add,
    .query = bm25_query,
    .doc_id = bm25_doc_id,
    .count = bm25_count,
    .save = bm25_save,
    .load = bm25_load,
    .clear = bm25_clear,
};

ST_PLUGIN(ST_KIND_RETRIEVER, "bm25", "1.0.0",
          "Okapi BM25 lexical retrieval over an in-memory inverted index, saved as msgpack",
          bm25_create, bm25_destroy, &bm25_ops, NULL);
#endif
