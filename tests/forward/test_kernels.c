/* Every dot-product kernel of every ISA path against the scalar path and
 * against a double-precision dequantized product, on random data of odd
 * sizes and every tile width; the threaded matmul against one thread. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/kernels.h"
#include "cpu/matmul.h"
#include "cpu/repack.h"
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

Test(forward_kernels, act_quantization)
{
    float x[64];
    for (int i = 0; i < 64; i++)
        x[i] = frand() * (i < 32 ? 3.0f : 0.01f);
    x[5] = 0;
    st_act_block b[2];
    st_quantize_act_row(x, 64, b);
    for (int k = 0; k < 2; k++) {
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            cr_assert_leq(fabsf(b[k].d * b[k].q[i] - x[k * 32 + i]), b[k].d * 0.5f + 1e-7f);
            sum += b[k].q[i];
        }
        cr_assert_float_eq(b[k].s, b[k].d * sum, 1e-6);
    }
    float z[32] = { 0 };
    st_quantize_act_row(z, 32, b);
    cr_assert_eq(b[0].d, 0.0f);
    cr_assert_eq(b[0].s, 0.0f);
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
    for (uint32_t nt = 1; nt <= NT; nt++) {
        float got[NT], want[NT];
        k->dot[kt](cols, row, xa, stride, nt, got);
        ks->dot[kt](cols, row, xa, stride, nt, want);
        for (uint32_t tt = 0; tt < nt; tt++) {
            /* The exact product of what the kernel sees. */
            double ref = 0, mag = 0;
            for (uint32_t i = 0; i < cols; i++) {
                double a = quant ? (double)xq[tt * stride + i / 32].d * xq[tt * stride + i / 32].q[i % 32]
                                 : x[tt * (cols + 3) + i];
                ref += (double)deq[i] * a;
                mag += fabs((double)deq[i] * a);
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

Test(forward_kernels, isa_override)
{
    setenv("STRETCH_ISA", "scalar", 1);
    cr_assert_eq(st_cpu_isa_active(), ST_ISA_SCALAR);
    setenv("STRETCH_ISA", "avx512", 1);
    cr_assert_eq(st_cpu_isa_active(), st_cpu_isa_detect());
    unsetenv("STRETCH_ISA");
    cr_assert_eq(st_cpu_isa_active(), st_cpu_isa_detect());
}

/* The threaded, chunked, tiled matmul equals row-by-row scalar dots, with
 * and without the repacked 16-row layout (rows 48 repack, 77 do not). */
static void check_matmul(st_ggml_type t, uint32_t rows, bool repack)
{
    uint32_t cols = 160, nt = 19;
    size_t rb = st_ggml_row_bytes(t, cols);
    uint8_t *data = malloc(rb * rows);
    float *deq = malloc(cols * sizeof *deq);
    for (uint32_t r = 0; r < rows; r++) {
        void *row = make_row(t, cols, deq);
        memcpy(data + r * rb, row, rb);
        free(row);
    }
    st_weight w = { .type = t, .cols = cols, .rows = rows, .row_bytes = rb, .data = data };
    if (repack) {
        cr_assert_eq(st_repack_weight(&w), ST_OK);
        cr_assert_eq(w.packed != NULL, st_cpu_type_is_quantized(t) && rows % 16 == 0);
    }
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
    free(data); free(deq); free(x); free(y1); free(y2);
}

Test(forward_kernels, matmul_threads_and_tiles)
{
    for (size_t k = 0; k < sizeof all_types / sizeof *all_types; k++) {
        check_matmul(all_types[k], 77, false);
        check_matmul(all_types[k], 48, true);
        check_matmul(all_types[k], 64, false);
    }
}

typedef struct count_arg { _Atomic unsigned hits[8]; } count_arg;
static void count_task(void *arg, uint32_t ith, uint32_t nth)
{
    count_arg *c = arg;
    cr_assert_lt(ith, nth);
    atomic_fetch_add(&c->hits[ith], 1);
}

Test(forward_kernels, threadpool_runs_every_thread)
{
    st_threadpool *pool;
    st_diag d;
    cr_assert_eq(st_threadpool_create(0, &pool, &d), ST_E_INVALID);
    cr_assert_eq(st_threadpool_create(3, &pool, &d), ST_OK);
    count_arg c;
    for (int i = 0; i < 8; i++)
        atomic_init(&c.hits[i], 0);
    for (int r = 0; r < 1000; r++)
        st_threadpool_run(pool, count_task, &c);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(atomic_load(&c.hits[i]), 1000);
    st_threadpool_destroy(pool);
}
