/*
 * core/base/word_hash.h: the streaming hasher gives the one-call hash of
 * the pieces joined, however they are cut (a prompt cache is hashed as it
 * is written, in pieces of 4 bytes to megabytes, and read back in one);
 * any changed byte or length changes it.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "word_hash.h"

Test(word_hash, pieces_of_any_length_hash_as_the_whole)
{
    unsigned char data[203];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    uint64_t whole = st_word_hash(ST_WORD_HASH_INIT, data, sizeof data);
    static const size_t cuts[][4] = {{4, 4, 100, 95}, {1, 2, 3, 197}, {8, 16, 0, 179},
                                     {203, 0, 0, 0}, {7, 9, 13, 174}};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        st_word_hasher w;
        st_word_hasher_init(&w);
        size_t at = 0;
        for (int k = 0; k < 4; k++) {
            st_word_hasher_feed(&w, data + at, cuts[c][k]);
            at += cuts[c][k];
        }
        cr_assert_eq(at, sizeof data);
        cr_assert_eq(st_word_hasher_end(&w), whole, "cut %zu", c);
    }
    data[150] ^= 1;
    cr_assert_neq(st_word_hash(ST_WORD_HASH_INIT, data, sizeof data), whole);
    data[150] ^= 1;
    cr_assert_neq(st_word_hash(ST_WORD_HASH_INIT, data, sizeof data - 1), whole);
}
