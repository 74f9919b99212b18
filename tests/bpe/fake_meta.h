/*
 * tests/bpe/fake_meta.h - a test host whose model metadata services answer
 * from a small in-memory table instead of a GGUF file, so the bpe plugin
 * can be tested on a tiny vocabulary without the real model.
 */
#ifndef ST_TEST_BPE_FAKE_META_H
#define ST_TEST_BPE_FAKE_META_H

#include "test_host.h"

typedef struct fake_meta_entry {
    const char *key;
    st_meta_type type;        /* INT, STRING or ARRAY */
    int64_t i;                /* INT */
    const char *str;          /* STRING (NUL-terminated here) */
    const char *const *strs;  /* ARRAY of STRING */
    const int *ints;          /* ARRAY of INT */
    size_t n;                 /* ARRAY length */
} fake_meta_entry;

#define FAKE_META_MAX 32

typedef struct fake_meta_host {
    st_test_host th;          /* first: the test host's callbacks cast `host` to it */
    fake_meta_entry entries[FAKE_META_MAX];
    size_t n_entries;
} fake_meta_host;

/* A test host with no metadata yet; its services answer from `entries`. */
void fake_meta_init(fake_meta_host *fh);
void fake_meta_set_int(fake_meta_host *fh, const char *key, int64_t v);
void fake_meta_set_str(fake_meta_host *fh, const char *key, const char *v);
void fake_meta_set_strs(fake_meta_host *fh, const char *key, const char *const *v, size_t n);
void fake_meta_set_ints(fake_meta_host *fh, const char *key, const int *v, size_t n);
/* Drop `key` (to test what a plugin does without it). */
void fake_meta_remove(fake_meta_host *fh, const char *key);

#endif
