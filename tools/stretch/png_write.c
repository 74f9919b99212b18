#include "png_write.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

st_image *st_image_new(uint32_t w, uint32_t h)
{
    st_image *img = malloc(sizeof *img);
    if (!img)
        return NULL;
    img->w = w;
    img->h = h;
    img->rgb = malloc((size_t)w * h * 3);
    if (!img->rgb) {
        free(img);
        return NULL;
    }
    memset(img->rgb, 0xFF, (size_t)w * h * 3);
    return img;
}

void st_image_free(st_image *img)
{
    if (img)
        free(img->rgb);
    free(img);
}

static void put(st_image *img, int x, int y, uint32_t rgb)
{
    if (x < 0 || y < 0 || (uint32_t)x >= img->w || (uint32_t)y >= img->h)
        return;
    uint8_t *p = img->rgb + ((size_t)y * img->w + (size_t)x) * 3;
    p[0] = (uint8_t)(rgb >> 16);
    p[1] = (uint8_t)(rgb >> 8);
    p[2] = (uint8_t)rgb;
}

void st_image_fill_rect(st_image *img, int x, int y, int w, int h, uint32_t rgb)
{
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++)
            put(img, i, j, rgb);
}

void st_image_line(st_image *img, int x0, int y0, int x1, int y1, uint32_t rgb)
{
    int dx = abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    int dy = -abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
        put(img, x0, y0, rgb);
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

/* 5x7 glyphs, one byte per row, bit 4 = leftmost column. */
static const struct {
    char c;
    uint8_t rows[7];
} font[] = {
    {'%', {0x18,0x19,0x02,0x04,0x08,0x13,0x03}},
    {'(', {0x02,0x04,0x08,0x08,0x08,0x04,0x02}},
    {')', {0x08,0x04,0x02,0x02,0x02,0x04,0x08}},
    {'+', {0x00,0x04,0x04,0x1f,0x04,0x04,0x00}},
    {',', {0x00,0x00,0x00,0x00,0x0c,0x04,0x08}},
    {'-', {0x00,0x00,0x00,0x1f,0x00,0x00,0x00}},
    {'.', {0x00,0x00,0x00,0x00,0x00,0x0c,0x0c}},
    {'/', {0x00,0x01,0x02,0x04,0x08,0x10,0x00}},
    {'0', {0x0e,0x11,0x13,0x15,0x19,0x11,0x0e}},
    {'1', {0x04,0x0c,0x04,0x04,0x04,0x04,0x0e}},
    {'2', {0x0e,0x11,0x01,0x02,0x04,0x08,0x1f}},
    {'3', {0x1e,0x01,0x01,0x0e,0x01,0x01,0x1e}},
    {'4', {0x02,0x06,0x0a,0x12,0x1f,0x02,0x02}},
    {'5', {0x1f,0x10,0x1e,0x01,0x01,0x11,0x0e}},
    {'6', {0x06,0x08,0x10,0x1e,0x11,0x11,0x0e}},
    {'7', {0x1f,0x01,0x02,0x04,0x08,0x08,0x08}},
    {'8', {0x0e,0x11,0x11,0x0e,0x11,0x11,0x0e}},
    {'9', {0x0e,0x11,0x11,0x0f,0x01,0x02,0x0c}},
    {':', {0x00,0x0c,0x0c,0x00,0x0c,0x0c,0x00}},
    {'=', {0x00,0x00,0x1f,0x00,0x1f,0x00,0x00}},
    {'A', {0x0e,0x11,0x11,0x1f,0x11,0x11,0x11}},
    {'B', {0x1e,0x11,0x11,0x1e,0x11,0x11,0x1e}},
    {'C', {0x0e,0x11,0x10,0x10,0x10,0x11,0x0e}},
    {'D', {0x1c,0x12,0x11,0x11,0x11,0x12,0x1c}},
    {'E', {0x1f,0x10,0x10,0x1e,0x10,0x10,0x1f}},
    {'F', {0x1f,0x10,0x10,0x1e,0x10,0x10,0x10}},
    {'G', {0x0e,0x11,0x10,0x17,0x11,0x11,0x0f}},
    {'H', {0x11,0x11,0x11,0x1f,0x11,0x11,0x11}},
    {'I', {0x0e,0x04,0x04,0x04,0x04,0x04,0x0e}},
    {'J', {0x07,0x02,0x02,0x02,0x02,0x12,0x0c}},
    {'K', {0x11,0x12,0x14,0x18,0x14,0x12,0x11}},
    {'L', {0x10,0x10,0x10,0x10,0x10,0x10,0x1f}},
    {'M', {0x11,0x1b,0x15,0x15,0x11,0x11,0x11}},
    {'N', {0x11,0x11,0x19,0x15,0x13,0x11,0x11}},
    {'O', {0x0e,0x11,0x11,0x11,0x11,0x11,0x0e}},
    {'P', {0x1e,0x11,0x11,0x1e,0x10,0x10,0x10}},
    {'Q', {0x0e,0x11,0x11,0x11,0x15,0x12,0x0d}},
    {'R', {0x1e,0x11,0x11,0x1e,0x14,0x12,0x11}},
    {'S', {0x0f,0x10,0x10,0x0e,0x01,0x01,0x1e}},
    {'T', {0x1f,0x04,0x04,0x04,0x04,0x04,0x04}},
    {'U', {0x11,0x11,0x11,0x11,0x11,0x11,0x0e}},
    {'V', {0x11,0x11,0x11,0x11,0x11,0x0a,0x04}},
    {'W', {0x11,0x11,0x11,0x15,0x15,0x15,0x0a}},
    {'X', {0x11,0x11,0x0a,0x04,0x0a,0x11,0x11}},
    {'Y', {0x11,0x11,0x11,0x0a,0x04,0x04,0x04}},
    {'Z', {0x1f,0x01,0x02,0x04,0x08,0x10,0x1f}},
    {'_', {0x00,0x00,0x00,0x00,0x00,0x00,0x1f}},
};

static const uint8_t *glyph(char c)
{
    c = (char)toupper((unsigned char)c);
    for (size_t i = 0; i < sizeof font / sizeof font[0]; i++)
        if (font[i].c == c)
            return font[i].rows;
    return NULL;
}

int st_image_text_width(const char *text, int scale)
{
    return (int)strlen(text) * 6 * scale;
}

void st_image_text(st_image *img, int x, int y, const char *text, int scale, uint32_t rgb)
{
    for (; *text; text++, x += 6 * scale) {
        const uint8_t *g = glyph(*text);
        if (!g)
            continue;
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++)
                if (g[r] & (0x10 >> c))
                    st_image_fill_rect(img, x + c * scale, y + r * scale, scale, scale, rgb);
    }
}

static uint32_t crc_table[256];

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc_update(uint32_t crc, const uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        crc = crc_table[(crc ^ buf[i]) & 0xFF] ^ (crc >> 8);
    return crc;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int write_chunk(FILE *f, const char *type, const uint8_t *data, size_t n)
{
    uint8_t len[4], crc_be[4];
    put_be32(len, (uint32_t)n);
    uint32_t crc = crc_update(0xFFFFFFFFu, (const uint8_t *)type, 4);
    crc = crc_update(crc, data, n) ^ 0xFFFFFFFFu;
    put_be32(crc_be, crc);
    return fwrite(len, 1, 4, f) == 4 && fwrite(type, 1, 4, f) == 4 &&
                   (n == 0 || fwrite(data, 1, n, f) == n) && fwrite(crc_be, 1, 4, f) == 4
               ? 0 : -1;
}

int st_image_write_png(const st_image *img, const char *path)
{
    crc_init();
    size_t row = (size_t)img->w * 3 + 1; /* filter byte + pixels */
    size_t raw_len = row * img->h;
    /* zlib stream: header, stored blocks of <= 65535 bytes, Adler-32. */
    size_t n_blocks = raw_len / 65535 + 1;
    size_t z_len = 2 + raw_len + n_blocks * 5 + 4;
    uint8_t *z = malloc(z_len);
    uint8_t *raw = malloc(raw_len);
    if (!z || !raw) {
        free(z);
        free(raw);
        return -1;
    }
    for (uint32_t y = 0; y < img->h; y++) {
        raw[y * row] = 0;
        memcpy(raw + y * row + 1, img->rgb + (size_t)y * img->w * 3, (size_t)img->w * 3);
    }
    size_t w = 0;
    z[w++] = 0x78;
    z[w++] = 0x01;
    uint32_t a = 1, b = 0;
    for (size_t off = 0; off < raw_len || off == 0;) {
        size_t n = raw_len - off > 65535 ? 65535 : raw_len - off;
        z[w++] = off + n >= raw_len ? 1 : 0;
        z[w++] = (uint8_t)n;
        z[w++] = (uint8_t)(n >> 8);
        z[w++] = (uint8_t)~n;
        z[w++] = (uint8_t)(~n >> 8);
        memcpy(z + w, raw + off, n);
        for (size_t i = 0; i < n; i++) {
            a = (a + raw[off + i]) % 65521;
            b = (b + a) % 65521;
        }
        w += n;
        off += n;
        if (raw_len == 0)
            break;
    }
    put_be32(z + w, (b << 16) | a);
    w += 4;
    free(raw);

    FILE *f = fopen(path, "wb");
    if (!f) {
        free(z);
        return -1;
    }
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    uint8_t ihdr[13];
    put_be32(ihdr, img->w);
    put_be32(ihdr + 4, img->h);
    ihdr[8] = 8;  /* bit depth */
    ihdr[9] = 2;  /* truecolour */
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    int rc = fwrite(sig, 1, 8, f) == 8 && write_chunk(f, "IHDR", ihdr, 13) == 0 &&
                     write_chunk(f, "IDAT", z, w) == 0 && write_chunk(f, "IEND", NULL, 0) == 0
                 ? 0 : -1;
    free(z);
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}
