/*
 * core/engine_forward.c - one forward step as the strategy shapes it: the
 * positional plugin may update its description for the new length (dynamic
 * NTK), the attention plugin plans each layer, then it sees the new tokens'
 * entropy (when it asked) and decides what stays in the cache.
 */
#include "engine_internal.h"
#include "plugin_call.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static st_status plan_bridge(void *user, const st_attn_query *q,
                             const st_attn_plan_builder *b, st_error *err)
{
    st_engine *e = user;
    st_plugin_call prev = st_plugin_call_enter(e->attention.in, "plan");
    st_status st = e->attn->plan(e->attention.in->inst, q, b, err);
    st_plugin_call_leave(prev);
    return st;
}

st_status st_engine_forward_init(st_engine *e, st_diag *diag)
{
    st_forward_config cfg = {
        .model = e->model,
        .kv = e->kv,
        .pool = e->pool,
        .backend = e->backend,
        .posenc = &e->desc,
        .posenc_inst = e->posenc.in->inst,
        .map_positions = e->pe->map_positions,
        .bias = e->pe->bias,
        .pos_table = e->pos_table,
        .pos_rows = e->pos_rows,
        .plan = plan_bridge,
        .plan_user = e,
        .weights_layer = (e->attn_needs & ST_ATTN_NEEDS_WEIGHTS) ? e->attn_weights_layer
                                                                 : INT32_MIN,
        .want_qk = (e->attn_needs & ST_ATTN_NEEDS_QK) != 0,
        .want_weights = (e->attn_needs & ST_ATTN_NEEDS_WEIGHTS) != 0,
        .numerics = e->numerics,
        .want_stats = e->kvcfg.stats != ST_STATS_NONE,
        .stats_window = e->kvcfg.stats_window,
        .stats_layers = e->stats_layers,
    };
    if ((e->desc.flags & ST_POSENC_MAP) && !cfg.map_positions)
        return st_diag_set(diag, ST_E_PLUGIN, e->posenc.lib->manifest->library_path, 0, 0,
                           "positional-encoding plugin '%s' sets ST_POSENC_MAP but has no "
                           "map_positions", e->posenc.lib->entry->name);
    if ((e->desc.flags & ST_POSENC_BIAS) && !cfg.bias)
        return st_diag_set(diag, ST_E_PLUGIN, e->posenc.lib->manifest->library_path, 0, 0,
                           "positional-encoding plugin '%s' sets ST_POSENC_BIAS but has no "
                           "bias", e->posenc.lib->entry->name);
    if (e->attn_needs & ST_ATTN_NEEDS_ENTROPY) {
        e->block_logits = malloc(sizeof(float) * e->shape.n_vocab * e->block);
        e->prev_logits = malloc(sizeof(float) * e->shape.n_vocab);
        if (!e->block_logits || !e->prev_logits)
            return st_diag_set(diag, ST_E_NOMEM, NULL, 0, 0, "out of memory for logits");
    }
    return st_forward_ctx_create(&cfg, &e->fwd, diag);
}

void st_engine_forward_free(st_engine *e)
{
    st_forward_ctx_free(e->fwd);
    e->fwd = NULL;
    free(e->block_logits);
    free(e->prev_logits);
}

/* -log softmax(logits)[token], for the scores and the entropy observers
 * alike. */
double st_engine_nll(const float *logits, uint32_t n_vocab, int32_t token)
{
    float max = logits[0];
    for (uint32_t i = 1; i < n_vocab; i++)
        if (logits[i] > max)
            max = logits[i];
    double sum = 0.0;
    for (uint32_t i = 0; i < n_vocab; i++)
        sum += exp((double)(logits[i] - max));
    return log(sum) - (double)(logits[token] - max);
}

/* Hand the attention plugin -log p of each new token given its prefix; a
 * token with no prefix in view (the very first) gets the block's maximum,
 * as SirLLM does. */
static void observe_entropy(st_engine *e, const int32_t *tokens, size_t n,
                            uint32_t first_slot)
{
    uint32_t nv = e->shape.n_vocab;
    float *ent = malloc(sizeof(float) * n);
    uint32_t *slots = malloc(sizeof(uint32_t) * n);
    if (!ent || !slots) {
        free(ent);
        free(slots);
        return;
    }
    float max = 0.0f;
    for (size_t t = 0; t < n; t++) {
        const float *pred = t == 0 ? (e->have_prev_logits ? e->prev_logits : NULL)
                                   : e->block_logits + (t - 1) * nv;
        ent[t] = pred ? (float)st_engine_nll(pred, nv, tokens[t]) : -1.0f;
        if (ent[t] > max)
            max = ent[t];
        slots[t] = first_slot + (uint32_t)t;
    }
    for (size_t t = 0; t < n; t++)
        if (ent[t] < 0.0f)
            ent[t] = max;
    st_plugin_call prev = st_plugin_call_enter(e->attention.in, "on_entropy");
    e->attn->on_entropy(e->attention.in->inst, slots, ent, n);
    st_plugin_call_leave(prev);
    memcpy(e->prev_logits, e->block_logits + (n - 1) * nv, sizeof(float) * nv);
    e->have_prev_logits = true;
    free(ent);
    free(slots);
}

/* A NaN or infinite logit (a bad weight, an overflow) would be sampled as
 * token 0 or scored as NaN: stop instead. Rows are the block's tokens
 * from `first` on. */
static st_status check_finite(st_engine *e, const float *logits, size_t rows, int32_t pos0,
                              size_t first, st_error *err)
{
    uint32_t nv = e->shape.n_vocab;
    /* It runs after every decode step, on the caller: one pass without a
     * branch a value, 16 values a step so that it vectorizes, and only a
     * bad row looks for its token. An exponent of all ones (an infinity
     * or a NaN) carries into bit 31 when 1 is added to it. */
    for (size_t r = 0; r < rows; r++) {
        const float *row = logits + r * nv;
        uint32_t bad = 0, k = 0;
        for (; k + 16 <= nv; k += 16) {
            uint32_t bits[16];
            memcpy(bits, row + k, sizeof bits);
            for (uint32_t j = 0; j < 16; j++)
                bad |= (bits[j] & 0x7f800000u) + 0x00800000u;
        }
        for (; k < nv; k++)
            bad |= !isfinite(row[k]) ? 0x80000000u : 0u;
        if (!(bad & 0x80000000u))
            continue;
        for (uint32_t i = 0; i < nv; i++)
            if (!isfinite(logits[r * nv + i]))
                return st_error_set(err, ST_E_RANGE,
                                    "%s: the model's logits after position %d are not "
                                    "finite (token %u: %f): a weight or activation is NaN "
                                    "or infinite", e->model_path,
                                    pos0 + (int32_t)(first + r), i,
                                    (double)logits[r * nv + i]);
    }
    return ST_OK;
}

static st_status apply_retention(st_engine *e, uint32_t n_new, st_error *err)
{
    if (!e->attn->retain)
        return ST_OK;
    st_kv_view view;
    st_kv_cache_view(e->kv, e->kv->n_slots, &view);
    uint8_t *keep = malloc(e->kv->n_slots ? e->kv->n_slots : 1);
    if (!keep)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    memset(keep, 1, e->kv->n_slots);
    st_plugin_call prev = st_plugin_call_enter(e->attention.in, "retain");
    st_status st = e->attn->retain(e->attention.in->inst, &view, n_new, keep, err);
    st_plugin_call_leave(prev);
    if (st == ST_OK)
        st_kv_cache_compact(e->kv, keep);
    free(keep);
    if (st != ST_OK)
        return st_engine_fail_wrap(err, st, "attention plugin '%s': retain failed",
                                   e->attention.lib->entry->name);
    return ST_OK;
}

/* What one engine's part of a step needs between the model's pass and
 * the plugins' look at its result. */
typedef struct fwd_step {
    int32_t *pos;
    float *out;
    uint32_t flags;
    bool entropy;
    uint32_t first_slot;
} fwd_step;

/* Before the pass: room in the cache, the positional plugin's update for
 * the new length, the block's positions, where its logits go. */
static st_status step_prepare(st_engine *e, size_t n, int32_t pos0, float *logits,
                              bool all_logits, fwd_step *fs, st_error *err)
{
    memset(fs, 0, sizeof *fs);
    if (n > st_kv_cache_room(e->kv))
        return st_error_set(err, ST_E_RANGE,
                            "the context is full: %u tokens cached + %zu new > %u; raise "
                            "`context:` in the strategy manifest or use a bounded attention "
                            "strategy (streaming, lm-infinite)",
                            e->kv->n_slots, n, e->kv->n_slots + st_kv_cache_room(e->kv));
    if (e->pe->update) {
        bool changed = false;
        st_plugin_call prev = st_plugin_call_enter(e->posenc.in, "update");
        st_status st = e->pe->update(e->posenc.in->inst, (uint32_t)(pos0 + (int32_t)n),
                                     &e->desc, &changed, err);
        st_plugin_call_leave(prev);
        if (st != ST_OK)
            return st_engine_fail_wrap(err, st, "positional-encoding plugin '%s': update failed",
                                       e->posenc.lib->entry->name);
        st_diag d;
        st_diag_clear(&d);
        if (changed && st_forward_set_posenc(e->fwd, &e->desc, &d) != ST_OK)
            return st_error_from_diag(err, &d);
    }
    fs->pos = malloc(sizeof(int32_t) * n);
    if (!fs->pos)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        fs->pos[i] = pos0 + (int32_t)i;
    fs->entropy = (e->attn_needs & ST_ATTN_NEEDS_ENTROPY) && e->attn->on_entropy;
    fs->first_slot = e->kv->n_slots;
    fs->out = logits;
    fs->flags = all_logits ? ST_FORWARD_ALL_LOGITS : 0;
    if (fs->entropy && !all_logits) {
        fs->out = e->block_logits;
        fs->flags = ST_FORWARD_ALL_LOGITS;
    }
    return ST_OK;
}

/* After the pass: finite logits, the observers, retention. */
static st_status step_finish(st_engine *e, const int32_t *tokens, size_t n, int32_t pos0,
                             float *logits, bool all_logits, fwd_step *fs, st_error *err)
{
    float *out = fs->out;
    uint32_t flags = fs->flags;
    st_status st;
    if ((st = check_finite(e, out, (flags & ST_FORWARD_ALL_LOGITS) ? n : 1, pos0,
                           (flags & ST_FORWARD_ALL_LOGITS) ? 0 : n - 1, err)) != ST_OK)
        return st;
    if (fs->entropy) {
        if (all_logits)
            memcpy(e->block_logits, logits, sizeof(float) * e->shape.n_vocab * n);
        observe_entropy(e, tokens, n, fs->first_slot);
        if (!all_logits && logits)
            memcpy(logits, e->block_logits + (n - 1) * e->shape.n_vocab,
                   sizeof(float) * e->shape.n_vocab);
    }
    if ((e->attn_needs & ST_ATTN_NEEDS_WEIGHTS) && e->attn->on_attention) {
        uint32_t nq = 0, ns = 0;
        const float *w = st_forward_weights(e->fwd, &nq, &ns);
        if (w) {
            st_kv_view view;
            st_kv_cache_view(e->kv, ns, &view);
            int32_t *qp = malloc(sizeof(int32_t) * nq);
            if (qp) {
                for (uint32_t i = 0; i < nq; i++)
                    qp[i] = pos0 + (int32_t)(n - nq + i);
                st_plugin_call prev = st_plugin_call_enter(e->attention.in, "on_attention");
                e->attn->on_attention(e->attention.in->inst,
                                      e->attn_weights_layer < 0 ? e->shape.n_layers - 1
                                                                : (uint32_t)e->attn_weights_layer,
                                      qp, nq, w, &view);
                st_plugin_call_leave(prev);
                free(qp);
            }
        }
    }
    if ((st = st_engine_observe_stats(e, pos0, n, err)) != ST_OK)
        return st;
    if (e->kvcfg.per_head_slots)
        return st_engine_retain_heads(e, (uint32_t)n, err);
    return apply_retention(e, (uint32_t)n, err);
}

st_status st_engine_forward(st_engine *e, const int32_t *tokens, size_t n, int32_t pos0,
                            float *logits, bool all_logits, st_error *err)
{
    if (n == 0)
        return ST_OK;
    fwd_step fs;
    st_status st = step_prepare(e, n, pos0, logits, all_logits, &fs, err);
    if (st != ST_OK)
        return st;
    st_diag d;
    st_diag_clear(&d);
    st = st_forward(e->fwd, tokens, fs.pos, n, fs.out, fs.flags, &d);
    free(fs.pos);
    if (st != ST_OK)
        return st_error_from_diag(err, &d);
    return step_finish(e, tokens, n, pos0, logits, all_logits, &fs, err);
}

st_status st_engine_forward_batch(st_engine *const *es, const int32_t *const *tokens,
                                  const size_t *n, const int32_t *pos0, float *const *rows,
                                  size_t n_es, st_error *err)
{
    fwd_step *fs = calloc(n_es ? n_es : 1, sizeof *fs);
    st_forward_seq *seqs = calloc(n_es ? n_es : 1, sizeof *seqs);
    st_status st = fs && seqs ? ST_OK : st_error_set(err, ST_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n_es && st == ST_OK; i++) {
        bool all = rows && rows[i];
        st = step_prepare(es[i], n[i], pos0[i], all ? rows[i] : es[i]->logits, all, &fs[i],
                          err);
        seqs[i] = (st_forward_seq){ es[i]->fwd, tokens[i], fs[i].pos, n[i], fs[i].out,
                                    fs[i].flags };
    }
    if (st == ST_OK) {
        st_diag d;
        st_diag_clear(&d);
        if ((st = st_forward_batch(seqs, n_es, &d)) != ST_OK)
            st_error_from_diag(err, &d);
    }
    for (size_t i = 0; i < n_es && st == ST_OK; i++) {
        bool all = rows && rows[i];
        st = step_finish(es[i], tokens[i], n[i], pos0[i], all ? rows[i] : es[i]->logits, all,
                         &fs[i], err);
        if (st == ST_OK && all)
            memcpy(es[i]->logits, rows[i] + (n[i] - 1) * es[i]->shape.n_vocab,
                   sizeof(float) * es[i]->shape.n_vocab);
    }
    for (size_t i = 0; fs && i < n_es; i++)
        free(fs[i].pos);
    free(fs);
    free(seqs);
    return st;
}
