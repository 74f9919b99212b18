/* Every dot-product kernel of every ISA path against the scalar path and
 * against a double-precision dequantized product, on random data of odd
 * sizes and every tile width; the threaded matmul against one thread. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/amx_probe.h"
#include "cpu/erf_approx.h"
#include "cpu/ggml_compat.h"
#include "cpu/kernels.h"
#include "cpu/matmul.h"
#include "cpu/ops.h"
#include "work_split.h"
#include "cpu/repack.h"
#include "compute/roofline.h"
#include "gguf.h"
#include "quant.h"

static uint64_t rng = 12345;
static float frand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

static const st_ggml_type all_types[] = { ST_GGML_F32, ST_GGML_F16, ST_GGML_Q4_0, ST_GGML_Q4_1,
                                          ST_GGML_Q8_0 };

/* One weight row of `cols` random values stored as type t. */
static void *make_row(st_ggml_type t, uint32_t cols, float *deq)
{
    float *x = malloc(cols * sizeof *x);
    for (uint32_t i = 0; i < cols; i++)
        x[i] = frand() * 0.5f + (i % 7 == 0 ? 0.3f : 0.0f);
    size_t bytes = st_ggml_row_bytes(t, cols);
    cr_assert_gt(bytes, 0);
    void *row = malloc(bytes);
    cr_assert_eq(st_quantize(t, x, row, cols), ST_OK);
    cr_assert_eq(st_dequantize(t, row, deq, cols), ST_OK);
    free(x);
    return row;
}

Test(forward_kernels, dequant_row_matches_core)
{
    for (size_t k = 0; k < sizeof all_types / sizeof *all_types; k++) {
        uint32_t cols = 96;
        float *deq = malloc(cols * sizeof *deq), *mine = malloc(cols * sizeof *mine);
        void *row = make_row(all_types[k], cols, deq);
        st_cpu_dequant_row(all_types[k], row, mine, cols);
        for (uint32_t i = 0; i < cols; i++)
            cr_assert_eq(mine[i], deq[i], "type %d elem %u", all_types[k], i);
        free(row); free(deq); free(mine);
    }
}

/* The rounding of ggml's x86 quantize_row_q8_1 (what llama.cpp multiplies
 * Q4_1 and Q8_0 weights with): q = nearest-even(x * (127 / amax)) in f32,
 * d = fp16(amax / 127), s16 = fp16(f32 d * sum(q)), and s = d * sum(q). */
Test(forward_kernels, act_quantization)
{
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = frand() * (i < 32 ? 3.0f : 0.01f);
    x[5] = 0;
    st_act_block b[2];
    st_quantize_act_row(x, 64, b);
    for (int k = 0; k < 2; k++) {
        float amax = 0;
        for (int i = 0; i < 32; i++)
            amax = fmaxf(amax, fabsf(x[k * 32 + i]));
        float d = amax / 127.0f, id = 127.0f / amax;
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            cr_assert_eq(b[k].q[i], (int)nearbyintf(x[k * 32 + i] * id));
            sum += b[k].q[i];
        }
        cr_assert_eq(b[k].d, st_cpu_half(st_cpu_to_half(d)));
        cr_assert_leq(fabsf(b[k].d - d), d * (1.0f / 2048.0f)); /* fp16: 11 bits */
        cr_assert_eq(b[k].s, b[k].d * (float)sum);
        cr_assert_eq(b[k].s16, st_cpu_half(st_cpu_to_half(d * (float)sum)));
        cr_assert_leq(fabsf(b[k].s16 - d * sum), fabsf(d * sum) * (1.0f / 2048.0f) + 1e-7f);
    }
    float z[32] = { 0 };
    st_quantize_act_row(z, 32, b);
    cr_assert_eq(b[0].d, 0.0f);
    cr_assert_eq(b[0].s, 0.0f);
    cr_assert_eq(b[0].s16, 0.0f);
}

/* st_cpu_to_half against F16C-free expectations: exact values, ties to
 * even, subnormals, overflow. */
Test(forward_kernels, fp32_to_fp16)
{
    cr_assert_eq(st_cpu_to_half(1.0f), 0x3c00);
    cr_assert_eq(st_cpu_to_half(-2.0f), 0xc000);
    cr_assert_eq(st_cpu_to_half(0.0f), 0x0000);
    cr_assert_eq(st_cpu_to_half(-0.0f), 0x8000);
    cr_assert_eq(st_cpu_to_half(65504.0f), 0x7bff);
    cr_assert_eq(st_cpu_to_half(65520.0f), 0x7c00); /* ties up to inf */
    cr_assert_eq(st_cpu_to_half(65519.0f), 0x7bff);
    cr_assert_eq(st_cpu_to_half(1.0f + 1.0f / 2048.0f), 0x3c00); /* tie: even */
    cr_assert_eq(st_cpu_to_half(1.0f + 3.0f / 2048.0f), 0x3c02); /* tie: even */
    cr_assert_eq(st_cpu_to_half(1.0f + 1.5f / 2048.0f), 0x3c01);
    cr_assert_eq(st_cpu_to_half(6.103515625e-05f), 0x0400);    /* 2^-14 */
    cr_assert_eq(st_cpu_to_half(5.9604644775390625e-08f), 0x0001); /* 2^-24 */
    cr_assert_eq(st_cpu_to_half(2.98023223876953125e-08f), 0x0000); /* 2^-25: tie to 0 */
    cr_assert_eq(st_cpu_to_half(3.0e-08f), 0x0001);
    cr_assert_eq(st_cpu_to_half(-1.5f * 5.9604644775390625e-08f), 0x8002); /* tie: even */
    /* Round trip of every finite half. */
    for (uint32_t h = 0; h < 0x10000u; h++) {
        if ((h & 0x7c00u) == 0x7c00u)
            continue;
        cr_assert_eq(st_cpu_to_half(st_cpu_half((uint16_t)h)), h, "half %04x", h);
    }
}

/* Every path's activation quantizer equals the scalar one bit for bit,
 * ties (x / d exactly k + 0.5) included. */
Test(forward_kernels, act_quantization_paths_agree)
{
    enum { N = 32 * 9 };
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = frand() * (float)(1 + i % 5);
    /* Block 0: amax 127 makes d = 1, so halves are exact ties. */
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i - 16) + 0.5f;
    x[31] = 127.0f;
    for (int i = 32; i < 64; i++)
        x[i] = 0.0f; /* an all-zero block */
    st_act_block want[N / 32], got[N / 32];
    st_quantize_act_row(x, N, want);
    for (int isa = ST_ISA_SCALAR; isa <= ST_ISA_AVX512; isa++) {
        const st_cpu_kernels *k = st_cpu_kernels_get((st_cpu_isa)isa);
        memset(got, 0x55, sizeof got);
        k->quantize_act(x, N, got);
        for (int b = 0; b < N / 32; b++) {
            cr_assert_eq(got[b].d, want[b].d, "%s block %d", st_cpu_isa_name(k->isa), b);
            cr_assert_eq(got[b].s, want[b].s, "%s block %d", st_cpu_isa_name(k->isa), b);
            cr_assert_eq(got[b].s16, want[b].s16, "%s block %d", st_cpu_isa_name(k->isa), b);
            cr_assert_eq(memcmp(got[b].q, want[b].q, 32), 0, "%s block %d",
                         st_cpu_isa_name(k->isa), b);
        }
    }
    cr_assert_eq(want[0].q[0], -16); /* -15.5: nearest even */
    cr_assert_eq(want[0].q[1], -14); /* -14.5: nearest even */
    cr_assert_eq(want[0].q[16], 0);  /* 0.5: nearest even */
    cr_assert_eq(want[0].q[17], 2);  /* 1.5: nearest even */
}

/* Kernel `isa` for type t against scalar and a double reference. */
static void check_kernel(st_cpu_isa isa, st_ggml_type t, uint32_t cols)
{
    const st_cpu_kernels *k = st_cpu_kernels_get(isa), *ks = st_cpu_kernels_scalar();
    if (k->isa != isa)
        return; /* this CPU lacks the path */
    int kt = st_cpu_kernel_type(t);
    bool quant = st_cpu_type_is_quantized(t);
    float *deq = malloc(cols * sizeof *deq);
    void *row = make_row(t, cols, deq);
    enum { NT = ST_TILE_MAX };
    size_t stride = quant ? cols / 32 + 1 : cols + 3; /* strides wider than a row */
    float *x = malloc(NT * (cols + 3) * sizeof *x);
    st_act_block *xq = calloc(NT * stride, sizeof *xq);
    for (uint32_t tt = 0; tt < NT; tt++) {
        for (uint32_t i = 0; i < cols; i++)
            x[tt * (cols + 3) + i] = frand() * (1.0f + tt);
        if (quant)
            st_quantize_act_row(x + tt * (cols + 3), cols, xq + tt * stride);
    }
    const void *xa = quant ? (const void *)xq : (const void *)x;
    /* Both orders (kernels.h); the block order of quantized rows is the
     * scalar kernel's bit for bit on every path, the rest within tol. */
    for (int order = 0; order < 2; order++)
    for (uint32_t nt = 1; nt <= NT; nt++) {
        float got[NT], want[NT];
        (order ? k->dot_ggml : k->dot)[kt](cols, row, xa, stride, nt, got);
        (order ? ks->dot_ggml : ks->dot)[kt](cols, row, xa, stride, nt, want);
        for (uint32_t tt = 0; tt < nt && quant && order == 0; tt++)
            cr_assert(got[tt] == want[tt], "%s type %d cols %u nt %u t %u: block order %.9g vs "
                      "scalar %.9g", st_cpu_isa_name(isa), t, cols, nt, tt, got[tt], want[tt]);
        for (uint32_t tt = 0; tt < nt; tt++) {
            /* The exact product of what the kernel sees. */
            double ref = 0, mag = 0;
            for (uint32_t i = 0; i < cols; i++) {
                double a = quant ? (double)xq[tt * stride + i / 32].d * xq[tt * stride + i / 32].q[i % 32]
                                 : x[tt * (cols + 3) + i];
                ref += (double)deq[i] * a;
                mag += fabs((double)deq[i] * a);
            }
            if (t == ST_GGML_Q4_1) {
                /* The minimum meets the block's stored Q8_1 sum s16, as in
                 * ggml, not the exact sum of the rounded activations. */
                const st_block_q4_1 *wb = row;
                for (uint32_t b = 0; b < cols / 32; b++) {
                    const st_act_block *ab = &xq[tt * stride + b];
                    int qs = 0;
                    for (int i = 0; i < 32; i++)
                        qs += ab->q[i];
                    ref += (double)st_cpu_half(wb[b].m) * ((double)ab->s16 - (double)ab->d * qs);
                }
            }
            double tol = 1e-5 * mag + 1e-6;
            cr_assert_leq(fabs(got[tt] - want[tt]), tol, "%s type %d cols %u nt %u t %u: %g vs scalar %g",
                          st_cpu_isa_name(isa), t, cols, nt, tt, got[tt], want[tt]);
            cr_assert_leq(fabs(got[tt] - ref), tol, "%s type %d cols %u nt %u t %u: %g vs exact %g",
                          st_cpu_isa_name(isa), t, cols, nt, tt, got[tt], ref);
        }
    }
    free(deq); free(row); free(x); free(xq);
}

Test(forward_kernels, all_paths_all_types)
{
    static const uint32_t qcols[] = { 32, 96, 224, 800 };
    static const uint32_t fcols[] = { 1, 7, 37, 100, 803 };
    for (int isa = ST_ISA_SCALAR; isa <= ST_ISA_AVX512; isa++)
        for (size_t k = 0; k < sizeof all_types / sizeof *all_types; k++) {
            bool quant = st_cpu_type_is_quantized(all_types[k]);
            const uint32_t *cols = quant ? qcols : fcols;
            size_t nc = quant ? 4 : 5;
            for (size_t c = 0; c < nc; c++)
                check_kernel((st_cpu_isa)isa, all_types[k], cols[c]);
        }
}

Test(forward_kernels, attention_vector_ops)
{
    for (int isa = ST_ISA_SCALAR; isa <= ST_ISA_AVX512; isa++) {
        const st_cpu_kernels *k = st_cpu_kernels_get((st_cpu_isa)isa);
        for (uint32_t n = 1; n < 70; n += 5) {
            float a[70], b[70], y[70], y2[70];
            double ref = 0;
            for (uint32_t i = 0; i < n; i++) {
                a[i] = frand();
                b[i] = frand();
                y[i] = y2[i] = frand();
                ref += (double)a[i] * b[i];
            }
            cr_assert_float_eq(k->dot_f32(a, b, n), ref, 1e-5);
            k->axpy_f32(y, 0.75f, a, n);
            for (uint32_t i = 0; i < n; i++)
                cr_assert_float_eq(y[i], y2[i] + 0.75f * a[i], 1e-6);
        }
    }
}

/* The encoders' GELU: erf's rational form within 5e-7 of erf on a dense
 * grid past its clamp, and every path's gelu_bias within a few float
 * roundings of GELU computed in double, for lengths on and off the SIMD
 * width and inputs from deep negative to large positive. */
Test(forward_kernels, gelu_bias_matches_erf)
{
    double worst = 0;
    for (int i = -600000; i <= 600000; i++) {
        float x = (float)i * 1e-5f;
        double e = fabs((double)st_erf_approx(x) - erf((double)x));
        worst = e > worst ? e : worst;
    }
    cr_assert_lt(worst, 5e-7, "erf approximation off by %g", worst);
    for (int isa = ST_ISA_SCALAR; isa <= ST_ISA_AVX512; isa++) {
        const st_cpu_kernels *k = st_cpu_kernels_get((st_cpu_isa)isa);
        for (uint32_t n = 1; n < 90; n += 7) {
            float x[90], bias[90], in[90];
            for (uint32_t i = 0; i < n; i++) {
                in[i] = x[i] = frand() * 12.0f;
                bias[i] = frand();
            }
            k->gelu_bias(x, bias, n);
            for (uint32_t i = 0; i < n; i++) {
                double y = (double)in[i] + bias[i];
                double ref = 0.5 * y * (1.0 + erf(y / sqrt(2.0)));
                cr_assert(fabs(x[i] - ref) <= 1e-6 * (1.0 + fabs(y)),
                          "isa %d n %u [%u]: gelu(%g) = %g, double %g", isa, n, i, y, x[i], ref);
            }
        }
    }
}

/* The attention gathers against plain loops, for head sizes on and off the
 * SIMD fast paths (multiples of 8 up to 64, above 64, odd). */
Test(forward_kernels, attention_gathers)
{
    static const uint32_t dims[] = { 13, 16, 24, 64, 72, 128 };
    enum { KEYS = 37, STRIDE = 300 };
    float *k = malloc(KEYS * STRIDE * sizeof *k);
    for (uint32_t i = 0; i < KEYS * STRIDE; i++)
        k[i] = frand();
    uint32_t idx[20];
    for (uint32_t i = 0; i < 20; i++)
        idx[i] = (i * 7 + 3) % KEYS;
    float q[128], p[20], got[128], want[128], sc[20];
    for (int i = 0; i < 128; i++)
        q[i] = frand();
    for (int i = 0; i < 20; i++)
        p[i] = frand();
    for (int isa = ST_ISA_SCALAR; isa <= ST_ISA_AVX512; isa++) {
        const st_cpu_kernels *kk = st_cpu_kernels_get((st_cpu_isa)isa);
        for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
            uint32_t dim = dims[di];
            for (uint32_t n = 0; n <= 20; n += 19) {
                kk->scores_f32(q, k + 5, STRIDE, idx, n, dim, 0.5f, sc);
                for (uint32_t i = 0; i < n; i++) {
                    double ref = 0;
                    for (uint32_t d = 0; d < dim; d++)
                        ref += (double)q[d] * k[idx[i] * STRIDE + 5 + d];
                    cr_assert_float_eq(sc[i], 0.5 * ref, 1e-4, "%s dim %u", st_cpu_isa_name(kk->isa), dim);
                }
                memset(got, 0x7f, sizeof got);
                kk->wsum_f32(got, p, k + 5, STRIDE, idx, n, dim);
                for (uint32_t d = 0; d < dim; d++) {
                    double ref = 0;
                    for (uint32_t i = 0; i < n; i++)
                        ref += (double)p[i] * k[idx[i] * STRIDE + 5 + d];
                    want[d] = (float)ref;
                    cr_assert_float_eq(got[d], want[d], 1e-4, "%s dim %u n %u", st_cpu_isa_name(kk->isa), dim, n);
                }
            }
        }
    }
    free(k);
}

Test(forward_kernels, isa_override)
{
    setenv("STRETCH_ISA", "scalar", 1);
    cr_assert_eq(st_cpu_isa_active(), ST_ISA_SCALAR);
    setenv("STRETCH_ISA", "avx512", 1);
    cr_assert_eq(st_cpu_isa_active(), st_cpu_isa_detect());
    unsetenv("STRETCH_ISA");
    cr_assert_eq(st_cpu_isa_active(), st_cpu_isa_detect());
}

/* A quantized weight of rows x cols, repacked when `repack`. */
static st_weight make_weight(st_ggml_type t, uint32_t cols, uint32_t rows, bool repack)
{
    size_t rb = st_ggml_row_bytes(t, cols);
    uint8_t *data = malloc(rb * rows);
    float *deq = malloc(cols * sizeof *deq);
    for (uint32_t r = 0; r < rows; r++) {
        void *row = make_row(t, cols, deq);
        memcpy(data + r * rb, row, rb);
        free(row);
    }
    free(deq);
    st_weight w = { .type = t, .cols = cols, .rows = rows, .row_bytes = rb, .data = data };
    if (repack)
        cr_assert_eq(st_repack_weight(&w), ST_OK);
    return w;
}

/* The threaded, chunked, tiled matmul equals row-by-row scalar dots, with
 * and without the repacked 16-row layout (rows 48 and 784 repack, 77 do
 * not). */
static void check_matmul(st_ggml_type t, uint32_t rows, bool repack)
{
    uint32_t cols = 160, nt = 19;
    st_weight w = make_weight(t, cols, rows, repack);
    if (repack)
        cr_assert_eq(w.packed != NULL, st_cpu_type_is_quantized(t) && rows % 16 == 0);
    float *x = malloc(nt * cols * sizeof *x);
    for (uint32_t i = 0; i < nt * cols; i++)
        x[i] = frand();
    float *y1 = malloc(nt * rows * sizeof *y1), *y2 = malloc(nt * rows * sizeof *y2);
    const st_cpu_kernels *ks = st_cpu_kernels_scalar();
    cr_assert_eq(st_matmul(NULL, ks, &w, x, nt, y1), ST_OK);
    for (uint32_t th = 1; th <= 3; th++) {
        st_threadpool *pool;
        st_diag d;
        cr_assert_eq(st_threadpool_create(th, &pool, &d), ST_OK);
        for (int isa = ST_ISA_SCALAR; isa <= ST_ISA_AVX512; isa++) {
            const st_cpu_kernels *kb = st_cpu_kernels_get((st_cpu_isa)isa);
            for (uint32_t n = 1; n <= nt; n += nt - 1) {
                cr_assert_eq(st_matmul(pool, kb, &w, x, n, y2), ST_OK);
                for (uint32_t i = 0; i < n * rows; i++)
                    cr_assert_float_eq(y2[i], y1[i], 1e-4 * (1 + fabsf(y1[i])),
                                       "type %d rows %u %s threads %u nt %u at %u: %g vs %g", t,
                                       rows, st_cpu_isa_name(kb->isa), th, n, i, y2[i], y1[i]);
            }
        }
        st_threadpool_destroy(pool);
    }
    free(w.packed);
    free((void *)w.data); free(x); free(y1); free(y2);
}

Test(forward_kernels, matmul_threads_and_tiles)
{
    for (size_t k = 0; k < sizeof all_types / sizeof *all_types; k++) {
        check_matmul(all_types[k], 77, false);
        check_matmul(all_types[k], 48, true);
        check_matmul(all_types[k], 64, false);
        check_matmul(all_types[k], 784, true); /* chunks of several 16-row groups */
    }
}

/* The gate/up product with the SwiGLU fused into its chunks (matmul.h
 * `glu`) gives, bit for bit, the two products run apart followed by
 * silu(gate) * up and its int8 blocks: in both numerics, on every path
 * and thread count, for one token (decode) and a block. */
Test(forward_kernels, matmul_glu_equals_products_then_swiglu)
{
    const uint32_t cols = 96, rows = 224, nt = 11, nb = rows / ST_ACT_BLOCK;
    const st_ggml_type types[] = { ST_GGML_Q4_0, ST_GGML_Q4_1, ST_GGML_Q8_0 };
    for (size_t k = 0; k < sizeof types / sizeof *types; k++)
        for (int packed = 0; packed <= 1; packed++) {
            st_weight gate = make_weight(types[k], cols, rows, packed);
            st_weight up = make_weight(types[k], cols, rows, packed);
            cr_assert(st_matmul_glu_fits(&gate, &up));
            float *x = malloc(nt * cols * sizeof *x);
            for (uint32_t i = 0; i < nt * cols; i++)
                x[i] = frand() * 2.0f;
            st_act_block *xq = malloc(nt * (cols / ST_ACT_BLOCK) * sizeof *xq);
            for (uint32_t t = 0; t < nt; t++)
                st_quantize_act_row(x + t * cols, cols, xq + t * (cols / ST_ACT_BLOCK));
            float *g1 = malloc(nt * rows * sizeof(float)), *u1 = malloc(nt * rows * sizeof(float));
            float *g2 = malloc(nt * rows * sizeof(float)), *u2 = malloc(nt * rows * sizeof(float));
            st_act_block *q1 = malloc(nt * nb * sizeof *q1), *q2 = malloc(nt * nb * sizeof *q2);
            for (uint32_t th = 1; th <= 3; th += 2) {
                st_threadpool *pool;
                st_diag d;
                cr_assert_eq(st_threadpool_create(th, &pool, &d), ST_OK);
                for (int isa = ST_ISA_SCALAR; isa <= (int)st_cpu_isa_detect(); isa++) {
                    const st_cpu_kernels *kb = st_cpu_kernels_get((st_cpu_isa)isa);
                    if ((int)kb->isa != isa)
                        continue;
                    for (int ggml = 0; ggml <= 1; ggml++)
                        for (uint32_t n = 1; n <= nt; n += nt - 1) {
                            st_matmul_job a = { .kern = kb, .n_mats = 2, .xq = xq,
                                                .ldxq = cols / ST_ACT_BLOCK, .nt = n,
                                                .no_packed = ggml };
                            a.mats[0].w = &gate; a.mats[0].y = g1; a.mats[0].ldy = rows;
                            a.mats[1].w = &up; a.mats[1].y = u1; a.mats[1].ldy = rows;
                            st_matmul_job_prepare(&a, th);
                            st_threadpool_run(pool, st_matmul_task, &a);
                            for (uint32_t t = 0; t < n; t++) {
                                float *gt = g1 + t * rows;
                                if (ggml)
                                    st_gc_swiglu(gt, gt, u1 + t * rows, rows);
                                else
                                    kb->silu_mul(gt, gt, u1 + t * rows, rows);
                                kb->quantize_act(gt, rows, q1 + t * nb);
                            }
                            st_matmul_job b = { .kern = kb, .n_mats = 2, .xq = xq,
                                                .ldxq = cols / ST_ACT_BLOCK, .nt = n,
                                                .no_packed = ggml, .glu = true,
                                                .glu_ggml = ggml, .glu_q = q2, .glu_ldq = nb };
                            b.mats[0] = a.mats[0];
                            b.mats[0].y = g2;
                            b.mats[1] = a.mats[1];
                            b.mats[1].y = u2;
                            st_matmul_job_prepare(&b, th);
                            st_threadpool_run(pool, st_matmul_task, &b);
                            cr_assert(memcmp(g1, g2, n * rows * sizeof(float)) == 0,
                                      "type %d packed %d %s ggml %d threads %u nt %u", types[k],
                                      packed, st_cpu_isa_name(kb->isa), ggml, th, n);
                            for (uint32_t i = 0; i < n * nb; i++) {
                                cr_assert(q1[i].d == q2[i].d && q1[i].s == q2[i].s &&
                                          q1[i].s16 == q2[i].s16 &&
                                          memcmp(q1[i].q, q2[i].q, ST_ACT_BLOCK) == 0,
                                          "block %u type %d nt %u", i, types[k], n);
                            }
                        }
                }
                st_threadpool_destroy(pool);
            }
            free(gate.packed); free((void *)gate.data); free(up.packed); free((void *)up.data);
            free(x); free(xq); free(g1); free(u1); free(g2); free(u2); free(q1); free(q2);
        }
    /* Rows that are not whole int8 blocks, or differ, do not fuse. */
    st_weight a = { .type = ST_GGML_Q4_0, .cols = 32, .rows = 48 }, b = a;
    cr_assert(!st_matmul_glu_fits(&a, &b));
    a.rows = b.rows = 64;
    cr_assert(st_matmul_glu_fits(&a, &b));
    b.rows = 96;
    cr_assert(!st_matmul_glu_fits(&a, &b));
}

/* Work handed out from a shared counter is done exactly once per run,
 * whichever threads join. */
typedef struct count_arg {
    atomic_uint next;
    atomic_uint done[100];
    atomic_uint bad_ith;
} count_arg;

static void count_task(void *arg, uint32_t ith, uint32_t nth)
{
    count_arg *c = arg;
    if (ith >= nth)
        atomic_fetch_add(&c->bad_ith, 1);
    unsigned i;
    while ((i = atomic_fetch_add(&c->next, 1)) < 100)
        atomic_fetch_add(&c->done[i], 1);
}

Test(forward_kernels, threadpool_runs_all_work_once)
{
    st_threadpool *pool;
    st_diag d;
    cr_assert_eq(st_threadpool_create(0, &pool, &d), ST_E_INVALID);
    for (uint32_t th = 1; th <= 3; th++) {
        cr_assert_eq(st_threadpool_create(th, &pool, &d), ST_OK);
        cr_assert_eq(st_threadpool_size(pool), th);
        static count_arg c;
        for (int r = 0; r < 500; r++) {
            atomic_init(&c.next, 0);
            atomic_init(&c.bad_ith, 0);
            for (int i = 0; i < 100; i++)
                atomic_init(&c.done[i], 0);
            st_threadpool_run(pool, count_task, &c);
            cr_assert_eq(atomic_load(&c.bad_ith), 0);
            for (int i = 0; i < 100; i++)
                cr_assert_eq(atomic_load(&c.done[i]), 1, "run %d item %d", r, i);
        }
        st_threadpool_destroy(pool);
    }
}

/* work_split.h: each of n items is handed out exactly once, whichever
 * threads run and however many the split was made for (a worker that never
 * joins leaves its range to the others); a thread alone first takes its own
 * range in order, then the others' leftovers. */
typedef struct split_arg {
    st_work_split split;
    uint32_t n;
    atomic_uint done[300];
    atomic_uint order_bad;
} split_arg;

static void split_task(void *arg, uint32_t ith, uint32_t nth)
{
    (void)nth;
    split_arg *a = arg;
    uint32_t home = UINT32_MAX, it, prev = UINT32_MAX;
    while ((it = st_work_split_next(&a->split, ith, &home)) != UINT32_MAX) {
        if (it >= a->n)
            atomic_fetch_add(&a->order_bad, 1);
        else
            atomic_fetch_add(&a->done[it], 1);
        /* within one range the items come in ascending order */
        if (prev != UINT32_MAX && it < prev && home == ith % a->split.n_ranges)
            atomic_fetch_add(&a->order_bad, 1);
        prev = it;
    }
}

Test(forward_kernels, work_split_hands_out_every_item_once)
{
    static split_arg a;
    const uint32_t ns[] = { 0, 1, 2, 3, 7, 64, 299 };
    /* One thread runs a split made for several: it must steal them all. */
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++)
        for (uint32_t nth = 1; nth <= 20; nth++) {
            a.n = ns[k];
            st_work_split_init(&a.split, a.n, nth);
            cr_assert_eq(a.split.n_ranges, nth < ST_SPLIT_MAX_RANGES ? nth : ST_SPLIT_MAX_RANGES);
            atomic_init(&a.order_bad, 0);
            for (uint32_t i = 0; i < 300; i++)
                atomic_init(&a.done[i], 0);
            uint32_t home = UINT32_MAX, it, count = 0, first = UINT32_MAX;
            uint32_t ith = nth - 1;
            while ((it = st_work_split_next(&a.split, ith, &home)) != UINT32_MAX) {
                cr_assert_lt(it, a.n);
                atomic_fetch_add(&a.done[it], 1);
                if (count++ == 0)
                    first = it;
            }
            for (uint32_t i = 0; i < a.n; i++)
                cr_assert_eq(atomic_load(&a.done[i]), 1, "n %u nth %u item %u", a.n, nth, i);
            /* its own range comes first: it starts at that range's start */
            uint32_t r = ith % a.split.n_ranges;
            if (a.n >= a.split.n_ranges)
                cr_assert_eq(first, (uint32_t)((uint64_t)a.n * r / a.split.n_ranges),
                             "n %u nth %u", a.n, nth);
        }
    /* Threads of a pool, run many times. */
    st_diag d;
    for (uint32_t th = 1; th <= 3; th++) {
        st_threadpool *pool;
        cr_assert_eq(st_threadpool_create(th, &pool, &d), ST_OK);
        for (int rep = 0; rep < 300; rep++) {
            a.n = (uint32_t)(rep % 300);
            st_work_split_init(&a.split, a.n, th);
            atomic_init(&a.order_bad, 0);
            for (uint32_t i = 0; i < 300; i++)
                atomic_init(&a.done[i], 0);
            st_threadpool_run(pool, split_task, &a);
            cr_assert_eq(atomic_load(&a.order_bad), 0);
            for (uint32_t i = 0; i < a.n; i++)
                cr_assert_eq(atomic_load(&a.done[i]), 1, "rep %d item %u", rep, i);
        }
        st_threadpool_destroy(pool);
    }
}

/* Every path's quantize_act on n_blocks blocks of x: blocks odd0..odd1
 * must have q = 0 and d, s and s16 equal to want (NaN: all NaN), and the
 * others the scalar quantizer's bits for their values alone (an odd block
 * disturbs nothing around it). */
static void odd_blocks_quantize_to(const float *x, int n_blocks, int odd0, int odd1, float want)
{
    st_act_block got[8], alone;
    cr_assert_leq(n_blocks, 8);
    for (int isa = ST_ISA_SCALAR; isa <= ST_ISA_AVX512; isa++) {
        const st_cpu_kernels *k = st_cpu_kernels_get((st_cpu_isa)isa);
        const char *nm = st_cpu_isa_name(k->isa);
        memset(got, 0x55, sizeof got);
        k->quantize_act(x, (uint32_t)n_blocks * 32, got);
        for (int b = 0; b < n_blocks; b++) {
            if (b < odd0 || b > odd1) {
                st_quantize_act_row(x + 32 * b, 32, &alone);
                cr_assert_eq(memcmp(&got[b], &alone, sizeof alone), 0, "%s block %d", nm, b);
                continue;
            }
            bool ok = isnan(want) ? isnan(got[b].d) && isnan(got[b].s) && isnan(got[b].s16)
                                  : got[b].d == want && got[b].s == want && got[b].s16 == want;
            cr_assert(ok, "%s block %d: d %g s %g s16 %g", nm, b, got[b].d, got[b].s, got[b].s16);
            for (int i = 0; i < 32; i++)
                cr_assert_eq(got[b].q[i], 0, "%s block %d q[%d]", nm, b, i);
        }
    }
}

/* Issue #8 item 5: a block with a NaN or an infinity converted NaN to int
 * (INT_MIN on x86) and summed it into a signed int: undefined behaviour
 * (UBSan: signed overflow) and a finite scale for garbage. Every path this
 * CPU runs now marks such a block: q = 0 and a NaN scale, so products with
 * it are NaN; the finite blocks around it are untouched. */
Test(forward_kernels, act_quantization_non_finite)
{
    enum { N = 32 * 6 };
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = frand() * 2.0f;
    x[32 + 3] = NAN;
    x[64] = INFINITY;
    x[96 + 31] = -INFINITY;
    for (int i = 128; i < 160; i++)
        x[i] = NAN; /* 32 x INT_MIN overflowed the sum */
    odd_blocks_quantize_to(x, N / 32, 1, 4, NAN);
}

/* A block whose largest |x| is under 127 / FLT_MAX: 127 / amax is
 * infinite, and x times it (0 times it: NaN) was converted to int, which
 * C leaves undefined (UBSan, found by fuzz_gguf through a BERT whose
 * activations were that small) and vcvtps2dq makes INT_MIN. Its scale is
 * 0 as a half either way, so every path now gives q = 0, d = s = s16 = 0;
 * the KV cache's Q8_0 store the same (1 / d infinite), and a block with a
 * NaN or an infinity there stores a NaN scale and zeros. */
Test(forward_kernels, act_quantization_tiny_blocks)
{
    enum { N = 32 * 3 };
    float x[N];
    for (int i = 0; i < N; i++)
        x[i] = frand() * 2.0f;
    for (int i = 32; i < 64; i++)
        x[i] = i % 3 ? 0.0f : 1e-38f * (i % 2 ? 1 : -1); /* amax < 127 / FLT_MAX */
    x[40] = 1e-44f; /* a subnormal too */
    odd_blocks_quantize_to(x, N / 32, 1, 1, 0.0f);
    st_block_q8_0 row[3];
    float back[N];
    x[64 + 5] = NAN;
    st_kv_store_row(ST_KV_Q8_0, x, row, N);
    st_kv_load_row(ST_KV_Q8_0, row, back, N);
    for (int i = 0; i < 32; i++) {
        cr_assert(fabsf(back[i] - x[i]) <= st_cpu_half(row[0].d) * 0.5f + 1e-6f, "%d", i);
        cr_assert_eq(row[1].qs[i], 0, "tiny block q[%d]", i);
        cr_assert_eq(back[32 + i], 0.0f, "tiny block %d", i);
        cr_assert(isnan(back[64 + i]), "non-finite block %d", i);
    }
}

/* The KV cache's typed gathers (scores_kv, wsum_kv) and row conversion
 * (kv_rows) of every ISA against double sums over the rows read back as
 * floats: each type, head sizes the registers hold and ones they do not,
 * odd key counts, rows with a byte stride that is not the row size. */
Test(kernels, kv_typed_gathers_match_double)
{
    const uint32_t dims[] = { 8, 24, 32, 64, 80, 96, 128 };
    for (int t = 0; t < ST_KV_TYPE_COUNT; t++)
        for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
            uint32_t dim = dims[di], n = 37;
            if (t == ST_KV_Q8_0 && dim % 32)
                continue;
            size_t rb = st_kv_row_bytes((st_kv_type)t, dim), stride = rb + 2 * 34;
            uint8_t *rows = calloc(2 * n, stride);
            float *deq = malloc((size_t)2 * n * dim * sizeof(float));
            float *x = malloc(dim * sizeof(float)), *q = malloc(dim * sizeof(float));
            for (uint32_t j = 0; j < 2 * n; j++) {
                for (uint32_t i = 0; i < dim; i++)
                    x[i] = frand() * 3.0f;
                st_kv_store_row((st_kv_type)t, x, rows + j * stride, dim);
                st_kv_load_row((st_kv_type)t, rows + j * stride, deq + (size_t)j * dim, dim);
                if (t == ST_KV_F32)
                    cr_assert(memcmp(x, deq + (size_t)j * dim, dim * sizeof(float)) == 0);
            }
            uint32_t idx[37];
            float p[37];
            for (uint32_t i = 0; i < n; i++) {
                idx[i] = (i * 7 + 3) % (2 * n); /* a gathered, unordered list */
                p[i] = frand() + 1.0f;
            }
            for (uint32_t i = 0; i < dim; i++)
                q[i] = frand();
            for (int isa = ST_ISA_SCALAR; isa <= (int)st_cpu_isa_detect(); isa++) {
                const st_cpu_kernels *k = st_cpu_kernels_get((st_cpu_isa)isa);
                if ((int)k->isa != isa)
                    continue;
                float sc[37], out[128], conv[2 * 37 * 128];
                k->scores_kv[t](q, rows, stride, idx, n, dim, 0.5f, sc);
                k->wsum_kv[t](out, p, rows, stride, idx, n, dim);
                k->kv_rows((st_kv_type)t, rows, stride, 2 * n, dim, conv);
                cr_assert(memcmp(conv, deq, (size_t)2 * n * dim * sizeof(float)) == 0,
                          "kv_rows type %d dim %u isa %d", t, dim, isa);
                for (uint32_t i = 0; i < n; i++) {
                    double s = 0;
                    for (uint32_t e = 0; e < dim; e++)
                        s += (double)q[e] * deq[(size_t)idx[i] * dim + e];
                    cr_assert_float_eq(sc[i], 0.5 * s, 1e-4 * (1 + fabs(s)),
                                       "scores type %d dim %u isa %d key %u", t, dim, isa, i);
                }
                for (uint32_t e = 0; e < dim; e++) {
                    double s = 0;
                    for (uint32_t i = 0; i < n; i++)
                        s += (double)p[i] * deq[(size_t)idx[i] * dim + e];
                    cr_assert_float_eq(out[e], s, 1e-4 * (1 + fabs(s)),
                                       "wsum type %d dim %u isa %d dim %u", t, dim, isa, e);
                }
            }
            free(rows); free(deq); free(x); free(q);
        }
}

/* The 16-row kernels (repacked weights) of every path that has them,
 * called directly for every tile width 1..8 with a stride wider than a
 * row, against the scalar row kernel on the original rows. */
static void check_gemm16(const st_cpu_kernels *k, st_ggml_type t, uint32_t cols, uint32_t rows,
                         const uint8_t *data, const st_act_block *xq, size_t stride)
{
    int kt = st_cpu_kernel_type(t);
    size_t rb = st_ggml_row_bytes(t, cols);
    st_weight w = { .type = t, .cols = cols, .rows = rows, .row_bytes = rb, .data = data };
    cr_assert_eq(st_repack_weight(&w), ST_OK);
    cr_assert_not_null(w.packed);
    const st_cpu_kernels *ks = st_cpu_kernels_scalar();
    for (uint32_t g = 0; g < rows / ST_PACK_ROWS; g++)
        for (uint32_t nt = 1; nt <= ST_TILE_MAX; nt++) {
            float got[ST_TILE_MAX * ST_PACK_ROWS];
            k->gemm16[kt](cols, w.packed + g * w.packed_group_bytes, xq, stride, nt, got);
            for (uint32_t r = 0; r < ST_PACK_ROWS; r++) {
                float want[ST_TILE_MAX];
                ks->dot[kt](cols, data + (size_t)(g * ST_PACK_ROWS + r) * rb, xq, stride, nt, want);
                /* The block order, bit for bit (kernels.h), except the
                 * AVX-512 Q8_0 kernel's u8 + 128 form. */
                bool exact = !(k->isa == ST_ISA_AVX512 && t == ST_GGML_Q8_0);
                for (uint32_t tt = 0; tt < nt && exact; tt++)
                    cr_assert(got[tt * ST_PACK_ROWS + r] == want[tt],
                              "%s gemm16 type %d cols %u row %u nt %u t %u: %.9g vs scalar "
                              "block order %.9g", st_cpu_isa_name(k->isa), t, cols,
                              g * 16 + r, nt, tt, got[tt * ST_PACK_ROWS + r], want[tt]);
                for (uint32_t tt = 0; tt < nt; tt++)
                    cr_assert_float_eq(got[tt * ST_PACK_ROWS + r], want[tt],
                                       1e-5 * (1 + fabsf(want[tt])),
                                       "%s gemm16 type %d cols %u row %u nt %u t %u: %g vs %g",
                                       st_cpu_isa_name(k->isa), t, cols, g * 16 + r, nt, tt,
                                       got[tt * ST_PACK_ROWS + r], want[tt]);
            }
        }
    free(w.packed);
}

/* Every 16-row kernel of this CPU against the scalar row kernels. */
static void gemm16_paths_match_rows(void)
{
    static const uint32_t qcols[] = { 32, 96, 224, 800 };
    static const st_ggml_type qtypes[] = { ST_GGML_Q4_0, ST_GGML_Q4_1, ST_GGML_Q8_0 };
    int tested = 0;
    for (int isa = ST_ISA_AVX2; isa <= ST_ISA_AVX512; isa++) {
        const st_cpu_kernels *k = st_cpu_kernels_get((st_cpu_isa)isa);
        if ((int)k->isa != isa)
            continue; /* this CPU lacks the path */
        for (size_t ti = 0; ti < 3; ti++) {
            st_ggml_type t = qtypes[ti];
            cr_assert_not_null(k->gemm16[st_cpu_kernel_type(t)], "%s has no gemm16 for %d",
                               st_cpu_isa_name(k->isa), t);
            for (size_t c = 0; c < 4; c++) {
                uint32_t cols = qcols[c], rows = 48;
                size_t rb = st_ggml_row_bytes(t, cols), stride = cols / 32 + 3;
                uint8_t *data = malloc(rb * rows);
                float *deq = malloc(cols * sizeof *deq), *x = malloc(cols * sizeof *x);
                for (uint32_t r = 0; r < rows; r++) {
                    void *row = make_row(t, cols, deq);
                    memcpy(data + r * rb, row, rb);
                    free(row);
                }
                st_act_block *xq = calloc(ST_TILE_MAX * stride, sizeof *xq);
                for (uint32_t tt = 0; tt < ST_TILE_MAX; tt++) {
                    for (uint32_t i = 0; i < cols; i++)
                        x[i] = frand() * (1.0f + tt);
                    st_quantize_act_row(x, cols, xq + tt * stride);
                }
                check_gemm16(k, t, cols, rows, data, xq, stride);
                free(data); free(deq); free(x); free(xq);
                tested++;
            }
        }
    }
    if (st_cpu_isa_detect() >= ST_ISA_AVX2)
        cr_assert_gt(tested, 0);
}

Test(forward_kernels, gemm16_paths_match_rows)
{
    gemm16_paths_match_rows();
}

/* The one-token kernels prefetch the weights ahead or not by the CPU's
 * vendor (st_cpu_weight_prefetch); each setting, forced through the
 * environment before its first read (each test runs in its own process),
 * must give the same products. */
Test(forward_kernels, gemm16_with_the_weight_prefetch_off)
{
    setenv("STRETCH_WEIGHT_PREFETCH", "0", 1);
    cr_assert(!st_cpu_weight_prefetch());
    gemm16_paths_match_rows();
}

Test(forward_kernels, gemm16_with_the_weight_prefetch_on)
{
    setenv("STRETCH_WEIGHT_PREFETCH", "1", 1);
    cr_assert(st_cpu_weight_prefetch());
    gemm16_paths_match_rows();
}

/* The integer sums at their extremes: every Q4 nibble 15 and Q8 weight
 * -128 or 127 against activations of +-127, where vpmaddubsw's 16-bit
 * sums would saturate if a kernel let them (AVX2 adds 8 Q4 steps in 16
 * bits: 8 x 2 x 15 x 127 = 30480 stays below 2^15). */
Test(forward_kernels, gemm16_integer_extremes)
{
    enum { COLS = 64, ROWS = 16 };
    static const st_ggml_type qtypes[] = { ST_GGML_Q4_0, ST_GGML_Q4_1, ST_GGML_Q8_0 };
    st_act_block xq[ST_TILE_MAX * 2];
    for (int tt = 0; tt < ST_TILE_MAX; tt++)
        for (int b = 0; b < 2; b++) {
            st_act_block *a = &xq[tt * 2 + b];
            int sum = 0;
            for (int i = 0; i < 32; i++) {
                a->q[i] = (int8_t)((tt & 1) ? -127 : (i % 3 == 0 && tt > 3 ? -127 : 127));
                sum += a->q[i];
            }
            a->d = 0.5f;
            a->s = a->d * (float)sum;
            a->s16 = a->s;
        }
    for (int isa = ST_ISA_AVX2; isa <= ST_ISA_AVX512; isa++) {
        const st_cpu_kernels *k = st_cpu_kernels_get((st_cpu_isa)isa);
        if ((int)k->isa != isa)
            continue;
        for (size_t ti = 0; ti < 3; ti++) {
            st_ggml_type t = qtypes[ti];
            size_t rb = st_ggml_row_bytes(t, COLS);
            uint8_t *data = calloc(ROWS, rb);
            for (uint32_t r = 0; r < ROWS; r++)
                for (uint32_t b = 0; b < COLS / 32; b++) {
                    uint8_t *row = data + r * rb;
                    if (t == ST_GGML_Q4_0) {
                        st_block_q4_0 *blk = (st_block_q4_0 *)row + b;
                        blk->d = st_cpu_to_half(1.0f + (float)r);
                        memset(blk->qs, r % 2 ? 0xff : 0xf0, sizeof blk->qs);
                    } else if (t == ST_GGML_Q4_1) {
                        st_block_q4_1 *blk = (st_block_q4_1 *)row + b;
                        blk->d = st_cpu_to_half(1.0f + (float)r);
                        blk->m = st_cpu_to_half(-2.0f);
                        memset(blk->qs, r % 2 ? 0xff : 0x0f, sizeof blk->qs);
                    } else {
                        st_block_q8_0 *blk = (st_block_q8_0 *)row + b;
                        blk->d = st_cpu_to_half(1.0f + (float)r);
                        for (int i = 0; i < 32; i++)
                            blk->qs[i] = (int8_t)(r % 2 ? -128 : (i % 2 ? 127 : -128));
                    }
                }
            check_gemm16(k, t, COLS, ROWS, data, xq, 2);
            free(data);
        }
    }
}

/* The AMX probe's CPUID reading agrees with the kernel's /proc/cpuinfo
 * flags, and a CPU without the units is reported as such, never probed
 * further (this machine class has no AMX: the decision must say why). */
static bool cpuinfo_flag(const char *flags, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = flags; (p = strstr(p, name)) != NULL; p += n)
        if ((p == flags || p[-1] == ' ' || p[-1] == '\t') &&
            (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

Test(forward_kernels, amx_probe_matches_cpuinfo)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        cr_skip_test("no /proc/cpuinfo to compare with");
    static char line[8192];
    bool found = false;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "flags", 5) == 0) {
            found = true;
            break;
        }
    fclose(f);
    if (!found)
        cr_skip_test("/proc/cpuinfo lists no flags");
    bool tile = cpuinfo_flag(line, "amx_tile"), int8 = cpuinfo_flag(line, "amx_int8");
    st_amx_probe p;
    st_amx_probe_run(&p);
    cr_assert_eq(p.cpu_tile, tile, "probe amx-tile %d, cpuinfo %d", p.cpu_tile, tile);
    cr_assert_eq(p.cpu_int8, int8, "probe amx-int8 %d, cpuinfo %d", p.cpu_int8, int8);
    if (!tile || !int8) {
        cr_assert(!p.os_tile && !p.permitted);
        cr_assert(strstr(p.reason, "amx: unavailable (cpu lacks amx-") == p.reason, "%s", p.reason);
    } else if (p.permitted) {
        cr_assert(p.os_tile);
        cr_assert(strstr(p.reason, "amx: usable") == p.reason, "%s", p.reason);
    } else {
        cr_assert(strstr(p.reason, "amx: unavailable (") == p.reason, "%s", p.reason);
    }
}

/* The fused decode attention of every path that has it, on one KV type:
 * keys and values fed in blocks of uneven sizes (so the online softmax
 * rescales, and the tails of 8 run), against softmax(q k) v computed
 * directly in double over the stored values. A block of keys far below
 * the running max must weigh ~0 (the exp's low clamp). */
static void decode_matches_double(st_kv_type kt, uint32_t hd, uint32_t G)
{
    const uint32_t blocks[] = { 5, 64, 3, 29, 1, 16 }; /* 118 keys */
    enum { NK = 118, MAXG = ST_DEC_MAX_G, MAXHD = 256 };
    /* wider than a row, as the cache's heads are */
    size_t stride = (kt == ST_KV_Q8_0 ? hd / 32 * sizeof(st_block_q8_0) : hd * 2) + 48;
    uint8_t *k = calloc(NK, stride), *v = calloc(NK, stride);
    float *kd = malloc((size_t)NK * hd * sizeof(float));
    float *vd = malloc((size_t)NK * hd * sizeof(float));
    float *q = malloc((size_t)G * hd * sizeof(float)), *x = malloc(hd * sizeof(float));
    for (uint32_t j = 0; j < NK; j++) {
        /* keys 70..74 score far below the rest for every head */
        float far = j >= 70 && j < 75 ? -50.0f : 0.0f;
        for (uint32_t i = 0; i < hd; i++)
            x[i] = frand() * 2.0f + (i == 0 ? far : 0.0f);
        st_kv_store_row(kt, x, k + j * stride, hd);
        st_kv_load_row(kt, k + j * stride, kd + (size_t)j * hd, hd);
        for (uint32_t i = 0; i < hd; i++)
            x[i] = frand() * 3.0f;
        st_kv_store_row(kt, x, v + j * stride, hd);
        st_kv_load_row(kt, v + j * stride, vd + (size_t)j * hd, hd);
    }
    for (uint32_t i = 0; i < G * hd; i++)
        q[i] = frand() * 0.5f;
    for (uint32_t h = 0; h < G; h++)
        q[(size_t)h * hd] = 2.0f; /* makes the "far" keys far */
    /* The query the scores are exact for: a Q8_0 cache is scored with the
     * query in int8 blocks (d x q, as st_quantize_act_row makes them). */
    float *qref = malloc((size_t)G * hd * sizeof(float));
    memcpy(qref, q, (size_t)G * hd * sizeof(float));
    if (kt == ST_KV_Q8_0) {
        st_act_block qa[MAXG * MAXHD / 32];
        st_quantize_act_row(q, G * hd, qa);
        for (uint32_t i = 0; i < G * hd; i++)
            qref[i] = qa[i / 32].d * (float)qa[i / 32].q[i % 32];
    }
    int ran = 0;
    for (int isa = ST_ISA_SCALAR; isa <= (int)st_cpu_isa_detect(); isa++) {
        const st_cpu_kernels *kn = st_cpu_kernels_get((st_cpu_isa)isa);
        st_attn_decode_fn fn = kt == ST_KV_Q8_0 ? kn->attn_decode_q8_0 : kn->attn_decode_f16;
        if ((int)kn->isa != isa || !fn)
            continue;
        ran++;
        static float m[MAXG], l[MAXG], s[MAXG * 64], acc[MAXG * MAXHD];
        for (uint32_t h = 0; h < G; h++) {
            m[h] = -INFINITY;
            l[h] = 0.0f;
        }
        memset(acc, 0, sizeof acc);
        uint32_t j0 = 0;
        for (size_t b = 0; b < sizeof blocks / sizeof *blocks; b++) {
            fn(q, G, hd, k + j0 * stride, stride, v + j0 * stride, stride, blocks[b], s, m, l,
               acc);
            j0 += blocks[b];
        }
        cr_assert_eq(j0, NK);
        for (uint32_t h = 0; h < G; h++) {
            double sc[NK], mx = -INFINITY, sum = 0;
            for (uint32_t j = 0; j < NK; j++) {
                sc[j] = 0;
                for (uint32_t i = 0; i < hd; i++)
                    sc[j] += (double)qref[(size_t)h * hd + i] * kd[(size_t)j * hd + i];
                mx = sc[j] > mx ? sc[j] : mx;
            }
            for (uint32_t j = 0; j < NK; j++)
                sum += (sc[j] = exp(sc[j] - mx));
            cr_assert_float_eq(m[h], mx, 1e-4 * (1 + fabs(mx)), "max G %u hd %u type %d", G, hd,
                               (int)kt);
            cr_assert_float_eq(l[h], sum, 1e-4 * sum, "sum G %u hd %u type %d", G, hd, (int)kt);
            for (uint32_t i = 0; i < hd; i++) {
                double o = 0;
                for (uint32_t j = 0; j < NK; j++)
                    o += sc[j] * vd[(size_t)j * hd + i];
                cr_assert_float_eq(acc[(size_t)h * hd + i] / l[h], o / sum,
                                   1e-4 * (1 + fabs(o / sum)),
                                   "out G %u hd %u head %u dim %u isa %d type %d", G, hd, h, i,
                                   isa, (int)kt);
            }
        }
    }
    /* x86-64 always has an AVX2 table here, so some path must have run
     * (the scalar table has no fused kernel). */
#if defined(__x86_64__)
    if (st_cpu_isa_detect() >= ST_ISA_AVX2)
        cr_assert(ran > 0, "no path ran the fused decode for type %d", (int)kt);
#endif
    free(k); free(v); free(kd); free(vd); free(q); free(qref); free(x);
}

/* f16: every group size 1..8 and head dims 16..128. On AVX-512, head dims
 * 16..64 with up to 3 heads run the 512-bit kernel (one per dims count),
 * the rest the 256-bit one. */
Test(kernels, attn_decode_f16_matches_double)
{
    const uint32_t hds[] = { 16, 32, 48, 64, 128 };
    for (size_t hi = 0; hi < sizeof hds / sizeof *hds; hi++)
        for (uint32_t G = 1; G <= ST_DEC_MAX_G; G++)
            decode_matches_double(ST_KV_F16, hds[hi], G);
}

/* Q8_0 (attn_decode_q8_0): whole blocks of 32 up to ST_DEC_Q8_MAX_HD,
 * every group size, through the 256-bit kernel on every x86 path and,
 * on AVX-512, the 512-bit values pass for groups of up to 3 heads of 32
 * or 64 dims. */
Test(kernels, attn_decode_q8_0_matches_double)
{
    const uint32_t hds[] = { 32, 64, 96, 128, ST_DEC_Q8_MAX_HD };
    for (size_t hi = 0; hi < sizeof hds / sizeof *hds; hi++)
        for (uint32_t G = 1; G <= ST_DEC_MAX_G; G++)
            decode_matches_double(ST_KV_Q8_0, hds[hi], G);
}

/* Every path's to_f16 (the decode step's stores into an f16 cache) gives
 * st_cpu_to_half's bits: every 4,099th float bit pattern (normals,
 * subnormal halves, values that round to infinity, infinities), lengths
 * with and without a tail of 8; a NaN stays a NaN. */
Test(kernels, to_f16_matches_the_scalar_conversion)
{
    enum { N = 1027 };
    float src[N];
    uint16_t want[N], got[N];
    for (int isa = ST_ISA_SCALAR; isa <= (int)st_cpu_isa_detect(); isa++) {
        const st_cpu_kernels *kn = st_cpu_kernels_get((st_cpu_isa)isa);
        if ((int)kn->isa != isa)
            continue;
        cr_assert_not_null(kn->to_f16, "isa %d has no to_f16", isa);
        for (uint64_t u0 = 0; u0 < (1ull << 32); u0 += (uint64_t)N * 4099u) {
            for (uint32_t i = 0; i < N; i++) {
                uint32_t u = (uint32_t)(u0 + (uint64_t)i * 4099u);
                memcpy(&src[i], &u, sizeof u);
                want[i] = st_cpu_to_half(src[i]);
            }
            uint32_t n = (uint32_t)(u0 / ((uint64_t)N * 4099u)) % 2 ? N : N - 3;
            memset(got, 0xAA, sizeof got);
            kn->to_f16(src, got, n);
            for (uint32_t i = 0; i < n; i++) {
                bool nan = isnan(src[i]);
                if (nan)
                    cr_assert((got[i] & 0x7c00u) == 0x7c00u && (got[i] & 0x3ffu),
                              "isa %d: NaN %08x gave %04x", isa, (unsigned)(u0 + i * 4099u),
                              got[i]);
                else
                    cr_assert_eq(got[i], want[i], "isa %d: %a gave %04x, want %04x", isa,
                                 (double)src[i], got[i], want[i]);
            }
            cr_assert_eq(got[n < N ? n : N - 1], n < N ? 0xAAAA : got[N - 1],
                         "isa %d wrote past n", isa);
        }
    }
}

/* |got - want| within a few ulp of want (a float), or both the same
 * non-finite value; near zero an absolute floor, for the subnormals the
 * exp polynomial makes below e^-87. */
static bool close_float(float got, double want, double rel)
{
    float wf = (float)want;
    if (isnan(wf))
        return isnan(got);
    if (isinf(wf) || isinf(got))
        return got == wf || fabs(want) > FLT_MAX * (1.0 - rel);
    return fabs((double)got - want) <= rel * fabs(want) + 1e-35;
}

Test(kernels, silu_mul_is_silu_times_u_on_every_path)
{
    enum { N = 1027 };
    float g[N + 1], u[N], h[N + 1]; /* [n] holds a sentinel */
    for (int isa = ST_ISA_SCALAR; isa <= (int)st_cpu_isa_detect(); isa++) {
        const st_cpu_kernels *kn = st_cpu_kernels_get((st_cpu_isa)isa);
        if ((int)kn->isa != isa)
            continue;
        cr_assert_not_null(kn->silu_mul, "isa %d has no silu_mul", isa);
        uint32_t round = 0;
        /* Every 4099th float bit pattern as g: both signs, zeros,
         * subnormals, e^-g past the float range, infinities, NaNs. */
        for (uint64_t u0 = 0; u0 < (1ull << 32); u0 += (uint64_t)N * 4099u, round++) {
            for (uint32_t i = 0; i < N; i++) {
                uint32_t b = (uint32_t)(u0 + (uint64_t)i * 4099u);
                memcpy(&g[i], &b, sizeof b);
                u[i] = (float)((int)(b % 4001u) - 2000) / 1000.0f;
            }
            uint32_t n = round % 2 ? N : N - 3;
            float *out = round % 4 < 2 ? h : g; /* in place half the time */
            float g0[N];
            memcpy(g0, g, sizeof g0);
            h[n] = 12345.0f;
            if (out == g)
                g[n] = 12345.0f;
            kn->silu_mul(out, g, u, n);
            for (uint32_t i = 0; i < n; i++) {
                double x = g0[i];
                double want = x / (1.0 + exp(-x)) * (double)u[i];
                cr_assert(close_float(out[i], want, 4e-7), "isa %d: silu(%a) * %a = %a, want %a",
                          isa, x, (double)u[i], (double)out[i], want);
            }
            cr_assert_eq(out[n], 12345.0f, "isa %d wrote past n", isa);
        }
    }
}

Test(kernels, sum_exp_is_the_softmax_denominator_on_every_path)
{
    /* A vocabulary's logits: a spread of 30 (e^-30 still counts a little),
     * lengths around the lanes' multiples, the maximum anywhere. */
    enum { N = 49157 };
    static float x[N];
    for (uint32_t i = 0; i < N; i++)
        x[i] = (float)(sin(0.001 * i * i) * 15.0 - 10.0 + (i % 11) * 0.3);
    const uint32_t lengths[] = {1, 7, 8, 9, 15, 16, 17, 1000, 49152, N};
    for (int isa = ST_ISA_SCALAR; isa <= (int)st_cpu_isa_detect(); isa++) {
        const st_cpu_kernels *kn = st_cpu_kernels_get((st_cpu_isa)isa);
        if ((int)kn->isa != isa)
            continue;
        cr_assert_not_null(kn->sum_exp, "isa %d has no sum_exp", isa);
        for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
            uint32_t n = lengths[k];
            float mx = -INFINITY;
            for (uint32_t i = 0; i < n; i++)
                mx = x[i] > mx ? x[i] : mx;
            double want = 0.0;
            for (uint32_t i = 0; i < n; i++)
                want += exp((double)x[i] - mx);
            double got = kn->sum_exp(x, n, mx);
            /* A few ulp of float a term: far below what a log-probability
             * printed to 6 digits shows. */
            cr_assert(fabs(got - want) <= 1e-6 * want, "isa %d, n %u: %.17g, want %.17g", isa,
                      n, got, want);
        }
    }
}

Test(kernels, rmsnorm_matches_double_at_every_length)
{
    enum { N = 1100 };
    float x[N], w[N], out[N + 1];
    for (uint32_t i = 0; i < N; i++) {
        x[i] = (float)sin(0.37 * i) * (i % 7 ? 1.0f : 30.0f);
        w[i] = 0.5f + (float)(i % 13) / 13.0f;
    }
    const uint32_t lengths[] = {1, 7, 15, 16, 17, 31, 64, 576, 1000, N};
    for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
        uint32_t n = lengths[k];
        double ss = 0.0;
        for (uint32_t i = 0; i < n; i++)
            ss += (double)x[i] * x[i];
        double r = 1.0 / sqrt(ss / n + 1e-5);
        out[n] = 777.0f;
        st_op_rmsnorm(out, x, w, n, 1e-5f);
        for (uint32_t i = 0; i < n; i++)
            cr_assert(close_float(out[i], x[i] * r * w[i], 2e-6), "n %u: [%u] %a, want %a", n,
                      i, (double)out[i], x[i] * r * w[i]);
        cr_assert_eq(out[n], 777.0f, "n %u wrote past n", n);
    }
}

/* gemm_f32 blocks rows and tokens; every value must be the one the row
 * kernel dot[F32] gives, bit for bit, for whole blocks and every tail of
 * rows, tokens and columns (the encoders' vectors do not depend on how a
 * batch falls into blocks). */
Test(kernels, gemm_f32_is_the_row_kernel_bit_for_bit)
{
    static const uint32_t cols_list[] = { 1, 7, 8, 9, 24, 40, 385 };
    int tested = 0;
    for (int isa = ST_ISA_SCALAR; isa <= ST_ISA_AVX512; isa++) {
        const st_cpu_kernels *k = st_cpu_kernels_get((st_cpu_isa)isa);
        if ((int)k->isa != isa || !k->gemm_f32)
            continue;
        st_dot_tile_fn dot = k->dot[st_cpu_kernel_type(ST_GGML_F32)];
        for (size_t c = 0; c < sizeof cols_list / sizeof cols_list[0]; c++) {
            uint32_t n = cols_list[c], ldw = n + 3, xs = n + 5;
            for (uint32_t rows = 1; rows <= 13; rows += 3)
                for (uint32_t nt = 1; nt <= 15; nt += 2) {
                    float *w = malloc(rows * ldw * sizeof *w), *x = malloc(nt * xs * sizeof *x);
                    for (uint32_t i = 0; i < rows * ldw; i++)
                        w[i] = frand();
                    for (uint32_t i = 0; i < nt * xs; i++)
                        x[i] = frand() * 3.0f;
                    size_t ldy = rows + 2;
                    float *y = malloc(nt * ldy * sizeof *y), out[ST_TILE_MAX];
                    k->gemm_f32(n, w, ldw, rows, x, xs, nt, y, ldy);
                    for (uint32_t t0 = 0; t0 < nt; t0 += ST_TILE_MAX) {
                        uint32_t tn = nt - t0 < ST_TILE_MAX ? nt - t0 : ST_TILE_MAX;
                        for (uint32_t r = 0; r < rows; r++) {
                            dot(n, w + r * ldw, x + t0 * xs, xs, tn, out);
                            for (uint32_t t = 0; t < tn; t++)
                                cr_assert(memcmp(&out[t], &y[(t0 + t) * ldy + r], 4) == 0,
                                          "%s: cols %u rows %u tokens %u: row %u token %u: "
                                          "%.9g, the row kernel %.9g",
                                          st_cpu_isa_name(k->isa), n, rows, nt, r, t0 + t,
                                          y[(t0 + t) * ldy + r], out[t]);
                        }
                    }
                    free(w); free(x); free(y);
                    tested++;
                }
        }
    }
    if (st_cpu_isa_detect() >= ST_ISA_AVX2)
        cr_assert_gt(tested, 0);
}

/* The bandwidth probe reads memory, not the last-level cache: its buffer
 * is at least 4x the L3 the CPU reports (the 260 MiB L3 of a recent Xeon
 * held most of the old fixed 256 MiB), within 256 MiB..1 GiB. */
Test(forward_kernels, roofline_probe_reads_past_the_l3)
{
    size_t b = st_roofline_read_bytes(), mib = (size_t)1 << 20;
    cr_assert_geq(b, 256 * mib);
    cr_assert_leq(b, 1024 * mib);
    cr_assert_eq(b % (2 * mib), 0);
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0 && (size_t)l3 * 4 <= 1024 * mib)
        cr_assert_geq(b + 2 * mib, (size_t)l3 * 4, "%zu bytes for an L3 of %ld", b, l3);
}
