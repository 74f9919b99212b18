/* Tiled attention over contiguous plan ranges (see attn_tiled.h). */
#include "attn_tiled.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "cpu/ops.h"
#include "kv_grouped.h"
#include "work_split.h"

/* One thread's buffers, carved out of its scratch. */
typedef struct tile_buf {
    float *qt, *ot, *st, *m, *l, *qtmp, *cs, *sn, *kbuf, *vbuf;
    int32_t *rpos;
    float *rslope;
    int64_t *gq_at;  /* the grouped query position b->cs / b->sn hold (ST_POS_GROUPED) */
} tile_buf;

bool st_attn_tiled_supported(const st_cpu_kernels *kern, uint32_t n_heads, uint32_t n_kv_heads,
                             uint32_t head_dim)
{
    return kern->attn_keys && n_kv_heads && n_heads % n_kv_heads == 0 &&
           n_heads / n_kv_heads <= ST_ATTN_ROWS && head_dim > 0;
}

/* Rounded up to 16 floats so each buffer stays 64-byte aligned. */
static size_t up16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

size_t st_attn_tiled_scratch_floats(uint32_t head_dim)
{
    size_t R = ST_ATTN_ROWS;
    return 2 * up16((size_t)head_dim * R) + up16((size_t)ST_ATTN_KTILE * R) + 4 * R +
           3 * up16(head_dim) + 2 * up16((size_t)ST_ATTN_KTILE * head_dim) + 16;
}

static tile_buf carve(float *s, uint32_t hd)
{
    size_t R = ST_ATTN_ROWS;
    tile_buf b;
    b.qt = s; s += up16((size_t)hd * R);
    b.ot = s; s += up16((size_t)hd * R);
    b.st = s; s += up16((size_t)ST_ATTN_KTILE * R);
    b.m = s; s += R;
    b.l = s; s += R;
    b.rpos = (int32_t *)s; s += R;
    b.rslope = s; s += R;
    b.qtmp = s; s += up16(hd);
    b.cs = s; s += up16(hd);
    b.sn = s; s += up16(hd);
    b.kbuf = s; s += up16((size_t)ST_ATTN_KTILE * hd);
    b.vbuf = s; s += up16((size_t)ST_ATTN_KTILE * hd);
    b.gq_at = (int64_t *)s;
    return b;
}

typedef struct tiled_task {
    const st_attn_layer *L;
    float *const *scratch;
    uint32_t group;       /* query heads per kv head */
    uint32_t q_per_tile;  /* queries per tile: ST_ATTN_ROWS / group */
    uint32_t n_items;
    uint32_t n_chunks;    /* > 0: split along the keys (run_chunk) */
    uint32_t chunk;       /* keys per chunk */
    st_work_split split;
} tiled_task;

/* First slot in [lo, hi) whose position is >= p (positions ascend). */
static uint32_t lower_bound(const int32_t *pos, uint32_t lo, uint32_t hi, int64_t p)
{
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (pos[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Before range_query for range r: ST_POS_FIXED's rotation table, which
 * every query of the range shares, into b->cs / b->sn; for ST_POS_GROUPED
 * the table is made by range_query when the grouped position changes. */
static void range_query_prepare(const st_attn_layer *L, const tile_buf *b,
                                const st_attn_range2 *r)
{
    *b->gq_at = INT64_MIN;
    if (r->pos_mode == ST_POS_FIXED)
        /* (R(d) q) . k: the scale enters twice, as when both sides rotate. */
        st_op_rope_table(b->cs, b->sn, (double)r->fixed_dist, L->inv_freq, L->n_freq,
                         L->rot_scale * L->rot_scale);
}

/* Query t's head h as range r reads it: the rotated q (ST_POS_TRUE), or
 * R(fixed_dist) q (ST_POS_FIXED) or R(slot_q) q (ST_POS_SLOT) in b->qtmp. */
static const float *range_query(const st_attn_layer *L, const tile_buf *b,
                                const st_attn_range2 *r, uint32_t t, uint32_t h)
{
    uint32_t hd = L->head_dim, nf = L->n_freq;
    size_t o = ((size_t)t * L->n_heads + h) * hd;
    if (r->pos_mode == ST_POS_FIXED) {
        st_op_rope(b->qtmp, L->q + o, b->cs, b->sn, nf, hd);
        return b->qtmp;
    }
    if (r->pos_mode == ST_POS_SLOT) {
        size_t so = (size_t)L->q_slot[t] * nf;
        st_op_rope(b->qtmp, L->q + o, L->slot_cs + so, L->slot_sn + so, nf, hd);
        return b->qtmp;
    }
    if (r->pos_mode == ST_POS_GROUPED) {
        /* R(floor(pos_q/G) + offset) q: the queries of one group (and the
         * query heads of one query) share the table. */
        int64_t gq = st_grouped_pos(L->q_pos[t], r->group) + r->group_offset;
        if (*b->gq_at != gq) {
            st_op_rope_table(b->cs, b->sn, (double)gq, L->inv_freq, nf, L->rot_scale);
            *b->gq_at = gq;
        }
        st_op_rope(b->qtmp, L->q + o, b->cs, b->sn, nf, hd);
        return b->qtmp;
    }
    return L->qr + o;
}

/* The tile's queries for range r, transposed and scaled: qt[d][row]. */
static void load_queries(const st_attn_layer *L, const tile_buf *b, const st_attn_range2 *r,
                         uint32_t q0, uint32_t nq, uint32_t g, uint32_t group)
{
    range_query_prepare(L, b, r);
    for (uint32_t i = 0; i < nq; i++)
        for (uint32_t hh = 0; hh < group; hh++) {
            const float *src = range_query(L, b, r, q0 + i, g * group + hh);
            uint32_t row = i * group + hh;
            for (uint32_t d = 0; d < L->head_dim; d++)
                b->qt[(size_t)d * ST_ATTN_ROWS + row] = src[d] * L->scale;
        }
}

static const st_kv_src *range_keys(const st_attn_layer *L, st_pos_mode mode)
{
    return mode == ST_POS_TRUE    ? &L->k_rot
           : mode == ST_POS_FIXED ? &L->k_fix
           : mode == ST_POS_SLOT  ? &L->k_slot
                                  : &L->k_grp;
}

/* Start a tile for queries q0 .. q0+nq-1 (rows = nq * group): padding
 * rows repeat the last query's position and score zeros; their output is
 * dropped. Only the nv row vectors the kernel reads are cleared. */
static st_attn_tile tile_start(const tiled_task *T, const tile_buf *b, uint32_t q0, uint32_t nq)
{
    const st_attn_layer *L = T->L;
    uint32_t hd = L->head_dim, rows = nq * T->group;
    uint32_t nv = (rows + 15) / 16;
    for (uint32_t r = 0; r < ST_ATTN_ROWS; r++) {
        uint32_t i = r < rows ? r / T->group : nq - 1;
        b->rpos[r] = L->q_pos[q0 + i];
        b->m[r] = -INFINITY;
        b->l[r] = 0.0f;
    }
    for (uint32_t d = 0; d < hd; d++) {
        memset(b->qt + (size_t)d * ST_ATTN_ROWS, 0, (size_t)nv * 16 * sizeof(float));
        memset(b->ot + (size_t)d * ST_ATTN_ROWS, 0, (size_t)nv * 16 * sizeof(float));
    }
    st_attn_tile t = { .hd = hd, .nv = nv, .qt = b->qt, .rpos = b->rpos,
                       .rpos_min = L->q_pos[q0], .rpos_max = L->q_pos[q0 + nq - 1],
                       .ot = b->ot, .m = b->m, .l = b->l, .st = b->st, .kbuf = b->kbuf,
                       .vbuf = b->vbuf };
    return t;
}

/* The slots [*lo, *hi) of range r that some query of tile t can see. */
static void visible(const st_attn_layer *L, const st_attn_range2 *r, const st_attn_tile *t,
                    uint32_t *lo, uint32_t *hi)
{
    *lo = lower_bound(L->k_pos, r->k_begin, r->k_end, (int64_t)t->rpos_min - r->max_dist);
    *hi = lower_bound(L->k_pos, *lo, r->k_end, (int64_t)t->rpos_max - r->min_dist + 1);
}

/* Add slots [lo, hi) of range r to the tile's softmax. */
static void add_keys(const tiled_task *T, const tile_buf *b, st_attn_tile *t,
                     const st_attn_range2 *r, uint32_t lo, uint32_t hi, uint32_t q0, uint32_t nq,
                     uint32_t g)
{
    const st_attn_layer *L = T->L;
    load_queries(L, b, r, q0, nq, g, T->group);
    const st_kv_src *K = range_keys(L, r->pos_mode), *V = &L->v;
    const uint8_t *v = (const uint8_t *)st_kv_src_head(V, g) + lo * V->slot_stride;
    if (K->blocked) {
        /* Blocked keys become float rows a key tile at a time (in the
         * buffer the kernel would convert rows into), then go in as f32. */
        size_t ks = (size_t)L->head_dim * sizeof(float);
        for (uint32_t x = lo; x < hi; x += ST_ATTN_KTILE) {
            uint32_t n = hi - x < ST_ATTN_KTILE ? hi - x : ST_ATTN_KTILE;
            L->kern->kv_rows_blk(st_kv_src_head(K, g), x, n, L->head_dim, b->kbuf);
            L->kern->attn_keys(t, b->kbuf, ST_KV_F32, ks, v + (size_t)(x - lo) * V->slot_stride,
                               V->type, V->slot_stride, L->k_pos + x, n, r->min_dist,
                               r->max_dist);
        }
        return;
    }
    const uint8_t *k = (const uint8_t *)st_kv_src_head(K, g) + lo * K->slot_stride;
    L->kern->attn_keys(t, k, K->type, K->slot_stride, v, V->type, V->slot_stride,
                       L->k_pos + lo, hi - lo, r->min_dist, r->max_dist);
}

/* One item: queries q0 .. q0+nq-1, the query heads of kv head g. */
static void run_item(const tiled_task *T, const tile_buf *b, uint32_t q0, uint32_t nq, uint32_t g)
{
    const st_attn_layer *L = T->L;
    uint32_t hd = L->head_dim, group = T->group;
    st_attn_tile t = tile_start(T, b, q0, nq);
    if (L->slopes) {
        /* Row i * group + hh is query head g * group + hh; padding rows
         * take a finite slope, their scores are never read. */
        for (uint32_t r = 0; r < ST_ATTN_ROWS; r++)
            b->rslope[r] = L->slopes[g * group + (r % group)];
        t.rslope = b->rslope;
    }
    for (uint32_t e = 0; e < L->n_ranges; e++) {
        uint32_t lo, hi;
        visible(L, &L->ranges[e], &t, &lo, &hi);
        if (lo < hi)
            add_keys(T, b, &t, &L->ranges[e], lo, hi, q0, nq, g);
    }
    uint32_t QD = L->n_heads * hd;
    for (uint32_t i = 0; i < nq; i++)
        for (uint32_t hh = 0; hh < group; hh++) {
            uint32_t row = i * group + hh;
            /* A query that sees nothing gets zeros, as on the gather path. */
            float inv = b->l[row] > 0.0f ? 1.0f / b->l[row] : 0.0f;
            float *out = L->out + (size_t)(q0 + i) * QD + (size_t)(g * group + hh) * hd;
            for (uint32_t d = 0; d < hd; d++)
                out[d] = b->ot[(size_t)d * ST_ATTN_ROWS + row] * inv;
        }
}

/* ---- decode: split along the keys ------------------------------------ */

/* A block of one query (decode) makes only n_kv_heads tile items, each
 * streaming its head's whole cache, and fills `group` of a tile's 64 rows.
 * Such a block is split along the visible keys instead: chunk c of kv
 * head g takes keys [c*chunk, (c+1)*chunk) of the ranges' visible slots
 * (in range order) and scores them with the per-row kernels (scores_f32,
 * wsum_f32: vectors along the head dimension, no padded rows) SPLIT_SUB
 * at a time, so a sub-block's keys and values are read from memory once
 * and from cache for the other query heads of the group. Each chunk keeps
 * its own softmax state (m, l and the unnormalised output), merged after
 * the run. The chunking depends only on the plan, never on the thread
 * count, so the output is the same however many threads run. */
#define SPLIT_KEYS ST_ATTN_SPLIT_KEYS /* keys per chunk, unless that gives more chunks than: */
#define SPLIT_MAX ST_ATTN_SPLIT_MAX
#define SPLIT_SUB 256    /* keys scored at a time (their scores fit tile_buf.st) */

bool st_attn_tiled_splits(uint32_t n_q, uint32_t n_heads, uint32_t n_kv_heads)
{
    return n_q == 1 && n_kv_heads && n_heads / n_kv_heads < ST_ATTN_ROWS;
}

size_t st_attn_tiled_part_floats(uint32_t n_heads, uint32_t head_dim)
{
    return (size_t)n_heads * SPLIT_MAX * ((size_t)head_dim + 2);
}

/* The fused decode kernel for keys and values of these types, or NULL. */
static st_attn_decode_fn decode_kernel(const st_cpu_kernels *kern, st_kv_type k_type,
                                       st_kv_type v_type)
{
    if (k_type != v_type)
        return NULL;
    return k_type == ST_KV_F16 ? kern->attn_decode_f16
           : k_type == ST_KV_Q8_0 ? kern->attn_decode_q8_0
                                  : NULL;
}

/* Whether the fused kernel takes this split: f16 (or Q8_0) keys and
 * values, the whole group in its registers, no per-key slope (ALiBi). Its
 * scratch: the group's queries after the slot list in tile_buf.qt, its
 * scores (group x SPLIT_SUB) in tile_buf.st. */
bool st_attn_tiled_decode_fused(const st_cpu_kernels *kern, st_kv_type k_type,
                                st_kv_type v_type, bool slopes, uint32_t group,
                                uint32_t head_dim)
{
    return decode_kernel(kern, k_type, v_type) && !slopes && group <= ST_DEC_MAX_G &&
           head_dim % 16 == 0 &&
           (k_type != ST_KV_Q8_0 || (head_dim % 32 == 0 && head_dim <= ST_DEC_Q8_MAX_HD)) &&
           (size_t)head_dim * ST_ATTN_ROWS >= SPLIT_SUB + (size_t)group * head_dim &&
           (size_t)group * SPLIT_SUB <= (size_t)ST_ATTN_KTILE * ST_ATTN_ROWS;
}

static bool decode_fused(const st_attn_layer *L, const st_kv_src *K, uint32_t group)
{
    return st_attn_tiled_decode_fused(L->kern, K->type, L->v.type, L->slopes != NULL, group,
                                      L->head_dim) &&
           (!K->blocked || L->kern->attn_decode_f16_blk);
}

/* Slots [x, y) of range r into the softmax states of kv head g's query
 * heads: m[hh], l[hh], acc[hh][hd]. */
static void split_keys(const tiled_task *T, const tile_buf *b, const st_attn_range2 *r, uint32_t x,
                       uint32_t y, uint32_t g, float *acc)
{
    const st_attn_layer *L = T->L;
    uint32_t hd = L->head_dim, group = T->group;
    const st_kv_src *Ks = range_keys(L, r->pos_mode);
    const void *K = st_kv_src_head(Ks, g), *V = st_kv_src_head(&L->v, g);
    st_scores_kv_fn scores = L->kern->scores_kv[Ks->type];
    st_wsum_kv_fn wsum = L->kern->wsum_kv[L->v.type];
    uint32_t *idx = (uint32_t *)b->qt;
    float *s = b->st, *tmp = acc + (size_t)group * hd;
    range_query_prepare(L, b, r);
    st_attn_decode_fn fused =
        decode_fused(L, Ks, group) ? decode_kernel(L->kern, Ks->type, L->v.type) : NULL;
    if (fused) {
        /* The group's queries, scaled, after the slot list's room. */
        float *qg = b->qt + SPLIT_SUB;
        const float scale = L->scale; /* (read once: the stores may alias L) */
        for (uint32_t hh = 0; hh < group; hh++) {
            const float *q = range_query(L, b, r, 0, g * group + hh);
            float *o = qg + (size_t)hh * hd;
            for (uint32_t d = 0; d < hd; d++)
                o[d] = q[d] * scale;
        }
        for (uint32_t x0 = x; x0 < y; x0 += SPLIT_SUB) {
            uint32_t n = y - x0 < SPLIT_SUB ? y - x0 : SPLIT_SUB;
            if (Ks->blocked) {
                L->kern->attn_decode_f16_blk(qg, group, hd, K, x0,
                                             (const uint8_t *)V + x0 * L->v.slot_stride,
                                             L->v.slot_stride, n, s, b->m, b->l, acc);
                continue;
            }
            fused(qg, group, hd, (const uint8_t *)K + x0 * Ks->slot_stride, Ks->slot_stride,
                  (const uint8_t *)V + x0 * L->v.slot_stride, L->v.slot_stride, n, s, b->m, b->l,
                  acc);
        }
        return;
    }
    for (uint32_t x0 = x; x0 < y; x0 += SPLIT_SUB) {
        uint32_t n = y - x0 < SPLIT_SUB ? y - x0 : SPLIT_SUB;
        for (uint32_t i = 0; i < n; i++)
            idx[i] = x0 + i;
        for (uint32_t hh = 0; hh < group; hh++) {
            const float *q = range_query(L, b, r, 0, g * group + hh);
            if (Ks->blocked)
                L->kern->scores_blk(q, K, idx, n, hd, L->scale, s);
            else
                scores(q, K, Ks->slot_stride, idx, n, hd, L->scale, s);
            if (L->slopes) {
                float sl = L->slopes[g * group + hh];
                for (uint32_t i = 0; i < n; i++)
                    s[i] += sl * (float)(L->k_pos[idx[i]] - L->q_pos[0]);
            }
            float mx = b->m[hh];
            for (uint32_t i = 0; i < n; i++)
                mx = s[i] > mx ? s[i] : mx;
            float alpha = b->m[hh] == -INFINITY ? 0.0f : expf(b->m[hh] - mx), sum = 0.0f;
            for (uint32_t i = 0; i < n; i++) {
                s[i] = expf(s[i] - mx);
                sum += s[i];
            }
            b->m[hh] = mx;
            b->l[hh] = b->l[hh] * alpha + sum;
            wsum(tmp, s, V, L->v.slot_stride, idx, n, hd);
            float *o = acc + (size_t)hh * hd;
            for (uint32_t d = 0; d < hd; d++)
                o[d] = o[d] * alpha + tmp[d];
        }
    }
}

/* Chunk c of kv head g; its state goes to part: m[group], l[group],
 * out[group][hd]. */
static void run_chunk(const tiled_task *T, const tile_buf *b, uint32_t c, uint32_t g)
{
    const st_attn_layer *L = T->L;
    uint32_t hd = L->head_dim, group = T->group;
    float *acc = b->ot; /* group + 1 rows of hd: the outputs, then wsum's */
    for (uint32_t hh = 0; hh < group; hh++) {
        b->m[hh] = -INFINITY;
        b->l[hh] = 0.0f;
    }
    memset(acc, 0, (size_t)group * hd * sizeof(float));
    st_attn_tile t = { .rpos_min = L->q_pos[0], .rpos_max = L->q_pos[0] };
    uint64_t c_lo = (uint64_t)c * T->chunk, c_hi = c_lo + T->chunk, seen = 0;
    for (uint32_t e = 0; e < L->n_ranges && seen < c_hi; e++) {
        uint32_t lo, hi;
        visible(L, &L->ranges[e], &t, &lo, &hi);
        if (lo >= hi)
            continue;
        /* This range holds visible keys [seen, seen + hi - lo). */
        uint64_t a = c_lo > seen ? c_lo - seen : 0;
        uint64_t z = c_hi - seen < (uint64_t)(hi - lo) ? c_hi - seen : (uint64_t)(hi - lo);
        if (a < z)
            split_keys(T, b, &L->ranges[e], lo + (uint32_t)a, lo + (uint32_t)z, g, acc);
        seen += hi - lo;
    }
    float *p = L->part + ((size_t)g * T->n_chunks + c) * ((size_t)hd + 2) * group;
    memcpy(p, b->m, group * sizeof(float));
    memcpy(p + group, b->l, group * sizeof(float));
    memcpy(p + 2 * group, acc, (size_t)group * hd * sizeof(float));
}

/* o[d] += w * a[d], rounded after the product and after the sum as
 * written (C11 mode does not contract them), four dims an instruction:
 * the compiler kept the per-dim loop scalar, and it was most of the
 * merge, which the caller runs alone between two tasks of every layer. */
typedef float st_f32x4 __attribute__((vector_size(16)));

static void add_scaled(float *o, float w, const float *a, uint32_t n)
{
    uint32_t d = 0;
    for (; d + 4 <= n; d += 4) {
        st_f32x4 x, y;
        memcpy(&x, o + d, sizeof x);
        memcpy(&y, a + d, sizeof y);
        x += w * y;
        memcpy(o + d, &x, sizeof x);
    }
    for (; d < n; d++)
        o[d] += w * a[d];
}

/* out = sum_c e^(m_c - M) acc_c / sum_c e^(m_c - M) l_c, M = max_c m_c. */
static void merge_chunks(const tiled_task *T)
{
    const st_attn_layer *L = T->L;
    uint32_t hd = L->head_dim, group = T->group;
    size_t per = ((size_t)hd + 2) * group;
    for (uint32_t g = 0; g < L->n_kv_heads; g++) {
        const float *pg = L->part + (size_t)g * T->n_chunks * per;
        for (uint32_t hh = 0; hh < group; hh++) {
            float M = -INFINITY;
            for (uint32_t c = 0; c < T->n_chunks; c++)
                M = fmaxf(M, pg[c * per + hh]);
            float *out = L->out + (size_t)(g * group + hh) * hd;
            memset(out, 0, hd * sizeof(float));
            if (M == -INFINITY)
                continue; /* sees nothing: zeros, as on the gather path */
            float sum = 0.0f;
            for (uint32_t c = 0; c < T->n_chunks; c++) {
                const float *p = pg + c * per;
                if (p[hh] == -INFINITY)
                    continue;
                float w = expf(p[hh] - M);
                sum += w * p[group + hh];
                add_scaled(out, w, p + 2 * group + (size_t)hh * hd, hd);
            }
            float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
            for (uint32_t d = 0; d < hd; d++)
                out[d] *= inv;
        }
    }
}

static void tiled_task_fn(void *arg, uint32_t ith, uint32_t nth)
{
    (void)nth;
    tiled_task *T = arg;
    const st_attn_layer *L = T->L;
    tile_buf b = carve(T->scratch[ith], L->head_dim);
    uint32_t home = UINT32_MAX;
    for (;;) {
        uint32_t it = st_work_split_next(&T->split, ith, &home);
        if (it == UINT32_MAX)
            break;
        if (T->n_chunks) {
            /* A kv head's chunks in key order: consecutive items read on
             * along the head's cache (one stream per thread). */
            run_chunk(T, &b, it % T->n_chunks, it / T->n_chunks);
            continue;
        }
        uint32_t qt = it / L->n_kv_heads, g = it % L->n_kv_heads;
        uint32_t q0 = qt * T->q_per_tile;
        uint32_t nq = L->n_q - q0 < T->q_per_tile ? L->n_q - q0 : T->q_per_tile;
        run_item(T, &b, q0, nq, g);
    }
}

void st_attn_tiled_chunks(uint64_t n_visible, uint32_t *chunk, uint32_t *n_chunks)
{
    uint64_t c = SPLIT_KEYS;
    /* Past SPLIT_MAX chunks, longer chunks of whole SPLIT_KEYS: a chunk
     * of 257 keys would be a fused-kernel call of 256 keys and one of 1. */
    if (n_visible > (uint64_t)SPLIT_KEYS * SPLIT_MAX)
        c = ((n_visible + SPLIT_MAX - 1) / SPLIT_MAX + SPLIT_KEYS - 1) / SPLIT_KEYS * SPLIT_KEYS;
    *chunk = (uint32_t)c;
    *n_chunks = n_visible ? (uint32_t)((n_visible + c - 1) / c) : 1;
}

/* The chunking of a split block: visible keys over all ranges (they are
 * the same for every kv head), SPLIT_KEYS per chunk, at most SPLIT_MAX. */
static void plan_chunks(tiled_task *T)
{
    const st_attn_layer *L = T->L;
    st_attn_tile t = { .rpos_min = L->q_pos[0], .rpos_max = L->q_pos[L->n_q - 1] };
    uint64_t n = 0;
    for (uint32_t e = 0; e < L->n_ranges; e++) {
        uint32_t lo, hi;
        visible(L, &L->ranges[e], &t, &lo, &hi);
        n += lo < hi ? hi - lo : 0;
    }
    st_attn_tiled_chunks(n, &T->chunk, &T->n_chunks);
    T->n_items = T->n_chunks * L->n_kv_heads;
}

void st_attn_tiled_run(const st_attn_layer *L, st_threadpool *pool, float *const *scratch)
{
    tiled_task T = { .L = L, .scratch = scratch };
    T.group = L->n_heads / L->n_kv_heads;
    T.q_per_tile = ST_ATTN_ROWS / T.group;
    /* (The sub-block's slot list borrows the tile's query buffer.) */
    if (L->part && st_attn_tiled_splits(L->n_q, L->n_heads, L->n_kv_heads) &&
        (size_t)L->head_dim * ST_ATTN_ROWS >= SPLIT_SUB)
        plan_chunks(&T);
    else
        T.n_items = (L->n_q + T.q_per_tile - 1) / T.q_per_tile * L->n_kv_heads;
    st_work_split_init(&T.split, T.n_items, st_threadpool_size(pool));
    st_threadpool_run(pool, tiled_task_fn, &T);
    if (T.n_chunks)
        merge_chunks(&T);
}
