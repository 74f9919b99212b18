/* The ggml-compatible numerics mode (cpu/ggml_compat.h): the emulated
 * operations against straightforward scalar code with the same arithmetic
 * order written out independently, the SIMD row kernels the mode uses for
 * the quantized matmuls against the emulated ggml dot products (bit for
 * bit), and the properties of ggml's vectorised expf. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/ggml_compat.h"
#include "cpu/kernels.h"
#include "quant.h"

static uint64_t rng = 987654321;
static float frand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

static bool same_bits(float a, float b)
{
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y;
}

Test(ggml_compat, horizontal_sums_pair_lanes_as_ggml)
{
    /* Values where the pairing decides the result. */
    float l8[8] = { 1e8f, 1.0f, 1.0f, 1.0f, -1e8f, 1.0f, 1.0f, 1.0f };
    /* (l0 + l4) = 0, (l1 + l5) = 2, (l2 + l6) = 2, (l3 + l7) = 2 -> 6 */
    cr_assert_eq(st_gc_hsum8(l8), 6.0f);
    float l16[16];
    for (int i = 0; i < 16; i++)
        l16[i] = 1.0f;
    l16[0] = 1e8f;
    l16[8] = -1e8f;
    cr_assert_eq(st_gc_hsum16(l16), 14.0f);
    /* A left-to-right sum would lose the ones next to 1e8. */
    float seq = 0.0f;
    for (int i = 0; i < 16; i++)
        seq += l16[i];
    cr_assert_neq(seq, 14.0f);
}

/* Random Q4_1 / Q8_0 rows and quantized activations. */
static void make_blocks(uint32_t n, st_block_q4_1 *w41, st_block_q8_0 *w80, st_act_block *xa)
{
    float *x = malloc(n * sizeof *x), *w = malloc(n * sizeof *w);
    for (uint32_t i = 0; i < n; i++) {
        x[i] = frand() * (i % 5 == 0 ? 3.0f : 1.0f);
        w[i] = frand() * 0.1f + 0.02f;
    }
    st_quantize_act_row(x, n, xa);
    cr_assert_eq(st_quantize(ST_GGML_Q4_1, w, w41, n), ST_OK);
    cr_assert_eq(st_quantize(ST_GGML_Q8_0, w, w80, n), ST_OK);
    free(x);
    free(w);
}

Test(ggml_compat, q4_1_dot_is_ggml_order)
{
    enum { N = 576 };
    st_block_q4_1 w[N / 32];
    st_block_q8_0 w8[N / 32];
    st_act_block xa[N / 32];
    for (int rep = 0; rep < 20; rep++) {
        make_blocks(N, w, w8, xa);
        /* Written out: 8 lanes of 4 products each per block. */
        float acc[8] = { 0 }, summs = 0.0f;
        for (int b = 0; b < N / 32; b++) {
            int8_t q[32];
            for (int i = 0; i < 16; i++) {
                q[i] = (int8_t)(w[b].qs[i] & 0x0f);
                q[i + 16] = (int8_t)(w[b].qs[i] >> 4);
            }
            float scale = st_cpu_half(w[b].d) * xa[b].d;
            for (int j = 0; j < 8; j++) {
                int s = q[4 * j] * xa[b].q[4 * j] + q[4 * j + 1] * xa[b].q[4 * j + 1] +
                        q[4 * j + 2] * xa[b].q[4 * j + 2] + q[4 * j + 3] * xa[b].q[4 * j + 3];
                acc[j] = fmaf(scale, (float)s, acc[j]);
            }
            summs += st_cpu_half(w[b].m) * xa[b].s16;
        }
        float h = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
        cr_assert(same_bits(st_gc_dot_q4_1(N, w, xa), h + summs));
    }
}

Test(ggml_compat, row_kernels_match_the_emulated_dots)
{
    /* The mode runs the quantized matmuls on the row kernels (no
     * repacking): they must give ggml's dot bit for bit on every ISA. */
    enum { N = 1536 };
    static st_block_q4_1 w[N / 32];
    static st_block_q8_0 w8[N / 32];
    static st_act_block xa[N / 32];
    const st_cpu_isa isas[] = { ST_ISA_SCALAR, ST_ISA_AVX2, ST_ISA_AVX512 };
    for (int rep = 0; rep < 10; rep++) {
        make_blocks(N, w, w8, xa);
        float e41 = st_gc_dot_q4_1(N, w, xa), e80 = st_gc_dot_q8_0(N, w8, xa);
        for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
            const st_cpu_kernels *K = st_cpu_kernels_get(isas[k]);
            if (isas[k] > st_cpu_isa_detect() || !K || K->isa != isas[k] ||
                isas[k] == ST_ISA_SCALAR)
                continue; /* not compiled in / not this CPU; scalar sums differently */
            float o;
            K->dot_ggml[ST_KT_Q4_1](N, w, xa, N / 32, 1, &o);
            cr_assert(same_bits(o, e41), "isa %d q4_1: %.9g vs %.9g", (int)isas[k], o, e41);
            K->dot_ggml[ST_KT_Q8_0](N, w8, xa, N / 32, 1, &o);
            cr_assert(same_bits(o, e80), "isa %d q8_0: %.9g vs %.9g", (int)isas[k], o, e80);
        }
    }
}

Test(ggml_compat, rmsnorm_sums_squares_in_double)
{
    enum { N = 576 };
    float x[N], w[N], out[N];
    for (int i = 0; i < N; i++) {
        x[i] = frand() * 4.0f;
        w[i] = frand() + 1.5f;
    }
    st_gc_rmsnorm(out, x, w, N, 1e-5f);
    double ss = 0.0;
    for (int i = 0; i < N; i++) {
        float sq = x[i] * x[i];
        ss += sq;
    }
    float mean = (float)(ss / N);
    float sc = 1.0f / sqrtf(mean + 1e-5f);
    for (int i = 0; i < N; i++) {
        float y = x[i] * sc;
        cr_assert(same_bits(out[i], y * w[i]), "element %d", i);
    }
}

Test(ggml_compat, expf_is_close_and_saturates)
{
    cr_assert_eq(st_gc_expf(0.0f), 1.0f);
    cr_assert_eq(st_gc_expf(-INFINITY), 0.0f);
    cr_assert_eq(st_gc_expf(-200.0f), 0.0f);
    cr_assert(isinf(st_gc_expf(200.0f)));
    for (int i = 0; i < 20000; i++) {
        float x = frand() * 80.0f;
        double r = exp((double)x), g = st_gc_expf(x);
        /* ggml: at most 1.45358 + 0.5 ulps (measured against the double
         * exp here, which is itself rounded: allow 3). */
        double ulp = ldexp(1.0, ilogb(r) - 23);
        cr_assert_leq(fabs(g - r), 3.0 * ulp, "x = %.9g: %.9g vs %.9g", x, g, r);
    }
}

Test(ggml_compat, silu_and_swiglu)
{
    enum { N = 64 };
    float g[N], u[N], h[N];
    for (int i = 0; i < N; i++) {
        g[i] = frand() * 10.0f;
        u[i] = frand();
    }
    st_gc_swiglu(h, g, u, N);
    for (int i = 0; i < N; i++) {
        float e = st_gc_expf(0.0f - g[i]);
        float s = g[i] / (1.0f + e);
        cr_assert(same_bits(h[i], s * u[i]));
        cr_assert_float_eq(h[i], g[i] / (1.0f + expf(-g[i])) * u[i], 1e-5f);
    }
}

Test(ggml_compat, rope_table_chains_theta_in_float)
{
    float cs[32], sn[32];
    st_gc_rope_table(cs, sn, 7, 100000.0f, 64, 32);
    float ts = powf(100000.0f, -2.0f / 64.0f), th = 7.0f;
    for (int i = 0; i < 32; i++) {
        cr_assert(same_bits(cs[i], cosf(th)) && same_bits(sn[i], sinf(th)), "pair %d", i);
        th *= ts;
    }
}

Test(ggml_compat, f16_dots_sum_in_ggml_order)
{
    enum { N = 64 };
    float a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = st_cpu_round_half(frand());
        b[i] = st_cpu_round_half(frand());
    }
    /* ggml_vec_dot_f16: four 16-lane accumulators (one fma each here). */
    float t[16];
    for (int l = 0; l < 16; l++)
        t[l] = (a[l] * b[l] + a[l + 32] * b[l + 32]) + (a[l + 16] * b[l + 16] + a[l + 48] * b[l + 48]);
    cr_assert(same_bits(st_gc_dot_f16(a, b, N), st_gc_hsum16(t)));
    /* tinyBLAS: one 16-lane accumulator, fma chained over the steps. */
    for (int l = 0; l < 16; l++) {
        float acc = 0.0f;
        for (int s = 0; s < N; s += 16)
            acc = fmaf(a[s + l], b[s + l], acc);
        t[l] = acc;
    }
    cr_assert(same_bits(st_gc_dot_tinyblas16(a, b, N), st_gc_hsum16(t)));
}

Test(ggml_compat, attend_row_one_key_passes_v_through)
{
    float v[64], out[64], w[1] = { 3.0f };
    uint32_t idx[1] = { 0 };
    for (int i = 0; i < 64; i++)
        v[i] = st_cpu_round_half(frand());
    st_gc_attend_row(out, w, idx, 1, 0.125f, v, 64, 64, false);
    cr_assert_eq(w[0], 1.0f);
    for (int i = 0; i < 64; i++)
        cr_assert(same_bits(out[i], v[i]));
}
