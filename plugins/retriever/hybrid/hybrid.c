/*
 * retriever `hybrid`: lexical and dense retrieval over the same documents,
 * fused. Every document goes into a bm25 inverted index and an embedding
 * flat index (the two plugins' own code, compiled in: bm25.h, embedding.h);
 * a query scores every document with both and fuses them:
 *
 *   rrf:      w / (K + rank_dense(D)) + (1 - w) / (K + rank_bm25(D))
 *             (ranks from 1, ties by document; a document sharing no word
 *             with the query has no bm25 rank and gets nothing from it)
 *   weighted: w * norm(cos(D)) + (1 - w) * norm(bm25(D)),
 *             norm(x) = (x - min) / (max - min) over all documents (0 when
 *             every document scores the same)
 *
 * w = `weight`, K = `rrf_k`. Why both: RRF needs no score calibration but
 * throws away how far apart the scores are; where one retriever is much
 * better (MiniLM on MetaTool) a weighted sum lets it dominate. The saved
 * index holds both sub-indexes (docs/plugins/hybrid.md).
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
#include "embedding.h"

#define HYB_FORMAT "stretch.hybrid"
#define HYB_VERSION 1

typedef struct hybrid {
    const st_host_services *host;
    void *lex;   /* bm25 */
    void *dense; /* embedding */
    bool rrf;
    double weight, rrf_k;
} hybrid;

typedef struct ranked {
    uint32_t doc;
    double score;
} ranked;

/* Better first; ties by ascending document (as every retriever here). */
static int ranked_cmp(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

static void hyb_destroy(void *inst)
{
    hybrid *r = inst;
    if (!r)
        return;
    bm25_destroy(r->lex);
    emb_destroy(r->dense);
    r->host->free(r->host->host, r);
}

static st_status hyb_create(const st_host_services *host, const st_params *params, void **inst,
                            st_error *err)
{
    hybrid *r = host->calloc(host->host, 1, sizeof *r);
    if (!r)
        return host->error(err, ST_E_NOMEM, "hybrid: out of memory");
    r->host = host;
    r->rrf = st_param_is(params, "fusion", "rrf");
    r->weight = st_param_float(params, "weight");
    r->rrf_k = st_param_float(params, "rrf_k");
    /* The sub-retrievers read their own parameters (k1, b, tokenizer;
     * model), which plugin.yaml declares under the same names. */
    st_status st = bm25_create(host, params, &r->lex, err);
    if (st == ST_OK)
        st = emb_create(host, params, &r->dense, err);
    if (st != ST_OK) {
        hyb_destroy(r);
        return st;
    }
    *inst = r;
    return ST_OK;
}

static st_status hyb_add(void *inst, const char *id, size_t id_len, const char *text,
                         size_t text_len, st_error *err)
{
    hybrid *r = inst;
    /* The encoder is what fails in practice, so it goes first; bm25 can
     * only run out of memory, and then the embedding is taken back. */
    st_status st = emb_add(r->dense, id, id_len, text, text_len, err);
    if (st != ST_OK)
        return st;
    st = bm25_add(r->lex, id, id_len, text, text_len, err);
    if (st != ST_OK)
        emb_drop_last(r->dense);
    return st;
}

static st_status hyb_add_batch(void *inst, size_t n, const char *const *ids,
                               const size_t *id_lens, const char *const *texts,
                               const size_t *text_lens, st_error *err)
{
    hybrid *r = inst;
    /* As hyb_add: the embeddings (in batches) first; bm25 can only run out
     * of memory, and then both parts are taken back to where they were. */
    st_status st = emb_add_batch(r->dense, n, ids, id_lens, texts, text_lens, err);
    if (st != ST_OK)
        return st;
    for (size_t i = 0; i < n; i++) {
        st = bm25_add(r->lex, ids[i] ? ids[i] : "", id_lens[i], texts[i] ? texts[i] : "",
                      text_lens[i], err);
        if (st != ST_OK) {
            for (size_t j = 0; j < i; j++)
                bm25_drop_last(r->lex);
            for (size_t j = 0; j < n; j++)
                emb_drop_last(r->dense);
            return st;
        }
    }
    return ST_OK;
}

/* fused[d] for every document, from the two retrievers' scores. */
static void fuse(const hybrid *r, size_t n, const double *lex, const uint8_t *matched,
                 const float *dense, ranked *tmp, double *fused)
{
    double w = r->weight;
    if (r->rrf) {
        for (size_t d = 0; d < n; d++) {
            tmp[d] = (ranked){(uint32_t)d, dense[d]};
            fused[d] = 0;
        }
        qsort(tmp, n, sizeof *tmp, ranked_cmp);
        for (size_t i = 0; i < n; i++)
            fused[tmp[i].doc] += w / (r->rrf_k + (double)(i + 1));
        size_t m = 0;
        for (size_t d = 0; d < n; d++)
            if (matched[d])
                tmp[m++] = (ranked){(uint32_t)d, lex[d]};
        qsort(tmp, m, sizeof *tmp, ranked_cmp);
        for (size_t i = 0; i < m; i++)
            fused[tmp[i].doc] += (1.0 - w) / (r->rrf_k + (double)(i + 1));
        return;
    }
    double lmin = lex[0], lmax = lex[0], dmin = dense[0], dmax = dense[0];
    for (size_t d = 1; d < n; d++) {
        lmin = fmin(lmin, lex[d]);
        lmax = fmax(lmax, lex[d]);
        dmin = fmin(dmin, (double)dense[d]);
        dmax = fmax(dmax, (double)dense[d]);
    }
    for (size_t d = 0; d < n; d++) {
        double nl = lmax > lmin ? (lex[d] - lmin) / (lmax - lmin) : 0.0;
        double nd = dmax > dmin ? ((double)dense[d] - dmin) / (dmax - dmin) : 0.0;
        fused[d] = w * nd + (1.0 - w) * nl;
    }
}

static st_status hyb_query(void *inst, const char *text, size_t len, size_t k, st_hit *hits,
                           size_t *n_hits, st_error *err)
{
    hybrid *r = inst;
    const st_host_services *h = r->host;
    *n_hits = 0;
    if (!text && len)
        return h->error(err, ST_E_INVALID, "hybrid: query given NULL text");
    size_t n = (size_t)bm25_count(r->lex);
    if (k == 0 || n == 0)
        return ST_OK;
    if (k > n)
        k = n;
    double *lex = h->alloc(h->host, n * sizeof *lex);
    double *fused = h->alloc(h->host, n * sizeof *fused);
    float *dense = h->alloc(h->host, n * sizeof *dense);
    uint8_t *matched = h->alloc(h->host, n);
    ranked *tmp = h->alloc(h->host, n * sizeof *tmp);
    st_status st = ST_OK;
    if (!lex || !fused || !dense || !matched || !tmp)
        st = h->error(err, ST_E_NOMEM, "hybrid: out of memory");
    size_t n_matched = 0;
    if (st == ST_OK)
        st = emb_score_all(r->dense, text, len, dense, err);
    if (st == ST_OK)
        st = bm25_score_all(r->lex, text, len, lex, matched, &n_matched, err);
    if (st == ST_OK) {
        fuse(r, n, lex, matched, dense, tmp, fused);
        for (size_t d = 0; d < n; d++)
            tmp[d] = (ranked){(uint32_t)d, fused[d]};
        qsort(tmp, n, sizeof *tmp, ranked_cmp);
        for (size_t i = 0; i < k; i++) {
            hits[i].doc = tmp[i].doc;
            hits[i].score = (float)tmp[i].score;
        }
        /* Two fused scores that differ below float precision would read as
         * out of order once rounded; keep the list non-increasing. */
        for (size_t i = 1; i < k; i++)
            if (hits[i].score > hits[i - 1].score)
                hits[i].score = hits[i - 1].score;
        *n_hits = k;
    }
    h->free(h->host, lex);
    h->free(h->host, fused);
    h->free(h->host, dense);
    h->free(h->host, matched);
    h->free(h->host, tmp);
    return st;
}

static st_status hyb_doc_id(void *inst, uint64_t doc, const char **id, size_t *len, st_error *err)
{
    return bm25_doc_id(((hybrid *)inst)->lex, doc, id, len, err);
}

static uint64_t hyb_count(void *inst)
{
    return bm25_count(((hybrid *)inst)->lex);
}

static void hyb_clear(void *inst)
{
    hybrid *r = inst;
    bm25_clear(r->lex);
    emb_clear(r->dense);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static st_status hyb_save(void *inst, const char *path, st_error *err)
{
    hybrid *r = inst;
    const st_host_services *h = r->host;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4);
    pack_str(&pk, "format", 6);
    pack_str(&pk, HYB_FORMAT, strlen(HYB_FORMAT));
    pack_str(&pk, "version", 7);
    msgpack_pack_uint32(&pk, HYB_VERSION);
    pack_str(&pk, "bm25", 4);
    bm25_pack(r->lex, &pk);
    pack_str(&pk, "embedding", 9);
    emb_pack(r->dense, &pk);
    if (!sb.data) {
        msgpack_sbuffer_destroy(&sb);
        return h->error(err, ST_E_NOMEM, "hybrid: out of memory saving the index");
    }
    st_status st = st_index_file_write(h, "hybrid", path, &sb, err);
    msgpack_sbuffer_destroy(&sb);
    return st;
}

/* Both sub-indexes must list the same documents in the same order. */
static st_status same_docs(hybrid *r, const char *path, st_error *err)
{
    const st_host_services *h = r->host;
    uint64_t n = bm25_count(r->lex);
    if (emb_count(r->dense) != n)
        return h->error(err, ST_E_FORMAT, "%s: hybrid index's bm25 part holds %llu documents "
                        "but its embedding part %llu", path, (unsigned long long)n,
                        (unsigned long long)emb_count(r->dense));
    for (uint64_t d = 0; d < n; d++) {
        const char *a, *b;
        size_t na, nb;
        if (bm25_doc_id(r->lex, d, &a, &na, err) != ST_OK ||
            emb_doc_id(r->dense, d, &b, &nb, err) != ST_OK || na != nb || memcmp(a, b, na))
            return h->error(err, ST_E_FORMAT, "%s: hybrid index's two parts name document "
                            "%llu differently", path, (unsigned long long)d);
    }
    return ST_OK;
}

static st_status hyb_load(void *inst, const char *path, st_error *err)
{
    hybrid *r = inst;
    const st_host_services *h = r->host;
    st_index_bytes file;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    st_status st = st_index_file_unpack(h, path, "hybrid index", &file, &up, err);
    if (st != ST_OK) {
        msgpack_unpacked_destroy(&up);
        return st;
    }
    const msgpack_object *root = &up.data;
    int64_t version = 0;
    if (st == ST_OK && (root->type != MSGPACK_OBJECT_MAP ||
                        !st_mp_str_is(root, "format", HYB_FORMAT)))
        st = h->error(err, ST_E_FORMAT, "%s: not a hybrid index (format is not \"%s\")", path,
                      HYB_FORMAT);
    if (st == ST_OK && (st_mp_int(root, "version", &version) != ST_OK ||
                        version != HYB_VERSION))
        st = h->error(err, ST_E_FORMAT, "%s: hybrid index version is not %d", path, HYB_VERSION);
    const msgpack_object *lex = st == ST_OK ? st_mp_find(root, "bm25") : NULL;
    const msgpack_object *dense = st == ST_OK ? st_mp_find(root, "embedding") : NULL;
    if (st == ST_OK && (!lex || !dense))
        st = h->error(err, ST_E_FORMAT, "%s: hybrid index lacks its bm25 or embedding part",
                      path);
    bm25_index *fresh_lex = NULL;
    emb_index *fresh_dense = NULL;
    if (st == ST_OK)
        st = bm25_parse(r->lex, lex, path, &fresh_lex, err);
    if (st == ST_OK)
        st = emb_parse(r->dense, dense, path, &fresh_dense, err);
    msgpack_unpacked_destroy(&up);
    st_index_file_release(h, &file);
    if (st != ST_OK) {
        bm25_discard(r->lex, fresh_lex);
        emb_discard(r->dense, fresh_dense);
        return st;
    }
    /* Put the pair in place, check it, and put the old one back on a
     * mismatch: a refused file keeps the current index. */
    bm25_index *old_lex = bm25_swap(r->lex, fresh_lex);
    emb_index *old_dense = emb_swap(r->dense, fresh_dense);
    st = same_docs(r, path, err);
    if (st != ST_OK) {
        old_lex = bm25_swap(r->lex, old_lex);
        old_dense = emb_swap(r->dense, old_dense);
    }
    bm25_discard(r->lex, old_lex);
    emb_discard(r->dense, old_dense);
    return st;
}

static const st_retriever_ops hyb_ops = {
    .struct_size = sizeof(st_retriever_ops),
    .add = hyb_add,
    .query = hyb_query,
    .doc_id = hyb_doc_id,
    .count = hyb_count,
    .save = hyb_save,
    .load = hyb_load,
    .clear = hyb_clear,
    .add_batch = hyb_add_batch,
};

ST_PLUGIN(ST_KIND_RETRIEVER, "hybrid", "1.0.0",
          "BM25 and sentence-encoder retrieval over the same documents, fused by reciprocal "
          "rank or a weighted sum of normalised scores",
          hyb_create, hyb_destroy, &hyb_ops, NULL);
