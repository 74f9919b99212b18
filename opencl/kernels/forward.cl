/* The Llama forward pass's per-token operations on the device, so that a
 * block's activations and the KV cache stay there (opencl/cl_resident.c):
 * the embedding lookup, RMSNorm (with the residual add and the int8
 * activation blocks the weight products take), SwiGLU, RoPE with the
 * cache append, the attention plugin's plan, the rotation tables of
 * re-rotated keys, and the cache's compaction.
 *
 * Each follows the CPU's float operations (core/cpu/ops.c, kv_rows.c,
 * core/compute/forward.c) in the same order where that is cheap (norms,
 * rotations, dot products, quantization, the exponentials: glibc's expf
 * and the CPU kernels' polynomials), and attention follows whichever of
 * the CPU's paths the block takes (gather, tiled prefill, split decode),
 * so with the CPU's AVX2 kernels and head sizes up to 64 the results are
 * its bits (tests/opencl/test_opencl_forward.c states the bounds where
 * they are not: larger heads, where the CPU mixes scalar and vector
 * kernels).
 *
 * Given by the host: ACT_BYTES (sizeof(st_act_block)), HD (the head size,
 * for the private rows), FP16_KV when the fast path reads the f16 cache
 * as half vectors (cl_khr_fp16; same values, fewer loads). */
#pragma OPENCL FP_CONTRACT OFF

#ifdef cl_khr_fp64
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
typedef double angle_t;
#else
/* Without doubles, angles are float: positions in the tens of thousands
 * lose low bits of the angle (the CPU computes them in double). */
typedef float angle_t;
#endif

#ifdef FP16_KV
#pragma OPENCL EXTENSION cl_khr_fp16 : enable
#endif

#ifndef ACT_BYTES
#error "ACT_BYTES (sizeof(st_act_block)) must be given"
#endif
#ifndef HD
#error "HD (the head size) must be given"
#endif

/* Weight types (core/cpu/kernels.h ST_KT_*) and cache types (ST_KV_*). */
#define KT_F32 0
#define KT_F16 1
#define KT_Q4_0 2
#define KT_Q4_1 3
#define KT_Q8_0 4
#define KV_F32 0
#define KV_F16 1
#define KV_Q8_0 2

/* Plan entry fields, ENT_WORDS ints per entry (cl_resident.c packs them). */
#define ENT_WORDS 10
#define E_HEAD 0
#define E_KBEGIN 1
#define E_KEND 2
#define E_MIN 3
#define E_MAX 4
#define E_MODE 5
#define E_FIXED 6
#define E_INDICES 7
#define E_IDXOFF 8
#define E_NIDX 9
#define ALL_HEADS 0xffffffffu
#define POS_TRUE 0
#define POS_FIXED 1
#define POS_SLOT 2

/* f rounded to the nearest half (st_cpu_round_half); a half variable
 * needs cl_khr_fp16, a pointer to one does not. */
inline float round_half(float f)
{
    ushort h;
    vstore_half_rte(f, 0, (half *)&h);
    return vload_half(0, (const half *)&h);
}

/* ---- embedding -------------------------------------------------------- */

/* x[t][i] = token_embd[tok[t]][i], dequantized as st_cpu_dequant_row. */
kernel void embed(global const uchar *w, uint type, uint row_bytes, uint E,
                  global const int *tok, global float *x)
{
    uint i = get_global_id(0), t = get_global_id(1);
    if (i >= E)
        return;
    global const uchar *row = w + (size_t)tok[t] * row_bytes;
    uint b = i / 32, j = i % 32;
    float v;
    if (type == KT_F32) {
        v = ((global const float *)row)[i];
    } else if (type == KT_F16) {
        v = vload_half(i, (global const half *)row);
    } else if (type == KT_Q4_0) {
        global const uchar *blk = row + b * 18;
        float d = vload_half(0, (global const half *)blk);
        uchar q = blk[2 + (j & 15)];
        v = (float)((int)(j < 16 ? q & 15 : q >> 4) - 8) * d;
    } else if (type == KT_Q4_1) {
        global const uchar *blk = row + b * 20;
        float d = vload_half(0, (global const half *)blk);
        float m = vload_half(1, (global const half *)blk);
        uchar q = blk[4 + (j & 15)];
        v = (float)(j < 16 ? q & 15 : q >> 4) * d + m;
    } else {
        global const uchar *blk = row + b * 34;
        float d = vload_half(0, (global const half *)blk);
        v = (float)((global const char *)blk)[2 + j] * d;
    }
    x[(size_t)t * E + i] = v;
}

/* ---- int8 activation blocks ------------------------------------------- */

/* One 32-block of x in int8 as st_quantize_act_row (core/cpu/
 * kernels_scalar.c) makes it: q, and the scale d before it is rounded to
 * a half. A block holding an infinity or a NaN gets q = 0 and d NaN, as
 * st_act_block_non_finite, and false. */
inline bool quant32(const float *x, char *q, float *d)
{
    float amax = 0.0f;
    bool finite = true;
    for (int i = 0; i < 32; i++) {
        float a = fabs(x[i]);
        amax = a > amax ? a : amax;
        finite = finite && isfinite(a);
    }
    if (!finite) {
        for (int i = 0; i < 32; i++)
            q[i] = 0;
        *d = NAN;
        return false;
    }
    *d = amax / 127.0f;
    /* st_act_block_multiplier: 0 where 127 / amax is infinite. */
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    id = isinf(id) ? 0.0f : id;
    for (int i = 0; i < 32; i++)
        q[i] = (char)(int)rint(x[i] * id);
    return true;
}

/* st_quantize_act_row for one 32-block into an st_act_block. */
inline void quant_block(global const float *x, global uchar *out)
{
    float xb[32], d;
    char qb[32];
    for (int i = 0; i < 32; i++)
        xb[i] = x[i];
    global float *f = (global float *)out;
    global char *q = (global char *)(out + 12);
    bool finite = quant32(xb, qb, &d);
    int sum = 0;
    for (int i = 0; i < 32; i++) {
        q[i] = qb[i];
        sum += qb[i];
    }
    if (!finite) {
        f[0] = f[1] = f[2] = NAN;
        return;
    }
    float dh = round_half(d);
    f[0] = dh;
    f[1] = dh * (float)sum;
    f[2] = round_half(d * (float)sum);
}

/* xq[t][b] = int8 blocks of x[t][b*32 ..], n floats a row. */
kernel void quantize(global const float *x, uint n, global uchar *xq)
{
    uint b = get_global_id(0), t = get_global_id(1);
    if (b >= n / 32)
        return;
    quant_block(x + (size_t)t * n + b * 32, xq + ((size_t)t * (n / 32) + b) * ACT_BYTES);
}

/* ---- RMSNorm ---------------------------------------------------------- */

/* Row t = t0 + id: [x += tmp;] xn = x / rms(x) * w; xq = int8(xn). One
 * work-item a row, summing in the CPU's order (st_op_rmsnorm). */
kernel void rmsnorm(global float *x, global const float *tmp, global const float *w,
                    global float *xn, global uchar *xq, uint E, float eps, uint residual,
                    uint t0)
{
    uint t = t0 + get_global_id(0);
    global float *xr = x + (size_t)t * E;
    global float *o = xn + (size_t)t * E;
    if (residual) {
        global const float *r = tmp + (size_t)t * E;
        for (uint i = 0; i < E; i++)
            xr[i] = xr[i] + r[i];
    }
    float lane[16];
    for (uint j = 0; j < 16; j++)
        lane[j] = 0.0f;
    for (uint i = 0; i < E; i++)
        lane[i % 16] += xr[i] * xr[i];
    for (uint width = 8; width; width /= 2)
        for (uint j = 0; j < width; j++)
            lane[j] += lane[j + width];
    float rs = 1.0f / sqrt(lane[0] / (float)E + eps);
    for (uint i = 0; i < E; i++)
        o[i] = xr[i] * rs * w[i];
    for (uint b = 0; b < E / 32; b++)
        quant_block(o + b * 32, xq + ((size_t)t * (E / 32) + b) * ACT_BYTES);
}

/* ---- the CPU's exponentials ------------------------------------------- */

/* expf of glibc 2.28 and later as the x86-64 machines with FMA run it
 * (sysdeps/ieee754/flt-32/e_expf.c, its FMA build): x * 32 / ln 2 = k + r
 * in double, 2^(k/32) from a table, a cubic in r, rounded to float once.
 * gcc fuses two of its steps there (kd = fma(InvLn2N, x, shift), r =
 * fma(InvLn2N, x, -kd)) and three of the cubic's; these are those steps.
 * The CPU's split decode (core/compute/attn_tiled.c) calls expf for each
 * chunk's rescale, for the merge of the chunks, and for every score off
 * its fused f16 kernel, so this gives its bits where it runs glibc (within
 * 0.502 ulp of e^x elsewhere). Without doubles: OpenCL's exp (3 ulp). */
#ifdef cl_khr_fp64
/* The bits of 2^(i/32) rounded to a double, less i << 47. */
constant ulong EXP2F_TAB[32] = {
    0x3ff0000000000000UL, 0x3fefd9b0d3158574UL, 0x3fefb5586cf9890fUL, 0x3fef9301d0125b51UL,
    0x3fef72b83c7d517bUL, 0x3fef54873168b9aaUL, 0x3fef387a6e756238UL, 0x3fef1e9df51fdee1UL,
    0x3fef06fe0a31b715UL, 0x3feef1a7373aa9cbUL, 0x3feedea64c123422UL, 0x3feece086061892dUL,
    0x3feebfdad5362a27UL, 0x3feeb42b569d4f82UL, 0x3feeab07dd485429UL, 0x3feea47eb03a5585UL,
    0x3feea09e667f3bcdUL, 0x3fee9f75e8ec5f74UL, 0x3feea11473eb0187UL, 0x3feea589994cce13UL,
    0x3feeace5422aa0dbUL, 0x3feeb737b0cdc5e5UL, 0x3feec49182a3f090UL, 0x3feed503b23e255dUL,
    0x3feee89f995ad3adUL, 0x3feeff76f2fb5e47UL, 0x3fef199bdd85529cUL, 0x3fef3720dcef9069UL,
    0x3fef5818dcfba487UL, 0x3fef7c97337b9b5fUL, 0x3fefa4afa2a490daUL, 0x3fefd0765b6e4540UL,
};

inline float cpu_expf(float x)
{
    uint ix = as_uint(x), abstop = (ix >> 20) & 0x7ff;
    if (abstop >= 0x42a) { /* |x| >= 88, an infinity or a NaN */
        if (ix == 0xff800000u)
            return 0.0f;
        if (abstop >= 0x7f8)
            return x + x;
        if (x > 0x1.62e42ep6f)
            return INFINITY;
        if (x < -0x1.9fe368p6f)
            return 0.0f;
        if (x < -0x1.9d1d9ep6f)
            return 0x1p-149f;
    }
    double xd = (double)x;
    double z = fma(0x1.71547652b82fep+5, xd, 0x1.8p+52);
    ulong ki = as_ulong(z);
    double kd = z - 0x1.8p+52;
    double r = fma(0x1.71547652b82fep+5, xd, -kd);
    double sc = as_double(EXP2F_TAB[ki % 32] + (ki << 47));
    double p = fma(r, 0x1.c6af84b912394p-20, 0x1.ebfce50fac4f3p-13);
    double r2 = r * r;
    double y = fma(r, 0x1.62e42ff0c52d6p-6, 1.0);
    y = fma(p, r2, y);
    return (float)(y * sc);
}
#else
inline float cpu_expf(float x)
{
    return exp(x);
}
#endif

/* exp8_neg of the CPU's fused decode (core/cpu/attn_decode_x86.inc) on one
 * lane: Cephes' expf polynomial for x <= 0, x clamped at -88 (0 below). */
inline float exp_dec(float x)
{
    x = -88.0f > x ? -88.0f : x; /* _mm256_max_ps(-88, x): a NaN stays */
    float n = rint(x * 1.44269504088896341f);
    float r = fma(-n, 0.693359375f, x);
    r = fma(-n, -2.12194440e-4f, r);
    float y = 1.9875691500e-4f;
    y = fma(y, r, 1.3981999507e-3f);
    y = fma(y, r, 8.3334519073e-3f);
    y = fma(y, r, 4.1665795894e-2f);
    y = fma(y, r, 1.6666665459e-1f);
    y = fma(y, r, 5.0000001201e-1f);
    y = fma(y, r * r, r + 1.0f);
    return y * as_float(((int)n + 127) << 23);
}

/* ---- SwiGLU ----------------------------------------------------------- */

/* g = silu(g) * u as the x86 kernels' silu_mul (core/cpu/kernels_x86.inc)
 * does it on one lane: e = e^-|g| through exp_dec, the sigmoid 1 / (1 + e)
 * for g >= 0 and e / (1 + e) below. */
kernel void swiglu(global float *g, global const float *u, uint F)
{
    uint i = get_global_id(0), t = get_global_id(1);
    if (i >= F)
        return;
    size_t o = (size_t)t * F + i;
    float a = g[o];
    float e = exp_dec(-fabs(a));
    float sig = (signbit(a) ? e : 1.0f) / (1.0f + e);
    g[o] = a * sig * u[o];
}

/* ---- the KV cache ----------------------------------------------------- */

/* Element i of a cache row. */
inline float kv_load(global const uchar *row, uint type, uint i)
{
    if (type == KV_F32)
        return ((global const float *)row)[i];
    if (type == KV_F16)
        return vload_half(i, (global const half *)row);
    global const uchar *blk = row + (i / 32) * 34;
    return (float)((global const char *)blk)[2 + i % 32] * vload_half(0, (global const half *)blk);
}

/* st_kv_store_row: f32 as is, f16 rounded to nearest even, q8_0 as
 * ggml's quantize_row_q8_0_ref (d = amax / 127, q = round(x / d)). */
inline void kv_store(const float *x, global uchar *row, uint type, uint n)
{
    if (type == KV_F32) {
        for (uint i = 0; i < n; i++)
            ((global float *)row)[i] = x[i];
        return;
    }
    if (type == KV_F16) {
        for (uint i = 0; i < n; i++)
            vstore_half_rte(x[i], i, (global half *)row);
        return;
    }
    for (uint b = 0; b < n / 32; b++) {
        global uchar *blk = row + b * 34;
        const float *xb = x + b * 32;
        float amax = 0.0f;
        bool finite = true;
        for (int i = 0; i < 32; i++) {
            amax = fabs(xb[i]) > amax ? fabs(xb[i]) : amax;
            finite = finite && isfinite(xb[i]);
        }
        /* As st_kv_store_row: a non-finite block is a NaN scale and zeros;
         * a scale under 1 / FLT_MAX (0 as a half) takes multiplier 0. */
        float d = finite ? amax / 127.0f : NAN;
        float id = finite && d != 0.0f ? 1.0f / d : 0.0f;
        id = isinf(id) ? 0.0f : id;
        vstore_half_rte(d, 0, (global half *)blk);
        for (int i = 0; i < 32; i++)
            ((global char *)blk)[2 + i] = finite ? (char)round(xb[i] * id) : 0;
    }
}

/* Rotate adjacent pairs by a table row (st_op_rope); dims past 2 * nf
 * are copied. */
inline void rope_row(float *out, const float *x, global const float *cs,
                     global const float *sn, uint nf, uint hd)
{
    for (uint i = 0; i < nf; i++) {
        float x0 = x[2 * i], x1 = x[2 * i + 1];
        out[2 * i] = x0 * cs[i] - x1 * sn[i];
        out[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
    }
    for (uint i = 2 * nf; i < hd; i++)
        out[i] = x[i];
}

/* The same with a table in private memory. */
inline void rope_row_p(float *out, const float *x, const float *cs, const float *sn, uint nf,
                       uint hd)
{
    for (uint i = 0; i < nf; i++) {
        float x0 = x[2 * i], x1 = x[2 * i + 1];
        out[2 * i] = x0 * cs[i] - x1 * sn[i];
        out[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
    }
    for (uint i = 2 * nf; i < hd; i++)
        out[i] = x[i];
}

/* cos/sin of pos * inv_freq[i], times scale (st_op_rope_table). */
inline void rope_table(float *cs, float *sn, angle_t pos, global const float *inv_freq,
                       uint nf, float scale)
{
    for (uint i = 0; i < nf; i++) {
        angle_t a = pos * (angle_t)inv_freq[i];
        cs[i] = (float)cos(a) * scale;
        sn[i] = (float)sin(a) * scale;
    }
}

/* Work-item (h, t): h < n_heads rotates query head h into qr; the rest
 * rotate kv head h - n_heads in k (in place) and append it and its value
 * to the cache at slot slot0 + t. Tables qcs/qsn: [t][nf]. */
kernel void rope_store(global const float *q, global float *qr, global float *k,
                       global const float *v, global uchar *kc, global uchar *vc, uint kv_type,
                       uint row_bytes, uint cap, global const float *qcs,
                       global const float *qsn, uint nf, uint n_heads, uint n_kv_heads,
                       uint slot0)
{
    uint h = get_global_id(0), t = get_global_id(1);
    if (h >= n_heads + n_kv_heads)
        return;
    global const float *cs = qcs + (size_t)t * nf, *sn = qsn + (size_t)t * nf;
    float in[HD], out[HD];
    if (h < n_heads) {
        size_t o = ((size_t)t * n_heads + h) * HD;
        for (uint i = 0; i < HD; i++)
            in[i] = q[o + i];
        rope_row(out, in, cs, sn, nf, HD);
        for (uint i = 0; i < HD; i++)
            qr[o + i] = out[i];
        return;
    }
    uint g = h - n_heads;
    size_t o = ((size_t)t * n_kv_heads + g) * HD;
    for (uint i = 0; i < HD; i++)
        in[i] = k[o + i];
    rope_row(out, in, cs, sn, nf, HD);
    for (uint i = 0; i < HD; i++)
        k[o + i] = out[i];
    size_t at = ((size_t)g * cap + slot0 + t) * row_bytes;
    kv_store(out, kc + at, kv_type, HD);
    for (uint i = 0; i < HD; i++)
        in[i] = v[o + i];
    kv_store(in, vc + at, kv_type, HD);
}

/* Per slot j < n: the rows that turn the cache's key (rotated at
 * rot_pos[j], scale s) into the key at its slot (sd: angle j - rot_pos,
 * scale 1) and into the unrotated key (un: angle -rot_pos, scale 1/s), as
 * forward.c's step tables. */
kernel void slot_tables(global const int *rot_pos, global const float *inv_freq, uint nf,
                        float inv_scale, uint n, global float *sd_cs, global float *sd_sn,
                        global float *un_cs, global float *un_sn)
{
    uint j = get_global_id(0);
    if (j >= n)
        return;
    float cs[HD / 2], sn[HD / 2];
    rope_table(cs, sn, (angle_t)j - (angle_t)rot_pos[j], inv_freq, nf, 1.0f);
    for (uint i = 0; i < nf; i++) {
        sd_cs[(size_t)j * nf + i] = cs[i];
        sd_sn[(size_t)j * nf + i] = sn[i];
    }
    rope_table(cs, sn, -(angle_t)rot_pos[j], inv_freq, nf, inv_scale);
    for (uint i = 0; i < nf; i++) {
        un_cs[(size_t)j * nf + i] = cs[i];
        un_sn[(size_t)j * nf + i] = sn[i];
    }
}

/* Keep the slots keep[0..n_keep) (ascending) of every kv head, in order,
 * copying from src into dst (the host swaps the buffers after). */
kernel void kv_gather(global const uchar *src, global uchar *dst, global const uint *keep,
                      uint n_keep, uint cap, uint row_bytes)
{
    uint j = get_global_id(0), g = get_global_id(1);
    if (j >= n_keep)
        return;
    global const uchar *s = src + ((size_t)g * cap + keep[j]) * row_bytes;
    global uchar *d = dst + ((size_t)g * cap + j) * row_bytes;
    for (uint i = 0; i < row_bytes; i++)
        d[i] = s[i];
}

/* ---- attention over the plan ------------------------------------------ */

/* The query as plan entry E reads it, into qv (qraw: the query head
 * unrotated; qr + qo: rotated), and the tables that turn the entry's keys
 * (key_row) into *tcs, *tsn: ST_POS_TRUE the rotated query; ST_POS_FIXED
 * R(fixed_dist) q against unrotated keys (the scale enters twice, as when
 * both sides are rotated); ST_POS_SLOT R(slot) q against keys at their
 * slot. attend, attend_split and attend_tile all read their queries here. */
inline void entry_query(float *qv, const float *qraw, global const float *qr, size_t qo,
                        global const int *E, uint slot, global const float *inv_freq, uint nf,
                        float rot_scale, float fixed_scale, global const float *sd_cs,
                        global const float *sd_sn, global const float *un_cs,
                        global const float *un_sn, global const float **tcs,
                        global const float **tsn)
{
    float cs[HD / 2], sn[HD / 2];
    int mode = E[E_MODE];
    *tcs = mode == POS_FIXED ? un_cs : sd_cs;
    *tsn = mode == POS_FIXED ? un_sn : sd_sn;
    if (mode == POS_TRUE) {
        for (uint i = 0; i < HD; i++)
            qv[i] = qr[qo + i];
        return;
    }
    if (mode == POS_FIXED)
        rope_table(cs, sn, (angle_t)E[E_FIXED], inv_freq, nf, fixed_scale);
    else
        rope_table(cs, sn, (angle_t)slot, inv_freq, nf, rot_scale);
    rope_row_p(qv, qraw, cs, sn, nf, HD);
}

/* Key row j of kv head g as floats: the cache's (ST_POS_TRUE), or turned
 * by table row j (ST_POS_FIXED: unrotated; ST_POS_SLOT: at its slot). */
inline void key_row(float *kr, global const uchar *kc, uint kv_type, uint row_bytes, uint cap,
                    uint g, uint j, int mode, global const float *cs, global const float *sn,
                    uint nf)
{
    global const uchar *row = kc + ((size_t)g * cap + j) * row_bytes;
    if (mode == POS_TRUE) {
#ifdef FP16_KV
        if (kv_type == KV_F16) {
            for (uint i = 0; i < HD; i += 8) {
                float8 v = convert_float8(vload8(0, (global const half *)row + i));
                vstore8(v, 0, kr + i);
            }
            return;
        }
#endif
        for (uint i = 0; i < HD; i++)
            kr[i] = kv_load(row, kv_type, i);
        return;
    }
    float tmp[HD];
    for (uint i = 0; i < HD; i++)
        tmp[i] = kv_load(row, kv_type, i);
    rope_row(kr, tmp, cs + (size_t)j * nf, sn + (size_t)j * nf, nf, HD);
}

/* dot(q, k) in the CPU scalar kernel's order (kv_rows.c dot_row): f32 and
 * f16 rows one sum; q8_0 rows a sum per block times its scale. */
inline float score_dot(const float *qv, const float *kr, global const uchar *row, uint type,
                       int mode)
{
    float acc = 0.0f;
    if (type == KV_Q8_0 && mode == POS_TRUE) {
        for (uint b = 0; b < HD / 32; b++) {
            global const uchar *blk = row + b * 34;
            float s = 0.0f;
            for (int i = 0; i < 32; i++)
                s += qv[b * 32 + i] * (float)((global const char *)blk)[2 + i];
            acc += s * vload_half(0, (global const half *)blk);
        }
        return acc;
    }
    for (uint i = 0; i < HD; i++)
        acc += qv[i] * kr[i];
    return acc;
}

/* ---- decode in the CPU's split order ----------------------------------
 *
 * One query whose layer the CPU backend runs on its tiled path splits the
 * visible keys into chunks (core/compute/attn_tiled.c: split_keys,
 * run_chunk, merge_chunks) and scores them with its AVX2 kernels
 * (core/cpu/kernels_x86.inc). This forward pass rounds activations to
 * int8, so one ulp of difference can change a greedy continuation; these
 * two kernels follow that path's float operations step for step (head
 * sizes up to 64, a multiple of 8: the CPU's vector kernels), so decode
 * on the device gives the CPU's bits. */

/* The CPU's horizontal sum of eight lanes (as matmul.cl). */
inline float hsum8p(const float *v)
{
    float s0 = v[0] + v[4], s1 = v[1] + v[5], s2 = v[2] + v[6], s3 = v[3] + v[7];
    return (s0 + s2) + (s1 + s3);
}

/* scale * dot(q, k): scores_nv / scores16_nv (float keys: two 8-lane
 * accumulators taking alternate 8-blocks, fused), scores_q8_0 (per block
 * two products, two fused, times the scale fused). */
inline float score_x86(const float *qv, const float *kr, global const uchar *row, uint type,
                       int mode, float scale)
{
    float acc[8];
    if (type == KV_Q8_0 && mode == POS_TRUE) {
        for (int l = 0; l < 8; l++)
            acc[l] = 0.0f;
        for (uint b = 0; b < HD / 32; b++) {
            global const uchar *blk = row + b * 34;
            global const char *k = (global const char *)blk + 2;
            float d = vload_half(0, (global const half *)blk);
            const float *qb = qv + 32 * b;
            for (int l = 0; l < 8; l++) {
                float s0 = qb[l] * (float)k[l];
                float s1 = qb[8 + l] * (float)k[8 + l];
                s0 = fma(qb[16 + l], (float)k[16 + l], s0);
                s1 = fma(qb[24 + l], (float)k[24 + l], s1);
                acc[l] = fma(d, s0 + s1, acc[l]);
            }
        }
        return scale * hsum8p(acc);
    }
    float a0[8], a1[8];
    for (int l = 0; l < 8; l++)
        a0[l] = a1[l] = 0.0f;
    for (uint j = 0; j < HD / 8; j++)
        for (int l = 0; l < 8; l++) {
            if (j & 1)
                a1[l] = fma(qv[8 * j + l], kr[8 * j + l], a1[l]);
            else
                a0[l] = fma(qv[8 * j + l], kr[8 * j + l], a0[l]);
        }
    for (int l = 0; l < 8; l++)
        acc[l] = a0[l] + a1[l];
    return scale * hsum8p(acc);
}

/* tmp[d] += p * v[d], fused (wsum_nv / wsum16_nv; q8_0: p times the
 * block's scale first, wsum8_nb). */
inline void wsum_x86(float *tmp, float p, global const uchar *row, uint type)
{
    if (type == KV_Q8_0) {
        for (uint b = 0; b < HD / 32; b++) {
            global const uchar *blk = row + b * 34;
            float pd = p * vload_half(0, (global const half *)blk);
            for (int i = 0; i < 32; i++)
                tmp[32 * b + i] =
                    fma(pd, (float)((global const char *)blk)[2 + i], tmp[32 * b + i]);
        }
        return;
    }
    for (uint i = 0; i < HD; i++)
        tmp[i] = fma(p, kv_load(row, type, i), tmp[i]);
}

inline uint lower_bound(global const int *pos, uint lo, uint hi, long p)
{
    while (lo < hi) {
        uint mid = lo + (hi - lo) / 2;
        if ((long)pos[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

#define SPLIT_SUB 256

/* ---- the CPU's gather path ---------------------------------------------
 *
 * Blocks the CPU does not tile (2 to 7 queries, index lists, per-head
 * ranges; core/compute/forward.c attend) gather each query head's visible
 * keys in plan order, score them (scores_kv: the per-row kernels of
 * score_x86 for head sizes up to 64, a multiple of 8, else the scalar
 * dot), add the ALiBi bias, take st_op_softmax (the maximum, expf of each
 * score less it summed in key order, times 1 / sum) and add the weighted
 * value rows in key order (wsum_kv, fused). `attend` takes the same steps
 * in three passes over the keys, scoring them again in each (the same
 * operations give the same bits) rather than keeping a row of scores. */

/* Score of key j as the CPU's gather path computes it. */
inline float gather_score(const float *qv, float *kr, global const uchar *kc, uint kv_type,
                          uint row_bytes, uint cap, uint g, uint j, int mode,
                          global const float *tcs, global const float *tsn, uint nf,
                          float scale, global const float *slopes, uint has_slopes, uint h,
                          global const int *rot_pos, uint qs)
{
    global const uchar *row = kc + ((size_t)g * cap + j) * row_bytes;
    key_row(kr, kc, kv_type, row_bytes, cap, g, j, mode, tcs, tsn, nf);
#if HD <= 64 && HD % 8 == 0
    float s = score_x86(qv, kr, row, kv_type, mode, scale);
#else
    float s = kv_type == KV_Q8_0 && mode == POS_TRUE ? score_x86(qv, kr, row, kv_type, mode, scale)
                                                      : scale * score_dot(qv, kr, row, kv_type,
                                                                          mode);
#endif
    if (has_slopes) {
#ifdef cl_khr_fp64
        s += (float)(-(double)slopes[h] * ((double)rot_pos[qs] - (double)rot_pos[j]));
#else
        s += -slopes[h] * ((float)rot_pos[qs] - (float)rot_pos[j]);
#endif
    }
    return s;
}

/* Query t, head h: the plan's visible keys (ranges and index lists, head
 * filter, min/max distance, each position mode), in the gather path's
 * order. GQA: kv head h / (n_heads / n_kv_heads). */
kernel void attend(global const float *q, global const float *qr, global float *att,
                   global const uchar *kc, global const uchar *vc, uint kv_type,
                   uint row_bytes, uint cap, global const int *pos, global const int *rot_pos,
                   global const int *ents, uint n_ents, global const uint *idx,
                   global const float *inv_freq, uint nf, float rot_scale, float fixed_scale,
                   float scale, global const float *slopes, uint has_slopes,
                   global const float *sd_cs, global const float *sd_sn,
                   global const float *un_cs, global const float *un_sn, uint slot0,
                   uint n_heads, uint n_kv_heads)
{
    uint h = get_global_id(0), t = get_global_id(1);
    if (h >= n_heads)
        return;
    uint g = h / (n_heads / n_kv_heads);
    uint qs = slot0 + t;
    int pq = pos[qs];
    size_t qo = ((size_t)t * n_heads + h) * HD;
    float qraw[HD], qv[HD], kr[HD], acc[HD];
    for (uint i = 0; i < HD; i++) {
        qraw[i] = q[qo + i];
        acc[i] = 0.0f;
    }
    /* Pass 0: the maximum; 1: the sum of the exponentials; 2: the values. */
    float mx = -INFINITY, sum = 0.0f, inv = 0.0f;
    uint nv = 0;
    for (int pass = 0; pass < 3; pass++) {
        for (uint e = 0; e < n_ents; e++) {
            global const int *E = ents + e * ENT_WORDS;
            if ((uint)E[E_HEAD] != ALL_HEADS && (uint)E[E_HEAD] != h)
                continue;
            int mode = E[E_MODE];
            global const float *tcs, *tsn;
            entry_query(qv, qraw, qr, qo, E, qs, inv_freq, nf, rot_scale, fixed_scale, sd_cs,
                        sd_sn, un_cs, un_sn, &tcs, &tsn);
            bool list = E[E_INDICES] != 0;
            uint cnt = list ? (uint)E[E_NIDX] : (uint)(E[E_KEND] - E[E_KBEGIN]);
            for (uint c = 0; c < cnt; c++) {
                uint j = list ? idx[E[E_IDXOFF] + c] : (uint)E[E_KBEGIN] + c;
                long d = (long)pq - (long)pos[j];
                if (d < (long)E[E_MIN] || d > (long)E[E_MAX])
                    continue;
                float s = gather_score(qv, kr, kc, kv_type, row_bytes, cap, g, j, mode, tcs,
                                       tsn, nf, scale, slopes, has_slopes, h, rot_pos, qs);
                if (pass == 0) {
                    mx = nv++ == 0 || s > mx ? s : mx;
                } else if (pass == 1) {
                    sum += cpu_expf(s - mx);
                } else {
                    float p = cpu_expf(s - mx) * inv;
                    global const uchar *vrow = vc + ((size_t)g * cap + j) * row_bytes;
#if HD % 8 == 0
                    wsum_x86(acc, p, vrow, kv_type);
#else
                    for (uint i = 0; i < HD; i++)
                        acc[i] += p * kv_load(vrow, kv_type, i);
#endif
                }
            }
        }
        if (pass == 0 && (nv == 0 || mx == -INFINITY))
            break; /* nothing visible: zeros, as the CPU's */
        if (pass == 1)
            inv = 1.0f / sum;
    }
    for (uint i = 0; i < HD; i++)
        att[qo + i] = acc[i];
}

/* q . k as the CPU's fused decode scores a key (dec_scores_nk): one
 * 8-lane accumulator over the whole row, then the horizontal-add tree
 * that reduces four keys together, which for one key's lanes is
 * ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)). */
inline float score_fused(const float *qs, const float *kr)
{
    float a[8];
    for (int l = 0; l < 8; l++)
        a[l] = 0.0f;
    for (uint j = 0; j < HD / 8; j++)
        for (int l = 0; l < 8; l++)
            a[l] = fma(qs[8 * j + l], kr[8 * j + l], a[l]);
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* A query row in int8 blocks as the CPU's fused decode quantizes it for
 * a Q8_0 cache (st_quantize_act_row): qq and each block's scale qd,
 * rounded to a half (a non-finite block: q = 0, its NaN scale). */
inline void quant_query(const float *qv, char *qq, float *qd)
{
    for (uint b = 0; b < HD / 32; b++) {
        float d;
        quant32(qv + 32 * b, qq + 32 * b, &d);
        qd[b] = round_half(d);
    }
}

/* q . k for a Q8_0 key as the CPU's fused decode scores it
 * (dec_scores_q8_nk): each block's exact integer dot product of the
 * query's and the key's int8, times dk x dq, added by one fma in block
 * order. */
inline float score_fused_q8(const char *qq, const float *qd, global const uchar *row)
{
    float acc = 0.0f;
    for (uint b = 0; b < HD / 32; b++) {
        global const uchar *blk = row + b * 34;
        int isum = 0;
        for (int i = 0; i < 32; i++)
            isum += (int)qq[32 * b + i] * (int)((global const char *)blk)[2 + i];
        acc = fma((float)isum, vload_half(0, (global const half *)blk) * qd[b], acc);
    }
    return acc;
}

/* Keys [x0, x0 + n) of kv head g for one query head in the CPU's fused
 * decode (attn_decode_f16 and attn_decode_q8_0, core/cpu/
 * attn_decode_x86.inc): scores of the query scaled first (f16:
 * score_fused; Q8_0: score_fused_q8 on the query's int8 blocks qq, qd);
 * the block's maximum; exp_dec of each score less it, summed in 8 lanes;
 * the old state rescaled by expf of the old maximum less the new; each
 * value row added in key order, fused, into the rescaled output (a Q8_0
 * value is read as kv_load reads it, d x q, exact in float, as the CPU's
 * kernel reads it). */
inline void split_fused(const float *qs, const char *qq, const float *qd, float *s, float *m,
                        float *l, float *o, global const uchar *kc, global const uchar *vc,
                        uint kv_type, uint row_bytes, uint cap, uint g, uint x0, uint n)
{
    float kr[HD], lane[8];
    for (uint i = 0; i < n; i++) {
        if (kv_type == KV_Q8_0) {
            s[i] = score_fused_q8(qq, qd, kc + ((size_t)g * cap + x0 + i) * row_bytes);
            continue;
        }
        key_row(kr, kc, kv_type, row_bytes, cap, g, x0 + i, POS_TRUE, 0, 0, 0);
        s[i] = score_fused(qs, kr);
    }
    float mx = *m;
    for (uint i = 0; i < n; i++)
        mx = s[i] > mx ? s[i] : mx;
    for (int r = 0; r < 8; r++)
        lane[r] = 0.0f;
    for (uint i = 0; i < n; i++) {
        s[i] = exp_dec(s[i] - mx);
        lane[i % 8] = lane[i % 8] + s[i];
    }
    float alpha = *m == -INFINITY ? 0.0f : cpu_expf(*m - mx);
    *m = mx;
    *l = *l * alpha + hsum8p(lane);
    for (uint d = 0; d < HD; d++) {
        float od = o[d] * alpha;
        for (uint i = 0; i < n; i++)
            od = fma(s[i], kv_load(vc + ((size_t)g * cap + x0 + i) * row_bytes, kv_type, d), od);
        o[d] = od;
    }
}

/* Work-item (g, c): chunk c (keys [c * chunk, (c + 1) * chunk) of the
 * visible keys, in range order) of kv head g, for each of its query heads:
 * the softmax state m, l and the unnormalised output into part
 * [g][c][m: group | l: group | out: group x HD]. Every entry is a range
 * for all heads (the CPU's tiled path takes no other plan). `fused`: the
 * CPU scores ST_POS_TRUE ranges with its fused f16 / Q8_0 kernel (split_fused),
 * the rest with its per-row kernels (score_x86, wsum_x86) and expf. */
kernel void attend_split(global const float *q, global const float *qr, global float *part,
                         global const uchar *kc, global const uchar *vc, uint kv_type,
                         uint row_bytes, uint cap, global const int *pos,
                         global const int *ents, uint n_ents, global const float *inv_freq,
                         uint nf, float rot_scale, float fixed_scale, float scale,
                         global const float *slopes, uint has_slopes,
                         global const float *sd_cs, global const float *sd_sn,
                         global const float *un_cs, global const float *un_sn, uint slot0,
                         uint n_heads, uint n_kv_heads, uint chunk, uint n_chunks, uint fused)
{
    uint g = get_global_id(0), c = get_global_id(1);
    if (g >= n_kv_heads || c >= n_chunks)
        return;
    uint group = n_heads / n_kv_heads;
    int pq = pos[slot0];
    float qraw[HD], qv[HD], kr[HD], o[HD], tmp[HD], s[SPLIT_SUB], qd[HD / 32];
    char qq[HD];
    global float *p = part + ((size_t)g * n_chunks + c) * (HD + 2) * group;
    for (uint hh = 0; hh < group; hh++) {
        uint h = g * group + hh;
        size_t qo = (size_t)h * HD;
        for (uint i = 0; i < HD; i++) {
            qraw[i] = q[qo + i];
            o[i] = 0.0f;
        }
        float m = -INFINITY, l = 0.0f;
        ulong c_lo = (ulong)c * chunk, c_hi = c_lo + chunk, seen = 0;
        for (uint e = 0; e < n_ents && seen < c_hi; e++) {
            global const int *E = ents + e * ENT_WORDS;
            uint lo = lower_bound(pos, (uint)E[E_KBEGIN], (uint)E[E_KEND],
                                  (long)pq - (long)E[E_MAX]);
            uint hi = lower_bound(pos, lo, (uint)E[E_KEND], (long)pq - (long)E[E_MIN] + 1);
            if (lo >= hi)
                continue;
            ulong a = c_lo > seen ? c_lo - seen : 0;
            ulong z = c_hi - seen < (ulong)(hi - lo) ? c_hi - seen : (ulong)(hi - lo);
            seen += hi - lo;
            if (a >= z)
                continue;
            int mode = E[E_MODE];
            global const float *tcs, *tsn;
            entry_query(qv, qraw, qr, qo, E, slot0, inv_freq, nf, rot_scale, fixed_scale, sd_cs,
                        sd_sn, un_cs, un_sn, &tcs, &tsn);
            bool fuse = fused && mode == POS_TRUE;
            if (fuse) {
                for (uint i = 0; i < HD; i++)
                    qv[i] = qv[i] * scale;
                if (kv_type == KV_Q8_0)
                    quant_query(qv, qq, qd);
            }
            uint x = lo + (uint)a, y = lo + (uint)z;
            for (uint x0 = x; x0 < y; x0 += SPLIT_SUB) {
                uint n = y - x0 < SPLIT_SUB ? y - x0 : SPLIT_SUB;
                if (fuse) {
                    split_fused(qv, qq, qd, s, &m, &l, o, kc, vc, kv_type, row_bytes, cap, g,
                                x0, n);
                    continue;
                }
                for (uint i = 0; i < n; i++) {
                    uint j = x0 + i;
                    key_row(kr, kc, kv_type, row_bytes, cap, g, j, mode, tcs, tsn, nf);
                    s[i] = score_x86(qv, kr, kc + ((size_t)g * cap + j) * row_bytes, kv_type,
                                     mode, scale);
                    if (has_slopes)
                        s[i] += slopes[h] * (float)(pos[j] - pq);
                }
                float mx = m;
                for (uint i = 0; i < n; i++)
                    mx = s[i] > mx ? s[i] : mx;
                float alpha = m == -INFINITY ? 0.0f : cpu_expf(m - mx), sum = 0.0f;
                for (uint i = 0; i < n; i++) {
                    s[i] = cpu_expf(s[i] - mx);
                    sum += s[i];
                }
                m = mx;
                l = l * alpha + sum;
                for (uint i = 0; i < HD; i++)
                    tmp[i] = 0.0f;
                for (uint i = 0; i < n; i++)
                    wsum_x86(tmp, s[i], vc + ((size_t)g * cap + x0 + i) * row_bytes, kv_type);
                for (uint i = 0; i < HD; i++)
                    o[i] = o[i] * alpha + tmp[i];
            }
        }
        p[hh] = m;
        p[group + hh] = l;
        for (uint i = 0; i < HD; i++)
            p[2 * group + hh * HD + i] = o[i];
    }
}

/* ---- prefill in the CPU's tiled order ---------------------------------
 *
 * A block of queries whose layer the CPU backend runs on its tiled path
 * (core/compute/attn_tiled.c with the AVX2 tile, core/cpu/
 * attn_tile_avx2.inc) is scored tile by tile: the CPU puts q_per_tile
 * queries (64 rows / the GQA group) in a tile, takes the slots of each
 * range that any of them can see, and runs its online softmax over those
 * slots 64 keys at a time with its own exp polynomial. Every step is per
 * row (the rows are the vector lanes), so one work-item per query head
 * and query can follow it exactly: the same key tiles (they depend on the
 * tile's first and last query), the same fused steps. */

#define TILE_KEYS 64   /* ST_ATTN_KTILE */

/* a2_exp: Cody-Waite reduction and the degree-6 polynomial; 0 below -87. */
inline float exp_tile(float x)
{
    bool dead = x < -87.0f;
    x = fmax(x, -87.0f);
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = fma(p, r, 1.3981999507e-3f);
    p = fma(p, r, 8.3334519073e-3f);
    p = fma(p, r, 4.1665795894e-2f);
    p = fma(p, r, 1.6666665459e-1f);
    p = fma(p, r, 5.0000001201e-1f);
    p = fma(p * r, r, r) + 1.0f;
    float e = as_float(((int)n + 127) << 23);
    return dead ? 0.0f : p * e;
}

kernel void attend_tile(global const float *q, global const float *qr, global float *att,
                        global const uchar *kc, global const uchar *vc, uint kv_type,
                        uint row_bytes, uint cap, global const int *pos,
                        global const int *ents, uint n_ents, global const float *inv_freq,
                        uint nf, float rot_scale, float fixed_scale, float scale,
                        global const float *slopes, uint has_slopes,
                        global const float *sd_cs, global const float *sd_sn,
                        global const float *un_cs, global const float *un_sn, uint slot0,
                        uint n_heads, uint n_kv_heads, uint nt, uint q_per_tile)
{
    uint h = get_global_id(0), t = get_global_id(1);
    if (h >= n_heads || t >= nt)
        return;
    uint g = h / (n_heads / n_kv_heads);
    uint q0 = t / q_per_tile * q_per_tile;
    uint q1 = min(q0 + q_per_tile, nt) - 1;
    int pq = pos[slot0 + t];
    long rmin = pos[slot0 + q0], rmax = pos[slot0 + q1];
    size_t qo = ((size_t)t * n_heads + h) * HD;
    float qraw[HD], qv[HD], kr[HD], o[HD], sc[TILE_KEYS];
    for (uint i = 0; i < HD; i++) {
        qraw[i] = q[qo + i];
        o[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (uint e = 0; e < n_ents; e++) {
        global const int *E = ents + e * ENT_WORDS;
        long dlo = E[E_MIN], dhi = E[E_MAX];
        uint lo = lower_bound(pos, (uint)E[E_KBEGIN], (uint)E[E_KEND], rmin - dhi);
        uint hi = lower_bound(pos, lo, (uint)E[E_KEND], rmax - dlo + 1);
        if (lo >= hi)
            continue;
        int mode = E[E_MODE];
        global const float *tcs, *tsn;
        entry_query(qv, qraw, qr, qo, E, slot0 + t, inv_freq, nf, rot_scale, fixed_scale, sd_cs,
                    sd_sn, un_cs, un_sn, &tcs, &tsn);
        for (uint i = 0; i < HD; i++)
            qv[i] = qv[i] * scale;
        for (uint j0 = lo; j0 < hi; j0 += TILE_KEYS) {
            uint n = min((uint)TILE_KEYS, hi - j0);
            /* A tile no query of the CPU's tile can see is skipped there;
             * for this row masked keys are the same no-op. */
            if (rmax - pos[j0] < dlo || rmin - pos[j0 + n - 1] > dhi)
                continue;
            for (uint i = 0; i < n; i++) {
                uint j = j0 + i;
                key_row(kr, kc, kv_type, row_bytes, cap, g, j, mode, tcs, tsn, nf);
                float a = 0.0f;
                for (uint d = 0; d < HD; d++)
                    a = fma(qv[d], kr[d], a);
                if (has_slopes)
                    a = a + slopes[h] * (float)(pos[j] - pq);
                long dist = (long)pq - (long)pos[j];
                sc[i] = dist < dlo || dist > dhi ? -INFINITY : a;
            }
            float mn = m;
            for (uint i = 0; i < n; i++)
                mn = mn > sc[i] ? mn : sc[i];
            float ms = mn == -INFINITY ? 0.0f : mn;
            float c = exp_tile(m - ms), sum = 0.0f;
            for (uint i = 0; i < n; i++) {
                sc[i] = exp_tile(sc[i] - ms);
                sum = sum + sc[i];
            }
            l = fma(l, c, sum);
            m = mn;
            for (uint d = 0; d < HD; d++) {
                float od = o[d] * c;
                for (uint i = 0; i < n; i++)
                    od = fma(sc[i], kv_load(vc + ((size_t)g * cap + j0 + i) * row_bytes,
                                            kv_type, d), od);
                o[d] = od;
            }
        }
    }
    float inv = l > 0.0f ? 1.0f / l : 0.0f;
    for (uint d = 0; d < HD; d++)
        att[qo + d] = o[d] * inv;
}

/* out = sum_c e^(m_c - M) acc_c / sum_c e^(m_c - M) l_c, M = max_c m_c,
 * per query head (merge_chunks). */
kernel void attend_merge(global const float *part, global float *att, uint n_heads,
                         uint n_kv_heads, uint n_chunks)
{
    uint h = get_global_id(0);
    if (h >= n_heads)
        return;
    uint group = n_heads / n_kv_heads, g = h / group, hh = h % group;
    size_t per = (size_t)(HD + 2) * group;
    global const float *pg = part + (size_t)g * n_chunks * per;
    global float *out = att + (size_t)h * HD;
    float acc[HD];
    for (uint d = 0; d < HD; d++)
        acc[d] = 0.0f;
    float M = -INFINITY;
    for (uint c = 0; c < n_chunks; c++)
        M = fmax(M, pg[c * per + hh]);
    if (M != -INFINITY) {
        float sum = 0.0f;
        for (uint c = 0; c < n_chunks; c++) {
            global const float *p = pg + c * per;
            if (p[hh] == -INFINITY)
                continue;
            float w = cpu_expf(p[hh] - M);
            sum += w * p[group + hh];
            global const float *a = p + 2 * group + (size_t)hh * HD;
            for (uint d = 0; d < HD; d++)
                acc[d] += w * a[d];
        }
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (uint d = 0; d < HD; d++)
            acc[d] *= inv;
    }
    for (uint d = 0; d < HD; d++)
        out[d] = acc[d];
}
