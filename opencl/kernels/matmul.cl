/* The weight products: y[t][r] = dot(W row r, x row t), one work-item per
 * (row, token), blocks summed in order exactly as core/cpu's scalar
 * kernels do (kernels_scalar.c), so the device and the CPU differ only by
 * the CPU's SIMD summation order.
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

kernel void mm_f32(global const uchar *w, uint row_bytes, uint rows, uint cols,
                   global const float *x, uint ldx, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    global const float *wr = (global const float *)(w + (size_t)r * row_bytes);
    global const float *xt = x + (size_t)t * ldx;
    float acc = 0.0f;
    for (uint i = 0; i < cols; i++)
        acc += wr[i] * xt[i];
    y[(size_t)t * rows + r] = acc;
}

kernel void mm_f16(global const uchar *w, uint row_bytes, uint rows, uint cols,
                   global const float *x, uint ldx, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    global const half *wr = (global const half *)(w + (size_t)r * row_bytes);
    global const float *xt = x + (size_t)t * ldx;
    float acc = 0.0f;
    for (uint i = 0; i < cols; i++)
        acc += vload_half(i, wr) * xt[i];
    y[(size_t)t * rows + r] = acc;
}

kernel void mm_q4_0(global const uchar *w, uint row_bytes, uint rows, uint cols,
                    global const uchar *x, uint ldx_blocks, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    global const uchar *wr = w + (size_t)r * row_bytes;
    global const uchar *xt = x + (size_t)t * ldx_blocks * ACT_BYTES;
    float acc = 0.0f;
    for (uint b = 0; b < cols / 32; b++) {
        global const uchar *wb = wr + b * 18, *ab = xt + b * ACT_BYTES;
        global const char *q = (global const char *)(ab + 12);
        int isum = 0;
        for (int j = 0; j < 16; j++)
            isum += (wb[2 + j] & 15) * q[j] + (wb[2 + j] >> 4) * q[j + 16];
        float d = half_at(wb);
        acc += d * (act_f(ab, 0) * (float)isum - 8.0f * act_f(ab, 1));
    }
    y[(size_t)t * rows + r] = acc;
}

kernel void mm_q4_1(global const uchar *w, uint row_bytes, uint rows, uint cols,
                    global const uchar *x, uint ldx_blocks, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    global const uchar *wr = w + (size_t)r * row_bytes;
    global const uchar *xt = x + (size_t)t * ldx_blocks * ACT_BYTES;
    float acc = 0.0f;
    for (uint b = 0; b < cols / 32; b++) {
        global const uchar *wb = wr + b * 20, *ab = xt + b * ACT_BYTES;
        global const char *q = (global const char *)(ab + 12);
        int isum = 0;
        for (int j = 0; j < 16; j++)
            isum += (wb[4 + j] & 15) * q[j] + (wb[4 + j] >> 4) * q[j + 16];
        acc += half_at(wb) * act_f(ab, 0) * (float)isum + half_at(wb + 2) * act_f(ab, 2);
    }
    y[(size_t)t * rows + r] = acc;
}

kernel void mm_q8_0(global const uchar *w, uint row_bytes, uint rows, uint cols,
                    global const uchar *x, uint ldx_blocks, uint nt, global float *y)
{
    uint r = get_global_id(0), t = get_global_id(1);
    if (r >= rows || t >= nt)
        return;
    global const uchar *wr = w + (size_t)r * row_bytes;
    global const uchar *xt = x + (size_t)t * ldx_blocks * ACT_BYTES;
    float acc = 0.0f;
    for (uint b = 0; b < cols / 32; b++) {
        global const uchar *wb = wr + b * 34, *ab = xt + b * ACT_BYTES;
        global const char *wq = (global const char *)(wb + 2);
        global const char *q = (global const char *)(ab + 12);
        int isum = 0;
        for (int j = 0; j < 32; j++)
            isum += wq[j] * q[j];
        acc += half_at(wb) * act_f(ab, 0) * (float)isum;
    }
    y[(size_t)t * rows + r] = acc;
}
