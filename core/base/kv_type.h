/*
 * core/base/kv_type.h - the element types of the KV cache (the strategy
 * manifest's `kv-type`) and their names. Here at the bottom because the
 * manifest reader names them and the CPU kernels and the cache use them.
 */
#ifndef ST_CORE_KV_TYPE_H
#define ST_CORE_KV_TYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Q8_0 is GGUF's block: 32 elements, an f16 scale, 32 int8 (quant.h). */
typedef enum st_kv_type {
    ST_KV_F32 = 0,
    ST_KV_F16 = 1,
    ST_KV_Q8_0 = 2,
    ST_KV_TYPE_COUNT
} st_kv_type;

/* Bytes of a row of dim elements (Q8_0: dim a multiple of 32). */
static inline size_t st_kv_row_bytes(st_kv_type t, uint32_t dim)
{
    return t == ST_KV_F32 ? (size_t)dim * 4 : t == ST_KV_F16 ? (size_t)dim * 2
                                                             : (size_t)dim / 32 * 34;
}

/* "f32", "f16", "q8_0"; st_kv_type_parse returns false for anything else. */
const char *st_kv_type_name(st_kv_type t);
bool st_kv_type_parse(const char *s, st_kv_type *out);

#endif
