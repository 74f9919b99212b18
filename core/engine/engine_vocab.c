/*
 * core/engine_vocab.c - the engine's tokenizer as the host's vocabulary
 * source (ST_HOST_VOCAB_V1): constraint samplers see each token's exact
 * bytes through it. Installed once the tokenizer is open, before any
 * sampler is created.
 */
#include "engine_internal.h"

static int32_t vocab_n_tokens(void *ctx)
{
    st_engine *e = ctx;
    return e->tok->vocab_size(e->tokenizer.in->inst);
}

static st_status vocab_token_bytes(void *ctx, int32_t id, const char **bytes, size_t *len,
                                   bool *special, st_error *err)
{
    st_engine *e = ctx;
    st_status st = st_engine_piece(e, id, bytes, len, err);
    if (st != ST_OK)
        return st;
    *special = e->tok->is_special && e->tok->is_special(e->tokenizer.in->inst, id);
    /* EOS/EOT are control tokens whatever the tokenizer's flags say: a
     * constraint must see them as the end, never as text. */
    if (st_engine_is_eog(e, id))
        *special = true;
    return ST_OK;
}

static size_t vocab_eog_tokens(void *ctx, int32_t *ids, size_t cap)
{
    st_engine *e = ctx;
    size_t n = 0;
    int32_t cand[2] = {e->special.eos, e->special.eot};
    for (int i = 0; i < 2; i++) {
        if (cand[i] < 0 || (i == 1 && cand[1] == cand[0]))
            continue;
        if (n < cap)
            ids[n] = cand[i];
        n++;
    }
    return n;
}

static const st_vocab_source engine_vocab = {vocab_n_tokens, vocab_token_bytes,
                                             vocab_eog_tokens};

void st_engine_install_vocab(st_engine *e)
{
    st_host_set_vocab(e->host, &engine_vocab, e);
}
