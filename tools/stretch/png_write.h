/*
 * tools/stretch/png_write.h - write an RGB image as a PNG file with no
 * library: stored (uncompressed) deflate blocks, CRC-32 and Adler-32 by
 * hand. Evaluation plots are small, so size does not matter; having no
 * dependency does. A 5x7 bitmap font draws labels.
 */
#ifndef ST_CLI_PNG_WRITE_H
#define ST_CLI_PNG_WRITE_H

#include <stdint.h>

typedef struct st_image {
    uint32_t w, h;
    uint8_t *rgb; /* w * h * 3 */
} st_image;

/* A white image; NULL on allocation failure. */
st_image *st_image_new(uint32_t w, uint32_t h);
void st_image_free(st_image *img);
void st_image_fill_rect(st_image *img, int x, int y, int w, int h, uint32_t rgb);
void st_image_line(st_image *img, int x0, int y0, int x1, int y1, uint32_t rgb);
/* Draw ASCII text (digits, letters, . , % - + : / x = ( ) and space) with
 * the top-left corner at (x, y), each glyph `scale` pixels per dot. */
void st_image_text(st_image *img, int x, int y, const char *text, int scale, uint32_t rgb);
int st_image_text_width(const char *text, int scale);
/* 0 on success, -1 with errno set on failure. */
int st_image_write_png(const st_image *img, const char *path);

#endif
