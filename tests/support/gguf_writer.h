/*
 * tests/support/gguf_writer.h - build GGUF v3 files in memory for tests and
 * for the tiny-model generator: metadata of every type, tensors from raw
 * bytes or from floats (quantized with core/quant.c), and knobs that produce
 * the broken files the reader must refuse (wrong magic/version/counts,
 * explicit tensor offsets, any n_dims/ne/type). The layout of what was
 * written is reported back so tests can do byte surgery at known offsets.
 *
 * Allocation failures are sticky: the adders return nothing and st_gw_build
 * / st_gw_write return ST_E_NOMEM.
 */
#ifndef ST_TEST_GGUF_WRITER_H
#define ST_TEST_GGUF_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stretch/common.h>
#include "gguf.h"

typedef struct st_gw st_gw;

/* Where things landed in the last built file (offsets from file start).
 * The arrays belong to the writer and live until the next build or free. */
typedef struct st_gw_layout {
    uint64_t header_end;      /* 24: end of magic, version, counts */
    uint64_t *kv_at;          /* start of each kv (its key length) */
    uint64_t n_kv;
    uint64_t *tensor_at;      /* start of each tensor info (its name length) */
    uint64_t n_tensors;
    uint64_t infos_end;       /* first byte after the last tensor info */
    uint64_t data_offset;     /* start of the data section */
    uint64_t file_len;
} st_gw_layout;

st_gw *st_gw_new(void);
void st_gw_free(st_gw *w);

/* Metadata, written in the order added (duplicates are written as given). */
void st_gw_u8(st_gw *w, const char *key, uint8_t v);
void st_gw_i8(st_gw *w, const char *key, int8_t v);
void st_gw_u16(st_gw *w, const char *key, uint16_t v);
void st_gw_i16(st_gw *w, const char *key, int16_t v);
void st_gw_u32(st_gw *w, const char *key, uint32_t v);
void st_gw_i32(st_gw *w, const char *key, int32_t v);
void st_gw_u64(st_gw *w, const char *key, uint64_t v);
void st_gw_i64(st_gw *w, const char *key, int64_t v);
void st_gw_f32(st_gw *w, const char *key, float v);
void st_gw_f64(st_gw *w, const char *key, double v);
void st_gw_bool(st_gw *w, const char *key, bool v);
void st_gw_string(st_gw *w, const char *key, const char *s);
void st_gw_string_n(st_gw *w, const char *key, const char *s, uint64_t len);
/* Array of fixed-size scalars; `elems` holds n host-order values of the
 * element type's C type (uint8_t..double, bool as uint8_t). */
void st_gw_array(st_gw *w, const char *key, st_gguf_vtype elem_type,
                 const void *elems, uint64_t n);
void st_gw_str_array(st_gw *w, const char *key, const char *const *strs, uint64_t n);
/* Any value: `type` then `len` raw bytes (for arrays of arrays, bad types). */
void st_gw_raw(st_gw *w, const char *key, uint32_t type, const void *bytes, size_t len);

/* Alignment of tensor data (default 32); also adds general.alignment (u32). */
void st_gw_set_alignment(st_gw *w, uint32_t alignment);

/* A tensor from raw bytes of the given type; `data` NULL writes zeros. The
 * size follows from type and dims; the offset is the next aligned one. */
void st_gw_tensor(st_gw *w, const char *name, st_ggml_type type, uint32_t n_dims,
                  const uint64_t *ne, const void *data);
/* A tensor from floats, quantized to `type`. */
void st_gw_tensor_f32(st_gw *w, const char *name, st_ggml_type type, uint32_t n_dims,
                      const uint64_t *ne, const float *values);
/* Anything goes: type number, n_dims (<= 8 dims read from ne), the offset
 * relative to the data section, and data_len bytes of data placed there
 * (`data` NULL writes zeros). For files that must be refused. */
void st_gw_tensor_raw(st_gw *w, const char *name, uint32_t type, uint32_t n_dims,
                      const uint64_t *ne, uint64_t offset, const void *data, size_t data_len);

/* Header knobs for broken files. */
void st_gw_set_magic(st_gw *w, const char magic[4]);
void st_gw_set_version(st_gw *w, uint32_t version);
void st_gw_set_counts(st_gw *w, bool set_n_tensors, uint64_t n_tensors,
                      bool set_n_kv, uint64_t n_kv);

/* Build the file into a malloc'd buffer (caller frees) and/or write it. */
st_status st_gw_build(st_gw *w, uint8_t **buf, size_t *len, st_gw_layout *layout);
st_status st_gw_write(st_gw *w, const char *path, st_gw_layout *layout);
/* Write any bytes to a file (for byte surgery results). */
st_status st_gw_write_bytes(const char *path, const uint8_t *buf, size_t len);

#endif
