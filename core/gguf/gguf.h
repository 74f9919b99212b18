/*
 * core/gguf.h - read a GGUF file (v2 and v3) through mmap. Every offset,
 * count and size is checked against the file before use: a truncated,
 * corrupt or hostile file gives a clear error naming the file and what was
 * wrong (which key or tensor, at what byte offset), never a crash or an
 * out-of-bounds read.
 */
#ifndef ST_CORE_GGUF_H
#define ST_CORE_GGUF_H

#include <stretch/common.h>
#include <stretch/services.h>
#include "diag.h"

/* ggml tensor types we know (the values are GGUF's). */
typedef enum st_ggml_type {
    ST_GGML_F32 = 0,
    ST_GGML_F16 = 1,
    ST_GGML_Q4_0 = 2,
    ST_GGML_Q4_1 = 3,
    ST_GGML_Q8_0 = 8
} st_ggml_type;

/* GGUF metadata value types. */
typedef enum st_gguf_vtype {
    ST_GGUF_U8 = 0, ST_GGUF_I8 = 1, ST_GGUF_U16 = 2, ST_GGUF_I16 = 3,
    ST_GGUF_U32 = 4, ST_GGUF_I32 = 5, ST_GGUF_F32 = 6, ST_GGUF_BOOL = 7,
    ST_GGUF_STRING = 8, ST_GGUF_ARRAY = 9, ST_GGUF_U64 = 10, ST_GGUF_I64 = 11,
    ST_GGUF_F64 = 12
} st_gguf_vtype;

/* Bytes of one scalar of type t (raw value as in the file); 0 for STRING,
 * ARRAY and unknown types. */
uint64_t st_gguf_scalar_size(uint32_t t);

typedef struct st_gguf_kv {
    const char *key;          /* points into the mapping; key_len bytes */
    uint64_t key_len;
    st_gguf_vtype type;
    st_gguf_vtype array_type; /* for ARRAY */
    uint64_t array_len;       /* for ARRAY */
    const uint8_t *data;      /* value bytes (scalar, string record, or array payload) */
    uint64_t data_len;
    /* For string arrays: offsets of each element's length prefix, built at
     * open time so element i is O(1). NULL otherwise. */
    uint64_t *str_offsets;
} st_gguf_kv;

#define ST_GGUF_MAX_DIMS 4
typedef struct st_gguf_tensor {
    char name[256];
    uint32_t n_dims;
    uint64_t ne[ST_GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension */
    st_ggml_type type;
    uint64_t offset;          /* relative to the data section */
    uint64_t size;            /* bytes */
    const void *data;         /* into the mapping */
} st_gguf_tensor;

typedef struct st_gguf {
    char *path;
    const uint8_t *map;
    uint64_t map_len;
    uint32_t version;
    uint64_t alignment;
    st_gguf_kv *kv;
    uint64_t n_kv;
    st_gguf_tensor *tensors;
    uint64_t n_tensors;
    uint64_t data_offset;
} st_gguf;

st_status st_gguf_open(const char *path, st_gguf **out, st_diag *diag);
void st_gguf_close(st_gguf *g);

const st_gguf_kv *st_gguf_find(const st_gguf *g, const char *key);
const st_gguf_tensor *st_gguf_tensor_find(const st_gguf *g, const char *name);

/* Typed readers; ST_E_NOT_FOUND when absent, ST_E_FORMAT on a type that
 * cannot convert. Integers of any width and bool read as int. */
st_status st_gguf_get_int(const st_gguf *g, const char *key, int64_t *out);
st_status st_gguf_get_float(const st_gguf *g, const char *key, double *out);
st_status st_gguf_get_string(const st_gguf *g, const char *key,
                             const char **s, uint64_t *len);
st_status st_gguf_array_string(const st_gguf *g, const char *key, uint64_t i,
                               const char **s, uint64_t *len);
st_status st_gguf_array_int(const st_gguf *g, const char *key, uint64_t i,
                            int64_t *out);
st_status st_gguf_array_float(const st_gguf *g, const char *key, uint64_t i,
                              double *out);
/* Fill a services-table metadata value. */
st_status st_gguf_meta_value(const st_gguf *g, const char *key, st_meta_value *out);

const char *st_ggml_type_name(st_ggml_type t);
/* Elements per block and bytes per block; 0 for an unknown type. */
uint32_t st_ggml_block_elems(st_ggml_type t);
uint32_t st_ggml_block_bytes(st_ggml_type t);
/* Dequantize n elements (n a multiple of the block size) to float. */
st_status st_dequantize(st_ggml_type t, const void *src, float *dst, uint64_t n);

#endif
