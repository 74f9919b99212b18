#include "sampler_chain.h"

#include "plugin_call.h"

#include <stdio.h>
#include <stdlib.h>

static st_status chain_error(st_error *err, st_status st, const char *msg)
{
    if (err) {
        err->status = st;
        snprintf(err->message, sizeof err->message, "%s", msg);
    }
    return st;
}

static const st_sampler_ops *ops_of(const st_instance *in)
{
    return (const st_sampler_ops *)in->ops;
}

static const char *name_of(const st_instance *in)
{
    return in->lib->entry->name;
}

st_status st_sampler_chain_init(st_sampler_chain *c, st_instance **samplers, size_t n,
                                uint32_t n_vocab, st_error *err)
{
    c->samplers = samplers;
    c->n = n;
    c->n_vocab = n_vocab;
    c->cands = malloc(sizeof(st_candidate) * (n_vocab ? n_vocab : 1));
    if (!c->cands)
        return chain_error(err, ST_E_NOMEM, "out of memory for sampler candidates");
    return ST_OK;
}

void st_sampler_chain_free(st_sampler_chain *c)
{
    free(c->cands);
    c->cands = NULL;
}

void st_sampler_chain_reset(st_sampler_chain *c, uint64_t seed)
{
    for (size_t i = 0; i < c->n; i++)
        if (ops_of(c->samplers[i])->reset) {
            st_plugin_call prev = st_plugin_call_enter(c->samplers[i], "reset");
            ops_of(c->samplers[i])->reset(c->samplers[i]->inst, seed);
            st_plugin_call_leave(prev);
        }
}

st_status st_sampler_chain_accept(st_sampler_chain *c, int32_t token, bool is_prompt,
                                  st_error *err)
{
    for (size_t i = 0; i < c->n; i++) {
        const st_sampler_ops *ops = ops_of(c->samplers[i]);
        if (!ops->accept)
            continue;
        st_plugin_call prev = st_plugin_call_enter(c->samplers[i], "accept");
        st_status st = ops->accept(c->samplers[i]->inst, token, is_prompt, err);
        st_plugin_call_leave(prev);
        if (st != ST_OK) {
            char msg[ST_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof msg, "sampler '%s' refused token %d: %.400s",
                     name_of(c->samplers[i]), token, err ? err->message : "");
            return chain_error(err, st, msg);
        }
    }
    return ST_OK;
}

st_status st_sampler_chain_sample(st_sampler_chain *c, const float *logits,
                                  int32_t *token, st_error *err)
{
    for (uint32_t i = 0; i < c->n_vocab; i++)
        c->cands[i] = (st_candidate){(int32_t)i, logits[i], 0.0f};
    for (size_t k = 0; k < c->n_bias; k++)
        c->cands[c->bias[k].token].logit += c->bias[k].bias;
    st_candidates cs = {c->cands, c->n_vocab, false, -1};
    for (size_t i = 0; i < c->n; i++) {
        st_plugin_call prev = st_plugin_call_enter(c->samplers[i], "apply");
        st_status st = ops_of(c->samplers[i])->apply(c->samplers[i]->inst, &cs, err);
        st_plugin_call_leave(prev);
        if (st != ST_OK) {
            char msg[ST_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof msg, "sampler '%s' failed: %.400s",
                     name_of(c->samplers[i]), err ? err->message : "");
            return chain_error(err, st, msg);
        }
        /* A plugin that shrinks the array below its pick or past the
         * buffer is a plugin bug; refuse it rather than read garbage. */
        if (cs.size > c->n_vocab || cs.data != c->cands ||
            (cs.selected >= 0 && (size_t)cs.selected >= cs.size)) {
            char msg[ST_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof msg, "sampler '%s' left an invalid candidate array",
                     name_of(c->samplers[i]));
            return chain_error(err, ST_E_PLUGIN, msg);
        }
        if (cs.selected >= 0)
            break;
    }
    if (cs.selected < 0) {
        char msg[ST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof msg,
                 "no sampler picked a token: end the sampler chain with a picking "
                 "sampler such as 'dist' or 'greedy' (last is '%s')",
                 c->n ? name_of(c->samplers[c->n - 1]) : "none");
        return chain_error(err, ST_E_INVALID, msg);
    }
    int32_t id = cs.data[cs.selected].id;
    if (id < 0 || (uint32_t)id >= c->n_vocab)
        return chain_error(err, ST_E_PLUGIN, "a sampler picked a token id outside the vocabulary");
    *token = id;
    return ST_OK;
}
