/*
 * tools/stretch/json_out.h - a tiny streaming JSON writer for --json output.
 * Commas and nesting are tracked for the caller; strings are escaped per
 * RFC 8259 and invalid UTF-8 becomes U+FFFD, so the output always parses.
 * Non-finite numbers are written as null.
 */
#ifndef ST_CLI_JSON_OUT_H
#define ST_CLI_JSON_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ST_JSON_MAX_DEPTH 32

typedef struct st_json {
    FILE *f;
    int depth;
    bool need_comma[ST_JSON_MAX_DEPTH];
    bool after_key;
    bool pretty;
} st_json;

void st_json_init(st_json *j, FILE *f, bool pretty);
void st_json_begin_object(st_json *j);
void st_json_end_object(st_json *j);
void st_json_begin_array(st_json *j);
void st_json_end_array(st_json *j);
void st_json_key(st_json *j, const char *key);
void st_json_string(st_json *j, const char *s);          /* NULL -> null */
void st_json_string_n(st_json *j, const char *s, size_t n);
void st_json_int(st_json *j, int64_t v);
void st_json_uint(st_json *j, uint64_t v);
void st_json_double(st_json *j, double v);
/* `v` in the shortest %g form that reads back as exactly `v`. Returns buf. */
const char *st_number_text(double v, char *buf, size_t cap);
void st_json_bool(st_json *j, bool v);
void st_json_null(st_json *j);
/* Finish the document with a newline. */
void st_json_end(st_json *j);

/* Write `s` (n bytes) as a quoted JSON string to f. */
void st_json_write_escaped(FILE *f, const char *s, size_t n);

#endif
