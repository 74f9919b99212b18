/* Names of the KV cache's element types. */
#include "kv_type.h"

#include <string.h>

static const char *const kv_type_names[ST_KV_TYPE_COUNT] = { "f32", "f16", "q8_0" };

const char *st_kv_type_name(st_kv_type t)
{
    return (unsigned)t < ST_KV_TYPE_COUNT ? kv_type_names[t] : "?";
}

bool st_kv_type_parse(const char *s, st_kv_type *out)
{
    for (int t = 0; t < ST_KV_TYPE_COUNT; t++)
        if (s && strcmp(s, kv_type_names[t]) == 0) {
            *out = (st_kv_type)t;
            return true;
        }
    return false;
}
