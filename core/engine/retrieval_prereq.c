/*
 * core/engine/retrieval_prereq.c - find the endpoint paths a document's
 * text names (retrieval_prereq.h): the keys sorted once, each word of a
 * text looked up by binary search, so a query's completion costs a scan of
 * its hits' texts whatever the index size.
 */
#include "retrieval_prereq.h"

#include <stdlib.h>
#include <string.h>

#include "diag.h"

typedef struct key {
    const char *s; /* into the table's copy of the ids */
    size_t len;
    uint64_t doc;
} key;

struct st_prereq_table {
    key *keys;
    size_t n_keys;
    uint64_t n_docs;
    char **owned;
};

void st_prereq_table_free(st_prereq_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_keys; i++)
        free(t->owned[i]);
    free(t->owned);
    free(t->keys);
    free(t);
}

uint64_t st_prereq_table_docs(const st_prereq_table *t)
{
    return t->n_docs;
}

static int key_cmp(const void *a, const void *b)
{
    const key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

st_status st_prereq_table_build(uint64_t n, st_doc_id_fn ids, void *ctx, st_prereq_table **out,
                                st_error *err)
{
    *out = NULL;
    st_prereq_table *t = calloc(1, sizeof *t);
    if (!t || !(t->keys = calloc(n ? n : 1, sizeof *t->keys)) ||
        !(t->owned = calloc(n ? n : 1, sizeof *t->owned))) {
        st_prereq_table_free(t);
        return st_error_set(err, ST_E_NOMEM, "out of memory for the prerequisite table");
    }
    t->n_docs = n;
    for (uint64_t d = 0; d < n; d++) {
        const char *id;
        size_t len;
        st_status st = ids(ctx, d, &id, &len, err);
        if (st != ST_OK) {
            st_prereq_table_free(t);
            return st;
        }
        size_t at = len;
        while (at > 0 && id[at - 1] != ' ')
            at--;
        if (at == len || id[at] != '/')
            continue; /* no path: never a prerequisite */
        char *copy = malloc(len - at);
        if (!copy) {
            st_prereq_table_free(t);
            return st_error_set(err, ST_E_NOMEM, "out of memory for the prerequisite table");
        }
        memcpy(copy, id + at, len - at);
        t->owned[t->n_keys] = copy;
        t->keys[t->n_keys++] = (key){copy, len - at, d};
    }
    qsort(t->keys, t->n_keys, sizeof *t->keys, key_cmp);
    *out = t;
    return ST_OK;
}

/* Characters a path is made of: a word of a text is a maximal run of
 * them, less a sentence's closing dots. */
static int in_path(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '/' || c == '{' || c == '}' || c == '-' || c == '.';
}

size_t st_prereq_named(const st_prereq_table *t, const char *text, size_t len, uint64_t self,
                       uint64_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < cap;) {
        if (!in_path((unsigned char)text[i]) || text[i] != '/') {
            /* Only words starting with '/' can be keys. */
            while (i < len && in_path((unsigned char)text[i]))
                i++;
            while (i < len && !in_path((unsigned char)text[i]))
                i++;
            continue;
        }
        size_t w = i;
        while (i < len && in_path((unsigned char)text[i]))
            i++;
        size_t wl = i - w;
        while (wl > 1 && text[w + wl - 1] == '.')
            wl--;
        /* The first key equal to the word, then every equal one. */
        size_t lo = 0, hi = t->n_keys;
        key probe = {text + w, wl, 0};
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (key_cmp(&t->keys[mid], &probe) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (; lo < t->n_keys && n < cap && t->keys[lo].len == wl &&
               !memcmp(t->keys[lo].s, text + w, wl); lo++) {
            uint64_t d = t->keys[lo].doc;
            bool seen = d == self;
            for (size_t j = 0; j < n && !seen; j++)
                seen = out[j] == d;
            if (!seen)
                out[n++] = d;
        }
    }
    return n;
}
