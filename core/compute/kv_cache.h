/*
 * core/kv_cache.h - one sequence's keys and values, per layer, in slots
 * kept in sequence order: [slot][kv_head][head_dim] float32.
 *
 * Keys are stored unrotated, with each slot's true position and the
 * position rotation uses (after the posenc plugin's map), so an attention
 * plan can score a key at any distance (ST_POS_FIXED, ST_POS_SLOT). A
 * second copy rotated at its own position is kept for ST_POS_TRUE, the
 * common case: computed once on append, it makes dense attention a plain
 * dot product.
 */
#ifndef ST_CORE_KV_CACHE_H
#define ST_CORE_KV_CACHE_H

#include <stdint.h>
#include <stretch/attention.h>

#include "diag.h"

typedef struct st_kv_cache {
    uint32_t n_layers;
    uint32_t n_kv_heads;
    uint32_t head_dim;
    uint32_t capacity;
    uint32_t n_slots;      /* committed slots */
    int32_t *pos;          /* [capacity] true sequence position */
    int32_t *rot_pos;      /* [capacity] position used for rotation and bias */
    int32_t *tokens;       /* [capacity] */
    float **k;             /* [n_layers] -> [capacity][n_kv_heads][head_dim], unrotated */
    float **k_rot;         /* [n_layers] -> same, rotated by rot_pos */
    float **v;             /* [n_layers] */
} st_kv_cache;

st_status st_kv_cache_create(uint32_t n_layers, uint32_t n_kv_heads, uint32_t head_dim,
                             uint32_t capacity, st_kv_cache **out, st_diag *diag);
void st_kv_cache_free(st_kv_cache *kv);

/* Floats per slot of one layer (n_kv_heads * head_dim). */
static inline size_t st_kv_row(const st_kv_cache *kv)
{
    return (size_t)kv->n_kv_heads * kv->head_dim;
}

/* Drop every slot (a new sequence). */
void st_kv_cache_reset(st_kv_cache *kv);

/* Keep the slots whose keep[i] is nonzero (i < n_slots), in order. */
void st_kv_cache_compact(st_kv_cache *kv, const uint8_t *keep);

/* The plugin-facing view of the first n_slots slots. */
void st_kv_cache_view(const st_kv_cache *kv, uint32_t n_slots, st_kv_view *view);

#endif
