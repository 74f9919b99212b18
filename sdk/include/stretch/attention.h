/*
 * stretch/attention.h - ops of an `attention` plugin: which keys each query
 * sees, at what relative position, and what stays in the KV cache.
 *
 * The host keeps, per sequence and layer, a KV cache of "slots" in sequence
 * order; each slot remembers the true sequence position of its token. For
 * every block of queries the host asks the plugin for a *plan*: ranges or
 * index lists of slots per head, each with the distances it may cover and
 * the position mode its keys are scored at. The host's kernels evaluate the
 * plan with one softmax per query over everything the plan makes visible.
 *
 * Threading: `plan` may be called concurrently for different layers and
 * heads from worker threads; the builder passed in is per call. `retain`,
 * `cache_budget` and the observers are called by the engine thread only,
 * never while a `plan` runs.
 */
#ifndef STRETCH_ATTENTION_H
#define STRETCH_ATTENTION_H

#include "common.h"
#include "posenc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_ALL_HEADS UINT32_MAX
#define ST_DIST_MAX INT32_MAX

/* Read-only view of one sequence's KV cache. Slots are in sequence order. */
typedef struct st_kv_view {
    uint32_t struct_size;
    uint32_t n_slots;      /* slots in use, including the current block's keys */
    uint32_t capacity;     /* slots the host allocated */
    const int32_t *pos;    /* [n_slots] true sequence position of each slot */
    const int32_t *tokens; /* [n_slots] token id of each slot */
} st_kv_view;

/* One block of queries to plan for. */
typedef struct st_attn_query {
    uint32_t struct_size;
    uint32_t layer;
    uint32_t n_heads;        /* query heads */
    uint32_t n_kv_heads;     /* key/value heads (GQA groups = n_heads / n_kv_heads) */
    uint32_t head_dim;
    uint32_t n_q;            /* queries in the block */
    const int32_t *q_pos;    /* [n_q] true sequence positions */
    const uint32_t *q_slot;  /* [n_q] the slot each query's own key sits in */
    const st_kv_view *kv;
    /* Only when the plugin's `needs` has ST_ATTN_NEEDS_QK, else NULL:
     * unrotated float32 queries [n_q][n_heads][head_dim] and keys
     * [n_slots][n_kv_heads][head_dim]. The host's cache keeps keys rotated
     * and in a compact type (kv-type); it turns them back into this float
     * form before each plan call, for these plugins only. Read-only and
     * valid during the call. */
    const float *q;
    const float *k;
} st_attn_query;

/* Plan helpers (header-only; no ABI surface). */

/* First slot whose position is >= `pos`: slots are in sequence order, so
 * a window's range starts here. Returns kv->n_slots when none is. */
static inline uint32_t st_kv_first_slot_at(const st_kv_view *kv, int64_t pos)
{
    uint32_t lo = 0, hi = kv->n_slots;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (kv->pos[mid] < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The smallest query position of a block (n_q > 0): the earliest key any
 * query of the block can reach through a window lies below it. */
static inline int32_t st_attn_min_q_pos(const st_attn_query *q)
{
    int32_t m = q->q_pos[0];
    for (uint32_t i = 1; i < q->n_q; i++)
        if (q->q_pos[i] < m)
            m = q->q_pos[i];
    return m;
}

/* How the keys of a range are positioned relative to the query. */
typedef enum st_pos_mode {
    ST_POS_TRUE = 0,  /* rotate by the true distance pos(q) - pos(k) */
    ST_POS_FIXED = 1, /* score every key as if at distance `fixed_dist` */
    ST_POS_SLOT = 2,  /* positions are slot indices: slot(q) - slot(k)
                         (streaming's positions re-assigned within the cache) */
    /* ABI 1.4, through add_range2 / add_indices2 only (it needs the group
     * size): grouped positions (SelfExtend). With true positions, the
     * relative position is floor(pos(q)/group) - floor(pos(k)/group) +
     * group_offset: the query is rotated at floor(pos(q)/group) +
     * group_offset, the key at floor(pos(k)/group). */
    ST_POS_GROUPED = 3
} st_pos_mode;

/* A key in [k_begin, k_end) is visible to a query when, with
 * d = pos(q) - pos(k) (true positions), min_dist <= d <= max_dist.
 * Causal attention is min_dist = 0, max_dist = ST_DIST_MAX. Ranges given
 * for one head must not make the same (query, key) pair visible twice. */
typedef struct st_attn_range {
    uint32_t head;          /* query head, or ST_ALL_HEADS */
    uint32_t k_begin;
    uint32_t k_end;
    int32_t min_dist;
    int32_t max_dist;
    st_pos_mode pos_mode;
    int32_t fixed_dist;     /* for ST_POS_FIXED */
} st_attn_range;

/* ---- ABI 1.4: sized ranges (grouped positions) -------------------------
 * st_attn_range cannot grow (it has no struct_size); st_attn_range2 can:
 * set struct_size = sizeof(st_attn_range2), and the host reads only the
 * fields it knows. Its first fields mean what st_attn_range's do. */
typedef struct st_attn_range2 {
    uint32_t struct_size;
    uint32_t head;          /* query head, or ST_ALL_HEADS */
    uint32_t k_begin;
    uint32_t k_end;
    int32_t min_dist;
    int32_t max_dist;
    st_pos_mode pos_mode;
    int32_t fixed_dist;     /* for ST_POS_FIXED */
    /* ST_POS_GROUPED: group size (>= 1; 1 with offset 0 is ST_POS_TRUE)
     * and the offset added to the query's grouped position. All GROUPED
     * ranges of one plan call must share one group size. */
    uint32_t group;
    int32_t group_offset;
} st_attn_range2;

/* Provided by the host for one `plan` call. */
typedef struct st_attn_plan_builder {
    uint32_t struct_size;
    void *host;
    st_status (*add_range)(void *host, const st_attn_range *range);
    /* Explicit slots (ascending, unique) sharing `shape`'s head, distance
     * limits and position mode; shape->k_begin/k_end are ignored. */
    st_status (*add_indices)(void *host, const uint32_t *slots, size_t n,
                             const st_attn_range *shape);
    /* ABI 1.4 (check ST_ATTN_BUILDER_HAS_RANGE2 before calling): the same
     * with a sized range, which may use ST_POS_GROUPED. */
    st_status (*add_range2)(void *host, const st_attn_range2 *range);
    st_status (*add_indices2)(void *host, const uint32_t *slots, size_t n,
                              const st_attn_range2 *shape);
} st_attn_plan_builder;

/* True when the host's builder has add_range2 and add_indices2 (a 1.4 host
 * or later). Hosts are never older than the plugins they load, but a
 * plugin that wants to run on an older host checks this and fails its
 * plan with a clear message (or falls back to add_range). */
#define ST_ATTN_BUILDER_HAS_RANGE2(b)                                                        \
    ((b)->struct_size >= offsetof(st_attn_plan_builder, add_indices2) +                     \
                             sizeof(((st_attn_plan_builder *)0)->add_indices2) &&           \
     (b)->add_range2 && (b)->add_indices2)

/* Bits of `needs`. */
#define ST_ATTN_NEEDS_QK      (1u << 0) /* plan wants q and k values */
#define ST_ATTN_NEEDS_ENTROPY (1u << 1) /* call on_entropy for each new token */
#define ST_ATTN_NEEDS_WEIGHTS (1u << 2) /* call on_attention for `weights_layer` */

typedef struct st_attention_ops {
    uint32_t struct_size;

    /* Called once the model is known; tell the host what to feed you.
     * *weights_layer: the layer for ST_ATTN_NEEDS_WEIGHTS (-1 = last). */
    st_status (*configure)(void *inst, const st_model_shape *shape,
                           uint32_t *needs, int32_t *weights_layer, st_error *err);

    /* The most slots this strategy ever keeps for a context of n_ctx tokens
     * (0 = as many as the context). Bounded strategies return a constant,
     * which is how memory stays flat however long the input. */
    uint32_t (*cache_budget)(void *inst, uint32_t n_ctx);

    /* Describe what the block's queries attend to (see st_attn_range). */
    st_status (*plan)(void *inst, const st_attn_query *q,
                      const st_attn_plan_builder *builder, st_error *err);

    /* Optional (NULL = keep everything). Called after a step appended
     * `n_new` slots, before the next one: set keep[i] = 0 for slots to drop.
     * The host compacts the cache keeping order. Must leave the cache at or
     * under cache_budget when that is non-zero. */
    st_status (*retain)(void *inst, const st_kv_view *kv, uint32_t n_new,
                        uint8_t *keep, st_error *err);

    /* Optional observers. on_entropy: -log p of each new token given its
     * prefix, for the slots it landed in. on_attention: attention weights of
     * the chosen layer summed over heads, [n_q][kv->n_slots]. */
    void (*on_entropy)(void *inst, const uint32_t *slots, const float *entropy,
                       size_t n);
    void (*on_attention)(void *inst, uint32_t layer, const int32_t *q_pos,
                         size_t n_q, const float *weights, const st_kv_view *kv);

    /* Forget all per-sequence state (a new request). */
    void (*reset)(void *inst);
} st_attention_ops;

#ifdef __cplusplus
}
#endif
#endif
