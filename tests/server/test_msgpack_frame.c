/*
 * tests/server/test_msgpack_frame.c - the RPC listener's framing scan
 * (msgpack_frame.h) against msgpack-c's own packer and parser, and the
 * msgpack -> JSON conversion's refusals (msgpack_json.h).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "msgpack_frame.h"
#include "msgpack_json.h"

#define LIMIT (1u << 20)

static const uint8_t *bytes(const msgpack_sbuffer *sb)
{
    return (const uint8_t *)sb->data;
}

/* One message with every msgpack type and every length form. */
static void pack_everything(msgpack_packer *pk)
{
    static const char blob[300] = {1, 2, 3};
    msgpack_pack_map(pk, 20); /* map16 */
    for (int i = 0; i < 20; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        msgpack_pack_str_with_body(pk, key, strlen(key));
        switch (i) {
        case 0: msgpack_pack_nil(pk); break;
        case 1: msgpack_pack_true(pk); break;
        case 2: msgpack_pack_int64(pk, -5); break;          /* negative fixint */
        case 3: msgpack_pack_uint64(pk, 200); break;        /* uint8 */
        case 4: msgpack_pack_uint64(pk, 60000); break;      /* uint16 */
        case 5: msgpack_pack_uint64(pk, 4000000000u); break;
        case 6: msgpack_pack_uint64(pk, UINT64_MAX); break;
        case 7: msgpack_pack_int64(pk, -100); break;        /* int8 */
        case 8: msgpack_pack_int64(pk, INT64_MIN); break;
        case 9: msgpack_pack_float(pk, 1.5f); break;
        case 10: msgpack_pack_double(pk, -2.25); break;
        case 11: msgpack_pack_str_with_body(pk, blob, 40); break;  /* str8 */
        case 12: msgpack_pack_str_with_body(pk, blob, 300); break; /* str16 */
        case 13: msgpack_pack_bin_with_body(pk, blob, 7); break;
        case 14: msgpack_pack_bin_with_body(pk, blob, 300); break;
        case 15: msgpack_pack_ext_with_body(pk, blob, 1, 3); break;  /* fixext1 */
        case 16: msgpack_pack_ext_with_body(pk, blob, 16, 3); break; /* fixext16 */
        case 17: msgpack_pack_ext_with_body(pk, blob, 5, 3); break;  /* ext8 */
        case 18:
            msgpack_pack_array(pk, 17); /* array16 */
            for (int j = 0; j < 17; j++)
                msgpack_pack_array(pk, 0);
            break;
        default:
            msgpack_pack_map(pk, 1);
            msgpack_pack_str_with_body(pk, "x", 1);
            msgpack_pack_map(pk, 0);
        }
    }
}

Test(msgpack_frame, a_whole_message_is_found_and_every_prefix_waits)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_everything(&pk);
    size_t one = sb.size;
    msgpack_pack_array(&pk, 1); /* a second message right after the first */
    msgpack_pack_nil(&pk);

    size_t len = 0;
    cr_assert_eq(st_msgpack_frame_scan(bytes(&sb), sb.size, LIMIT, &len), ST_FRAME_COMPLETE);
    cr_assert_eq(len, one);
    cr_assert_eq(st_msgpack_frame_scan(bytes(&sb) + one, sb.size - one, LIMIT, &len),
                 ST_FRAME_COMPLETE);
    cr_assert_eq(len, 2);
    for (size_t cut = 0; cut < one; cut++)
        cr_assert_eq(st_msgpack_frame_scan(bytes(&sb), cut, LIMIT, &len), ST_FRAME_INCOMPLETE,
                     "a %zu-byte prefix of a %zu-byte message", cut, one);

    /* msgpack-c agrees on the length. */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, one);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

Test(msgpack_frame, counts_and_lengths_past_the_limit_are_refused_from_their_header)
{
    size_t len = 0;
    /* Five bytes that would make msgpack-c allocate ~100 GB. */
    const uint8_t huge_array[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const uint8_t huge_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    const uint8_t huge_str[] = {0xdb, 0x7f, 0xff, 0xff, 0xff};
    const uint8_t huge_bin[] = {0xc6, 0x00, 0x10, 0x00, 0x01};
    cr_assert_eq(st_msgpack_frame_scan(huge_array, 5, LIMIT, &len), ST_FRAME_INVALID);
    cr_assert_eq(st_msgpack_frame_scan(huge_map, 5, LIMIT, &len), ST_FRAME_INVALID);
    cr_assert_eq(st_msgpack_frame_scan(huge_str, 5, LIMIT, &len), ST_FRAME_INVALID);
    cr_assert_eq(st_msgpack_frame_scan(huge_bin, 5, LIMIT, &len), ST_FRAME_INVALID);
    /* A map's count is of pairs: 0x8000 pairs are 0x10000 values. */
    const uint8_t pairs[] = {0xde, 0x80, 0x00};
    cr_assert_eq(st_msgpack_frame_scan(pairs, 3, 0x10000, &len), ST_FRAME_INVALID);
    cr_assert_eq(st_msgpack_frame_scan(pairs, 3, 0x10003, &len), ST_FRAME_INCOMPLETE);
    /* A prefix that already reaches the limit cannot complete under it. */
    const uint8_t str8[] = {0xd9, 0x10, 'a', 'b'};
    cr_assert_eq(st_msgpack_frame_scan(str8, 4, 18, &len), ST_FRAME_INCOMPLETE);
    cr_assert_eq(st_msgpack_frame_scan(str8, 4, 17, &len), ST_FRAME_INVALID);
    /* 0xc1 is never used. */
    const uint8_t unused[] = {0x91, 0xc1};
    cr_assert_eq(st_msgpack_frame_scan(unused, 2, LIMIT, &len), ST_FRAME_INVALID);
}

/* depth nested one-element arrays around `inner` (n_inner bytes). */
static size_t nest(uint8_t *out, int depth, const uint8_t *inner, size_t n_inner)
{
    memset(out, 0x91, (size_t)depth);
    memcpy(out + depth, inner, n_inner);
    return (size_t)depth + n_inner;
}

static msgpack_unpack_return msgpack_c_says(const uint8_t *p, size_t n)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&up, (const char *)p, n, &off);
    msgpack_unpacked_destroy(&up);
    return r;
}

Test(msgpack_frame, nesting_stops_where_msgpack_c_stops)
{
    uint8_t buf[64];
    size_t len = 0;
    const uint8_t nil = 0xc0, empty = 0x90;
    size_t n = nest(buf, ST_MSGPACK_FRAME_MAX_DEPTH, &nil, 1);
    cr_assert_eq(st_msgpack_frame_scan(buf, n, LIMIT, &len), ST_FRAME_COMPLETE);
    cr_assert_eq(msgpack_c_says(buf, n), MSGPACK_UNPACK_SUCCESS);
    /* msgpack-c refuses a container, even an empty one, past 32 open. */
    n = nest(buf, ST_MSGPACK_FRAME_MAX_DEPTH, &empty, 1);
    cr_assert_eq(st_msgpack_frame_scan(buf, n, LIMIT, &len), ST_FRAME_INVALID);
    cr_assert_lt(msgpack_c_says(buf, n), 0);
    n = nest(buf, ST_MSGPACK_FRAME_MAX_DEPTH - 1, &empty, 1);
    cr_assert_eq(st_msgpack_frame_scan(buf, n, LIMIT, &len), ST_FRAME_COMPLETE);
    cr_assert_eq(msgpack_c_says(buf, n), MSGPACK_UNPACK_SUCCESS);
}

/* The JSON of a one-key map {"v": <value packed by pack>}, or NULL with msg. */
static json_t *convert_value(void (*pack)(msgpack_packer *), char *msg, size_t size)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "v", 1);
    pack(&pk);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    memset(msg, 'P', size); /* a refusal must overwrite this */
    json_t *j = st_msgpack_to_json(&up.data, msg, size);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    return j;
}

static void pack_nan(msgpack_packer *pk) { msgpack_pack_double(pk, NAN); }
static void pack_inf(msgpack_packer *pk) { msgpack_pack_float(pk, -INFINITY); }
static void pack_big(msgpack_packer *pk) { msgpack_pack_uint64(pk, (uint64_t)INT64_MAX + 1); }
static void pack_bin(msgpack_packer *pk) { msgpack_pack_bin_with_body(pk, "ab", 2); }
static void pack_bad_utf8(msgpack_packer *pk) { msgpack_pack_str_with_body(pk, "\xff", 1); }
static void pack_nul(msgpack_packer *pk) { msgpack_pack_str_with_body(pk, "x\0y", 3); }
static void pack_only_nul(msgpack_packer *pk) { msgpack_pack_str_with_body(pk, "", 1); }
static void pack_nul_in_message(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "messages", 8);
    msgpack_pack_array(pk, 2);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_map(pk, 2);
        msgpack_pack_str_with_body(pk, "role", 4);
        msgpack_pack_str_with_body(pk, "user", 4);
        msgpack_pack_str_with_body(pk, "content", 7);
        msgpack_pack_str_with_body(pk, i ? "a\0b" : "ab", 3 - (i == 0));
    }
}
static void pack_bad_key(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "\xc3\x28", 2);
    msgpack_pack_nil(pk);
}
static void pack_fine(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_double(pk, 0.5);
    msgpack_pack_int64(pk, -3);
    msgpack_pack_str_with_body(pk, "h\xc3\xa9", 3);
}

Test(msgpack_json, what_json_cannot_hold_is_refused_by_name)
{
    struct {
        void (*pack)(msgpack_packer *);
        const char *msg;
    } cases[] = {
        /* Each refusal names where the value is: here the key "v". */
        {pack_nan, "v: a number is not finite (NaN or infinity)"},
        {pack_inf, "v: a number is not finite (NaN or infinity)"},
        {pack_big, "v: an integer is too large (more than 2^63 - 1)"},
        {pack_bin, "v: binary and extension values are not accepted"},
        {pack_bad_utf8, "v: a string is not valid UTF-8"},
        /* (C strings downstream: "x\0y" would be read as "x".) */
        {pack_nul, "v: a string holds a NUL byte"},
        {pack_only_nul, "v: a string holds a NUL byte"},
        {pack_bad_key, "v: a map key is not valid UTF-8"},
        {pack_nul_in_message, "v.messages[1].content: a string holds a NUL byte"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[128];
        json_t *j = convert_value(cases[i].pack, msg, sizeof msg);
        cr_assert_null(j, "case %zu was accepted", i);
        cr_assert_str_eq(msg, cases[i].msg);
    }
    /* msgpack-c parses at most 32 open containers, so a deeper tree is
     * built by hand: the conversion's own bound, for any other source. */
    msgpack_object deep[ST_MSGPACK_JSON_MAX_DEPTH + 2];
    for (int i = 0; i < ST_MSGPACK_JSON_MAX_DEPTH + 2; i++) {
        deep[i].type = MSGPACK_OBJECT_ARRAY;
        deep[i].via.array.size = i + 1 < ST_MSGPACK_JSON_MAX_DEPTH + 2 ? 1 : 0;
        deep[i].via.array.ptr = i + 1 < ST_MSGPACK_JSON_MAX_DEPTH + 2 ? &deep[i + 1] : NULL;
    }
    char msg[256];
    cr_assert_null(st_msgpack_to_json(&deep[0], msg, sizeof msg));
    char want[160] = "";
    for (int i = 0; i <= ST_MSGPACK_JSON_MAX_DEPTH; i++)
        strcat(want, "[0]");
    strcat(want, ": the request nests deeper than 32 levels");
    cr_assert_str_eq(msg, want);
    json_t *j = st_msgpack_to_json(&deep[2], msg, sizeof msg);
    cr_assert_not_null(j, "%s", msg);
    json_decref(j);

    j = convert_value(pack_fine, msg, sizeof msg);
    cr_assert_not_null(j, "%s", msg);
    char *text = json_dumps(j, JSON_COMPACT);
    cr_assert_str_eq(text, "{\"v\":[0.5,-3,\"h\xc3\xa9\"]}");
    free(text);
    json_decref(j);
}

Test(msgpack_json, empty_strings_with_a_null_pointer_are_empty_strings)
{
    /* msgpack-c leaves an empty string's pointer NULL when no payload came
     * before it in the message: as a key and as a value it is "". */
    msgpack_object_kv kv;
    kv.key.type = MSGPACK_OBJECT_STR;
    kv.key.via.str.ptr = NULL;
    kv.key.via.str.size = 0;
    kv.val = kv.key;
    msgpack_object map = {.type = MSGPACK_OBJECT_MAP};
    map.via.map.size = 1;
    map.via.map.ptr = &kv;
    char msg[128];
    json_t *j = st_msgpack_to_json(&map, msg, sizeof msg);
    cr_assert_not_null(j, "%s", msg);
    char *text = json_dumps(j, JSON_COMPACT);
    cr_assert_str_eq(text, "{\"\":\"\"}");
    free(text);
    json_decref(j);
}
