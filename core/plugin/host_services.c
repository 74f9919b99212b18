/*
 * core/host_services.c - the default services table (see host_services.h).
 */
#include "host_services.h"

#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct st_host {
    st_host_services services;  /* services.host points back here */
    st_log_sink sink;
    void *sink_ctx;
    st_log_level min_level;
    const st_gguf *model;
    st_score_fn score;
    void *score_ctx;
    const st_vocab_source *vocab;
    void *vocab_ctx;
    const st_host_encoder_v1 *encoder;
    void *encoder_ctx;
    const st_host_kernels *kernels;
    void *kernels_ctx;
    atomic_size_t live;
    atomic_size_t peak;
};

/* Each allocation carries its size in front so free/realloc can account
 * for it; the header keeps max_align_t alignment for the caller's block. */
typedef union st_alloc_header {
    size_t size;
    max_align_t align;
} st_alloc_header;

static st_host *host_of(void *host) { return (st_host *)host; }

static void account(st_host *h, size_t add, size_t sub)
{
    size_t now = atomic_fetch_add(&h->live, add) + add;
    atomic_fetch_sub(&h->live, sub);
    now -= sub;
    size_t peak = atomic_load(&h->peak);
    while (now > peak && !atomic_compare_exchange_weak(&h->peak, &peak, now))
        ;
}

static void *svc_alloc(void *host, size_t size)
{
    if (size > SIZE_MAX - sizeof(st_alloc_header))
        return NULL;
    st_alloc_header *p = malloc(sizeof *p + size);
    if (!p)
        return NULL;
    p->size = size;
    account(host_of(host), size, 0);
    return p + 1;
}

static void *svc_calloc(void *host, size_t n, size_t size)
{
    if (size && n > (SIZE_MAX - sizeof(st_alloc_header)) / size)
        return NULL;
    void *p = svc_alloc(host, n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

static void svc_free(void *host, void *ptr)
{
    if (!ptr)
        return;
    st_alloc_header *p = (st_alloc_header *)ptr - 1;
    account(host_of(host), 0, p->size);
    free(p);
}

static void *svc_realloc(void *host, void *ptr, size_t size)
{
    if (!ptr)
        return svc_alloc(host, size);
    if (size > SIZE_MAX - sizeof(st_alloc_header))
        return NULL;
    st_alloc_header *old = (st_alloc_header *)ptr - 1;
    size_t old_size = old->size;
    st_alloc_header *p = realloc(old, sizeof *p + size);
    if (!p)
        return NULL;
    p->size = size;
    account(host_of(host), size, old_size);
    return p + 1;
}

static void default_sink(void *ctx, st_log_level level, const char *plugin,
                         const char *message)
{
    (void)ctx;
    /* One fprintf so concurrent lines do not interleave (stdio locks). */
    fprintf(stderr, "stretch: [%s] %s%s%s\n", st_log_level_name(level),
            plugin ? plugin : "", plugin ? ": " : "", message);
}

static void svc_log(void *host, st_log_level level, const char *plugin,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void svc_log(void *host, st_log_level level, const char *plugin,
                    const char *fmt, ...)
{
    st_host *h = host_of(host);
    if (level < h->min_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (h->sink)
        h->sink(h->sink_ctx, level, plugin, msg);
    else
        default_sink(NULL, level, plugin, msg);
}

/* Map a reader's status to the message a plugin sees. */
static st_status meta_status(st_status st, const char *key, st_error *err)
{
    switch (st) {
    case ST_OK: return ST_OK;
    case ST_E_NOT_FOUND:
        return st_error_set(err, st, "model has no metadata key '%s'", key);
    case ST_E_RANGE:
        return st_error_set(err, st, "metadata '%s': index out of range", key);
    default:
        return st_error_set(err, st, "metadata '%s': wrong type for this read", key);
    }
}

#define NEED_MODEL(h, err)                                                     \
    do {                                                                       \
        if (!(h)->model)                                                       \
            return st_error_set((err), ST_E_UNAVAILABLE, "no model loaded");      \
    } while (0)

static st_status svc_model_meta(void *host, const char *key, st_meta_value *out,
                                st_error *err)
{
    st_host *h = host_of(host);
    NEED_MODEL(h, err);
    if (!key || !out)
        return st_error_set(err, ST_E_INVALID, "model_meta: NULL key or out");
    return meta_status(st_gguf_meta_value(h->model, key, out), key, err);
}

static st_status svc_meta_array_string(void *host, const char *key, uint64_t index,
                                       const char **str, uint64_t *len, st_error *err)
{
    st_host *h = host_of(host);
    NEED_MODEL(h, err);
    if (!key || !str || !len)
        return st_error_set(err, ST_E_INVALID, "meta_array_string: NULL argument");
    return meta_status(st_gguf_array_string(h->model, key, index, str, len), key, err);
}

static st_status svc_meta_array_int(void *host, const char *key, uint64_t index,
                                    int64_t *out, st_error *err)
{
    st_host *h = host_of(host);
    NEED_MODEL(h, err);
    if (!key || !out)
        return st_error_set(err, ST_E_INVALID, "meta_array_int: NULL argument");
    return meta_status(st_gguf_array_int(h->model, key, index, out), key, err);
}

static st_status svc_meta_array_float(void *host, const char *key, uint64_t index,
                                      double *out, st_error *err)
{
    st_host *h = host_of(host);
    NEED_MODEL(h, err);
    if (!key || !out)
        return st_error_set(err, ST_E_INVALID, "meta_array_float: NULL argument");
    return meta_status(st_gguf_array_float(h->model, key, index, out), key, err);
}

static st_status svc_kernel_compile(void *host, const char *name, const char *source,
                                    const char *options, st_kernel **out, st_error *err)
{
    st_host *h = host_of(host);
    if (out)
        *out = NULL;
    if (!h->kernels)
        return st_error_set(err, ST_E_UNAVAILABLE, "no OpenCL device in this engine");
    if (!name || !source || !out)
        return st_error_set(err, ST_E_INVALID, "kernel_compile: NULL name, source or out");
    return h->kernels->compile(h->kernels_ctx, name, source, options, out, err);
}

static st_status svc_kernel_launch(void *host, st_kernel *kernel,
                                   const st_kernel_arg *args, size_t n_args,
                                   const size_t *global, const size_t *local,
                                   uint32_t dims, st_error *err)
{
    st_host *h = host_of(host);
    if (!h->kernels)
        return st_error_set(err, ST_E_UNAVAILABLE, "no OpenCL device in this engine");
    if (!kernel || !global || (n_args && !args) || dims < 1 || dims > 3)
        return st_error_set(err, ST_E_INVALID,
                            "kernel_launch: expected a kernel, args, a global size and 1-3 "
                            "dims (dims %u)", dims);
    return h->kernels->launch(h->kernels_ctx, kernel, args, n_args, global, local, dims, err);
}

static void svc_kernel_release(void *host, st_kernel *kernel)
{
    st_host *h = host_of(host);
    if (h->kernels && kernel)
        h->kernels->release(h->kernels_ctx, kernel);
}

static const st_host_opencl_v1 opencl_ext = {sizeof opencl_ext, svc_kernel_compile,
                                             svc_kernel_launch, svc_kernel_release};

static st_status svc_model_score(void *host, st_score_request *req, st_error *err)
{
    st_host *h = host_of(host);
    if (!h->score)
        return st_error_set(err, ST_E_UNAVAILABLE, "no model loaded");
    if (!req || req->struct_size < sizeof(uint32_t))
        return st_error_set(err, ST_E_INVALID, "model_score: NULL or empty request");
    return h->score(h->score_ctx, req, err);
}

static const st_host_score_v1 score_ext = {sizeof score_ext, svc_model_score};

static int32_t svc_vocab_n_tokens(void *host)
{
    st_host *h = host_of(host);
    return h->vocab ? h->vocab->n_tokens(h->vocab_ctx) : 0;
}

static st_status svc_vocab_token_bytes(void *host, int32_t id, const char **bytes,
                                       size_t *len, bool *special, st_error *err)
{
    st_host *h = host_of(host);
    if (!h->vocab)
        return st_error_set(err, ST_E_UNAVAILABLE, "no tokenizer in this host");
    if (!bytes || !len || !special)
        return st_error_set(err, ST_E_INVALID, "token_bytes: NULL argument");
    int32_t n = h->vocab->n_tokens(h->vocab_ctx);
    if (id < 0 || id >= n)
        return st_error_set(err, ST_E_RANGE, "token %d is outside the vocabulary of %d",
                            id, n);
    return h->vocab->token_bytes(h->vocab_ctx, id, bytes, len, special, err);
}

static size_t svc_vocab_eog_tokens(void *host, int32_t *ids, size_t cap)
{
    st_host *h = host_of(host);
    return h->vocab ? h->vocab->eog_tokens(h->vocab_ctx, ids, cap) : 0;
}

static const st_host_vocab_v1 vocab_ext = {sizeof vocab_ext, svc_vocab_n_tokens,
                                           svc_vocab_token_bytes, svc_vocab_eog_tokens};

/* Only what this host can serve now is answered: kernels where the engine
 * runs on an OpenCL device, scoring once a model (and its scorer) is
 * attached. */
static const void *svc_get_extension(void *host, const char *id)
{
    st_host *h = host_of(host);
    if (!id)
        return NULL;
    if (strcmp(id, ST_HOST_SCORE_V1) == 0)
        return h->score ? &score_ext : NULL;
    if (strcmp(id, ST_HOST_VOCAB_V1) == 0)
        return h->vocab ? &vocab_ext : NULL;
    if (strcmp(id, ST_HOST_ENCODER_V1) == 0)
        return h->encoder;
    if (strcmp(id, ST_HOST_OPENCL_V1) == 0)
        return h->kernels ? &opencl_ext : NULL;
    return NULL;
}

int st_log_level_from_name(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return ST_LOG_WARN;
    return -1;
}

const char *st_log_level_name(st_log_level level)
{
    switch (level) {
    case ST_LOG_DEBUG: return "debug";
    case ST_LOG_INFO: return "info";
    case ST_LOG_WARN: return "warn";
    case ST_LOG_ERROR: return "error";
    }
    return "?";
}

st_host *st_host_new(void)
{
    st_host *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    st_host_services *s = &h->services;
    s->struct_size = (uint32_t)sizeof *s;
    s->abi_major = ST_ABI_MAJOR;
    s->abi_minor = ST_ABI_MINOR;
    s->host = h;
    s->log = svc_log;
    s->alloc = svc_alloc;
    s->calloc = svc_calloc;
    s->realloc = svc_realloc;
    s->free = svc_free;
    s->error = st_error_set;
    s->model_meta = svc_model_meta;
    s->meta_array_string = svc_meta_array_string;
    s->meta_array_int = svc_meta_array_int;
    s->meta_array_float = svc_meta_array_float;
    s->kernel_compile = svc_kernel_compile;
    s->kernel_launch = svc_kernel_launch;
    s->kernel_release = svc_kernel_release;
    s->model_score = svc_model_score;
    s->get_extension = svc_get_extension;
    h->min_level = ST_LOG_WARN;
    const char *env = getenv("STRETCH_LOG");
    if (env && *env) {
        int lvl = st_log_level_from_name(env);
        if (lvl >= 0)
            h->min_level = (st_log_level)lvl;
    }
    atomic_init(&h->live, 0);
    atomic_init(&h->peak, 0);
    return h;
}

void st_host_free(st_host *h) { free(h); }

const st_host_services *st_host_services_of(st_host *h) { return &h->services; }

void st_host_set_log_sink(st_host *h, st_log_sink sink, void *ctx)
{
    h->sink = sink;
    h->sink_ctx = ctx;
}

void st_host_set_log_level(st_host *h, st_log_level min_level) { h->min_level = min_level; }

void st_host_set_model(st_host *h, const st_gguf *model) { h->model = model; }

void st_host_set_kernels(st_host *h, const st_host_kernels *k, void *ctx)
{
    h->kernels = k;
    h->kernels_ctx = ctx;
}

void st_host_set_scorer(st_host *h, st_score_fn fn, void *ctx)
{
    h->score = fn;
    h->score_ctx = ctx;
}

void st_host_set_vocab(st_host *h, const st_vocab_source *src, void *ctx)
{
    h->vocab = src;
    h->vocab_ctx = ctx;
}

void st_host_set_encoder(st_host *h, const st_host_encoder_v1 *ext, void *ctx)
{
    h->encoder = ext;
    h->encoder_ctx = ctx;
}

void *st_host_encoder_ctx(const st_host *h)
{
    return h->encoder_ctx;
}

size_t st_host_live_bytes(const st_host *h)
{
    return atomic_load(&((st_host *)h)->live);
}

size_t st_host_peak_bytes(const st_host *h)
{
    return atomic_load(&((st_host *)h)->peak);
}
