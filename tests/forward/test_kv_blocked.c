/* f16 keys in 16-slot blocks (kv_cache.h's k_blocked, kernels.h's
 * ST_KV_KBLOCK): every path's blocked kernels against the same keys in
 * rows (tile rows bit for bit, scores and decode to float rounding, at
 * ranges that start and end inside a block), the cache's operations on
 * blocked keys (store and load, compaction, per-head compaction, the copy
 * between caches, and when the layout may change), and whole forward
 * passes on blocks against rows for every position mode and block split.
 * The engine-level tests run again on blocks too (tests/CMakeLists.txt's
 * st_rerun_with_blocked_keys). */
#include <sys/resource.h>

#include "fwd_fixture.h"
#include "kv_cache.h"

#if defined(__SANITIZE_ADDRESS__)
#define ST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ST_UNDER_ASAN 1
#endif
#endif

#define NK 300 /* keys: not a whole number of blocks */

/* The kernel tables this CPU can run. */
static uint32_t tables(const st_cpu_kernels **out)
{
    uint32_t n = 0;
    const st_cpu_isa isas[3] = { ST_ISA_SCALAR, ST_ISA_AVX2, ST_ISA_AVX512 };
    for (int i = 0; i < 3; i++) {
        const st_cpu_kernels *k = st_cpu_kernels_get(isas[i]);
        if (k->isa == isas[i])
            out[n++] = k;
    }
    return n;
}

/* NK keys of hd dims as f16, in rows and in blocks, the same halves. */
typedef struct keys {
    uint32_t hd;
    uint16_t *rows, *blocks, *values;
} keys;

static keys make_keys(uint32_t hd, uint32_t seed)
{
    keys K = { hd, malloc((size_t)NK * hd * 2), NULL, malloc((size_t)NK * hd * 2) };
    size_t nb = (NK + ST_KV_KBLOCK - 1) / ST_KV_KBLOCK;
    K.blocks = calloc(nb * ST_KV_KBLOCK * hd, 2);
    cr_assert(K.rows && K.blocks && K.values);
    uint32_t x = seed * 2654435761u + 1;
    for (uint32_t j = 0; j < NK; j++) {
        for (uint32_t d = 0; d < hd; d++) {
            x = x * 1664525u + 1013904223u;
            float f = (float)(x >> 8) / 16777216.0f - 0.5f;
            K.rows[(size_t)j * hd + d] = st_cpu_to_half(f);
            K.values[(size_t)j * hd + d] = st_cpu_to_half(0.7f * f + 0.1f);
        }
        st_kv_blk_put(K.blocks, j, K.rows + (size_t)j * hd, hd);
    }
    return K;
}

static void free_keys(keys *K)
{
    free(K->rows);
    free(K->blocks);
    free(K->values);
}

/* Ranges [x0, x0 + n) that begin and end inside blocks, span one block,
 * fill whole blocks, or hold one key. */
static const uint32_t ranges[][2] = { { 0, NK }, { 5, 1 }, { 5, 11 }, { 7, 200 },
                                      { 16, 16 }, { 3, 29 }, { 31, 2 }, { 0, 256 },
                                      { 17, 283 } };

Test(kv_blocked, halves_go_to_their_lanes_and_back)
{
    keys K = make_keys(40, 1);
    uint16_t back[40];
    float f[40];
    for (uint32_t j = 0; j < NK; j++) {
        st_kv_blk_get(K.blocks, j, back, 40);
        cr_assert(memcmp(back, K.rows + (size_t)j * 40, sizeof back) == 0, "key %u", j);
        st_kv_blk_load(K.blocks, j, f, 40);
        for (uint32_t d = 0; d < 40; d++)
            cr_assert_eq(f[d], st_cpu_half(K.rows[(size_t)j * 40 + d]));
        /* Dim d of key j sits 16 halves after dim d - 1, in block j / 16. */
        const uint16_t *p = K.blocks + (size_t)(j / 16) * 16 * 40 + j % 16;
        cr_assert_eq(p[16 * 39], K.rows[(size_t)j * 40 + 39]);
    }
    free_keys(&K);
}

Test(kv_blocked, tile_rows_are_the_row_keys_bit_for_bit)
{
    const st_cpu_kernels *T[3];
    uint32_t nt = tables(T);
    const uint32_t dims[3] = { 64, 128, 40 }; /* 40: the SIMD paths' fallback */
    for (int di = 0; di < 3; di++) {
        keys K = make_keys(dims[di], 2 + di);
        uint32_t hd = K.hd;
        float *got = malloc((size_t)NK * hd * 4), *want = malloc((size_t)NK * hd * 4);
        for (uint32_t t = 0; t < nt; t++)
            for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
                uint32_t x0 = ranges[r][0], n = ranges[r][1];
                T[t]->kv_rows_blk(K.blocks, x0, n, hd, got);
                st_cpu_kv_rows_scalar(ST_KV_F16, K.rows + (size_t)x0 * hd, 2 * hd, n, hd, want);
                cr_assert(memcmp(got, want, (size_t)n * hd * 4) == 0, "isa %d hd %u keys %u+%u",
                          (int)T[t]->isa, hd, x0, n);
            }
        free(got);
        free(want);
        free_keys(&K);
    }
}

static double rel(double a, double b)
{
    return fabs(a - b) / (fabs(b) + 1e-3);
}

Test(kv_blocked, gathered_scores_follow_the_rows)
{
    const st_cpu_kernels *T[3];
    uint32_t nt = tables(T);
    keys K = make_keys(64, 5);
    float q[64], got[NK], want[NK];
    for (int d = 0; d < 64; d++)
        q[d] = 0.03f * (float)(d % 13) - 0.15f;
    /* Runs in one block, lone keys, a block visited twice, descending. */
    uint32_t idx[NK], n = 0;
    for (uint32_t j = 0; j < 40; j++)
        idx[n++] = j;
    for (uint32_t j = 41; j < NK; j += 37)
        idx[n++] = j;
    idx[n++] = 3;
    for (uint32_t j = NK - 1; j > NK - 20; j--)
        idx[n++] = j;
    for (uint32_t t = 0; t < nt; t++) {
        T[t]->scores_blk(q, K.blocks, idx, n, 64, 0.125f, got);
        st_cpu_scores_kv_scalar(ST_KV_F16, q, K.rows, 128, idx, n, 64, 0.125f, want);
        for (uint32_t i = 0; i < n; i++)
            cr_assert_lt(rel(got[i], want[i]), 1e-5, "isa %d key %u: %g against %g",
                         (int)T[t]->isa, idx[i], got[i], want[i]);
    }
    free_keys(&K);
}

/* The fused decode on blocks against the same kernel table's on rows,
 * chained over two calls as attn_tiled.c chains a chunk's sub-blocks. */
Test(kv_blocked, decode_follows_the_rows_kernel)
{
    const st_cpu_kernels *T[3];
    uint32_t nt = tables(T), checked = 0;
    const uint32_t dims[2] = { 64, 128 };
    const uint32_t groups[5] = { 1, 2, 3, 4, 8 };
    for (int di = 0; di < 2; di++) {
        keys K = make_keys(dims[di], 7 + di);
        uint32_t hd = K.hd;
        float q[8 * 128], s[8 * NK], m[2][8], l[2][8], acc[2][8 * 128];
        for (uint32_t i = 0; i < 8 * hd; i++)
            q[i] = 0.02f * (float)(i % 17) - 0.16f;
        for (uint32_t t = 0; t < nt; t++) {
            if (!T[t]->attn_decode_f16_blk || !T[t]->attn_decode_f16)
                continue;
            for (int gi = 0; gi < 5; gi++)
                for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
                    uint32_t G = groups[gi], x0 = ranges[r][0], n = ranges[r][1];
                    uint32_t half = n / 2;
                    for (int w = 0; w < 2; w++) {
                        for (uint32_t h = 0; h < G; h++) {
                            m[w][h] = -INFINITY;
                            l[w][h] = 0.0f;
                        }
                        memset(acc[w], 0, (size_t)G * hd * 4);
                    }
                    const uint8_t *vr = (const uint8_t *)K.values;
                    const uint8_t *kr = (const uint8_t *)K.rows;
                    size_t rb = 2 * (size_t)hd;
                    uint32_t parts[2][2] = { { x0, half }, { x0 + half, n - half } };
                    for (int p = 0; p < 2; p++) {
                        uint32_t a = parts[p][0], c = parts[p][1];
                        if (!c)
                            continue;
                        T[t]->attn_decode_f16(q, G, hd, kr + a * rb, rb, vr + a * rb, rb, c, s,
                                              m[0], l[0], acc[0]);
                        T[t]->attn_decode_f16_blk(q, G, hd, K.blocks, a, vr + a * rb, rb, c, s,
                                                  m[1], l[1], acc[1]);
                    }
                    for (uint32_t h = 0; h < G; h++) {
                        cr_assert_lt(rel(m[1][h], m[0][h]), 1e-5);
                        cr_assert_lt(rel(l[1][h], l[0][h]), 1e-5);
                        for (uint32_t d = 0; d < hd; d++)
                            cr_assert_lt(rel(acc[1][h * hd + d] / l[1][h],
                                             acc[0][h * hd + d] / l[0][h]), 1e-5,
                                         "isa %d hd %u G %u keys %u+%u head %u dim %u",
                                         (int)T[t]->isa, hd, G, x0, n, h, d);
                    }
                    checked++;
                }
        }
        free_keys(&K);
    }
    /* Every x86-64 CPU here has AVX2; the scalar table has no fused kernel. */
    cr_assert_gt(checked, 0);
}

/* Key (l, h, j) of the cache as one recognisable float per dim. */
static float key_value(uint32_t l, uint32_t h, uint32_t j, uint32_t d)
{
    return (float)(100 * j + 10 * h + l) + (float)d / 64.0f;
}

static void fill(st_kv_cache *kv, uint32_t n)
{
    float row[32];
    for (uint32_t j = 0; j < n; j++) {
        kv->pos[j] = kv->rot_pos[j] = (int32_t)j;
        kv->tokens[j] = (int32_t)j;
        for (uint32_t l = 0; l < kv->n_layers; l++)
            for (uint32_t h = 0; h < kv->n_kv_heads; h++) {
                for (uint32_t d = 0; d < 32; d++)
                    row[d] = key_value(l, h, j, d);
                st_kv_key_store(kv, l, kv->k[l], h, j, row);
                st_kv_store_row(kv->type, row, st_kv_at(kv, l, kv->v[l], h, j), 32);
            }
    }
    kv->n_slots = n;
}

/* Slot j of head (l, h) holds the key written for slot src. */
static void expect_key(const st_kv_cache *kv, uint32_t l, uint32_t h, uint32_t j, uint32_t src)
{
    float back[32];
    st_kv_key_load(kv, l, kv->k[l], h, j, back);
    for (uint32_t d = 0; d < 32; d++)
        cr_assert_eq(back[d], st_cpu_round_half(key_value(l, h, src, d)),
                     "layer %u head %u slot %u dim %u", l, h, j, d);
    st_kv_load_row(kv->type, st_kv_at(kv, l, kv->v[l], h, j), back, 32);
    cr_assert_eq(back[0], st_cpu_round_half(key_value(l, h, src, 0)));
}

Test(kv_blocked, the_layout_changes_only_on_an_empty_f16_cache)
{
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(2, 3, 32, 40, ST_KV_F32, &kv, &d), ST_OK);
    cr_assert_not(st_kv_cache_block_keys(kv, true), "f32 keys stay rows");
    cr_assert(st_kv_cache_block_keys(kv, false));
    st_kv_cache_free(kv);
    cr_assert_eq(st_kv_cache_create(2, 3, 32, 40, ST_KV_F16, &kv, &d), ST_OK);
    size_t rows_bytes = st_kv_cache_bytes(kv);
    cr_assert(st_kv_cache_block_keys(kv, true));
    cr_assert(kv->k_blocked);
    /* 40 slots take 3 whole blocks a head, values as many rows. */
    cr_assert_eq(st_kv_cache_bytes(kv), rows_bytes / 40 * 48);
    fill(kv, 20);
    cr_assert_not(st_kv_cache_block_keys(kv, false), "a cache holding slots keeps its layout");
    cr_assert(kv->k_blocked);
    expect_key(kv, 1, 2, 19, 19);
    st_kv_cache_reset(kv);
    cr_assert(st_kv_cache_block_keys(kv, false));
    cr_assert_eq(st_kv_cache_bytes(kv), rows_bytes);
    st_kv_cache_free(kv);
}

Test(kv_blocked, compaction_and_copies_move_blocked_keys)
{
    st_diag d;
    st_kv_cache *kv, *other;
    cr_assert_eq(st_kv_cache_create(2, 3, 32, 40, ST_KV_F16, &kv, &d), ST_OK);
    cr_assert(st_kv_cache_block_keys(kv, true));
    fill(kv, 37);
    /* Keep slots across block boundaries, from the middle of blocks. */
    uint8_t keep[37] = { 0 };
    const uint32_t kept[] = { 1, 2, 15, 16, 17, 30, 31, 32, 36 };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        keep[kept[i]] = 1;
    st_kv_cache_compact(kv, keep);
    cr_assert_eq(kv->n_slots, 9);
    for (uint32_t j = 0; j < 9; j++)
        for (uint32_t l = 0; l < 2; l++)
            for (uint32_t h = 0; h < 3; h++)
                expect_key(kv, l, h, j, kept[j]);

    /* Another sequence's copy of the same first 4 slots takes the rest;
     * a rows cache may not. */
    cr_assert_eq(st_kv_cache_create(2, 3, 32, 40, ST_KV_F16, &other, &d), ST_OK);
    fill(other, 4);
    other->n_slots = 4;
    cr_assert_not(st_kv_cache_append_from(other, kv, 9), "rows from blocks");
    st_kv_cache_reset(other);
    cr_assert(st_kv_cache_block_keys(other, true));
    fill(other, 4);
    cr_assert(st_kv_cache_append_from(other, kv, 9));
    for (uint32_t j = 4; j < 9; j++)
        expect_key(other, 1, 1, j, kept[j]);
    st_kv_cache_free(other);
    st_kv_cache_free(kv);
}

Test(kv_blocked, per_head_compaction_moves_one_heads_keys)
{
    st_diag d;
    st_kv_cache *kv;
    cr_assert_eq(st_kv_cache_create(2, 3, 32, 40, ST_KV_F16, &kv, &d), ST_OK);
    const uint32_t cap[2] = { 40, 21 }; /* layer 1: not a whole number of blocks */
    cr_assert_eq(st_kv_cache_enable_heads(kv, cap, &d), ST_OK);
    cr_assert(st_kv_cache_block_keys(kv, true));
    float row[32];
    for (uint32_t l = 0; l < 2; l++)
        for (uint32_t h = 0; h < 3; h++)
            for (uint32_t j = 0; j < 20; j++) {
                for (uint32_t x = 0; x < 32; x++)
                    row[x] = key_value(l, h, j, x);
                st_kv_key_store(kv, l, kv->k[l], h, j, row);
                st_kv_store_row(kv->type, row, st_kv_at(kv, l, kv->v[l], h, j), 32);
                kv->hpos[st_kv_head_base(kv, l, h) + j] = (int32_t)j;
            }
    st_kv_cache_heads_commit(kv, 20, 19);
    uint8_t keep[20] = { 0 };
    keep[0] = keep[17] = keep[18] = 1;
    st_kv_cache_compact_head(kv, 1, 2, keep);
    st_kv_cache_heads_settle(kv);
    expect_key(kv, 1, 2, 1, 17);
    expect_key(kv, 1, 2, 2, 18);
    expect_key(kv, 1, 1, 1, 1); /* the other heads untouched */
    expect_key(kv, 0, 2, 17, 17);
    st_kv_cache_free(kv);
}

/* The new buffers come before the old go: with no room for them the cache
 * keeps its rows, usable. (An address-space limit cannot run under
 * AddressSanitizer, whose shadow memory takes terabytes of it.) */
Test(kv_blocked, out_of_memory_leaves_the_cache_as_it_was)
{
#ifdef ST_UNDER_ASAN
    cr_skip_test("RLIMIT_AS under AddressSanitizer");
#else
    st_diag d;
    st_kv_cache *kv;
    const uint32_t cap = 1u << 20; /* 128 MiB of keys and as much of values */
    cr_assert_eq(st_kv_cache_create(1, 1, 64, cap, ST_KV_F16, &kv, &d), ST_OK);
    long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert(f && fscanf(f, "%ld", &pages) == 1);
    fclose(f);
    struct rlimit old, lim;
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    /* Room for one new buffer, not two. */
    lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (160u << 20);
    lim.rlim_max = old.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
    bool blocked = st_kv_cache_block_keys(kv, true);
    cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
    cr_assert_not(blocked);
    cr_assert_not(kv->k_blocked);
    float row[64], back[64];
    for (int i = 0; i < 64; i++)
        row[i] = (float)i;
    st_kv_key_store(kv, 0, kv->k[0], 0, cap - 1, row);
    st_kv_key_load(kv, 0, kv->k[0], 0, cap - 1, back);
    cr_assert(memcmp(row, back, sizeof row) == 0);
    cr_assert(st_kv_cache_block_keys(kv, true), "with room it may");
    st_kv_cache_free(kv);
#endif
}

enum { P_DENSE, P_GLOBAL_LOCAL, P_SLOT, P_COUNT };

/* Dense (tiles, the decode split); LM-Infinite's index list and fixed
 * distance (the gather path, float keys); sinks and a window at slot
 * positions. */
static st_status plan_cb(void *user, const st_attn_query *q, const st_attn_plan_builder *b,
                         st_error *err)
{
    (void)err;
    int kind = *(const int *)user;
    uint32_t ns = q->kv->n_slots;
    if (kind == P_DENSE) {
        st_attn_range r = { ST_ALL_HEADS, 0, ns, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
        return b->add_range(b->host, &r);
    }
    if (kind == P_GLOBAL_LOCAL) {
        uint32_t g = ns < 4 ? ns : 4, idx[4] = { 0, 1, 2, 3 };
        st_attn_range loc = { ST_ALL_HEADS, 0, ns, 0, 21, ST_POS_TRUE, 0 };
        st_attn_range glob = { ST_ALL_HEADS, 0, 0, 22, ST_DIST_MAX, ST_POS_TRUE, 0 };
        st_status s = b->add_range(b->host, &loc);
        return s ? s : b->add_indices(b->host, idx, g, &glob);
    }
    uint32_t lo = ns > 20 ? ns - 20 : 0;
    lo = lo < 2 ? (ns < 2 ? ns : 2) : lo;
    st_attn_range sinks = { ST_ALL_HEADS, 0, ns < 2 ? ns : 2, 0, ST_DIST_MAX, ST_POS_SLOT, 0 };
    st_attn_range win = { ST_ALL_HEADS, lo, ns, 0, ST_DIST_MAX, ST_POS_SLOT, 0 };
    st_status s = b->add_range(b->host, &sinks);
    return s || lo >= ns ? s : b->add_range(b->host, &win);
}

#define N 60

Test(kv_blocked, forward_passes_on_blocks_follow_rows)
{
    fwd_fixture f;
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = ST_GGML_F32;
    spec.embd_type = ST_GGML_F32;
    spec.n_vocab = 300;
    spec.n_embd = 128;
    spec.n_heads = 4;
    spec.n_kv_heads = 2; /* head size 32 */
    fx_open_spec(&f, &spec);
    int32_t tok[N], pos[N];
    fx_tokens(tok, pos, N, f.V, 11);
    for (int i = 0; i < N; i++)
        pos[i] = 2 * i + 1;
    size_t n = (size_t)N * f.V;
    float *rows = malloc(n * sizeof(float)), *blocks = malloc(n * sizeof(float));
    const size_t splits[3] = { 1, 7, N }; /* decode steps, the gather path's blocks, tiles */
    for (int kind = 0; kind < P_COUNT; kind++)
        for (int s = 0; s < 3; s++)
            for (const char *isa = "scalar"; isa; isa = isa[0] == 's' ? "avx2" : NULL) {
                fx_run r = { .isa = isa, .kv_type = ST_KV_F16, .kv_keys = "rows", .threads = 2,
                             .block = splits[s], .plan = plan_cb, .plan_user = &kind };
                fx_forward(&f, &r, tok, pos, N, rows);
                r.kv_keys = "blocks";
                fx_forward(&f, &r, tok, pos, N, blocks);
                double e = fx_rel_diff(blocks, rows, n);
                cr_assert_lt(e, 1e-5, "plan %d block %zu %s: %g", kind, splits[s], isa, e);
            }
    free(rows);
    free(blocks);
    fx_close(&f);
}
