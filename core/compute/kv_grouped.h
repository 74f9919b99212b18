/*
 * core/kv_grouped.h - the keys an ST_POS_GROUPED range reads: each cached
 * key rotated at its grouped position floor(pos / group) instead of its
 * rotation position, per layer, in the cache's type and layout.
 *
 * A grouped key depends only on its own slot (position, rotation position,
 * key) and the group size, never on the query, so the copy is kept across
 * steps and extended with the new slots only: a decode step rotates one
 * key per layer, not the whole cache. The copy of a layer is current for
 * its first n_valid slots while the cache's epoch, the group size and the
 * rotation (st_kv_grouped_invalidate) stay the same; slots at or past the
 * cache's committed count are always made again (a block that failed may
 * have left other keys there).
 */
#ifndef ST_CORE_KV_GROUPED_H
#define ST_CORE_KV_GROUPED_H

#include "diag.h"
#include "kv_cache.h"
#include "threadpool.h"

typedef struct st_kv_grouped {
    uint32_t n_layers;
    uint8_t **k;          /* [n_layers] -> [n_kv_heads][layer_cap] rows, NULL until used */
    uint32_t *n_valid;    /* [n_layers] leading slots whose row is current */
    uint32_t *group;      /* [n_layers] the group size the rows were made for */
    uint64_t *epoch;      /* [n_layers] the cache epoch they were made in */
    float *scratch;       /* per thread: a key row, a cos row, a sin row */
    uint32_t scratch_threads;
} st_kv_grouped;

/* Zeroed state for a cache of n_layers; allocates nothing yet. */
st_status st_kv_grouped_init(st_kv_grouped *g, uint32_t n_layers, st_diag *diag);
void st_kv_grouped_free(st_kv_grouped *g);

/* Every copy is stale (the rotation changed: st_forward_set_posenc). */
void st_kv_grouped_invalidate(st_kv_grouped *g);

/* Make rows [.., n_upto) of `layer` current for group size `group`
 * (n_upto <= the slots written so far, committed or in the current block),
 * rotating with the given frequencies and no scale (the cache's keys carry
 * it already). Rows are made on the pool. */
st_status st_kv_grouped_update(st_kv_grouped *g, const st_kv_cache *kv, uint32_t layer,
                               uint32_t group, uint32_t n_upto, const float *inv_freq,
                               uint32_t n_freq, st_threadpool *pool, st_diag *diag);

/* The grouped keys of `layer` as the kernels read them. */
st_kv_src st_kv_grouped_keys(const st_kv_grouped *g, const st_kv_cache *kv, uint32_t layer);

/* floor(pos / group) for pos >= 0 (positions of a sequence are >= 0). */
static inline int64_t st_grouped_pos(int64_t pos, uint32_t group)
{
    return pos >= 0 ? pos / group : -((-pos + group - 1) / group);
}

#endif
