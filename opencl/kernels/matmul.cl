/* The weight products: y[t][r] = dot(W row r, x row t), one work-item per
 * (row, token).
 *
 * The float arithmetic follows the CPU backend's kernels step for step
 * (core/cpu/kernels.h explains the two orders). Quantized rows: in the
 * default numerics the block order of the CPU's repacked 16-row and `dot`
 * kernels (mm_q*, mm8_q*); under STRETCH_NUMERICS=ggml the lane order of
 * its `dot_ggml` (mmg_q*). Float rows: eight lanes, lane j taking elements
 * i = j mod 8 (fused), then the CPU's pairwise tree of the eight lanes.
 * This forward pass rounds activations to int8 per block, so one ulp
 * upstream can flip a later rounding; following the CPU's order makes the
 * device's products bit for bit the CPU's, and with them the greedy
 * continuations.
 *
 * Quantized rows take activations quantized to int8 per 32 elements
 * (st_act_block: float d, s, s16; char q[32]; ACT_BYTES apart, given by the
 * host as -DACT_BYTES=sizeof(st_act_block)); float rows take floats.
 * Weights stay in their GGUF layout, read bytewise: blocks are 18 (Q4_0),
 * 20 (Q4_1) and 34 (Q8_0) bytes, so only their halves are aligned. */
#pragma OPENCL FP_CONTRACT OFF

#ifndef ACT_BYTES
#error "ACT_BYTES (sizeof(st_act_block)) must be given"
#endif

inline float half_at(global const uchar *p)
{
    return vload_half(0, (global const half *)p);
}

inline float act_f(global const uchar *a, int i)
{
    return *(global const float *)(a + 4 * i);
}

/* The CPU's horizontal sum of eight lanes: (0+4, 1+5, 2+6, 3+7), then
 * (a+c, b+d), then their sum. */
inline float hsum8(const float *v)
{
    float s0 = v[0] + v[4], s1 = v[1] + v[5], s2 = v[2] + v[6], s3 = v[3] + v[7];
    return (s0 + s2) + (s1 + s3);
}

/* The same tree on a vector of the eight lanes. */
inline float hsum8v(float8 v)
{
    float4 s = v.lo + v.hi;
    return (s.s0 + s.s2) + (s.s1 + s.s3);
}

/* The per-row kernels hold the eight lanes in one float8, so a CPU device
 * runs them as SIMD within the work-item (PoCL vectorises across
 * work-items poorly here: each reads its own row). Integer lane sums are
 * exact in any order; the float steps are the CPU's, component by
 * component. */

kernel void mm_f32(global const uchar *w, uint row_bytes, uint rows, uint cols,
                   global const float *x, uint ldx, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    global const float *wr = (global const float *)(w + (size_t)r * row_bytes);
    global const float *xt = x + (size_t)t * ldx;
    float8 acc = (float8)(0.0f);
    uint i = 0;
    for (; i + 8 <= cols; i += 8)
        acc = fma(vload8(0, wr + i), vload8(0, xt + i), acc);
    float s = hsum8v(acc);
    for (; i < cols; i++)
        s += wr[i] * xt[i];
    y[(size_t)t * rows + r] = s;
}

kernel void mm_f16(global const uchar *w, uint row_bytes, uint rows, uint cols,
                   global const float *x, uint ldx, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    global const half *wr = (global const half *)(w + (size_t)r * row_bytes);
    global const float *xt = x + (size_t)t * ldx;
    float8 acc = (float8)(0.0f);
    uint i = 0;
    for (; i + 8 <= cols; i += 8)
        acc = fma(vload_half8(0, wr + i), vload8(0, xt + i), acc);
    float s = hsum8v(acc);
    for (; i < cols; i++)
        s += vload_half(i, wr) * xt[i];
    y[(size_t)t * rows + r] = s;
}

/* Lane j of a block: the integer sum of products 4j..4j+3, from the
 * products of elements 0..15 (lo) and 16..31 (hi). */
inline int8 lane_sums(short16 lo, short16 hi)
{
    int4 l = convert_int4(lo.s048c) + convert_int4(lo.s159d) + convert_int4(lo.s26ae) +
             convert_int4(lo.s37bf);
    int4 h = convert_int4(hi.s048c) + convert_int4(hi.s159d) + convert_int4(hi.s26ae) +
             convert_int4(hi.s37bf);
    return (int8)(l, h);
}

/* ---- the block order (the default numerics) ----------------------------
 * Per 32-block: the exact integer sum of its products, acc = fma(isum,
 * d_w * d_x, acc), then the offset term fused into acc (Q4_0: -8 d_w times
 * the activations' s; Q4_1: m_w times s16; Q8_0: none): the float steps of
 * the CPU's repacked 16-row kernels and of its `dot` kernels
 * (core/cpu/kernels.h, gemm16_avx2.c, dot_block.inc), so the products are
 * the CPU backend's bit for bit. kind: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0. */

inline int hsum_int8(int8 v)
{
    int4 s = v.lo + v.hi;
    return (s.s0 + s.s1) + (s.s2 + s.s3);
}

/* The integer sum of one block's 32 products (exact in any order). */
inline int block_isum(global const uchar *wb, global const char *q, int kind)
{
    short16 lo, hi;
    if (kind == 2) {
        global const char *wq = (global const char *)(wb + 2);
        lo = convert_short16(vload16(0, wq)) * convert_short16(vload16(0, q));
        hi = convert_short16(vload16(1, wq)) * convert_short16(vload16(1, q));
    } else {
        uchar16 qs = vload16(0, wb + (kind == 1 ? 4 : 2));
        lo = convert_short16(qs & (uchar16)15) * convert_short16(vload16(0, q));
        hi = convert_short16(qs >> (uchar16)4) * convert_short16(vload16(1, q));
    }
    return hsum_int8(lane_sums(lo, hi));
}

/* One block's float steps on the running sum. */
inline float block_step(float acc, int isum, global const uchar *wb, global const uchar *ab,
                        int kind)
{
    float d = half_at(wb);
    acc = fma((float)isum, d * act_f(ab, 0), acc);
    if (kind == 0)
        acc = fma(d * -8.0f, act_f(ab, 1), acc);
    else if (kind == 1)
        acc = fma(half_at(wb + 2), act_f(ab, 2), acc);
    return acc;
}

inline float mm_block_row(global const uchar *wr, int kind, global const uchar *xt, uint nb)
{
    uint block_bytes = kind == 0 ? 18 : kind == 1 ? 20 : 34;
    float acc = 0.0f;
    for (uint b = 0; b < nb; b++) {
        global const uchar *wb = wr + b * block_bytes, *ab = xt + b * ACT_BYTES;
        acc = block_step(acc, block_isum(wb, (global const char *)(ab + 12), kind), wb, ab, kind);
    }
    return acc;
}

#define MM_BLOCK_KERNEL(name, kind)                                                          \
    kernel void name(global const uchar *w, uint row_bytes, uint rows, uint cols,            \
                     global const uchar *x, uint ldx_blocks, uint nt, global float *y)       \
    {                                                                                        \
        uint r = get_global_id(0), t = get_global_id(1);                                     \
        if (r >= rows || t >= nt)                                                            \
            return;                                                                          \
        y[(size_t)t * rows + r] = mm_block_row(w + (size_t)r * row_bytes, kind,               \
                                               x + (size_t)t * ldx_blocks * ACT_BYTES,       \
                                               cols / 32);                                   \
    }
MM_BLOCK_KERNEL(mm_q4_0, 0)
MM_BLOCK_KERNEL(mm_q4_1, 1)
MM_BLOCK_KERNEL(mm_q8_0, 2)

/* ---- the ggml order (STRETCH_NUMERICS=ggml: the CPU's `dot_ggml`) -------
 * Eight lane accumulators, lane j taking elements 4j..4j+3 of each block,
 * the tree over the lanes, the offset terms summed apart, as ggml's AVX2
 * vec_dot and the CPU's kernels_x86.inc. Per row only. */

/* Q4_0 and Q4_1 share the integer part; Q4_0 subtracts 8 * d * s, Q4_1
 * adds m * s16, each summed over the blocks apart from the lanes. */
inline float mmg_q4(global const uchar *wr, uint block_bytes, uint qs_off, bool has_min,
                   global const uchar *xt, uint nb)
{
    float8 acc = (float8)(0.0f);
    float corr = 0.0f;
    for (uint b = 0; b < nb; b++) {
        global const uchar *wb = wr + b * block_bytes, *ab = xt + b * ACT_BYTES;
        global const char *q = (global const char *)(ab + 12);
        uchar16 qs = vload16(0, wb + qs_off);
        short16 lo = convert_short16(qs & (uchar16)15) * convert_short16(vload16(0, q));
        short16 hi = convert_short16(qs >> (uchar16)4) * convert_short16(vload16(1, q));
        float d = half_at(wb);
        float dd = d * act_f(ab, 0);
        acc = fma(convert_float8(lane_sums(lo, hi)), (float8)(dd), acc);
        if (has_min)
            corr += half_at(wb + 2) * act_f(ab, 2);
        else
            corr += d * act_f(ab, 1);
    }
    return has_min ? hsum8v(acc) + corr : hsum8v(acc) - 8.0f * corr;
}

kernel void mmg_q4_0(global const uchar *w, uint row_bytes, uint rows, uint cols,
                     global const uchar *x, uint ldx_blocks, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    y[(size_t)t * rows + r] = mmg_q4(w + (size_t)r * row_bytes, 18, 2, false,
                                    x + (size_t)t * ldx_blocks * ACT_BYTES, cols / 32);
}

kernel void mmg_q4_1(global const uchar *w, uint row_bytes, uint rows, uint cols,
                     global const uchar *x, uint ldx_blocks, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    y[(size_t)t * rows + r] = mmg_q4(w + (size_t)r * row_bytes, 20, 4, true,
                                    x + (size_t)t * ldx_blocks * ACT_BYTES, cols / 32);
}

kernel void mmg_q8_0(global const uchar *w, uint row_bytes, uint rows, uint cols,
                    global const uchar *x, uint ldx_blocks, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    global const uchar *wr = w + (size_t)r * row_bytes;
    global const uchar *xt = x + (size_t)t * ldx_blocks * ACT_BYTES;
    float8 acc = (float8)(0.0f);
    for (uint b = 0; b < cols / 32; b++) {
        global const uchar *wb = wr + b * 34, *ab = xt + b * ACT_BYTES;
        global const char *wq = (global const char *)(wb + 2);
        global const char *q = (global const char *)(ab + 12);
        short16 lo = convert_short16(vload16(0, wq)) * convert_short16(vload16(0, q));
        short16 hi = convert_short16(vload16(1, wq)) * convert_short16(vload16(1, q));
        acc = fma(convert_float8(lane_sums(lo, hi)), (float8)(half_at(wb) * act_f(ab, 0)), acc);
    }
    y[(size_t)t * rows + r] = hsum8v(acc);
}

/* ---- the lane-parallel variant (GPUs) ---------------------------------
 * The same arithmetic with the eight lanes as eight work-items: work-item
 * (8 r + j, t) accumulates lane j of row r for token t, the group's lane 0
 * sums the eight in the same tree. Eight times the work-items of the
 * variants above for the same bits; chosen where the device is a GPU
 * (a CPU device prefers one work-item per row). Local size: a multiple of
 * 8 that divides 8 * rows (the host picks it). */

#define LANES_MAX_GROUP 256

/* Lane 0 of each row: the tree over the row's eight lanes in local memory. */
inline void lanes_finish(local float *part, uint lid, global float *out)
{
    barrier(CLK_LOCAL_MEM_FENCE);
    if ((lid & 7) == 0) {
        float v[8];
        for (int j = 0; j < 8; j++)
            v[j] = part[lid + j];
        *out = hsum8(v);
    }
}

kernel void mm8_f32(global const uchar *w, uint row_bytes, uint rows, uint cols,
                    global const float *x, uint ldx, uint nt, global float *y)
{
    local float part[LANES_MAX_GROUP];
    uint g = get_global_id(0), t = get_global_id(1), lid = get_local_id(0);
    uint r = g >> 3, j = g & 7;
    global const float *wr = (global const float *)(w + (size_t)r * row_bytes);
    global const float *xt = x + (size_t)t * ldx;
    float acc = 0.0f;
    uint n8 = cols & ~7u;
    for (uint i = 0; i < n8; i += 8)
        acc = fma(wr[i + j], xt[i + j], acc);
    part[lid] = acc;
    lanes_finish(part, lid, y + (size_t)t * rows + r);
    /* The tail after the lanes, in order, added to the tree's result as
     * the CPU adds it. */
    if (j == 0 && n8 < cols) {
        float s = y[(size_t)t * rows + r];
        for (uint i = n8; i < cols; i++)
            s += wr[i] * xt[i];
        y[(size_t)t * rows + r] = s;
    }
}

kernel void mm8_f16(global const uchar *w, uint row_bytes, uint rows, uint cols,
                    global const float *x, uint ldx, uint nt, global float *y)
{
    local float part[LANES_MAX_GROUP];
    uint g = get_global_id(0), t = get_global_id(1), lid = get_local_id(0);
    uint r = g >> 3, j = g & 7;
    global const half *wr = (global const half *)(w + (size_t)r * row_bytes);
    global const float *xt = x + (size_t)t * ldx;
    float acc = 0.0f;
    uint n8 = cols & ~7u;
    for (uint i = 0; i < n8; i += 8)
        acc = fma(vload_half(i + j, wr), xt[i + j], acc);
    part[lid] = acc;
    lanes_finish(part, lid, y + (size_t)t * rows + r);
    if (j == 0 && n8 < cols) {
        float s = y[(size_t)t * rows + r];
        for (uint i = n8; i < cols; i++)
            s += vload_half(i, wr) * xt[i];
        y[(size_t)t * rows + r] = s;
    }
}

/* Quantized rows in the block order: the eight work-items of a row take
 * the integer sums of eight blocks at once (the bulk of the work), then
 * the row's first work-item runs the float steps over them in block order.
 * Local memory is declared in the kernels (OpenCL 1.2 allows it nowhere
 * else) and handed down. */
inline void mm8_block(local int *isum, global const uchar *w, uint row_bytes, int kind,
                      uint rows, uint cols, global const uchar *x, uint ldx_blocks,
                      global float *y)
{
    uint g = get_global_id(0), t = get_global_id(1), lid = get_local_id(0);
    uint r = g >> 3, j = g & 7, nb = cols / 32;
    uint block_bytes = kind == 0 ? 18 : kind == 1 ? 20 : 34;
    global const uchar *wr = w + (size_t)r * row_bytes;
    global const uchar *xt = x + (size_t)t * ldx_blocks * ACT_BYTES;
    float acc = 0.0f;
    for (uint b0 = 0; b0 < nb; b0 += 8) {
        uint b = b0 + j;
        if (b < nb)
            isum[lid] = block_isum(wr + b * block_bytes,
                                   (global const char *)(xt + b * ACT_BYTES + 12), kind);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (j == 0)
            for (uint k = 0; k < 8 && b0 + k < nb; k++)
                acc = block_step(acc, isum[lid + k], wr + (b0 + k) * block_bytes,
                                 xt + (b0 + k) * ACT_BYTES, kind);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (j == 0)
        y[(size_t)t * rows + r] = acc;
}

#define MM8_BLOCK_KERNEL(name, kind)                                                         \
    kernel void name(global const uchar *w, uint row_bytes, uint rows, uint cols,            \
                     global const uchar *x, uint ldx_blocks, uint nt, global float *y)       \
    {                                                                                        \
        local int isum[LANES_MAX_GROUP];                                                     \
        mm8_block(isum, w, row_bytes, kind, rows, cols, x, ldx_blocks, y);                   \
    }
MM8_BLOCK_KERNEL(mm8_q4_0, 0)
MM8_BLOCK_KERNEL(mm8_q4_1, 1)
MM8_BLOCK_KERNEL(mm8_q8_0, 2)
