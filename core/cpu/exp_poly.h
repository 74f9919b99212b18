/*
 * core/cpu/exp_poly.h - the constants of Cephes' expf, which the attention
 * kernels evaluate lane-wise for e^x with x <= 0: n = round(x log2 e),
 * r = x - n ln2 (ln2 split in two so the product is exact), e^r as
 * 1 + r + r^2 P(r) with P of degree 5, times 2^n. The kernels differ in how
 * they round n and where they clamp (each matches its own path's tests
 * and the OpenCL copy in opencl/kernels/forward.cl), so only the numbers
 * live here, once.
 */
#ifndef ST_CPU_EXP_POLY_H
#define ST_CPU_EXP_POLY_H

#define ST_EXP_LOG2E 1.44269504088896341f
#define ST_EXP_LN2_HI 0.693359375f
#define ST_EXP_LN2_LO -2.12194440e-4f
#define ST_EXP_P5 1.9875691500e-4f
#define ST_EXP_P4 1.3981999507e-3f
#define ST_EXP_P3 8.3334519073e-3f
#define ST_EXP_P2 4.1665795894e-2f
#define ST_EXP_P1 1.6666665459e-1f
#define ST_EXP_P0 5.0000001201e-1f

#endif
