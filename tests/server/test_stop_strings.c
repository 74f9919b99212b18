/*
 * tools/stretch/stop_strings.c: an answer ends where a stop string first
 * appears, however the text is cut into tokens; what is shown before that
 * never holds the start of one that may still complete, nor half a UTF-8
 * character; at the end, what was held back is shown.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "stop_strings.h"

typedef struct shown {
    char text[256];
    size_t n;
    size_t calls;
} shown;

static void collect(void *user, const char *text, size_t len)
{
    shown *s = user;
    cr_assert(len > 0, "an empty piece was shown");
    cr_assert(s->n + len < sizeof s->text);
    memcpy(s->text + s->n, text, len);
    s->n += len;
    s->text[s->n] = '\0';
    s->calls++;
}

/* Feed `pieces` in turn; the stream's result at the end, what was shown. */
static int feed(const char *const *stops, size_t n_stops, const char *const *pieces,
                shown *out)
{
    st_stop_text s;
    st_stop_text_init(&s, stops, n_stops);
    memset(out, 0, sizeof *out);
    int hit = 0;
    for (size_t i = 0; pieces[i] && !hit; i++)
        hit = st_stop_text_feed(&s, pieces[i], strlen(pieces[i]), collect, out);
    st_stop_text_end(&s, collect, out);
    return hit;
}

Test(stop_strings, the_earliest_stop_ends_the_text_across_pieces)
{
    const char *stops[] = {"</answer>", "\n\n"};
    const char *pieces[] = {"The cap", "ital is Paris.</", "ans", "wer> and more", NULL};
    shown got;
    cr_assert_eq(feed(stops, 2, pieces, &got), 1);
    cr_assert_str_eq(got.text, "The capital is Paris.");
    const char *later[] = {"one\n", "\ntwo</answer>", NULL};
    cr_assert_eq(feed(stops, 2, later, &got), 1);
    cr_assert_str_eq(got.text, "one");
    const char *none[] = {"no stop <", "/ans here", NULL};
    cr_assert_eq(feed(stops, 2, none, &got), 0);
    cr_assert_str_eq(got.text, "no stop </ans here", "held text is shown at the end");
}

Test(stop_strings, what_may_begin_a_stop_is_held_back_as_whole_characters)
{
    const char *stops[] = {"END"};
    st_stop_text s;
    st_stop_text_init(&s, stops, 1);
    shown got = {0};
    cr_assert_eq(st_stop_text_feed(&s, "abcE", 4, collect, &got), 0);
    cr_assert_str_eq(got.text, "ab", "the last 2 bytes may begin END");
    /* "é" is two bytes: the cut never falls inside it. */
    cr_assert_eq(st_stop_text_feed(&s, "\xc3\xa9N", 3, collect, &got), 0);
    cr_assert_str_eq(got.text, "abcE", "not 'abcE' and half of the e");
    cr_assert_eq(st_stop_text_feed(&s, "xEND!", 5, collect, &got), 1);
    cr_assert_str_eq(got.text, "abcE\xc3\xa9Nx");
    cr_assert_eq(st_stop_text_feed(&s, "more", 4, collect, &got), 1, "stays stopped");
    st_stop_text_end(&s, collect, &got);
    cr_assert_str_eq(got.text, "abcE\xc3\xa9Nx");
    /* Without stops, every piece goes straight through. */
    const char *pieces[] = {"a", "b", NULL};
    cr_assert_eq(feed(NULL, 0, pieces, &got), 0);
    cr_assert_str_eq(got.text, "ab");
    cr_assert_eq(got.calls, 2);
}

Test(stop_strings, find_and_safe_end_serve_a_whole_text)
{
    const char *stops[] = {"ab", "b"};
    cr_assert_eq(st_stop_find(stops, 2, "xxab", 4, 0), 2);
    cr_assert_eq(st_stop_find(stops, 2, "xxab", 4, 3), 3);
    cr_assert_eq(st_stop_find(stops, 2, "xxa", 3, 0), -1);
    cr_assert_eq(st_stop_safe_end("hello", 5, 3, 0), 3);
    cr_assert_eq(st_stop_safe_end("hello", 5, 3, 4), 4, "never below what was shown");
    cr_assert_eq(st_stop_safe_end("h\xc3\xa9llo", 6, 5, 0), 1, "not inside the 2-byte e");
    cr_assert_eq(st_stop_safe_end("hi", 2, 0, 0), 2);
}
