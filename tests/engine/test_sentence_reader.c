/*
 * The sentence reader st_engine_read streams a document through: where
 * sentences end, how a stretch without a boundary is cut, and that the
 * sentences always put the document back together byte for byte, however
 * the stream is delivered.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "sentence_reader.h"

typedef struct source {
    const char *text;
    size_t len, at, step;  /* step: the most bytes one read returns */
    bool fail;
} source;

static size_t read_source(void *user, char *buf, size_t cap)
{
    source *s = user;
    if (s->fail && s->at > 0)
        return ST_READ_ERROR;
    size_t n = s->len - s->at;
    if (n > cap)
        n = cap;
    if (s->step && n > s->step)
        n = s->step;
    memcpy(buf, s->text + s->at, n);
    s->at += n;
    return n;
}

/* Every sentence of `text` into out[] (NUL-separated copies); returns the
 * count and checks the concatenation is the text. */
static size_t split(const char *text, size_t len, size_t max_bytes, size_t step,
                    char **out, size_t cap)
{
    source src = {text, len, 0, step, false};
    st_sentence_reader r;
    st_error err = {0};
    cr_assert_eq(st_sentence_reader_init(&r, read_source, &src, max_bytes, &err), ST_OK);
    size_t n = 0, total = 0;
    for (;;) {
        const char *s;
        size_t m;
        cr_assert_eq(st_sentence_next(&r, &s, &m, &err), ST_OK, "%s", err.message);
        if (m == 0)
            break;
        cr_assert_leq(m, max_bytes, "a sentence of %zu bytes, the cut is %zu", m, max_bytes);
        cr_assert_eq(memcmp(s, text + total, m), 0, "sentence %zu is not the next text", n);
        total += m;
        if (n < cap)
            out[n] = strndup(s, m);
        n++;
    }
    cr_assert_eq(total, len, "the sentences put the document back together");
    cr_assert_eq(r.n_bytes, len);
    st_sentence_reader_free(&r);
    return n;
}

static void free_all(char **s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(s[i]);
}

Test(sentence_reader, ends_after_punctuation_and_newlines)
{
    const char *text = "The grass is green. Is it? Yes! 3.14 is pi.\nNext line\nend.";
    char *s[16];
    for (size_t step = 0; step <= 3; step++) { /* whole, then 1, 2, 3 bytes per read */
        size_t n = split(text, strlen(text), 1024, step, s, 16);
        cr_assert_eq(n, 6, "step %zu: %zu sentences", step, n);
        cr_assert_str_eq(s[0], "The grass is green.");
        cr_assert_str_eq(s[1], " Is it?");
        cr_assert_str_eq(s[2], " Yes!");
        cr_assert_str_eq(s[3], " 3.14 is pi.\n", "a '.' inside a number is no boundary");
        cr_assert_str_eq(s[4], "Next line\n");
        cr_assert_str_eq(s[5], "end.");
        free_all(s, n);
    }
}

Test(sentence_reader, cuts_a_line_without_boundaries_at_spaces)
{
    /* 100k characters, words but no sentence ends: the bad input. */
    size_t len = 100000;
    char *text = malloc(len);
    for (size_t i = 0; i < len; i++)
        text[i] = i % 6 == 5 ? ' ' : (char)('a' + i % 26);
    char *s[1];
    size_t n = split(text, len, 1024, 4096, s, 1);
    cr_assert_geq(n, len / 1024, "cut into pieces of at most 1024 bytes: %zu", n);
    cr_assert_leq(n, len / 1000 + 2, "and not into needlessly small ones: %zu", n);
    cr_assert_neq(s[0][strlen(s[0]) - 1], ' ', "the cut lies before a space");
    free_all(s, 1);
    free(text);
}

Test(sentence_reader, cuts_text_without_spaces_at_character_boundaries)
{
    /* "é" is two bytes: a cut must never split it. */
    size_t reps = 5000;
    char *text = malloc(reps * 2 + 1);
    for (size_t i = 0; i < reps; i++)
        memcpy(text + 2 * i, "\xC3\xA9", 2);
    char *s[64];
    size_t n = split(text, reps * 2, 101, 0, s, 64);
    for (size_t i = 0; i < n && i < 64; i++)
        cr_assert_eq(strlen(s[i]) % 2, 0, "sentence %zu splits a character", i);
    free_all(s, n < 64 ? n : 64);
    free(text);
}

Test(sentence_reader, reports_a_failing_stream)
{
    source src = {"One. Two. Three.", 16, 0, 5, true};
    st_sentence_reader r;
    st_error err = {0};
    cr_assert_eq(st_sentence_reader_init(&r, read_source, &src, 64, &err), ST_OK);
    const char *s;
    size_t m;
    cr_assert_eq(st_sentence_next(&r, &s, &m, &err), ST_E_IO);
    cr_assert(strstr(err.message, "reading the document failed"), "%s", err.message);
    st_sentence_reader_free(&r);
}

Test(sentence_reader, an_empty_document_has_no_sentences)
{
    char *s[1];
    cr_assert_eq(split("", 0, 64, 0, s, 1), 0);
}
