/*
 * core/base/big_alloc.c - see big_alloc.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "big_alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__linux__)
#include <sys/mman.h>
#define ST_HAVE_MMAP 1
#endif

#define ST_HUGE_BYTES ((size_t)2 << 20)

#if defined(ST_HAVE_MMAP)
/* The mapped length of a buffer of `bytes`: whole huge pages, so the last
 * partial one is advised too (0 when the rounding overflows). */
static size_t huge_len(size_t bytes)
{
    return ((bytes ? bytes : 1) + ST_HUGE_BYTES - 1) & ~(ST_HUGE_BYTES - 1);
}
#endif

bool st_big_alloc_huge(void)
{
#if defined(ST_HAVE_MMAP) && defined(MADV_HUGEPAGE)
    const char *off = getenv("STRETCH_NO_HUGEPAGES");
    return !(off && off[0] && strcmp(off, "0") != 0);
#else
    return false;
#endif
}

/* mmap with MAP_ANONYMOUS gives zeroed pages; calloc does the same for the
 * fallback. */
void *st_big_alloc(size_t bytes)
{
#if defined(ST_HAVE_MMAP)
    size_t len = huge_len(bytes);
    if (len < bytes || !len)
        return NULL;
    /* Map one huge page more and trim both ends to a 2 MiB boundary: THP
     * backs only aligned 2 MiB ranges. */
    size_t span = len + ST_HUGE_BYTES;
    uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t a = ((uintptr_t)raw + ST_HUGE_BYTES - 1) & ~(uintptr_t)(ST_HUGE_BYTES - 1);
    uint8_t *p = (uint8_t *)a;
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    size_t tail = (size_t)(raw + span - (p + len));
    if (tail)
        munmap(p + len, tail);
#if defined(MADV_HUGEPAGE)
    if (st_big_alloc_huge())
        madvise(p, len, MADV_HUGEPAGE); /* advice: failure only loses speed */
#endif
    return p;
#else
    return calloc(1, bytes ? bytes : 1);
#endif
}

void st_big_free(void *p, size_t bytes)
{
    if (!p)
        return;
#if defined(ST_HAVE_MMAP)
    munmap(p, huge_len(bytes));
#else
    (void)bytes;
    free(p);
#endif
}
