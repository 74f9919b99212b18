/*
 * tests/bench/attnbench.c - st-attnbench: what storing the f16 keys
 * transposed in blocks of 16 slots would gain the AVX-512 decode attention,
 * measured before the cache's layout is changed for it (issue #11). It
 * calls the engine's kernel table, so it is built with the tests (it
 * includes core's private headers), not with the CLI in tools/.
 *
 *   st-attnbench [--layers L] [--slots N] [--rounds R] [--hot | --rows]
 *
 * The engine's fused decode kernel (attn_decode_f16 of the AVX-512 table)
 * reads key rows: each key's 64 dims are 4 vectors, multiplied with the
 * group's 3 queries and then summed across their 16 lanes, 10.5 of the
 * kernel's ~58 vector operations a key. With a block's 16 keys stored
 * dimension by dimension (dim d of slots 16b..16b+15 in 32 contiguous
 * bytes), one converted vector holds 16 keys' dim d, a broadcast query
 * element multiplies it, and the 16 scores come out in lanes: no sums
 * across lanes. This program runs both on a cache shaped like SmolLM2's
 * (3 KV heads of 64 dims, 3 query heads each, chunks of 256 keys, the
 * engine's split along the keys on 2 threads with a meeting per layer),
 * beside a plain read of the same bytes, alternating round by round:
 *
 *   rows     the engine's kernel on the engine's layout;
 *   blocked  the candidate kernel on keys in 16-slot blocks (values in
 *            rows, as now), prefetching the same stream at the same two
 *            distances as the engine's (attn_decode_x86.inc);
 *   read     the keys and values read with 512-bit loads, nothing else.
 *
 * --hot instead runs each kernel 20,000 times over one chunk of 256 keys
 * (64 KB, in L2) on one thread: the arithmetic alone, in ns per key.
 * --rows times what prefill's tiles would pay instead: 64 keys turned into
 * float rows (a tile's keys, attn_tile.inc's kv_rows), from rows by the
 * engine's kv_rows and from blocks by a 16 x 16 transpose, in L1.
 * Both kernels' outputs are compared first; the program fails when they
 * differ by more than rounding. It needs a CPU with AVX-512 (F, BW, VL)
 * and F16C; elsewhere it says so and exits with status 2.
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

#include "cpu/exp_poly.h"
#include "cpu/kernels.h"

#define HD 64         /* head dim */
#define G 3           /* query heads per KV head */
#define KV_HEADS 3
#define CHUNK 256     /* keys a kernel call scores (attn_tiled.c's SPLIT_SUB) */
#define ROW 128       /* bytes of one f16 row of HD */
#define BLOCK 16      /* slots a key block holds */
#define NEAR_BYTES 2048   /* the engine's ST_DEC_PF_KEYS rows of 128 bytes */
#define FAR_BYTES 16384   /* the engine's ST_DEC_PF_FAR_BYTES */
#define THREADS 2

#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,f16c,fma")))

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

TGT static inline __m512 ld16_f16(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* Byte `off` of the stream a[0, abytes) then b, asked for in L1 at the
 * near distance and in L2 at the far one (the engine's two distances). */
TGT static inline void stream_prefetch(const uint8_t *a, size_t abytes, const uint8_t *b,
                                       size_t off)
{
    size_t near = off + NEAR_BYTES, far = off + FAR_BYTES;
    const uint8_t *pn = near < abytes ? a + near : b + (near - abytes);
    const uint8_t *pf = far < abytes ? a + far : b + (far - abytes);
    /* As asm: GCC 12 drops _mm_prefetch of a pointer chosen this way. */
    __asm__ volatile("prefetcht0 (%0)" : : "r"(pn));
    __asm__ volatile("prefetcht2 (%0)" : : "r"(pf));
}

/* exp16_neg of attn_decode_avx512.inc: e^x for x <= 0. */
TGT static inline __m512 exp16_neg(__m512 x)
{
    x = _mm512_max_ps(_mm512_set1_ps(-88.0f), x);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(ST_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(ST_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(ST_EXP_LN2_LO), r);
    __m512 y = _mm512_set1_ps(ST_EXP_P5);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(ST_EXP_P4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(ST_EXP_P3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(ST_EXP_P2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(ST_EXP_P1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(ST_EXP_P0));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

/* The candidate: n keys (a multiple of BLOCK) in 16-slot blocks at kb,
 * their values in rows at v, into the online softmax state (m, l, acc) of
 * the G heads, as attn_decode_f16 does on rows. */
TGT static void blocked_decode(const float *q, const uint8_t *kb, const uint8_t *v, uint32_t n,
                               float *s, float *m, float *l, float *acc)
{
    const size_t bytes = (size_t)n * ROW;
    for (uint32_t b = 0; b < n / BLOCK; b++) {
        const uint8_t *blk = kb + (size_t)b * BLOCK * ROW;
        /* Two sums a head (even and odd dims): six independent chains
         * keep the multiply-adds from waiting on each other. */
        __m512 a[G][2];
        for (int h = 0; h < G; h++)
            a[h][0] = a[h][1] = _mm512_setzero_ps();
#pragma GCC unroll 64
        for (int d = 0; d < HD; d++) {
            if ((d & 1) == 0)
                stream_prefetch(kb, bytes, v, (size_t)b * BLOCK * ROW + (size_t)d * 32);
            __m512 kd = ld16_f16(blk + d * 32);
#pragma GCC unroll 3
            for (int h = 0; h < G; h++)
                a[h][d & 1] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * HD + d]), kd, a[h][d & 1]);
        }
        for (int h = 0; h < G; h++)
            _mm512_storeu_ps(s + (size_t)h * n + b * BLOCK, _mm512_add_ps(a[h][0], a[h][1]));
    }
    for (int h = 0; h < G; h++) {
        float *sh = s + (size_t)h * n;
        __m512 mv = _mm512_set1_ps(m[h]);
        for (uint32_t i = 0; i < n; i += 16)
            mv = _mm512_max_ps(mv, _mm512_loadu_ps(sh + i));
        float mx = _mm512_reduce_max_ps(mv);
        __m512 mxv = _mm512_set1_ps(mx), sum = _mm512_setzero_ps();
        for (uint32_t i = 0; i < n; i += 16) {
            __m512 e = exp16_neg(_mm512_sub_ps(_mm512_loadu_ps(sh + i), mxv));
            _mm512_storeu_ps(sh + i, e);
            sum = _mm512_add_ps(sum, e);
        }
        float c = m[h] == -INFINITY ? 0.0f : expf(m[h] - mx);
        for (int d = 0; d < HD; d++)
            acc[h * HD + d] *= c;
        l[h] = l[h] * c + _mm512_reduce_add_ps(sum);
        m[h] = mx;
    }
    __m512 o[G][4];
#pragma GCC unroll 3
    for (int h = 0; h < G; h++)
#pragma GCC unroll 4
        for (int z = 0; z < 4; z++)
            o[h][z] = _mm512_loadu_ps(acc + h * HD + 16 * z);
    for (uint32_t i = 0; i < n; i++) {
        stream_prefetch(v, bytes, kb + bytes, (size_t)i * ROW);
        stream_prefetch(v, bytes, kb + bytes, (size_t)i * ROW + 64);
        const uint8_t *vr = v + (size_t)i * ROW;
        __m512 x[4];
#pragma GCC unroll 4
        for (int z = 0; z < 4; z++)
            x[z] = ld16_f16(vr + 32 * z);
#pragma GCC unroll 3
        for (int h = 0; h < G; h++) {
            __m512 ph = _mm512_set1_ps(s[(size_t)h * n + i]);
#pragma GCC unroll 4
            for (int z = 0; z < 4; z++)
                o[h][z] = _mm512_fmadd_ps(ph, x[z], o[h][z]);
        }
    }
#pragma GCC unroll 3
    for (int h = 0; h < G; h++)
#pragma GCC unroll 4
        for (int z = 0; z < 4; z++)
            _mm512_storeu_ps(acc + h * HD + 16 * z, o[h][z]);
}

TGT static uint64_t read_bytes(const uint8_t *p, size_t bytes)
{
    __m512i x = _mm512_setzero_si512();
    for (size_t o = 0; o + 64 <= bytes; o += 64)
        x = _mm512_xor_si512(x, _mm512_loadu_si512((const void *)(p + o)));
    return (uint64_t)_mm512_reduce_add_epi64(x);
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
                if (B->mode == MODE_ROWS)
                    B->kern->attn_decode_f16(B->q, G, HD, B->k + o, ROW, B->v + o, ROW, CHUNK, s,
                                             m, l, acc);
                else
                    blocked_decode(B->q, B->kb + o, B->v + o, CHUNK, s, m, l, acc);
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

/* The same keys in 16-slot blocks: dim d of slot j at block j / 16,
 * offset d * 16 + j % 16 (in halves). */
static void make_blocks(const bench *B)
{
    const uint16_t *src = (const uint16_t *)B->k;
    uint16_t *dst = (uint16_t *)B->kb;
    for (size_t head = 0; head < (size_t)B->layers * KV_HEADS; head++) {
        size_t base = head * B->slots * HD;
        for (uint32_t j = 0; j < B->slots; j++)
            for (uint32_t d = 0; d < HD; d++)
                dst[base + (size_t)(j / BLOCK) * BLOCK * HD + d * BLOCK + j % BLOCK] =
                    src[base + (size_t)j * HD + d];
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
    B->kern->attn_decode_f16(B->q, G, HD, B->k, ROW, B->v, ROW, CHUNK, s, m[0], l[0], acc[0]);
    blocked_decode(B->q, B->kb, B->v, CHUNK, s, m[1], l[1], acc[1]);
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
                if (mode == MODE_ROWS)
                    B->kern->attn_decode_f16(B->q, G, HD, B->k, ROW, B->v, ROW, CHUNK, s, m, l,
                                             acc);
                else
                    blocked_decode(B->q, B->kb, B->v, CHUNK, s, m, l, acc);
            }
            double ns = (now() - t0) / iters / CHUNK * 1e9;
            printf("%-8s %.2f ns a key (3 heads)\n", mode_names[mode], ns);
        }
}

/* Blocked keys [n / 16][HD][16] (f16) to float rows [n][HD]: per block
 * and 16 dims, 16 converted vectors (a dim's 16 slots each) transposed
 * into 16 rows of those dims: unpacks of 32 and 64 bits, then two rounds
 * of 128-bit lane shuffles. */
TGT static void blocked_to_rows(const uint8_t *kb, uint32_t n, float *dst)
{
    for (uint32_t b = 0; b < n / BLOCK; b++) {
        const uint8_t *blk = kb + (size_t)b * BLOCK * ROW;
        for (int d0 = 0; d0 < HD; d0 += 16) {
            __m512 r[16], t[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                r[i] = ld16_f16(blk + (d0 + i) * 32);
#pragma GCC unroll 8
            for (int i = 0; i < 16; i += 2) {
                t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
            }
#pragma GCC unroll 4
            for (int i = 0; i < 16; i += 4) {
                r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]),
                                                           _mm512_castps_pd(t[i + 2])));
                r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]),
                                                               _mm512_castps_pd(t[i + 2])));
                r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]),
                                                               _mm512_castps_pd(t[i + 3])));
                r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]),
                                                               _mm512_castps_pd(t[i + 3])));
            }
            /* r[4g + j] now holds, in 128-bit lane L, slot 4L + j's dims
             * d0 + 4g .. d0 + 4g + 3. */
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m512 a0 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44);
                __m512 a1 = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE);
                __m512 a2 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
                __m512 a3 = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
                t[4 * 0 + j] = _mm512_shuffle_f32x4(a0, a2, 0x88);
                t[4 * 1 + j] = _mm512_shuffle_f32x4(a0, a2, 0xDD);
                t[4 * 2 + j] = _mm512_shuffle_f32x4(a1, a3, 0x88);
                t[4 * 3 + j] = _mm512_shuffle_f32x4(a1, a3, 0xDD);
            }
            /* t[i] is slot i's dims d0 .. d0 + 15. */
#pragma GCC unroll 16
            for (int i = 0; i < 16; i++)
                _mm512_storeu_ps(dst + (size_t)(b * BLOCK + i) * HD + d0, t[i]);
        }
    }
}

/* Both ways to a tile's float rows, 64 keys at a time over the first
 * 256 keys (in L1 / L2), checked equal first. */
static int rows_cost(const bench *B)
{
    enum { TILE = 64 };
    float a[TILE * HD], b[TILE * HD];
    B->kern->kv_rows(ST_KV_F16, B->k, ROW, TILE, HD, a);
    blocked_to_rows(B->kb, TILE, b);
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
                    blocked_to_rows(B->kb + o, TILE, a);
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
    if (st_cpu_isa_detect() != ST_ISA_AVX512) {
        fprintf(stderr, "st-attnbench: this CPU has no AVX-512 (%s); the kernels it compares "
                        "are the AVX-512 ones\n",
                st_cpu_isa_name(st_cpu_isa_detect()));
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
    B->kern = st_cpu_kernels_get(ST_ISA_AVX512);
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
