/*
 * core/cpu/erf_approx.h - erf as a rational function, for the encoders'
 * GELU. glibc's erff is exact to an ulp but scalar with branches: it was
 * 16% of indexing with the Q8_0 MiniLM. This form (x clamped to [-4, 4],
 * erf(x) ~ x P(x^2) / Q(x^2), P of degree 6 and Q of degree 4, the
 * coefficients of the well-known single-precision fit) has no branch, so
 * the SIMD kernels compute it eight lanes at a time in the same order.
 * Largest error against erf: 4.2e-7 absolute (tests/forward/
 * test_kernels.c checks it on a dense grid), far inside the encoders'
 * 1e-3 cosine bound.
 */
#ifndef ST_CPU_ERF_APPROX_H
#define ST_CPU_ERF_APPROX_H

#define ST_ERF_CLAMP 4.0f
#define ST_ERF_P6 -2.72614225801306e-10f
#define ST_ERF_P5 2.77068142495902e-08f
#define ST_ERF_P4 -2.10102402082508e-06f
#define ST_ERF_P3 -5.69250639462346e-05f
#define ST_ERF_P2 -7.34990630326855e-04f
#define ST_ERF_P1 -2.95459980854025e-03f
#define ST_ERF_P0 -1.60960333262415e-02f
#define ST_ERF_Q4 -1.45660718464996e-05f
#define ST_ERF_Q3 -2.13374055278905e-04f
#define ST_ERF_Q2 -1.68282697438203e-03f
#define ST_ERF_Q1 -7.37332916720468e-03f
#define ST_ERF_Q0 -1.42647390514189e-02f

static inline float st_erf_approx(float x)
{
    x = x < -ST_ERF_CLAMP ? -ST_ERF_CLAMP : x > ST_ERF_CLAMP ? ST_ERF_CLAMP : x;
    float x2 = x * x;
    float p = ST_ERF_P6;
    p = p * x2 + ST_ERF_P5;
    p = p * x2 + ST_ERF_P4;
    p = p * x2 + ST_ERF_P3;
    p = p * x2 + ST_ERF_P2;
    p = p * x2 + ST_ERF_P1;
    p = p * x2 + ST_ERF_P0;
    float q = ST_ERF_Q4;
    q = q * x2 + ST_ERF_Q3;
    q = q * x2 + ST_ERF_Q2;
    q = q * x2 + ST_ERF_Q1;
    q = q * x2 + ST_ERF_Q0;
    return x * p / q;
}

#endif
