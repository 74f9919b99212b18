/*
 * core/engine/engine_sequence.c - several requests on one engine. Each
 * sequence runs on a child engine (its own plugins, cache and forward
 * context over the root's model); st_engine_step gathers one block from
 * every started sequence (a chunk of a waiting prompt, or the token just
 * sampled) and runs them as one batch (st_engine_forward_batch). The
 * per-token logic is st_engine_generate's, cut at the forward call.
 * st_sequence_continue starts a request after everything the sequence
 * has fed, keeping its cache: a conversation that goes on turn by turn
 * without computing its past again, past the context where the attention
 * plugin evicts.
 */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "abi_sizes.h"
#include "logprobs.h"
#include "sampler_override.h"
#include "utf8_stream.h"

struct st_sequence {
    st_engine *root;
    st_engine *e;
    uint32_t slot;                 /* in root->sequences */
    atomic_int cancel;

    /* The running request. */
    bool busy;
    int32_t *prompt;
    size_t n_prompt, n_prefilled;
    bool share;                    /* may take its prompt's prefix from other sequences */
    bool continued;                /* started by st_sequence_continue */
    int32_t base;                  /* the position of the prompt's first token */

    /* What st_sequence_continue goes on from: whether the cache holds
     * everything the sequence fed (false after an error, a forget, a
     * load, or before any request), and the last answer's final token
     * when it was sampled and shown but never fed (-1: none). */
    bool continuable;
    int32_t unfed;
    /* The sequence's past: every token fed since its cache was last
     * emptied, in order (as many as the positions used: pos), and the
     * end-of-generation token that ended the last answer (-1: none). */
    int32_t *past;
    size_t n_past, cap_past;
    bool past_lost;                /* out of memory noting it */
    int32_t ended_by;

    /* Idle work (st_engine_idle_step): the tokens of slots
     * [refill_from, refill_to) that the last request's decode steps wrote,
     * to be prefilled again; [refill_from, refill_done) are. NULL: none. */
    int32_t *refill;
    uint32_t refill_from, refill_done, refill_to;
    uint32_t max_tokens;
    bool ignore_eos;
    float *first_logits;
    st_token_fn on_token;
    st_logprobs_fn on_logprobs;
    st_logprobs_fn on_prompt_logprobs;
    float *prompt_rows;            /* [ST_PROMPT_LOGPROBS_BLOCK][n_vocab] with it */
    uint32_t n_top_logprobs;
    void *user;
    st_request_samplers rs;
    st_utf8_stream utf8;
    int32_t pos;                   /* position of the next token fed */
    int32_t token;                 /* the token this step feeds */
    double t_start, t_decode;

    /* The last request's outcome. */
    st_generate_stats stats;
    st_status status;
    st_error err;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Note tokens fed; false when out of memory (the past is then lost: the
 * sequence has nothing to go on from). */
static bool note_fed(st_sequence *s, const int32_t *tokens, size_t n)
{
    if (n == 0)
        return true;
    if (s->n_past + n > s->cap_past) {
        size_t cap = s->cap_past ? s->cap_past : 256;
        while (cap < s->n_past + n)
            cap *= 2;
        int32_t *grown = realloc(s->past, cap * sizeof *grown);
        if (!grown) {
            s->past_lost = true;
            return false;
        }
        s->past = grown;
        s->cap_past = cap;
    }
    memcpy(s->past + s->n_past, tokens, n * sizeof *tokens);
    s->n_past += n;
    return true;
}

st_status st_sequence_open(st_engine *e, st_sequence **out, st_error *err)
{
    *out = NULL;
    if (e->parent)
        return st_error_set(err, ST_E_INVALID, "sequences are opened on an engine, not on "
                            "another sequence");
    uint32_t slot = 0;
    while (slot < e->parallel && e->sequences[slot])
        slot++;
    if (slot == e->parallel)
        return st_error_set(err, ST_E_RANGE, "%s: all %u sequences are open; raise "
                            "`parallel:` in the strategy manifest", e->strategy->path,
                            e->parallel);
    st_sequence *s = calloc(1, sizeof *s);
    if (!s)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    st_status st = st_engine_open_child(e, &s->e, err);
    if (st != ST_OK) {
        free(s);
        return st;
    }
    s->root = e;
    s->slot = slot;
    e->sequences[slot] = s;
    *out = s;
    return ST_OK;
}

/* The request's own copies: its prompt and, with prompt
 * log-probabilities, the rows of a piece's logits. */
static void free_request_buffers(st_sequence *s)
{
    free(s->prompt);
    free(s->prompt_rows);
    s->prompt = NULL;
    s->prompt_rows = NULL;
}

static void drop_refill(st_sequence *s)
{
    free(s->refill);
    s->refill = NULL;
}

/* A decode step computes its token's keys and values in a block of one
 * row, which rounds differently from the prefill a longer prompt would
 * put it in, so the slots a request's decode steps wrote (and a prompt
 * tail too short for the tiled path) are never offered to the next
 * prompt. Note them, to be prefilled again while the engine is idle:
 * then a conversation's next turn takes the previous answer from the
 * cache as well. */
static void plan_refill(st_sequence *s)
{
    st_engine *e = s->e;
    st_kv_cache *kv = e->kv;
    drop_refill(s);
    if (!e->prefix_ok || kv->epoch != e->reuse_epoch)
        return;
    uint32_t from = e->reuse_slots < kv->n_slots ? e->reuse_slots : kv->n_slots;
    uint32_t to = kv->n_slots;
    if (to - from < ST_FORWARD_TILED_MIN_ROWS)
        return;
    for (uint32_t i = from; i < to; i++)
        if (kv->pos[i] != (int32_t)i)
            return;
    if (!(s->refill = malloc((to - from) * sizeof *s->refill)))
        return; /* only a cache that could have been fuller */
    memcpy(s->refill, kv->tokens + from, (to - from) * sizeof *s->refill);
    s->refill_from = s->refill_done = from;
    s->refill_to = to;
}

/* The request ends: flush held-back text, restore the chain, keep the
 * outcome. */
static void finish(st_sequence *s, st_status st)
{
    char text[12];
    size_t n_tail = st_utf8_stream_flush(&s->utf8, text);
    if (n_tail && s->on_token)
        s->on_token(s->user, -1, text, n_tail);
    if (s->t_decode > 0)
        s->stats.decode_s = now_s() - s->t_decode;
    s->stats.cancelled = st == ST_E_CANCELLED;
    s->status = st;
    if (st == ST_E_CANCELLED)
        st_error_set(&s->err, st, "cancelled");
    st_request_samplers_close(&s->rs);
    free_request_buffers(s);
    s->busy = false;
    /* A cancel stops between steps, with the cache whole; an error may
     * have stopped a pass half way. */
    s->continuable = (st == ST_OK || st == ST_E_CANCELLED) && !s->past_lost;
    if (!s->continuable)
        s->unfed = -1;
    plan_refill(s);
}

void st_sequence_close(st_sequence *s)
{
    if (!s)
        return;
    if (s->busy)
        finish(s, ST_E_CANCELLED);
    drop_refill(s);
    free(s->past);
    s->root->sequences[s->slot] = NULL;
    st_engine_close(s->e);
    free(s);
}

/* Start a request: from an empty cache or the prefix it shares (st_sequence_start),
 * or, with `cont`, at position `base` after what the cache holds. */
static st_status start(st_sequence *s, const int32_t *prompt, size_t n_prompt,
                       const st_generate_params *caller_params, st_token_fn on_token,
                       void *user, bool cont, int32_t base, st_error *err)
{
    st_engine *e = s->e;
    if (s->busy)
        return st_error_set(err, ST_E_INVALID, "the sequence is running a request; wait for "
                            "st_sequence_busy() to be false or cancel it");
    st_generate_params params;
    if (caller_params &&
        !st_sized_read(&params, sizeof params, caller_params, caller_params->struct_size,
                       ST_GENERATE_PARAMS_SIZE_1_0))
        return st_error_set(err, ST_E_ABI, "st_generate_params.struct_size is %u, expected at "
                            "least %zu", caller_params->struct_size,
                            (size_t)ST_GENERATE_PARAMS_SIZE_1_0);
    if (!caller_params)
        memset(&params, 0, sizeof params);
    st_status st = st_engine_check_prompt(e, prompt, n_prompt, err);
    if (st != ST_OK)
        return st;
    s->prompt = malloc(n_prompt * sizeof *s->prompt);
    if (params.on_prompt_logprobs)
        s->prompt_rows = malloc(sizeof(float) * e->shape.n_vocab * ST_PROMPT_LOGPROBS_BLOCK);
    if (!s->prompt || (params.on_prompt_logprobs && !s->prompt_rows)) {
        free_request_buffers(s);
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    }
    memcpy(s->prompt, prompt, n_prompt * sizeof *prompt);
    if ((st = st_request_samplers_open(e, &params, &s->rs, err)) != ST_OK) {
        free_request_buffers(s);
        return st;
    }
    drop_refill(s); /* the cache holds what it holds; a new request uses it */
    bool reuse = !cont && !params.fresh_cache && !params.on_prompt_logprobs;
    uint32_t cached = 0;
    if (cont) {
        st_engine_begin_continued(e, params.seed);
    } else {
        /* The cache is emptied or cut here: until this request ends it
         * holds no past to go on from. */
        s->continuable = false;
        cached = st_engine_begin(e, prompt, n_prompt, params.seed, reuse);
    }
    for (size_t i = 0; i < n_prompt && st == ST_OK; i++)
        st = st_sampler_chain_accept(&e->chain, prompt[i], true, err);
    if (st != ST_OK) {
        st_request_samplers_close(&s->rs);
        free_request_buffers(s);
        return st;
    }
    s->n_prompt = n_prompt;
    s->n_prefilled = cached;
    s->share = reuse && e->prefix_ok;
    s->continued = cont;
    s->base = base;
    s->unfed = -1;
    s->ended_by = -1;
    if (!cont) {
        /* The past is the prompt's start the cache kept. */
        s->n_past = 0;
        s->past_lost = false;
        note_fed(s, prompt, cached);
    }
    s->max_tokens = params.max_tokens;
    s->ignore_eos = params.ignore_eos;
    s->first_logits = params.first_logits;
    s->on_token = on_token;
    s->on_logprobs = params.on_logprobs;
    s->on_prompt_logprobs = params.on_prompt_logprobs;
    s->n_top_logprobs = params.n_top_logprobs;
    s->user = user;
    s->pos = base + (int32_t)cached;
    s->t_start = now_s();
    s->t_decode = 0;
    st_utf8_stream_init(&s->utf8);
    memset(&s->stats, 0, sizeof s->stats);
    s->stats.struct_size = sizeof s->stats;
    s->stats.n_cached = cont ? (uint32_t)base : cached;
    memset(&s->err, 0, sizeof s->err);
    s->status = ST_OK;
    atomic_store(&s->cancel, 0);
    s->busy = true;
    return ST_OK;
}

st_status st_sequence_start(st_sequence *s, const int32_t *prompt, size_t n_prompt,
                            const st_generate_params *params, st_token_fn on_token, void *user,
                            st_error *err)
{
    return start(s, prompt, n_prompt, params, on_token, user, false, 0, err);
}

st_status st_sequence_continue(st_sequence *s, const int32_t *tokens, size_t n_tokens,
                               const st_generate_params *params, st_token_fn on_token,
                               void *user, st_error *err)
{
    if (s->busy)
        return st_error_set(err, ST_E_INVALID, "the sequence is running a request; wait for "
                            "st_sequence_busy() to be false or cancel it");
    st_status st = st_engine_check_prompt(s->e, tokens, n_tokens, err);
    if (st != ST_OK)
        return st;
    if (!s->continuable)
        return st_error_set(err, ST_E_STATE, "the sequence has nothing to continue: no request "
                            "has ended on it since it was opened, emptied, loaded from a "
                            "file or stopped by an error; start one with st_sequence_start");
    /* What the cache lacks of the sequence's past: the answer's slots an
     * idle refill cut and has not computed again yet, then the answer's
     * final token. */
    int32_t base = s->pos;
    const int32_t *rest = NULL;
    size_t n_rest = 0;
    if (s->refill) {
        uint32_t held = s->e->kv->n_slots;
        if (held < s->refill_from || held > s->refill_to)
            return st_error_set(err, ST_E_STATE, "the sequence's cache holds %u slots, outside "
                                "its refill [%u, %u]", held, s->refill_from, s->refill_to);
        rest = s->refill + (held - s->refill_from);
        n_rest = s->refill_to - held;
        base = (int32_t)held;
    }
    size_t n_unfed = s->unfed >= 0 ? 1 : 0;
    size_t n = n_rest + n_unfed + n_tokens;
    int32_t *all = malloc(n * sizeof *all);
    if (!all)
        return st_error_set(err, ST_E_NOMEM, "out of memory");
    if (n_rest)
        memcpy(all, rest, n_rest * sizeof *all);
    if (n_unfed)
        all[n_rest] = s->unfed;
    memcpy(all + n_rest + n_unfed, tokens, n_tokens * sizeof *all);
    size_t had = s->n_past;
    s->n_past -= n_rest; /* the rest is noted again as it is fed */
    st = start(s, all, n, params, on_token, user, true, base, err);
    if (st != ST_OK)
        s->n_past = had;
    free(all);
    return st;
}

/* A decoding sequence picks its next token; true when it goes on (and
 * s->token is to be fed), false when its request ended here. */
static bool pick(st_sequence *s)
{
    st_engine *e = s->e;
    if (s->t_decode == 0) {
        s->stats.n_prompt = (uint32_t)(s->base + (int32_t)s->n_prompt);
        s->stats.prefill_s = now_s() - s->t_start;
        s->t_decode = now_s();
        if (s->first_logits)
            memcpy(s->first_logits, e->logits, sizeof(float) * e->shape.n_vocab);
    }
    if (s->stats.n_generated >= s->max_tokens) {
        finish(s, ST_OK);
        return false;
    }
    int32_t token;
    st_status st;
    if ((st = st_sampler_chain_sample(&e->chain, e->logits, &token, &s->err)) != ST_OK ||
        (st = st_sampler_chain_accept(&e->chain, token, false, &s->err)) != ST_OK) {
        finish(s, st);
        return false;
    }
    s->stats.n_generated++;
    if (st_engine_is_eog(e, token) && !s->ignore_eos) {
        s->stats.stopped_by_eos = true;
        s->ended_by = token;
        if (s->on_token)
            s->on_token(s->user, token, "", 0);
        finish(s, ST_OK);
        return false;
    }
    if (s->on_logprobs)
        st_logprobs_report(e->logits, e->shape.n_vocab, token, s->n_top_logprobs,
                           s->on_logprobs, s->user);
    const char *piece = "";
    size_t piece_len = 0;
    if ((st = st_engine_piece(e, token, &piece, &piece_len, &s->err)) != ST_OK) {
        finish(s, st);
        return false;
    }
    char text[3 * (ST_PIECE_MAX_BYTES + 4)];
    size_t n_text = 0;
    if (!(e->tok->is_special && e->tok->is_special(e->tokenizer.in->inst, token)))
        n_text = st_utf8_stream_feed(&s->utf8, piece, piece_len, text);
    /* A token that ends the request here was shown but is not fed: a
     * continuation feeds it first. */
    if ((s->on_token && s->on_token(s->user, token, text, n_text) != 0) ||
        s->stats.n_generated >= s->max_tokens) {
        s->unfed = token;
        finish(s, ST_OK);
        return false;
    }
    if (st_kv_cache_room(e->kv) < 1) {
        s->stats.stopped_by_context = true;
        s->unfed = token;
        finish(s, ST_OK);
        return false;
    }
    s->token = token;
    return true;
}

/* How many leading tokens two prompts share. */
static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    size_t n = na < nb ? na : nb, i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Another sequence's cache may hold more of s's prompt than s has
 * prefilled: its last prompt (idle or decoding) or the part of its
 * current prompt prefilled so far. Those slots are copied rather than
 * computed again. st_engine_cached_prefix applies the same rules as to
 * s's own cache (prompt-prefill slots only, the rest cut where a whole
 * prefill cuts), so the answer is an empty cache's, bit for bit. */
static void take_shared_prefix(st_engine *root, st_sequence *s)
{
    st_sequence *from = NULL;
    uint32_t best = (uint32_t)s->n_prefilled;
    if (!s->share || s->e->kv->n_slots != s->n_prefilled)
        return;
    for (uint32_t i = 0; i < root->parallel; i++) {
        st_sequence *t = root->sequences[i];
        if (!t || t == s)
            continue;
        uint32_t have = st_engine_cached_prefix(t->e, s->prompt, s->n_prompt);
        if (have > best) {
            best = have;
            from = t;
        }
    }
    if (!from || !st_kv_cache_append_from(s->e->kv, from->e->kv, best))
        return;
    s->stats.n_cached += best - (uint32_t)s->n_prefilled;
    note_fed(s, s->prompt + s->n_prefilled, best - s->n_prefilled);
    s->n_prefilled = best;
    s->pos = (int32_t)best;
    st_engine_prefilled(s->e, best);
}

/* Whether s should let `lead`, which prefills the same spot of a prompt
 * that shares most of s's next piece in this step, compute it, and copy
 * it at the next step instead (several answers to one prompt, clients
 * sharing a system prompt). Worth a step's wait when the copy would save
 * at least half of the piece and at least a tiled block's worth of rows. */
static bool waits_for(const st_sequence *s, size_t piece, const st_sequence *lead,
                      size_t lead_piece)
{
    if (!s->share || lead->n_prefilled != s->n_prefilled)
        return false;
    size_t shared = common_prefix(s->prompt, s->n_prompt, lead->prompt, lead->n_prompt);
    size_t lead_end = lead->n_prefilled + lead_piece;
    size_t upto = shared < lead_end ? shared : lead_end;
    if (upto <= s->n_prefilled)
        return false;
    size_t gain = upto - s->n_prefilled;
    return gain >= ST_FORWARD_TILED_MIN_ROWS && 2 * gain >= piece;
}

/* One pass's blocks, a block per sequence (st_engine_forward_batch's
 * arrays), for st_engine_step and st_engine_idle_step alike. */
typedef struct step_batch {
    uint32_t n;
    st_engine **es;
    const int32_t **tokens;
    size_t *lens;
    int32_t *pos0;
    float **rows;
    st_sequence **in;
} step_batch;

static void batch_free(step_batch *b)
{
    free(b->es);
    free(b->tokens);
    free(b->lens);
    free(b->pos0);
    free(b->rows);
    free(b->in);
    memset(b, 0, sizeof *b);
}

static st_status batch_alloc(step_batch *b, uint32_t cap, st_error *err)
{
    b->n = 0;
    b->es = calloc(cap, sizeof *b->es);
    b->tokens = calloc(cap, sizeof *b->tokens);
    b->lens = calloc(cap, sizeof *b->lens);
    b->pos0 = calloc(cap, sizeof *b->pos0);
    b->rows = calloc(cap, sizeof *b->rows);
    b->in = calloc(cap, sizeof *b->in);
    if (b->es && b->tokens && b->lens && b->pos0 && b->rows && b->in)
        return ST_OK;
    batch_free(b);
    return st_error_set(err, ST_E_NOMEM, "out of memory");
}

/* s's block: tokens[0, len) at positions pos0.., its logits into rows
 * (all of them) or its engine's last-logits buffer (NULL). */
static void batch_add(step_batch *b, st_sequence *s, const int32_t *tokens, size_t len,
                      int32_t pos0, float *rows)
{
    b->es[b->n] = s->e;
    b->tokens[b->n] = tokens;
    b->lens[b->n] = len;
    b->pos0[b->n] = pos0;
    b->rows[b->n] = rows;
    b->in[b->n++] = s;
}

/* The next piece of s's refill into the batch, at most `cap` rows, cut as
 * a whole prefill of those tokens would cut them; before the first, the
 * decode-written slots go (the prefix before them stays offered:
 * truncating renews the cache's epoch). */
static void refill_add(step_batch *b, st_sequence *s, size_t cap)
{
    st_kv_cache *kv = s->e->kv;
    if (s->refill_done == s->refill_from && kv->n_slots > s->refill_from) {
        if (!st_kv_cache_truncate(kv, s->refill_from)) {
            drop_refill(s); /* the cache is as it was */
            return;
        }
        st_engine_prefilled(s->e, s->refill_from);
    }
    batch_add(b, s, s->refill + (s->refill_done - s->refill_from),
              st_prefill_piece(s->refill_done, s->refill_to, s->e->block, cap),
              (int32_t)s->refill_done, NULL);
}

/* After the pass: the piece is in the cache and offered; or the pass
 * failed, and what was done so far stays offered while the rest of the
 * answer is gone from the cache, so there is no going on from it. */
static void refill_advance(st_sequence *s, size_t len, st_status st)
{
    if (st != ST_OK) {
        drop_refill(s);
        s->continuable = false;
        return;
    }
    s->refill_done += (uint32_t)len;
    st_engine_prefilled(s->e, s->refill_done);
    if (s->refill_done == s->refill_to)
        drop_refill(s);
}

st_status st_engine_step(st_engine *root, uint32_t *n_active, st_error *err)
{
    uint32_t P = root->parallel;
    step_batch b;
    st_status st = batch_alloc(&b, P, err);
    for (uint32_t i = 0; i < P && st == ST_OK; i++) {
        st_sequence *s = root->sequences[i];
        if (!s || !s->busy)
            continue;
        if (atomic_exchange(&s->cancel, 0)) {
            finish(s, ST_E_CANCELLED);
            continue;
        }
        if (s->n_prefilled < s->n_prompt) {
            take_shared_prefix(root, s);
            /* A chunk of the prompt, packed beside the others' blocks. */
            size_t len = st_prefill_piece(s->n_prefilled, s->n_prompt, s->e->block,
                                          s->prompt_rows ? ST_PROMPT_LOGPROBS_BLOCK
                                                         : s->e->block);
            bool wait = false;
            for (uint32_t k = 0; k < b.n && !wait; k++)
                wait = b.in[k]->n_prefilled < b.in[k]->n_prompt &&
                       waits_for(s, len, b.in[k], b.lens[k]);
            if (!wait)
                batch_add(&b, s, s->prompt + s->n_prefilled, len,
                          s->base + (int32_t)s->n_prefilled, s->prompt_rows);
        } else if (pick(s)) {
            batch_add(&b, s, &s->token, 1, s->pos, NULL);
        }
    }
    /* The sequences idle beside running ones prefill their last answer
     * again in the same pass (st_engine_idle_step's work, which would
     * wait for the whole engine to be idle, and under steady load never
     * ran), a piece of at most an echoed prompt's rows at a time so that
     * the others' steps stay short. */
    for (uint32_t i = 0; i < P && st == ST_OK && b.n > 0; i++) {
        st_sequence *s = root->sequences[i];
        if (s && !s->busy && s->refill)
            refill_add(&b, s, ST_PROMPT_LOGPROBS_BLOCK);
    }
    if (st == ST_OK && b.n > 0) {
        st_error step_err;
        memset(&step_err, 0, sizeof step_err);
        st_status fst = st_engine_forward_batch(b.es, b.tokens, b.lens, b.pos0, b.rows, b.n,
                                                &step_err);
        for (uint32_t k = 0; k < b.n; k++) {
            st_sequence *s = b.in[k];
            if (!s->busy) {
                refill_advance(s, b.lens[k], fst);
            } else if (fst != ST_OK) {
                s->err = step_err;
                finish(s, fst);
            } else if (s->n_prefilled < s->n_prompt) {
                if (b.rows[k])
                    st_prompt_logprobs_report(b.rows[k], b.lens[k], s->prompt, s->n_prompt,
                                              s->n_prefilled, s->e->shape.n_vocab,
                                              s->n_top_logprobs, s->e->pool,
                                              s->on_prompt_logprobs, s->user);
                note_fed(s, s->prompt + s->n_prefilled, b.lens[k]);
                s->n_prefilled += b.lens[k];
                s->pos = s->base + (int32_t)s->n_prefilled;
                /* What is prefilled so far is offered to the other
                 * sequences (take_shared_prefix) as it grows. A
                 * continuation's pieces are cut where its own start
                 * falls, not where a whole prompt's would: they wait for
                 * the refill (plan_refill) to be offered. */
                if (!s->continued)
                    st_engine_prefilled(s->e, s->n_prefilled);
            } else {
                note_fed(s, &s->token, 1);
                s->pos++;
            }
        }
    }
    uint32_t active = 0;
    for (uint32_t i = 0; i < P; i++)
        active += root->sequences[i] && root->sequences[i]->busy;
    if (n_active)
        *n_active = active;
    batch_free(&b);
    return st;
}

st_status st_engine_idle_step(st_engine *root, bool *more, st_error *err)
{
    uint32_t P = root->parallel;
    bool busy = false, left = false;
    if (more)
        *more = false;
    if (root->parent)
        return st_error_set(err, ST_E_INVALID, "st_engine_idle_step is called on the engine, "
                            "not on one of its sequences");
    for (uint32_t i = 0; i < P; i++) {
        st_sequence *s = root->sequences[i];
        busy |= s && s->busy;
        left |= s && s->refill;
    }
    if (busy || !left) {
        if (more)
            *more = left;
        return ST_OK;
    }
    step_batch b;
    st_status st = batch_alloc(&b, P, err);
    for (uint32_t i = 0; i < P && st == ST_OK; i++) {
        st_sequence *s = root->sequences[i];
        if (s && s->refill)
            refill_add(&b, s, s->e->block);
    }
    if (st == ST_OK && b.n > 0) {
        st = st_engine_forward_batch(b.es, b.tokens, b.lens, b.pos0, NULL, b.n, err);
        for (uint32_t k = 0; k < b.n; k++)
            refill_advance(b.in[k], b.lens[k], st);
    }
    for (uint32_t i = 0; more && i < P; i++)
        *more |= root->sequences[i] && root->sequences[i]->refill;
    batch_free(&b);
    return st;
}

size_t st_sequence_continued_prefix(const st_sequence *s, const int32_t *prompt, size_t n)
{
    size_t have = s->n_past;
    if (s->busy || !s->continuable || have == 0 || n <= have ||
        memcmp(prompt, s->past, have * sizeof *prompt) != 0)
        return 0;
    if (s->unfed < 0)
        return have; /* an end-of-generation token, if one ended it, was never fed */
    /* st_sequence_continue feeds the unfed token first: the prompt must
     * have it there, and more after it. */
    return prompt[have] == s->unfed && n > have + 1 ? have + 1 : 0;
}

size_t st_sequence_cached_prefix(const st_sequence *s, const int32_t *prompt, size_t n)
{
    return s->busy ? 0 : st_engine_cached_prefix(s->e, prompt, n);
}

static st_status idle_or_refuse(const st_sequence *s, st_error *err)
{
    return s->busy ? st_error_set(err, ST_E_STATE, "the sequence is running a request; wait "
                                  "for st_sequence_busy() to be false or cancel it")
                   : ST_OK;
}

st_status st_sequence_save_prompt(st_sequence *s, const char *path, uint32_t *n_saved,
                                  st_error *err)
{
    if (n_saved)
        *n_saved = 0;
    st_status st = idle_or_refuse(s, err);
    return st != ST_OK ? st : st_engine_save_prompt(s->e, path, n_saved, err);
}

st_status st_sequence_load_prompt(st_sequence *s, const char *path, uint32_t *n_loaded,
                                  st_error *err)
{
    if (n_loaded)
        *n_loaded = 0;
    st_status st = idle_or_refuse(s, err);
    if (st == ST_OK && (st = st_engine_load_prompt(s->e, path, n_loaded, err)) == ST_OK) {
        /* The cache is the file's prompt now (a refused file leaves it
         * as it was): the answer to prefill again and the past to go on
         * from are gone. */
        drop_refill(s);
        s->continuable = false;
    }
    return st;
}

st_status st_sequence_forget(st_sequence *s, uint32_t *n_forgotten, st_error *err)
{
    if (n_forgotten)
        *n_forgotten = 0;
    st_status st = idle_or_refuse(s, err);
    if (st != ST_OK)
        return st;
    if (n_forgotten)
        *n_forgotten = s->e->kv->n_slots;
    drop_refill(s);
    st_engine_reset(s->e, 0);
    s->continuable = false;
    return ST_OK;
}

bool st_sequence_busy(const st_sequence *s)
{
    return s->busy;
}

st_status st_sequence_result(const st_sequence *s, st_generate_stats *stats, st_error *err)
{
    if (stats)
        st_sized_write(stats, &s->stats, sizeof s->stats, ST_GENERATE_STATS_SIZE_1_0);
    if (err && s->status != ST_OK)
        *err = s->err;
    return s->status;
}

void st_sequence_cancel(st_sequence *s)
{
    atomic_store(&s->cancel, 1);
}
