/* Weight repacking for the 16-row kernels (AVX-512 and AVX2) (layout in repack.h). */
#include "repack.h"

#include <stdlib.h>
#include <string.h>

#include "quant.h"

uint32_t st_repack_block_bytes(st_ggml_type t)
{
    switch (t) {
    case ST_GGML_Q4_0: return 32 + 256;
    case ST_GGML_Q4_1: return 64 + 256;
    case ST_GGML_Q8_0: return 32 + 512;
    default: return 0;
    }
}

/* Row r's 32 quants of block b as 0..15 (Q4) or -128..127 (Q8), and scales. */
static void unpack_block(const st_weight *w, uint32_t r, uint32_t b, int *q, uint16_t *d,
                         uint16_t *m)
{
    const uint8_t *row = w->data + (size_t)r * w->row_bytes;
    if (w->type == ST_GGML_Q4_0 || w->type == ST_GGML_Q4_1) {
        const uint8_t *qs;
        if (w->type == ST_GGML_Q4_0) {
            const st_block_q4_0 *blk = (const st_block_q4_0 *)row + b;
            *d = blk->d;
            qs = blk->qs;
        } else {
            const st_block_q4_1 *blk = (const st_block_q4_1 *)row + b;
            *d = blk->d;
            *m = blk->m;
            qs = blk->qs;
        }
        for (int j = 0; j < 16; j++) {
            q[j] = qs[j] & 15;
            q[j + 16] = qs[j] >> 4;
        }
    } else {
        const st_block_q8_0 *blk = (const st_block_q8_0 *)row + b;
        *d = blk->d;
        for (int j = 0; j < 32; j++)
            q[j] = blk->qs[j];
    }
}

size_t st_repack_bytes(const st_weight *w)
{
    uint32_t bb = st_repack_block_bytes(w->type);
    if (!bb || w->rows % ST_PACK_ROWS || w->cols % 32)
        return 0;
    return (size_t)(w->cols / 32) * bb * (w->rows / ST_PACK_ROWS);
}

st_status st_repack_weight(st_weight *w)
{
    w->packed = NULL;
    size_t bytes = st_repack_bytes(w);
    if (!bytes)
        return ST_OK;
    uint8_t *p = malloc(bytes);
    if (!p)
        return ST_E_NOMEM;
    st_repack_weight_into(w, p);
    return ST_OK;
}

void st_repack_weight_into(st_weight *w, uint8_t *p)
{
    w->packed = NULL;
    uint32_t bb = st_repack_block_bytes(w->type);
    if (!st_repack_bytes(w))
        return;
    uint32_t nb = w->cols / 32;
    size_t group = (size_t)nb * bb;
    int q[32];
    for (uint32_t g = 0; g < w->rows / ST_PACK_ROWS; g++)
        for (uint32_t b = 0; b < nb; b++) {
            uint8_t *o = p + g * group + (size_t)b * bb;
            uint16_t *dv = (uint16_t *)o, *mv = (uint16_t *)(o + 32);
            uint8_t *qv = o + (w->type == ST_GGML_Q4_1 ? 64 : 32);
            for (uint32_t r = 0; r < ST_PACK_ROWS; r++) {
                uint16_t d = 0, m = 0;
                unpack_block(w, g * ST_PACK_ROWS + r, b, q, &d, &m);
                dv[r] = d;
                if (w->type == ST_GGML_Q4_1)
                    mv[r] = m;
                if (w->type == ST_GGML_Q8_0) {
                    for (int j = 0; j < 8; j++)
                        for (int c = 0; c < 4; c++)
                            qv[j * 64 + r * 4 + c] = (uint8_t)(q[4 * j + c] + 128);
                } else {
                    for (int i = 0; i < 4; i++)
                        for (int c = 0; c < 4; c++)
                            qv[i * 64 + r * 4 + c] =
                                (uint8_t)(q[4 * i + c] | (q[16 + 4 * i + c] << 4));
                }
            }
        }
    w->packed = p;
    w->packed_group_bytes = group;
}
