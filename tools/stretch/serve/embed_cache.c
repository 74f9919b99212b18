/*
 * tools/stretch/serve/embed_cache.c - a sentence encoder's recent vectors
 * by text (embed_cache.h): a chained hash table over one allocation per
 * entry, with a list in order of use for eviction.
 */
#include "embed_cache.h"

#include <stdlib.h>
#include <string.h>

#include "fnv1a.h"

typedef struct entry {
    struct entry *chain;       /* the next in this bucket */
    struct entry *newer, *older;
    uint64_t hash;
    size_t len, n_tokens, bytes;
    float *vec;                /* [dim], after the struct */
    char *text;                /* [len], after the vector */
} entry;

struct st_embed_cache {
    uint32_t dim;
    size_t max_bytes, bytes, count;
    entry **buckets;
    size_t n_buckets;          /* a power of two */
    entry *newest, *oldest;
};

/* Texts are short next to what encoding them costs. */
static uint64_t text_hash(const char *text, size_t len)
{
    return st_fnv1a(ST_FNV1A_INIT, text, len);
}

st_embed_cache *st_embed_cache_new(size_t max_bytes, uint32_t dim)
{
    if (max_bytes == 0 || dim == 0)
        return NULL;
    st_embed_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->dim = dim;
    c->max_bytes = max_bytes;
    c->n_buckets = 1024;
    c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    return c;
}

void st_embed_cache_free(st_embed_cache *c)
{
    if (!c)
        return;
    for (entry *e = c->newest, *next; e; e = next) {
        next = e->older;
        free(e);
    }
    free(c->buckets);
    free(c);
}

static entry **slot_of(st_embed_cache *c, uint64_t hash)
{
    return &c->buckets[hash & (c->n_buckets - 1)];
}

static entry *find(st_embed_cache *c, const char *text, size_t len, uint64_t hash)
{
    for (entry *e = *slot_of(c, hash); e; e = e->chain)
        if (e->hash == hash && e->len == len && memcmp(e->text, text, len) == 0)
            return e;
    return NULL;
}

static void unlink_use(st_embed_cache *c, entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void push_newest(st_embed_cache *c, entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

static void evict_oldest(st_embed_cache *c)
{
    entry *e = c->oldest;
    entry **p = slot_of(c, e->hash);
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    unlink_use(c, e);
    c->bytes -= e->bytes;
    c->count--;
    free(e);
}

/* Twice the buckets once there are more entries than buckets; a failed
 * allocation keeps the table as it is (longer chains, still correct). */
static void grow(st_embed_cache *c)
{
    size_t n = c->n_buckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < c->n_buckets; i++)
        for (entry *e = c->buckets[i], *next; e; e = next) {
            next = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = n;
}

bool st_embed_cache_get(st_embed_cache *c, const char *text, size_t len, float *vec,
                        size_t *n_tokens)
{
    if (!c)
        return false;
    entry *e = find(c, text, len, text_hash(text, len));
    if (!e)
        return false;
    memcpy(vec, e->vec, c->dim * sizeof *vec);
    *n_tokens = e->n_tokens;
    unlink_use(c, e);
    push_newest(c, e);
    return true;
}

void st_embed_cache_put(st_embed_cache *c, const char *text, size_t len, const float *vec,
                        size_t n_tokens)
{
    if (!c)
        return;
    uint64_t hash = text_hash(text, len);
    size_t bytes = sizeof(entry) + c->dim * sizeof(float) + len;
    if (bytes > c->max_bytes || find(c, text, len, hash))
        return;
    entry *e = malloc(bytes);
    if (!e)
        return;
    *e = (entry){.hash = hash, .len = len, .n_tokens = n_tokens, .bytes = bytes};
    e->vec = (float *)(e + 1);
    e->text = (char *)(e->vec + c->dim);
    memcpy(e->vec, vec, c->dim * sizeof *vec);
    memcpy(e->text, text, len);
    while (c->bytes + bytes > c->max_bytes)
        evict_oldest(c);
    entry **slot = slot_of(c, hash);
    e->chain = *slot;
    *slot = e;
    push_newest(c, e);
    c->bytes += bytes;
    if (++c->count > c->n_buckets)
        grow(c);
}

size_t st_embed_cache_count(const st_embed_cache *c)
{
    return c ? c->count : 0;
}

size_t st_embed_cache_bytes(const st_embed_cache *c)
{
    return c ? c->bytes : 0;
}
