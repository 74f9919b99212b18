/*
 * stretch/common.h - what every part of the plugin ABI shares: versions,
 * status codes, plugin kinds, the error buffer and the export macro.
 *
 * ABI rule: a host loads a plugin when the plugin's ABI major equals the
 * host's and the plugin's minor is not newer than the host's. Structs that
 * may grow begin with `struct_size`; new fields go at the end and nothing is
 * reordered or renamed within a major version.
 */
#ifndef STRETCH_COMMON_H
#define STRETCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ST_ABI_MAJOR 1
#define ST_ABI_MINOR 11

/* Plugins are built with -fvisibility=hidden by the SDK's CMake helper; this
 * macro is what makes the one entry symbol visible anyway. */
#if defined(_WIN32)
#define ST_EXPORT __declspec(dllexport)
#else
#define ST_EXPORT __attribute__((visibility("default")))
#endif

/* Every fallible call returns one of these. Zero is success, errors are
 * negative so `if (st < 0)` reads naturally (libuv's convention). */
typedef enum st_status {
    ST_OK = 0,
    ST_E_INVALID = -1,      /* an argument or parameter is wrong */
    ST_E_NOMEM = -2,        /* an allocation failed */
    ST_E_IO = -3,           /* a file could not be read or written */
    ST_E_FORMAT = -4,       /* input is malformed (YAML, GGUF, msgpack, ...) */
    ST_E_UNAVAILABLE = -5,  /* the service or capability is not available */
    ST_E_RANGE = -6,        /* a value or buffer size is out of range */
    ST_E_NOT_FOUND = -7,    /* a name, key, file or symbol was not found */
    ST_E_ABI = -8,          /* ABI version or descriptor mismatch */
    ST_E_STATE = -9,        /* the call is not valid in the current state */
    ST_E_CANCELLED = -10,   /* the operation was cancelled by the caller */
    ST_E_PLUGIN = -11,      /* a plugin failed; its message says why */
    ST_E_INTERNAL = -12     /* a bug in stretch: please report it */
} st_status;

/* The five plugin kinds. Manifests and output spell them exactly as
 * st_kind_name() returns: tokenizer, positional-encoding, attention,
 * sampler, retriever. */
typedef enum st_kind {
    ST_KIND_TOKENIZER = 1,
    ST_KIND_POSENC = 2,
    ST_KIND_ATTENTION = 3,
    ST_KIND_SAMPLER = 4,
    ST_KIND_RETRIEVER = 5
} st_kind;
#define ST_KIND_COUNT 5

/* A plugin parameter's type, as plugin.yaml declares it (`type:`). */
typedef enum st_param_type {
    ST_PARAM_INT = 0,
    ST_PARAM_FLOAT = 1,
    ST_PARAM_BOOL = 2,
    ST_PARAM_STRING = 3,
    ST_PARAM_ENUM = 4      /* a string from the declared `enum:` list */
} st_param_type;

typedef enum st_log_level {
    ST_LOG_DEBUG = 0,
    ST_LOG_INFO = 1,
    ST_LOG_WARN = 2,
    ST_LOG_ERROR = 3
} st_log_level;

/* How the forward pass rounds: the fast path, or llama.cpp's float
 * operations bit for bit (slower; for equality checks, docs/forward.md). */
typedef enum st_numerics {
    ST_NUMERICS_DEFAULT = 0, /* $STRETCH_NUMERICS ("ggml" or "fast"), else fast */
    ST_NUMERICS_FAST = 1,
    ST_NUMERICS_GGML = 2
} st_numerics;

/* A log line from the host or a plugin (`source` names it; may be NULL). */
typedef void (*st_log_fn)(void *user, st_log_level level, const char *source,
                          const char *message);

/* Where a plugin writes why a call failed. The caller owns it; a plugin
 * fills `message` (NUL-terminated, truncated to fit) and returns the status.
 * A plugin never prints, exits or aborts. */
#define ST_ERROR_MESSAGE_MAX 512
typedef struct st_error {
    st_status status;
    char message[ST_ERROR_MESSAGE_MAX];
} st_error;

#ifdef __cplusplus
}
#endif
#endif
