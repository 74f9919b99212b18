/*
 * bpe_unicode.h - the Unicode pieces byte-level BPE needs: UTF-8 decoding
 * with llama.cpp's rules for invalid input, the coarse code point classes
 * of the GPT-2 pre-tokenizer regex, and GPT-2's bytes <-> code points map.
 */
#ifndef ST_BPE_UNICODE_H
#define ST_BPE_UNICODE_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_bpe_range {
    uint32_t lo, hi; /* inclusive */
} st_bpe_range;

/* Generated tables (bpe_unicode_tables.c). */
extern const st_bpe_range st_bpe_letter_ranges[];
extern const size_t st_bpe_letter_ranges_count;
extern const st_bpe_range st_bpe_number_ranges[];
extern const size_t st_bpe_number_ranges_count;
extern const st_bpe_range st_bpe_space_ranges[];
extern const size_t st_bpe_space_ranges_count;

/* The classes the regex distinguishes. NONE stands for "outside the
 * fragment being split" (llama.cpp's empty flags), so it is zero. */
enum {
    ST_BPE_NONE = 0,
    ST_BPE_LETTER = 1, /* \p{L} */
    ST_BPE_NUMBER = 2, /* \p{N} */
    ST_BPE_SPACE = 3,  /* \s (Unicode White_Space) */
    ST_BPE_OTHER = 4   /* everything else, unassigned code points included */
};

uint8_t st_bpe_class_of(uint32_t cp);

#define ST_BPE_REPLACEMENT 0xFFFDu

/* Decode one code point at s[0..len). Invalid sequences yield U+FFFD and
 * consume one byte, as llama.cpp's unicode_cpts_from_utf8 does. Overlong
 * forms are invalid too (llama.cpp accepts them): C0 80 must not become a
 * NUL token nor C0 AF a '/'. Surrogates are decoded as llama.cpp does.
 * *used gets the bytes consumed (>= 1). len must be > 0. */
uint32_t st_bpe_utf8_decode(const uint8_t *s, size_t len, size_t *used);

/* Encode cp (<= 0x10FFFF) as UTF-8 into out; returns the byte count. */
size_t st_bpe_utf8_encode(uint32_t cp, uint8_t out[4]);

/* GPT-2's bytes_to_unicode: every byte has a printable stand-in code point.
 * byte_cp[b] is the stand-in of byte b; cp_byte[cp] is the byte a stand-in
 * cp < ST_BPE_CP_BYTE_SIZE means, or -1. */
#define ST_BPE_CP_BYTE_SIZE 324
void st_bpe_byte_map(uint16_t byte_cp[256], int16_t cp_byte[ST_BPE_CP_BYTE_SIZE]);

#endif
