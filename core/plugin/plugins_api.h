/*
 * core/plugin/plugins_api.h - what the public registry API's files share
 * inside core: the st_plugins handle over a registry, and turning a diag
 * into the caller's st_error.
 */
#ifndef ST_CORE_PLUGINS_API_H
#define ST_CORE_PLUGINS_API_H

#include <stretch/registry.h>

#include "api_arena.h"
#include "registry.h"

/* An empty set (no scan); NULL on allocation failure. */
st_plugins *st_plugins_new_empty(void);
/* The registry behind `p`: add dirs and scan it, then st_plugins_sync. */
st_registry *st_plugins_registry(st_plugins *p);
/* Build the public view of records added since the last sync, and the
 * warnings. ST_E_NOMEM on failure. */
st_status st_plugins_sync(st_plugins *p);
/* The public view of `rec` (which must be in p's registry); NULL if none. */
const st_plugin_info *st_plugins_info_of(const st_plugins *p, const st_plugin_record *rec);
/* The record behind `info`, NULL when `info` is not one of p's. */
const st_plugin_record *st_plugins_record_of(const st_plugins *p, const st_plugin_info *info);

/* The warnings as an array of st_plugins_warning_count lines. */
const char *const *st_plugins_warnings(const st_plugins *p);

/* The warnings as an array of st_plugins_warning_count lines. */
const char *const *st_plugins_warnings(const st_plugins *p);


#endif
