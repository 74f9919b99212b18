/*
 * tests/loader/test_json_out.c - the CLI's JSON writer: structure, commas,
 * escaping of quotes, backslashes and control characters, invalid UTF-8
 * replaced, non-finite numbers as null.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_out.h"

static char *render(void (*fn)(st_json *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    st_json j;
    st_json_init(&j, f, false);
    fn(&j);
    fclose(f);
    return buf;
}

static void doc(st_json *j)
{
    st_json_begin_object(j);
    st_json_key(j, "s");
    st_json_string(j, "a\"b\\c\n\t\x01 \xc3\xa9 \xff end");
    st_json_key(j, "n");
    st_json_null(j);
    st_json_key(j, "list");
    st_json_begin_array(j);
    st_json_int(j, -3);
    st_json_uint(j, 18446744073709551615ull);
    st_json_double(j, 0.5);
    st_json_double(j, INFINITY);
    st_json_double(j, NAN);
    st_json_bool(j, true);
    st_json_begin_object(j);
    st_json_end_object(j);
    st_json_begin_array(j);
    st_json_end_array(j);
    st_json_end_array(j);
    st_json_key(j, "nul");
    st_json_string(j, NULL);
    st_json_end_object(j);
}

Test(json_out, compact_document)
{
    char *s = render(doc);
    cr_assert_str_eq(s, "{\"s\":\"a\\\"b\\\\c\\n\\t\\u0001 \xc3\xa9 \\ufffd end\",\"n\":null,"
                        "\"list\":[-3,18446744073709551615,0.5,null,null,true,{},[]],"
                        "\"nul\":null}");
    free(s);
}

static void truncated_utf8(st_json *j)
{
    st_json_string_n(j, "\xe2\x82", 2);  /* first two bytes of a 3-byte char */
}

Test(json_out, truncated_sequences_are_replaced)
{
    char *s = render(truncated_utf8);
    cr_assert_str_eq(s, "\"\\ufffd\\ufffd\"");
    free(s);
}

static void surrogate(st_json *j)
{
    st_json_string(j, "\xed\xa0\x80"); /* an encoded UTF-16 surrogate: invalid */
}

Test(json_out, surrogates_are_replaced)
{
    char *s = render(surrogate);
    cr_assert_str_eq(s, "\"\\ufffd\\ufffd\\ufffd\"");
    free(s);
}

static void pretty(st_json *j)
{
    st_json_begin_object(j);
    st_json_key(j, "a");
    st_json_begin_array(j);
    st_json_int(j, 1);
    st_json_int(j, 2);
    st_json_end_array(j);
    st_json_end_object(j);
}

Test(json_out, pretty_printing)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    st_json j;
    st_json_init(&j, f, true);
    pretty(&j);
    fclose(f);
    cr_assert_str_eq(buf, "{\n  \"a\": [\n    1,\n    2\n  ]\n}");
    free(buf);
}
