/*
 * The device's weight products against the CPU's kernels, every weight
 * type, random weights and activations, odd row counts (not a multiple of
 * any work-group), several token counts and an output stride wider than
 * the rows, in both orders of the quantized products (cpu/kernels.h).
 *
 * Bit for bit, since this forward pass rounds activations to int8 again
 * after every product and one ulp can move a later quantum (the greedy
 * continuations of the two backends are equal only because of this):
 *   quantized, block order (the default): the CPU's `dot` of every path
 *     (scalar included) and the AVX2 16-row kernels on the repacked rows;
 *   quantized, ggml order, and float rows: the CPU's SIMD table (AVX2 or
 *     AVX-512, whichever this machine runs), whose lane order the device
 *     follows step for step.
 * Float rows and the ggml order also against the scalar kernels, which
 * sum in another order: within 1e-5 of the row's sum of |w x| (a float sum
 * of <= 576 terms in another order is off by at most n * eps ~ 7e-5 of
 * that, typically far less; a wrong block, nibble, scale or offset is off
 * by orders of magnitude more). On a machine without AVX2 only that
 * applies to them.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cl_fixture.h"
#include "quant.h"
#include "repack.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static int kt_of(st_ggml_type t)
{
    switch (t) {
    case ST_GGML_F32: return ST_KT_F32;
    case ST_GGML_F16: return ST_KT_F16;
    case ST_GGML_Q4_0: return ST_KT_Q4_0;
    case ST_GGML_Q4_1: return ST_KT_Q4_1;
    default: return ST_KT_Q8_0;
    }
}

/* The backend knows a weight by its st_weight (the model's live as long as
 * the backend), so each checked matrix stays alive until the test ends. */
static st_weight *kept[64];
static size_t n_kept;

static void release_kept(void)
{
    for (size_t i = 0; i < n_kept; i++) {
        free((void *)kept[i]->data);
        free(kept[i]);
    }
    n_kept = 0;
}

/* The block order: the scalar `dot` and, on rows a multiple of 16 where
 * this CPU runs AVX2, the repacked 16-row kernels, both bit for bit. */
static void check_block_order(st_ggml_type type, const st_weight *w, const st_act_block *xq,
                              uint32_t nt, const float *got, size_t ldy)
{
    const st_cpu_kernels *ks = st_cpu_kernels_scalar();
    size_t nb = w->cols / ST_ACT_BLOCK;
    for (uint32_t r = 0; r < w->rows; r++)
        for (uint32_t t = 0; t < nt; t++) {
            float want;
            ks->dot[kt_of(type)](w->cols, w->data + r * w->row_bytes, xq + t * nb, nb, 1, &want);
            cr_assert(got[t * ldy + r] == want,
                      "%s %ux%u: row %u token %u: device %.9g, scalar block order %.9g",
                      st_ggml_type_name(type), w->rows, w->cols, r, t, got[t * ldy + r], want);
        }
    const st_cpu_kernels *avx2 = st_cpu_kernels_get(ST_ISA_AVX2);
    if (avx2->isa != ST_ISA_AVX2 || w->rows % ST_PACK_ROWS)
        return; /* this CPU lacks the path, or the matrix would not be repacked */
    st_weight p = *w;
    cr_assert_eq(st_repack_weight(&p), ST_OK);
    cr_assert_not_null(p.packed);
    float o16[ST_TILE_MAX * ST_PACK_ROWS];
    for (uint32_t g = 0; g < w->rows / ST_PACK_ROWS; g++)
        for (uint32_t t0 = 0; t0 < nt; t0 += ST_TILE_MAX) {
            uint32_t tn = nt - t0 < ST_TILE_MAX ? nt - t0 : ST_TILE_MAX;
            avx2->gemm16[kt_of(type)](w->cols, p.packed + g * p.packed_group_bytes,
                                      xq + t0 * nb, nb, tn, o16);
            for (uint32_t t = 0; t < tn; t++)
                for (uint32_t r = 0; r < ST_PACK_ROWS; r++)
                    cr_assert(got[(t0 + t) * ldy + g * ST_PACK_ROWS + r] ==
                                  o16[t * ST_PACK_ROWS + r],
                              "%s %ux%u: row %u token %u: device %.9g, AVX2 16-row %.9g",
                              st_ggml_type_name(type), w->rows, w->cols, g * ST_PACK_ROWS + r,
                              t0 + t, got[(t0 + t) * ldy + g * ST_PACK_ROWS + r],
                              o16[t * ST_PACK_ROWS + r]);
        }
    free(p.packed);
}

static void check(st_cl_matmul *mm, st_ggml_type type, uint32_t rows, uint32_t cols,
                  uint32_t nt, bool ggml)
{
    size_t row_bytes = (size_t)cols / st_ggml_block_elems(type) * st_ggml_block_bytes(type);
    float *wf = malloc((size_t)rows * cols * sizeof *wf);
    uint8_t *wq = malloc(rows * row_bytes);
    float *x = malloc((size_t)nt * cols * sizeof *x);
    st_act_block *xq = malloc((size_t)nt * (cols / ST_ACT_BLOCK) * sizeof *xq);
    size_t ldy = rows + 3;
    float *got = malloc(nt * ldy * sizeof *got), *want = malloc(nt * sizeof *want);
    cr_assert(wf && wq && x && xq && got && want);
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        wf[i] = frand();
    for (size_t i = 0; i < (size_t)nt * cols; i++)
        x[i] = frand() * 3.0f;
    for (uint32_t r = 0; r < rows; r++)
        cr_assert_eq(st_quantize(type, wf + (size_t)r * cols, wq + r * row_bytes, cols), ST_OK);
    const st_cpu_kernels *k = st_cpu_kernels_get(ST_ISA_SCALAR);
    st_cpu_isa isa = st_cpu_isa_active();
    const st_cpu_kernels *simd = isa != ST_ISA_SCALAR ? st_cpu_kernels_get(isa) : NULL;
    float *exact = malloc(nt * sizeof *exact);
    cr_assert(exact);
    for (uint32_t t = 0; t < nt; t++)
        k->quantize_act(x + (size_t)t * cols, cols, xq + (size_t)t * (cols / ST_ACT_BLOCK));
    for (size_t i = 0; i < nt * ldy; i++)
        got[i] = -12345.0f;   /* the gaps of the stride stay untouched */

    st_weight *w = malloc(sizeof *w);
    cr_assert(w && n_kept < sizeof kept / sizeof kept[0]);
    *w = (st_weight){ .type = type, .cols = cols, .rows = rows, .row_bytes = row_bytes,
                      .data = wq };
    kept[n_kept++] = w;
    st_diag d;
    const st_weight *ws[1] = { w };
    float *ys[1] = { got };
    size_t ldys[1] = { ldy };
    cr_assert_eq(st_cl_matmul_run(mm, 1, ws, ys, ldys, x, cols, xq, cols / ST_ACT_BLOCK, nt,
                                  ggml, &d),
                 ST_OK, "%s", d.message);
    bool quant = type != ST_GGML_F32 && type != ST_GGML_F16;
    if (quant && !ggml)
        check_block_order(type, w, xq, nt, got, ldy);
    for (uint32_t r = 0; r < rows; r++) {
        const uint8_t *row = wq + r * row_bytes;
        size_t in_stride = quant ? cols / ST_ACT_BLOCK : cols;
        /* A token at a time: the CPU's tiles take at most ST_TILE_MAX. */
        for (uint32_t t = 0; t < nt; t++) {
            const void *in_t = quant ? (const void *)(xq + (size_t)t * in_stride)
                                     : (const void *)(x + (size_t)t * in_stride);
            (ggml ? k->dot_ggml : k->dot)[kt_of(type)](cols, row, in_t, in_stride, 1, want + t);
            if (simd)
                (ggml ? simd->dot_ggml : simd->dot)[kt_of(type)](cols, row, in_t, in_stride, 1,
                                                                 exact + t);
        }
        for (uint32_t t = 0; simd && t < nt; t++)
            cr_assert(got[t * ldy + r] == exact[t],
                      "%s %ux%u nt %u %s order: row %u token %u: device %.9g, cpu (isa %d) "
                      "%.9g: not the CPU's order of operations", st_ggml_type_name(type), rows,
                      cols, nt, ggml ? "ggml" : "block", r, t, got[t * ldy + r], (int)isa,
                      exact[t]);
        for (uint32_t t = 0; t < nt; t++) {
            float m = 0.0f;
            for (uint32_t i = 0; i < cols; i++)
                m += fabsf(wf[(size_t)r * cols + i] * x[(size_t)t * cols + i]);
            float tol = 1e-5f * m + 1e-6f;
            cr_assert(fabsf(got[t * ldy + r] - want[t]) <= tol,
                      "%s %ux%u nt %u: row %u token %u: device %.9g, cpu %.9g (tol %.3g)",
                      st_ggml_type_name(type), rows, cols, nt, r, t, got[t * ldy + r], want[t],
                      tol);
        }
    }
    for (uint32_t t = 0; t < nt; t++)
        for (size_t g = rows; g < ldy; g++)
            cr_assert_eq(got[t * ldy + g], -12345.0f, "the product wrote past its rows");
    free(exact);
    free(wf); free(x); free(xq); free(got); free(want);
}

static const st_ggml_type types[] = { ST_GGML_F32, ST_GGML_F16, ST_GGML_Q4_0, ST_GGML_Q4_1,
                                      ST_GGML_Q8_0 };

/* Both kernel sets, whichever the device would pick: the rows variant (a
 * CPU device's) and the lanes variant (a GPU's) give the same bits. */
static void every_type(st_cl_matmul_variant variant, bool ggml)
{
    st_cl_ctx c;
    st_cl_test_open(&c, NULL);
    st_cl_matmul *mm;
    st_diag d;
    cr_assert_eq(st_cl_matmul_new(&c, variant, &mm, &d), ST_OK, "%s", d.message);
    /* Columns: one block, three, 576 (SmolLM2's width), and 100 for the
     * float types' tail after the eight lanes (quantized types take
     * multiples of 32 only, so they use 96 there). */
    /* 48 x 576 with 11 tokens: three repacked groups, a full tile and a
     * partial one (the CPU's 16-row kernels). */
    static const uint32_t shapes[][3] = { { 37, 64, 1 }, { 129, 96, 3 }, { 5, 576, 9 },
                                          { 67, 32, 2 }, { 3, 100, 2 }, { 48, 576, 11 } };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check(mm, types[t], shapes[s][0],
                  shapes[s][1] % 32 && types[t] != ST_GGML_F32 && types[t] != ST_GGML_F16
                      ? 96 : shapes[s][1],
                  shapes[s][2], ggml);
    cr_expect_gt(st_cl_matmul_bytes(mm), 0);
    st_cl_matmul_free(mm);
    release_kept();
    st_cl_ctx_close(&c);
}

Test(opencl_matmul, every_type_matches_the_cpu_rows_variant)
{
    every_type(ST_CL_MATMUL_ROWS, false);
}

Test(opencl_matmul, every_type_matches_the_cpu_lanes_variant)
{
    every_type(ST_CL_MATMUL_LANES, false);
}

/* STRETCH_NUMERICS=ggml: the per-row kernels in the CPU's dot_ggml order,
 * whichever variant the device runs. */
Test(opencl_matmul, every_type_matches_the_cpu_ggml_order)
{
    every_type(ST_CL_MATMUL_ROWS, true);
    every_type(ST_CL_MATMUL_LANES, true);
}

Test(opencl_matmul, a_weight_is_uploaded_once)
{
    st_cl_ctx c;
    st_cl_test_open(&c, NULL);
    st_cl_matmul *mm;
    st_diag d;
    cr_assert_eq(st_cl_matmul_new(&c, ST_CL_MATMUL_LANES, &mm, &d), ST_OK, "%s", d.message);
    float wf[64 * 4];
    for (size_t i = 0; i < 256; i++)
        wf[i] = frand();
    st_weight w = { .type = ST_GGML_F32, .cols = 64, .rows = 4, .row_bytes = 256,
                    .data = (const uint8_t *)wf };
    cr_assert_eq(st_cl_matmul_upload(mm, &w, &d), ST_OK);
    uint64_t once = st_cl_matmul_bytes(mm);
    cr_assert_eq(st_cl_matmul_upload(mm, &w, &d), ST_OK);
    cr_expect_eq(st_cl_matmul_bytes(mm), once);
    cr_expect_geq(once, sizeof wf);
    st_cl_matmul_free(mm);
    st_cl_ctx_close(&c);
}

/* Q/K/V in one call: three matrices of different types and heights share
 * one block of activations (sent up once) and land in their own rows. */
Test(opencl_matmul, three_matrices_share_one_input)
{
    st_cl_ctx c;
    st_cl_test_open(&c, NULL);
    st_cl_matmul *mm;
    st_diag d;
    cr_assert_eq(st_cl_matmul_new(&c, ST_CL_MATMUL_LANES, &mm, &d), ST_OK, "%s", d.message);
    enum { COLS = 96, NT = 3 };
    const st_ggml_type ts[3] = { ST_GGML_Q8_0, ST_GGML_Q4_1, ST_GGML_F16 };
    const uint32_t rows[3] = { 24, 9, 17 };
    st_weight w[3];
    uint8_t *data[3];
    float x[NT * COLS];
    st_act_block xq[NT * COLS / ST_ACT_BLOCK];
    for (size_t i = 0; i < NT * COLS; i++)
        x[i] = frand();
    const st_cpu_kernels *k = st_cpu_kernels_get(st_cpu_isa_active());
    for (int t = 0; t < NT; t++)
        k->quantize_act(x + t * COLS, COLS, xq + t * (COLS / ST_ACT_BLOCK));
    float *y[3];
    size_t ldy[3];
    for (int m = 0; m < 3; m++) {
        size_t rb = COLS / st_ggml_block_elems(ts[m]) * st_ggml_block_bytes(ts[m]);
        float wf[COLS];
        data[m] = malloc(rows[m] * rb);
        for (uint32_t r = 0; r < rows[m]; r++) {
            for (int i = 0; i < COLS; i++)
                wf[i] = frand();
            cr_assert_eq(st_quantize(ts[m], wf, data[m] + r * rb, COLS), ST_OK);
        }
        w[m] = (st_weight){ .type = ts[m], .cols = COLS, .rows = rows[m], .row_bytes = rb,
                            .data = data[m] };
        ldy[m] = rows[m] + 2 * m;
        y[m] = calloc(NT * ldy[m], sizeof(float));
    }
    const st_weight *ws[3] = { &w[0], &w[1], &w[2] };
    cr_assert_eq(st_cl_matmul_run(mm, 3, ws, y, ldy, x, COLS, xq, COLS / ST_ACT_BLOCK, NT, false,
                                  &d),
                 ST_OK, "%s", d.message);
    for (int m = 0; m < 3; m++) {
        bool quant = ts[m] != ST_GGML_F16;
        for (uint32_t r = 0; r < rows[m]; r++)
            for (int t = 0; t < NT; t++) {
                float want;
                const void *in = quant ? (const void *)(xq + t * (COLS / ST_ACT_BLOCK))
                                       : (const void *)(x + t * COLS);
                k->dot[kt_of(ts[m])](COLS, data[m] + r * w[m].row_bytes, in,
                                     quant ? COLS / ST_ACT_BLOCK : COLS, 1, &want);
                cr_assert_float_eq(y[m][t * ldy[m] + r], want, 1e-4f,
                                   "matrix %d row %u token %d", m, r, t);
            }
        free(y[m]);
        free(data[m]);
    }
    st_cl_matmul_free(mm);
    st_cl_ctx_close(&c);
}
