/*
 * core/plugin/api_arena.h - the memory behind the public registry API's
 * handles and reports (<stretch/registry.h>): every string and struct a
 * handle hands out is carved from its arena, so one free releases all of
 * it and nothing a caller holds can be freed piecemeal by mistake.
 */
#ifndef ST_CORE_API_ARENA_H
#define ST_CORE_API_ARENA_H

#include <stddef.h>

typedef struct st_arena_block st_arena_block;

typedef struct st_arena {
    st_arena_block *head;
    int failed;   /* an allocation failed: the owner reports ST_E_NOMEM */
} st_arena;

/* Zeroed memory, aligned for any type; NULL (and a->failed set) on failure. */
void *st_arena_alloc(st_arena *a, size_t size);
/* A copy of `s`; NULL for NULL (no failure) or on failure (a->failed). */
const char *st_arena_strdup(st_arena *a, const char *s);
/* An array of n copies of strs[i] (NULL when n is 0). */
const char *const *st_arena_strv(st_arena *a, char *const *strs, size_t n);
void st_arena_free(st_arena *a);

#endif
