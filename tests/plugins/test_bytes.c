/*
 * tokenizer `bytes`: ids are bytes, specials after them, exact sizing.
 */
#include <string.h>

#include "plugin_fixture.h"

static const st_tokenizer_ops *ops(const st_plugin_entry *e)
{
    return e->ops;
}

Test(bytes, encodes_every_byte_as_itself)
{
    const st_plugin_entry *e = fx_entry("tokenizer", "bytes");
    void *t = fx_create(e, NULL);
    const char text[] = "h\xc3\xa9llo\x00\xff"; /* "héllo", a NUL and 0xff */
    size_t len = sizeof text - 1;
    int32_t ids[16];
    size_t n = 0;
    st_error err = {0};
    cr_assert_eq(ops(e)->encode(t, text, len, 0, ids, 16, &n, &err), ST_OK, "%s", err.message);
    cr_assert_eq(n, len);
    for (size_t i = 0; i < len; i++)
        cr_assert_eq(ids[i], (int32_t)(unsigned char)text[i], "id %zu", i);
    cr_assert_eq(ops(e)->vocab_size(t), 259);
    e->destroy(t);
    cr_assert_eq(st_test_host_default()->live_allocs, 0);
}

Test(bytes, add_bos_and_specials)
{
    const st_plugin_entry *e = fx_entry("tokenizer", "bytes");
    void *t = fx_create(e, NULL);
    st_special_tokens sp = {.struct_size = sizeof sp};
    ops(e)->special(t, &sp);
    cr_assert_eq(sp.bos, 256);
    cr_assert_eq(sp.eos, 257);
    cr_assert_eq(sp.pad, 258);
    cr_assert_eq(sp.unk, -1);
    cr_assert(ops(e)->is_special(t, 257));
    cr_assert_not(ops(e)->is_special(t, 65));

    int32_t ids[16];
    size_t n = 0;
    st_error err = {0};
    cr_assert_eq(ops(e)->encode(t, "ab", 2, ST_ENCODE_ADD_BOS, ids, 16, &n, &err), ST_OK);
    cr_assert_eq(n, 3);
    cr_assert_eq(ids[0], 256);
    cr_assert_eq(ids[1], 'a');

    /* Special text is parsed only with the flag. */
    const char *s = "a<eos>b<pad><bos";
    cr_assert_eq(ops(e)->encode(t, s, strlen(s), ST_ENCODE_PARSE_SPECIAL, ids, 16, &n, &err),
                 ST_OK);
    int32_t want[] = {'a', 257, 'b', 258, '<', 'b', 'o', 's'};
    cr_assert_eq(n, 8);
    cr_assert_arr_eq(ids, want, sizeof want);
    cr_assert_eq(ops(e)->encode(t, s, strlen(s), 0, ids, 16, &n, &err), ST_OK);
    cr_assert_eq(n, strlen(s));
    e->destroy(t);
}

Test(bytes, without_bos)
{
    const st_plugin_entry *e = fx_entry("tokenizer", "bytes");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_bool(&p, "bos", false);
    void *t = fx_create(e, &p);
    st_special_tokens sp = {.struct_size = sizeof sp};
    ops(e)->special(t, &sp);
    cr_assert_eq(sp.bos, -1);
    int32_t ids[16];
    size_t n = 0;
    st_error err = {0};
    cr_assert_eq(ops(e)->encode(t, "<bos>x", 6, ST_ENCODE_ADD_BOS | ST_ENCODE_PARSE_SPECIAL, ids,
                                16, &n, &err), ST_OK);
    cr_assert_eq(n, 6, "no BOS prepended and <bos> stays text");
    cr_assert_eq(ids[0], '<');
    e->destroy(t);
}

Test(bytes, bad_param_type_refused)
{
    const st_plugin_entry *e = fx_entry("tokenizer", "bytes");
    st_test_params p;
    st_test_params_init(&p);
    st_test_params_int(&p, "bos", 1);
    fx_create_fails(e, &p, ST_E_INVALID);
}

Test(bytes, decode_and_sizing)
{
    const st_plugin_entry *e = fx_entry("tokenizer", "bytes");
    void *t = fx_create(e, NULL);
    int32_t ids[] = {256, 'h', 'i', 257};
    char out[32];
    size_t n = 0;
    st_error err = {0};
    cr_assert_eq(ops(e)->decode(t, ids, 4, out, sizeof out, &n, &err), ST_OK);
    cr_assert_eq(n, 12);
    cr_assert(memcmp(out, "<bos>hi<eos>", 12) == 0);

    /* Too small: ST_E_RANGE with the full need, on both sides. */
    cr_assert_eq(ops(e)->decode(t, ids, 4, out, 5, &n, &err), ST_E_RANGE);
    cr_assert_eq(n, 12);
    int32_t few[2];
    cr_assert_eq(ops(e)->encode(t, "hello", 5, 0, few, 2, &n, &err), ST_E_RANGE);
    cr_assert_eq(n, 5);
    cr_assert(strstr(err.message, "5") != NULL, "%s", err.message);

    /* A bad id is invalid, not a buffer too small. */
    int32_t bad = 259;
    cr_assert_eq(ops(e)->decode(t, &bad, 1, out, sizeof out, &n, &err), ST_E_INVALID);
    e->destroy(t);
}

Test(bytes, pieces)
{
    const st_plugin_entry *e = fx_entry("tokenizer", "bytes");
    void *t = fx_create(e, NULL);
    const char *b = NULL;
    size_t len = 0;
    st_error err = {0};
    for (int32_t id = 0; id < 256; id++) {
        cr_assert_eq(ops(e)->piece(t, id, &b, &len, &err), ST_OK);
        cr_assert_eq(len, 1);
        cr_assert_eq((unsigned char)b[0], (unsigned)id);
    }
    cr_assert_eq(ops(e)->piece(t, 258, &b, &len, &err), ST_OK);
    cr_assert_eq(len, 5);
    cr_assert(memcmp(b, "<pad>", 5) == 0);
    cr_assert_eq(ops(e)->piece(t, 259, &b, &len, &err), ST_E_INVALID);
    cr_assert_eq(ops(e)->piece(t, -1, &b, &len, &err), ST_E_INVALID);
    e->destroy(t);
}
