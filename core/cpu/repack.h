/*
 * core/cpu/repack.h - quantized weights rearranged once at load for the
 * AVX-512 VNNI and AVX2 16-row kernels: 16 rows interleaved per 32-column
 * block, so one vpdpbusd multiplies 16 rows by 4 activations (broadcast)
 * at a time and the 16 row scales load as one vector; AVX2 reads each
 * 64-byte vector as two halves of 8 rows. Per group of 16 rows and block:
 *
 *   Q4_0: f16 d[16], then 4 x 64 bytes; byte 4r+c of vector i holds
 *         row r's nibbles for column 4i+c (low) and 16+4i+c (high)
 *   Q4_1: f16 d[16], f16 m[16], then the nibbles as Q4_0
 *   Q8_0: f16 d[16], then 8 x 64 bytes; byte 4r+c of vector j is row r's
 *         column 4j+c plus 128 (u8 for vpdpbusd; the kernel subtracts
 *         128 * sum(a) through the activation block sum)
 */
#ifndef ST_CORE_CPU_REPACK_H
#define ST_CORE_CPU_REPACK_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

#include "matmul.h"

#define ST_PACK_ROWS 16

/* Bytes per 16-row group per 32-column block; 0 when t is not packable. */
uint32_t st_repack_block_bytes(st_ggml_type t);

/* Bytes of w's repacked copy: 0 when the type is not packable or rows is
 * not a multiple of 16 (or cols of 32). */
size_t st_repack_bytes(const st_weight *w);

/* Fill w->packed (malloc'd, caller frees) when st_repack_bytes(w) > 0;
 * else leave it NULL. ST_E_NOMEM on failure. */
st_status st_repack_weight(st_weight *w);

/* The same into dst (st_repack_bytes(w) bytes, owned by the caller): the
 * model puts all its matrices in one huge-page arena (base/big_alloc.h).
 * Leaves w->packed NULL when there is nothing to pack. */
void st_repack_weight_into(st_weight *w, uint8_t *dst);

#endif
