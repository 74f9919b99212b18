/*
 * core/plugin/api_arena.c - see api_arena.h. One block per allocation:
 * the handles hold hundreds of small strings at most, so simplicity wins
 * over packing.
 */
#include "api_arena.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

struct st_arena_block {
    st_arena_block *next;
    alignas(max_align_t) unsigned char data[];
};

void *st_arena_alloc(st_arena *a, size_t size)
{
    st_arena_block *b = size > (size_t)-1 - sizeof *b ? NULL : calloc(1, sizeof *b + size);
    if (!b) {
        a->failed = 1;
        return NULL;
    }
    b->next = a->head;
    a->head = b;
    return b->data;
}

const char *st_arena_strdup(st_arena *a, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *copy = st_arena_alloc(a, n);
    if (copy)
        memcpy(copy, s, n);
    return copy;
}

const char *const *st_arena_strv(st_arena *a, char *const *strs, size_t n)
{
    if (n == 0)
        return NULL;
    const char **v = st_arena_alloc(a, n * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = st_arena_strdup(a, strs[i]);
    return v;
}

void st_arena_free(st_arena *a)
{
    while (a->head) {
        st_arena_block *next = a->head->next;
        free(a->head);
        a->head = next;
    }
    a->failed = 0;
}
