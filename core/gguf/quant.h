/*
 * core/quant.h - ggml's block layouts for the tensor types stretch reads,
 * and conversions between them and float. The layouts are byte-for-byte
 * ggml's (little-endian), so a block read from a GGUF mapping can be cast
 * to these structs; sizes are checked at compile time in quant.c.
 *
 *   Q4_0: 32 elements, f16 d, 16 bytes; element j (j<16) is the low nibble
 *         of qs[j], element j+16 its high nibble; value = (q - 8) * d.
 *   Q4_1: 32 elements, f16 d, f16 m, 16 bytes as Q4_0; value = q * d + m.
 *   Q8_0: 32 elements, f16 d, 32 int8; value = q * d.
 *
 * st_dequantize and the type-size helpers are declared in gguf.h.
 */
#ifndef ST_CORE_QUANT_H
#define ST_CORE_QUANT_H

#include <stdint.h>
#include <stretch/common.h>
#include "gguf.h"

#define ST_QK4_0 32
#define ST_QK4_1 32
#define ST_QK8_0 32

typedef struct st_block_q4_0 {
    uint16_t d;                  /* f16 scale */
    uint8_t qs[ST_QK4_0 / 2];    /* nibbles */
} st_block_q4_0;

typedef struct st_block_q4_1 {
    uint16_t d;                  /* f16 scale */
    uint16_t m;                  /* f16 minimum */
    uint8_t qs[ST_QK4_1 / 2];
} st_block_q4_1;

typedef struct st_block_q8_0 {
    uint16_t d;                  /* f16 scale */
    int8_t qs[ST_QK8_0];
} st_block_q8_0;

/* IEEE 754 half <-> single; subnormals, infinities and NaN included.
 * fp32_to_fp16 rounds to nearest, ties to even (as ggml does). */
float st_fp16_to_fp32(uint16_t h);
uint16_t st_fp32_to_fp16(float f);

/* Quantize n floats (n a multiple of the type's block size) into `dst`
 * (st_ggml_block_bytes(t) * n / block_elems bytes), with the same rounding
 * as ggml's quantize_row_*_ref. F32 copies; F16 converts. ST_E_INVALID for
 * an unknown type or an n that is not a whole number of blocks. */
st_status st_quantize(st_ggml_type t, const float *src, void *dst, uint64_t n);

/* Bytes for n elements of type t; 0 when t is unknown or n is not a whole
 * number of blocks. */
uint64_t st_ggml_row_bytes(st_ggml_type t, uint64_t n);

#endif
