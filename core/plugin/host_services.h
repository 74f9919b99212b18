/*
 * core/host_services.h - the host side of the services table handed to
 * every plugin's create() (sdk/include/stretch/services.h).
 *
 * One st_host owns one table. What the table can do depends on what the
 * engine installs: a model (metadata), a scorer (model_score), a log sink.
 * Without them the services answer ST_E_UNAVAILABLE with a message, as the
 * ABI promises; they never crash.
 *
 * Lifetime: the st_host must outlive every instance created with its table.
 * Setters are for the engine thread before instances run; the services
 * themselves may be called from any thread.
 */
#ifndef ST_CORE_HOST_SERVICES_H
#define ST_CORE_HOST_SERVICES_H

#include <stretch/services.h>
#include "gguf.h"

typedef struct st_host st_host;

/* Where plugin log lines go. `plugin` may be NULL. */
typedef st_log_fn st_log_sink;

/* The engine's implementation of model_score. */
typedef st_status (*st_score_fn)(void *ctx, st_score_request *req, st_error *err);

/* NULL on allocation failure. Log threshold from STRETCH_LOG
 * (debug|info|warn|error, default warn). */
st_host *st_host_new(void);
void st_host_free(st_host *h);
const st_host_services *st_host_services_of(st_host *h);

/* NULL sink = the default (stderr: "stretch: [level] plugin: message"). */
void st_host_set_log_sink(st_host *h, st_log_sink sink, void *ctx);
void st_host_set_log_level(st_host *h, st_log_level min_level);
/* Model metadata source; not owned, must outlive the instances. NULL = none. */
void st_host_set_model(st_host *h, const st_gguf *model);
/* NULL fn = none (model_score answers ST_E_UNAVAILABLE). */
void st_host_set_scorer(st_host *h, st_score_fn fn, void *ctx);

/* Where the vocabulary extension (ST_HOST_VOCAB_V1) gets its answers:
 * the engine installs its tokenizer here before it creates the samplers.
 * The host checks ids and lengths; the source only looks them up. */
typedef struct st_vocab_source {
    int32_t (*n_tokens)(void *ctx);
    st_status (*token_bytes)(void *ctx, int32_t id, const char **bytes, size_t *len,
                             bool *special, st_error *err);
    size_t (*eog_tokens)(void *ctx, int32_t *ids, size_t cap);
} st_vocab_source;
/* NULL src = none (get_extension answers NULL for the vocabulary). `src`
 * is not copied and must outlive the instances. */
void st_host_set_vocab(st_host *h, const st_vocab_source *src, void *ctx);

/* The encoder extension (ST_HOST_ENCODER_V1), answered once installed;
 * `ctx` is what the implementation reads back with st_host_encoder_ctx.
 * NULL = none. The engine layer provides it (core/engine/encoder.c). */
void st_host_set_encoder(st_host *h, const st_host_encoder_v1 *ext, void *ctx);
void *st_host_encoder_ctx(const st_host *h);

/* The device kernels a backend offers plugins: kernel_compile, _launch
 * and _release of the table and of ST_HOST_OPENCL_V1 call these with
 * `ctx`. NULL k = none (ST_E_UNAVAILABLE, and no extension). `ctx` must
 * outlive every instance. */
typedef struct st_host_kernels {
    st_status (*compile)(void *ctx, const char *name, const char *source, const char *options,
                         st_kernel **out, st_error *err);
    st_status (*launch)(void *ctx, st_kernel *kernel, const st_kernel_arg *args, size_t n_args,
                        const size_t *global, const size_t *local, uint32_t dims,
                        st_error *err);
    void (*release)(void *ctx, st_kernel *kernel);
} st_host_kernels;
void st_host_set_kernels(st_host *h, const st_host_kernels *k, void *ctx);

/* Bytes plugins currently hold through alloc/calloc/realloc, and the peak. */
size_t st_host_live_bytes(const st_host *h);
size_t st_host_peak_bytes(const st_host *h);

/* "debug" -> ST_LOG_DEBUG ...; -1 when unknown. */
int st_log_level_from_name(const char *name);
const char *st_log_level_name(st_log_level level);

#endif
