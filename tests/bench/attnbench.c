/*
 * tests/bench/attnbench.c - st-attnbench: the engine's two fused decode
 * kernels, on f16 keys in rows and on keys in 16-slot blocks
 * (STRETCH_KV_KEYS=blocks, docs/forward.md), on this CPU's kernel table
 * (AVX-512 or AVX2), so that the table's blocked_keys follows a
 * measurement (issue #11). It calls the engine's private kernel table, so
 * it is built with the tests, not with the CLI in tools/.
 *
 *   st-attnbench [--layers L] [--slots N] [--rounds R] [--hot | --rows]
 *
 * On rows each key's products with the group's queries are summed across
 * lanes; on blocks one converted vector holds a block's keys' dim d, a
 * broadcast query element multiplies it, and the scores come out in the
 * lanes. This program runs both on a cache shaped like SmolLM2's (3 KV
 * heads of 64 dims, 3 query heads each, chunks of 256 keys, the engine's
 * split along the keys on 2 threads with a meeting per layer), beside a
 * plain read of the same bytes, alternating round by round:
 *
 *   rows     attn_decode_f16 on key rows;
 *   blocked  attn_decode_f16_blk on the same keys in blocks (values in
 *            rows for both);
 *   read     the keys and values read with 256-bit loads, nothing else.
 *
 * --hot instead runs each kernel 20,000 times over one chunk of 256 keys
 * (64 KB, in L2) on one thread: the arithmetic alone, in ns per key.
 * --rows times what prefill's tiles pay for the layout: 64 keys turned
 * into float rows (attn_tile.inc's kv_rows against kv_rows_blk), in L1.
 * Both kernels' outputs are compared first; the program fails when they
 * differ by more than rounding. It needs AVX2 at least; elsewhere it says
 * so and exits with status 2.
 */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/kernels.h"

#define HD 64         /* head dim */
#define G 3           /* query heads per KV head */
#define KV_HEADS 3
#define CHUNK 256     /* keys a kernel call scores (attn_tiled.c's SPLIT_SUB) */
#define ROW 128       /* bytes of one f16 row of HD */
#define THREADS 2

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The bytes at p read with 256-bit loads, nothing else. */
__attribute__((target("avx2"))) static uint64_t read_bytes(const uint8_t *p, size_t bytes)
{
    __m256i x = _mm256_setzero_si256();
    for (size_t o = 0; o + 32 <= bytes; o += 32)
        x = _mm256_xor_si256(x, _mm256_loadu_si256((const __m256i *)(p + o)));
    return (uint64_t)_mm256_extract_epi64(x, 0) + (uint64_t)_mm256_extract_epi64(x, 3);
}

/* The table's fused kernel on CHUNK keys: rows at k, or the head's blocks
 * at kb (the chunk starts a block), values in rows at v. */
static void decode_chunk(const st_cpu_kernels *kern, int blocked, const float *q,
                         const uint8_t *k, const uint8_t *kb, const uint8_t *v, float *s,
                         float *m, float *l, float *acc)
{
    if (blocked)
        kern->attn_decode_f16_blk(q, G, HD, kb, 0, v, ROW, CHUNK, s, m, l, acc);
    else
        kern->attn_decode_f16(q, G, HD, k, ROW, v, ROW, CHUNK, s, m, l, acc);
}

static volatile uint64_t sink_out;

enum { MODE_ROWS, MODE_BLOCKED, MODE_READ, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = { "rows", "blocked", "read" };

typedef struct bench {
    uint32_t layers, slots;
    uint8_t *k, *kb, *v; /* [layers][KV_HEADS][slots] rows / blocks of ROW bytes */
    float q[G * HD];
    const st_cpu_kernels *kern;
    int mode;
    atomic_uint arrived, round;
    _Atomic uint64_t sink;
} bench;

static void meet(bench *B)
{
    unsigned r = atomic_load(&B->round);
    if (atomic_fetch_add(&B->arrived, 1) + 1 == THREADS) {
        atomic_store(&B->arrived, 0);
        atomic_fetch_add(&B->round, 1);
    } else {
        while (atomic_load(&B->round) == r)
            ;
    }
}

typedef struct worker_arg {
    bench *B;
    uint32_t t;
} worker_arg;

/* Thread t takes keys [t * slots / THREADS, ...) of every head of every
 * layer, CHUNK at a time, and meets the other after each layer. */
static void *worker(void *p)
{
    const worker_arg *w = p;
    bench *B = w->B;
    uint32_t part = B->slots / THREADS, lo = w->t * part;
    float s[G * CHUNK], m[G], l[G], acc[G * HD];
    uint64_t sink = 0;
    for (uint32_t ly = 0; ly < B->layers; ly++) {
        for (uint32_t h = 0; h < KV_HEADS; h++) {
            size_t base = ((size_t)ly * KV_HEADS + h) * B->slots * ROW + (size_t)lo * ROW;
            for (int g = 0; g < G; g++) {
                m[g] = -INFINITY;
                l[g] = 0.0f;
            }
            memset(acc, 0, sizeof acc);
            if (B->mode == MODE_READ) {
                sink += read_bytes(B->k + base, (size_t)part * ROW);
                sink += read_bytes(B->v + base, (size_t)part * ROW);
                continue;
            }
            for (uint32_t x = 0; x < part; x += CHUNK) {
                size_t o = base + (size_t)x * ROW;
                decode_chunk(B->kern, B->mode == MODE_BLOCKED, B->q, B->k + o, B->kb + o,
                             B->v + o, s, m, l, acc);
            }
            sink += (uint64_t)(int64_t)(acc[0] * 1e3f);
        }
        meet(B);
    }
    atomic_fetch_add(&B->sink, sink);
    return NULL;
}

static double run_mode(bench *B, int mode)
{
    pthread_t th[THREADS];
    worker_arg wa[THREADS];
    B->mode = mode;
    double t0 = now();
    for (uint32_t t = 0; t < THREADS; t++) {
        wa[t] = (worker_arg){ B, t };
        if (pthread_create(&th[t], NULL, worker, &wa[t]) != 0) {
            fprintf(stderr, "st-attnbench: cannot start a thread\n");
            exit(1);
        }
    }
    for (uint32_t t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    return now() - t0;
}

static uint32_t rng_state = 12345;
static float rnd(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)(rng_state >> 8) / (float)(1u << 23) - 1.0f;
}

/* The same keys in the cache's 16-slot blocks, stored as the cache
 * stores them (st_kv_blk_put). */
static void make_blocks(const bench *B)
{
    for (size_t head = 0; head < (size_t)B->layers * KV_HEADS; head++) {
        size_t base = head * B->slots * ROW;
        for (uint32_t j = 0; j < B->slots; j++)
            st_kv_blk_put(B->kb + base, j, (const uint16_t *)(B->k + base + (size_t)j * ROW), HD);
    }
}

/* Both kernels on the first chunk: their outputs must agree to rounding. */
static int check_agree(const bench *B)
{
    float s[G * CHUNK], m[2][G], l[2][G], acc[2][G * HD];
    for (int w = 0; w < 2; w++) {
        for (int g = 0; g < G; g++) {
            m[w][g] = -INFINITY;
            l[w][g] = 0.0f;
        }
        memset(acc[w], 0, sizeof acc[w]);
    }
    for (int w = 0; w < 2; w++)
        decode_chunk(B->kern, w, B->q, B->k, B->kb, B->v, s, m[w], l[w], acc[w]);
    double worst = 0.0;
    for (int i = 0; i < G * HD; i++) {
        double d = fabs((double)acc[0][i] / l[0][i / HD] - (double)acc[1][i] / l[1][i / HD]);
        worst = d > worst ? d : worst;
    }
    printf("outputs agree to %.3g (largest difference of an output element)\n", worst);
    if (!(worst < 1e-5)) {
        fprintf(stderr, "st-attnbench: the blocked kernel's output differs from the engine's\n");
        return 1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void hot(bench *B)
{
    float s[G * CHUNK], m[G], l[G], acc[G * HD];
    const int iters = 20000;
    for (int round = 0; round < 5; round++)
        for (int mode = MODE_ROWS; mode <= MODE_BLOCKED; mode++) {
            for (int g = 0; g < G; g++) {
                m[g] = -INFINITY;
                l[g] = 0.0f;
            }
            memset(acc, 0, sizeof acc);
            double t0 = now();
            for (int i = 0; i < iters; i++) {
                decode_chunk(B->kern, mode == MODE_BLOCKED, B->q, B->k, B->kb, B->v, s, m, l,
                             acc);
            }
            double ns = (now() - t0) / iters / CHUNK * 1e9;
            printf("%-8s %.2f ns a key (3 heads)\n", mode_names[mode], ns);
        }
}

/* Both ways to a tile's float rows, 64 keys at a time over the first
 * 256 keys (in L1 / L2), checked equal first. */
static int rows_cost(const bench *B)
{
    enum { TILE = 64 };
    float a[TILE * HD], b[TILE * HD];
    B->kern->kv_rows(ST_KV_F16, B->k, ROW, TILE, HD, a);
    B->kern->kv_rows_blk(B->kb, 0, TILE, HD, b);
    if (memcmp(a, b, sizeof a)) {
        fprintf(stderr, "st-attnbench: the blocked keys' rows differ from the engine's\n");
        return 1;
    }
    const int iters = 200000;
    for (int round = 0; round < 5; round++)
        for (int mode = MODE_ROWS; mode <= MODE_BLOCKED; mode++) {
            double t0 = now();
            for (int i = 0; i < iters; i++) {
                size_t o = (size_t)(i % (CHUNK / TILE)) * TILE * ROW;
                if (mode == MODE_ROWS)
                    B->kern->kv_rows(ST_KV_F16, B->k + o, ROW, TILE, HD, a);
                else
                    B->kern->kv_rows_blk(B->kb + o, 0, TILE, HD, a);
            }
            sink_out += (uint64_t)(int64_t)a[7];
            double ns = (now() - t0) / iters / TILE * 1e9;
            printf("%-8s %.2f ns a key to a float row\n", mode_names[mode], ns);
        }
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: st-attnbench [--layers L] [--slots N] [--rounds R] [--hot | --rows]\n"
                    "  --slots: a multiple of %d, at least %d\n",
            THREADS * CHUNK, THREADS * CHUNK);
    return 2;
}

int main(int argc, char **argv)
{
    uint32_t layers = 30, slots = 16384, rounds = 11;
    int hot_only = 0, rows_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--hot")) {
            hot_only = 1;
            continue;
        }
        if (!strcmp(a, "--rows")) {
            rows_only = 1;
            continue;
        }
        if (i + 1 >= argc)
            return usage();
        long val = strtol(argv[++i], NULL, 10);
        if (val <= 0 || val > 1000000)
            return usage();
        if (!strcmp(a, "--layers"))
            layers = (uint32_t)val;
        else if (!strcmp(a, "--slots"))
            slots = (uint32_t)val;
        else if (!strcmp(a, "--rounds"))
            rounds = (uint32_t)val > 99 ? 99 : (uint32_t)val;
        else
            return usage();
    }
    if (slots % (THREADS * CHUNK))
        return usage();
    st_cpu_isa isa = st_cpu_isa_detect();
    if (isa != ST_ISA_AVX512 && isa != ST_ISA_AVX2) {
        fprintf(stderr, "st-attnbench: this CPU has neither AVX2 nor AVX-512 (%s)\n",
                st_cpu_isa_name(isa));
        return 2;
    }
    bench *B = calloc(1, sizeof *B);
    size_t bytes = (size_t)layers * KV_HEADS * slots * ROW;
    if (!B || !(B->k = aligned_alloc(64, bytes)) || !(B->kb = aligned_alloc(64, bytes)) ||
        !(B->v = aligned_alloc(64, bytes))) {
        fprintf(stderr, "st-attnbench: out of memory for %zu bytes\n", 3 * bytes);
        return 1;
    }
    B->layers = layers;
    B->slots = slots;
    B->kern = st_cpu_kernels_get(isa);
    uint16_t *k16 = (uint16_t *)B->k, *v16 = (uint16_t *)B->v;
    for (size_t i = 0; i < bytes / 2; i++) {
        k16[i] = st_cpu_to_half(rnd());
        v16[i] = st_cpu_to_half(0.5f * rnd());
    }
    for (int i = 0; i < G * HD; i++)
        B->q[i] = 0.25f * rnd();
    make_blocks(B);
    if (check_agree(B))
        return 1;
    if (hot_only) {
        hot(B);
        return 0;
    }
    if (rows_only)
        return rows_cost(B);
    printf("%u layers x %d KV heads x %u slots: %.1f MB of keys and values a token, %d threads\n",
           layers, KV_HEADS, slots, 2.0 * (double)bytes / 1e6, THREADS);
    double t[MODE_COUNT][99];
    for (uint32_t r = 0; r < rounds; r++)
        for (int mode = 0; mode < MODE_COUNT; mode++)
            t[mode][r] = run_mode(B, mode);
    double med[MODE_COUNT];
    for (int mode = 0; mode < MODE_COUNT; mode++) {
        qsort(t[mode], rounds, sizeof(double), cmp_double);
        med[mode] = t[mode][rounds / 2];
    }
    for (int mode = 0; mode < MODE_COUNT; mode++)
        printf("%-8s median %8.3f ms a token  %5.1f GB/s  %.2f of the read  (min %.3f ms)\n",
               mode_names[mode], med[mode] * 1e3, 2.0 * (double)bytes / med[mode] / 1e9,
               med[MODE_READ] / med[mode], t[mode][0] * 1e3);
    sink_out = atomic_load(&B->sink); /* keeps the reads */
    return 0;
}
