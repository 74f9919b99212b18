/*
 * core/cpu/ops.h - the small per-token operations of the forward pass.
 * They are a few percent of the time, so they are plain C written so that
 * the compiler can vectorize it; the matmul kernels, and the SwiGLU's
 * exponentials (kernels.h silu_mul), are where SIMD is hand-written.
 */
#ifndef ST_CORE_CPU_OPS_H
#define ST_CORE_CPU_OPS_H

#include <stdint.h>

/* out = x / rms(x) * w (out may equal x). */
void st_op_rmsnorm(float *out, const float *x, const float *w, uint32_t n, float eps);

/* cos/sin of pos * inv_freq[i], each times `scale`, for i < n_freq. */
void st_op_rope_table(float *cs, float *sn, double pos, const float *inv_freq,
                      uint32_t n_freq, float scale);

/* Rotate adjacent pairs (2i, 2i+1), i < n_freq, of one head by the table;
 * dims from 2*n_freq to head_dim are copied. out may equal x. This is
 * llama.cpp's "normal" rope (LLM_ARCH_LLAMA): GGUF conversion permutes
 * HF's q/k weights so that adjacent pairs are HF's rotate-half pairs. */
void st_op_rope(float *out, const float *x, const float *cs, const float *sn,
                uint32_t n_freq, uint32_t head_dim);

/* In place softmax of n scores; n may be 0; all -inf gives all 0. */
void st_op_softmax(float *x, uint32_t n);

/* h = silu(g) * u with glibc's expf: the scalar kernel table's silu_mul
 * (the SIMD tables have their own, kernels.h). */
void st_op_silu_mul(float *h, const float *g, const float *u, uint32_t n);
/* The scalar kernel table's sum_exp: expf a value, added in order. */
double st_op_sum_exp(const float *x, uint32_t n, float mx);

#endif
