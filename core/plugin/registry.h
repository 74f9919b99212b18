/*
 * core/registry.h - find plugins by reading their manifests (never running
 * their code), and load them with every check the ABI promises.
 *
 * Search order: directories added explicitly (a strategy's plugin-dirs),
 * then each entry of STRETCH_PLUGIN_PATH (colon-separated), then the
 * built-in directory (<exe>/../lib/stretch/plugins, else the install
 * prefix's). A directory is scanned recursively for files named plugin.yaml.
 * The first plugin of a (kind, name) wins; later duplicates are listed as
 * shadowed. A manifest that fails to parse is listed with its reason.
 * Every directory is entered once however many symlinks lead to it, a
 * search directory is read for a bounded number of entries, and
 * world-writable directories and manifests are skipped: each skip leaves
 * a note.
 */
#ifndef ST_CORE_REGISTRY_H
#define ST_CORE_REGISTRY_H

#include <stretch/plugin.h>
#include <stretch/registry.h>
#include "diag.h"
#include "manifest.h"

/* st_plugin_state, st_refusal, st_refusal_name() and
 * st_builtin_plugin_dir() are public: <stretch/registry.h>. */

typedef struct st_plugin_record {
    char *manifest_path;
    st_plugin_manifest *manifest; /* NULL when BROKEN */
    st_plugin_state state;
    st_refusal refusal;
    st_diag diag;                 /* reason when BROKEN/REFUSED */
} st_plugin_record;

typedef struct st_registry st_registry;

st_registry *st_registry_new(void);
void st_registry_free(st_registry *r);
/* Add a directory to scan (call before st_registry_scan). */
st_status st_registry_add_dir(st_registry *r, const char *dir, st_diag *diag);
/* Scan explicit dirs, STRETCH_PLUGIN_PATH and the built-in dir. */
st_status st_registry_scan(st_registry *r, st_diag *diag);
/* Add one plugin.yaml directly (inspect PATH). */
st_status st_registry_add_manifest(st_registry *r, const char *path,
                                   const st_plugin_record **out, st_diag *diag);
size_t st_registry_count(const st_registry *r);
const st_plugin_record *st_registry_at(const st_registry *r, size_t i);
/* What the scan skipped and why (a world-writable directory or manifest,
 * a search cut short): warnings, path in `file`, status ST_OK. The first
 * few are kept; st_registry_notes_dropped counts the rest. */
size_t st_registry_note_count(const st_registry *r);
const st_diag *st_registry_note_at(const st_registry *r, size_t i);
size_t st_registry_notes_dropped(const st_registry *r);
/* kind 0 = any kind. NULL when not found (diag says what was searched). */
const st_plugin_record *st_registry_find(const st_registry *r, st_kind kind,
                                         const char *name, st_diag *diag);

/* A loaded library (dlopen handle + checked entry). */
typedef struct st_library {
    void *handle;
    const st_plugin_entry *entry;
    const st_plugin_manifest *manifest; /* not owned */
} st_library;

/* dlopen and check against the manifest. On refusal fill *refusal and diag
 * (path, dlerror() text, both ABI versions where relevant). */
st_status st_library_open(const st_plugin_manifest *m, st_library **out,
                          st_refusal *refusal, st_diag *diag);
void st_library_close(st_library *lib);

/* The library whose constructors (dlopen) or create() run right now, NULL
 * otherwise: a plugin that ends the process from there (exit(), abort())
 * leaves it set, so an atexit or signal hook can name it instead of the
 * process ending in silence. */
const char *st_library_loading(void);
void st_library_set_loading(const char *path);

/* A created instance. */
typedef struct st_instance {
    st_library *lib;
    void *inst;
    const void *ops;
} st_instance;

/* Validate params against the schema, pack them, and call create(). */
st_status st_instance_create(st_library *lib, const st_host_services *host,
                             const st_value *params, st_instance **out,
                             st_diag *diag);
void st_instance_destroy(st_instance *in);

#endif
