/* The dependency-free PNG writer: a file any decoder accepts (signature,
 * chunk CRCs, zlib stream with stored blocks and Adler-32) holding exactly
 * the pixels drawn. Decoded here by hand, independently of the writer. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "png_write.h"

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t crc32_of(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xFFFFFFFFu;
}

/* Read the PNG back: check every CRC, inflate stored blocks, return the
 * filtered scanlines. */
static uint8_t *decode(const char *path, uint32_t *w, uint32_t *h, size_t *raw_len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    static uint8_t buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    cr_assert_eq(memcmp(buf, sig, 8), 0);
    uint8_t *z = malloc(n);
    size_t zn = 0;
    for (size_t off = 8; off < n;) {
        uint32_t len = be32(buf + off);
        const uint8_t *type = buf + off + 4;
        cr_assert_eq(crc32_of(type, len + 4), be32(buf + off + 8 + len), "bad CRC in %.4s", type);
        if (!memcmp(type, "IHDR", 4)) {
            *w = be32(type + 4);
            *h = be32(type + 8);
            cr_assert_eq(type[12], 8);
            cr_assert_eq(type[13], 2);
        } else if (!memcmp(type, "IDAT", 4)) {
            memcpy(z + zn, type + 4, len);
            zn += len;
        }
        off += 12 + len;
    }
    cr_assert_eq((z[0] * 256 + z[1]) % 31, 0, "zlib header check");
    uint8_t *raw = malloc(zn);
    size_t rn = 0, p = 2;
    for (;;) {
        int final = z[p] & 1;
        cr_assert_eq(z[p] & 6, 0, "stored block expected");
        uint32_t len = z[p + 1] | z[p + 2] << 8, nlen = z[p + 3] | z[p + 4] << 8;
        cr_assert_eq(len ^ 0xFFFF, nlen);
        memcpy(raw + rn, z + p + 5, len);
        rn += len;
        p += 5 + len;
        if (final)
            break;
    }
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < rn; i++) {
        a = (a + raw[i]) % 65521;
        b = (b + a) % 65521;
    }
    cr_assert_eq(be32(z + p), (b << 16) | a, "Adler-32");
    free(z);
    *raw_len = rn;
    return raw;
}

Test(png_write, pixels_round_trip)
{
    st_image *img = st_image_new(300, 250); /* > 65535 raw bytes: several blocks */
    cr_assert(img);
    st_image_fill_rect(img, 10, 20, 30, 40, 0x123456);
    st_image_text(img, 100, 100, "PPL 42%", 2, 0xFF0000);
    char path[64];
    snprintf(path, sizeof path, "/tmp/st_png_%d.png", (int)getpid());
    cr_assert_eq(st_image_write_png(img, path), 0);
    uint32_t w = 0, h = 0;
    size_t rn = 0;
    uint8_t *raw = decode(path, &w, &h, &rn);
    cr_assert_eq(w, 300);
    cr_assert_eq(h, 250);
    cr_assert_eq(rn, (size_t)h * (w * 3 + 1));
    for (uint32_t y = 0; y < h; y++) {
        cr_assert_eq(raw[y * (w * 3 + 1)], 0, "filter byte");
        cr_assert_eq(memcmp(raw + y * (w * 3 + 1) + 1, img->rgb + (size_t)y * w * 3, w * 3), 0);
    }
    const uint8_t *px = raw + 25 * (w * 3 + 1) + 1 + 15 * 3;
    cr_assert(px[0] == 0x12 && px[1] == 0x34 && px[2] == 0x56);
    /* The text drew something red. */
    int red = 0;
    for (uint32_t i = 0; i < w * h; i++)
        red += img->rgb[i * 3] == 0xFF && img->rgb[i * 3 + 1] == 0;
    cr_assert_gt(red, 50);
    free(raw);
    st_image_free(img);
    unlink(path);
}
