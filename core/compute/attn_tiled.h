/*
 * core/attn_tiled.h - tiled (flash-attention style) evaluation of one
 * layer's attention plan when every range is a contiguous slot range for
 * all heads: the common shapes (dense causal, sliding windows,
 * LM-Infinite's global + local, streaming's sinks + window).
 *
 * Work items are (query tile, kv head): the tile's queries times the query
 * heads sharing that kv head are scored together against each key tile
 * (st_cpu_kernels.attn_keys), so every cached key and value is read once
 * per query tile instead of once per query and head. A one-query block
 * (decode) is split along the keys instead, chunks merged after. Per range the
 * queries are rotated as its position mode asks (ST_POS_TRUE: the rotated
 * q against the cache's keys; ST_POS_FIXED: R(fixed_dist) q against
 * unrotated keys; ST_POS_SLOT: R(slot_q) q against keys rotated at their
 * slot; the host makes those two float copies, see forward.c;
 * ST_POS_GROUPED: R(floor(pos_q/G) + offset) q against keys rotated at
 * floor(pos_k/G), a copy kept across steps, see kv_grouped.h), then the
 * range's keys join one online softmax per row. Keys and values may be of
 * any st_kv_type.
 */
#ifndef ST_CORE_ATTN_TILED_H
#define ST_CORE_ATTN_TILED_H

#include <stretch/attention.h>

#include "cpu/kernels.h"
#include "threadpool.h"

typedef struct st_attn_layer {
    const st_cpu_kernels *kern;
    uint32_t n_q, n_heads, n_kv_heads, head_dim;
    const float *q;          /* [n_q][n_heads][hd] unrotated */
    const float *qr;         /* same, rotated at each query's rotation position */
    const int32_t *q_pos;    /* [n_q] true positions */
    const uint32_t *q_slot;  /* [n_q] (ST_POS_SLOT) */
    /* The layer's keys rotated at their rotation position (the cache),
     * unrotated keys (read by ST_POS_FIXED ranges only), keys rotated at
     * their slot index (ST_POS_SLOT only), values (the cache). */
    st_kv_src k_rot, k_fix, k_slot, v;
    /* Keys at their grouped position floor(pos / group) (ST_POS_GROUPED
     * only; kv_grouped.h), in the cache's type. */
    st_kv_src k_grp;
    const int32_t *k_pos;    /* [n_slots] true positions, ascending */
    uint32_t n_slots;
    const st_attn_range2 *ranges; /* every one ST_ALL_HEADS */
    uint32_t n_ranges;
    const float *inv_freq;
    uint32_t n_freq;
    float rot_scale;
    const float *slot_cs, *slot_sn; /* [slot][n_freq] (ST_POS_SLOT) */
    float scale;             /* attn_temperature / sqrt(hd) */
    /* [n_heads] ALiBi slopes (ST_POSENC_SLOPES): head h's scores get
     * -slopes[h] * (q_pos - k_pos); NULL = none. The positions are the
     * true ones, so the caller takes this path only without a position map. */
    const float *slopes;
    float *out;              /* [n_q][n_heads][hd] */
    /* st_attn_tiled_part_floats() floats, or NULL: blocks that
     * st_attn_tiled_splits() are then split along the keys. */
    float *part;
} st_attn_layer;

/* True when the kernels and the head shape allow the tiled path. */
bool st_attn_tiled_supported(const st_cpu_kernels *kern, uint32_t n_heads, uint32_t n_kv_heads,
                             uint32_t head_dim);

/* Per-thread scratch the run needs, in floats (64-byte aligned buffers). */
size_t st_attn_tiled_scratch_floats(uint32_t head_dim);

/* True when a block of n_q queries is split along the keys (given a part
 * buffer): decode steps, one query whose rows would fill few tile lanes
 * and make too few items to share among threads. */
bool st_attn_tiled_splits(uint32_t n_q, uint32_t n_heads, uint32_t n_kv_heads);

/* The chunks a split block's keys fall into: the visible keys of all
 * ranges, in range order, ST_ATTN_SPLIT_KEYS a chunk unless that makes
 * more than ST_ATTN_SPLIT_MAX chunks. They depend only on the plan, so a
 * backend that follows the split (opencl/) takes the same chunks. 256 is
 * one call of the fused decode kernel (attn_tiled.c's SPLIT_SUB): half the
 * work around the calls of 128 (walking the ranges, copying the queries
 * and each chunk's softmax state), with still 16 items per kv head at a
 * 4k context, enough for the threads the split serves. */
#define ST_ATTN_SPLIT_KEYS 256
#define ST_ATTN_SPLIT_MAX 64
void st_attn_tiled_chunks(uint64_t n_visible, uint32_t *chunk, uint32_t *n_chunks);

/* Whether a split block scores a range whose keys are of type k_type with
 * the kernels' fused decode (st_cpu_kernels.attn_decode_f16 or
 * attn_decode_q8_0: f16 or Q8_0 keys and values, no ALiBi slopes, the
 * whole GQA group in registers) rather than the per-row scores_kv /
 * wsum_kv with expf. */
bool st_attn_tiled_decode_fused(const st_cpu_kernels *kern, st_kv_type k_type,
                                st_kv_type v_type, bool slopes, uint32_t group,
                                uint32_t head_dim);

/* Floats of the part buffer for this head shape. */
size_t st_attn_tiled_part_floats(uint32_t n_heads, uint32_t head_dim);

/* Evaluate the layer on the pool; scratch[ith] for thread ith. */
void st_attn_tiled_run(const st_attn_layer *L, st_threadpool *pool, float *const *scratch);

#endif
