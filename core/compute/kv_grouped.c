/* Grouped-position key copies for ST_POS_GROUPED (see kv_grouped.h). */
#include "kv_grouped.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/ops.h"

st_status st_kv_grouped_init(st_kv_grouped *g, uint32_t n_layers, st_diag *diag)
{
    memset(g, 0, sizeof *g);
    g->n_layers = n_layers;
    g->k = calloc(n_layers ? n_layers : 1, sizeof *g->k);
    g->n_valid = calloc(n_layers ? n_layers : 1, sizeof *g->n_valid);
    g->group = calloc(n_layers ? n_layers : 1, sizeof *g->group);
    g->epoch = calloc(n_layers ? n_layers : 1, sizeof *g->epoch);
    if (!g->k || !g->n_valid || !g->group || !g->epoch) {
        st_kv_grouped_free(g);
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "grouped keys: out of memory");
    }
    return ST_OK;
}

void st_kv_grouped_free(st_kv_grouped *g)
{
    if (g->k)
        for (uint32_t l = 0; l < g->n_layers; l++)
            free(g->k[l]);
    free(g->k);
    free(g->n_valid);
    free(g->group);
    free(g->epoch);
    free(g->scratch);
    memset(g, 0, sizeof *g);
}

void st_kv_grouped_invalidate(st_kv_grouped *g)
{
    for (uint32_t l = 0; l < g->n_layers; l++)
        g->n_valid[l] = 0;
}

typedef struct grouped_task {
    const st_kv_cache *kv;
    uint8_t *dst;
    uint32_t layer, group, begin, end;
    const float *inv_freq;
    uint32_t n_freq;
    float *scratch;
    size_t scratch_per;
    atomic_uint next;
} grouped_task;

#define GROUPED_CHUNK 64

static void grouped_task_fn(void *arg, uint32_t ith, uint32_t nth)
{
    (void)nth;
    grouped_task *T = arg;
    const st_kv_cache *kv = T->kv;
    uint32_t hd = kv->head_dim;
    float *row = T->scratch + ith * T->scratch_per, *cs = row + hd, *sn = cs + hd / 2 + 1;
    for (;;) {
        uint32_t j0 = T->begin + atomic_fetch_add_explicit(&T->next, GROUPED_CHUNK,
                                                           memory_order_relaxed);
        if (j0 >= T->end)
            break;
        uint32_t j1 = j0 + GROUPED_CHUNK < T->end ? j0 + GROUPED_CHUNK : T->end;
        for (uint32_t j = j0; j < j1; j++) {
            /* The cache holds s R(rot_pos) k; R(floor(pos/G) - rot_pos) of
             * it is s R(floor(pos/G)) k, the key at its grouped position. */
            double a = (double)st_grouped_pos(kv->pos[j], T->group) - (double)kv->rot_pos[j];
            st_op_rope_table(cs, sn, a, T->inv_freq, T->n_freq, 1.0f);
            for (uint32_t h = 0; h < kv->n_kv_heads; h++) {
                st_kv_key_load(kv, T->layer, kv->k[T->layer], h, j, row);
                st_op_rope(row, row, cs, sn, T->n_freq, hd);
                st_kv_key_store(kv, T->layer, T->dst, h, j, row);
            }
        }
    }
}

st_status st_kv_grouped_update(st_kv_grouped *g, const st_kv_cache *kv, uint32_t layer,
                               uint32_t group, uint32_t n_upto, const float *inv_freq,
                               uint32_t n_freq, st_threadpool *pool, st_diag *diag)
{
    uint32_t nth = st_threadpool_size(pool);
    size_t per = (size_t)kv->head_dim + 2 * ((size_t)kv->head_dim / 2 + 1);
    if (!g->k[layer]) {
        size_t bytes = (st_kv_layer_bytes(kv, layer) / 2 + 63) & ~(size_t)63;
        if (!(g->k[layer] = aligned_alloc(64, bytes)))
            return st_diag_set(diag, ST_E_NOMEM, "", 0, 0,
                               "grouped keys: out of memory for layer %u (%u slots)", layer,
                               kv->layer_cap[layer]);
        g->n_valid[layer] = 0;
    }
    if (g->scratch_threads < nth) {
        free(g->scratch);
        g->scratch_threads = 0;
        if (!(g->scratch = malloc(nth * per * sizeof(float))))
            return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "grouped keys: out of memory");
        g->scratch_threads = nth;
    }
    uint32_t valid = g->n_valid[layer];
    if (g->epoch[layer] != kv->epoch || g->group[layer] != group)
        valid = 0;
    if (valid > kv->n_slots)
        valid = kv->n_slots; /* past the committed slots: made again */
    g->epoch[layer] = kv->epoch;
    g->group[layer] = group;
    if (valid < n_upto) {
        grouped_task T = { .kv = kv, .dst = g->k[layer], .layer = layer, .group = group,
                           .begin = valid, .end = n_upto, .inv_freq = inv_freq,
                           .n_freq = n_freq, .scratch = g->scratch, .scratch_per = per };
        atomic_init(&T.next, 0);
        if (n_upto - valid <= GROUPED_CHUNK)
            grouped_task_fn(&T, 0, 1);
        else
            st_threadpool_run(pool, grouped_task_fn, &T);
        valid = n_upto;
    }
    g->n_valid[layer] = valid;
    return ST_OK;
}

st_kv_src st_kv_grouped_keys(const st_kv_grouped *g, const st_kv_cache *kv, uint32_t layer)
{
    return st_kv_key_src(kv, layer, g->k[layer]);
}
