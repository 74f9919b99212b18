/*
 * core/engine_internal.h - the engine's state, shared by engine.c (open,
 * close, tokenize), engine_generate.c and engine_score.c.
 */
#ifndef ST_CORE_ENGINE_INTERNAL_H
#define ST_CORE_ENGINE_INTERNAL_H

#include <stdatomic.h>
#include <stretch/stretch.h>

#include "forward.h"
#include "gguf.h"
#include "host_services.h"
#include "kv_cache.h"
#include "manifest.h"
#include "model.h"
#include "plugin_site.h"
#include "opencl_backend.h"
#include "registry.h"
#include "sampler_chain.h"
#include "threadpool.h"


struct st_engine {
    st_strategy *strategy;
    st_registry *registry;
    st_host *host;
    char *model_path;
    st_gguf *gguf;
    st_model *model;
    st_model_shape shape;

    st_engine_plugin tokenizer, posenc, attention, retriever;
    /* The retriever as st_engine_retriever hands it out (retrieval.c):
     * borrows `retriever`, holds the strategy's index, top_k, template. */
    struct st_retriever *retrieval;
    struct st_encoder_service *encoders; /* the host's encoder extension */
    st_engine_plugin *samplers;
    size_t n_samplers;
    st_instance **sampler_instances;
    const char **sampler_names;   /* [n_samplers], for st_engine_info */
    st_sampler_chain chain;
    /* The last request's constraint sampler and the text that made it
     * (sampler_override.c): a request with the same constraint takes it
     * instead of compiling its schema or grammar again. */
    st_engine_plugin kept_constraint;
    char *kept_key;
    size_t kept_key_len;

    const st_tokenizer_ops *tok;
    const st_posenc_ops *pe;
    const st_attention_ops *attn;
    st_posenc_desc desc;
    /* The model's learned position table, or the posenc plugin's stretch
     * of it (owned then); NULL when the model has none. */
    const float *pos_table;
    float *pos_table_owned;
    uint32_t pos_rows;
    uint32_t attn_needs;
    int32_t attn_weights_layer;
    /* The attention plugin's ops read up to its struct_size, later fields
     * zero (the 1.4 ops of an older plugin are NULL), and what its
     * configure_kv asked for: statistics, per-head slot sets, per-layer
     * budgets (stats_layers, layer_budget: [n_layers], owned). */
    st_attention_ops attn_x;
    st_attn_kv_config kvcfg;
    uint8_t *stats_layers;
    uint32_t *layer_budget;
    uint64_t *kv_layer_bytes; /* [n_layers] the cache's bytes per layer (st_engine_info) */

    uint32_t n_ctx;
    uint32_t n_threads;
    st_numerics numerics;   /* the caller's (st_engine_options)*/
    /* The backend in force (options over manifest), the OpenCL device
     * asked for, and the backend itself: NULL = the CPU's threads. */
    char *backend_name;
    char *device;
    bool no_kernel_cache;
    st_backend *backend;
    st_opencl_report cl_report;   /* what opening the device did (st_engine_info) */
    uint32_t block;          /* prefill block size */
    st_kv_cache *kv;
    st_threadpool *pool;
    st_forward_ctx *fwd;
    float *logits;           /* [n_vocab]: the last step's next-token logits */
    float *block_logits;     /* [block][n_vocab] when entropy is observed */
    float *prev_logits;      /* [n_vocab] logits before the current block */
    bool have_prev_logits;
    /* The prompt-prefix cache (ST_ATTN_PREFIX_REUSE, engine_generate.c):
     * the first reuse_slots slots of kv were written by the last request's
     * prompt prefill, and still are while kv->epoch == reuse_epoch.
     * prefix_ok: this strategy and backend allow taking them. */
    bool prefix_ok;
    uint32_t reuse_slots;
    uint64_t reuse_epoch;

    /* model_score's own cache and forward pass (engine_model_score.c),
     * made on the first request and grown when one needs more: a plugin
     * scores text while the engine's sequence stays in `kv`. */
    st_kv_cache *score_kv;
    st_forward_ctx *score_fwd;
    int32_t score_weights_layer;  /* the layer score_fwd records, INT32_MIN = none */
    st_threadpool *score_pool;    /* the pool score_fwd was made with */

    st_special_tokens special;
    bool add_bos;
    /* Set by st_engine_cancel from any thread or a signal handler; the
     * request that stops on it clears it, so a cancel that arrives just
     * before a request starts is not lost. */
    atomic_int cancel;

    /* Sequences (engine_sequence.c). A sequence runs on an engine of its
     * own plugin instances, cache and forward context over its parent's
     * strategy, registry, host, model and thread pool, which it borrows
     * (`parent` set). The root engine lists the open ones, up to
     * `parallel`, and closes any left when it closes. */
    st_engine *parent;
    uint32_t parallel;
    struct st_sequence **sequences;   /* [parallel] */
};

/* -log softmax(logits)[token] over n_vocab logits. */
double st_engine_nll(const float *logits, uint32_t n_vocab, int32_t token);

/* Whether a cancel is pending; consumes it. */
static inline bool st_engine_take_cancel(st_engine *e)
{
    return atomic_exchange(&e->cancel, 0) != 0;
}

/* Like st_error_set (base/diag.h), for a plugin's failure reported through the same
 * `err`: "<prefix>: <the plugin's reason>", the reason copied out first
 * because it lives in the buffer being written. */
st_status st_engine_fail_wrap(st_error *err, st_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The bytes of token `id` from the tokenizer plugin, checked: an id inside
 * its vocabulary, a non-NULL piece of at most ST_PIECE_MAX_BYTES. */
st_status st_engine_piece(st_engine *e, int32_t id, const char **bytes, size_t *len,
                          st_error *err);

/* Generation needs a tokenizer whose vocabulary is the model's: every id
 * the model can pick must have a piece. */
st_status st_engine_check_vocab(st_engine *e, st_error *err);

/* A prompt to continue: not empty, every id in the vocabulary, and a
 * tokenizer that can spell whatever comes next (st_engine_check_vocab). */
st_status st_engine_check_prompt(st_engine *e, const int32_t *prompt, size_t n, st_error *err);

/* Whether `token` ends generation (EOS, EOT, or a control token the
 * tokenizer marks as end). */
bool st_engine_is_eog(const st_engine *e, int32_t token);

/* Offer the open tokenizer to plugins as ST_HOST_VOCAB_V1
 * (engine_vocab.c); needs e->tok and e->special set. */
void st_engine_install_vocab(st_engine *e);

/* Create and free the forward context for the engine's model, cache and
 * plugins (engine_forward.c). */
/* engine_kv.c: the attention plugin's 1.4 requests (configure_kv), its
 * statistics after a step and retention per (layer, KV head). */
st_status st_engine_configure_kv(st_engine *e, st_error *err);
st_status st_engine_observe_stats(st_engine *e, int32_t pos0, size_t n, st_error *err);
st_status st_engine_retain_heads(st_engine *e, uint32_t n_new, st_error *err);

st_status st_engine_forward_init(st_engine *e, st_diag *diag);
void st_engine_forward_free(st_engine *e);

/* Run `n` tokens (positions pos..) through the model with the strategy's
 * attention: appends them to the cache, applies retention afterwards, and
 * writes logits for the last token (or every token when all_logits). */
st_status st_engine_forward(st_engine *e, const int32_t *tokens, size_t n, int32_t pos0,
                            float *logits, bool all_logits, st_error *err);

/* A sequence's engine (engine.c): its own plugins, cache and forward
 * context over the parent's model. */
st_status st_engine_open_child(st_engine *parent, st_engine **out, st_error *err);

/* One batched step: each engine's block (tokens[i], n[i] at positions
 * pos0[i]..) through the model in one pass, with each engine's own
 * positional update, plan, entropy observers and retention, as
 * st_engine_forward does for one; logits of each block's last token land
 * in that engine's e->logits. rows (NULL, or NULL entries: none) takes
 * every token's logits of a block ([n[i]][n_vocab]) as well. */
st_status st_engine_forward_batch(st_engine *const *es, const int32_t *const *tokens,
                                  const size_t *n, const int32_t *pos0, float *const *rows,
                                  size_t n_es, st_error *err);

/* Forget the previous request: empty cache, samplers reset with `seed`,
 * the attention plugin reset (engine_generate.c). */
void st_engine_reset(st_engine *e, uint64_t seed);

/* The host's model_score service (services.h) over this engine's model:
 * the model as trained (its own RoPE, dense causal attention) in a scratch
 * cache, never the engine's sequence. Installed with st_host_set_scorer. */
st_status st_engine_model_score(void *engine, st_score_request *req, st_error *err);
void st_engine_model_score_free(st_engine *e);

/* The name of the plugin that offers stretch.reader/1 (engine_read.c),
 * NULL when none does. */
const char *st_engine_reader_name(st_engine *e);

/* Prefill tokens[from..n) at positions from.. in blocks (engine_generate.c),
 * cut where a whole prefill from 0 cuts them; the next-token logits of the
 * last token land in e->logits. on_prompt (NULL: none; then from is 0)
 * gets the tokens' own log-probabilities as
 * st_generate_params.on_prompt_logprobs says. */
st_status st_engine_prefill(st_engine *e, const int32_t *tokens, size_t n, size_t from,
                            st_logprobs_fn on_prompt, uint32_t n_top, void *user,
                            st_error *err);

/* Start a request on e (engine_generate.c): samplers reset with seed, the
 * attention plugin reset, and the cache emptied, or, when `reuse` and the
 * strategy allows it, cut to the leading prompt tokens the previous
 * request's prefill left there (st_engine_cached_prefix). Returns how many
 * prompt tokens are in the cache already: the prefill starts there. */
uint32_t st_engine_begin(st_engine *e, const int32_t *prompt, size_t n, uint64_t seed,
                         bool reuse);
/* Start a request that continues the previous one on e
 * (st_sequence_continue): samplers reset with seed; the cache, the
 * attention plugin's state and the last logits stay as they are. */
void st_engine_begin_continued(st_engine *e, uint64_t seed);
/* The leading slots the prefix cache offers the next request: those a
 * prefill wrote (st_engine_prefilled) and the cache still holds; 0 where
 * the strategy allows no reuse or the cache changed since. */
uint32_t st_engine_offered_slots(const st_engine *e);
/* How many leading tokens of `prompt` st_engine_begin would keep. */
uint32_t st_engine_cached_prefix(const st_engine *e, const int32_t *prompt, size_t n);
/* The prompt's first n tokens are prefilled (all of it, or the part done
 * so far): those slots may serve the next request, and, on a sequence,
 * the other sequences (st_kv_cache_append_from). */
void st_engine_prefilled(st_engine *e, size_t n);
/* The size of the prefill piece at `done` of n tokens: up to the end of
 * the engine's `block` (where a whole prefill from 0 cuts), at most `cap`
 * rows (echo holds a piece's logits at once), and never leaving fewer
 * than ST_FORWARD_TILED_MIN_ROWS rows of a block that has more, so that
 * every row takes the attention path the whole prefill gives it. */
size_t st_prefill_piece(size_t done, size_t n, size_t block, size_t cap);

/* The cores online: the thread count when neither the caller nor the
 * strategy sets one. */
uint32_t st_engine_online_cores(void);

#endif
