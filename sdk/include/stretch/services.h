/*
 * stretch/services.h - the host services table handed to every plugin's
 * create(). Plugins never link against libstretch: everything they may ask
 * of the host is here (SQLite's api-routines, CLAP's clap_host).
 *
 * Lifetime: the table and its `host` pointer outlive every plugin instance
 * created with it. Threading: every function here may be called from any
 * thread, concurrently, unless its comment says otherwise.
 *
 * A service that cannot work in the current setting (no model loaded, no
 * OpenCL device) returns ST_E_UNAVAILABLE with a message; it never crashes.
 */
#ifndef STRETCH_SERVICES_H
#define STRETCH_SERVICES_H

#include <stdarg.h>
#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct st_host_services st_host_services;

/* Type of a model metadata value (mirrors GGUF's value types, collapsed). */
typedef enum st_meta_type {
    ST_META_NONE = 0,
    ST_META_INT = 1,    /* any signed or unsigned integer, or bool */
    ST_META_FLOAT = 2,  /* f32 or f64 */
    ST_META_STRING = 3,
    ST_META_ARRAY = 4
} st_meta_type;

/* One metadata value. Strings point into host memory valid for the life of
 * the model (at least as long as any plugin instance); they are NOT
 * NUL-terminated: use `len`. For arrays, `array_type` is the element type and
 * `len` the element count; elements are read with meta_array_*. */
typedef struct st_meta_value {
    st_meta_type type;
    st_meta_type array_type;
    int64_t i;
    double f;
    const char *str;
    uint64_t len;
} st_meta_value;

/* An opaque compiled compute kernel (OpenCL program + kernel). */
typedef struct st_kernel st_kernel;

/* One argument to kernel_launch: a host buffer (copied in, and back when
 * `writable`) or a scalar passed by value. */
typedef struct st_kernel_arg {
    void *data;
    size_t size;
    bool is_buffer;
    bool writable;
} st_kernel_arg;

/* What model_score computes for a token sequence. Fields the caller leaves
 * NULL are not computed. All arrays are caller-owned. */
typedef struct st_score_request {
    uint32_t struct_size;
    const int32_t *tokens;    /* the sequence to run through the model */
    size_t n_tokens;
    float *logprob;           /* [n_tokens]: log p(tokens[t] | tokens[<t]); t=0 gets 0 */
    float *entropy;           /* [n_tokens]: -log p(tokens[t] | <t); t=0 gets the max of the rest */
    int32_t attn_layer;       /* layer whose attention is wanted, -1 = last */
    float *attn_weights;      /* [n_tokens * n_tokens]: row q, column k, summed over heads */
    /* ABI 1.4: the first row wanted (0 = all). Rows before it are context
     * only: their logprob and entropy are 0 and their weight rows 0, and
     * the host runs them as a plain prefill (no output head, no weights),
     * so a question scored after a long context costs the context's
     * prefill plus the question's rows. Must be below n_tokens. A 1.0-1.3
     * plugin's request has no such field: every row. */
    size_t score_from;
} st_score_request;

struct st_host_services {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
    void *host;               /* opaque, pass back as the first argument */

    /* Log a message with severity; `plugin` names the caller. */
    void (*log)(void *host, st_log_level level, const char *plugin,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

    /* Memory the host accounts for (peak RSS reports, leak checks). Same
     * contract as malloc/calloc/realloc/free; NULL on failure. */
    void *(*alloc)(void *host, size_t size);
    void *(*calloc)(void *host, size_t n, size_t size);
    void *(*realloc)(void *host, void *ptr, size_t size);
    void (*free)(void *host, void *ptr);

    /* Fill `err` with status and a printf-formatted message; returns status
     * so a plugin can write `return host->error(..)`. `err` may be NULL. */
    st_status (*error)(st_error *err, st_status status, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* Model metadata by GGUF key ("llama.context_length",
     * "tokenizer.ggml.tokens", ...). ST_E_UNAVAILABLE without a model,
     * ST_E_NOT_FOUND for an absent key. */
    st_status (*model_meta)(void *host, const char *key, st_meta_value *out,
                            st_error *err);
    /* Element `index` of an array value found by model_meta. */
    st_status (*meta_array_string)(void *host, const char *key, uint64_t index,
                                   const char **str, uint64_t *len, st_error *err);
    st_status (*meta_array_int)(void *host, const char *key, uint64_t index,
                                int64_t *out, st_error *err);
    st_status (*meta_array_float)(void *host, const char *key, uint64_t index,
                                  double *out, st_error *err);

    /* The kernel and scoring entry points below are kept for 1.0-1.1
     * plugins and answer ST_E_UNAVAILABLE where the host cannot serve
     * them. Since 1.2 ask get_extension(ST_HOST_OPENCL_V1 /
     * ST_HOST_SCORE_V1) instead: a host that cannot serve one answers
     * NULL, so a plugin learns it at create time.
     *
     * Compile `source` (OpenCL C) for the engine's device; the host caches
     * binaries. ST_E_UNAVAILABLE on the CPU backend. */
    st_status (*kernel_compile)(void *host, const char *name, const char *source,
                                const char *options, st_kernel **out, st_error *err);
    st_status (*kernel_launch)(void *host, st_kernel *kernel,
                               const st_kernel_arg *args, size_t n_args,
                               const size_t *global, const size_t *local,
                               uint32_t dims, st_error *err);
    void (*kernel_release)(void *host, st_kernel *kernel);

    /* Run the loaded model over tokens and return what `req` asks for.
     * Not re-entrant with the engine's own generation: call it from create
     * or from a retriever/attention call the host documents as "may score".
     * ST_E_UNAVAILABLE without a model. */
    st_status (*model_score)(void *host, st_score_request *req, st_error *err);

    /* Optional host capabilities by namespaced, revisioned id
     * ("stretch.host.xyz/1"); NULL when unsupported. */
    const void *(*get_extension)(void *host, const char *id);
};

/* Device kernels, where the engine runs on an OpenCL device (ABI 1.2).
 * The functions behave as the services table's kernel_* entries. */
#define ST_HOST_OPENCL_V1 "stretch.host.opencl/1"
typedef struct st_host_opencl_v1 {
    uint32_t struct_size;
    st_status (*kernel_compile)(void *host, const char *name, const char *source,
                                const char *options, st_kernel **out, st_error *err);
    st_status (*kernel_launch)(void *host, st_kernel *kernel, const st_kernel_arg *args,
                               size_t n_args, const size_t *global, const size_t *local,
                               uint32_t dims, st_error *err);
    void (*kernel_release)(void *host, st_kernel *kernel);
} st_host_opencl_v1;

/* Model scoring, where the host has a model to score with (ABI 1.2);
 * model_score behaves as the services table's entry. */
#define ST_HOST_SCORE_V1 "stretch.host.score/1"
typedef struct st_host_score_v1 {
    uint32_t struct_size;
    st_status (*model_score)(void *host, st_score_request *req, st_error *err);
} st_host_score_v1;

/* The vocabulary as bytes, where the engine has a tokenizer (ABI 1.3).
 * Constraint samplers (grammars, JSON Schema, regex) need each token's
 * exact bytes to tell which tokens keep the output a valid prefix.
 *
 * n_tokens: the vocabulary size (ids are 0..n_tokens-1).
 * token_bytes: the exact bytes token `id` stands for, byte-level pieces
 *   already decoded (GPT-2's "\u0120the" is " the"); valid for the life of
 *   the engine. *special is true for control tokens (BOS, EOS,
 *   "<|im_start|>"): their bytes are their text, which a constraint must
 *   not treat as output. ST_E_RANGE for an id outside the vocabulary.
 * eog_tokens: the ids that end generation (EOS, end-of-turn); writes at
 *   most `cap` of them and returns how many there are. */
#define ST_HOST_VOCAB_V1 "stretch.host.vocab/1"
typedef struct st_host_vocab_v1 {
    uint32_t struct_size;
    int32_t (*n_tokens)(void *host);
    st_status (*token_bytes)(void *host, int32_t id, const char **bytes, size_t *len,
                             bool *special, st_error *err);
    size_t (*eog_tokens)(void *host, int32_t *ids, size_t cap);
} st_host_vocab_v1;

/* Sentence encoders (since 1.3): a retriever embeds text with a BERT-family
 * encoder the host runs (stretch/encoder.h), so the plugin needs no model
 * code and never links the host. `model` is a GGUF path; a relative one
 * is taken from the directory of the manifest that wrote it. `embed`
 * writes `dim` floats (L2-normalised for sentence-transformers models).
 * An encoder is used by one thread at a time; close it before the
 * instance that opened it is destroyed. */
#define ST_HOST_ENCODER_V1 "stretch.host.encoder/1"
typedef struct st_host_encoder st_host_encoder;
typedef struct st_host_encoder_v1 {
    uint32_t struct_size;
    st_status (*open)(void *host, const char *model, st_host_encoder **out, uint32_t *dim,
                      st_error *err);
    st_status (*embed)(void *host, st_host_encoder *enc, const char *text, size_t len,
                       float *out, st_error *err);
    void (*close)(void *host, st_host_encoder *enc);
    /* Since 1.5 (present when struct_size covers it): n texts at once into
     * out[n][dim], each vector equal to what `embed` gives for its text,
     * but many times faster: their tokens go through the model together,
     * so each weight row is read once per tile of tokens. */
    st_status (*embed_batch)(void *host, st_host_encoder *enc, size_t n,
                             const char *const *texts, const size_t *lens, float *out,
                             st_error *err);
} st_host_encoder_v1;

#ifdef __cplusplus
}
#endif
#endif
