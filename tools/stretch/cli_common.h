/*
 * tools/stretch/cli_common.h - pieces the plugin commands share: building
 * the registry, printing values and parameter schemas (text and JSON), and
 * turning a load report into output.
 */
#ifndef ST_CLI_COMMON_H
#define ST_CLI_COMMON_H

#include <stdio.h>
#include <stretch/registry.h>

#include "json_out.h"

/* The plugins in `dirs` (in order), $STRETCH_PLUGIN_PATH and the built-in
 * directory, with the scan's warnings printed. NULL on failure with a
 * one-line message printed to stderr and *exit_code set. */
st_plugins *st_cli_registry(char **dirs, size_t n_dirs, int *exit_code);

/* Print "stretch: <line>" to stderr. */
void st_cli_error(const char *line);

/* Print "stretch: warning: <line>" to stderr for each of what a scan
 * skipped (world-writable places, a search cut short), and how many more. */
void st_cli_warnings(const char *const *lines, size_t n, size_t dropped);

/* `s` with control characters escaped (st_text_safe), for printing text
 * that comes from a file or a plugin. The result lives in one of a ring of
 * eight buffers: valid until the eighth call after. NULL gives "". */
const char *st_cli_safe(const char *s);

/* Whether `p` names a regular file (following links). */
bool st_cli_is_file(const char *p);

/* Validated parameters of a resolved plugin as "k=v, ..." text / a JSON
 * object. */
void st_cli_params_values_text(FILE *f, const st_resolved_plugin *p);
void st_cli_params_values_json(st_json *j, const st_resolved_plugin *p);

/* The parameter schema of `m` as text lines / a JSON array. */
void st_cli_params_text(FILE *f, const st_plugin_info *m, const char *indent);
void st_cli_params_json(st_json *j, const st_plugin_info *m);

/* The "load" JSON object of a report. */
void st_cli_report_json(st_json *j, const st_check_report *r);

/* "1.0" or "-" */
const char *st_cli_abi_text(const st_check_report *r, char *buf, size_t cap);

/* The exit code a report maps to (ST_EXIT_OK when it passed). */
int st_cli_report_exit(const st_check_report *r);

/* Grow-able list of strings for repeated flags (--path). */
typedef struct st_strlist {
    char **items;
    size_t n;
} st_strlist;
int st_strlist_push(st_strlist *l, char *s); /* s not copied; 0 on success */
void st_strlist_free(st_strlist *l);          /* frees the array only */

#endif
