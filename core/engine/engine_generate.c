/*
 * core/engine_generate.c - one request: reset the per-sequence state,
 * prefill the prompt in blocks, then sample, stream and feed back one token
 * at a time until the budget, an end-of-generation token or a cancel.
 */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi_sizes.h"
#include "logprobs.h"
#include "sampler_override.h"
#include "utf8_stream.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A new request's samplers and attention plugin; the cache is the
 * caller's to empty or cut. */
static void begin_request(st_engine *e, uint64_t seed)
{
    st_sampler_chain_reset(&e->chain, seed);
    if (e->attn->reset)
        e->attn->reset(e->attention.in->inst);
    e->have_prev_logits = false;
    e->reuse_slots = 0;
}

/* Forget everything of the previous request. */
void st_engine_reset(st_engine *e, uint64_t seed)
{
    st_kv_cache_reset(e->kv);
    begin_request(e, seed);
}

uint32_t st_engine_offered_slots(const st_engine *e)
{
    if (!e->prefix_ok || e->kv->epoch != e->reuse_epoch)
        return 0;
    return e->reuse_slots < e->kv->n_slots ? e->reuse_slots : e->kv->n_slots;
}

uint32_t st_engine_cached_prefix(const st_engine *e, const int32_t *prompt, size_t n)
{
    size_t have = n < 2 ? 0 : st_engine_offered_slots(e);
    size_t L = 0;
    while (L < have && L + 1 < n && e->kv->tokens[L] == prompt[L] && e->kv->pos[L] == (int32_t)L)
        L++;
    /* The rest is prefilled from L, cut where a whole prefill cuts: the
     * first piece, [L, the end of L's block), must be that whole block or
     * hold ST_FORWARD_TILED_MIN_ROWS rows or more, so that it takes the
     * path the whole block takes and every logit is the fresh request's,
     * bit for bit (st_prefill_piece's rule, from the other side). */
    const size_t min_rows = ST_FORWARD_TILED_MIN_ROWS;
    size_t start = L - L % e->block;
    size_t end = n - start < e->block ? n : start + e->block;
    if (L > start && end - L < min_rows)
        L = end - start >= min_rows ? end - min_rows : start;
    return (uint32_t)L;
}

uint32_t st_engine_begin(st_engine *e, const int32_t *prompt, size_t n, uint64_t seed,
                         bool reuse)
{
    uint32_t keep = reuse ? st_engine_cached_prefix(e, prompt, n) : 0;
    if (keep == 0 || !st_kv_cache_truncate(e->kv, keep)) {
        st_kv_cache_reset(e->kv);
        keep = 0;
    }
    begin_request(e, seed);
    if (keep)
        st_engine_prefilled(e, keep); /* still prompt slots: offered to other sequences */
    return keep;
}

void st_engine_begin_continued(st_engine *e, uint64_t seed)
{
    st_sampler_chain_reset(&e->chain, seed);
}

void st_engine_prefilled(st_engine *e, size_t n)
{
    /* A last block of fewer than ST_FORWARD_TILED_MIN_ROWS rows took the
     * gather path; a longer prompt computes those rows in a larger block
     * on the tiled path, so they are not offered to it. */
    size_t tail = n % e->block;
    e->reuse_slots = (uint32_t)(tail && tail < ST_FORWARD_TILED_MIN_ROWS ? n - tail : n);
    e->reuse_epoch = e->kv->epoch;
}

size_t st_prefill_piece(size_t done, size_t n, size_t block, size_t cap)
{
    size_t start = done - done % block;
    size_t end = n - start < block ? n : start + block;
    size_t left = end - done;
    size_t piece = left < cap ? left : cap;
    if (left > piece && left - piece < ST_FORWARD_TILED_MIN_ROWS)
        piece = left - ST_FORWARD_TILED_MIN_ROWS;
    return piece;
}

/* Prefill `n` tokens starting at position pos0, in blocks; the last
 * block's last logits land in e->logits. */
st_status st_engine_prefill(st_engine *e, const int32_t *tokens, size_t n, size_t from,
                            st_logprobs_fn on_prompt, uint32_t n_top, void *user,
                            st_error *err)
{
    uint32_t nv = e->shape.n_vocab;
    float *rows = NULL;
    size_t cap = e->block;
    if (on_prompt) {
        cap = e->block < ST_PROMPT_LOGPROBS_BLOCK ? e->block : ST_PROMPT_LOGPROBS_BLOCK;
        if (!(rows = malloc(sizeof(float) * nv * cap)))
            return st_error_set(err, ST_E_NOMEM, "out of memory for %zu x %u logits", cap, nv);
    }
    st_status st = ST_OK;
    for (size_t done = from; done < n && st == ST_OK;) {
        if (st_engine_take_cancel(e)) {
            st = st_error_set(err, ST_E_CANCELLED, "cancelled");
            break;
        }
        size_t k = st_prefill_piece(done, n, e->block, cap);
        st = st_engine_forward(e, tokens + done, k, (int32_t)done, rows ? rows : e->logits,
                               rows != NULL, err);
        if (st == ST_OK && rows) {
            st_prompt_logprobs_report(rows, k, tokens, n, done, nv, n_top, e->pool, on_prompt,
                                      user);
            memcpy(e->logits, rows + (k - 1) * nv, sizeof(float) * nv);
        }
        done += k;
    }
    free(rows);
    if (st == ST_OK)
        st_engine_prefilled(e, n);
    return st;
}

static st_status generate(st_engine *e, const int32_t *prompt, size_t n_prompt,
                          const st_generate_params *params, st_token_fn on_token, void *user,
                          st_generate_stats *stats, st_error *err);

/* The caller's structs may be older (shorter) than this library's: read and
 * write only the bytes its struct_size says it has (stretch.h); the rest of
 * the host's struct is zero. */
static st_status read_params(const st_generate_params *caller, st_generate_params *out,
                             st_error *err)
{
    if (caller && !st_sized_read(out, sizeof *out, caller, caller->struct_size,
                                 ST_GENERATE_PARAMS_SIZE_1_0))
        return st_error_set(err, ST_E_ABI,
                            "st_generate_params.struct_size is %u, expected at least %zu "
                            "(set it to sizeof(st_generate_params))",
                            caller->struct_size, (size_t)ST_GENERATE_PARAMS_SIZE_1_0);
    return ST_OK;
}

st_status st_engine_check_request(st_engine *e, const st_generate_params *caller_params,
                                  st_error *err)
{
    st_generate_params params;
    st_status st = read_params(caller_params, &params, err);
    if (st != ST_OK)
        return st;
    /* The request's chain is made as generate makes it, and put away:
     * close puts the engine's own chain back. */
    st_request_samplers rs;
    st = st_request_samplers_open(e, caller_params ? &params : NULL, &rs, err);
    if (st == ST_OK)
        st_request_samplers_close(&rs);
    return st;
}

st_status st_engine_generate(st_engine *e, const int32_t *prompt, size_t n_prompt,
                             const st_generate_params *caller_params, st_token_fn on_token,
                             void *user, st_generate_stats *caller_stats, st_error *err)
{
    st_generate_params params;
    st_status st = read_params(caller_params, &params, err);
    if (st != ST_OK)
        return st;
    st_generate_stats stats;
    memset(&stats, 0, sizeof stats);
    stats.struct_size = sizeof stats;
    /* A request that overrides sampler parameters samples with its own
     * chain; the engine's is back in place when it returns. */
    st_request_samplers rs;
    st = st_request_samplers_open(e, caller_params ? &params : NULL, &rs, err);
    if (st != ST_OK)
        return st;
    st = generate(e, prompt, n_prompt, caller_params ? &params : NULL, on_token, user, &stats,
                  err);
    st_request_samplers_close(&rs);
    if (caller_stats)
        st_sized_write(caller_stats, &stats, sizeof stats, ST_GENERATE_STATS_SIZE_1_0);
    return st;
}

static st_status generate(st_engine *e, const int32_t *prompt, size_t n_prompt,
                          const st_generate_params *params, st_token_fn on_token, void *user,
                          st_generate_stats *stats, st_error *err)
{
    st_status st = st_engine_check_prompt(e, prompt, n_prompt, err);
    if (st != ST_OK)
        return st;

    /* The prompt's own log-probabilities need every position's logits,
     * so such a request prefills it all. */
    bool reuse = params && !params->fresh_cache && !params->on_prompt_logprobs;
    uint32_t cached = st_engine_begin(e, prompt, n_prompt, params ? params->seed : 0, reuse);
    stats->n_cached = cached;
    for (size_t i = 0; i < n_prompt; i++)
        if ((st = st_sampler_chain_accept(&e->chain, prompt[i], true, err)) != ST_OK)
            return st;

    double t0 = now_s();
    if ((st = st_engine_prefill(e, prompt, n_prompt, cached,
                                params ? params->on_prompt_logprobs : NULL,
                                params ? params->n_top_logprobs : 0, user, err)) != ST_OK) {
        stats->cancelled = st == ST_E_CANCELLED;
        return st;
    }
    stats->n_prompt = (uint32_t)n_prompt;
    stats->prefill_s = now_s() - t0;
    if (params && params->first_logits)
        memcpy(params->first_logits, e->logits, sizeof(float) * e->shape.n_vocab);

    uint32_t max_tokens = params ? params->max_tokens : 0;
    bool ignore_eos = params && params->ignore_eos;
    st_utf8_stream utf8;
    st_utf8_stream_init(&utf8);
    char text[3 * (ST_PIECE_MAX_BYTES + 4)];
    int32_t pos = (int32_t)n_prompt;
    double t1 = now_s();
    st = ST_OK;
    while (stats->n_generated < max_tokens) {
        if (st_engine_take_cancel(e)) {
            stats->cancelled = true;
            st = st_error_set(err, ST_E_CANCELLED, "cancelled");
            break;
        }
        int32_t token;
        if ((st = st_sampler_chain_sample(&e->chain, e->logits, &token, err)) != ST_OK ||
            (st = st_sampler_chain_accept(&e->chain, token, false, err)) != ST_OK)
            break;
        stats->n_generated++;
        bool eog = st_engine_is_eog(e, token);
        if (eog && !ignore_eos) {
            stats->stopped_by_eos = true;
            if (on_token)
                on_token(user, token, "", 0);
            break;
        }
        if (params && params->on_logprobs)
            st_logprobs_report(e->logits, e->shape.n_vocab, token, params->n_top_logprobs,
                               params->on_logprobs, user);
        const char *piece = "";
        size_t piece_len = 0;
        if ((st = st_engine_piece(e, token, &piece, &piece_len, err)) != ST_OK)
            break;
        size_t n_text = 0;
        if (!(e->tok->is_special && e->tok->is_special(e->tokenizer.in->inst, token)))
            n_text = st_utf8_stream_feed(&utf8, piece, piece_len, text);
        if (on_token && on_token(user, token, text, n_text) != 0)
            break;
        if (stats->n_generated >= max_tokens)
            break;
        /* A full context ends generation like EOS does: what was generated
         * is the caller's, and a dense cache has no room to continue. */
        if (st_kv_cache_room(e->kv) < 1) {
            stats->stopped_by_context = true;
            break;
        }
        if ((st = st_engine_forward(e, &token, 1, pos, e->logits, false, err)) != ST_OK)
            break;
        pos++;
    }
    size_t n_tail = st_utf8_stream_flush(&utf8, text);
    if (n_tail && on_token)
        on_token(user, -1, text, n_tail);
    stats->decode_s = now_s() - t1;
    return st;
}
