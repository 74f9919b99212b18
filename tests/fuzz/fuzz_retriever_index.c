/*
 * tests/fuzz/fuzz_retriever_index.c - a retriever's saved index, its
 * source compiled in: fuzz_bm25_index (bm25), fuzz_embedding_index
 * (embedding) and fuzz_hybrid_index (hybrid, both parts in one file), the
 * last two on the test host's encoder (ST_FUZZ_ENCODER; test_host.h). The
 * input is loaded as an index file; an index that loads must answer count,
 * doc_id and queries, and survive a save and a load into a fresh instance
 * unchanged (same documents, same hits). A refused file leaves the
 * instance empty and says why.
 */
#include <stdlib.h>
#include <string.h>

#include <stretch/plugin.h>
#include <stretch/retriever.h>

#include "fuzz_util.h"
#include "test_host.h"

extern const st_plugin_entry stretch_plugin_entry;

#define K_HITS 8

static const st_retriever_ops *g_ops;

/* The host: the default one, or one that offers the test encoder. */
static const st_host_services *host(void)
{
#ifdef ST_FUZZ_ENCODER
    return st_test_host_encoder_services();
#else
    return NULL;
#endif
}

static void *create(void)
{
    void *inst = NULL;
    st_error err = {0};
    if (st_test_create(&stretch_plugin_entry, host(), NULL, &inst, &err) != ST_OK)
        st_fuzz_fail("%s create: %s", stretch_plugin_entry.name, err.message);
    return inst;
}

static size_t query(void *inst, const char *text, size_t len, st_hit *hits)
{
    size_t n = 0;
    st_error err = {0};
    if (g_ops->query(inst, text, len, K_HITS, hits, &n, &err) != ST_OK)
        st_fuzz_fail("query of a loaded index failed: %s", err.message);
    if (n > K_HITS)
        st_fuzz_fail("query returned %zu hits for k = %d", n, K_HITS);
    for (size_t k = 0; k < n; k++)
        if (hits[k].doc >= g_ops->count(inst))
            st_fuzz_fail("query returned document %llu of %llu",
                         (unsigned long long)hits[k].doc, (unsigned long long)g_ops->count(inst));
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_ops = stretch_plugin_entry.ops;
    const char *path = st_fuzz_write(0, "index", data, size);
    void *inst = create();
    st_error err = {0};
    if (g_ops->load(inst, path, &err) != ST_OK) {
        if (!err.message[0] || g_ops->count(inst) != 0)
            st_fuzz_fail("a refused index left documents or no message");
        stretch_plugin_entry.destroy(inst);
        return 0;
    }
    uint64_t n_docs = g_ops->count(inst);
    for (uint64_t d = 0; d < n_docs && d < 64; d++) {
        const char *id;
        size_t len;
        if (g_ops->doc_id(inst, d, &id, &len, &err) != ST_OK)
            st_fuzz_fail("document %llu of %llu has no id", (unsigned long long)d,
                         (unsigned long long)n_docs);
    }
    /* Queries: fixed words, and the input's own bytes (its terms among them). */
    static const char fixed[] = "the quick brown fox 42 caf\xc3\xa9";
    st_hit hits_a[2][K_HITS], hits_b[2][K_HITS];
    size_t na[2], nb[2];
    na[0] = query(inst, fixed, sizeof fixed - 1, hits_a[0]);
    na[1] = query(inst, (const char *)data, size < 256 ? size : 256, hits_a[1]);

    const char *saved = st_fuzz_write(1, "saved", "", 0);
    if (g_ops->save(inst, saved, &err) != ST_OK)
        st_fuzz_fail("a loaded index cannot be saved: %s", err.message);
    void *again = create();
    if (g_ops->load(again, saved, &err) != ST_OK)
        st_fuzz_fail("a saved index does not load: %s", err.message);
    if (g_ops->count(again) != n_docs)
        st_fuzz_fail("saved with %llu documents, loaded with %llu", (unsigned long long)n_docs,
                     (unsigned long long)g_ops->count(again));
    nb[0] = query(again, fixed, sizeof fixed - 1, hits_b[0]);
    nb[1] = query(again, (const char *)data, size < 256 ? size : 256, hits_b[1]);
    for (int q = 0; q < 2; q++) {
        if (na[q] != nb[q])
            st_fuzz_fail("query %d: %zu hits before saving, %zu after", q, na[q], nb[q]);
        for (size_t k = 0; k < na[q]; k++)
            if (hits_a[q][k].doc != hits_b[q][k].doc ||
                memcmp(&hits_a[q][k].score, &hits_b[q][k].score, sizeof(float)) != 0)
                st_fuzz_fail("query %d: hit %zu differs after a save and load", q, k);
    }
    stretch_plugin_entry.destroy(again);
    stretch_plugin_entry.destroy(inst);
    return 0;
}
