/*
 * core/engine/engine_model_score.c - the host's model_score service: a
 * plugin hands tokens and asks for log-probs, per-token surprisal or one
 * layer's attention weights. It runs the model as trained (its own RoPE,
 * dense causal attention) in a scratch KV cache and forward context of its
 * own, so a plugin may score from create, retain or a reader's select while
 * the engine's sequence stays untouched in the main cache.
 *
 * The scratch cache is made on the first request, grown when a request is
 * longer than any before (never past the engine's context), and kept until
 * the engine closes: its size is bounded by the longest request, not by the
 * input the engine reads.
 */
#include "engine_internal.h"

#include "abi_sizes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Tokens per forward call where logits are wanted: rows of logits held at
 * once (n_vocab floats each), so a long request does not hold a
 * [n][n_vocab] block. */
#define SCORE_BLOCK 64u
/* Tokens per forward call otherwise (rows before score_from, and weights
 * without logits): the engine's prefill block. */
#define PREFILL_BLOCK 512u

void st_engine_model_score_free(st_engine *e)
{
    st_forward_ctx_free(e->score_fwd);
    st_kv_cache_free(e->score_kv);
    e->score_fwd = NULL;
    e->score_kv = NULL;
}

/* A scratch cache of at least n slots and a forward context recording
 * `layer`'s weights (INT32_MIN = none), reusing what the last request made
 * when it fits. */
static st_status scratch_ready(st_engine *e, uint32_t n, int32_t layer, st_error *err)
{
    bool fits = e->score_kv && e->score_kv->capacity >= n;
    if (fits && e->score_fwd && e->score_weights_layer == layer && e->score_pool == e->pool)
        return ST_OK;
    st_diag d;
    st_diag_clear(&d);
    if (!fits) {
        st_engine_model_score_free(e);
        /* Grow in steps so a plugin whose requests creep up by a few
         * tokens does not rebuild the cache each time. */
        uint32_t cap = n < 256 ? 256 : n + n / 4;
        if (cap > e->n_ctx)
            cap = e->n_ctx;
        const st_model_hparams *hp = &e->model->hp;
        st_kv_type type = e->kv ? e->kv->type : (st_kv_type)e->strategy->kv_type;
        if (st_kv_cache_create(hp->n_layers, hp->n_kv_heads, hp->head_dim, cap, type,
                               &e->score_kv, &d) != ST_OK)
            return st_error_from_diag(err, &d);
    }
    st_forward_ctx_free(e->score_fwd);
    e->score_fwd = NULL;
    st_forward_config cfg = {
        .model = e->model,
        .kv = e->score_kv,
        .pool = e->pool,
        .pos_table = e->model->pos_embd,
        .pos_rows = e->model->n_pos,
        .want_weights = layer != INT32_MIN,
        .weights_layer = layer == INT32_MIN ? -1 : layer,
        .numerics = e->numerics,
    };
    if (st_forward_ctx_create(&cfg, &e->score_fwd, &d) != ST_OK)
        return st_error_from_diag(err, &d);
    e->score_weights_layer = layer;
    e->score_pool = e->pool;
    return ST_OK;
}

/* log p(token) under one row of logits. */
static float logprob_of(const float *logits, uint32_t n_vocab, int32_t token)
{
    return (float)-st_engine_nll(logits, n_vocab, token);
}

static st_status check_request(st_engine *e, const st_score_request *req, size_t from,
                               st_error *err)
{
    if (req->struct_size < ST_SCORE_REQUEST_SIZE_1_0)
        return st_error_set(err, ST_E_ABI,
                            "model_score: st_score_request.struct_size is %u, expected at "
                            "least %zu (set it to sizeof(st_score_request))",
                            req->struct_size, (size_t)ST_SCORE_REQUEST_SIZE_1_0);
    if (!req->tokens || req->n_tokens == 0)
        return st_error_set(err, ST_E_INVALID, "model_score: no tokens to score");
    if (req->n_tokens > e->n_ctx)
        return st_error_set(err, ST_E_RANGE,
                            "model_score: %zu tokens are more than the engine's context of "
                            "%u; score shorter pieces or raise `context:`",
                            req->n_tokens, e->n_ctx);
    if (e->model->pos_embd && req->n_tokens > e->model->n_pos)
        return st_error_set(err, ST_E_RANGE,
                            "model_score: %zu tokens are more than the model's %u learned "
                            "positions", req->n_tokens, e->model->n_pos);
    for (size_t i = 0; i < req->n_tokens; i++)
        if (req->tokens[i] < 0 || (uint32_t)req->tokens[i] >= e->shape.n_vocab)
            return st_error_set(err, ST_E_INVALID,
                                "model_score: token %zu is %d, outside the vocabulary of %u",
                                i, req->tokens[i], e->shape.n_vocab);
    if (from >= req->n_tokens)
        return st_error_set(err, ST_E_RANGE,
                            "model_score: score_from is %zu, expected below n_tokens (%zu)",
                            from, req->n_tokens);
    if (req->attn_weights &&
        (req->attn_layer < -1 || req->attn_layer >= (int32_t)e->shape.n_layers))
        return st_error_set(err, ST_E_INVALID,
                            "model_score: attn_layer %d, expected -1 (the last) or 0..%u",
                            req->attn_layer, e->shape.n_layers - 1);
    return ST_OK;
}

st_status st_engine_model_score(void *engine, st_score_request *req, st_error *err)
{
    st_engine *e = engine;
    /* score_from is read only from a request that has it (ABI 1.4). */
    size_t from = req->struct_size >= ST_SCORE_REQUEST_SIZE_1_4 ? req->score_from : 0;
    st_status st = check_request(e, req, from, err);
    if (st != ST_OK)
        return st;
    size_t n = req->n_tokens;
    uint32_t nv = e->shape.n_vocab;
    int32_t layer = INT32_MIN;
    if (req->attn_weights)
        layer = req->attn_layer < 0 ? (int32_t)e->shape.n_layers - 1 : req->attn_layer;
    if ((st = scratch_ready(e, (uint32_t)n, layer, err)) != ST_OK)
        return st;
    bool want_logits = req->logprob || req->entropy;
    /* Rows [0, lead) are a plain prefill: the row before score_from
     * predicts its token, so it is scored when log-probs are wanted. */
    size_t lead = want_logits && from > 0 ? from - 1 : from;
    size_t block = want_logits ? SCORE_BLOCK : PREFILL_BLOCK;
    float *logits = want_logits ? malloc(sizeof(float) * nv * SCORE_BLOCK) : NULL;
    float *carry = want_logits ? malloc(sizeof(float) * nv) : NULL;
    int32_t *pos = malloc(sizeof(int32_t) * PREFILL_BLOCK);
    if ((want_logits && (!logits || !carry)) || !pos) {
        free(logits);
        free(carry);
        free(pos);
        return st_error_set(err, ST_E_NOMEM, "model_score: out of memory for %u logits", nv);
    }
    if (req->attn_weights)
        memset(req->attn_weights, 0, sizeof(float) * n * n);
    for (size_t t = 0; t < from; t++) {
        if (req->logprob)
            req->logprob[t] = 0.0f;
        if (req->entropy)
            req->entropy[t] = 0.0f;
    }
    st_kv_cache_reset(e->score_kv);
    st_forward_record_weights(e->score_fwd, false);
    for (size_t done = 0; done < lead && st == ST_OK;) {
        size_t k = lead - done < PREFILL_BLOCK ? lead - done : PREFILL_BLOCK;
        for (size_t i = 0; i < k; i++)
            pos[i] = (int32_t)(done + i);
        st_diag d;
        st_diag_clear(&d);
        if (st_forward(e->score_fwd, req->tokens + done, pos, k, NULL, 0, &d) != ST_OK)
            st = st_error_from_diag(err, &d);
        done += k;
    }
    st_forward_record_weights(e->score_fwd, true);
    for (size_t done = lead; done < n && st == ST_OK;) {
        size_t k = n - done < block ? n - done : block;
        for (size_t i = 0; i < k; i++)
            pos[i] = (int32_t)(done + i);
        st_diag d;
        st_diag_clear(&d);
        if (st_forward(e->score_fwd, req->tokens + done, pos, k, logits,
                       want_logits ? ST_FORWARD_ALL_LOGITS : 0, &d) != ST_OK) {
            st = st_error_from_diag(err, &d);
            break;
        }
        if (want_logits) {
            /* Row t of this block predicts token done+t+1; the block's first
             * token was predicted by the previous block's last row. */
            for (size_t t = 0; t < k; t++) {
                size_t at = done + t;
                if (at < from)
                    continue;
                const float *pred = t ? logits + (t - 1) * nv : (at ? carry : NULL);
                float lp = pred ? logprob_of(pred, nv, req->tokens[at]) : 0.0f;
                if (!isfinite(lp)) {
                    st = st_error_set(err, ST_E_RANGE,
                                      "model_score: the model's log-prob of token %zu is not "
                                      "finite", at);
                    break;
                }
                if (req->logprob)
                    req->logprob[at] = lp;
                if (req->entropy)
                    req->entropy[at] = -lp;
            }
            memcpy(carry, logits + (k - 1) * nv, sizeof(float) * nv);
        }
        if (req->attn_weights) {
            uint32_t nq = 0, ns = 0;
            const float *w = st_forward_weights(e->score_fwd, &nq, &ns);
            /* Dense causal attention over a cache that keeps every slot:
             * slot j is token j, so row done+q takes columns 0..ns. Rows
             * before score_from stay 0. */
            for (uint32_t q = 0; w && q < nq; q++)
                if (done + q >= from)
                    memcpy(req->attn_weights + (done + q) * n, w + (size_t)q * ns,
                           sizeof(float) * ns);
        }
        done += k;
    }
    if (st == ST_OK && req->entropy && from == 0) {
        /* The first token has no prefix to be predicted from: it gets the
         * largest surprisal of the rest (services.h), as SirLLM does. */
        float max = 0.0f;
        for (size_t t = 1; t < n; t++)
            max = req->entropy[t] > max ? req->entropy[t] : max;
        req->entropy[0] = max;
    }
    st_kv_cache_reset(e->score_kv);
    free(logits);
    free(carry);
    free(pos);
    return st;
}
