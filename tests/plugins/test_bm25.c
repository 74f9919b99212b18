/*
 * retriever `bm25`: scores against a hand computation, ranking, and the
 * saved index.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin_fixture.h"

static const st_retriever_ops *rops(const st_plugin_entry *e)
{
    return e->ops;
}

static void add(const st_plugin_entry *e, void *r, const char *id, const char *text)
{
    st_error err = {0};
    cr_assert_eq(rops(e)->add(r, id, strlen(id), text, strlen(text), &err), ST_OK, "%s",
                 err.message);
}

static size_t query(const st_plugin_entry *e, void *r, const char *q, size_t k, st_hit *hits)
{
    size_t n = 99;
    st_error err = {0};
    cr_assert_eq(rops(e)->query(r, q, strlen(q), k, hits, &n, &err), ST_OK, "%s", err.message);
    return n;
}

/* The 3-document corpus: lengths 3, 6, 3; avgdl = 4. */
static void *corpus(const st_plugin_entry *e, st_test_params *params)
{
    void *r = fx_create(e, params);
    add(e, r, "d0", "The cat sat.");
    add(e, r, "d1", "the DOG sat on the mat");
    add(e, r, "d2", "cats and dogs");
    return r;
}

static double term(double k1, double b, double tf, double dl, double avgdl, double n, double df)
{
    double idf = log(1.0 + (n - df + 0.5) / (df + 0.5));
    return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl));
}

Test(bm25, scores_match_hand_computation)
{
    const st_plugin_entry *e = fx_entry("retriever", "bm25");
    void *r = corpus(e, NULL);
    cr_assert_eq(rops(e)->count(r), 3);
    st_hit hits[3];
    /* "the" occurs in d0 (tf 1) and d1 (tf 2): df 2; "sat" in d0, d1: df 2.
     * "the" repeated in the query counts once. */
    size_t n = query(e, r, "THE sat the", 3, hits);
    double k1 = 1.2, b = 0.75;
    double s0 = term(k1, b, 1, 3, 4, 3, 2) + term(k1, b, 1, 3, 4, 3, 2);
    double s1 = term(k1, b, 2, 6, 4, 3, 2) + term(k1, b, 1, 6, 4, 3, 2);
    cr_assert_eq(n, 2, "d2 shares no term");
    cr_assert(s0 > s1, "hand computation: the shorter d0 wins (%g vs %g)", s0, s1);
    cr_assert_eq(hits[0].doc, 0);
    cr_assert_eq(hits[1].doc, 1);
    cr_assert_float_eq(hits[0].score, s0, 1e-5);
    cr_assert_float_eq(hits[1].score, s1, 1e-5);

    /* "dogs" matches only d2 ("dog" is another word). */
    n = query(e, r, "dogs", 3, hits);
    cr_assert_eq(n, 1);
    cr_assert_eq(hits[0].doc, 2);
    cr_assert_float_eq(hits[0].score, term(k1, b, 1, 3, 4, 3, 1), 1e-5);

    const char *id;
    size_t len;
    st_error err = {0};
    cr_assert_eq(rops(e)->doc_id(r, 2, &id, &len, &err), ST_OK);
    cr_assert_eq(len, 2);
    cr_assert(memcmp(id, "d2", 2) == 0);
    cr_assert_eq(rops(e)->doc_id(r, 3, &id, &len, &err), ST_E_RANGE);
    e->destroy(r);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

Test(bm25, parameters_change_scores)
{
    const st_plugin_entry *e = fx_entry("retriever", "bm25");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_float(&p, "k1", 2.0);
    st_test_params_float(&p, "b", 0.0);
    st_test_params_str(&p, "tokenizer", "words");
    void *r = corpus(e, &p);
    st_hit hits[3];
    size_t n = query(e, r, "the", 3, hits);
    cr_assert_eq(n, 2);
    cr_assert_eq(hits[0].doc, 1, "b = 0 ignores length, so tf 2 wins");
    cr_assert_float_eq(hits[0].score, term(2.0, 0.0, 2, 6, 4, 3, 2), 1e-5);
    e->destroy(r);

    st_test_params_init(&p);
    st_test_params_str(&p, "tokenizer", "sentencepiece");
    fx_create_fails(e, &p, ST_E_INVALID);
    st_test_params_init(&p);
    st_test_params_float(&p, "b", 1.5);
    fx_create_fails(e, &p, ST_E_RANGE);
}

Test(bm25, ties_by_doc_index_and_k)
{
    const st_plugin_entry *e = fx_entry("retriever", "bm25");
    void *r = fx_create(e, NULL);
    add(e, r, "a", "alpha beta");
    add(e, r, "b", "gamma");
    add(e, r, "c", "beta alpha");
    add(e, r, "d", "alpha beta");
    st_hit hits[4];
    size_t n = query(e, r, "alpha", 4, hits);
    cr_assert_eq(n, 3);
    cr_assert_eq(hits[0].doc, 0);
    cr_assert_eq(hits[1].doc, 2);
    cr_assert_eq(hits[2].doc, 3);
    cr_assert_float_eq(hits[0].score, hits[2].score, 0.0);
    cr_assert_eq(query(e, r, "alpha", 2, hits), 2);
    cr_assert_eq(query(e, r, "alpha", 0, hits), 0);
    cr_assert_eq(query(e, r, "", 4, hits), 0);
    e->destroy(r);
}

Test(bm25, words_tokenizer_keeps_utf8)
{
    const st_plugin_entry *e = fx_entry("retriever", "bm25");
    void *r = fx_create(e, NULL);
    add(e, r, "fr", "Un café crème");
    add(e, r, "en", "a caf and a cafe");
    st_hit hits[2];
    cr_assert_eq(query(e, r, "CAFÉ", 2, hits), 0, "é is not lowercased (ASCII only)");
    cr_assert_eq(query(e, r, "café", 2, hits), 1);
    cr_assert_eq(hits[0].doc, 0);
    cr_assert_eq(query(e, r, "caf", 2, hits), 1);
    cr_assert_eq(hits[0].doc, 1);
    e->destroy(r);
}

static void temp_path(char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/st-bm25-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

Test(bm25, save_load_roundtrip)
{
    const st_plugin_entry *e = fx_entry("retriever", "bm25");
    void *r = corpus(e, NULL);
    char path[64];
    temp_path(path, sizeof path);
    st_error err = {0};
    cr_assert_eq(rops(e)->save(r, path, &err), ST_OK, "%s", err.message);

    void *r2 = fx_create(e, NULL);
    add(e, r2, "old", "something else entirely");
    cr_assert_eq(rops(e)->load(r2, path, &err), ST_OK, "%s", err.message);
    cr_assert_eq(rops(e)->count(r2), 3);
    const char *qs[] = {"the sat", "dogs", "mat cat", "nothing"};
    for (int i = 0; i < 4; i++) {
        st_hit a[3], b[3];
        size_t na = query(e, r, qs[i], 3, a), nb = query(e, r2, qs[i], 3, b);
        cr_assert_eq(na, nb, "query %s", qs[i]);
        for (size_t j = 0; j < na; j++) {
            cr_assert_eq(a[j].doc, b[j].doc);
            cr_assert_float_eq(a[j].score, b[j].score, 0.0);
        }
    }
    const char *id;
    size_t len;
    cr_assert_eq(rops(e)->doc_id(r2, 1, &id, &len, &err), ST_OK);
    cr_assert(len == 2 && memcmp(id, "d1", 2) == 0);
    /* Adding after a load continues the index. */
    add(e, r2, "d3", "mat mat mat");
    st_hit h[4];
    cr_assert_eq(query(e, r2, "mat", 4, h), 2);
    cr_assert_eq(h[0].doc, 3);
    e->destroy(r2);
    e->destroy(r);
    remove(path);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

/* Every corruption is refused with a message naming the file, and the
 * loaded index stays as it was. */
static void refuse(const st_plugin_entry *e, void *r, const char *path, const void *data,
                   size_t n, const char *what)
{
    write_file(path, data, n);
    st_error err = {0};
    st_status st = rops(e)->load(r, path, &err);
    cr_assert_neq(st, ST_OK, "%s loaded", what);
    cr_assert(strstr(err.message, path) != NULL, "%s: message without the path: %s", what,
              err.message);
    cr_assert_eq(rops(e)->count(r), 3, "%s: index not kept", what);
    st_hit h[3];
    cr_assert_eq(query(e, r, "the sat", 3, h), 2, "%s: index not kept", what);
}

Test(bm25, corrupt_files_refused)
{
    const st_plugin_entry *e = fx_entry("retriever", "bm25");
    void *r = corpus(e, NULL);
    char path[64];
    temp_path(path, sizeof path);
    st_error err = {0};
    cr_assert_eq(rops(e)->save(r, path, &err), ST_OK);
    static char good[65536];
    size_t n = read_file(path, good, sizeof good);
    cr_assert(n > 20 && n < sizeof good);

    refuse(e, r, path, good, n / 2, "truncated");
    refuse(e, r, path, good, n - 1, "one byte short");
    refuse(e, r, path, "", 0, "empty");
    refuse(e, r, path, "not an index at all", 19, "text");

    static char bad[65536];
    memcpy(bad, good, n);
    bad[n] = 0x01;
    refuse(e, r, path, bad, n + 1, "trailing bytes");

    /* The version is a positive fixint right after the "version" key. */
    char *v = memmem(bad, n, "version", 7);
    cr_assert_not_null(v);
    v[7] = 0x02;
    refuse(e, r, path, bad, n, "version 2");

    /* A document length that disagrees with its postings. */
    memcpy(bad, good, n);
    char *d1 = memmem(bad, n, "\xa2" "d1", 3); /* fixstr "d1", then its length 6 */
    cr_assert_not_null(d1);
    cr_assert_eq(d1[3], 6);
    d1[3] = 5;
    refuse(e, r, path, bad, n, "length mismatch");

    cr_assert_neq(rops(e)->load(r, "/nonexistent-st/x.idx", &err), ST_OK);
    cr_assert_eq(rops(e)->count(r), 3);
    remove(path);
    e->destroy(r);
}

/* Found by tests/fuzz: msgpack-c allocates a list at its declared size
 * before reading it, so these few bytes asked for gigabytes (ASan aborted). */
Test(bm25, declared_counts_beyond_the_file_refused)
{
    const st_plugin_entry *e = fx_entry("retriever", "bm25");
    void *r = corpus(e, NULL);
    char path[64];
    temp_path(path, sizeof path);
    static const char top[] = "\xdd\x7f\xff\xff\xff\x01";
    static const char nested[] = "\x81\xa4" "docs" "\xdf\x10\x00\x00\x00\x01\x02";
    const struct { const char *bytes; size_t n; } cases[] = {
        {top, sizeof top - 1}, {nested, sizeof nested - 1}};
    for (size_t i = 0; i < 2; i++) {
        refuse(e, r, path, cases[i].bytes, cases[i].n, "huge count");
        st_error err = {0};
        rops(e)->load(r, path, &err);
        cr_assert(strstr(err.message, "more elements than the file holds"), "case %zu: %s", i,
                  err.message);
    }
    remove(path);
    e->destroy(r);
}

Test(bm25, clear_empties)
{
    const st_plugin_entry *e = fx_entry("retriever", "bm25");
    void *r = corpus(e, NULL);
    rops(e)->clear(r);
    cr_assert_eq(rops(e)->count(r), 0);
    st_hit h[3];
    cr_assert_eq(query(e, r, "the", 3, h), 0);
    add(e, r, "x", "the end");
    cr_assert_eq(query(e, r, "the", 3, h), 1);
    e->destroy(r);
}
