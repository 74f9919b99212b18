/* KV cache storage, compaction and reset. */
#include "kv_cache.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static uint64_t next_epoch(void)
{
    static atomic_uint_fast64_t counter = 1;
    return (uint64_t)atomic_fetch_add(&counter, 1);
}

/* Layer l's key and value buffers at layer_cap[l] rows per KV head,
 * rounded up to 64 bytes for aligned_alloc (and whole cache lines). */
static size_t buffer_bytes(const st_kv_cache *kv, uint32_t l)
{
    return (st_kv_layer_bytes(kv, l) / 2 + 63) & ~(size_t)63;
}

static st_status alloc_layer(st_kv_cache *kv, uint32_t l)
{
    size_t bytes = buffer_bytes(kv, l);
    free(kv->k[l]);
    free(kv->v[l]);
    kv->k[l] = aligned_alloc(64, bytes);
    kv->v[l] = aligned_alloc(64, bytes);
    return kv->k[l] && kv->v[l] ? ST_OK : ST_E_NOMEM;
}

void st_kv_key_load(const st_kv_cache *kv, uint32_t layer, const uint8_t *buf, uint32_t h,
                    uint32_t j, float *dst)
{
    st_kv_src s = st_kv_key_src(kv, layer, buf);
    st_kv_src_load_row(&s, h, j, dst, kv->head_dim);
}

void st_kv_key_store(const st_kv_cache *kv, uint32_t layer, uint8_t *buf, uint32_t h, uint32_t j,
                     const float *src)
{
    if (!kv->k_blocked) {
        st_kv_store_row(kv->type, src, st_kv_at(kv, layer, buf, h, j), kv->head_dim);
        return;
    }
    uint16_t row[ST_KV_MAX_HEAD_DIM];
    st_kv_store_row(ST_KV_F16, src, row, kv->head_dim);
    st_kv_blk_put(st_kv_at(kv, layer, buf, h, 0), j, row, kv->head_dim);
}

void st_kv_key_get(const st_kv_cache *kv, uint32_t layer, const uint8_t *buf, uint32_t h,
                   uint32_t j, void *row)
{
    if (kv->k_blocked)
        st_kv_blk_get(st_kv_at(kv, layer, (uint8_t *)buf, h, 0), j, row, kv->head_dim);
    else
        memcpy(row, st_kv_at(kv, layer, (uint8_t *)buf, h, j), kv->row_bytes);
}

void st_kv_key_put(const st_kv_cache *kv, uint32_t layer, uint8_t *buf, uint32_t h, uint32_t j,
                   const void *row)
{
    if (kv->k_blocked)
        st_kv_blk_put(st_kv_at(kv, layer, buf, h, 0), j, row, kv->head_dim);
    else
        memcpy(st_kv_at(kv, layer, buf, h, j), row, kv->row_bytes);
}

/* Key (h, src) of the layer to slot dst. */
static void key_move(const st_kv_cache *kv, uint32_t layer, uint32_t h, uint32_t dst,
                     uint32_t src)
{
    if (!kv->k_blocked) {
        memcpy(st_kv_at(kv, layer, kv->k[layer], h, dst),
               st_kv_at(kv, layer, kv->k[layer], h, src), kv->row_bytes);
        return;
    }
    uint16_t row[ST_KV_MAX_HEAD_DIM];
    uint8_t *head = st_kv_at(kv, layer, kv->k[layer], h, 0);
    st_kv_blk_get(head, src, row, kv->head_dim);
    st_kv_blk_put(head, dst, row, kv->head_dim);
}

bool st_kv_cache_block_keys(st_kv_cache *kv, bool on)
{
    if (kv->k_blocked == on)
        return true;
    if (kv->n_slots || kv->mirror || kv->type != ST_KV_F16 || kv->head_dim > ST_KV_MAX_HEAD_DIM)
        return false;
    for (uint32_t l = 0; kv->hn && l < kv->n_layers; l++)
        for (uint32_t h = 0; h < kv->n_kv_heads; h++)
            if (kv->hn[st_kv_head_index(kv, l, h)])
                return false;
    /* Every layer's new buffers first, so that running out of memory
     * leaves the cache as it was. */
    uint32_t n = kv->n_layers;
    uint8_t **nk = calloc(n, sizeof *nk), **nv = calloc(n, sizeof *nv);
    bool ok = nk && nv;
    kv->k_blocked = on;
    for (uint32_t l = 0; ok && l < n; l++)
        ok = (nk[l] = aligned_alloc(64, buffer_bytes(kv, l))) &&
             (nv[l] = aligned_alloc(64, buffer_bytes(kv, l)));
    for (uint32_t l = 0; nk && nv && l < n; l++) {
        /* The old buffers go, or the new ones (calloc: NULL past a failure). */
        if (ok) {
            free(kv->k[l]);
            free(kv->v[l]);
            kv->k[l] = nk[l];
            kv->v[l] = nv[l];
        } else {
            free(nk[l]);
            free(nv[l]);
        }
    }
    free(nk);
    free(nv);
    if (!ok) {
        kv->k_blocked = !on;
        return false;
    }
    kv->epoch = next_epoch();
    return true;
}

st_status st_kv_cache_create(uint32_t n_layers, uint32_t n_kv_heads, uint32_t head_dim,
                             uint32_t capacity, st_kv_type type, st_kv_cache **out,
                             st_diag *diag)
{
    *out = NULL;
    if (!n_layers || !n_kv_heads || !head_dim || !capacity)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "kv cache: %u layers, %u kv heads, head_dim %u, capacity %u: "
                           "expected all nonzero", n_layers, n_kv_heads, head_dim, capacity);
    if ((unsigned)type >= ST_KV_TYPE_COUNT)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0, "kv cache: unknown type %d", (int)type);
    if (type == ST_KV_Q8_0 && head_dim % 32)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "kv cache: kv-type q8_0 needs a head size that is a multiple of 32 "
                           "(blocks of 32), the model's is %u; use f16 or f32", head_dim);
    st_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv)
        goto nomem;
    kv->n_layers = n_layers;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->capacity = capacity;
    kv->type = type;
    kv->row_bytes = st_kv_row_bytes(type, head_dim);
    kv->last_pos = -1;
    kv->epoch = next_epoch();
    kv->pos = malloc(capacity * sizeof *kv->pos);
    kv->rot_pos = malloc(capacity * sizeof *kv->rot_pos);
    kv->tokens = malloc(capacity * sizeof *kv->tokens);
    kv->k = calloc(n_layers, sizeof *kv->k);
    kv->v = calloc(n_layers, sizeof *kv->v);
    kv->layer_cap = malloc(n_layers * sizeof *kv->layer_cap);
    if (!kv->pos || !kv->rot_pos || !kv->tokens || !kv->k || !kv->v || !kv->layer_cap)
        goto nomem;
    for (uint32_t l = 0; l < n_layers; l++) {
        kv->layer_cap[l] = capacity;
        if (alloc_layer(kv, l) != ST_OK)
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
        if (kv->v)
            free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv->layer_cap);
    free(kv->pos);
    free(kv->rot_pos);
    free(kv->tokens);
    free(kv->hn);
    free(kv->hoff);
    free(kv->hpos);
    free(kv->hrot);
    free(kv->htok);
    free(kv);
}

void st_kv_cache_reset(st_kv_cache *kv)
{
    if (kv->mirror_compact)
        kv->mirror_compact(kv->mirror, NULL, 0);
    kv->n_slots = 0;
    kv->last_pos = -1;
    kv->epoch = next_epoch();
    if (kv->hn)
        memset(kv->hn, 0, (size_t)kv->n_layers * kv->n_kv_heads * sizeof *kv->hn);
}

st_status st_kv_cache_enable_heads(st_kv_cache *kv, const uint32_t *layer_cap, st_diag *diag)
{
    if (kv->hn)
        return ST_OK;
    if (kv->n_slots)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "kv cache: per-head slot sets need an empty cache (%u slots held)",
                           kv->n_slots);
    for (uint32_t l = 0; layer_cap && l < kv->n_layers; l++)
        if (!layer_cap[l] || layer_cap[l] > kv->capacity)
            return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                               "kv cache: layer %u's capacity %u: expected 1..%u", l,
                               layer_cap[l], kv->capacity);
    size_t heads = (size_t)kv->n_layers * kv->n_kv_heads, rows = 0;
    kv->hn = calloc(heads, sizeof *kv->hn);
    kv->hoff = malloc(heads * sizeof *kv->hoff);
    if (!kv->hn || !kv->hoff)
        goto nomem;
    for (uint32_t l = 0; l < kv->n_layers; l++) {
        uint32_t cap = layer_cap ? layer_cap[l] : kv->capacity;
        if (cap != kv->layer_cap[l]) {
            /* The cache is empty: the smaller buffers replace the old. */
            kv->layer_cap[l] = cap;
            if (alloc_layer(kv, l) != ST_OK)
                goto nomem;
        }
        for (uint32_t h = 0; h < kv->n_kv_heads; h++) {
            kv->hoff[st_kv_head_index(kv, l, h)] = rows;
            rows += cap;
        }
    }
    kv->hpos = malloc(rows * sizeof *kv->hpos);
    kv->hrot = malloc(rows * sizeof *kv->hrot);
    kv->htok = malloc(rows * sizeof *kv->htok);
    if (!kv->hpos || !kv->hrot || !kv->htok)
        goto nomem;
    kv->last_pos = -1;
    return ST_OK;
nomem:
    free(kv->hn); free(kv->hoff); free(kv->hpos); free(kv->hrot); free(kv->htok);
    kv->hn = NULL;
    kv->hoff = NULL;
    kv->hpos = kv->hrot = kv->htok = NULL;
    return st_diag_set(diag, ST_E_NOMEM, "", 0, 0,
                       "kv cache: out of memory for per-head slot sets (%zu heads, up to %u "
                       "slots each)", heads, kv->capacity);
}

size_t st_kv_cache_bytes(const st_kv_cache *kv)
{
    size_t b = 0;
    for (uint32_t l = 0; l < kv->n_layers; l++)
        b += st_kv_layer_bytes(kv, l);
    return b;
}

uint32_t st_kv_cache_room(const st_kv_cache *kv)
{
    uint32_t room = kv->n_slots < kv->capacity ? kv->capacity - kv->n_slots : 0;
    for (uint32_t l = 0; kv->hn && l < kv->n_layers; l++)
        for (uint32_t h = 0; h < kv->n_kv_heads; h++) {
            uint32_t n = kv->hn[st_kv_head_index(kv, l, h)];
            uint32_t r = n < kv->layer_cap[l] ? kv->layer_cap[l] - n : 0;
            if (r < room)
                room = r;
        }
    return room;
}

void st_kv_cache_head_view(const st_kv_cache *kv, uint32_t layer, uint32_t h, uint32_t extra,
                           st_kv_view *view)
{
    size_t i = st_kv_head_index(kv, layer, h), o = kv->hoff[i];
    view->struct_size = sizeof *view;
    view->n_slots = kv->hn[i] + extra;
    view->capacity = kv->layer_cap[layer];
    view->pos = kv->hpos + o;
    view->tokens = kv->htok + o;
}

void st_kv_cache_compact_head(st_kv_cache *kv, uint32_t layer, uint32_t h, const uint8_t *keep)
{
    size_t i = st_kv_head_index(kv, layer, h), o = kv->hoff[i];
    uint32_t dst = 0;
    for (uint32_t src = 0; src < kv->hn[i]; src++) {
        if (!keep[src])
            continue;
        if (dst != src) {
            kv->hpos[o + dst] = kv->hpos[o + src];
            kv->hrot[o + dst] = kv->hrot[o + src];
            kv->htok[o + dst] = kv->htok[o + src];
            key_move(kv, layer, h, dst, src);
            memcpy(st_kv_at(kv, layer, kv->v[layer], h, dst),
                   st_kv_at(kv, layer, kv->v[layer], h, src), kv->row_bytes);
        }
        dst++;
    }
    kv->hn[i] = dst;
    kv->epoch = next_epoch();
}

void st_kv_cache_heads_settle(st_kv_cache *kv)
{
    uint32_t mx = 0;
    for (size_t i = 0; i < (size_t)kv->n_layers * kv->n_kv_heads; i++)
        if (kv->hn[i] > mx)
            mx = kv->hn[i];
    kv->n_slots = mx;
}

void st_kv_cache_heads_commit(st_kv_cache *kv, uint32_t n, int32_t last)
{
    for (size_t i = 0; i < (size_t)kv->n_layers * kv->n_kv_heads; i++)
        kv->hn[i] += n;
    kv->last_pos = last;
    st_kv_cache_heads_settle(kv);
}

bool st_kv_cache_truncate(st_kv_cache *kv, uint32_t n)
{
    if (n >= kv->n_slots)
        return true;
    uint8_t *keep = malloc(kv->n_slots);
    if (!keep)
        return false;
    memset(keep, 1, n);
    memset(keep + n, 0, kv->n_slots - n);
    st_kv_cache_compact(kv, keep);
    free(keep);
    return true;
}

bool st_kv_cache_append_from(st_kv_cache *dst, const st_kv_cache *src, uint32_t n)
{
    uint32_t from = dst->n_slots;
    if (dst == src || n <= from || n > src->n_slots || n > dst->capacity || dst->hn || src->hn ||
        dst->mirror || src->mirror || dst->type != src->type ||
        dst->n_layers != src->n_layers || dst->n_kv_heads != src->n_kv_heads ||
        dst->row_bytes != src->row_bytes || dst->k_blocked != src->k_blocked)
        return false;
    for (uint32_t l = 0; l < dst->n_layers; l++)
        if (dst->layer_cap[l] < n)
            return false;
    size_t count = n - from;
    memcpy(dst->pos + from, src->pos + from, count * sizeof *dst->pos);
    memcpy(dst->rot_pos + from, src->rot_pos + from, count * sizeof *dst->rot_pos);
    memcpy(dst->tokens + from, src->tokens + from, count * sizeof *dst->tokens);
    /* A head's rows are contiguous in both buffers: one copy per head
     * (blocked keys: key by key). */
    uint16_t row[ST_KV_MAX_HEAD_DIM];
    for (uint32_t l = 0; l < dst->n_layers; l++)
        for (uint32_t h = 0; h < dst->n_kv_heads; h++) {
            if (dst->k_blocked)
                for (uint32_t j = from; j < n; j++) {
                    st_kv_key_get(src, l, src->k[l], h, j, row);
                    st_kv_key_put(dst, l, dst->k[l], h, j, row);
                }
            else
                memcpy(st_kv_at(dst, l, dst->k[l], h, from),
                       st_kv_at(src, l, src->k[l], h, from), count * dst->row_bytes);
            memcpy(st_kv_at(dst, l, dst->v[l], h, from),
                   st_kv_at(src, l, src->v[l], h, from), count * dst->row_bytes);
        }
    dst->n_slots = n;
    return true;
}

void st_kv_cache_compact(st_kv_cache *kv, const uint8_t *keep)
{
    if (kv->mirror_compact)
        kv->mirror_compact(kv->mirror, keep, kv->n_slots);
    uint32_t dst = 0;
    for (uint32_t src = 0; src < kv->n_slots; src++) {
        if (!keep[src])
            continue;
        if (dst != src) {
            kv->pos[dst] = kv->pos[src];
            kv->rot_pos[dst] = kv->rot_pos[src];
            kv->tokens[dst] = kv->tokens[src];
            for (uint32_t l = 0; l < kv->n_layers; l++)
                for (uint32_t h = 0; h < kv->n_kv_heads; h++) {
                    key_move(kv, l, h, dst, src);
                    memcpy(st_kv_at(kv, l, kv->v[l], h, dst), st_kv_at(kv, l, kv->v[l], h, src),
                           kv->row_bytes);
                }
        }
        dst++;
    }
    if (dst != kv->n_slots)
        kv->epoch = next_epoch(); /* slots moved: derived copies are stale */
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
