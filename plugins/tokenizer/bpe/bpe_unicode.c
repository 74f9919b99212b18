/*
 * bpe_unicode.c - see bpe_unicode.h.
 */
#include "bpe_unicode.h"

static int in_ranges(const st_bpe_range *r, size_t n, uint32_t cp)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp < r[mid].lo)
            hi = mid;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

uint8_t st_bpe_class_of(uint32_t cp)
{
    /* ASCII is most of real text: answer it without a search. */
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return ST_BPE_LETTER;
        if (cp >= '0' && cp <= '9')
            return ST_BPE_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D))
            return ST_BPE_SPACE;
        return ST_BPE_OTHER;
    }
    if (in_ranges(st_bpe_space_ranges, st_bpe_space_ranges_count, cp))
        return ST_BPE_SPACE;
    if (in_ranges(st_bpe_letter_ranges, st_bpe_letter_ranges_count, cp))
        return ST_BPE_LETTER;
    if (in_ranges(st_bpe_number_ranges, st_bpe_number_ranges_count, cp))
        return ST_BPE_NUMBER;
    return ST_BPE_OTHER;
}

static int is_cont(uint8_t b)
{
    return (b & 0xC0) == 0x80;
}

uint32_t st_bpe_utf8_decode(const uint8_t *s, size_t len, size_t *used)
{
    uint8_t b0 = s[0];
    *used = 1;
    if (!(b0 & 0x80))
        return b0;
    if (!(b0 & 0x40)) /* a stray continuation byte */
        return ST_BPE_REPLACEMENT;
    if (!(b0 & 0x20)) {
        if (len < 2 || !is_cont(s[1]))
            return ST_BPE_REPLACEMENT;
        uint32_t cp = ((uint32_t)(b0 & 0x1F) << 6) | (s[1] & 0x3F);
        if (cp < 0x80) /* overlong: C0 AF would smuggle a '/' past checks */
            return ST_BPE_REPLACEMENT;
        *used = 2;
        return cp;
    }
    if (!(b0 & 0x10)) {
        if (len < 3 || !is_cont(s[1]) || !is_cont(s[2]))
            return ST_BPE_REPLACEMENT;
        uint32_t cp = ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) |
                      (s[2] & 0x3F);
        if (cp < 0x800) /* overlong */
            return ST_BPE_REPLACEMENT;
        *used = 3;
        return cp;
    }
    if (!(b0 & 0x08)) {
        if (len < 4 || !is_cont(s[1]) || !is_cont(s[2]) || !is_cont(s[3]))
            return ST_BPE_REPLACEMENT;
        uint32_t cp = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
                      ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        /* F4 90.. to F7 BF.. decode past U+10FFFF, which llama.cpp cannot
         * re-encode (it throws); treat the lead byte as invalid instead. */
        if (cp < 0x10000 || cp > 0x10FFFF)
            return ST_BPE_REPLACEMENT;
        *used = 4;
        return cp;
    }
    return ST_BPE_REPLACEMENT;
}

size_t st_bpe_utf8_encode(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

void st_bpe_byte_map(uint16_t byte_cp[256], int16_t cp_byte[ST_BPE_CP_BYTE_SIZE])
{
    /* Printable bytes stand for themselves; the others (controls, space,
     * DEL, C1, NBSP, soft hyphen) take 256, 257, ... in byte order. */
    uint16_t next = 256;
    for (int cp = 0; cp < ST_BPE_CP_BYTE_SIZE; cp++)
        cp_byte[cp] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
                        (b >= 0xAE && b <= 0xFF);
        byte_cp[b] = printable ? (uint16_t)b : next++;
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}
