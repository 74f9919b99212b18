/*
 * core/cpu/matmul.h - y = W x for a batch of tokens, parallel over output
 * rows. Each thread takes chunks of rows from a contiguous range of its
 * own, then steals what is left of the others' (base/work_split.h: one
 * stream per thread, balanced even when a core is busy elsewhere); within
 * a chunk the tokens go in tiles of
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
#include "work_split.h"
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
    /* SwiGLU fused in (st_matmul_job_glu): mats[0] is the gate, mats[1]
     * the up product with the same rows, a multiple of ST_ACT_BLOCK. A
     * chunk is the same rows of both; once they are done its gate rows
     * become silu(gate) * up (st_op_silu_mul, or st_gc_swiglu when
     * glu_ggml) and their int8 blocks go to glu_q (glu_ldq blocks a
     * token), so the task ends with the next product's input ready and the
     * SwiGLU runs on every thread instead of after the meeting. */
    bool glu;
    bool glu_ggml;
    st_act_block *glu_q;
    size_t glu_ldq;
    /* Filled by st_matmul_job_prepare. */
    uint32_t chunk_rows;
    uint32_t chunk_end[ST_MATMUL_MAX_MATS]; /* cumulative chunk counts */
    st_work_split split; /* the chunks of all matrices, in order */
} st_matmul_job;

/* Set the chunking for a pool of nth threads (st_threadpool_size); call
 * after filling the fields above. */
void st_matmul_job_prepare(st_matmul_job *job, uint32_t nth);
/* Whether a gate and an up matrix can run fused (glu above). */
bool st_matmul_glu_fits(const st_weight *gate, const st_weight *up);
/* The task body for st_threadpool_run. */
void st_matmul_task(void *job, uint32_t ith, uint32_t nth);

/* One matrix, all in one call: y[nt][w->rows] = x[nt][w->cols] W^T.
 * Quantizes x itself when W is quantized (scratch is caller-free). */
st_status st_matmul(st_threadpool *pool, const st_cpu_kernels *kern, const st_weight *w,
                    const float *x, uint32_t nt, float *y);

#endif
