/*
 * plugins/sampler/constraint/cg_json.h - a small JSON reader for schemas:
 * a tree whose every value remembers its byte offset (so a schema error
 * names line:column), strings decoded, numbers kept as their source text
 * too (so `const: 1.0` is matched as written).
 */
#ifndef ST_CG_JSON_H
#define ST_CG_JSON_H

#include "cg_text.h"

typedef enum { CJ_NULL, CJ_BOOL, CJ_NUMBER, CJ_STRING, CJ_ARRAY, CJ_OBJECT } cj_type;

typedef struct cj_value cj_value;
struct cj_value {
    cj_type type;
    long offset;
    bool boolean;
    double number;
    char *str;                /* CJ_STRING: decoded, NUL-terminated; CJ_NUMBER: source text */
    size_t len;
    cj_value **items;         /* CJ_ARRAY items, CJ_OBJECT values */
    char **keys;              /* CJ_OBJECT keys, decoded */
    size_t n;
};

/* NULL with err (offset, message) on a syntax error or nesting past 512. */
cj_value *cj_parse(const char *text, size_t len, cg_error *err);
void cj_free(cj_value *v);
/* The member `key` of an object; NULL when absent or not an object. */
const cj_value *cj_get(const cj_value *obj, const char *key);
/* Compact JSON, strings as Python's json.dumps(ensure_ascii=False) writes
 * them, numbers as written in the source. */
void cj_write(const cj_value *v, cg_buf *out);
void cj_write_string(const char *s, size_t len, cg_buf *out);
bool cj_equal(const cj_value *a, const cj_value *b);

#endif
