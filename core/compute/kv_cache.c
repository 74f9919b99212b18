/* KV cache storage, compaction and reset. */
#include "kv_cache.h"

#include <stdlib.h>
#include <string.h>

st_status st_kv_cache_create(uint32_t n_layers, uint32_t n_kv_heads, uint32_t head_dim,
                             uint32_t capacity, st_kv_cache **out, st_diag *diag)
{
    *out = NULL;
    if (!n_layers || !n_kv_heads || !head_dim || !capacity)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "kv cache: %u layers, %u kv heads, head_dim %u, capacity %u: "
                           "expected all nonzero", n_layers, n_kv_heads, head_dim, capacity);
    st_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv)
        goto nomem;
    kv->n_layers = n_layers;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->capacity = capacity;
    kv->pos = malloc(capacity * sizeof *kv->pos);
    kv->rot_pos = malloc(capacity * sizeof *kv->rot_pos);
    kv->tokens = malloc(capacity * sizeof *kv->tokens);
    kv->k = calloc(n_layers, sizeof *kv->k);
    kv->k_rot = calloc(n_layers, sizeof *kv->k_rot);
    kv->v = calloc(n_layers, sizeof *kv->v);
    if (!kv->pos || !kv->rot_pos || !kv->tokens || !kv->k || !kv->k_rot || !kv->v)
        goto nomem;
    size_t bytes = (size_t)capacity * st_kv_row(kv) * sizeof(float);
    for (uint32_t l = 0; l < n_layers; l++) {
        kv->k[l] = malloc(bytes);
        kv->k_rot[l] = malloc(bytes);
        kv->v[l] = malloc(bytes);
        if (!kv->k[l] || !kv->k_rot[l] || !kv->v[l])
            goto nomem;
    }
    *out = kv;
    return ST_OK;
nomem:
    st_kv_cache_free(kv);
    return st_diag_set(diag, ST_E_NOMEM, "", 0, 0,
                       "kv cache: out of memory for %u slots x %u layers", capacity, n_layers);
}

void st_kv_cache_free(st_kv_cache *kv)
{
    if (!kv)
        return;
    for (uint32_t l = 0; l < kv->n_layers; l++) {
        if (kv->k)
            free(kv->k[l]);
        if (kv->k_rot)
            free(kv->k_rot[l]);
        if (kv->v)
            free(kv->v[l]);
    }
    free(kv->k);
    free(kv->k_rot);
    free(kv->v);
    free(kv->pos);
    free(kv->rot_pos);
    free(kv->tokens);
    free(kv);
}

void st_kv_cache_reset(st_kv_cache *kv)
{
    kv->n_slots = 0;
}

void st_kv_cache_compact(st_kv_cache *kv, const uint8_t *keep)
{
    size_t row = st_kv_row(kv);
    uint32_t dst = 0;
    for (uint32_t src = 0; src < kv->n_slots; src++) {
        if (!keep[src])
            continue;
        if (dst != src) {
            kv->pos[dst] = kv->pos[src];
            kv->rot_pos[dst] = kv->rot_pos[src];
            kv->tokens[dst] = kv->tokens[src];
            for (uint32_t l = 0; l < kv->n_layers; l++) {
                memcpy(kv->k[l] + dst * row, kv->k[l] + src * row, row * sizeof(float));
                memcpy(kv->k_rot[l] + dst * row, kv->k_rot[l] + src * row, row * sizeof(float));
                memcpy(kv->v[l] + dst * row, kv->v[l] + src * row, row * sizeof(float));
            }
        }
        dst++;
    }
    kv->n_slots = dst;
}

void st_kv_cache_view(const st_kv_cache *kv, uint32_t n_slots, st_kv_view *view)
{
    view->struct_size = sizeof *view;
    view->n_slots = n_slots;
    view->capacity = kv->capacity;
    view->pos = kv->pos;
    view->tokens = kv->tokens;
}
