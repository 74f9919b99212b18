/*
 * core/base/work_split.h - items 0..n-1 of a pool task handed out in one
 * contiguous range per thread, with stealing.
 *
 * A shared counter gives each thread every nth item or so: when the items
 * are consecutive pieces of one array (a weight matrix's row groups, a
 * head's cached keys), each thread's reads jump, the hardware prefetcher
 * restarts at every piece and both threads write the counter's cache line
 * at every claim. Here thread ith owns range ith (items ith*n/k ..
 * (ith+1)*n/k), claims from its own counter, on its own cache line, and
 * reads one stream; when its range runs out it takes what is left of the
 * others', so a worker that never joins the task (threadpool.h) or a core
 * busy elsewhere costs balance, never correctness: every item is claimed
 * exactly once. Which thread runs an item never changes what it computes.
 */
#ifndef ST_CORE_WORK_SPLIT_H
#define ST_CORE_WORK_SPLIT_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

/* Ranges at most; a pool with more threads shares them (ith % this). */
#define ST_SPLIT_MAX_RANGES 16

typedef struct st_work_split {
    struct {
        alignas(64) atomic_uint next;
        uint32_t end;
    } r[ST_SPLIT_MAX_RANGES];
    uint32_t n_ranges;
} st_work_split;

/* n items over the ranges of nth threads (nth >= 1). */
static inline void st_work_split_init(st_work_split *s, uint32_t n, uint32_t nth)
{
    uint32_t k = nth < 1 ? 1 : nth > ST_SPLIT_MAX_RANGES ? ST_SPLIT_MAX_RANGES : nth;
    s->n_ranges = k;
    for (uint32_t i = 0; i < k; i++) {
        atomic_init(&s->r[i].next, (uint32_t)((uint64_t)n * i / k));
        s->r[i].end = (uint32_t)((uint64_t)n * (i + 1) / k);
    }
}

/* The next item for thread ith: from its own range, then from the
 * others' in turn; UINT32_MAX when none is left. *home keeps the range
 * the thread last took from (start it at UINT32_MAX). */
static inline uint32_t st_work_split_next(st_work_split *s, uint32_t ith, uint32_t *home)
{
    uint32_t k = s->n_ranges;
    uint32_t r0 = *home == UINT32_MAX ? ith % k : *home;
    for (uint32_t j = 0; j < k; j++) {
        uint32_t r = (r0 + j) % k;
        /* A range past its end stays past it: read before claiming so
         * finished ranges are not written again. */
        if (atomic_load_explicit(&s->r[r].next, memory_order_relaxed) >= s->r[r].end)
            continue;
        uint32_t c = atomic_fetch_add_explicit(&s->r[r].next, 1, memory_order_relaxed);
        if (c < s->r[r].end) {
            *home = r;
            return c;
        }
    }
    *home = r0;
    return UINT32_MAX;
}

#endif
