/*
 * tools/stretch/cli_common.h - pieces the plugin commands share: building
 * the registry, printing values and parameter schemas (text and JSON), and
 * turning a load report into output.
 */
#ifndef ST_CLI_COMMON_H
#define ST_CLI_COMMON_H

#include <msgpack.h>
#include <stdio.h>

#include "json_out.h"
#include "load_check.h"
#include "registry.h"

/* New registry with `dirs` added in order, scanned. NULL on failure with a
 * one-line message printed to stderr and *exit_code set. */
st_registry *st_cli_registry(char **dirs, size_t n_dirs, int *exit_code);

/* Print "stretch: <diag line>" to stderr. */
void st_cli_error(const st_diag *d);

/* Print "stretch: warning: <note>" to stderr for what the scan of `r`
 * skipped (world-writable places, a search cut short). */
void st_cli_registry_warnings(const st_registry *r);
/* The same notes as a JSON array of "file: message" strings. */
void st_cli_registry_warnings_json(st_json *j, const st_registry *r);

/* `s` with control characters escaped (text_escape.h), for printing text
 * that comes from a file or a plugin. The result lives in one of a ring of
 * eight buffers: valid until the eighth call after. NULL gives "". */
const char *st_cli_safe(const char *s);

/* A YAML value in flow style ("0.5", "[a, b]", "{k: v}"). Returns buf. */
const char *st_cli_value_text(const st_value *v, char *buf, size_t cap);
void st_cli_value_json(st_json *j, const st_value *v);

/* A msgpack object (validated params) as "k=v, ..." text / JSON. */
void st_cli_msgpack_text(FILE *f, const msgpack_object *o);
void st_cli_msgpack_json(st_json *j, const msgpack_object *o);

/* The parameter schema of `m` as text lines / a JSON array. */
void st_cli_params_text(FILE *f, const st_plugin_manifest *m, const char *indent);
void st_cli_params_json(st_json *j, const st_plugin_manifest *m);

/* The "load" JSON object of a report. */
void st_cli_report_json(st_json *j, const st_plugin_manifest *m, const st_load_report *r);

/* "1.0" or "-" */
const char *st_cli_abi_text(const st_load_report *r, char *buf, size_t cap);

/* The exit code a failed report maps to. */
int st_cli_report_exit(const st_load_report *r);

/* Grow-able list of strings for repeated flags (--path). */
typedef struct st_strlist {
    char **items;
    size_t n;
} st_strlist;
int st_strlist_push(st_strlist *l, char *s); /* s not copied; 0 on success */
void st_strlist_free(st_strlist *l);          /* frees the array only */

#endif
