/*
 * stretch/stretch.h - the host API: open an engine from a strategy
 * manifest, tokenize, generate with a per-token callback, cancel, score.
 * `stretch run`, `stretch eval`, `stretch bench`, `stretch serve` and any
 * embedding application use this and nothing private (llama.h's role for
 * llama.cpp).
 *
 * Threading: st_engine_generate and st_engine_score serve one request at a
 * time; several run at once as sequences stepped together (st_sequence_*,
 * st_engine_step, since 1.3). Every call on an engine and its sequences
 * must come from one thread at a time, except st_engine_cancel and
 * st_sequence_cancel, which may be called from any thread (the former
 * also from a signal handler) at any time.
 * Memory returned through `**out` pointers is the caller's: st_free() it.
 */
#ifndef STRETCH_STRETCH_H
#define STRETCH_STRETCH_H

#include "common.h"
#include "tokenizer.h" /* ST_ENCODE_* flags */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(ST_BUILDING_LIBRARY)
#define ST_API ST_EXPORT
#else
#define ST_API
#endif

typedef struct st_engine st_engine;

/* The contexts a strategy's `context:` accepts, in tokens; the
 * st_engine_options.context override is held to the same range. */
#define ST_CONTEXT_MIN 16
#define ST_CONTEXT_MAX 1048576
/* The most sequences one engine runs at once (`parallel:`, since 1.3). */
#define ST_PARALLEL_MAX 256

/* The host honours the caller's struct_size: a program built against older
 * headers passes a shorter struct and gets the defaults of the fields it
 * does not know. Zero-initialise, set struct_size = sizeof, fill in. */
typedef struct st_engine_options {
    uint32_t struct_size;   /* sizeof(st_engine_options) */
    uint32_t n_threads;     /* 0 = the manifest's, then all cores */
    uint32_t context;       /* 0 = the manifest's */
    const char *model;      /* NULL = the manifest's */
    /* -- ABI 1.2 -- */
    st_numerics numerics;
    /* Searched first, before the manifest's plugin-dirs, $STRETCH_PLUGIN_PATH
     * and the built-in directory. Borrowed during st_engine_open. */
    const char *const *plugin_dirs;
    size_t n_plugin_dirs;
    /* Every log line of the host and the plugins, at every level, goes here
     * instead of stderr (filter by level yourself). NULL = stderr, from the
     * level $STRETCH_LOG names (default warn). May be called from the
     * engine's worker threads, one line at a time. */
    st_log_fn log;
    void *log_user;
    /* -- ABI 1.3 -- */
    /* Sequences the engine may run at once (st_sequence_open); 0 = the
     * manifest's `parallel` (default 1). */
    uint32_t parallel;
    /* Override the manifest's `backend:` ("cpu", "opencl",
     * "opencl:PLATFORM:DEVICE") and `device:` (an index into
     * st_devices_list's order or a name substring); NULL = the manifest's. */
    const char *backend;
    const char *device;
    /* Build the OpenCL programs afresh, without the binary cache. */
    bool no_kernel_cache;
} st_engine_options;

/* Open an engine: load the strategy (extends resolved), find and load each
 * plugin, map the model, size the KV cache. On failure nothing is left
 * allocated and `err` says which file (line:col), plugin or tensor failed. */
ST_API st_status st_engine_open(const char *strategy_path,
                                const st_engine_options *opts,
                                st_engine **out, st_error *err);
ST_API void st_engine_close(st_engine *e);

/* Model facts. */
typedef struct st_engine_info {
    uint32_t struct_size;
    uint32_t n_vocab;
    uint32_t n_ctx;          /* the engine's context (manifest) */
    uint32_t n_ctx_train;    /* the model's trained context */
    uint32_t n_layers, n_heads, n_kv_heads, n_embd, head_dim;
    uint32_t n_threads;
    int32_t bos, eos, eot;   /* -1 where absent */
    bool add_bos;            /* the model asks for BOS at the start */
    const char *model_path;
    const char *plugin_names[5]; /* by st_kind - 1; for samplers, the chain's last */
    /* -- ABI 1.2 -- */
    uint32_t n_samplers;
    const char *const *sampler_names; /* [n_samplers], the chain in order */
    /* What the KV cache stores: its element type ("f16", "q8_0", "f32": the
     * manifest's `kv-type`) and the bytes one token takes, keys and values
     * of every layer. */
    const char *kv_type;
    uint64_t kv_bytes_per_token;
    /* -- ABI 1.3 -- */
    uint32_t parallel;       /* the sequences it may run at once */
    /* The plugin that reads documents chunk by chunk for st_engine_read
     * (it offers stretch.reader/1), NULL when the strategy has none. */
    const char *reader;
    /* The backend that runs the model ("cpu", "opencl") and, on OpenCL,
     * the device's name ("" on the CPU); the program build or cache load
     * time and the device memory held. */
    const char *backend;
    const char *device_name;
    double kernel_compile_ms;
    bool kernel_cache_hit;
    uint64_t device_bytes;
    /* -- ABI 1.5 -- */
    /* The KV cache's allocated bytes, keys and values: every layer, and per
     * layer ([n_layers], the engine's). An attention plugin with per-layer
     * budgets (pyramidkv) gets each layer sized by its own budget + one
     * 512-token block, so the layers differ. */
    uint64_t kv_cache_bytes;
    const uint64_t *kv_layer_bytes;
    /* -- ABI 1.9 -- */
    /* Whether a request may take its prompt's start from the cache
     * (st_generate_params.fresh_cache: an attention plugin with
     * ST_ATTN_PREFIX_REUSE, no retention, per-head slots or statistics,
     * the CPU backend), and so whether the prompt can go to a file
     * (st_engine_save_prompt). */
    bool prefix_cache;
    /* -- ABI 1.10 -- */
    /* Whether the attention plugin evicts (it has retain or
     * retain_heads), so that the cache stays within the context however
     * long a sequence grows: st_engine_score past n_ctx, and a sequence
     * continued turn after turn (st_sequence_continue) without end. */
    bool bounded_cache;
} st_engine_info;
/* Set out->struct_size = sizeof(st_engine_info) first: the host writes no
 * more than that (0 is read as the 1.0 size). Strings are the engine's. */
ST_API void st_engine_get_info(const st_engine *e, st_engine_info *out);

/* Tokenize with the strategy's tokenizer. flags: ST_ENCODE_* (tokenizer.h).
 * *ids is allocated; free with st_free. */
ST_API st_status st_engine_tokenize(st_engine *e, const char *text, size_t len,
                                    uint32_t flags, int32_t **ids, size_t *n_ids,
                                    st_error *err);
ST_API st_status st_engine_detokenize(st_engine *e, const int32_t *ids, size_t n,
                                      char **text, size_t *len, st_error *err);
/* Raw bytes of one token (may be a partial UTF-8 sequence); owned by the
 * engine. */
ST_API st_status st_engine_token_piece(st_engine *e, int32_t id, const char **bytes,
                                       size_t *len, st_error *err);

/* Render one user message with the model's chat template (ChatML is
 * recognised from the GGUF's tokenizer.chat_template, with the default
 * system prompt the template carries). *out is NUL-terminated; st_free it. */
ST_API st_status st_engine_chat_prompt(st_engine *e, const char *user_message,
                                       char **out, st_error *err);

/* Render one user message with the chat template and tokenize it: the
 * template's own markers are special tokens, the user's text is plain text
 * (typing "<|im_end|>" does not end the turn) unless flags has
 * ST_ENCODE_PARSE_SPECIAL. ST_ENCODE_ADD_BOS applies to the start of the
 * prompt. *ids is allocated; st_free it. */
ST_API st_status st_engine_chat_tokenize(st_engine *e, const char *user_message,
                                         uint32_t flags, int32_t **ids, size_t *n_ids,
                                         st_error *err);

/* One turn of a conversation (since 1.3). role: "system", "user" or
 * "assistant"; content: plain text (UTF-8). */
typedef struct st_chat_message {
    const char *role;
    const char *content;
} st_chat_message;

/* Render a conversation with the chat template (ChatML; the template's
 * default system message first when the conversation has no system turn)
 * and tokenize it, ending with the assistant's opening marker. Only the
 * template's markers are special tokens: roles and contents are plain text
 * (a "<|im_end|>" in a message is those characters), unless flags has
 * ST_ENCODE_PARSE_SPECIAL. An unknown role or an empty list is ST_E_INVALID
 * naming the message. *ids is allocated; st_free it. Since 1.3. */
ST_API st_status st_engine_chat_tokenize_messages(st_engine *e, const st_chat_message *msgs,
                                                  size_t n_msgs, uint32_t flags,
                                                  int32_t **ids, size_t *n_ids,
                                                  st_error *err);

/* Called once per generated token with the text it completes: bytes are
 * held back until they form whole UTF-8 characters, so `text` is always
 * valid UTF-8 (possibly empty). Return non-zero to stop. */
typedef int (*st_token_fn)(void *user, int32_t token, const char *text, size_t len);

/* One sampler parameter set for one request only (since 1.3): every
 * sampler of the chain named `plugin` is created afresh for the request
 * with `param` = value (validated against its plugin.yaml like a
 * manifest's value: out of range is ST_E_INVALID naming both). A plugin
 * the chain does not have is not added: the override has no effect.
 * An integral value is given as an integer (so an int parameter such as
 * top-k's k takes it; a float parameter takes an integer too). This is
 * how a server maps OpenAI's temperature, top_p and penalties onto the
 * manifest's chain. */
typedef struct st_sampler_override {
    const char *plugin;      /* "temperature", "top-p", ... */
    const char *param;       /* "temperature", "p", ... */
    double value;
} st_sampler_override;

/* One parameter of a request's constraint sampler, as text (since 1.6). */
typedef struct st_param_text {
    const char *name;        /* "schema", "grammar", "pattern", ... */
    const char *value;       /* a string value: for the plugin's string and
                                enum parameters (a bool or number is refused) */
} st_param_text;

/* A bias added to one token's logit for a request (since 1.7). */
typedef struct st_logit_bias {
    int32_t token;
    float bias;              /* -100 .. 100: -100 in effect bans the token */
} st_logit_bias;
#define ST_LOGIT_BIAS_MAX 100.0f

/* At most this many alternatives per generated token (since 1.6). */
#define ST_TOP_LOGPROBS_MAX 20

/* One generated token's log-probability under the model (the log-softmax
 * of the raw logits, before any sampler changed them), and the n_top
 * likeliest tokens at that step with theirs, best first (equal logits:
 * the lower id first). Called before the token's text reaches on_token,
 * for every generated token but an end of generation that ends it (since
 * 1.6). */
typedef void (*st_logprobs_fn)(void *user, int32_t token, float logprob, const int32_t *top_ids,
                               const float *top_logprobs, size_t n_top);

typedef struct st_generate_params {
    uint32_t struct_size;
    uint32_t max_tokens;     /* stop after this many generated tokens */
    uint64_t seed;           /* handed to every sampler's reset() */
    bool ignore_eos;         /* keep going past end-of-generation tokens */
    float *first_logits;     /* optional [n_vocab]: the raw logits after the prompt */
    /* -- ABI 1.3 -- */
    const st_sampler_override *sampler_overrides; /* [n_sampler_overrides]; borrowed */
    size_t n_sampler_overrides;
    /* -- ABI 1.6 -- */
    /* A constraint sampler for this request only: the sampler plugin
     * `constraint` ("json-schema", "gbnf", "regex", ...) created with
     * `constraint_params`, validated against the plugin's schema as a
     * manifest's parameters are (each value is text, typed by the
     * plugin's schema since 1.8: "16" for an int parameter is 16, "true"
     * for a bool one true, a string parameter's text as it is), and put
     * first in the chain; a sampler of
     * the same plugin in the manifest's chain is left out for the request.
     * This is how a server maps OpenAI's response_format onto any strategy.
     * The plugins may read a file a parameter names (json-schema's schema,
     * gbnf's grammar): a server passes only inline text. NULL: none. */
    const char *constraint;
    const st_param_text *constraint_params; /* [n_constraint_params]; borrowed */
    size_t n_constraint_params;
    /* Log-probabilities of the generated tokens, given to on_logprobs with
     * the `user` of on_token; n_top_logprobs alternatives each (0 ..
     * ST_TOP_LOGPROBS_MAX). NULL: none computed. */
    st_logprobs_fn on_logprobs;
    uint32_t n_top_logprobs;
    /* -- ABI 1.7 -- */
    /* The prompt's own log-probabilities (OpenAI's `echo` with logprobs,
     * what lm-eval's log-likelihood tasks read): on_prompt_logprobs gets,
     * in order, each prompt token after the first with log p(token | the
     * tokens before it) and that position's n_top_logprobs likeliest
     * tokens, all before the first generated token; with the `user` of
     * on_token. The prefill then computes every position's logits (a
     * pass over the output matrix per prompt token, as scoring does).
     * NULL: none. max_tokens 0 with it scores a prompt. */
    st_logprobs_fn on_prompt_logprobs;
    /* Biases added to the logits before the first sampler, for this
     * request (OpenAI's logit_bias); the log-probabilities reported stay
     * the model's own. A token id outside the vocabulary, or a bias not in
     * -100 .. 100, is refused. NULL: none. */
    const st_logit_bias *logit_bias; /* [n_logit_bias]; borrowed */
    size_t n_logit_bias;
    /* Start from an empty cache. Otherwise, where the strategy allows it
     * (an attention plugin with ST_ATTN_PREFIX_REUSE, no retention, the CPU
     * backend), a request whose prompt begins as the previous request's
     * prompt on this engine or sequence did takes those tokens' keys and
     * values from the cache instead of computing them again
     * (st_generate_stats.n_cached says how many). On a sequence, the
     * prompt slots the engine's other sequences hold count too: the last
     * prompt of an idle or decoding one, and what one still prefilling
     * has done so far, are copied (a sequence about to prefill what
     * another computes in the same step waits a step for it), so several
     * answers to one prompt, or requests sharing a system prompt, prefill
     * it once. The answer is the one an empty cache gives, bit for bit. A
     * request with on_prompt_logprobs always starts empty (its own slots
     * are still offered to the others). */
    bool fresh_cache;
} st_generate_params;

/* Set struct_size = sizeof(st_generate_stats) before the call: the host
 * writes no more than that (0 is read as the 1.0 size). */
typedef struct st_generate_stats {
    uint32_t struct_size;
    uint32_t n_prompt;
    uint32_t n_generated;
    double prefill_s;        /* prompt processing */
    double decode_s;         /* generation after the first token */
    bool stopped_by_eos;
    bool cancelled;
    /* -- ABI 1.2 -- */
    bool stopped_by_context; /* the context filled: the tokens so far are kept */
    /* -- ABI 1.7 -- */
    uint32_t n_cached;       /* prompt tokens taken from the cache (fresh_cache) */
} st_generate_stats;

/* Check a request's parameters as st_engine_generate and
 * st_sequence_start check them before they start (since 1.9): the
 * sampler overrides against their plugins' schemas, the constraint (its
 * plugin created with its parameters: a grammar or schema is compiled),
 * the logit biases and n_top_logprobs; nothing runs. (Since 1.10 an
 * engine or sequence keeps the last constraint sampler a check or request
 * made, and a request with the same constraint, plugin and parameter
 * texts, takes it, reset, instead of compiling its grammar or schema
 * again.) ST_OK, or the status and message the request would get
 * (ST_E_INVALID for what the caller gave). For a command line that takes
 * these from flags: a bad value is refused before any prompt runs, and a
 * later refusal of a generate call is then the run's, not the flag's. */
ST_API st_status st_engine_check_request(st_engine *e, const st_generate_params *params,
                                         st_error *err);

/* The prompt-prefix cache in a file (since 1.9; llama-cli's
 * --prompt-cache). st_engine_save_prompt writes the slots the engine's
 * next request could take from its cache (the last st_engine_generate
 * prompt's; see st_generate_params.fresh_cache) to `path`: written beside
 * it and renamed over it, so a failed write keeps the old file.
 * st_engine_load_prompt puts a file's slots in the engine's cache, so that
 * the next request whose prompt begins with those tokens takes them
 * instead of prefilling them, its answer still the one an empty cache
 * gives, bit for bit. The file names what made those bits: the model file,
 * the positional-encoding and attention plugins and their parameters, the
 * context, kv-type, numerics, and the library's version and kernels; a
 * file made under anything else is refused (ST_E_INVALID) saying what
 * differs, a foreign, cut or damaged file too (ST_E_FORMAT), a missing
 * one is ST_E_NOT_FOUND; a refused file leaves the cache as it was. A
 * strategy whose cache a later prompt cannot take up (retention, per-head
 * slots, statistics, the OpenCL backend: where fresh_cache has no effect)
 * gets ST_E_UNAVAILABLE. *n_saved / *n_loaded (may be NULL): the slots
 * written / offered to the next request. */
ST_API st_status st_engine_save_prompt(st_engine *e, const char *path, uint32_t *n_saved,
                                       st_error *err);
ST_API st_status st_engine_load_prompt(st_engine *e, const char *path, uint32_t *n_loaded,
                                       st_error *err);

/* Run the prompt (all tokens, prepacked into blocks) and generate. The KV
 * cache starts empty for each call. Generation ends at max_tokens, an
 * end-of-generation token, a full context (ST_OK with stopped_by_context)
 * or a cancel. Logits that are not finite (a NaN or infinite weight) are
 * an error (ST_E_RANGE), never sampled. */
ST_API st_status st_engine_generate(st_engine *e, const int32_t *prompt, size_t n_prompt,
                                    const st_generate_params *params,
                                    st_token_fn on_token, void *user,
                                    st_generate_stats *stats, st_error *err);

/* -- Sequences (since 1.3) --
 * An engine runs up to `parallel` requests at once (the manifest's
 * `parallel:`, or st_engine_options.parallel). Each sequence has its own
 * KV cache and its own instances of the tokenizer, positional, attention
 * and sampler plugins; all share the engine's model and threads.
 * st_engine_step advances every started sequence by one step in one pass
 * through the weights: prompts that are waiting are prepacked into that
 * pass (each at its own positions, attending only to itself: a
 * block-diagonal causal mask, no padding) together with the next token of
 * every decoding sequence (continuous batching). A sequence joins at the
 * step after st_sequence_start and leaves when its request ends, without
 * stalling the others. st_engine_generate and st_engine_score use the
 * engine's own state, as before.
 * Threading: an engine's sequences are opened, started, stepped and closed
 * from the engine's thread; st_sequence_cancel from any thread. */
typedef struct st_sequence st_sequence;

/* Open a sequence of the engine: ST_E_RANGE when `parallel` are open
 * already. Closing the engine closes the sequences still open. */
ST_API st_status st_sequence_open(st_engine *e, st_sequence **out, st_error *err);
ST_API void st_sequence_close(st_sequence *s);

/* Start a request on an idle sequence, as st_engine_generate would run it
 * (params, callbacks and their order alike); its prompt runs at the next
 * st_engine_step. The prompt is copied. */
ST_API st_status st_sequence_start(st_sequence *s, const int32_t *prompt, size_t n_prompt,
                                   const st_generate_params *params, st_token_fn on_token,
                                   void *user, st_error *err);

/* Start a request that goes on from the sequence's last one (since
 * 1.10): its cache, attention state and positions are kept, and `tokens`
 * run at the positions after everything it has fed (its prompts and
 * answers), as a conversation's next turn. The last answer's final token,
 * when it was sampled and shown but not fed (an answer ended by
 * max_tokens, the token callback or a full context), is fed first; an
 * end-of-generation token that ended it is not (the caller closes the
 * turn as its format does). Nothing before is computed again, so a turn
 * costs its own tokens; with a bounded cache (st_engine_info.
 * bounded_cache) the sequence may grow past the context without end, the
 * attention plugin choosing what stays. With a dense cache a
 * continuation that does not fit ends with the context-full error.
 * Params and callbacks as for st_sequence_start (fresh_cache is
 * ignored); the stats count the whole past in n_prompt and n_cached.
 * ST_E_STATE when there is nothing to go on from: no request has ended
 * on the sequence since it was opened, emptied (st_sequence_forget),
 * loaded from a file, or since a request ended with an error. */
ST_API st_status st_sequence_continue(st_sequence *s, const int32_t *tokens, size_t n_tokens,
                                      const st_generate_params *params, st_token_fn on_token,
                                      void *user, st_error *err);

/* For a caller that gets whole prompts (a server whose clients send the
 * conversation each turn): k > 0 when `prompt` begins with the sequence's
 * past, every token it has fed since its cache was emptied and, when the
 * last answer's final token was not fed, that token; then
 * st_sequence_continue(s, prompt + k, n - k, ...) runs the rest (an
 * end-of-generation token that ended the answer, never fed, may be in the
 * rest or not). 0 when the prompt does not begin so, leaves nothing to
 * run, or there is nothing to go on from (since 1.10). */
ST_API size_t st_sequence_continued_prefix(const st_sequence *s, const int32_t *prompt,
                                           size_t n);

/* One step of every started sequence (callbacks run from here); since
 * 1.10 the idle sequences do st_engine_idle_step's work in the same pass,
 * at most 64 rows of it each a step. *n_active:
 * the sequences still running after it. An error of the shared pass ends
 * every request in it with that error (see st_sequence_result); the
 * engine stays usable. */
ST_API st_status st_engine_step(st_engine *e, uint32_t *n_active, st_error *err);

/* Work for an idle engine (since 1.8). The keys and values a sequence's
 * request's decode steps wrote round as a one-row step rounds, not as the
 * prefill of a longer prompt, so the prefix cache
 * (st_generate_params.fresh_cache) does not offer them. When no sequence
 * is running, this prefills them again, one block per call, as a prefill
 * of those tokens writes them (the engine's own st_engine_generate cache
 * is not refilled):
 * then a prompt that continues a conversation (the previous prompt, its
 * answer, and more) takes the answer from the cache too, and its answer is
 * still the one an empty cache gives, bit for bit. It does nothing while
 * a sequence runs (st_engine_step then does this work beside it); a
 * request started on a sequence drops what is left of that sequence's
 * work. *more (may be NULL): whether work is left. An
 * error is the background work's only (it is then dropped): nothing a
 * request sees. */
ST_API st_status st_engine_idle_step(st_engine *e, bool *more, st_error *err);

/* How many leading tokens of `prompt` a request started now on the
 * sequence would take from its cache (st_generate_params.fresh_cache):
 * for choosing, among free sequences, the one that holds the most of a
 * prompt (since 1.7). */
ST_API size_t st_sequence_cached_prefix(const st_sequence *s, const int32_t *prompt, size_t n);

/* A sequence's cached prompt in a file, as st_engine_save_prompt and
 * st_engine_load_prompt do for the engine's own cache (since 1.9; what
 * llama-server's slot save and restore do): the save holds the slots the
 * sequence's next request could take (its last prompt, and its answer
 * once st_engine_idle_step has prefilled it again); a loaded file is
 * offered to the sequence's next request (st_sequence_cached_prefix
 * counts it). ST_E_STATE while a request runs on the sequence.
 * st_sequence_forget empties the sequence's cache (llama-server's erase);
 * *n_forgotten (may be NULL): the slots it held. */
ST_API st_status st_sequence_save_prompt(st_sequence *s, const char *path, uint32_t *n_saved,
                                         st_error *err);
ST_API st_status st_sequence_load_prompt(st_sequence *s, const char *path, uint32_t *n_loaded,
                                         st_error *err);
ST_API st_status st_sequence_forget(st_sequence *s, uint32_t *n_forgotten, st_error *err);

/* Whether a request is running on the sequence. */
ST_API bool st_sequence_busy(const st_sequence *s);

/* The last finished request's status (ST_OK, ST_E_CANCELLED, or its
 * error, message in err) and stats (struct_size honoured). */
ST_API st_status st_sequence_result(const st_sequence *s, st_generate_stats *stats,
                                    st_error *err);

/* Stop the sequence's request at its next step; safe from any thread. */
ST_API void st_sequence_cancel(st_sequence *s);

/* Ask a running generate/score to stop at the next token boundary; it then
 * returns ST_E_CANCELLED. Safe from any thread or a signal handler. A
 * cancel that arrives while no request runs stops the next one as it
 * starts (so a Ctrl-C just before a request is not lost); the request that
 * stops on a cancel clears it. */
ST_API void st_engine_cancel(st_engine *e);
/* Withdraw a cancel no request has consumed yet; true when one was pending.
 * For a caller that asked to cancel a request which then ended on its own
 * (its result was not ST_E_CANCELLED): without this, that cancel would
 * stop the next request. */
ST_API bool st_engine_uncancel(st_engine *e);

/* Score a token sequence: nll[t] = -log p(tokens[t] | tokens[<t]) for
 * t >= 1 (nll[0] = 0), through the strategy's attention and positional
 * plugins, in chunks of at most `chunk` tokens (0 = the whole context).
 * With a bounded attention strategy the sequence may be longer than the
 * context. `progress` (optional) is called after each chunk with tokens
 * done; return non-zero from it to cancel. */
typedef int (*st_progress_fn)(void *user, size_t done, size_t total);
ST_API st_status st_engine_score(st_engine *e, const int32_t *tokens, size_t n,
                                 size_t chunk, float *nll, st_progress_fn progress,
                                 void *user, st_error *err);

/* -- ABI 1.3: reading a document of any length (stretch/reader.h) --
 *
 * st_engine_read streams a document through `read`, splits it at sentence
 * boundaries into chunks of at most `chunk` tokens and lets the strategy's
 * reader (the plugin that offers ST_READER_V1) choose, chunk by chunk,
 * what to carry forward given the question. *kept receives what it kept
 * after the last chunk: the context to answer from (generate from BOS,
 * *kept, then the question). Only one chunk and the kept tokens are held,
 * never the whole document. Refused with a reason: a strategy without a
 * reader, an empty document or question, a question longer than a chunk,
 * a chunk that with the kept tokens and the question does not fit the
 * context. A line without sentence boundaries is cut at a space (or a
 * character boundary) every `chunk` bytes, so it is read, not refused. */

/* Fill buf with up to cap bytes of the document; return how many, 0 at its
 * end, or ST_READ_ERROR (the reading stops with ST_E_IO). */
#define ST_READ_ERROR ((size_t)-1)
typedef size_t (*st_read_fn)(void *user, char *buf, size_t cap);

#define ST_READ_CHUNK_DEFAULT 1024

typedef struct st_read_params {
    uint32_t struct_size;      /* sizeof(st_read_params) */
    st_read_fn read;
    void *read_user;
    const char *question;      /* UTF-8, question_len bytes */
    size_t question_len;
    uint32_t chunk;            /* tokens per chunk; 0 = ST_READ_CHUNK_DEFAULT */
    /* Optional, after each chunk: (bytes read so far, 0); non-zero cancels. */
    st_progress_fn progress;
    void *progress_user;
} st_read_params;

typedef struct st_read_stats {
    uint32_t struct_size;      /* sizeof(st_read_stats) */
    uint64_t n_bytes;          /* of the document */
    uint64_t n_tokens;         /* the document's tokens */
    uint64_t n_chunks;
    uint64_t n_sentences;      /* after cutting sentences without a boundary */
    uint32_t max_step_tokens;  /* the longest step: kept + chunk */
    uint32_t n_kept;           /* what the last step kept */
} st_read_stats;

ST_API st_status st_engine_read(st_engine *e, const st_read_params *params, int32_t **kept,
                                size_t *n_kept, st_read_stats *stats, st_error *err);

ST_API void st_free(void *p);
/* A status as text ("out of range") and as its name ("ST_E_RANGE"). */
ST_API const char *st_strerror(st_status status);
ST_API const char *st_status_name(st_status status);

/* The library's version ("0.1.0") and the plugin ABI it hosts, as
 * ST_ABI_VERSION_NUMBER(major, minor): a program built against one set of
 * headers can check the library it runs with. */
#define ST_ABI_VERSION_NUMBER(major, minor) ((uint32_t)(major) * 1000u + (uint32_t)(minor))
ST_API const char *st_version(void);
ST_API uint32_t st_abi_version(void);
/* Peak resident set size of this process in bytes (for reports). */
ST_API uint64_t st_peak_rss_bytes(void);
/* The CPU kernels this process runs and the AMX decision, for reports:
 * "kernels avx2; amx: unavailable (cpu lacks amx-int8)". Probed once
 * (CPUID, XCR0, arch_prctl: never an AMX instruction); a static string. */
ST_API const char *st_cpu_summary(void);

/* The names requests and command lines give the samplers' parameters
 * (since 1.11): OpenAI's request fields with vLLM's and llama-server's
 * (`stretch serve`), llama-cli's flags (`stretch run`, `chat`), and the
 * sampler plugin and parameter each sets (plugins/sampler/). One table for
 * the CLI, the server and the bindings, so that none maps a name to
 * another parameter. Read-only, static. */
typedef struct st_sampling_name {
    const char *field;          /* the request field: "temperature", "top_k", ... */
    const char *flag;           /* llama-cli's flag ("--temp"); NULL for a field's second
                                   name ("repetition_penalty") */
    const char *plugin, *param; /* what it sets, as st_sampler_override names them */
    double lo, hi;              /* the range a request may give */
    bool integer;               /* an integer field */
} st_sampling_name;

/* The i-th name, NULL past the last. */
ST_API const st_sampling_name *st_sampling_name_at(size_t i);

/* The machine's ceilings as the engine sees them (since 1.3), for
 * `stretch bench --roofline`: measured with the engine's threads and
 * kernels (about a second), and what a token costs against them. Decode's
 * ceiling at a context of c cached tokens is read_bytes_per_s /
 * (weight_bytes + c * kv_bytes_per_token) tokens/s; prefill's is
 * dot_ops_per_s / ops_per_token. */
typedef struct st_roofline {
    uint32_t struct_size;
    double read_bytes_per_s;   /* streaming reads of a buffer far past the caches */
    double dot_ops_per_s;      /* multiply-adds x 2 per second of the prefill kernel for the
                                  model's FFN weight type (int8 dot products when quantized),
                                  weights in cache */
    double weight_bytes;       /* weights one decoded token reads */
    double kv_bytes_per_token; /* cache bytes each cached token adds (keys + values, all layers) */
    double ops_per_token;      /* ops per token through the weights (2 x rows x cols) */
    const char *weight_type;   /* "Q4_1", ...: the weight type the dot-product probe ran */
    /* -- ABI 1.11 -- */
    /* read_bytes_per_s is the fastest of the probe's passes; this is its
     * median pass. On a shared host whose
     * bandwidth comes in bursts the two differ, and a decode lasting
     * seconds reads at about the median. Set only where struct_size
     * reaches it. */
    double read_median_bytes_per_s;
} st_roofline;
ST_API st_status st_engine_roofline(st_engine *e, st_roofline *out, st_error *err);

#ifdef __cplusplus
}
#endif
#endif
