/*
 * core/engine_kv.c - what an attention plugin asks through ABI 1.4's ops:
 * configure_kv (statistics, per-(layer, KV head) slot sets, per-layer
 * budgets), the statistics handed over after each step, and retention per
 * (layer, KV head).
 */
#include "engine_internal.h"
#include "plugin_call.h"

#include <stdlib.h>
#include <string.h>

static const char *attn_name(const st_engine *e)
{
    return e->attention.lib->entry->name;
}

st_status st_engine_configure_kv(st_engine *e, st_error *err)
{
    /* The plugin's ops up to its struct_size; a 1.0-1.3 plugin's 1.4 ops
     * read as NULL. */
    uint32_t size;
    memcpy(&size, e->attn, sizeof size);
    memset(&e->attn_x, 0, sizeof e->attn_x);
    memcpy(&e->attn_x, e->attn, size < sizeof e->attn_x ? size : sizeof e->attn_x);
    uint32_t L = e->shape.n_layers;
    free(e->stats_layers);
    free(e->layer_budget);
    e->stats_layers = malloc(L ? L : 1);
    e->layer_budget = calloc(L ? L : 1, sizeof *e->layer_budget);
    if (!e->stats_layers || !e->layer_budget)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    memset(e->stats_layers, 1, L);
    e->kvcfg = (st_attn_kv_config){ .struct_size = sizeof e->kvcfg,
                                    .stats_layers = e->stats_layers,
                                    .layer_budget = e->layer_budget };
    const st_attention_ops *o = &e->attn_x;
    if (!o->configure_kv) {
        if (o->retain_heads)
            return st_error_set(err, ST_E_PLUGIN, "attention plugin '%s' has retain_heads but "
                                "no configure_kv to ask for per-head slot sets", attn_name(e));
        return ST_OK;
    }
    st_error perr;
    memset(&perr, 0, sizeof perr);
    st_plugin_call prev = st_plugin_call_enter(e->attention.in, "configure_kv");
    st_status st = o->configure_kv(e->attention.in->inst, &e->shape, &e->kvcfg, &perr);
    st_plugin_call_leave(prev);
    if (st != ST_OK)
        return st_error_set(err, st, "attention plugin '%s': configure_kv failed: %s",
                            attn_name(e), perr.message);
    st_attn_kv_config *c = &e->kvcfg;
    if ((unsigned)c->stats > ST_STATS_QUERY_HEADS)
        return st_error_set(err, ST_E_PLUGIN, "attention plugin '%s': configure_kv set stats "
                            "%d, expected ST_STATS_NONE, ST_STATS_KV_HEADS or "
                            "ST_STATS_QUERY_HEADS", attn_name(e), (int)c->stats);
    if (c->per_head_slots > 1)
        return st_error_set(err, ST_E_PLUGIN, "attention plugin '%s': configure_kv set "
                            "per_head_slots %u, expected 0 or 1", attn_name(e),
                            c->per_head_slots);
    if (c->stats_layers != e->stats_layers || c->layer_budget != e->layer_budget)
        return st_error_set(err, ST_E_PLUGIN, "attention plugin '%s': configure_kv replaced "
                            "the host's stats_layers or layer_budget arrays (fill them instead)",
                            attn_name(e));
    if (c->stats && !o->on_attention_stats)
        return st_error_set(err, ST_E_PLUGIN, "attention plugin '%s' asks for attention "
                            "statistics but has no on_attention_stats", attn_name(e));
    if (c->per_head_slots && !o->retain_heads)
        return st_error_set(err, ST_E_PLUGIN, "attention plugin '%s' asks for per-head slot "
                            "sets but has no retain_heads", attn_name(e));
    if (c->per_head_slots && (e->attn_needs & (ST_ATTN_NEEDS_QK | ST_ATTN_NEEDS_WEIGHTS)))
        return st_error_set(err, ST_E_PLUGIN, "attention plugin '%s': per-head slot sets "
                            "cannot be combined with ST_ATTN_NEEDS_QK or ST_ATTN_NEEDS_WEIGHTS "
                            "(use the statistics)", attn_name(e));
    uint32_t budget = e->attn->cache_budget(e->attention.in->inst, e->n_ctx);
    for (uint32_t l = 0; l < L; l++)
        if (budget && c->layer_budget[l] > budget)
            return st_error_set(err, ST_E_PLUGIN, "attention plugin '%s': layer_budget[%u] = "
                                "%u exceeds its cache_budget %u", attn_name(e), l,
                                c->layer_budget[l], budget);
    return ST_OK;
}

st_status st_engine_observe_stats(st_engine *e, int32_t pos0, size_t n, st_error *err)
{
    const st_attn_kv_config *c = &e->kvcfg;
    if (!c->stats)
        return ST_OK;
    uint32_t L = e->shape.n_layers, H = e->shape.n_heads, KVH = e->shape.n_kv_heads;
    uint32_t gs = H / KVH, rows = c->stats == ST_STATS_KV_HEADS ? KVH : H;
    uint32_t cap = e->kv->capacity, nq = 0;
    st_kv_view *views = calloc((size_t)L * KVH, sizeof *views);
    const float **sum = calloc((size_t)L * rows, sizeof *sum);
    float *kvsum = c->stats == ST_STATS_KV_HEADS ? malloc(sizeof(float) * L * KVH * cap) : NULL;
    int32_t *qpos = malloc(sizeof(int32_t) * (n ? n : 1));
    st_status st = ST_OK;
    if (!views || !sum || !qpos || (c->stats == ST_STATS_KV_HEADS && !kvsum)) {
        st = st_error_set(err, ST_E_NOMEM, "out of memory for the attention statistics");
        goto done;
    }
    /* The step's slots: the cache as it is now, before retention. */
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t g = 0; g < KVH; g++) {
            st_kv_view *v = &views[(size_t)l * KVH + g];
            if (e->kv->hn)
                st_kv_cache_head_view(e->kv, l, g, 0, v);
            else
                st_kv_cache_view(e->kv, e->kv->n_slots, v);
        }
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t h = 0; h < H; h++) {
            const float *row = st_forward_stats(e->fwd, l, h, &nq);
            if (!row)
                break;
            if (c->stats == ST_STATS_QUERY_HEADS) {
                sum[(size_t)l * H + h] = row;
                continue;
            }
            uint32_t g = h / gs, ns = views[(size_t)l * KVH + g].n_slots;
            float *dst = kvsum + ((size_t)l * KVH + g) * cap;
            if (h % gs == 0)
                memcpy(dst, row, sizeof(float) * ns);
            else
                for (uint32_t j = 0; j < ns; j++)
                    dst[j] += row[j];
            sum[(size_t)l * KVH + g] = dst;
        }
    if (nq > n)
        nq = (uint32_t)n;
    for (uint32_t i = 0; i < nq; i++)
        qpos[i] = pos0 + (int32_t)(n - nq + i);
    st_attn_stats stats = { .struct_size = sizeof stats, .n_layers = L, .n_kv_heads = KVH,
                            .n_rows = rows, .n_q = nq, .q_pos = qpos, .kv = views, .sum = sum };
    st_error perr;
    memset(&perr, 0, sizeof perr);
    st_plugin_call prev = st_plugin_call_enter(e->attention.in, "on_attention_stats");
    st = e->attn_x.on_attention_stats(e->attention.in->inst, &stats, &perr);
    st_plugin_call_leave(prev);
    if (st != ST_OK)
        st = st_error_set(err, st, "attention plugin '%s': on_attention_stats failed: %s",
                          attn_name(e), perr.message[0] ? perr.message : "no reason given");
done:
    free(views);
    free(sum);
    free(kvsum);
    free(qpos);
    return st;
}

st_status st_engine_retain_heads(st_engine *e, uint32_t n_new, st_error *err)
{
    st_kv_cache *kv = e->kv;
    uint32_t L = kv->n_layers, KVH = kv->n_kv_heads, cap = kv->capacity;
    size_t nh = (size_t)L * KVH;
    st_kv_view *views = calloc(nh, sizeof *views);
    uint8_t **keep = calloc(nh, sizeof *keep);
    uint8_t *masks = malloc(nh * cap);
    st_status st = ST_OK;
    if (!views || !keep || !masks) {
        st = st_error_set(err, ST_E_NOMEM, "out of memory");
        goto done;
    }
    memset(masks, 1, nh * cap);
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t g = 0; g < KVH; g++) {
            size_t i = st_kv_head_index(kv, l, g);
            st_kv_cache_head_view(kv, l, g, 0, &views[i]);
            keep[i] = masks + i * cap;
        }
    st_kv_heads heads = { .struct_size = sizeof heads, .n_layers = L, .n_kv_heads = KVH,
                          .n_new = n_new, .kv = views, .keep = keep };
    st_error perr;
    memset(&perr, 0, sizeof perr);
    st_plugin_call prev = st_plugin_call_enter(e->attention.in, "retain_heads");
    st = e->attn_x.retain_heads(e->attention.in->inst, &heads, &perr);
    st_plugin_call_leave(prev);
    if (st != ST_OK) {
        st = st_error_set(err, st, "attention plugin '%s': retain_heads failed: %s",
                          attn_name(e), perr.message[0] ? perr.message : "no reason given");
        goto done;
    }
    uint32_t budget = e->attn->cache_budget(e->attention.in->inst, e->n_ctx);
    for (uint32_t l = 0; l < L; l++)
        for (uint32_t g = 0; g < KVH; g++) {
            size_t i = st_kv_head_index(kv, l, g);
            st_kv_cache_compact_head(kv, l, g, keep[i]);
            uint32_t b = e->layer_budget[l] ? e->layer_budget[l] : budget;
            if (b && kv->hn[i] > b) {
                st = st_error_set(err, ST_E_PLUGIN, "attention plugin '%s': retain_heads left "
                                  "%u slots in layer %u, KV head %u, over its budget of %u",
                                  attn_name(e), kv->hn[i], l, g, b);
                break;
            }
        }
    st_kv_cache_heads_settle(kv);
done:
    free(views);
    free(keep);
    free(masks);
    return st;
}
