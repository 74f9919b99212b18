/*
 * core/yaml_manifest.h - private helpers shared by the plugin and strategy
 * manifest loaders: reading a YAML file into an st_value tree (with
 * positions), the checks and messages every manifest key needs, and the
 * path arithmetic behind "relative to this file" and "inside this
 * directory". Not part of any public or cross-module interface.
 */
#ifndef ST_CORE_YAML_MANIFEST_H
#define ST_CORE_YAML_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "value.h"

/* Manifests are small; anything larger is a mistake (or an attack). */
#define ST_YAML_FILE_MAX (1u << 20)

/* ---- yaml_read.c ------------------------------------------------------ */

/* Read the one YAML document in `path` into a tree whose root is a MAP.
 * Every node's `file` is `label` (not copied: it must outlive the tree);
 * messages name `label` too. Scalars are typed by the YAML 1.2 core schema
 * (only true/false are bools; quoted scalars are strings). Syntax errors
 * carry libfyaml's own line:col; duplicate keys, several documents, an
 * empty file or a non-mapping root are refused. Prints nothing. */
st_status st_yaml_read_map(const char *path, const char *label, st_value **out,
                           st_diag *diag);

/* ---- yaml_check.c ----------------------------------------------------- */

/* Report an error located at `v` (its file:line:col); `v` may be NULL. */
st_status st_yaml_error_at(st_diag *diag, st_status status, const st_value *v,
                           const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Same, located at a map entry's key (falls back to its value). */
st_status st_yaml_error_at_key(st_diag *diag, st_status status,
                               const st_value *map, const st_value_entry *e,
                               const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* What a value is, for "found ..." halves of messages: "'abc' (string)",
 * "12 (int)", "a list", "a mapping", "null". Returns buf. */
const char *st_yaml_describe(const st_value *v, char *buf, size_t cap);

/* Refuse any key of `map` not in `allowed` (NULL-terminated), naming the
 * closest allowed key and listing all of them. `where` says which mapping
 * ("plugin manifest", "parameter 'k'"). */
st_status st_yaml_check_keys(const st_value *map, const char *const *allowed,
                             const char *where, st_diag *diag);

const st_value_entry *st_yaml_entry(const st_value *map, const char *key);

/* Levenshtein distance (saturates for long strings). */
size_t st_yaml_edit_distance(const char *a, const char *b);

/* The candidate closest to `word` within `max_distance`, or NULL. */
const char *st_yaml_closest(const char *word, const char *const *candidates,
                            size_t n, size_t max_distance);

/* "a, b, c" of a NULL-terminated list into buf. Returns buf. */
const char *st_yaml_join(const char *const *items, size_t n, char *buf, size_t cap);

/* Plugin names: [a-z0-9][a-z0-9._-]* */
bool st_yaml_is_plugin_name(const char *s);

/* ---- yaml_path.c ------------------------------------------------------ */

/* Lexically clean a path: collapse "//" and ".", resolve ".." against the
 * preceding component (never above "/"). Malloc'd. */
char *st_yaml_path_normalize(const char *path);

/* `p` if absolute, else `dir`/`p`; normalized. Malloc'd. */
char *st_yaml_path_resolve(const char *dir, const char *p);

/* Canonical form of an absolute path that may not exist yet: symlinks in
 * every existing prefix are resolved (dangling links followed), the missing
 * rest is appended. NULL on error (errno set). Malloc'd. */
char *st_yaml_path_canonical(const char *abs_path);

/* True when canonical `path` lies strictly beneath canonical `dir`. */
bool st_yaml_path_is_beneath(const char *path, const char *dir);

/* ---- yaml_utf8.c ------------------------------------------------------ */

/* Refuse `buf` unless it is UTF-8 throughout, naming the line:col of the
 * first byte that is not. */
st_status st_yaml_check_utf8(const char *buf, size_t len, const char *label, st_diag *diag);

#endif
