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
    /* Since 1.4. ST_ALL_HEADS: `kv` is the one slot set every head shares.
     * A plugin with per-(layer, KV head) slot sets (st_attn_kv_config.
     * per_head_slots) is asked once per layer and KV head: `kv` is that
     * head's slots, q_slot index them, and the plan's ranges reach only
     * that head's query heads (ST_ALL_HEADS = all of them). */
    uint32_t kv_head;
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

/* ---- Since 1.4: statistics and per-(layer, KV head) slot sets ---- */

/* How the statistics' rows are split. */
typedef enum st_attn_stats_heads {
    ST_STATS_NONE = 0,        /* no statistics */
    ST_STATS_KV_HEADS = 1,    /* a row per (layer, KV head), summed over its query heads */
    ST_STATS_QUERY_HEADS = 2  /* a row per (layer, query head) */
} st_attn_stats_heads;

/* What configure_kv asks the host for. The host fills every field with
 * its default before the call; the plugin changes what it needs. */
typedef struct st_attn_kv_config {
    uint32_t struct_size;
    st_attn_stats_heads stats;  /* default ST_STATS_NONE */
    /* 0 (default): sum over every query of each block; w > 0: over the
     * last w queries of each block only (SnapKV's observation window). */
    uint32_t stats_window;
    /* [n_layers], host-owned, all 1 on entry: clear a layer to skip its
     * statistics (its attention then keeps the fast kernels). */
    uint8_t *stats_layers;
    /* 0 (default): one slot set shared by every layer and head (`retain`).
     * 1: each (layer, KV head) keeps its own slots (`retain_heads`). */
    uint32_t per_head_slots;
    /* [n_layers], host-owned, 0 on entry: the most slots one KV head of
     * the layer keeps between steps (0 = cache_budget). The host checks
     * every retention against it. */
    uint32_t *layer_budget;
} st_attn_kv_config;

/* Attention statistics of one step (one block of queries): for each asked
 * layer and row (a KV head or a query head), the sum over the counted
 * queries (and, per KV head, over its query heads) of each key slot's
 * softmax weight, computed inside the host's kernels. */
typedef struct st_attn_stats {
    uint32_t struct_size;
    uint32_t n_layers;
    uint32_t n_kv_heads;
    uint32_t n_rows;          /* rows per layer: n_kv_heads or n_heads */
    uint32_t n_q;             /* queries counted (the window's, or the block's) */
    const int32_t *q_pos;     /* [n_q] their positions */
    /* [n_layers * n_kv_heads]: the slots of (layer, KV head) the rows are
     * indexed by (one shared view repeated without per_head_slots). */
    const st_kv_view *kv;
    /* [n_layers * n_rows]: row (layer, r), kv[layer * n_kv_heads + r's KV
     * head].n_slots floats; NULL for a layer not asked. */
    const float *const *sum;
} st_attn_stats;

/* The per-(layer, KV head) slot sets handed to retain_heads. */
typedef struct st_kv_heads {
    uint32_t struct_size;
    uint32_t n_layers;
    uint32_t n_kv_heads;
    uint32_t n_new;           /* slots the step appended to every head */
    const st_kv_view *kv;     /* [n_layers * n_kv_heads] */
    /* [n_layers * n_kv_heads] -> [kv[i].n_slots], all 1 on entry: set 0
     * for the slots that head drops. */
    uint8_t *const *keep;
} st_kv_heads;
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
/* Since 1.7, not a need but a promise: plan() depends only on its query
 * and the cache (reset() forgets nothing that matters), so the host may
 * start a request from the previous request's cached prompt tokens that it
 * shares (a prompt-prefix cache). Without it every request starts empty. */
#define ST_ATTN_PREFIX_REUSE  (1u << 3)

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

    /* ---- Since 1.4: per-layer, per-head statistics and retention. ---- */

    /* Optional. Called right after `configure`; the host filled `cfg` with
     * its defaults (no statistics, one shared slot set). */
    st_status (*configure_kv)(void *inst, const st_model_shape *shape, st_attn_kv_config *cfg,
                              st_error *err);

    /* Optional: the statistics asked for in configure_kv, once per step
     * after the model's pass and before retention. A failure stops the
     * run with the plugin's message. */
    st_status (*on_attention_stats)(void *inst, const st_attn_stats *stats, st_error *err);

    /* Required when configure_kv set per_head_slots (then `retain` is not
     * called): fill one keep mask per (layer, KV head). The host compacts
     * each head's slots keeping order; each must end at or under its
     * layer's budget. */
    st_status (*retain_heads)(void *inst, const st_kv_heads *heads, st_error *err);
} st_attention_ops;

#ifdef __cplusplus
}
#endif
#endif
