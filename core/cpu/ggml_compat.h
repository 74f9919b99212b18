/*
 * core/cpu/ggml_compat.h - the float operations of llama.cpp's CPU backend
 * (ggml, x86 build with AVX-512), reproduced rounding for rounding, for the
 * opt-in numerics mode STRETCH_NUMERICS=ggml (see docs/forward.md).
 *
 * The forward pass is chaotic with respect to rounding: a one-ulp change
 * upstream of an int8 activation quantizer flips some int8 and the runs
 * drift apart. These functions do what ggml does, in ggml's order, so the
 * activations stretch quantizes are bit for bit the ones llama.cpp
 * quantizes. They are scalar (this file is compiled as ISO C, so the
 * compiler fuses no multiply-add on its own; every fma is an explicit
 * fmaf where ggml's vector code has one) and not fast.
 *
 * Summation orders emulated:
 *   hsum8   ggml's hsum_float_8 / tinyBLAS hsum(__m256): lanes i and i+4,
 *           then (0+2) + (1+3);
 *   hsum16  _mm512_reduce_add_ps: lanes i and i+8, then i and i+4, then
 *           (0+2) + (1+3).
 */
#ifndef ST_CORE_CPU_GGML_COMPAT_H
#define ST_CORE_CPU_GGML_COMPAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

/* True when STRETCH_NUMERICS=ggml (read by the caller once, at open). */
bool st_gc_env_enabled(void);

float st_gc_hsum8(const float *lanes);
float st_gc_hsum16(const float *lanes);

/* ggml_vec_dot_q4_1_q8_1 (AVX2/AVX-512 build): per block, lane j (0..7)
 * is the integer sum of products 4j..4j+3 (element i of the weight is
 * the low nibble of qs[i] for i < 16, the high nibble of qs[i-16]
 * otherwise), acc[j] = fma(d_w * d_x, lane_j, acc[j]); the minimums are
 * summed apart, summs += m_w * s_x, and the result is hsum8(acc) + summs. */
float st_gc_dot_q4_1(uint32_t n, const void *w_row, const st_act_block *x);
/* ggml_vec_dot_q8_0_q8_0: the same without the minimum term. */
float st_gc_dot_q8_0(uint32_t n, const void *w_row, const st_act_block *x);

/* ggml_compute_forward_rms_norm_f32 then ggml_mul: the squares summed in
 * double, mean = (float)(sum / n), scale = 1.0f / sqrtf(mean + eps),
 * out = (x * scale) * w. */
void st_gc_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);

/* ggml_v_expf (the AVX-512 variant), one lane. */
float st_gc_expf(float x);
/* ggml_v_silu: x / (1 + v_expf(0 - x)). */
float st_gc_silu(float x);
/* ggml_vec_swiglu_f32: h = silu(g) * u. */
void st_gc_swiglu(float *h, const float *g, const float *u, uint32_t n);

/* ggml's rope cache for one position (mode 0, freq_scale 1, ext_factor 0,
 * attn_factor 1): theta = (float)pos, then per pair cosf/sinf(theta) and
 * theta *= powf(base, -2.0f / n_dims). */
void st_gc_rope_table(float *cs, float *sn, int32_t pos, float base, uint32_t n_dims,
                      uint32_t n_freq);
/* The rotation of one head (pairs 2i, 2i+1), rounded as ggml's rope
 * (rotate_pairs, whose C++ GCC contracts): out0 = fma(x0, cos, -(x1*sin)),
 * out1 = fma(x0, sin, x1*cos). */
void st_gc_rope(float *out, const float *x, const float *cs, const float *sn, uint32_t n_freq,
                uint32_t head_dim);

/* tinyBLAS (AVX-512, KN = 16) dot of length n (a multiple of 16): lane l
 * accumulates elements l, l+16, ... with fma from zero; then hsum16. */
float st_gc_dot_tinyblas16(const float *a, const float *b, uint32_t n);
/* ggml_vec_dot_f16 (AVX-512: 4 accumulators of 16 lanes over steps of 64,
 * combined 0+2, 1+3, then 0+1, then hsum16) on values already rounded to
 * f16; n a multiple of 64. */
float st_gc_dot_f16(const float *a, const float *b, uint32_t n);

/* One attention row as llama.cpp without flash attention computes it on
 * an f16 cache: scores[i] (in: raw q.k of the visible slots idx[i],
 * ascending) scaled, softmax as ggml_compute_forward_soft_max_f32 (max,
 * v_expf in chunks of 16 cells, each chunk hsum16-ed into a double sum,
 * weights times (float)(1.0 / sum)); out = weights (rounded to f16) x V,
 * through tinyBLAS (lane = cell index mod 16) for a batch, through
 * ggml_vec_dot_f16 (accumulator (cell mod 64) / 16, lane cell mod 16) when
 * vec (one query, a decode step). v: cell 0's head slice, stride floats
 * per cell, values already f16-rounded. scores is overwritten with the
 * weights (not rounded). */
void st_gc_attend_row(float *out, float *scores, const uint32_t *idx, uint32_t n, float scale,
                      const float *v, size_t stride, uint32_t hd, bool vec);

#endif
