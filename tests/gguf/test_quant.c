/*
 * tests/gguf/test_quant.c - half floats and ggml block (de)quantization
 * against hand-made blocks with exact expected values, the quantizers'
 * rounding on hand-checked input, and quantize->dequantize error bounds.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gguf.h"
#include "quant.h"

static void set16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

Test(gguf_quant, type_sizes_and_names)
{
    cr_assert_eq(st_ggml_block_elems(ST_GGML_F32), 1);
    cr_assert_eq(st_ggml_block_bytes(ST_GGML_F32), 4);
    cr_assert_eq(st_ggml_block_bytes(ST_GGML_F16), 2);
    cr_assert_eq(st_ggml_block_elems(ST_GGML_Q4_0), 32);
    cr_assert_eq(st_ggml_block_bytes(ST_GGML_Q4_0), 18);
    cr_assert_eq(st_ggml_block_bytes(ST_GGML_Q4_1), 20);
    cr_assert_eq(st_ggml_block_bytes(ST_GGML_Q8_0), 34);
    cr_assert_eq(st_ggml_block_elems((st_ggml_type)99), 0);
    cr_assert_eq(st_ggml_block_bytes((st_ggml_type)6), 0);
    cr_assert_str_eq(st_ggml_type_name(ST_GGML_Q4_1), "Q4_1");
    cr_assert_str_eq(st_ggml_type_name((st_ggml_type)99), "unknown");
    cr_assert_eq(st_ggml_row_bytes(ST_GGML_Q8_0, 64), 68);
    cr_assert_eq(st_ggml_row_bytes(ST_GGML_Q8_0, 48), 0);
}

Test(gguf_quant, fp16_to_fp32_known_values)
{
    cr_assert_eq(st_fp16_to_fp32(0x0000), 0.0f);
    cr_assert(signbit(st_fp16_to_fp32(0x8000)) && st_fp16_to_fp32(0x8000) == 0.0f);
    cr_assert_eq(st_fp16_to_fp32(0x3c00), 1.0f);
    cr_assert_eq(st_fp16_to_fp32(0xc000), -2.0f);
    cr_assert_eq(st_fp16_to_fp32(0x3800), 0.5f);
    cr_assert_eq(st_fp16_to_fp32(0x7bff), 65504.0f);
    cr_assert_eq(st_fp16_to_fp32(0x3555), 0.333251953125f);
    cr_assert_eq(st_fp16_to_fp32(0x0001), 0x1p-24f);          /* smallest subnormal */
    cr_assert_eq(st_fp16_to_fp32(0x03ff), 0x1.ff8p-15f);      /* largest subnormal */
    cr_assert_eq(st_fp16_to_fp32(0x8200), -0x1p-15f);
    cr_assert_eq(st_fp16_to_fp32(0x0400), 0x1p-14f);          /* smallest normal */
    cr_assert(isinf(st_fp16_to_fp32(0x7c00)) && st_fp16_to_fp32(0x7c00) > 0);
    cr_assert(isinf(st_fp16_to_fp32(0xfc00)) && st_fp16_to_fp32(0xfc00) < 0);
    cr_assert(isnan(st_fp16_to_fp32(0x7e00)));
    cr_assert(isnan(st_fp16_to_fp32(0x7c01)));
}

Test(gguf_quant, fp32_to_fp16_rounding)
{
    cr_assert_eq(st_fp32_to_fp16(1.0f), 0x3c00);
    cr_assert_eq(st_fp32_to_fp16(-2.0f), 0xc000);
    cr_assert_eq(st_fp32_to_fp16(-0.0f), 0x8000);
    cr_assert_eq(st_fp32_to_fp16(1.0f / 3.0f), 0x3555);
    cr_assert_eq(st_fp32_to_fp16(65504.0f), 0x7bff);
    cr_assert_eq(st_fp32_to_fp16(65519.0f), 0x7bff);         /* below the midpoint */
    cr_assert_eq(st_fp32_to_fp16(65520.0f), 0x7c00);         /* tie to even = inf */
    cr_assert_eq(st_fp32_to_fp16(1e6f), 0x7c00);
    cr_assert_eq(st_fp32_to_fp16(-INFINITY), 0xfc00);
    cr_assert_eq(st_fp32_to_fp16(NAN), 0x7e00);
    cr_assert_eq(st_fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);  /* tie, even mantissa down */
    cr_assert_eq(st_fp32_to_fp16(1.0f + 3 * 0x1p-11f), 0x3c02); /* tie, odd mantissa up */
    cr_assert_eq(st_fp32_to_fp16(0x1p-24f), 0x0001);
    cr_assert_eq(st_fp32_to_fp16(0x1p-25f), 0x0000);         /* tie to even = 0 */
    cr_assert_eq(st_fp32_to_fp16(0x1.8p-25f), 0x0001);
    cr_assert_eq(st_fp32_to_fp16(1e-9f), 0x0000);
    cr_assert_eq(st_fp32_to_fp16(0x1.ff8p-15f), 0x03ff);
}

Test(gguf_quant, fp16_round_trip_every_value)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = st_fp16_to_fp32((uint16_t)h);
        uint16_t back = st_fp32_to_fp16(f);
        if (isnan(f))
            cr_assert(isnan(st_fp16_to_fp32(back)), "NaN 0x%04x stays NaN", h);
        else
            cr_assert_eq(back, h, "0x%04x -> %g -> 0x%04x", h, f, back);
    }
}

Test(gguf_quant, dequant_q4_0_hand_block)
{
    uint8_t blk[18];
    set16(blk, 0x3800); /* d = 0.5 */
    for (int j = 0; j < 16; j++)
        blk[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    cr_assert_eq(st_dequantize(ST_GGML_Q4_0, blk, y, 32), ST_OK);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], (float)(j - 8) * 0.5f, "y[%d]=%g", j, y[j]);
        cr_assert_eq(y[j + 16], (float)(7 - j) * 0.5f, "y[%d]=%g", j + 16, y[j + 16]);
    }
    cr_assert_eq(y[0], -4.0f);
    cr_assert_eq(y[16], 3.5f);
}

Test(gguf_quant, dequant_q4_1_hand_block)
{
    uint8_t blk[20];
    set16(blk, 0x3400);     /* d = 0.25 */
    set16(blk + 2, 0xbc00); /* m = -1 */
    for (int j = 0; j < 16; j++)
        blk[4 + j] = (uint8_t)(j | ((15 - j) << 4));
    float y[32];
    cr_assert_eq(st_dequantize(ST_GGML_Q4_1, blk, y, 32), ST_OK);
    for (int j = 0; j < 16; j++) {
        cr_assert_eq(y[j], (float)j * 0.25f - 1.0f);
        cr_assert_eq(y[j + 16], (float)(15 - j) * 0.25f - 1.0f);
    }
    cr_assert_eq(y[15], 2.75f);
    cr_assert_eq(y[16], 2.75f);
    cr_assert_eq(y[31], -1.0f);
}

Test(gguf_quant, dequant_q8_0_two_blocks)
{
    uint8_t blk[68];
    set16(blk, 0x4000);      /* d = 2 */
    set16(blk + 34, 0xb400); /* d = -0.25 */
    for (int j = 0; j < 32; j++) {
        blk[2 + j] = (uint8_t)(int8_t)(j - 16);
        blk[36 + j] = (uint8_t)(int8_t)(3 * j);
    }
    blk[2] = (uint8_t)(int8_t)-128;
    blk[2 + 31] = 127;
    float y[64];
    cr_assert_eq(st_dequantize(ST_GGML_Q8_0, blk, y, 64), ST_OK);
    cr_assert_eq(y[0], -256.0f);
    cr_assert_eq(y[31], 254.0f);
    for (int j = 1; j < 31; j++)
        cr_assert_eq(y[j], (float)(j - 16) * 2.0f);
    for (int j = 0; j < 32; j++)
        cr_assert_eq(y[32 + j], (float)(3 * j) * -0.25f);
}

Test(gguf_quant, dequant_f16_and_f32)
{
    uint8_t h[8];
    set16(h, 0x3c00);
    set16(h + 2, 0x0001);
    set16(h + 4, 0xfc00);
    set16(h + 6, 0xc500);
    float y[4];
    cr_assert_eq(st_dequantize(ST_GGML_F16, h, y, 4), ST_OK);
    cr_assert_eq(y[0], 1.0f);
    cr_assert_eq(y[1], 0x1p-24f);
    cr_assert(isinf(y[2]) && y[2] < 0);
    cr_assert_eq(y[3], -5.0f);
    float src[3] = {1.5f, -0.0f, 3e38f}, dst[3];
    cr_assert_eq(st_dequantize(ST_GGML_F32, src, dst, 3), ST_OK);
    cr_assert_eq(memcmp(src, dst, sizeof src), 0);
}

Test(gguf_quant, dequant_refuses_partial_blocks_and_unknown_types)
{
    uint8_t blk[34] = {0};
    float y[64];
    cr_assert_eq(st_dequantize(ST_GGML_Q8_0, blk, y, 31), ST_E_INVALID);
    cr_assert_eq(st_dequantize(ST_GGML_Q4_0, blk, y, 33), ST_E_INVALID);
    cr_assert_eq(st_dequantize((st_ggml_type)99, blk, y, 32), ST_E_INVALID);
    cr_assert_eq(st_quantize(ST_GGML_Q4_1, y, blk, 16), ST_E_INVALID);
    cr_assert_eq(st_quantize((st_ggml_type)7, y, blk, 32), ST_E_INVALID);
    cr_assert_eq(st_dequantize(ST_GGML_Q8_0, blk, y, 0), ST_OK);
}

/* Hand-worked Q4_0: x_j = (j - 16) / 2, so max = -8 at j = 0, d = 1,
 * q_j = min(15, floor(x_j + 8.5)) = min(15, (j + 1) / 2). */
Test(gguf_quant, quantize_q4_0_rounding_like_ggml)
{
    float x[32], y[32];
    uint8_t blk[18];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j - 16) * 0.5f;
    cr_assert_eq(st_quantize(ST_GGML_Q4_0, x, blk, 32), ST_OK);
    cr_assert_eq(blk[0] | (blk[1] << 8), 0x3c00, "d = 1");
    cr_assert_eq(st_dequantize(ST_GGML_Q4_0, blk, y, 32), ST_OK);
    for (int j = 0; j < 32; j++) {
        int q = (j + 1) / 2 > 15 ? 15 : (j + 1) / 2;
        cr_assert_eq(y[j], (float)(q - 8), "j=%d y=%g", j, y[j]);
    }
}

/* Hand-worked Q8_0: amax = 127 gives d = 1 and exact integers; roundf
 * rounds halves away from zero. */
Test(gguf_quant, quantize_q8_0_rounding_like_ggml)
{
    float x[32] = {127.0f, -127.0f, 2.5f, -2.5f, 0.49f, -0.5f, 100.2f};
    float y[32];
    uint8_t blk[34];
    cr_assert_eq(st_quantize(ST_GGML_Q8_0, x, blk, 32), ST_OK);
    cr_assert_eq(blk[0] | (blk[1] << 8), 0x3c00);
    cr_assert_eq(st_dequantize(ST_GGML_Q8_0, blk, y, 32), ST_OK);
    float want[7] = {127, -127, 3, -3, 0, -1, 100};
    for (int j = 0; j < 7; j++)
        cr_assert_eq(y[j], want[j], "j=%d y=%g", j, y[j]);
    for (int j = 7; j < 32; j++)
        cr_assert_eq(y[j], 0.0f);
}

/* Q4_1 on 0..15 plus an offset: d = 1, m = offset, exact. */
Test(gguf_quant, quantize_q4_1_exact_grid)
{
    float x[32], y[32];
    uint8_t blk[20];
    for (int j = 0; j < 32; j++)
        x[j] = (float)(j % 16) - 3.0f;
    cr_assert_eq(st_quantize(ST_GGML_Q4_1, x, blk, 32), ST_OK);
    cr_assert_eq(st_dequantize(ST_GGML_Q4_1, blk, y, 32), ST_OK);
    for (int j = 0; j < 32; j++)
        cr_assert_eq(y[j], x[j], "j=%d", j);
}

static uint64_t rng_state = 0x1234567;
static float frand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (2.0 / 16777216.0) - 1.0);
}

Test(gguf_quant, quantize_dequantize_error_bounds)
{
    enum { N = 32 * 64 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    for (int i = 0; i < N; i++)
        x[i] = frand() * ((i / 32) % 4 == 0 ? 100.0f : 1.0f) + ((i / 32) % 3 == 0 ? 5.0f : 0.0f);

    st_ggml_type types[] = {ST_GGML_F16, ST_GGML_Q4_0, ST_GGML_Q4_1, ST_GGML_Q8_0};
    for (size_t t = 0; t < 4; t++) {
        cr_assert_eq(st_quantize(types[t], x, q, N), ST_OK);
        cr_assert_eq(st_dequantize(types[t], q, y, N), ST_OK);
        for (int b = 0; b < N / 32; b++) {
            const float *xb = x + 32 * b;
            float amax = 0, mn = xb[0], mx = xb[0];
            for (int j = 0; j < 32; j++) {
                amax = fmaxf(amax, fabsf(xb[j]));
                mn = fminf(mn, xb[j]);
                mx = fmaxf(mx, xb[j]);
            }
            for (int j = 0; j < 32; j++) {
                float err = fabsf(y[32 * b + j] - xb[j]), bound;
                switch (types[t]) {
                case ST_GGML_F16: bound = fabsf(xb[j]) * 0x1p-11f; break;
                /* step |d| = amax/8; the clamp at 15 costs one step for the
                 * largest value of the opposite sign; f16 d adds ~2^-11 */
                case ST_GGML_Q4_0: bound = amax / 8.0f * 1.01f; break;
                case ST_GGML_Q4_1: bound = (mx - mn) / 15.0f * 0.51f + (fabsf(mn) + (mx - mn)) * 0x1p-10f; break;
                default: bound = amax / 127.0f * 0.51f + amax * 0x1p-10f; break;
                }
                cr_assert(err <= bound, "%s block %d elem %d: x=%g y=%g err=%g bound=%g",
                          st_ggml_type_name(types[t]), b, j, xb[j], y[32 * b + j], err, bound);
            }
        }
    }
}
