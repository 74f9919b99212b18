/*
 * core/base/word_hash.h: any changed byte or length changes the hash;
 * the four-lane hasher gives the hash of the pieces joined, however they
 * are cut (a prompt cache is hashed as it is written, in pieces of 4 bytes
 * to megabytes, and read back in one).
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "word_hash.h"

Test(word_hash, a_changed_byte_or_length_changes_the_hash)
{
    unsigned char data[203];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    uint64_t whole = st_word_hash(ST_WORD_HASH_INIT, data, sizeof data);
    data[150] ^= 1;
    cr_assert_neq(st_word_hash(ST_WORD_HASH_INIT, data, sizeof data), whole);
    data[150] ^= 1;
    cr_assert_neq(st_word_hash(ST_WORD_HASH_INIT, data, sizeof data - 1), whole);
}

/* The four-lane hasher: pieces of any length hash as the whole (cuts
 * inside and across its 32-byte blocks, a tail of 1 to 31 bytes); a
 * changed byte, a byte more and the lanes' order all change it. */
Test(word_hash, four_lanes_hash_pieces_as_the_whole)
{
    unsigned char data[203];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof data; len += 29) {
        st_word_hasher4 whole;
        st_word_hasher4_init(&whole);
        st_word_hasher4_feed(&whole, data, len);
        uint64_t want = st_word_hasher4_end(&whole);
        for (size_t cut = 1; cut < 40; cut += 3) {
            st_word_hasher4 w;
            st_word_hasher4_init(&w);
            for (size_t at = 0; at < len; at += cut)
                st_word_hasher4_feed(&w, data + at, len - at < cut ? len - at : cut);
            cr_assert_eq(st_word_hasher4_end(&w), want, "length %zu in pieces of %zu", len,
                         cut);
        }
    }
    st_word_hasher4 a, b;
    st_word_hasher4_init(&a);
    st_word_hasher4_feed(&a, data, 64);
    uint64_t base = st_word_hasher4_end(&a);
    data[40] ^= 1;
    st_word_hasher4_init(&b);
    st_word_hasher4_feed(&b, data, 64);
    cr_assert_neq(st_word_hasher4_end(&b), base);
    data[40] ^= 1;
    st_word_hasher4_init(&b);
    st_word_hasher4_feed(&b, data, 65);
    cr_assert_neq(st_word_hasher4_end(&b), base);
    /* Swapping two words of different lanes is seen. */
    unsigned char swapped[64];
    memcpy(swapped, data, 64);
    memcpy(swapped, data + 8, 8);
    memcpy(swapped + 8, data, 8);
    st_word_hasher4_init(&b);
    st_word_hasher4_feed(&b, swapped, 64);
    cr_assert_neq(st_word_hasher4_end(&b), base);
}
