/*
 * core/manifest.h - plugin manifests (plugin.yaml) and strategy manifests
 * (manifests/ *.yaml), parsed with libfyaml. Nothing half-loads: a load
 * either returns a complete object or fills the diag and returns an error.
 * See docs/manifests.md for the formats.
 */
#ifndef ST_CORE_MANIFEST_H
#define ST_CORE_MANIFEST_H

#include <msgpack.h>
#include <stretch/common.h>
#include <stretch/registry.h> /* st_kind_from_name, ST_CONTEXT_MIN, ... */
#include "diag.h"
#include "value.h"

#define ST_MANIFEST_FORMAT 1

typedef struct st_param_schema {
    char *name;
    st_param_type type;
    bool has_default;
    st_value *default_value;  /* typed per `type` */
    bool has_min, has_max;
    double min, max;          /* numeric types only; inclusive */
    char **enum_values;       /* ST_PARAM_ENUM */
    size_t n_enum;
    char *unit;               /* may be NULL */
    char *doc;                /* may be NULL */
    bool required;            /* no default: the strategy must give it */
} st_param_schema;

typedef struct st_plugin_manifest {
    char *path;          /* the plugin.yaml as given */
    char *dir;           /* its directory (absolute) */
    int format;
    char *name;
    st_kind kind;
    char *version;
    char *library;       /* as written */
    char *library_path;  /* resolved absolute path, inside dir */
    char *summary;
    char **requires;     /* host features required ("model", "opencl") */
    size_t n_requires;
    char **optional;     /* host features used when present */
    size_t n_optional;
    st_param_schema *params;
    size_t n_params;
} st_plugin_manifest;

/* Parse and check a plugin.yaml (including that `library:` resolves inside
 * the manifest's directory). Does not open the library. */
st_status st_plugin_manifest_load(const char *path, st_plugin_manifest **out,
                                  st_diag *diag);
void st_plugin_manifest_free(st_plugin_manifest *m);
const st_param_schema *st_plugin_manifest_param(const st_plugin_manifest *m,
                                                const char *name);
/* st_param_type_name() and st_kind_from_name() are public: <stretch/registry.h>. */

/* Validate `given` (a MAP from a strategy manifest, or NULL) against the
 * schema: unknown keys, wrong types and out-of-range values are refused
 * with the node's file:line:col; defaults are filled; ints given for floats
 * are promoted. Packs the complete parameter map as msgpack into `out`
 * (caller inits/destroys the sbuffer). */
st_status st_params_validate(const st_plugin_manifest *m, const st_value *given,
                             msgpack_sbuffer *out, st_diag *diag);

/* One plugin chosen by a strategy. */
typedef struct st_plugin_ref {
    char *plugin;        /* plugin name; NULL = none chosen (retriever) */
    st_value *params;    /* MAP or NULL */
    const char *file;    /* where it was chosen, for messages */
    int line, col;
} st_plugin_ref;

/* The contexts a strategy's `context:` accepts; an engine option or CLI
 * flag that overrides it is held to the same range. */
#define ST_STRATEGY_CONTEXT_MIN ST_CONTEXT_MIN
#define ST_STRATEGY_CONTEXT_MAX ST_CONTEXT_MAX

typedef struct st_strategy {
    char *path;
    char *model;         /* resolved against the manifest's directory; may be NULL */
    char *backend;       /* "cpu", "opencl", "opencl:P:D"; default "cpu" */
    char *device;        /* key "device": an OpenCL device index or name substring; NULL */
    uint32_t context;    /* tokens; default 2048 */
    uint32_t kv_type;    /* key "kv-type": an st_kv_type (kv_type.h); default f16 */
    uint32_t threads;    /* 0 = all cores */
    uint32_t parallel;   /* sequences an engine may run at once; default 1 */
    st_plugin_ref tokenizer;
    st_plugin_ref posenc;      /* key "positional-encoding" */
    st_plugin_ref attention;
    st_plugin_ref *samplers;   /* key "samplers": ordered chain */
    size_t n_samplers;
    st_plugin_ref retriever;   /* optional */
    /* The retriever block's own keys (retrieval-augmented generation):
     * `index:` (resolved against its manifest; NULL = none), `top_k:`
     * (hits put into the prompt; 0 = the default) and `template:` (NULL =
     * the default; docs/retrieval.md). Cleared with the block. */
    char *retriever_index;
    const char *retriever_index_file; /* where `index:` was written */
    int retriever_index_line, retriever_index_col;
    uint32_t retriever_top_k;
    char *retriever_template;
    /* `rerank:` (the first stage's best N re-scored by the strategy's
     * model; 0 = none) and `rerank_template:` (what precedes the query,
     * NULL = the default; docs/retrieval.md). */
    uint32_t retriever_rerank;
    char *retriever_rerank_template;
    /* `prerequisites:` (each hit followed by the documents whose endpoint
     * path its text names; docs/retrieval.md). */
    bool retriever_prerequisites;
    char **plugin_dirs;        /* key "plugin-dirs", resolved */
    size_t n_plugin_dirs;
    char **files;              /* every manifest read, extends chain first-to-last;
                                  st_value/st_plugin_ref `file` fields point here */
    size_t n_files;
} st_strategy;

/* Parse a strategy manifest, resolving `extends:` (cycles refused). */
st_status st_strategy_load(const char *path, st_strategy **out, st_diag *diag);
void st_strategy_free(st_strategy *s);

#endif
