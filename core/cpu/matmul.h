/*
 * core/cpu/matmul.h - y = W x for a batch of tokens, parallel over output
 * rows. Threads take chunks of rows from a shared counter (balanced even
 * when a core is busy elsewhere); within a chunk the tokens go in tiles of
 * ST_TILE_MAX, so each weight block is read once per tile (prefill) and the
 * chunk's rows stay in L1 while the tiles pass over them.
 */
#ifndef ST_CORE_CPU_MATMUL_H
#define ST_CORE_CPU_MATMUL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "threadpool.h"
#include "kernels.h"

/* A weight matrix in the GGUF mapping: `rows` rows of `cols` elements. */
typedef struct st_weight {
    st_ggml_type type;
    uint32_t cols;
    uint32_t rows;
    size_t row_bytes;
    const uint8_t *data;
    /* Optional copy in the 16-row interleaved layout (cpu/repack.h), used
     * by kernels that have a gemm16 for the type; NULL = none. */
    uint8_t *packed;
    size_t packed_group_bytes;
} st_weight;

#define ST_MATMUL_MAX_MATS 3

/* Up to three matrices sharing one input (Q/K/V, gate/up) in one task. */
typedef struct st_matmul_job {
    const st_cpu_kernels *kern;
    uint32_t n_mats;
    struct {
        const st_weight *w;
        float *y;        /* [nt][ldy]; row r of W goes to column r */
        size_t ldy;
    } mats[ST_MATMUL_MAX_MATS];
    const float *xf;     /* float input [nt][ldxf], for F32/F16 weights */
    size_t ldxf;
    const st_act_block *xq; /* int8 input [nt][ldxq blocks], for quantized weights */
    size_t ldxq;
    uint32_t nt;
    /* Skip the repacked 16-row kernels and sum each row in ggml's order
     * (`dot_ggml`: as ggml's vec_dot; STRETCH_NUMERICS=ggml). */
    bool no_packed;
    /* Filled by st_matmul_job_prepare. */
    uint32_t chunk_rows;
    uint32_t chunk_end[ST_MATMUL_MAX_MATS]; /* cumulative chunk counts */
    atomic_uint next;
} st_matmul_job;

/* Set the chunking; call after filling the fields above. */
void st_matmul_job_prepare(st_matmul_job *job);
/* The task body for st_threadpool_run. */
void st_matmul_task(void *job, uint32_t ith, uint32_t nth);

/* One matrix, all in one call: y[nt][w->rows] = x[nt][w->cols] W^T.
 * Quantizes x itself when W is quantized (scratch is caller-free). */
st_status st_matmul(st_threadpool *pool, const st_cpu_kernels *kern, const st_weight *w,
                    const float *x, uint32_t nt, float *y);

#endif
