/*
 * retriever `embedding`: dense retrieval. Every document and query is
 * embedded by a sentence encoder the host runs (the host extension
 * ST_HOST_ENCODER_V1; all-MiniLM-L6-v2 by default) and documents are ranked
 * by cosine similarity against the query: the vectors are L2-normalised, so
 * that is their dot product, computed exactly over every document (a flat
 * index: 10k documents of 384 floats are 15 MB and a query is one pass).
 * The saved index (msgpack) is documented in docs/plugins/embedding.md.
 */
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stretch/msgpack_bounds.h>
#include <stretch/msgpack_map.h>
#include <stretch/params.h>
#include <stretch/plugin.h>

#include "embedding.h"
#include "../index_file.h"

#define EMB_FORMAT "stretch.embedding"
#define EMB_VERSION 1

typedef struct emb_doc {
    char *id;
    size_t id_len;
} emb_doc;

struct emb_index {
    emb_doc *docs;
    float *vecs;      /* [n][dim] */
    size_t n, cap;
};

/* The encoder extension as 1.3 shipped it (through `close`); `embed_batch`
 * (1.5) is used only when the host's struct reaches it. */
#define ENCODER_END_OF(field) \
    (offsetof(st_host_encoder_v1, field) + sizeof(((st_host_encoder_v1 *)0)->field))
#define ENCODER_SIZE_1_3 ENCODER_END_OF(close)

typedef struct embedding {
    const st_host_services *host;
    const st_host_encoder_v1 *enc_ops;
    st_host_encoder *enc;
    uint32_t dim;
    emb_index idx;
    float *query;     /* [dim] scratch */
} embedding;

static void index_free(const st_host_services *h, emb_index *ix)
{
    for (size_t i = 0; i < ix->n; i++)
        h->free(h->host, ix->docs[i].id);
    h->free(h->host, ix->docs);
    h->free(h->host, ix->vecs);
    memset(ix, 0, sizeof *ix);
}

static bool index_reserve(const st_host_services *h, emb_index *ix, size_t need, uint32_t dim)
{
    if (need <= ix->cap)
        return true;
    size_t cap = ix->cap ? ix->cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    emb_doc *d = h->realloc(h->host, ix->docs, cap * sizeof *d);
    if (!d)
        return false;
    ix->docs = d;
    float *v = h->realloc(h->host, ix->vecs, cap * dim * sizeof *v);
    if (!v)
        return false;
    ix->vecs = v;
    ix->cap = cap;
    return true;
}

/* Append a document whose vector is already at vecs[n]. */
static bool index_push_id(const st_host_services *h, emb_index *ix, const char *id, size_t n)
{
    char *copy = h->alloc(h->host, n ? n : 1);
    if (!copy)
        return false;
    if (n)
        memcpy(copy, id, n);
    ix->docs[ix->n].id = copy;
    ix->docs[ix->n].id_len = n;
    ix->n++;
    return true;
}

void emb_destroy(void *inst)
{
    embedding *r = inst;
    if (!r)
        return;
    const st_host_services *h = r->host;
    if (r->enc)
        r->enc_ops->close(h->host, r->enc);
    index_free(h, &r->idx);
    h->free(h->host, r->query);
    h->free(h->host, r);
}

st_status emb_create(const st_host_services *host, const st_params *params, void **inst,
                            st_error *err)
{
    const st_host_encoder_v1 *ops = host->get_extension
                                        ? host->get_extension(host->host, ST_HOST_ENCODER_V1)
                                        : NULL;
    if (!ops || ops->struct_size < ENCODER_SIZE_1_3)
        return host->error(err, ST_E_UNAVAILABLE,
                           "embedding: this host runs no sentence encoder (%s)",
                           ST_HOST_ENCODER_V1);
    embedding *r = host->calloc(host->host, 1, sizeof *r);
    if (!r)
        return host->error(err, ST_E_NOMEM, "embedding: out of memory");
    r->host = host;
    r->enc_ops = ops;
    const char *model = st_param_str(params, "model");
    st_status st = ops->open(host->host, model, &r->enc, &r->dim, err);
    if (st == ST_OK && (r->dim == 0 || r->dim > 65536))
        st = host->error(err, ST_E_PLUGIN, "embedding: the encoder gives %u dimensions", r->dim);
    if (st == ST_OK && !(r->query = host->alloc(host->host, r->dim * sizeof *r->query)))
        st = host->error(err, ST_E_NOMEM, "embedding: out of memory");
    if (st != ST_OK) {
        emb_destroy(r);
        return st;
    }
    *inst = r;
    return ST_OK;
}

st_status emb_add(void *inst, const char *id, size_t id_len, const char *text,
                         size_t text_len, st_error *err)
{
    embedding *r = inst;
    const st_host_services *h = r->host;
    if ((!id && id_len) || (!text && text_len))
        return h->error(err, ST_E_INVALID, "embedding: add given a NULL id or text");
    if (!index_reserve(h, &r->idx, r->idx.n + 1, r->dim))
        return h->error(err, ST_E_NOMEM, "embedding: out of memory");
    float *v = r->idx.vecs + r->idx.n * r->dim;
    st_status st = r->enc_ops->embed(h->host, r->enc, text ? text : "", text_len, v, err);
    if (st != ST_OK)
        return st;
    if (!index_push_id(h, &r->idx, id, id_len))
        return h->error(err, ST_E_NOMEM, "embedding: out of memory");
    return ST_OK;
}

/* Texts embedded per encoder call: a few thousand tokens of descriptions
 * or passages, so the encoder's batch is full but its scratch stays small. */
#define EMBED_CHUNK 64

st_status emb_add_batch(void *inst, size_t n, const char *const *ids, const size_t *id_lens,
                        const char *const *texts, const size_t *text_lens, st_error *err)
{
    embedding *r = inst;
    const st_host_services *h = r->host;
    for (size_t i = 0; i < n; i++)
        if ((!ids[i] && id_lens[i]) || (!texts[i] && text_lens[i]))
            return h->error(err, ST_E_INVALID, "embedding: add_batch given a NULL id or text "
                            "(document %zu)", i);
    if (!index_reserve(h, &r->idx, r->idx.n + n, r->dim))
        return h->error(err, ST_E_NOMEM, "embedding: out of memory");
    bool batched = r->enc_ops->struct_size >= ENCODER_END_OF(embed_batch) &&
                   r->enc_ops->embed_batch;
    /* Every vector first (the encoder is what fails), then the ids. */
    st_status st = ST_OK;
    for (size_t i = 0; i < n && st == ST_OK;) {
        size_t m = batched ? (n - i < EMBED_CHUNK ? n - i : EMBED_CHUNK) : 1;
        float *v = r->idx.vecs + (r->idx.n + i) * r->dim;
        if (batched) {
            const char *chunk[EMBED_CHUNK];
            for (size_t j = 0; j < m; j++)
                chunk[j] = texts[i + j] ? texts[i + j] : "";
            st = r->enc_ops->embed_batch(h->host, r->enc, m, chunk, text_lens + i, v, err);
        } else {
            st = r->enc_ops->embed(h->host, r->enc, texts[i] ? texts[i] : "", text_lens[i], v,
                                   err);
        }
        i += m;
    }
    if (st != ST_OK)
        return st;
    size_t before = r->idx.n;
    for (size_t i = 0; i < n; i++)
        if (!index_push_id(h, &r->idx, ids[i], id_lens[i])) {
            while (r->idx.n > before)
                emb_drop_last(r);
            return h->error(err, ST_E_NOMEM, "embedding: out of memory");
        }
    return ST_OK;
}

/* A stored vector's dot product with the query: eight partial sums (lane
 * i mod 8, two 4-float vectors: SSE on any x86-64) added in a fixed tree,
 * then the products past the last 8, in order. A single running sum is one
 * chain of dependent adds the compiler may not reorder: 100k documents x
 * 384 dimensions took about 60 ms a query that way, a fifth of `stretch
 * retrieve query`. The order is written out, so every build gives the same
 * bits. */
typedef float st_lanes4 __attribute__((vector_size(16)));

static float dot_lanes(const float *a, const float *b, uint32_t n)
{
    st_lanes4 p0 = {0}, p1 = {0}, x0, y0, x1, y1;
    uint32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&x0, a + i, sizeof x0);
        memcpy(&y0, b + i, sizeof y0);
        memcpy(&x1, a + i + 4, sizeof x1);
        memcpy(&y1, b + i + 4, sizeof y1);
        p0 += x0 * y0;
        p1 += x1 * y1;
    }
    float tail = 0;
    for (; i < n; i++)
        tail += a[i] * b[i];
    return (((p0[0] + p0[1]) + (p0[2] + p0[3])) + ((p1[0] + p1[1]) + (p1[2] + p1[3]))) + tail;
}

st_status emb_score_all(void *inst, const char *text, size_t len, float *scores, st_error *err)
{
    embedding *r = inst;
    const st_host_services *h = r->host;
    if (!text && len)
        return h->error(err, ST_E_INVALID, "embedding: query given NULL text");
    if (r->idx.n == 0)
        return ST_OK;
    st_status st = r->enc_ops->embed(h->host, r->enc, text ? text : "", len, r->query, err);
    if (st != ST_OK)
        return st;
    for (size_t d = 0; d < r->idx.n; d++)
        scores[d] = dot_lanes(r->idx.vecs + d * r->dim, r->query, r->dim);
    return ST_OK;
}

#ifndef ST_RETRIEVER_NO_ENTRY
typedef struct scored {
    size_t doc;
    float score;
} scored;

/* Better first; ties by ascending document. */
static bool better(scored a, scored b)
{
    return a.score > b.score || (a.score == b.score && a.doc < b.doc);
}

static st_status emb_query(void *inst, const char *text, size_t len, size_t k, st_hit *hits,
                           size_t *n_hits, st_error *err)
{
    embedding *r = inst;
    const st_host_services *h = r->host;
    *n_hits = 0;
    if (!text && len)
        return h->error(err, ST_E_INVALID, "embedding: query given NULL text");
    if (k == 0 || r->idx.n == 0)
        return ST_OK;
    if (k > r->idx.n)
        k = r->idx.n;
    scored *top = h->alloc(h->host, k * sizeof *top);
    float *sim = h->alloc(h->host, r->idx.n * sizeof *sim);
    if (!top || !sim) {
        h->free(h->host, top);
        h->free(h->host, sim);
        return h->error(err, ST_E_NOMEM, "embedding: out of memory");
    }
    st_status st = emb_score_all(inst, text, len, sim, err);
    /* Keep the best k in order by insertion: k is small next to n. */
    size_t m = 0;
    for (size_t d = 0; d < r->idx.n && st == ST_OK; d++) {
        scored c = {d, sim[d]};
        if (m == k && !better(c, top[k - 1]))
            continue;
        size_t at = m < k ? m++ : k - 1;
        while (at > 0 && better(c, top[at - 1])) {
            top[at] = top[at - 1];
            at--;
        }
        top[at] = c;
    }
    for (size_t i = 0; i < m && st == ST_OK; i++) {
        hits[i].doc = top[i].doc;
        hits[i].score = top[i].score;
    }
    if (st == ST_OK)
        *n_hits = m;
    h->free(h->host, top);
    h->free(h->host, sim);
    return st;
}
#endif

st_status emb_doc_id(void *inst, uint64_t doc, const char **id, size_t *len, st_error *err)
{
    embedding *r = inst;
    if (doc >= r->idx.n)
        return r->host->error(err, ST_E_RANGE, "embedding: document %llu does not exist (%zu "
                              "indexed)", (unsigned long long)doc, r->idx.n);
    *id = r->idx.docs[doc].id;
    *len = r->idx.docs[doc].id_len;
    return ST_OK;
}

uint64_t emb_count(void *inst)
{
    return ((embedding *)inst)->idx.n;
}

void emb_clear(void *inst)
{
    embedding *r = inst;
    index_free(r->host, &r->idx);
}

void emb_drop_last(void *inst)
{
    embedding *r = inst;
    if (!r->idx.n)
        return;
    r->idx.n--;
    r->host->free(r->host->host, r->idx.docs[r->idx.n].id);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void emb_pack(void *inst, msgpack_packer *pk)
{
    const embedding *r = inst;
    msgpack_pack_map(pk, 4);
    pack_str(pk, "format", 6);
    pack_str(pk, EMB_FORMAT, strlen(EMB_FORMAT));
    pack_str(pk, "version", 7);
    msgpack_pack_uint32(pk, EMB_VERSION);
    pack_str(pk, "dim", 3);
    msgpack_pack_uint32(pk, r->dim);
    pack_str(pk, "docs", 4);
    msgpack_pack_array(pk, r->idx.n);
    size_t bytes = r->dim * sizeof(float);
    for (size_t i = 0; i < r->idx.n; i++) {
        msgpack_pack_array(pk, 2);
        pack_str(pk, r->idx.docs[i].id, r->idx.docs[i].id_len);
        /* Little-endian f32, as every platform stretch builds on stores them. */
        msgpack_pack_bin(pk, bytes);
        msgpack_pack_bin_body(pk, r->idx.vecs + i * r->dim, bytes);
    }
}

#ifndef ST_RETRIEVER_NO_ENTRY
static st_status emb_save(void *inst, const char *path, st_error *err)
{
    embedding *r = inst;
    const st_host_services *h = r->host;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    emb_pack(inst, &pk);
    if (!sb.data) {
        msgpack_sbuffer_destroy(&sb);
        return h->error(err, ST_E_NOMEM, "embedding: out of memory saving the index");
    }
    st_status st = st_index_file_write(h, "embedding", path, &sb, err);
    msgpack_sbuffer_destroy(&sb);
    return st;
}

#endif

static st_status index_from(embedding *r, const msgpack_object *root, const char *path,
                            emb_index *ix, st_error *err)
{
    const st_host_services *h = r->host;
    if (root->type != MSGPACK_OBJECT_MAP || !st_mp_str_is(root, "format", EMB_FORMAT))
        return h->error(err, ST_E_FORMAT, "%s: not an embedding index (format is not \"%s\")",
                        path, EMB_FORMAT);
    int64_t version = 0, dim = 0;
    if (st_mp_int(root, "version", &version) != ST_OK || version != EMB_VERSION)
        return h->error(err, ST_E_FORMAT, "%s: embedding index version is not %d", path,
                        EMB_VERSION);
    if (st_mp_int(root, "dim", &dim) != ST_OK || dim != (int64_t)r->dim)
        return h->error(err, ST_E_FORMAT, "%s: embedding index of %lld dimensions; this "
                        "encoder gives %u (another model?)", path, (long long)dim, r->dim);
    const msgpack_object *docs = st_mp_find(root, "docs");
    if (!docs || docs->type != MSGPACK_OBJECT_ARRAY)
        return h->error(err, ST_E_FORMAT, "%s: embedding index lacks the docs array", path);
    size_t bytes = r->dim * sizeof(float);
    if (!index_reserve(h, ix, docs->via.array.size, r->dim))
        return h->error(err, ST_E_NOMEM, "%s: out of memory loading", path);
    for (uint32_t i = 0; i < docs->via.array.size; i++) {
        const msgpack_object *d = &docs->via.array.ptr[i];
        if (d->type != MSGPACK_OBJECT_ARRAY || d->via.array.size != 2 ||
            d->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
            d->via.array.ptr[1].type != MSGPACK_OBJECT_BIN ||
            d->via.array.ptr[1].via.bin.size != bytes)
            return h->error(err, ST_E_FORMAT, "%s: document %u is not [id, %zu-byte vector]",
                            path, i, bytes);
        float *v = ix->vecs + (size_t)i * r->dim;
        memcpy(v, d->via.array.ptr[1].via.bin.ptr, bytes);
        /* (In lanes, as the search: a running double sum was a chain of
         * dependent adds, a sixth of loading 100k vectors.) */
        double norm = dot_lanes(v, v, r->dim);
        /* A unit vector, give or take rounding (this catches most bit flips). */
        if (!isfinite(norm) || fabs(norm - 1.0) > 1e-3)
            return h->error(err, ST_E_FORMAT, "%s: document %u's vector is not a unit vector "
                            "(|v|^2 = %g)", path, i, norm);
        const msgpack_object *id = &d->via.array.ptr[0];
        if (!index_push_id(h, ix, id->via.str.ptr, id->via.str.size))
            return h->error(err, ST_E_NOMEM, "%s: out of memory loading", path);
    }
    return ST_OK;
}

st_status emb_parse(void *inst, const msgpack_object *root, const char *path, emb_index **out,
                    st_error *err)
{
    embedding *r = inst;
    const st_host_services *h = r->host;
    *out = NULL;
    emb_index *fresh = h->calloc(h->host, 1, sizeof *fresh);
    if (!fresh)
        return h->error(err, ST_E_NOMEM, "%s: out of memory loading", path);
    st_status st = index_from(r, root, path, fresh, err);
    if (st != ST_OK) {
        emb_discard(inst, fresh);
        return st;
    }
    *out = fresh;
    return ST_OK;
}

emb_index *emb_swap(void *inst, emb_index *fresh)
{
    embedding *r = inst;
    emb_index old = r->idx;
    r->idx = *fresh;
    *fresh = old;
    return fresh;
}

void emb_discard(void *inst, emb_index *fresh)
{
    embedding *r = inst;
    if (!fresh)
        return;
    index_free(r->host, fresh);
    r->host->free(r->host->host, fresh);
}

#ifndef ST_RETRIEVER_NO_ENTRY
static st_status emb_load(void *inst, const char *path, st_error *err)
{
    embedding *r = inst;
    const st_host_services *h = r->host;
    st_index_bytes file;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    st_status st = st_index_file_unpack(h, path, "embedding index", &file, &up, err);
    if (st != ST_OK) {
        msgpack_unpacked_destroy(&up);
        return st;
    }
    emb_index *fresh = NULL;
    if (st == ST_OK)
        st = emb_parse(inst, &up.data, path, &fresh, err);
    msgpack_unpacked_destroy(&up);
    st_index_file_release(h, &file);
    if (st != ST_OK)
        return st;
    emb_discard(inst, emb_swap(inst, fresh));
    return ST_OK;
}

static const st_retriever_ops emb_ops = {
    .struct_size = sizeof(st_retriever_ops),
    .add = emb_add,
    .query = emb_query,
    .doc_id = emb_doc_id,
    .count = emb_count,
    .save = emb_save,
    .load = emb_load,
    .clear = emb_clear,
    .add_batch = emb_add_batch,
};

ST_PLUGIN(ST_KIND_RETRIEVER, "embedding", "1.0.0",
          "Dense retrieval with a host-run sentence encoder over an exact flat index, saved as "
          "msgpack",
          emb_create, emb_destroy, &emb_ops, NULL);
#endif
