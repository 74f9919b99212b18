/* Row-chunked, token-tiled matmul driver over the per-ISA kernels. */
#include "matmul.h"

#include <stdlib.h>
#include <string.h>

#include "ggml_compat.h"
#include "ops.h"
#include "repack.h"

/* Rows per chunk are a multiple of this: 16 rows of a 576-wide Q4_1
 * matrix are 6 KiB, L1-sized; also the repacked group height. */
#define ST_CHUNK_ROWS ST_PACK_ROWS

/* Tokens whose int8 activations stay in L2 while a chunk's row groups pass
 * over them: 64 tokens of a 1536-wide input are 132 KB. */
#define ST_TOKEN_BLOCK 64

void st_matmul_job_prepare(st_matmul_job *job, uint32_t nth)
{
    /* Decode streams the weights once: bigger chunks keep each thread's
     * reads sequential for the hardware prefetcher, while ~8 chunks per
     * thread still balance a core that is busy elsewhere. */
    uint32_t rows = 0;
    for (uint32_t m = 0; m < job->n_mats; m++)
        rows += job->mats[m].w->rows;
    uint32_t groups = rows / (ST_CHUNK_ROWS * 16);
    if (groups < 1)
        groups = 1;
    if (groups > 8)
        groups = 8;
    uint32_t total = 0;
    if (job->glu) {
        /* A chunk is the same rows of gate and up, whole int8 blocks. */
        groups = (groups + 1) & ~1u;
        job->chunk_rows = ST_CHUNK_ROWS * groups;
        total = (job->mats[0].w->rows + job->chunk_rows - 1) / job->chunk_rows;
        job->chunk_end[0] = job->chunk_end[1] = total;
        st_work_split_init(&job->split, total, nth);
        return;
    }
    job->chunk_rows = ST_CHUNK_ROWS * groups;
    for (uint32_t m = 0; m < job->n_mats; m++) {
        total += (job->mats[m].w->rows + job->chunk_rows - 1) / job->chunk_rows;
        job->chunk_end[m] = total;
    }
    st_work_split_init(&job->split, total, nth);
}

static void run_chunk(const st_matmul_job *job, uint32_t m, uint32_t r0, uint32_t r1)
{
    const st_weight *w = job->mats[m].w;
    float *y = job->mats[m].y;
    size_t ldy = job->mats[m].ldy;
    int kt = st_cpu_kernel_type(w->type);
    st_dot_tile_fn dot = job->no_packed ? job->kern->dot_ggml[kt] : job->kern->dot[kt];
    bool quant = st_cpu_type_is_quantized(w->type);
    float out[ST_TILE_MAX];
    st_gemm16_fn gemm16 = job->kern->gemm16[kt];
    if (gemm16 && w->packed && quant && !job->no_packed) {
        /* The repacked path: 16 rows per call, each block unpacked once
         * per tile of tokens; a group's weights stay in L1 while the
         * tiles pass. Tokens go in blocks of ST_TOKEN_BLOCK so the
         * block's int8 activations and the chunk's weights both stay in
         * L2 while every group of the chunk passes over them. (Packed
         * matrices have rows a multiple of 16.) */
        float o16[ST_TILE_MAX * ST_PACK_ROWS];
        for (uint32_t tb = 0; tb < job->nt; tb += ST_TOKEN_BLOCK) {
            uint32_t te = job->nt - tb < ST_TOKEN_BLOCK ? job->nt : tb + ST_TOKEN_BLOCK;
            for (uint32_t g0 = r0; g0 < r1; g0 += ST_PACK_ROWS) {
                const uint8_t *grp =
                    w->packed + (size_t)(g0 / ST_PACK_ROWS) * w->packed_group_bytes;
                for (uint32_t t0 = tb; t0 < te; t0 += ST_TILE_MAX) {
                    uint32_t tn = te - t0 < ST_TILE_MAX ? te - t0 : ST_TILE_MAX;
                    gemm16(w->cols, grp, job->xq + t0 * job->ldxq, job->ldxq, tn, o16);
                    for (uint32_t t = 0; t < tn; t++)
                        memcpy(y + (t0 + t) * ldy + g0, o16 + t * ST_PACK_ROWS,
                               ST_PACK_ROWS * sizeof(float));
                }
            }
        }
        return;
    }
    if (w->type == ST_GGML_F32 && job->kern->gemm_f32) {
        /* Float weights (the encoders'): blocks of rows and tokens, the
         * same sums as dot[F32]. */
        job->kern->gemm_f32(w->cols, (const float *)(w->data + (size_t)r0 * w->row_bytes),
                            w->row_bytes / sizeof(float), r1 - r0, job->xf, job->ldxf, job->nt,
                            y + r0, ldy);
        return;
    }
    for (uint32_t t0 = 0; t0 < job->nt; t0 += ST_TILE_MAX) {
        uint32_t tn = job->nt - t0 < ST_TILE_MAX ? job->nt - t0 : ST_TILE_MAX;
        const void *x;
        size_t xs;
        if (quant) {
            x = job->xq + t0 * job->ldxq;
            xs = job->ldxq;
        } else {
            x = job->xf + t0 * job->ldxf;
            xs = job->ldxf;
        }
        for (uint32_t r = r0; r < r1; r++) {
            dot(w->cols, w->data + (size_t)r * w->row_bytes, x, xs, tn, out);
            for (uint32_t t = 0; t < tn; t++)
                y[(t0 + t) * ldy + r] = out[t];
        }
    }
}

bool st_matmul_glu_fits(const st_weight *gate, const st_weight *up)
{
    return gate->rows == up->rows && gate->rows % ST_ACT_BLOCK == 0 &&
           ST_CHUNK_ROWS * 2 % ST_ACT_BLOCK == 0;
}

/* Rows [r0, r1) of every token: g = silu(g) * u, then their int8 blocks. */
static void glu_chunk(const st_matmul_job *job, uint32_t r0, uint32_t r1)
{
    float *g = job->mats[0].y;
    const float *u = job->mats[1].y;
    for (uint32_t t = 0; t < job->nt; t++) {
        float *gt = g + t * job->mats[0].ldy + r0;
        const float *ut = u + t * job->mats[1].ldy + r0;
        if (job->glu_ggml)
            st_gc_swiglu(gt, gt, ut, r1 - r0);
        else
            job->kern->silu_mul(gt, gt, ut, r1 - r0);
        job->kern->quantize_act(gt, r1 - r0, job->glu_q + t * job->glu_ldq + r0 / ST_ACT_BLOCK);
    }
}

void st_matmul_task(void *arg, uint32_t ith, uint32_t nth)
{
    (void)nth;
    st_matmul_job *job = arg;
    uint32_t home = UINT32_MAX;
    for (;;) {
        uint32_t c = st_work_split_next(&job->split, ith, &home);
        if (c == UINT32_MAX)
            break;
        if (job->glu) {
            uint32_t r0 = c * job->chunk_rows, r1 = r0 + job->chunk_rows;
            if (r1 > job->mats[0].w->rows)
                r1 = job->mats[0].w->rows;
            run_chunk(job, 0, r0, r1);
            run_chunk(job, 1, r0, r1);
            glu_chunk(job, r0, r1);
            continue;
        }
        uint32_t m = 0, first = 0;
        while (c >= job->chunk_end[m]) {
            first = job->chunk_end[m];
            m++;
        }
        uint32_t r0 = (c - first) * job->chunk_rows;
        uint32_t r1 = r0 + job->chunk_rows;
        if (r1 > job->mats[m].w->rows)
            r1 = job->mats[m].w->rows;
        run_chunk(job, m, r0, r1);
    }
}

st_status st_matmul(st_threadpool *pool, const st_cpu_kernels *kern, const st_weight *w,
                    const float *x, uint32_t nt, float *y)
{
    st_act_block *xq = NULL;
    size_t nb = w->cols / ST_ACT_BLOCK;
    if (st_cpu_type_is_quantized(w->type)) {
        if (w->cols % ST_ACT_BLOCK)
            return ST_E_INVALID;
        xq = malloc((size_t)nt * nb * sizeof *xq + 1);
        if (!xq)
            return ST_E_NOMEM;
        for (uint32_t t = 0; t < nt; t++)
            st_quantize_act_row(x + (size_t)t * w->cols, w->cols, xq + t * nb);
    }
    st_matmul_job job = {
        .kern = kern, .n_mats = 1,
        .mats = { { w, y, w->rows } },
        .xf = x, .ldxf = w->cols, .xq = xq, .ldxq = nb, .nt = nt,
    };
    st_matmul_job_prepare(&job, st_threadpool_size(pool));
    st_threadpool_run(pool, st_matmul_task, &job);
    free(xq);
    return ST_OK;
}
