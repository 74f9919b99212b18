/*
 * tools/stretch/serve/fnv1a.h - 64-bit FNV-1a over bytes, for the
 * server's in-memory keys (the embedding cache's texts, the tool ranker's
 * tool lists): short inputs, where a byte a step costs nothing next to
 * what the key stands for.
 */
#ifndef ST_SERVE_FNV1A_H
#define ST_SERVE_FNV1A_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a's starting value (its 64-bit offset basis). */
#define ST_FNV1A_INIT 0xcbf29ce484222325ull

/* h continued over data[n]. */
static inline uint64_t st_fnv1a(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

#endif
