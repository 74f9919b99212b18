/* Tiled attention over contiguous plan ranges (see attn_tiled.h). */
#include "attn_tiled.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "cpu/ops.h"

/* One thread's buffers, carved out of its scratch. */
typedef struct tile_buf {
    float *qt, *ot, *st, *m, *l, *qtmp, *cs, *sn;
    int32_t *rpos;
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
    return 2 * up16((size_t)head_dim * R) + up16((size_t)ST_ATTN_KTILE * R) + 3 * R +
           3 * up16(head_dim);
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
    b.qtmp = s; s += up16(hd);
    b.cs = s; s += up16(hd);
    b.sn = s;
    return b;
}

typedef struct tiled_task {
    const st_attn_layer *L;
    float *const *scratch;
    uint32_t group;       /* query heads per kv head */
    uint32_t q_per_tile;  /* queries per tile: ST_ATTN_ROWS / group */
    uint32_t n_items;
    atomic_uint next;
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

/* The tile's queries for range r, transposed and scaled: qt[d][row]. */
static void load_queries(const st_attn_layer *L, const tile_buf *b, const st_attn_range *r,
                         uint32_t q0, uint32_t nq, uint32_t g, uint32_t group)
{
    uint32_t hd = L->head_dim, nf = L->n_freq, QD = L->n_heads * hd;
    if (r->pos_mode == ST_POS_FIXED)
        /* (R(d) q) . k: the scale enters twice, as when both sides rotate. */
        st_op_rope_table(b->cs, b->sn, (double)r->fixed_dist, L->inv_freq, nf,
                         L->rot_scale * L->rot_scale);
    for (uint32_t i = 0; i < nq; i++)
        for (uint32_t hh = 0; hh < group; hh++) {
            size_t o = (size_t)(q0 + i) * QD + (size_t)(g * group + hh) * hd;
            const float *src = L->qr + o;
            if (r->pos_mode == ST_POS_FIXED) {
                st_op_rope(b->qtmp, L->q + o, b->cs, b->sn, nf, hd);
                src = b->qtmp;
            } else if (r->pos_mode == ST_POS_SLOT) {
                size_t so = (size_t)L->q_slot[q0 + i] * nf;
                st_op_rope(b->qtmp, L->q + o, L->slot_cs + so, L->slot_sn + so, nf, hd);
                src = b->qtmp;
            }
            uint32_t row = i * group + hh;
            for (uint32_t d = 0; d < hd; d++)
                b->qt[(size_t)d * ST_ATTN_ROWS + row] = src[d] * L->scale;
        }
}

static const float *range_keys(const st_attn_layer *L, st_pos_mode mode)
{
    return mode == ST_POS_TRUE ? L->k_rot : mode == ST_POS_FIXED ? L->k : L->k_slot;
}

/* One item: queries q0 .. q0+nq-1, the query heads of kv head g. */
static void run_item(const tiled_task *T, const tile_buf *b, uint32_t q0, uint32_t nq, uint32_t g)
{
    const st_attn_layer *L = T->L;
    uint32_t hd = L->head_dim, group = T->group, rows = nq * group;
    uint32_t nv = (rows + 15) / 16;
    size_t stride = (size_t)L->n_kv_heads * hd;
    /* Padding rows repeat the last query's position and score zeros;
     * their output is dropped. */
    for (uint32_t r = 0; r < ST_ATTN_ROWS; r++) {
        uint32_t i = r < rows ? r / group : nq - 1;
        b->rpos[r] = L->q_pos[q0 + i];
        b->m[r] = -INFINITY;
        b->l[r] = 0.0f;
    }
    memset(b->qt, 0, (size_t)hd * ST_ATTN_ROWS * sizeof(float));
    memset(b->ot, 0, (size_t)hd * ST_ATTN_ROWS * sizeof(float));
    st_attn_tile t = { .hd = hd, .nv = nv, .qt = b->qt, .rpos = b->rpos,
                       .rpos_min = L->q_pos[q0], .rpos_max = L->q_pos[q0 + nq - 1],
                       .ot = b->ot, .m = b->m, .l = b->l, .st = b->st };
    for (uint32_t e = 0; e < L->n_ranges; e++) {
        const st_attn_range *r = &L->ranges[e];
        /* Only the slots some query of the tile can see. */
        uint32_t lo = lower_bound(L->k_pos, r->k_begin, r->k_end,
                                  (int64_t)t.rpos_min - r->max_dist);
        uint32_t hi = lower_bound(L->k_pos, lo, r->k_end, (int64_t)t.rpos_max - r->min_dist + 1);
        if (lo >= hi)
            continue;
        load_queries(L, b, r, q0, nq, g, group);
        size_t o = (size_t)lo * stride + (size_t)g * hd;
        L->kern->attn_keys(&t, range_keys(L, r->pos_mode) + o, L->v + o, stride, L->k_pos + lo,
                           hi - lo, r->min_dist, r->max_dist);
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

static void tiled_task_fn(void *arg, uint32_t ith, uint32_t nth)
{
    (void)nth;
    tiled_task *T = arg;
    const st_attn_layer *L = T->L;
    tile_buf b = carve(T->scratch[ith], L->head_dim);
    for (;;) {
        uint32_t it = atomic_fetch_add_explicit(&T->next, 1, memory_order_relaxed);
        if (it >= T->n_items)
            break;
        uint32_t qt = it / L->n_kv_heads, g = it % L->n_kv_heads;
        uint32_t q0 = qt * T->q_per_tile;
        uint32_t nq = L->n_q - q0 < T->q_per_tile ? L->n_q - q0 : T->q_per_tile;
        run_item(T, &b, q0, nq, g);
    }
}

void st_attn_tiled_run(const st_attn_layer *L, st_threadpool *pool, float *const *scratch)
{
    tiled_task T = { .L = L, .scratch = scratch };
    T.group = L->n_heads / L->n_kv_heads;
    T.q_per_tile = ST_ATTN_ROWS / T.group;
    T.n_items = (L->n_q + T.q_per_tile - 1) / T.q_per_tile * L->n_kv_heads;
    atomic_init(&T.next, 0);
    st_threadpool_run(pool, tiled_task_fn, &T);
}
