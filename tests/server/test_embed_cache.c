/*
 * tests/server/test_embed_cache.c - a sentence encoder's cache of recent
 * vectors (embed_cache.h): a held text gives back its very vector and
 * token count, texts are told apart by all their bytes, the least
 * recently used leave first and the bytes never pass the bound.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "embed_cache.h"

#define DIM 8

static void vec_of(int seed, float *v)
{
    for (int d = 0; d < DIM; d++)
        v[d] = (float)seed + (float)d / 16.0f;
}

Test(embed_cache, a_text_kept_gives_back_its_vector_and_tokens)
{
    st_embed_cache *c = st_embed_cache_new(1 << 20, DIM);
    cr_assert_not_null(c);
    float v[DIM], got[DIM];
    size_t tokens = 0;
    vec_of(3, v);
    cr_assert_not(st_embed_cache_get(c, "the cat", 7, got, &tokens));
    st_embed_cache_put(c, "the cat", 7, v, 5);
    cr_assert(st_embed_cache_get(c, "the cat", 7, got, &tokens));
    cr_assert_eq(memcmp(got, v, sizeof v), 0);
    cr_assert_eq(tokens, 5);
    /* A prefix, a longer text, one byte changed, an embedded NUL: others. */
    cr_assert_not(st_embed_cache_get(c, "the ca", 6, got, &tokens));
    cr_assert_not(st_embed_cache_get(c, "the cats", 8, got, &tokens));
    cr_assert_not(st_embed_cache_get(c, "the cau", 7, got, &tokens));
    st_embed_cache_put(c, "a\0b", 3, v, 4);
    cr_assert_not(st_embed_cache_get(c, "a\0c", 3, got, &tokens));
    cr_assert(st_embed_cache_get(c, "a\0b", 3, got, &tokens));
    /* A text kept twice is one entry, with its first vector. */
    float w[DIM];
    vec_of(9, w);
    st_embed_cache_put(c, "the cat", 7, w, 6);
    cr_assert_eq(st_embed_cache_count(c), 2);
    cr_assert(st_embed_cache_get(c, "the cat", 7, got, &tokens));
    cr_assert_eq(memcmp(got, v, sizeof v), 0);
    st_embed_cache_free(c);
}

Test(embed_cache, the_least_recently_used_leave_first_within_the_bound)
{
    /* Room for a few entries of this size only. */
    st_embed_cache *probe = st_embed_cache_new(1 << 20, DIM);
    float v[DIM], got[DIM];
    size_t tokens;
    vec_of(0, v);
    st_embed_cache_put(probe, "text 00", 7, v, 1);
    size_t one = st_embed_cache_bytes(probe);
    st_embed_cache_free(probe);
    st_embed_cache *c = st_embed_cache_new(4 * one, DIM);
    char text[24];
    for (int i = 0; i < 4; i++) {
        snprintf(text, sizeof text, "text %02d", i);
        vec_of(i, v);
        st_embed_cache_put(c, text, 7, v, (size_t)i);
    }
    cr_assert_eq(st_embed_cache_count(c), 4);
    /* Using text 00 makes text 01 the oldest: the next put pushes it out. */
    cr_assert(st_embed_cache_get(c, "text 00", 7, got, &tokens));
    vec_of(4, v);
    st_embed_cache_put(c, "text 04", 7, v, 4);
    cr_assert_eq(st_embed_cache_count(c), 4);
    cr_assert_leq(st_embed_cache_bytes(c), 4 * one);
    cr_assert_not(st_embed_cache_get(c, "text 01", 7, got, &tokens));
    for (int i = 0; i < 5; i++) {
        if (i == 1)
            continue;
        snprintf(text, sizeof text, "text %02d", i);
        cr_assert(st_embed_cache_get(c, text, 7, got, &tokens), "%s", text);
        vec_of(i, v);
        cr_assert_eq(memcmp(got, v, sizeof v), 0);
        cr_assert_eq(tokens, (size_t)i);
    }
    /* A text larger than the whole cache is not kept, and evicts nothing. */
    char big[4096];
    memset(big, 'x', sizeof big);
    st_embed_cache_put(c, big, sizeof big, v, 1);
    cr_assert_eq(st_embed_cache_count(c), 4);
    st_embed_cache_free(c);
}

Test(embed_cache, many_texts_grow_the_table_and_stay_found)
{
    st_embed_cache *c = st_embed_cache_new(64 << 20, DIM);
    float v[DIM], got[DIM];
    size_t tokens;
    char text[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(text, sizeof text, "document number %d", i);
        vec_of(i, v);
        st_embed_cache_put(c, text, (size_t)n, v, (size_t)i);
    }
    cr_assert_eq(st_embed_cache_count(c), 5000);
    for (int i = 0; i < 5000; i += 7) {
        int n = snprintf(text, sizeof text, "document number %d", i);
        cr_assert(st_embed_cache_get(c, text, (size_t)n, got, &tokens));
        vec_of(i, v);
        cr_assert_eq(memcmp(got, v, sizeof v), 0);
        cr_assert_eq(tokens, (size_t)i);
    }
    st_embed_cache_free(c);
}

Test(embed_cache, no_bytes_means_no_cache)
{
    cr_assert_null(st_embed_cache_new(0, DIM));
    float v[DIM] = {0};
    size_t tokens;
    st_embed_cache_put(NULL, "x", 1, v, 1);
    cr_assert_not(st_embed_cache_get(NULL, "x", 1, v, &tokens));
    cr_assert_eq(st_embed_cache_count(NULL), 0);
}
