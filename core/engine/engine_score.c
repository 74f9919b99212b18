/*
 * core/engine_score.c - negative log-likelihood of every token of a
 * sequence under the strategy, the heart of `stretch eval ppl`. Tokens are
 * fed in blocks through the same forward step as generation, so a bounded
 * attention strategy scores sequences longer than its cache.
 */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>

st_status st_engine_score(st_engine *e, const int32_t *tokens, size_t n, size_t chunk,
                          float *nll, st_progress_fn progress, void *user, st_error *err)
{
    uint32_t nv = e->shape.n_vocab;
    for (size_t i = 0; i < n; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= nv)
            return st_error_set(err, ST_E_INVALID, "token %zu is %d, outside the vocabulary",
                                i, tokens[i]);
    if (chunk == 0 || chunk > e->block)
        chunk = e->block;
    float *logits = malloc(sizeof(float) * nv * chunk);
    if (!logits)
        return st_error_set(err, ST_E_NOMEM, "out of memory for %zu x %u logits", chunk, nv);
    st_kv_cache_reset(e->kv);
    if (e->attn->reset)
        e->attn->reset(e->attention.in->inst);
    e->have_prev_logits = false;
    if (n)
        nll[0] = 0.0f;
    st_status st = ST_OK;
    bool carry_valid = false;
    float *carry = malloc(sizeof(float) * nv);
    if (!carry) {
        free(logits);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    for (size_t done = 0; done < n;) {
        if (st_engine_take_cancel(e)) {
            st = st_error_set(err, ST_E_CANCELLED, "cancelled");
            break;
        }
        size_t k = n - done < chunk ? n - done : chunk;
        st = st_engine_forward(e, tokens + done, k, (int32_t)done, logits, true, err);
        if (st != ST_OK)
            break;
        /* logits row t predicts token done+t+1; the first token of this
         * block was predicted by the previous block's last row. */
        if (done > 0 && carry_valid)
            nll[done] = (float)st_engine_nll(carry, nv, tokens[done]);
        for (size_t t = 0; t + 1 < k; t++)
            nll[done + t + 1] = (float)st_engine_nll(logits + t * nv, nv, tokens[done + t + 1]);
        for (uint32_t i = 0; i < nv; i++)
            carry[i] = logits[(k - 1) * nv + i];
        carry_valid = true;
        done += k;
        if (progress && progress(user, done, n) != 0) {
            st = st_error_set(err, ST_E_CANCELLED, "cancelled");
            break;
        }
    }
    free(carry);
    free(logits);
    return st;
}
