/*
 * core/value.h - a generic value tree read from YAML, remembering where each
 * node came from so later checks (parameter validation) can point at it.
 */
#ifndef ST_CORE_VALUE_H
#define ST_CORE_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum st_value_type {
    ST_VALUE_NULL,
    ST_VALUE_BOOL,
    ST_VALUE_INT,
    ST_VALUE_FLOAT,
    ST_VALUE_STRING,
    ST_VALUE_LIST,
    ST_VALUE_MAP
} st_value_type;

typedef struct st_value st_value;

typedef struct st_value_entry {
    char *key;
    st_value *value;
    int line, col;     /* where the key starts (1-based; 0 = unknown), so a
                          refused key can be pointed at, not its value */
} st_value_entry;

struct st_value {
    st_value_type type;
    const char *file;  /* interned path of the manifest it came from; not owned */
    int line, col;     /* where the node starts (1-based) */
    bool b;
    int64_t i;
    double f;
    char *s;           /* STRING: NUL-terminated, owned; also the raw scalar text */
    st_value **items;  /* LIST */
    st_value_entry *entries; /* MAP, in document order */
    size_t n;          /* items or entries */
};

st_value *st_value_clone(const st_value *v);
void st_value_free(st_value *v);
/* MAP lookup; NULL when absent or not a map. */
const st_value *st_value_get(const st_value *map, const char *key);
const char *st_value_type_name(st_value_type t);
/* Set `key` of a MAP to a FLOAT (replacing what was there, else appended);
 * false when out of memory or `map` is not a map. */
bool st_value_map_set_float(st_value *map, const char *key, double f);
/* The same with a number: an INT when it is integral (what an int
 * parameter needs; a float parameter takes an INT too), else a FLOAT. */
bool st_value_map_set_number(st_value *map, const char *key, double f);
/* The same with a STRING (copied). */
bool st_value_map_set_string(st_value *map, const char *key, const char *text);
/* The same with a BOOL. */
bool st_value_map_set_bool(st_value *map, const char *key, bool b);

#endif
