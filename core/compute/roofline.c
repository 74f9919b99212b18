/*
 * core/compute/roofline.c - see roofline.h.
 */
#include "roofline.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "big_alloc.h"
#include "gguf.h"
#include "matmul.h"
#include "quant.h"
#include "repack.h"

/* Odd, for a median; 9 passes of 256 MiB take 50-100 ms. */
#define READ_PASSES 9
#define INT8_ROWS 256                  /* a multiple of the repack group */
#define INT8_COLS 2048                 /* ~320 KB of Q4 weights: L2-resident (2 MB as F32) */
#define INT8_CALLS 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct read_job {
    const uint64_t *buf;
    size_t n_words;
    st_cpu_isa isa;
    uint64_t sink[64];  /* one per thread, so the reads are not optimised away */
} read_job;

/* Each read loop sums 256 bytes an iteration into four independent
 * vectors of the ISA's widest loads, so that the loop's instructions stay
 * far from a limit on machines that read faster than this one (an 8-byte
 * load per word needs 8 loads a cache line). */
typedef uint64_t st_u64x8 __attribute__((vector_size(64)));
typedef uint64_t st_u64x4 __attribute__((vector_size(32)));

#define ST_READ_LOOP(V, lanes)                                                     \
    {                                                                              \
        V a = {0}, b = {0}, c = {0}, d = {0};                                      \
        const uint64_t *p = buf;                                                   \
        size_t i = 0;                                                              \
        for (; i + 4 * (lanes) <= n; i += 4 * (lanes)) {                           \
            V x0, x1, x2, x3;                                                      \
            memcpy(&x0, p + i, sizeof x0);                                         \
            memcpy(&x1, p + i + (lanes), sizeof x1);                               \
            memcpy(&x2, p + i + 2 * (lanes), sizeof x2);                           \
            memcpy(&x3, p + i + 3 * (lanes), sizeof x3);                           \
            a += x0, b += x1, c += x2, d += x3;                                    \
        }                                                                          \
        V t = a + b + c + d;                                                       \
        uint64_t s = 0;                                                            \
        for (int l = 0; l < (lanes); l++)                                          \
            s += t[l];                                                             \
        for (; i < n; i++)                                                         \
            s += p[i];                                                             \
        return s;                                                                  \
    }

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static uint64_t read_avx512(const uint64_t *buf, size_t n)
ST_READ_LOOP(st_u64x8, 8)
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint64_t *buf, size_t n)
ST_READ_LOOP(st_u64x4, 4)
#endif
static uint64_t read_words(const uint64_t *buf, size_t n)
ST_READ_LOOP(st_u64x4, 4)

static void read_task(void *arg, uint32_t ith, uint32_t nth)
{
    read_job *j = arg;
    size_t per = j->n_words / nth, lo = per * ith, hi = ith + 1 == nth ? j->n_words : lo + per;
    const uint64_t *p = j->buf + lo;
    size_t n = hi - lo;
    uint64_t s;
#if defined(__x86_64__)
    if (j->isa == ST_ISA_AVX512)
        s = read_avx512(p, n);
    else if (j->isa == ST_ISA_AVX2)
        s = read_avx2(p, n);
    else
#endif
        s = read_words(p, n);
    j->sink[ith % 64] = s;
}

/* What the read probe reads must come from memory, not the last-level
 * cache. 256 MiB is 8x a 32 MiB L3; a Xeon that reports a 260
 * MiB L3 (docs/RESULTS.md section 2) gets 4x that, up to 1 GiB. A multiple
 * of 2 MiB, the huge page. */
size_t st_roofline_read_bytes(void)
{
    size_t b = (size_t)256 << 20;
#ifdef _SC_LEVEL3_CACHE_SIZE
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0 && (size_t)l3 * 4 > b)
        b = (size_t)l3 * 4;
#endif
    if (b > (size_t)1 << 30)
        b = (size_t)1 << 30;
    return b & ~(((size_t)2 << 20) - 1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The fastest pass is the ceiling; the median pass says how far a
 * host's bandwidth strays from it between bursts (docs/RESULTS.md
 * section 2 met one that read 38 to 65 GB/s within a second). */
static st_status measure_read(st_threadpool *pool, st_cpu_isa isa, double *best_out,
                              double *median_out, st_diag *diag)
{
    const size_t bytes = st_roofline_read_bytes();
    read_job j = {.n_words = bytes / sizeof(uint64_t), .isa = isa};
    /* On huge pages where the OS has them, as the model's weights are
     * (base/big_alloc.h): the ceiling is the read rate of such memory. */
    uint64_t *buf = st_big_alloc(bytes);
    if (!buf)
        return st_diag_set(diag, ST_E_NOMEM, NULL, 0, 0, "out of memory for the bandwidth probe");
    memset(buf, 1, bytes); /* fault every page in before timing */
    j.buf = buf;
    double dt[READ_PASSES];
    for (int p = 0; p < READ_PASSES; p++) {
        double t0 = now_s();
        st_threadpool_run(pool, read_task, &j);
        dt[p] = now_s() - t0;
    }
    st_big_free(buf, bytes);
    qsort(dt, READ_PASSES, sizeof dt[0], cmp_double);
    *best_out = dt[0] > 0 ? (double)bytes / dt[0] : 0;
    *median_out = dt[READ_PASSES / 2] > 0 ? (double)bytes / dt[READ_PASSES / 2] : 0;
    return ST_OK;
}

/* A `rows` x `cols` weight of type `t` quantized (or converted, for F32
 * and F16) from pseudo-random values, repacked as the model's would be. */
static st_status synthetic_weight(st_ggml_type t, st_weight *w, st_diag *diag)
{
    size_t row_bytes = (size_t)st_ggml_row_bytes(t, INT8_COLS);
    float *src = malloc(sizeof(float) * INT8_COLS * INT8_ROWS);
    uint8_t *data = malloc(row_bytes * INT8_ROWS);
    if (!src || !data) {
        free(src);
        free(data);
        return st_diag_set(diag, ST_E_NOMEM, NULL, 0, 0, "out of memory for the dot-product probe");
    }
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < (size_t)INT8_COLS * INT8_ROWS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        src[i] = (float)(int64_t)(x % 2001) * 1e-3f - 1.0f;
    }
    st_status st = st_quantize(t, src, data, (uint64_t)INT8_COLS * INT8_ROWS);
    free(src);
    *w = (st_weight){.type = t, .cols = INT8_COLS, .rows = INT8_ROWS, .row_bytes = row_bytes,
                     .data = data};
    if (st == ST_OK)
        st = st_repack_weight(w);
    if (st != ST_OK) {
        free(data);
        return st_diag_set(diag, st, NULL, 0, 0, "the dot-product probe could not build its weights");
    }
    return ST_OK;
}

static st_status measure_dot(st_threadpool *pool, const st_cpu_kernels *kern,
                              st_ggml_type wtype, double *out, st_diag *diag)
{
    st_weight w;
    st_status st = synthetic_weight(wtype, &w, diag);
    if (st != ST_OK)
        return st;
    float *x = malloc(sizeof(float) * INT8_COLS * ST_TILE_MAX);
    st_act_block *xq = malloc(sizeof(st_act_block) * (INT8_COLS / ST_ACT_BLOCK) * ST_TILE_MAX);
    float *y = malloc(sizeof(float) * INT8_ROWS * ST_TILE_MAX);
    if (!x || !xq || !y) {
        st = st_diag_set(diag, ST_E_NOMEM, NULL, 0, 0, "out of memory for the dot-product probe");
        goto done;
    }
    for (size_t i = 0; i < (size_t)INT8_COLS * ST_TILE_MAX; i++)
        x[i] = (float)((int)(i * 2654435761u % 2001) - 1000) * 1e-3f;
    /* Quantized weights multiply int8 activations; float ones floats. */
    bool quantized = st_ggml_block_elems(wtype) == ST_ACT_BLOCK;
    for (int t = 0; quantized && t < ST_TILE_MAX; t++)
        kern->quantize_act(x + (size_t)t * INT8_COLS, INT8_COLS,
                           xq + (size_t)t * (INT8_COLS / ST_ACT_BLOCK));
    double best = 1e30;
    for (int pass = 0; pass < 3; pass++) {
        double t0 = now_s();
        for (int call = 0; call < INT8_CALLS; call++) {
            st_matmul_job job = {.kern = kern, .n_mats = 1, .xq = quantized ? xq : NULL,
                                 .ldxq = INT8_COLS / ST_ACT_BLOCK, .xf = quantized ? NULL : x,
                                 .ldxf = INT8_COLS, .nt = ST_TILE_MAX};
            job.mats[0].w = &w;
            job.mats[0].y = y;
            job.mats[0].ldy = INT8_ROWS;
            st_matmul_job_prepare(&job, st_threadpool_size(pool));
            st_threadpool_run(pool, st_matmul_task, &job);
        }
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    double ops = 2.0 * INT8_ROWS * INT8_COLS * ST_TILE_MAX * INT8_CALLS;
    *out = best > 0 ? ops / best : 0;
done:
    free(x);
    free(xq);
    free(y);
    free(w.packed);
    free((void *)w.data);
    return st;
}

st_status st_roofline_measure(st_threadpool *pool, const st_cpu_kernels *kern,
                              st_ggml_type wtype, st_roofline_ceiling *out, st_diag *diag)
{
    memset(out, 0, sizeof *out);
    st_status st = measure_read(pool, kern->isa, &out->read_bytes_per_s,
                                &out->read_median_bytes_per_s, diag);
    if (st == ST_OK)
        st = measure_dot(pool, kern, wtype, &out->dot_ops_per_s, diag);
    return st;
}

static void add_weight(const st_weight *w, double *bytes, double *ops)
{
    *bytes += (double)w->row_bytes * w->rows;
    *ops += 2.0 * (double)w->rows * w->cols;
}

void st_roofline_model_costs(const st_model *m, double *weight_bytes, double *ops)
{
    double b = 0, o = 0;
    for (uint32_t l = 0; l < m->hp.n_layers; l++) {
        const st_model_layer *L = &m->layers[l];
        const st_weight *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            add_weight(ws[i], &b, &o);
        b += 2.0 * sizeof(float) * m->hp.n_embd; /* the two norms */
    }
    add_weight(&m->output, &b, &o);
    b += (double)m->tok_embd.row_bytes; /* one embedding row */
    *weight_bytes = b;
    *ops = o;
}
