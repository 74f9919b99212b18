/* The tiled attention path (core/attn_tiled.c and every ISA's attn_keys)
 * against a naive reference with double accumulation: dense causal, a
 * sliding window, global (fixed distance) + local ranges, slot positions,
 * queries that see nothing, and odd shapes (blocks that are not a
 * multiple of the query tile, 1..5 query heads per kv head, head sizes
 * that are not a multiple of 16). Random q, k and values; true positions
 * have gaps so distances differ from slot differences. Each case runs on
 * every KV cache type (f32, f16, q8_0 where the head size allows): the
 * cache's keys and values are stored in the type, head-major as in
 * kv_cache.h, and the reference reads them back as floats. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attn_tiled.h"
#include "cpu/ops.h"
#include "kv_cache.h"

#define TOL 1e-4

typedef struct shape {
    uint32_t n_heads, n_kv_heads, hd, n_slots, n_q;
} shape;

typedef struct bufs {
    float *q, *qr, *k, *kr, *ks, *v, *out, *inv_freq, *slot_cs, *slot_sn;
    uint8_t *kt, *vt; /* kr and v in the cache's type, [kv_head][slot] rows */
    /* ST_POS_GROUPED: k rotated at floor(kpos / group) times rot_scale, as
     * floats and in the cache's type (NULL when no range is grouped). */
    float *kg;
    uint8_t *kgt;
    st_kv_type type;
    size_t rb;        /* bytes per row */
    int32_t *qpos, *kpos;
    uint32_t *qslot;
} bufs;

static float rnd(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static float *rnd_array(size_t n, uint32_t *s)
{
    float *a = malloc(n * sizeof *a);
    cr_assert(a);
    for (size_t i = 0; i < n; i++)
        a[i] = rnd(s) * 2.0f; /* scores spread over a few units */
    return a;
}

/* a (slot-major floats) into t (head-major rows of b's type); a becomes
 * what the type holds. */
static void to_type(const shape *S, const bufs *b, float *a, uint8_t *t)
{
    for (uint32_t j = 0; j < S->n_slots; j++)
        for (uint32_t g = 0; g < S->n_kv_heads; g++) {
            float *f = a + ((size_t)j * S->n_kv_heads + g) * S->hd;
            uint8_t *row = t + ((size_t)g * S->n_slots + j) * b->rb;
            st_kv_store_row(b->type, f, row, S->hd);
            st_kv_load_row(b->type, row, f, S->hd);
        }
}

static bufs make(const shape *S, uint32_t seed, st_kv_type type)
{
    bufs b;
    size_t QD = (size_t)S->n_heads * S->hd, row = (size_t)S->n_kv_heads * S->hd;
    uint32_t nf = S->hd / 2;
    b.q = rnd_array(S->n_q * QD, &seed);
    b.qr = rnd_array(S->n_q * QD, &seed);
    b.k = rnd_array(S->n_slots * row, &seed);
    b.kr = rnd_array(S->n_slots * row, &seed);
    b.ks = rnd_array(S->n_slots * row, &seed);
    b.v = rnd_array(S->n_slots * row, &seed);
    b.out = calloc(S->n_q * QD, sizeof(float));
    b.inv_freq = malloc(nf * sizeof(float));
    b.slot_cs = malloc((size_t)S->n_slots * nf * sizeof(float));
    b.slot_sn = malloc((size_t)S->n_slots * nf * sizeof(float));
    b.qpos = malloc(S->n_q * sizeof(int32_t));
    b.kpos = malloc(S->n_slots * sizeof(int32_t));
    b.qslot = malloc(S->n_q * sizeof(uint32_t));
    for (uint32_t i = 0; i < nf; i++)
        b.inv_freq[i] = powf(10000.0f, -2.0f * (float)i / (float)S->hd);
    for (uint32_t j = 0; j < S->n_slots; j++) {
        b.kpos[j] = (int32_t)(2 * j + j / 7); /* gaps */
        st_op_rope_table(b.slot_cs + (size_t)j * nf, b.slot_sn + (size_t)j * nf, (double)j,
                         b.inv_freq, nf, 1.0f);
    }
    for (uint32_t t = 0; t < S->n_q; t++) {
        b.qslot[t] = S->n_slots - S->n_q + t; /* the block is the cache's tail */
        b.qpos[t] = b.kpos[b.qslot[t]];
    }
    b.kg = NULL;
    b.kgt = NULL;
    b.type = type;
    b.rb = st_kv_row_bytes(type, S->hd);
    b.kt = malloc(S->n_slots * S->n_kv_heads * b.rb);
    b.vt = malloc(S->n_slots * S->n_kv_heads * b.rb);
    to_type(S, &b, b.kr, b.kt);
    to_type(S, &b, b.v, b.vt);
    return b;
}

static void unmake(bufs *b)
{
    free(b->q); free(b->qr); free(b->k); free(b->kr); free(b->ks); free(b->v); free(b->out);
    free(b->inv_freq); free(b->slot_cs); free(b->slot_sn); free(b->qpos); free(b->kpos);
    free(b->qslot); free(b->kt); free(b->vt); free(b->kg); free(b->kgt);
}

#define ROT_SCALE 0.9f

/* The keys at their grouped position, computed directly from k: each key
 * rotated by floor(kpos / group) with its own table (the host builds its
 * copy from the rotated cache instead; test_self_extend checks that). */
static void make_grouped(const shape *S, bufs *b, uint32_t group)
{
    size_t row = (size_t)S->n_kv_heads * S->hd;
    uint32_t nf = S->hd / 2;
    float cs[64], sn[64];
    b->kg = malloc(S->n_slots * row * sizeof(float));
    b->kgt = malloc(S->n_slots * S->n_kv_heads * b->rb);
    for (uint32_t j = 0; j < S->n_slots; j++) {
        st_op_rope_table(cs, sn, (double)(b->kpos[j] / (int32_t)group), b->inv_freq, nf,
                         ROT_SCALE);
        for (uint32_t g = 0; g < S->n_kv_heads; g++)
            st_op_rope(b->kg + j * row + (size_t)g * S->hd, b->k + j * row + (size_t)g * S->hd,
                       cs, sn, nf, S->hd);
    }
    to_type(S, b, b->kg, b->kgt);
}

static st_attn_layer layer_of(const shape *S, const bufs *b, const st_attn_range2 *r, uint32_t nr)
{
    st_attn_layer L = {
        .n_q = S->n_q, .n_heads = S->n_heads, .n_kv_heads = S->n_kv_heads, .head_dim = S->hd,
        .q = b->q, .qr = b->qr, .q_pos = b->qpos, .q_slot = b->qslot,
        .k_rot = { b->kt, S->n_slots * b->rb, b->rb, b->type },
        .v = { b->vt, S->n_slots * b->rb, b->rb, b->type },
        .k_fix = { b->k, S->hd * sizeof(float), S->n_kv_heads * S->hd * sizeof(float), ST_KV_F32 },
        .k_slot = { b->ks, S->hd * sizeof(float), S->n_kv_heads * S->hd * sizeof(float),
                    ST_KV_F32 },
        .k_grp = { b->kgt, S->n_slots * b->rb, b->rb, b->type },
        .k_pos = b->kpos, .n_slots = S->n_slots, .ranges = r,
        .n_ranges = nr, .inv_freq = b->inv_freq, .n_freq = S->hd / 2, .rot_scale = ROT_SCALE,
        .slot_cs = b->slot_cs, .slot_sn = b->slot_sn, .scale = 1.0f / sqrtf((float)S->hd),
        .out = b->out,
    };
    return L;
}

/* The plan's meaning, spelled out: every visible (range, key) pair scored
 * with the range's query rotation, one softmax per query and head.
 * int8_query: as the fused decode scores a Q8_0 cache's ST_POS_TRUE and
 * grouped ranges (attn_decode_q8_0), against the query times the scale
 * in int8 blocks (st_quantize_act_row). */
static void reference(const st_attn_layer *L, const bufs *b, float *out, bool int8_query)
{
    uint32_t hd = L->head_dim, QD = L->n_heads * hd, G = L->n_heads / L->n_kv_heads;
    size_t row = (size_t)L->n_kv_heads * hd;
    uint32_t nf = L->n_freq;
    float *qv = malloc(hd * sizeof(float)), *cs = malloc(nf * sizeof(float));
    float *qv8 = malloc(hd * sizeof(float));
    st_act_block *qa = malloc((hd / ST_ACT_BLOCK + 1) * sizeof *qa);
    float *sn = malloc(nf * sizeof(float));
    double *sc = malloc(L->n_ranges * L->n_slots * sizeof(double));
    double *acc = malloc(hd * sizeof(double));
    for (uint32_t t = 0; t < L->n_q; t++)
        for (uint32_t h = 0; h < L->n_heads; h++) {
            size_t qo = (size_t)t * QD + (size_t)h * hd, ko = (size_t)(h / G) * hd;
            double mx = -INFINITY, sum = 0.0;
            uint32_t n = 0;
            for (uint32_t e = 0; e < L->n_ranges; e++) {
                const st_attn_range2 *r = &L->ranges[e];
                const float *src = L->qr + qo, *K = b->kr;
                if (r->pos_mode == ST_POS_FIXED) {
                    st_op_rope_table(cs, sn, r->fixed_dist, L->inv_freq, nf,
                                     L->rot_scale * L->rot_scale);
                    st_op_rope(qv, L->q + qo, cs, sn, nf, hd);
                    src = qv;
                    K = b->k;
                } else if (r->pos_mode == ST_POS_SLOT) {
                    size_t so = (size_t)L->q_slot[t] * nf;
                    st_op_rope(qv, L->q + qo, L->slot_cs + so, L->slot_sn + so, nf, hd);
                    src = qv;
                    K = b->ks;
                } else if (r->pos_mode == ST_POS_GROUPED) {
                    /* The query at floor(pos/G) + offset, spelled out. */
                    int32_t gq = L->q_pos[t] / (int32_t)r->group + r->group_offset;
                    st_op_rope_table(cs, sn, (double)gq, L->inv_freq, nf, L->rot_scale);
                    st_op_rope(qv, L->q + qo, cs, sn, nf, hd);
                    src = qv;
                    K = b->kg;
                }
                bool q8 = int8_query &&
                          (r->pos_mode == ST_POS_TRUE || r->pos_mode == ST_POS_GROUPED);
                if (q8) {
                    for (uint32_t i = 0; i < hd; i++)
                        qv8[i] = src[i] * L->scale;
                    st_quantize_act_row(qv8, hd, qa);
                    for (uint32_t i = 0; i < hd; i++) {
                        const st_act_block *a = &qa[i / ST_ACT_BLOCK];
                        qv8[i] = a->d * (float)a->q[i % ST_ACT_BLOCK];
                    }
                }
                for (uint32_t j = r->k_begin; j < r->k_end; j++) {
                    int64_t d = (int64_t)L->q_pos[t] - L->k_pos[j];
                    double s = -INFINITY;
                    if (d >= r->min_dist && d <= r->max_dist) {
                        s = 0.0;
                        for (uint32_t i = 0; i < hd; i++)
                            s += (double)(q8 ? qv8 : src)[i] * K[j * row + ko + i];
                        if (!q8)
                            s *= L->scale;
                        mx = s > mx ? s : mx;
                    }
                    sc[n++] = s;
                }
            }
            memset(acc, 0, hd * sizeof(double));
            n = 0;
            for (uint32_t e = 0; e < L->n_ranges; e++)
                for (uint32_t j = L->ranges[e].k_begin; j < L->ranges[e].k_end; j++, n++) {
                    if (sc[n] == -INFINITY)
                        continue;
                    double p = exp(sc[n] - mx);
                    sum += p;
                    for (uint32_t i = 0; i < hd; i++)
                        acc[i] += p * b->v[j * row + ko + i];
                }
            for (uint32_t i = 0; i < hd; i++)
                out[qo + i] = sum > 0 ? (float)(acc[i] / sum) : 0.0f;
        }
    free(qv); free(qv8); free(qa); free(cs); free(sn); free(sc); free(acc);
}

/* Run every ISA compiled in and supported here against the reference. */
static void check_type(const shape *S, const st_attn_range2 *r, uint32_t nr, const char *what,
                       st_kv_type type)
{
    bufs b = make(S, 12345u + S->n_q * 7u + nr, type);
    for (uint32_t e = 0; e < nr; e++)
        if (r[e].pos_mode == ST_POS_GROUPED && !b.kg)
            make_grouped(S, &b, r[e].group);
    st_attn_layer L = layer_of(S, &b, r, nr);
    size_t n = (size_t)S->n_q * S->n_heads * S->hd;
    float *want = malloc(n * sizeof(float)), *want8 = want;
    reference(&L, &b, want, false);
    if (type == ST_KV_Q8_0) {
        want8 = malloc(n * sizeof(float));
        reference(&L, &b, want8, true);
    }
    size_t sf = st_attn_tiled_scratch_floats(S->hd);
    float *scr[2];
    for (int i = 0; i < 2; i++)
        scr[i] = aligned_alloc(64, (sf * sizeof(float) + 63) & ~(size_t)63);
    float *part = malloc(st_attn_tiled_part_floats(S->n_heads, S->hd) * sizeof(float));
    cr_assert(part);
    st_diag d;
    st_threadpool *pool = NULL;
    cr_assert_eq(st_threadpool_create(2, &pool, &d), ST_OK);
    for (int isa = ST_ISA_SCALAR; isa <= (int)st_cpu_isa_detect(); isa++) {
        L.kern = st_cpu_kernels_get((st_cpu_isa)isa);
        if ((int)L.kern->isa != isa)
            continue;
        cr_assert(st_attn_tiled_supported(L.kern, S->n_heads, S->n_kv_heads, S->hd));
        for (int run = 0; run < 4; run++) {
            int threaded = run & 1, split = run >> 1;
            L.part = split ? part : NULL; /* with a part buffer, few queries split */
            memset(b.out, 0xff, n * sizeof(float)); /* NaN: every output must be written */
            st_attn_tiled_run(&L, threaded ? pool : NULL, scr);
            /* A split decode through the fused kernel scores a Q8_0
             * cache against the query in int8 blocks. */
            uint32_t G = S->n_heads / S->n_kv_heads;
            const float *ref =
                split && st_attn_tiled_splits(S->n_q, S->n_heads, S->n_kv_heads) &&
                        st_attn_tiled_decode_fused(L.kern, type, type, L.slopes != NULL, G, S->hd)
                    ? want8
                    : want;
            double num = 0, den = 0;
            for (size_t i = 0; i < n; i++) {
                double e = (double)b.out[i] - ref[i];
                num += e * e;
                den += (double)ref[i] * ref[i];
            }
            double rel = sqrt(num / (den > 0 ? den : 1));
            cr_assert(rel < TOL, "%s, kv %s, isa %d, threaded %d, split %d: relative error %g",
                      what, st_kv_type_name(type), isa, threaded, split, rel);
        }
    }
    st_threadpool_destroy(pool);
    free(part);
    free(scr[0]);
    free(scr[1]);
    if (want8 != want)
        free(want8);
    free(want);
    unmake(&b);
}

static void check2(const shape *S, const st_attn_range2 *r, uint32_t nr, const char *what)
{
    for (int t = 0; t < ST_KV_TYPE_COUNT; t++)
        if (t != ST_KV_Q8_0 || S->hd % 32 == 0)
            check_type(S, r, nr, what, (st_kv_type)t);
}

/* The 1.0 ranges, as the host widens them (group 0). */
static void check(const shape *S, const st_attn_range *r, uint32_t nr, const char *what)
{
    st_attn_range2 w[8];
    cr_assert(nr <= 8);
    for (uint32_t e = 0; e < nr; e++)
        w[e] = (st_attn_range2){ sizeof w[e], r[e].head, r[e].k_begin, r[e].k_end,
                                 r[e].min_dist, r[e].max_dist, r[e].pos_mode, r[e].fixed_dist,
                                 0, 0 };
    check2(S, w, nr, what);
}

static const shape SMOL = { 9, 3, 64, 300, 70 };

Test(attn_tiled, dense_causal)
{
    st_attn_range r = { ST_ALL_HEADS, 0, SMOL.n_slots, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
    check(&SMOL, &r, 1, "dense");
    shape whole = { 9, 3, 64, 130, 130 }; /* a prefill from an empty cache */
    r.k_end = whole.n_slots;
    check(&whole, &r, 1, "dense prefill");
}

Test(attn_tiled, sliding_window)
{
    st_attn_range r = { ST_ALL_HEADS, 100, SMOL.n_slots, 0, 40, ST_POS_TRUE, 0 };
    check(&SMOL, &r, 1, "window");
}

Test(attn_tiled, global_plus_local)
{
    /* LM-Infinite: the first 5 slots at a fixed distance beyond the local
     * window, the window at true distance. */
    const int32_t W = 90;
    st_attn_range r[2] = {
        { ST_ALL_HEADS, 150, SMOL.n_slots, 0, W - 1, ST_POS_TRUE, 0 },
        { ST_ALL_HEADS, 0, 5, W, ST_DIST_MAX, ST_POS_FIXED, W },
    };
    check(&SMOL, r, 2, "global + local");
}

Test(attn_tiled, sinks_and_slots)
{
    /* Streaming-like sinks (single-slot ranges) and a window at slot
     * positions, plus a range no query reaches. */
    st_attn_range r[4] = {
        { ST_ALL_HEADS, 260, SMOL.n_slots, 0, ST_DIST_MAX, ST_POS_SLOT, 0 },
        { ST_ALL_HEADS, 0, 1, 0, ST_DIST_MAX, ST_POS_TRUE, 0 },
        { ST_ALL_HEADS, 1, 2, 0, ST_DIST_MAX, ST_POS_FIXED, 300 },
        { ST_ALL_HEADS, 5, 9, 0, 3, ST_POS_TRUE, 0 },
    };
    check(&SMOL, r, 4, "sinks and slots");
}

Test(attn_tiled, queries_seeing_nothing)
{
    /* Only keys at distance 3..5: the first queries of a prefill see none. */
    shape s = { 4, 2, 32, 40, 40 };
    st_attn_range r = { ST_ALL_HEADS, 0, s.n_slots, 6, 11, ST_POS_TRUE, 0 };
    check(&s, &r, 1, "empty rows");
}

Test(attn_tiled, odd_shapes)
{
    const shape shapes[] = {
        { 5, 1, 24, 97, 29 },   /* 5 heads per kv head, 12 queries per tile, hd 24 */
        { 4, 4, 16, 200, 131 }, /* MHA: 64 queries per tile, then 3 */
        { 6, 2, 8, 67, 9 },     /* hd 8, two row vectors */
        { 2, 1, 80, 70, 66 },   /* hd 80: not a multiple of the PV step of 4 x 16 */
        { 3, 3, 18, 33, 33 },   /* G = 1, hd 18: a remainder of the 4-dim step */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const shape *s = &shapes[i];
        st_attn_range r[2] = {
            { ST_ALL_HEADS, 0, s->n_slots / 2, 0, ST_DIST_MAX, ST_POS_TRUE, 0 },
            { ST_ALL_HEADS, s->n_slots / 2, s->n_slots, 0, 17, ST_POS_FIXED, 3 },
        };
        check(s, r, 2, "odd shape");
    }
}

/* One-query blocks split along the keys (st_attn_tiled_splits): chunks
 * and sub-blocks that cut through ranges, a chunk count at the cap (over
 * 64 x 256 visible keys), ranges the query does not see; blocks of a few
 * queries take the tile path whether or not a part buffer is given. */
Test(attn_tiled, split_decode)
{
    cr_assert(st_attn_tiled_splits(1, 9, 3) && st_attn_tiled_splits(1, 5, 5));
    cr_assert(!st_attn_tiled_splits(2, 9, 3) && !st_attn_tiled_splits(1, 64, 1));
    for (uint32_t nq = 1; nq <= 5; nq += 2) {
        shape s = { 9, 3, 64, 1500, nq };
        st_attn_range dense = { ST_ALL_HEADS, 0, s.n_slots, 0, ST_DIST_MAX, ST_POS_TRUE, 0 };
        check(&s, &dense, 1, "split dense");
        const int32_t W = 700;
        st_attn_range lambda[3] = {
            { ST_ALL_HEADS, 0, 16, W, ST_DIST_MAX, ST_POS_FIXED, W },
            { ST_ALL_HEADS, 16, s.n_slots, 0, W - 1, ST_POS_TRUE, 0 },
            { ST_ALL_HEADS, 0, 3, 0, 2, ST_POS_TRUE, 0 }, /* too far: seen by none */
        };
        check(&s, lambda, 3, "split global + local");
    }
    shape many = { 2, 1, 16, 40000, 1 }; /* 40,000 keys: 53 chunks of 768 */
    st_attn_range r[2] = {
        { ST_ALL_HEADS, 0, 20000, 0, ST_DIST_MAX, ST_POS_SLOT, 0 },
        { ST_ALL_HEADS, 20000, many.n_slots, 0, ST_DIST_MAX, ST_POS_TRUE, 0 },
    };
    check(&many, r, 2, "split at the chunk cap");
    shape none = { 4, 2, 32, 600, 1 };
    st_attn_range far = { ST_ALL_HEADS, 0, none.n_slots, 5000, ST_DIST_MAX, ST_POS_TRUE, 0 };
    check(&none, &far, 1, "split, nothing visible");
}

/* The split's chunks: 256 keys, or past 64 of those the fewest whole
 * multiples of 256 that keep the count at 64 or under; they cover every
 * visible key, and no chunk is empty. */
Test(attn_tiled, split_chunks)
{
    uint32_t c, n;
    st_attn_tiled_chunks(0, &c, &n);
    cr_assert_eq(n, 1);
    const uint64_t cases[] = { 1, 255, 256, 257, 4096, 4160, 16384, 16385, 16400, 40000,
                               1048576, 1048577 };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint64_t v = cases[i];
        st_attn_tiled_chunks(v, &c, &n);
        cr_assert(c % ST_ATTN_SPLIT_KEYS == 0 && n >= 1 && n <= ST_ATTN_SPLIT_MAX,
                  "%llu keys: %u chunks of %u", (unsigned long long)v, n, c);
        cr_assert((uint64_t)c * n >= v && (uint64_t)c * (n - 1) < v, "%llu keys: %u x %u",
                  (unsigned long long)v, n, c);
        if (c > ST_ATTN_SPLIT_KEYS) /* a smaller multiple would make too many */
            cr_assert((v + c - ST_ATTN_SPLIT_KEYS - 1) / (c - ST_ATTN_SPLIT_KEYS) >
                      ST_ATTN_SPLIT_MAX);
    }
    st_attn_tiled_chunks(16400, &c, &n);
    cr_assert(c == 512 && n == 33, "%u x %u", n, c);
}

/* SelfExtend's plan: keys at distance < W at their true distance, farther
 * ones at the grouped distance floor(q/G) - floor(k/G) + (W - W/G). True
 * positions have gaps (2j + j/7), so groups hold 1..G keys and queries of
 * one tile fall in several groups. */
static void self_extend_ranges(uint32_t n_slots, int32_t W, uint32_t G, st_attn_range2 *r)
{
    r[0] = (st_attn_range2){ sizeof *r, ST_ALL_HEADS, 0, n_slots, 0, W - 1, ST_POS_TRUE, 0, 0, 0 };
    r[1] = (st_attn_range2){ sizeof *r, ST_ALL_HEADS, 0, n_slots, W, ST_DIST_MAX,
                             ST_POS_GROUPED, 0, G, W - W / (int32_t)G };
}

Test(attn_tiled, grouped)
{
    st_attn_range2 r[2];
    self_extend_ranges(SMOL.n_slots, 64, 4, r);
    check2(&SMOL, r, 2, "grouped, G 4, W 64");
    shape whole = { 9, 3, 64, 211, 211 }; /* prefill from an empty cache, odd size */
    self_extend_ranges(whole.n_slots, 40, 8, r);
    check2(&whole, r, 2, "grouped prefill, G 8, W 40");
    /* Odd shapes: MHA, 5 heads per kv head, odd head sizes, G not a power
     * of two, a window wider than the block. */
    const shape shapes[] = {
        { 5, 1, 24, 97, 29 }, { 4, 4, 16, 200, 131 }, { 6, 2, 8, 67, 9 }, { 3, 3, 18, 33, 33 },
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        self_extend_ranges(shapes[i].n_slots, 21, 3, r);
        check2(&shapes[i], r, 2, "grouped odd shape, G 3, W 21");
    }
    /* Group 1 with offset 0 is the true distance: the grouped range alone
     * gives what ST_POS_TRUE would (the reference computes both ways). */
    st_attn_range2 one = { sizeof one, ST_ALL_HEADS, 0, SMOL.n_slots, 0, ST_DIST_MAX,
                           ST_POS_GROUPED, 0, 1, 0 };
    check2(&SMOL, &one, 1, "grouped, G 1");
}

/* Decode (one query, split along the keys) and a few queries with grouped
 * ranges, including a cache past one chunk of keys. */
Test(attn_tiled, grouped_split_decode)
{
    for (uint32_t nq = 1; nq <= 3; nq += 2) {
        shape s = { 9, 3, 64, 1500, nq };
        st_attn_range2 r[2];
        self_extend_ranges(s.n_slots, 256, 8, r);
        check2(&s, r, 2, "grouped split, G 8, W 256");
    }
}
