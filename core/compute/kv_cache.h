/*
 * core/kv_cache.h - one sequence's keys and values, per layer, in slots
 * kept in sequence order, in one element type (the manifest's kv-type:
 * f16 by default, q8_0 or f32).
 *
 * One copy of the keys is kept: rotated at each slot's rotation position
 * (its position after the posenc plugin's map), which is what ST_POS_TRUE
 * (dense attention, windows: the common case) reads as a plain dot
 * product. A plan that scores keys at another position (ST_POS_FIXED,
 * ST_POS_SLOT) or an ST_ATTN_NEEDS_QK plugin gets float keys the host
 * re-rotates on the fly (RoPE is a rotation: R(a) R(b) = R(a + b)); see
 * docs/forward.md.
 *
 * Layout per layer: one key buffer and one value buffer, each
 * [kv_head][slot][head_dim] (st_kv_keys / st_kv_values describe it), so a
 * head's keys are contiguous (decode streams them), a buffer per layer
 * can move to a device as is, and per-head slot sets would only change
 * the per-head slot counts.
 *
 * An f16 cache on the CPU keeps its keys in blocks of 16 slots instead
 * (k_blocked, st_kv_cache_block_keys; kernels.h's ST_KV_KBLOCK): dim d of
 * 16 slots in 32 contiguous bytes, so decode's scores come out in vector
 * lanes (docs/forward.md). Values stay in rows. Keys are then read and
 * written only through st_kv_key_* and st_kv_keys (st_kv_at addresses
 * rows: values, or keys when !k_blocked).
 *
 * A layer's buffers hold layer_cap[l] rows per KV head: the capacity for
 * one shared slot set; with per-head slot sets (st_kv_cache_enable_heads)
 * each layer may have its own, its budget + one block (PyramidKV's budgets
 * shrink with depth, so its cache is the sum of its budgets, not the
 * largest one times the layers).
 */
#ifndef ST_CORE_KV_CACHE_H
#define ST_CORE_KV_CACHE_H

#include <stdbool.h>
#include <stdint.h>
#include <stretch/attention.h>

#include "cpu/kernels.h"
#include "diag.h"

/* The largest head size whose keys may be blocked (a key's halves are
 * copied through the stack). */
#define ST_KV_MAX_HEAD_DIM 512

typedef struct st_kv_cache {
    uint32_t n_layers;
    uint32_t n_kv_heads;
    uint32_t head_dim;
    uint32_t capacity;     /* the most slots any layer holds; pos / rot_pos / tokens' size */
    uint32_t n_slots;      /* committed slots */
    st_kv_type type;
    size_t row_bytes;      /* one head's row: head_dim elements of `type` */
    int32_t *pos;          /* [capacity] true sequence position */
    int32_t *rot_pos;      /* [capacity] position used for rotation and bias */
    int32_t *tokens;       /* [capacity] */
    uint8_t **k;           /* [n_layers] -> [n_kv_heads][layer_cap[l]] rows, rotated by rot_pos */
    uint8_t **v;           /* [n_layers] -> same layout */
    uint32_t *layer_cap;   /* [n_layers] rows per KV head in layer l's buffers (<= capacity) */
    bool k_blocked;        /* f16 keys in 16-slot blocks (above); heads hold whole blocks */
    /* Per-(layer, KV head) slot sets (st_attn_kv_config.per_head_slots),
     * NULL without: head (l, h) holds hn[l * n_kv_heads + h] slots, rows
     * [0, hn) of its region of k[l] / v[l], with their positions in
     * hpos / hrot / htok at [hoff[l * n_kv_heads + h] + slot] (each head
     * has layer_cap[l] entries there).
     * n_slots is then the largest hn (what a step may add to), and pos /
     * rot_pos / tokens hold only the current block (slots n_slots..). */
    uint32_t *hn;
    size_t *hoff;
    int32_t *hpos, *hrot, *htok;
    int32_t last_pos;      /* per-head mode: the last committed position, -1 when empty */
    /* Changes whenever committed slots may hold other keys than before
     * (create, reset, compact), unique across caches: copies derived from
     * the cache (kv_grouped.h) compare it to know they are stale. */
    uint64_t epoch;
    /* A copy of the keys and values on a device (backend.h's resident
     * ops), compacted along with this one (keep NULL: reset); NULL when
     * there is none. */
    void *mirror;
    void (*mirror_compact)(void *mirror, const uint8_t *keep, uint32_t n_before);
} st_kv_cache;

/* type ST_KV_Q8_0 needs head_dim a multiple of 32. */
st_status st_kv_cache_create(uint32_t n_layers, uint32_t n_kv_heads, uint32_t head_dim,
                             uint32_t capacity, st_kv_type type, st_kv_cache **out,
                             st_diag *diag);
void st_kv_cache_free(st_kv_cache *kv);

/* Floats per slot of one layer (n_kv_heads * head_dim). */
static inline size_t st_kv_row(const st_kv_cache *kv)
{
    return (size_t)kv->n_kv_heads * kv->head_dim;
}

/* Bytes one token occupies in the cache, keys and values of all layers. */
static inline size_t st_kv_bytes_per_token(const st_kv_cache *kv)
{
    return 2 * (size_t)kv->n_layers * kv->n_kv_heads * kv->row_bytes;
}

/* Rows one KV head takes in layer l's buffers: its capacity, in whole
 * blocks when the keys are blocked. */
static inline uint32_t st_kv_head_rows(const st_kv_cache *kv, uint32_t layer)
{
    uint32_t c = kv->layer_cap[layer];
    return kv->k_blocked ? (c + ST_KV_KBLOCK - 1) / ST_KV_KBLOCK * ST_KV_KBLOCK : c;
}

/* The row of (kv head h, slot j) in `buf`, a buffer laid out as `layer`'s
 * values (or its keys when they are not blocked; with blocked keys, slot
 * 0's row is where head h's blocks start). */
static inline uint8_t *st_kv_at(const st_kv_cache *kv, uint32_t layer, uint8_t *buf, uint32_t h,
                                uint32_t j)
{
    return buf + ((size_t)h * st_kv_head_rows(kv, layer) + j) * kv->row_bytes;
}

/* Keys laid out as `layer`'s in `buf` (the cache's, or a copy's). */
static inline st_kv_src st_kv_key_src(const st_kv_cache *kv, uint32_t layer, const uint8_t *buf)
{
    st_kv_src s = { buf, (size_t)st_kv_head_rows(kv, layer) * kv->row_bytes, kv->row_bytes,
                    kv->type, kv->k_blocked };
    return s;
}

static inline st_kv_src st_kv_keys(const st_kv_cache *kv, uint32_t layer)
{
    return st_kv_key_src(kv, layer, kv->k[layer]);
}

static inline st_kv_src st_kv_values(const st_kv_cache *kv, uint32_t layer)
{
    st_kv_src s = { kv->v[layer], (size_t)st_kv_head_rows(kv, layer) * kv->row_bytes,
                    kv->row_bytes, kv->type, false };
    return s;
}

/* Key (h, j) of a buffer laid out as `layer`'s keys: to float, from float
 * (rounded as st_kv_store_row), and as its row's bytes (row_bytes: the
 * cache's type, f16 halves when blocked), either way. */
void st_kv_key_load(const st_kv_cache *kv, uint32_t layer, const uint8_t *buf, uint32_t h,
                    uint32_t j, float *dst);
void st_kv_key_store(const st_kv_cache *kv, uint32_t layer, uint8_t *buf, uint32_t h, uint32_t j,
                     const float *src);
void st_kv_key_get(const st_kv_cache *kv, uint32_t layer, const uint8_t *buf, uint32_t h,
                   uint32_t j, void *row);
void st_kv_key_put(const st_kv_cache *kv, uint32_t layer, uint8_t *buf, uint32_t h, uint32_t j,
                   const void *row);

/* Keep the keys in 16-slot blocks (on) or rows (off): an f16 cache that is
 * empty and has no device mirror only; its buffers are allocated again.
 * False (and nothing changed) otherwise or out of memory. */
bool st_kv_cache_block_keys(st_kv_cache *kv, bool on);

/* Bytes of one layer's key and value buffers (what they were allocated
 * with, before rounding up to a cache line). */
static inline size_t st_kv_layer_bytes(const st_kv_cache *kv, uint32_t layer)
{
    return 2 * (size_t)kv->n_kv_heads * st_kv_head_rows(kv, layer) * kv->row_bytes;
}

/* Bytes of every layer's key and value buffers. */
size_t st_kv_cache_bytes(const st_kv_cache *kv);

/* Slots the next block may add: with one shared set, capacity - n_slots;
 * with per-head sets, the least room of any (layer, KV head). */
uint32_t st_kv_cache_room(const st_kv_cache *kv);


/* Drop every slot (a new sequence). */
void st_kv_cache_reset(st_kv_cache *kv);

/* Keep the first n slots (a prompt prefix the next request shares);
 * false when out of memory (the cache is then unchanged). */
bool st_kv_cache_truncate(st_kv_cache *kv, uint32_t n);

/* Append src's slots [dst->n_slots, n) to dst, which holds the same first
 * dst->n_slots slots (another sequence's copy of a shared prompt prefix):
 * keys, values, positions and tokens. False, with dst unchanged, when the
 * two caches differ in shape or type, either has per-head slot sets or a
 * device mirror, src holds fewer than n slots or dst has no room. */
bool st_kv_cache_append_from(st_kv_cache *dst, const st_kv_cache *src, uint32_t n);

/* Keep the slots whose keep[i] is nonzero (i < n_slots), in order. */
void st_kv_cache_compact(st_kv_cache *kv, const uint8_t *keep);

/* The plugin-facing view of the first n_slots slots. */
void st_kv_cache_view(const st_kv_cache *kv, uint32_t n_slots, st_kv_view *view);

/* Switch to per-(layer, KV head) slot sets (empty cache only), layer l's
 * heads holding up to layer_cap[l] slots each (1..capacity; NULL: the
 * capacity for every layer). Layers smaller than the capacity get smaller
 * buffers. */
st_status st_kv_cache_enable_heads(st_kv_cache *kv, const uint32_t *layer_cap, st_diag *diag);

/* Index of (layer, KV head) in the per-head arrays. */
static inline size_t st_kv_head_index(const st_kv_cache *kv, uint32_t layer, uint32_t h)
{
    return (size_t)layer * kv->n_kv_heads + h;
}

/* Where (layer, KV head)'s entries start in hpos / hrot / htok. */
static inline size_t st_kv_head_base(const st_kv_cache *kv, uint32_t layer, uint32_t h)
{
    return kv->hoff[st_kv_head_index(kv, layer, h)];
}

/* The view of (layer, KV head)'s slots, `extra` uncommitted ones past its
 * count included (the current block's). */
void st_kv_cache_head_view(const st_kv_cache *kv, uint32_t layer, uint32_t h, uint32_t extra,
                           st_kv_view *view);

/* Keep (layer, KV head)'s slots whose keep[i] is nonzero (i < its count),
 * in order; then call st_kv_cache_heads_settle. */
void st_kv_cache_compact_head(st_kv_cache *kv, uint32_t layer, uint32_t h, const uint8_t *keep);

/* After per-head changes: n_slots = the largest per-head count. */
void st_kv_cache_heads_settle(st_kv_cache *kv);

/* Commit a block of n slots to every head (the forward pass wrote them at
 * each head's count); `last` is the block's last position. */
void st_kv_cache_heads_commit(st_kv_cache *kv, uint32_t n, int32_t last);

#endif
