/*
 * core/quant.c - half floats, ggml block (de)quantization and type sizes.
 * The quantizers follow ggml's quantize_row_*_ref rounding exactly so a
 * tiny model written by stretch's generator holds the same bytes ggml would.
 */
#include "quant.h"

#include <math.h>
#include <string.h>
#include <float.h>

_Static_assert(sizeof(st_block_q4_0) == 18, "Q4_0 block is 18 bytes in ggml");
_Static_assert(sizeof(st_block_q4_1) == 20, "Q4_1 block is 20 bytes in ggml");
_Static_assert(sizeof(st_block_q8_0) == 34, "Q8_0 block is 34 bytes in ggml");

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* GGUF is little-endian; read the f16 fields byte-wise so nothing depends on
 * host order or alignment of the mapping. */
static uint16_t rd16(const void *p)
{
    const uint8_t *b = p;
    return (uint16_t)(b[0] | (b[1] << 8));
}
static void wr16(void *p, uint16_t v)
{
    uint8_t *b = p;
    b[0] = (uint8_t)(v & 0xff);
    b[1] = (uint8_t)(v >> 8);
}

float st_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in single precision */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31)
        return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

/* ggml's (FP16 library's) conversion: round to nearest even by letting the
 * FPU do the rounding at the right exponent; overflow goes to infinity and
 * every NaN becomes the canonical quiet NaN 0x7e00. */
uint16_t st_fp32_to_fp16(float f)
{
    const float scale_to_inf = 0x1.0p+112f;
    const float scale_to_zero = 0x1.0p-110f;
    volatile float base = (fabsf(f) * scale_to_inf) * scale_to_zero;
    const uint32_t w = f32_bits(f);
    const uint32_t shl1_w = w + w;
    const uint32_t sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xff000000u;
    if (bias < 0x71000000u)
        bias = 0x71000000u;
    base = bits_f32((bias >> 1) + 0x07800000u) + base;
    const uint32_t bits = f32_bits(base);
    const uint32_t exp_bits = (bits >> 13) & 0x00007c00u;
    const uint32_t mantissa_bits = bits & 0x00000fffu;
    const uint32_t nonsign = exp_bits + mantissa_bits;
    return (uint16_t)((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

const char *st_ggml_type_name(st_ggml_type t)
{
    switch (t) {
    case ST_GGML_F32: return "F32";
    case ST_GGML_F16: return "F16";
    case ST_GGML_Q4_0: return "Q4_0";
    case ST_GGML_Q4_1: return "Q4_1";
    case ST_GGML_Q8_0: return "Q8_0";
    }
    return "unknown";
}

uint32_t st_ggml_block_elems(st_ggml_type t)
{
    switch (t) {
    case ST_GGML_F32: case ST_GGML_F16: return 1;
    case ST_GGML_Q4_0: return ST_QK4_0;
    case ST_GGML_Q4_1: return ST_QK4_1;
    case ST_GGML_Q8_0: return ST_QK8_0;
    }
    return 0;
}

uint32_t st_ggml_block_bytes(st_ggml_type t)
{
    switch (t) {
    case ST_GGML_F32: return 4;
    case ST_GGML_F16: return 2;
    case ST_GGML_Q4_0: return sizeof(st_block_q4_0);
    case ST_GGML_Q4_1: return sizeof(st_block_q4_1);
    case ST_GGML_Q8_0: return sizeof(st_block_q8_0);
    }
    return 0;
}

uint64_t st_ggml_row_bytes(st_ggml_type t, uint64_t n)
{
    uint32_t be = st_ggml_block_elems(t);
    if (be == 0 || n % be != 0)
        return 0;
    uint64_t blocks = n / be, bb = st_ggml_block_bytes(t);
    if (blocks > UINT64_MAX / bb)
        return 0;
    return blocks * bb;
}

/* Every block type starts with its f16 scale; the block pointers below are
 * computed as byte offsets so no alignment is assumed of `src`. */
static void dequant_q4_0(const uint8_t *src, float *dst, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++, src += sizeof(st_block_q4_0), dst += ST_QK4_0) {
        const float d = st_fp16_to_fp32(rd16(src));
        const uint8_t *qs = src + 2;
        for (int j = 0; j < ST_QK4_0 / 2; j++) {
            dst[j] = (float)((qs[j] & 0x0f) - 8) * d;
            dst[j + ST_QK4_0 / 2] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequant_q4_1(const uint8_t *src, float *dst, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++, src += sizeof(st_block_q4_1), dst += ST_QK4_1) {
        const float d = st_fp16_to_fp32(rd16(src));
        const float m = st_fp16_to_fp32(rd16(src + 2));
        const uint8_t *qs = src + 4;
        for (int j = 0; j < ST_QK4_1 / 2; j++) {
            dst[j] = (float)(qs[j] & 0x0f) * d + m;
            dst[j + ST_QK4_1 / 2] = (float)(qs[j] >> 4) * d + m;
        }
    }
}

static void dequant_q8_0(const uint8_t *src, float *dst, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++, src += sizeof(st_block_q8_0), dst += ST_QK8_0) {
        const float d = st_fp16_to_fp32(rd16(src));
        const int8_t *qs = (const int8_t *)(src + 2);
        for (int j = 0; j < ST_QK8_0; j++)
            dst[j] = (float)qs[j] * d;
    }
}

st_status st_dequantize(st_ggml_type t, const void *src, float *dst, uint64_t n)
{
    uint32_t be = st_ggml_block_elems(t);
    if (be == 0 || n % be != 0 || (n > 0 && (!src || !dst)))
        return ST_E_INVALID;
    const uint8_t *s = src;
    switch (t) {
    case ST_GGML_F32:
        if (n)
            memcpy(dst, s, n * sizeof(float));
        return ST_OK;
    case ST_GGML_F16:
        for (uint64_t i = 0; i < n; i++)
            dst[i] = st_fp16_to_fp32(rd16(s + 2 * i));
        return ST_OK;
    case ST_GGML_Q4_0: dequant_q4_0(s, dst, n / be); return ST_OK;
    case ST_GGML_Q4_1: dequant_q4_1(s, dst, n / be); return ST_OK;
    case ST_GGML_Q8_0: dequant_q8_0(s, dst, n / be); return ST_OK;
    }
    return ST_E_INVALID;
}

/* ggml converts with (int8_t)(x + bias) then MIN(15, ..); for in-range input
 * that is floor(x + bias) capped at 15. Clamping before the cast keeps NaN
 * or huge input from being undefined behaviour. */
static uint8_t nibble_of(float biased)
{
    if (!(biased > 0.0f))
        return 0;
    if (biased >= 15.0f)
        return 15;
    return (uint8_t)(int)biased;
}

static void quant_q4_0(const float *x, uint8_t *dst, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++, x += ST_QK4_0, dst += sizeof(st_block_q4_0)) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < ST_QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(dst, st_fp32_to_fp16(d));
        for (int j = 0; j < ST_QK4_0 / 2; j++) {
            uint8_t lo = nibble_of(x[j] * id + 8.5f);
            uint8_t hi = nibble_of(x[ST_QK4_0 / 2 + j] * id + 8.5f);
            dst[2 + j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void quant_q4_1(const float *x, uint8_t *dst, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++, x += ST_QK4_1, dst += sizeof(st_block_q4_1)) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < ST_QK4_1; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(dst, st_fp32_to_fp16(d));
        wr16(dst + 2, st_fp32_to_fp16(min));
        for (int j = 0; j < ST_QK4_1 / 2; j++) {
            uint8_t lo = nibble_of((x[j] - min) * id + 0.5f);
            uint8_t hi = nibble_of((x[ST_QK4_1 / 2 + j] - min) * id + 0.5f);
            dst[4 + j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void quant_q8_0(const float *x, uint8_t *dst, uint64_t nb)
{
    for (uint64_t i = 0; i < nb; i++, x += ST_QK8_0, dst += sizeof(st_block_q8_0)) {
        float amax = 0.0f;
        for (int j = 0; j < ST_QK8_0; j++)
            if (fabsf(x[j]) > amax)
                amax = fabsf(x[j]);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        wr16(dst, st_fp32_to_fp16(d));
        for (int j = 0; j < ST_QK8_0; j++) {
            float q = roundf(x[j] * id);
            /* |x*id| <= 127 for finite input; clamp only guards NaN/inf */
            if (!(q >= -128.0f)) q = q != q ? 0.0f : -128.0f;
            if (q > 127.0f) q = 127.0f;
            dst[2 + j] = (uint8_t)(int8_t)(int)q;
        }
    }
}

st_status st_quantize(st_ggml_type t, const float *src, void *dst, uint64_t n)
{
    uint32_t be = st_ggml_block_elems(t);
    if (be == 0 || n % be != 0 || (n > 0 && (!src || !dst)))
        return ST_E_INVALID;
    uint8_t *d = dst;
    switch (t) {
    case ST_GGML_F32:
        if (n)
            memcpy(d, src, n * sizeof(float));
        return ST_OK;
    case ST_GGML_F16:
        for (uint64_t i = 0; i < n; i++)
            wr16(d + 2 * i, st_fp32_to_fp16(src[i]));
        return ST_OK;
    case ST_GGML_Q4_0: quant_q4_0(src, d, n / be); return ST_OK;
    case ST_GGML_Q4_1: quant_q4_1(src, d, n / be); return ST_OK;
    case ST_GGML_Q8_0: quant_q8_0(src, d, n / be); return ST_OK;
    }
    return ST_E_INVALID;
}
