/*
 * The retrieval host API (stretch/retrieval.h) over the bm25 plugin: index,
 * save and load with the texts beside it, what a load refuses (and that it
 * keeps the current index then), the strategy's retriever block, and the
 * prompt template.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stretch/retrieval.h>

#include "test_dir.h"

static char dir[128];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/st_retrieval_api_%d", (int)getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(retrieval_api, .init = setup, .fini = teardown);

static const char *path_in(const char *name)
{
    return st_test_path(dir, name);
}

static void write_file(const char *name, const char *text)
{
    st_test_write(dir, name, text);
}

static st_status open_strategy(const char *name, uint32_t flags, st_retriever **r,
                               st_error *err)
{
    const char *dirs[] = {ST_TEST_PLUGIN_DIR};
    st_engine_options o = {.struct_size = sizeof o, .plugin_dirs = dirs, .n_plugin_dirs = 1};
    memset(err, 0, sizeof *err);
    return st_retriever_open(path_in(name), &o, flags, r, err);
}

/* A strategy with only what retrieval reads, plus `extra` in the block. */
static st_retriever *open_bm25(const char *extra, uint32_t flags)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "format: 1\nmodel: none.gguf\ntokenizer: {plugin: bpe}\n"
             "positional-encoding: {plugin: rope}\nattention: {plugin: dense}\n"
             "samplers: [{plugin: greedy}]\nretriever:\n  plugin: bm25\n%s", extra);
    write_file("s.yaml", yaml);
    st_retriever *r = NULL;
    st_error err;
    cr_assert_eq(open_strategy("s.yaml", flags, &r, &err), ST_OK, "%s", err.message);
    return r;
}

static void add(st_retriever *r, const char *id, const char *text)
{
    st_error err = {0};
    cr_assert_eq(st_retriever_add(r, id, strlen(id), text, strlen(text), &err), ST_OK, "%s",
                 err.message);
}

static void corpus(st_retriever *r)
{
    add(r, "cats", "The cat sat on the mat.");
    add(r, "dogs", "Dogs bark at the mailman.");
    add(r, "fish", "Fish swim; a cat watches the fish.");
}

static st_retrieval *query(st_retriever *r, const char *q, size_t k)
{
    st_retrieval *h = NULL;
    st_error err = {0};
    cr_assert_eq(st_retriever_query(r, q, strlen(q), k, &h, &err), ST_OK, "%s", err.message);
    return h;
}

Test(retrieval_api, query_gives_ids_scores_and_texts)
{
    st_retriever *r = open_bm25("", 0);
    cr_assert_str_eq(st_retriever_name(r), "bm25");
    cr_assert_eq(st_retriever_top_k(r), ST_RETRIEVER_DEFAULT_TOP_K);
    cr_assert_null(st_retriever_index_path(r));
    corpus(r);
    cr_assert_eq(st_retriever_count(r), 3);
    st_retrieval *h = query(r, "fish fish", 10);
    cr_assert_eq(st_retrieval_count(h), 1, "only the fish document shares a word");
    const st_retrieved *top = st_retrieval_at(h, 0);
    cr_assert_eq(top->struct_size, sizeof *top);
    cr_assert_str_eq(top->id, "fish");
    cr_assert_eq(top->doc, 2);
    cr_assert_gt(top->score, 0.0f);
    cr_assert_str_eq(top->text, "Fish swim; a cat watches the fish.");
    cr_assert_null(st_retrieval_at(h, 1));
    st_retrieval_free(h);
    h = query(r, "cat", 1);
    cr_assert_eq(st_retrieval_count(h), 1);
    st_retrieval_free(h);
    st_retriever_close(r);
}

Test(retrieval_api, save_and_load_round_trip_with_texts)
{
    st_retriever *r = open_bm25("", 0);
    corpus(r);
    st_error err = {0};
    cr_assert_eq(st_retriever_save(r, path_in("i.bm25"), &err), ST_OK, "%s", err.message);
    struct stat sb;
    cr_assert_eq(stat(path_in("i.bm25.texts"), &sb), 0, "the texts are saved beside it");
    st_retriever_close(r);

    r = open_bm25("  index: i.bm25\n  top_k: 2\n", 0);
    cr_assert_eq(st_retriever_count(r), 3, "the strategy's index is loaded on open");
    cr_assert_eq(st_retriever_top_k(r), 2);
    cr_assert(strstr(st_retriever_index_path(r), "i.bm25"));
    st_retrieval *h = query(r, "mailman", 3);
    cr_assert_eq(st_retrieval_count(h), 1);
    cr_assert_str_eq(st_retrieval_at(h, 0)->id, "dogs");
    cr_assert_str_eq(st_retrieval_at(h, 0)->text, "Dogs bark at the mailman.");
    st_retrieval_free(h);
    st_retriever_close(r);

    /* Without the .texts file the index loads with ids only. */
    cr_assert_eq(remove(path_in("i.bm25.texts")), 0);
    r = open_bm25("  index: i.bm25\n", 0);
    h = query(r, "mailman", 3);
    cr_assert_str_eq(st_retrieval_at(h, 0)->id, "dogs");
    cr_assert_null(st_retrieval_at(h, 0)->text);
    st_retrieval_free(h);
    st_retriever_close(r);
}

/* A refused load names the file and keeps what was loaded. */
static void refused_and_kept(st_retriever *r, const char *name, const char *expect)
{
    st_error err = {0};
    cr_assert_neq(st_retriever_load(r, path_in(name), &err), ST_OK, "%s loaded", name);
    cr_assert(strstr(err.message, name), "message names the file: %s", err.message);
    cr_assert(strstr(err.message, expect), "expected '%s' in: %s", expect, err.message);
    cr_assert_eq(st_retriever_count(r), 3, "the current index stays");
    st_retrieval *h = query(r, "mailman", 1);
    cr_assert_str_eq(st_retrieval_at(h, 0)->text, "Dogs bark at the mailman.");
    st_retrieval_free(h);
}

Test(retrieval_api, bad_index_files_are_refused)
{
    st_retriever *r = open_bm25("", 0);
    corpus(r);
    st_error err = {0};
    cr_assert_eq(st_retriever_save(r, path_in("good"), &err), ST_OK, "%s", err.message);

    /* Truncated: the first half of a real index. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && head -c $(( $(stat -c %%s good) / 2 )) good > half",
             dir);
    cr_assert_eq(system(cmd), 0);
    refused_and_kept(r, "half", "bm25 index");
    /* Foreign: msgpack, but another format (the texts file itself). */
    snprintf(cmd, sizeof cmd, "cd %s && cp good.texts foreign", dir);
    cr_assert_eq(system(cmd), 0);
    refused_and_kept(r, "foreign", "not a bm25 index");
    /* Not msgpack at all. */
    write_file("text", "this is not an index\n");
    refused_and_kept(r, "text", "text");
    refused_and_kept(r, "missing", "cannot open");
    /* A stale .texts (the index rebuilt with other documents). */
    st_retriever *other = open_bm25("", 0);
    add(other, "x", "something else");
    cr_assert_eq(st_retriever_save(other, path_in("stale"), &err), ST_OK, "%s", err.message);
    st_retriever_close(other);
    snprintf(cmd, sizeof cmd, "cd %s && cp good.texts stale.texts", dir);
    cr_assert_eq(system(cmd), 0);
    refused_and_kept(r, "stale", "belongs to another index");
    /* A truncated .texts. */
    snprintf(cmd, sizeof cmd, "cd %s && cp good g2 && head -c 20 good.texts > g2.texts", dir);
    cr_assert_eq(system(cmd), 0);
    refused_and_kept(r, "g2", "truncated");
    st_retriever_close(r);
}

static unsigned char *slurp(const char *name, size_t *n)
{
    FILE *f = fopen(path_in(name), "rb");
    cr_assert(f, "%s", name);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n ? *n : 1);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void put_u64_be(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

/* A texts file of version 1 (FNV-1a over the index's bytes, written by
 * earlier releases) still loads; a same-size index with other content is
 * refused under version 2's hash. */
Test(retrieval_api, texts_version_1_loads_and_same_size_stale_is_refused)
{
    st_retriever *r = open_bm25("", 0);
    corpus(r);
    st_error err = {0};
    cr_assert_eq(st_retriever_save(r, path_in("v"), &err), ST_OK, "%s", err.message);
    st_retriever_close(r);

    size_t n_index, n_texts;
    unsigned char *index = slurp("v", &n_index), *texts = slurp("v.texts", &n_texts);
    uint64_t fnv = 1469598103934665603ULL;
    for (size_t i = 0; i < n_index; i++) {
        fnv ^= index[i];
        fnv *= 1099511628211ULL;
    }
    const unsigned char *docs = memmem(texts, n_texts, "\xa4" "docs", 5);
    cr_assert(docs, "the texts file has its docs array");
    /* {format, version: 1, index_bytes, index_fnv1a64, docs: ...} */
    FILE *f = fopen(path_in("v.texts"), "wb");
    cr_assert(f);
    unsigned char head[128];
    size_t k = 0;
    head[k++] = 0x85;
    head[k++] = 0xa6;
    memcpy(head + k, "format", 6), k += 6;
    head[k++] = 0xad;
    memcpy(head + k, "stretch.texts", 13), k += 13;
    head[k++] = 0xa7;
    memcpy(head + k, "version", 7), k += 7;
    head[k++] = 0x01;
    head[k++] = 0xab;
    memcpy(head + k, "index_bytes", 11), k += 11;
    head[k++] = 0xcf;
    put_u64_be(head + k, n_index), k += 8;
    head[k++] = 0xad;
    memcpy(head + k, "index_fnv1a64", 13), k += 13;
    head[k++] = 0xcf;
    put_u64_be(head + k, fnv), k += 8;
    fwrite(head, 1, k, f);
    fwrite(docs, 1, n_texts - (size_t)(docs - texts), f);
    fclose(f);
    free(index);
    free(texts);

    r = open_bm25("  index: v\n", 0);
    st_retrieval *h = query(r, "mailman", 1);
    cr_assert_str_eq(st_retrieval_at(h, 0)->text, "Dogs bark at the mailman.",
                     "version 1's texts are quoted");
    st_retrieval_free(h);
    st_retriever_close(r);

    /* Two indexes of the same size that differ in one letter. */
    st_retriever *a = open_bm25("", 0), *b = open_bm25("", 0);
    add(a, "x", "the cat");
    add(b, "x", "the cot");
    cr_assert_eq(st_retriever_save(a, path_in("a"), &err), ST_OK, "%s", err.message);
    cr_assert_eq(st_retriever_save(b, path_in("b"), &err), ST_OK, "%s", err.message);
    st_retriever_close(a);
    st_retriever_close(b);
    size_t na, nb;
    free(slurp("a", &na));
    free(slurp("b", &nb));
    cr_assert_eq(na, nb, "the two indexes have one size");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cd %s && cp a.texts b.texts", dir);
    cr_assert_eq(system(cmd), 0);
    r = open_bm25("", 0);
    corpus(r);
    refused_and_kept(r, "b", "and other content");
    st_retriever_close(r);
}

Test(retrieval_api, strategy_index_that_fails_names_the_manifest)
{
    write_file("bad.idx", "garbage");
    write_file("s.yaml", "format: 1\ntokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
                         "attention: {plugin: dense}\nsamplers: [{plugin: greedy}]\n"
                         "retriever: {plugin: bm25, index: bad.idx}\n");
    st_retriever *r = NULL;
    st_error err;
    cr_assert_neq(open_strategy("s.yaml", 0, &r, &err), ST_OK);
    cr_assert_null(r);
    cr_assert(strstr(err.message, "s.yaml:6:"), "%s", err.message);
    cr_assert(strstr(err.message, "bad.idx"), "%s", err.message);
    /* ST_RETRIEVER_NO_INDEX opens it for building a new index. */
    cr_assert_eq(open_strategy("s.yaml", ST_RETRIEVER_NO_INDEX, &r, &err), ST_OK, "%s",
                 err.message);
    st_retriever_close(r);
}

static void refused_manifest(const char *block, const char *expect)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "format: 1\ntokenizer: {plugin: bpe}\npositional-encoding: {plugin: rope}\n"
             "attention: {plugin: dense}\nsamplers: [{plugin: greedy}]\n%s", block);
    write_file("bad.yaml", yaml);
    st_retriever *r = NULL;
    st_error err;
    cr_assert_neq(open_strategy("bad.yaml", ST_RETRIEVER_NO_INDEX, &r, &err), ST_OK, "%s",
                  block);
    cr_assert(strstr(err.message, "bad.yaml:"), "%s", err.message);
    cr_assert(strstr(err.message, expect), "expected '%s' in: %s", expect, err.message);
}

Test(retrieval_api, bad_retriever_blocks_name_line_and_column)
{
    refused_manifest("retriever: {plugin: bm25, top_k: 0}\n", "top_k: expected an int in 1..100");
    refused_manifest("retriever: {plugin: bm25, top_k: many}\n", "top_k");
    refused_manifest("retriever: {plugin: bm25, index: 3}\n", "index: expected a path");
    refused_manifest("retriever: {plugin: bm25, template: 'no placeholders'}\n",
                     "{documents} and {query}");
    refused_manifest("retriever: {plugin: bm25, indexes: x}\n", "indexes");
    refused_manifest("retriever: {plugin: bm25, prerequisites: 3}\n",
                     "prerequisites: expected true or false");
    refused_manifest("retriever: {plugin: bm25, params: {k1: -1}}\n", "k1");
    refused_manifest("# no retriever\n", "no `retriever:` block");
}

Test(retrieval_api, template_renders_hits_and_query)
{
    st_retriever *r = open_bm25("", 0);
    corpus(r);
    st_retrieval *h = query(r, "cat", 2);
    char *p = NULL;
    st_error err = {0};
    cr_assert_eq(st_retriever_render(r, "Where is the cat?", h, &p, &err), ST_OK);
    cr_assert_str_eq(p, "Use the documents below to answer the question.\n\n"
                        "[1] cats\nThe cat sat on the mat.\n\n"
                        "[2] fish\nFish swim; a cat watches the fish.\n\n"
                        "Question: Where is the cat?");
    st_free(p);
    st_retrieval_free(h);
    st_retriever_close(r);

    r = open_bm25("  template: \"Q: {query}\\n{documents}END\"\n", 0);
    corpus(r);
    h = query(r, "mailman", 1);
    cr_assert_eq(st_retriever_render(r, "who?", h, &p, &err), ST_OK);
    cr_assert_str_eq(p, "Q: who?\n[1] dogs\nDogs bark at the mailman.\n\nEND");
    st_free(p);
    st_retrieval_free(h);
    st_retriever_close(r);
}

Test(retrieval_api, child_manifest_overrides_top_k_and_null_drops_the_retriever)
{
    write_file("parent.yaml", "format: 1\ntokenizer: {plugin: bpe}\n"
                              "positional-encoding: {plugin: rope}\nattention: {plugin: dense}\n"
                              "samplers: [{plugin: greedy}]\n"
                              "retriever: {plugin: bm25, index: p.idx, top_k: 4}\n");
    write_file("child.yaml", "format: 1\nextends: parent.yaml\nretriever: {top_k: 7}\n");
    st_retriever *r = NULL;
    st_error err;
    cr_assert_eq(open_strategy("child.yaml", ST_RETRIEVER_NO_INDEX, &r, &err), ST_OK, "%s",
                 err.message);
    cr_assert_eq(st_retriever_top_k(r), 7);
    cr_assert(strstr(st_retriever_index_path(r), "p.idx"), "params-only child keeps the index");
    st_retriever_close(r);
    write_file("none.yaml", "format: 1\nextends: parent.yaml\nretriever: null\n");
    cr_assert_neq(open_strategy("none.yaml", ST_RETRIEVER_NO_INDEX, &r, &err), ST_OK);
    cr_assert(strstr(err.message, "no `retriever:` block"), "%s", err.message);
}

/* `prerequisites: true`: a hit is followed by the endpoints its text names
 * ("/search/movie" in the credits tool's text), at its score; a path that
 * only starts like a key ("/search/movies") does not name it; a document is never listed twice; k still bounds the list; an
 * index loaded without its texts is refused by name. */
Test(retrieval_api, prerequisites_follow_the_hit_that_names_them)
{
    st_retriever *r = open_bm25("  prerequisites: true\n", 0);
    add(r, "GET /search/movie", "Search for movies by their title.");
    add(r, "GET /movie/{movie_id}/credits",
        "Cast and crew credits of a movie. Use it after \"/search/movie\".");
    add(r, "GET /search/movies", "Cast lists, see /search/movies.");
    add(r, "GET /movie/popular", "Popular movies.");
    st_retrieval *h = query(r, "credits", 5);
    cr_assert_eq(st_retrieval_count(h), 2, "bm25 finds only the credits tool; its prerequisite follows");
    cr_assert_str_eq(st_retrieval_at(h, 0)->id, "GET /movie/{movie_id}/credits");
    cr_assert_str_eq(st_retrieval_at(h, 1)->id, "GET /search/movie");
    cr_assert_eq(st_retrieval_at(h, 1)->score, st_retrieval_at(h, 0)->score);
    cr_assert_str_eq(st_retrieval_at(h, 1)->text, "Search for movies by their title.");
    for (size_t i = 0; i < st_retrieval_count(h); i++)
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(st_retrieval_at(h, i)->doc, st_retrieval_at(h, j)->doc);
    st_retrieval_free(h);
    /* k = 1: the hit alone. */
    h = query(r, "credits", 1);
    cr_assert_eq(st_retrieval_count(h), 1);
    st_retrieval_free(h);
    /* "/search/movies." names /search/movies (the dot ends the sentence),
     * not /search/movie. */
    h = query(r, "lists", 5);
    cr_assert_str_eq(st_retrieval_at(h, 0)->id, "GET /search/movies");
    cr_assert_eq(st_retrieval_count(h), 1, "a document does not name itself");
    st_retrieval_free(h);
    st_error err = {0};
    cr_assert_eq(st_retriever_save(r, path_in("p.idx"), &err), ST_OK, "%s", err.message);
    st_retriever_close(r);
    /* Without the texts the names cannot be found: refused, saying why. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm %s/p.idx.texts", dir);
    cr_assert_eq(system(cmd), 0);
    r = open_bm25("  prerequisites: true\n", 0);
    cr_assert_eq(st_retriever_load(r, path_in("p.idx"), &err), ST_OK, "%s", err.message);
    st_retrieval *none = NULL;
    cr_assert_eq(st_retriever_query(r, "crew", 4, 3, &none, &err), ST_E_INVALID);
    cr_assert_null(none);
    cr_assert(strstr(err.message, "prerequisites") && strstr(err.message, ".texts"), "%s",
              err.message);
    st_retriever_close(r);
}
