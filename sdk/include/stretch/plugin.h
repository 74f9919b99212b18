/*
 * stretch/plugin.h - the one thing a plugin library exports.
 *
 * A plugin is a shared object with exactly one exported symbol,
 * `stretch_plugin_entry` (ST_PLUGIN_ENTRY_SYMBOL), a const st_plugin_entry.
 * Beside it lies its plugin.yaml manifest, which the host reads first; the
 * entry must agree with it on kind and name, and its ABI major must equal
 * the host's (its minor no newer).
 *
 * Lifecycle: create -> ops calls -> destroy. create receives the host
 * services table (valid until after destroy) and the parameters, already
 * validated against plugin.yaml's schema with every default filled, as a
 * read-only st_params view (stretch/params.h). The view is only valid
 * during create: copy what you keep.
 *
 * ABI 1.1 plugins received a msgpack map instead; the host still gives
 * them one (it looks at the entry's abi_minor), and 1.1 sources compile
 * unchanged with ST_PLUGIN_PARAMS_MSGPACK defined (stretch/params.h).
 *
 * Threading: create and destroy are called from the engine thread, never
 * concurrently with other calls on the same instance. Ops' threading is
 * stated in each kind's header. Different instances are independent.
 */
#ifndef STRETCH_PLUGIN_H
#define STRETCH_PLUGIN_H

#include "common.h"
#include "params.h"
#include "services.h"
#include "tokenizer.h"
#include "posenc.h"
#include "attention.h"
#include "sampler.h"
#include "retriever.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_PLUGIN_ENTRY_SYMBOL "stretch_plugin_entry"

/* What create() receives, and the minor version the entry declares. */
#ifdef ST_PLUGIN_PARAMS_MSGPACK
typedef msgpack_object st_plugin_params;
#define ST_PLUGIN_ABI_MINOR 1
#else
typedef st_params st_plugin_params;
#define ST_PLUGIN_ABI_MINOR ST_ABI_MINOR
#endif

typedef struct st_plugin_entry {
    uint16_t abi_major;      /* ST_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;      /* ST_ABI_MINOR the plugin was built with */
    uint32_t struct_size;    /* sizeof(st_plugin_entry) at build time */
    st_kind kind;
    const char *name;        /* must equal plugin.yaml's name */
    const char *version;     /* the plugin's own version, e.g. "1.2.0" */
    const char *summary;

    /* Make an instance. On failure fill `err`, leave *inst untouched and
     * free anything allocated. */
    st_status (*create)(const st_host_services *host, const st_plugin_params *params,
                        void **inst, st_error *err);
    void (*destroy)(void *inst);

    /* The kind's ops table: st_tokenizer_ops, st_posenc_ops,
     * st_attention_ops, st_sampler_ops or st_retriever_ops. */
    const void *ops;

    /* Optional capabilities by namespaced, revisioned id
     * ("stretch.attention.observer/1"); NULL = unsupported. May be NULL. */
    const void *(*get_extension)(void *inst, const char *id);
} st_plugin_entry;

/* Declare the entry: ST_PLUGIN(ST_KIND_SAMPLER, "greedy", "1.0.0", "...",
 * my_create, my_destroy, &my_ops, NULL); */
#define ST_PLUGIN(kind_, name_, version_, summary_, create_, destroy_, ops_, ext_) \
    ST_EXPORT const st_plugin_entry stretch_plugin_entry = {                   \
        ST_ABI_MAJOR, ST_PLUGIN_ABI_MINOR, (uint32_t)sizeof(st_plugin_entry),  \
        (kind_), (name_), (version_), (summary_), (create_), (destroy_),       \
        (ops_), (ext_)}

static inline const char *st_kind_name(st_kind kind)
{
    switch (kind) {
    case ST_KIND_TOKENIZER: return "tokenizer";
    case ST_KIND_POSENC: return "positional-encoding";
    case ST_KIND_ATTENTION: return "attention";
    case ST_KIND_SAMPLER: return "sampler";
    case ST_KIND_RETRIEVER: return "retriever";
    }
    return "unknown";
}

#ifdef __cplusplus
}
#endif
#endif
