/*
 * core/engine/plugin_site.h - finding, loading and creating the plugins a
 * strategy names, shared by the engine (every kind, with a model) and the
 * model-less retriever handle (st_retriever_open).
 */
#ifndef ST_CORE_PLUGIN_SITE_H
#define ST_CORE_PLUGIN_SITE_H

#include <stretch/stretch.h>

#include "host_services.h"
#include "manifest.h"
#include "registry.h"

/* One plugin held open: its library and its instance. */
typedef struct st_engine_plugin {
    st_library *lib;
    st_instance *in;
} st_engine_plugin;

/* Where plugins are opened: the registry to find them in, the host whose
 * services they get, and what the host can give (for `requires:`). */
typedef struct st_plugin_site {
    st_registry *registry;
    st_host *host;
    const char *backend;
    bool has_model;
    /* For one request (a server's client): failures do not name the
     * plugin's files, which are the host's, only what went wrong. */
    bool for_request;
} st_plugin_site;

/* The caller's options read by their struct_size into *copy (fields it does
 * not know stay zero); *opts is then copy, or NULL when caller is NULL. */
st_status st_engine_options_read(const st_engine_options *caller, st_engine_options *copy,
                                 const st_engine_options **opts, st_error *err);

/* Fill `registry` the way st_engine_open does: the options' directories,
 * the strategy's plugin-dirs, then the scan ($STRETCH_PLUGIN_PATH, built-in). */
st_status st_engine_registry_fill(st_registry *registry, const st_engine_options *opts,
                                  const st_strategy *s, st_diag *diag);

/* Find, load and create the plugin `ref` names for `kind`. */
st_status st_engine_plugin_open(const st_plugin_site *site, st_kind kind,
                                const st_plugin_ref *ref, st_engine_plugin *out,
                                st_error *err);
void st_engine_plugin_release(st_engine_plugin *p);

#endif
