/*
 * stretch/stretch.h - the host API: open an engine from a strategy
 * manifest, tokenize, generate with a per-token callback, cancel, score.
 * `stretch run`, `stretch eval`, `stretch bench` and any embedding
 * application use this and nothing private (llama.h's role for llama.cpp).
 *
 * Threading: one engine serves one request at a time; every call on an
 * engine must come from one thread at a time, except st_engine_cancel,
 * which may be called from any thread (or a signal handler) at any time.
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
    /* The backend that runs the model ("cpu", "opencl") and, on OpenCL,
     * the device's name ("" on the CPU); the program build or cache load
     * time and the device memory held. */
    const char *backend;
    const char *device_name;
    double kernel_compile_ms;
    bool kernel_cache_hit;
    uint64_t device_bytes;
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

/* Called once per generated token with the text it completes: bytes are
 * held back until they form whole UTF-8 characters, so `text` is always
 * valid UTF-8 (possibly empty). Return non-zero to stop. */
typedef int (*st_token_fn)(void *user, int32_t token, const char *text, size_t len);

typedef struct st_generate_params {
    uint32_t struct_size;
    uint32_t max_tokens;     /* stop after this many generated tokens */
    uint64_t seed;           /* handed to every sampler's reset() */
    bool ignore_eos;         /* keep going past end-of-generation tokens */
    float *first_logits;     /* optional [n_vocab]: the raw logits after the prompt */
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
} st_generate_stats;

/* Run the prompt (all tokens, prepacked into blocks) and generate. The KV
 * cache starts empty for each call. Generation ends at max_tokens, an
 * end-of-generation token, a full context (ST_OK with stopped_by_context)
 * or a cancel. Logits that are not finite (a NaN or infinite weight) are
 * an error (ST_E_RANGE), never sampled. */
ST_API st_status st_engine_generate(st_engine *e, const int32_t *prompt, size_t n_prompt,
                                    const st_generate_params *params,
                                    st_token_fn on_token, void *user,
                                    st_generate_stats *stats, st_error *err);

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

#ifdef __cplusplus
}
#endif
#endif
