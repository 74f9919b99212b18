/*
 * tests/server/test_utf8_text.c - quotes of client text in replies stay
 * UTF-8 (utf8_text.h): invalid bytes become '?', a cut never splits a
 * character.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "utf8_text.h"

Test(utf8_text, invalid_bytes_become_question_marks)
{
    char out[64];
    cr_assert_str_eq(st_utf8_clean("a\xff" "b\xc3", out, sizeof out), "a?b?");
    /* Overlong, surrogate, past U+10FFFF, stray continuation. */
    cr_assert_str_eq(st_utf8_clean("\xc0\xaf|\xed\xa0\x80|\xf4\x90\x80\x80|\x80", out,
                                   sizeof out),
                     "??|???|????|?");
    /* Valid text (controls included: JSON escapes them) is copied as is. */
    const char *ok = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\t\x01";
    cr_assert_str_eq(st_utf8_clean(ok, out, sizeof out), ok);
    cr_assert_str_eq(st_utf8_clean(NULL, out, sizeof out), "");
}

Test(utf8_text, a_character_that_does_not_fit_is_left_out_whole)
{
    char out[5];
    cr_assert_str_eq(st_utf8_clean("ab\xe2\x82\xac", out, sizeof out), "ab");
    cr_assert_str_eq(st_utf8_clean("abc\xc3\xa9", out, sizeof out), "abc");
    cr_assert_str_eq(st_utf8_clean("a\xc3\xa9z", out, sizeof out), "a\xc3\xa9z");
    char one[1];
    cr_assert_str_eq(st_utf8_clean("abc", one, sizeof one), "");
}

Test(utf8_text, clean_dup_keeps_the_length_and_replaces_bad_bytes_and_nul)
{
    /* A stored document: invalid bytes, an embedded NUL, a character cut
     * by the end of the text; every valid character is kept. */
    const char in[] = "ok \xc3\xa9\xff\0x\xe2\x82";
    char *out = st_utf8_clean_dup(in, sizeof in - 1);
    cr_assert_not_null(out);
    cr_assert_eq(strlen(out), sizeof in - 1);
    cr_assert_str_eq(out, "ok \xc3\xa9??x??");
    free(out);
    out = st_utf8_clean_dup("", 0);
    cr_assert_str_eq(out, "");
    free(out);
}
