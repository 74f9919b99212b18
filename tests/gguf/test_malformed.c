/*
 * tests/gguf/test_malformed.c - files the reader must refuse, built with the
 * writer's knobs or by byte surgery on a small valid file. Each case asserts
 * the status, that the message names the file, gives a byte offset and says
 * what was wrong; the truncation sweep cuts the file at every byte up to the
 * data section (and inside it). Run under ASan+UBSan this also shows no read
 * goes past the mapping.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf_test_util.h"

#define KEY_NAME "general.name"
#define KEY_COUNT "test.count"
#define KEY_IDS "test.ids"
#define KEY_TOKS "test.tokens"

/* A small valid file: a long string first (so the up-front count checks
 * never fire in the cases below), a u32, an i32 array, a string array, and
 * two tensors (F32 [8], Q8_0 [32, 2]). */
static void small_file(uint8_t **buf, size_t *len, st_gw_layout *lay)
{
    st_gw *w = st_gw_new();
    char name[301];
    memset(name, 'n', 300);
    name[300] = 0;
    st_gw_string(w, KEY_NAME, name);
    st_gw_u32(w, KEY_COUNT, 42);
    int32_t ids[4] = {1, -2, 3, -4};
    st_gw_array(w, KEY_IDS, ST_GGUF_I32, ids, 4);
    /* element 1 is long so a cut inside element 2 passes the up-front
     * "each string needs 8 bytes" check and reaches the element itself */
    const char *toks[3] = {"a", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "ccc"};
    st_gw_str_array(w, KEY_TOKS, toks, 3);
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    st_gw_tensor_f32(w, "norm.weight", ST_GGML_F32, 1, (uint64_t[]){8}, x);
    st_gw_tensor(w, "embd.weight", ST_GGML_Q8_0, 2, (uint64_t[]){32, 2}, NULL);
    cr_assert_eq(st_gw_build(w, buf, len, lay), ST_OK);
    /* the layout arrays live in the writer: copy what the tests need */
    static uint64_t kv_at[4], t_at[2];
    memcpy(kv_at, lay->kv_at, sizeof kv_at);
    memcpy(t_at, lay->tensor_at, sizeof t_at);
    lay->kv_at = kv_at;
    lay->tensor_at = t_at;
    st_gw_free(w);
}

/* offset of the value of kv i (after key and type) */
static uint64_t value_at(const st_gw_layout *lay, int i, const char *key)
{
    return lay->kv_at[i] + 8 + strlen(key) + 4;
}

/* Build a file from a writer and expect it to be refused. */
static void expect_writer_fails(st_gw *w, const char *needle, const char *tag)
{
    uint8_t *buf;
    size_t len;
    cr_assert_eq(st_gw_build(w, &buf, &len, NULL), ST_OK);
    st_gw_free(w);
    expect_open_fails(buf, len, ST_E_FORMAT, needle, tag);
    free(buf);
}

/* One F32 [32] tensor plus whatever the case adds. */
static st_gw *writer_with_tensor(void)
{
    st_gw *w = st_gw_new();
    st_gw_u32(w, "k", 1);
    st_gw_tensor(w, "t0", ST_GGML_F32, 1, (uint64_t[]){32}, NULL);
    return w;
}

Test(gguf_malformed, small_file_is_valid)
{
    uint8_t *buf;
    size_t len;
    st_gw_layout lay;
    small_file(&buf, &len, &lay);
    char path[512];
    tmp_path(path, sizeof path, "valid");
    cr_assert_eq(st_gw_write_bytes(path, buf, len), ST_OK);
    st_gguf *g;
    st_diag d;
    cr_assert_eq(st_gguf_open(path, &g, &d), ST_OK, "%s", d.message);
    cr_assert_eq(g->n_kv, 4);
    cr_assert_eq(g->n_tensors, 2);
    cr_assert_eq(g->data_offset, lay.data_offset);
    st_gguf_close(g);
    unlink(path);
    free(buf);
}

Test(gguf_malformed, truncated_at_every_offset)
{
    uint8_t *buf;
    size_t len;
    st_gw_layout lay;
    small_file(&buf, &len, &lay);
    char path[512];
    tmp_path(path, sizeof path, "trunc");
    uint64_t cuts[] = {lay.data_offset + 1, lay.data_offset + 31, lay.data_offset + 32,
                       lay.data_offset + 40, len - 1};
    uint64_t n_cuts = lay.data_offset + 1 + sizeof cuts / sizeof cuts[0];
    for (uint64_t k = 0; k < n_cuts; k++) {
        uint64_t cut = k <= lay.data_offset ? k : cuts[k - lay.data_offset - 1];
        cr_assert_eq(st_gw_write_bytes(path, buf, (size_t)cut), ST_OK);
        st_gguf *g = NULL;
        st_diag d;
        st_diag_clear(&d);
        st_status s = st_gguf_open(path, &g, &d);
        cr_assert_eq(s, ST_E_FORMAT, "cut at %llu: status %d (%s)", (unsigned long long)cut, s, d.message);
        cr_assert_null(g);
        cr_assert_str_eq(d.file, path);
        const char *at = strstr(d.message, "at byte offset ");
        cr_assert_not_null(at, "cut at %llu: %s", (unsigned long long)cut, d.message);
        unsigned long long off = strtoull(at + 15, NULL, 10);
        cr_assert(off <= cut, "cut at %llu: reported offset %llu is past the end: %s",
                  (unsigned long long)cut, off, d.message);
        cr_assert(strstr(d.message, "truncated") || strstr(d.message, "does not fit") ||
                      strstr(d.message, "past the end"),
                  "cut at %llu: %s", (unsigned long long)cut, d.message);
    }
    unlink(path);
    free(buf);
}

Test(gguf_malformed, truncated_in_each_section)
{
    uint8_t *buf;
    size_t len;
    st_gw_layout lay;
    small_file(&buf, &len, &lay);
    struct { uint64_t cut; const char *needle; } cases[] = {
        {0, "truncated file: GGUF magic"},
        {6, "truncated file: GGUF version"},
        {12, "truncated file: tensor count"},
        {20, "truncated file: metadata count"},
        {lay.kv_at[1] + 3, "truncated file: key of metadata entry 1 length"},
        {lay.kv_at[1] + 8 + 4, "truncated file: key of metadata entry 1"},
        {value_at(&lay, 1, KEY_COUNT) - 2, "truncated file: value type of 'test.count'"},
        {value_at(&lay, 1, KEY_COUNT) + 2, "truncated file: u32 value of 'test.count'"},
        {value_at(&lay, 0, KEY_NAME) + 8 + 100, "truncated file: string value of 'general.name'"},
        {value_at(&lay, 2, KEY_IDS) + 2, "truncated file: array element type of 'test.ids'"},
        {value_at(&lay, 2, KEY_IDS) + 4 + 5, "truncated file: array length of 'test.ids'"},
        {value_at(&lay, 2, KEY_IDS) + 12 + 10, "array 'test.ids' does not fit"},
        {value_at(&lay, 3, KEY_TOKS) + 12 + 4, "string array 'test.tokens' does not fit"},
        {value_at(&lay, 3, KEY_TOKS) + 12 + 9 + 38 + 4, "truncated file: element 2 of string array 'test.tokens' length"},
        {value_at(&lay, 3, KEY_TOKS) + 12 + 9 + 38 + 8 + 1, "truncated file: element 2 of string array 'test.tokens'"},
        {lay.tensor_at[0] + 8 + 5, "truncated file: name of tensor 0"},
        {lay.tensor_at[0] + 8 + 11 + 2, "truncated file: n_dims of tensor 'norm.weight'"},
        {lay.tensor_at[1] + 8 + 11 + 4 + 8 + 3, "truncated file: ne[1] of tensor 'embd.weight'"},
        {lay.tensor_at[1] + 8 + 11 + 4 + 16 + 1, "truncated file: type of tensor 'embd.weight'"},
        {lay.infos_end - 1, "truncated file: data offset of tensor 'embd.weight'"},
        {lay.infos_end, "data section missing"},
        {lay.data_offset + 10, "tensor 'norm.weight' runs past the end of the file"},
        {len - 1, "tensor 'embd.weight' runs past the end of the file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "cut%zu", i);
        expect_open_fails(buf, (size_t)cases[i].cut, ST_E_FORMAT, cases[i].needle, tag);
    }
    free(buf);
}

/* Byte surgery at a known offset of the small file. */
static void surgery_u64(uint64_t (*where)(const st_gw_layout *), uint64_t v, const char *needle,
                        const char *tag)
{
    uint8_t *buf;
    size_t len;
    st_gw_layout lay;
    small_file(&buf, &len, &lay);
    put_u64_at(buf, where(&lay), v);
    expect_open_fails(buf, len, ST_E_FORMAT, needle, tag);
    free(buf);
}

static uint64_t at_n_tensors(const st_gw_layout *l) { (void)l; return 8; }
static uint64_t at_n_kv(const st_gw_layout *l) { (void)l; return 16; }
static uint64_t at_key0_len(const st_gw_layout *l) { return l->kv_at[0]; }
static uint64_t at_name_len(const st_gw_layout *l) { return value_at(l, 0, KEY_NAME); }
static uint64_t at_ids_len(const st_gw_layout *l) { return value_at(l, 2, KEY_IDS) + 4; }
static uint64_t at_toks_len(const st_gw_layout *l) { return value_at(l, 3, KEY_TOKS) + 4; }
static uint64_t at_tok0_len(const st_gw_layout *l) { return value_at(l, 3, KEY_TOKS) + 12; }
static uint64_t at_tname_len(const st_gw_layout *l) { return l->tensor_at[0]; }
static uint64_t at_t1_offset(const st_gw_layout *l) { return l->infos_end - 8; }

#define HUGE (1ull << 62)

Test(gguf_malformed, absurd_counts_and_lengths)
{
    surgery_u64(at_n_tensors, HUGE, "tensor count does not fit in the file", "ntensors");
    surgery_u64(at_n_kv, HUGE, "metadata count does not fit in the file at byte offset 16 (expected at most", "nkv");
    surgery_u64(at_n_kv, UINT64_MAX, "found 18446744073709551615", "nkv_max");
    surgery_u64(at_key0_len, HUGE, "key of metadata entry 0 too long", "keylen");
    surgery_u64(at_name_len, HUGE, "truncated file: string value of 'general.name'", "strlen");
    surgery_u64(at_name_len, UINT64_MAX, "expected 18446744073709551615 bytes", "strlen_max");
    surgery_u64(at_ids_len, HUGE, "array 'test.ids' does not fit in the file", "arrlen");
    surgery_u64(at_ids_len, UINT64_MAX / 2, "array 'test.ids' does not fit", "arrlen_wrap");
    surgery_u64(at_toks_len, HUGE, "string array 'test.tokens' does not fit", "strarrlen");
    surgery_u64(at_tok0_len, HUGE, "element 0 of string array 'test.tokens'", "strelem");
    surgery_u64(at_tname_len, HUGE, "name of tensor 0 too long", "tnamelen");
    surgery_u64(at_t1_offset, UINT64_MAX - 31, "tensor 'embd.weight' runs past the end", "offwrap");
}

Test(gguf_malformed, bad_magic_and_versions)
{
    uint8_t *buf;
    size_t len;
    st_gw_layout lay;
    small_file(&buf, &len, &lay);
    memcpy(buf, "GGML", 4);
    expect_open_fails(buf, len, ST_E_FORMAT, "bad magic| at byte offset 0 |(expected \"GGUF\" = 47 47 55 46, found 47 47 4d 4c)", "magic");
    memcpy(buf, "GGUF", 4);
    put_u32_at(buf, 4, 1);
    expect_open_fails(buf, len, ST_E_FORMAT, "unsupported GGUF version| at byte offset 4 |(expected 2 or 3, found 1)", "v1");
    put_u32_at(buf, 4, 99);
    expect_open_fails(buf, len, ST_E_FORMAT, "(expected 2 or 3, found 99)", "v99");
    put_u32_at(buf, 4, 0x03000000);
    expect_open_fails(buf, len, ST_E_FORMAT, "big-endian", "vbe");
    expect_open_fails(buf, 0, ST_E_FORMAT, "truncated file: GGUF magic", "empty");
    expect_open_fails((const uint8_t *)"GGU", 3, ST_E_FORMAT, "(expected 4 bytes, found 3)", "short");
    free(buf);
}

Test(gguf_malformed, bad_tensor_dims)
{
    st_gw *w = writer_with_tensor();
    st_gw_tensor_raw(w, "w", ST_GGML_F32, 0, NULL, 128, NULL, 0);
    expect_writer_fails(w, "bad n_dims for tensor 'w'| at byte offset |(expected 1..4, found 0)", "ndims0");

    w = writer_with_tensor();
    st_gw_tensor_raw(w, "w", ST_GGML_F32, 5, (uint64_t[]){1, 1, 1, 1, 1}, 128, NULL, 4);
    expect_writer_fails(w, "bad n_dims for tensor 'w'| at byte offset |(expected 1..4, found 5)", "ndims5");

    w = writer_with_tensor();
    st_gw_tensor_raw(w, "w", ST_GGML_F32, 2, (uint64_t[]){4, 0}, 128, NULL, 0);
    expect_writer_fails(w, "bad dimension ne[1] for tensor 'w'", "ne0");

    w = writer_with_tensor();
    st_gw_tensor_raw(w, "w", ST_GGML_F32, 1, (uint64_t[]){1ull << 63}, 128, NULL, 0);
    expect_writer_fails(w, "bad dimension ne[0] for tensor 'w'", "ne_huge");

    w = writer_with_tensor();
    st_gw_tensor_raw(w, "w", ST_GGML_F32, 3, (uint64_t[]){1ull << 32, 1ull << 32, 1ull << 32}, 128, NULL, 0);
    expect_writer_fails(w, "element count of tensor 'w' overflows", "nelem");

    w = writer_with_tensor();
    st_gw_tensor_raw(w, "w", ST_GGML_F32, 1, (uint64_t[]){1ull << 62}, 128, NULL, 0);
    expect_writer_fails(w, "byte size of tensor 'w' overflows", "nbytes");

    w = writer_with_tensor();
    st_gw_tensor_raw(w, "w", ST_GGML_Q4_0, 2, (uint64_t[]){48, 2}, 128, NULL, 0);
    expect_writer_fails(w, "tensor 'w' of type Q4_0 has ne[0] not a multiple of the block size| at byte offset |(expected a multiple of 32, found 48)", "block");
}

Test(gguf_malformed, unknown_tensor_types)
{
    st_gw *w = writer_with_tensor();
    st_gw_tensor_raw(w, "blk.0.attn_q.weight", 99, 1, (uint64_t[]){32}, 128, NULL, 128);
    expect_writer_fails(w, "unsupported type for tensor 'blk.0.attn_q.weight'| at byte offset |(expected F32=0, F16=1, Q4_0=2, Q4_1=3 or Q8_0=8, found 99)", "type99");
    w = writer_with_tensor();
    st_gw_tensor_raw(w, "q5", 6, 1, (uint64_t[]){32}, 128, NULL, 128);
    expect_writer_fails(w, "found 6)", "type6");
}

Test(gguf_malformed, bad_tensor_names)
{
    char long_name[301];
    memset(long_name, 'x', 300);
    long_name[300] = 0;
    st_gw *w = writer_with_tensor();
    st_gw_tensor(w, long_name, ST_GGML_F32, 1, (uint64_t[]){4}, NULL);
    expect_writer_fails(w, "name of tensor 1 too long| at byte offset |(expected at most 255 bytes, found 300)", "longname");

    w = writer_with_tensor();
    st_gw_tensor(w, "", ST_GGML_F32, 1, (uint64_t[]){4}, NULL);
    expect_writer_fails(w, "empty name for tensor 1", "emptyname");

    w = writer_with_tensor();
    st_gw_tensor(w, "t0", ST_GGML_F32, 1, (uint64_t[]){4}, NULL);
    expect_writer_fails(w, "duplicate tensor name 't0'", "duptensor");
}

Test(gguf_malformed, bad_tensor_placement)
{
    st_gw *w = writer_with_tensor();
    st_gw_tensor_raw(w, "w", ST_GGML_F32, 1, (uint64_t[]){4}, 136, NULL, 16);
    expect_writer_fails(w, "misaligned data offset for tensor 'w'| at byte offset |(expected a multiple of 32, found 136)", "misaligned");

    w = st_gw_new();
    st_gw_tensor_raw(w, "a", ST_GGML_F32, 1, (uint64_t[]){16}, 0, NULL, 64);
    st_gw_tensor_raw(w, "b", ST_GGML_F32, 1, (uint64_t[]){16}, 32, NULL, 64);
    expect_writer_fails(w, "data of tensor 'b' overlaps tensor 'a'| at byte offset |(expected data offset >= 64, found 32)", "overlap");

    w = st_gw_new();
    st_gw_tensor_raw(w, "b", ST_GGML_F32, 1, (uint64_t[]){8}, 64, NULL, 32);
    st_gw_tensor_raw(w, "a", ST_GGML_F32, 1, (uint64_t[]){32}, 0, NULL, 128);
    expect_writer_fails(w, "data of tensor 'b' overlaps tensor 'a'", "overlap2");

    w = writer_with_tensor();
    st_gw_tensor_raw(w, "far", ST_GGML_F32, 1, (uint64_t[]){8}, 1u << 20, NULL, 0);
    expect_writer_fails(w, "data of tensor 'far' runs past the end of the file| at byte offset |(expected 32 bytes at data offset 1048576, found 128 bytes in the data section)", "pasteof");
}

Test(gguf_malformed, bad_alignment)
{
    st_gw *w = writer_with_tensor();
    st_gw_u32(w, "general.alignment", 3);
    expect_writer_fails(w, "bad general.alignment| at byte offset |(expected a power of two from 1 to 2^30, found 3)", "align3");
    w = writer_with_tensor();
    st_gw_u32(w, "general.alignment", 0);
    expect_writer_fails(w, "found 0)", "align0");
    w = writer_with_tensor();
    st_gw_i32(w, "general.alignment", -32);
    expect_writer_fails(w, "bad general.alignment| at byte offset |found -32)", "alignneg");
    w = writer_with_tensor();
    st_gw_u64(w, "general.alignment", UINT64_MAX);
    expect_writer_fails(w, "found 18446744073709551615)", "alignu64");
    w = writer_with_tensor();
    st_gw_u64(w, "general.alignment", 1ull << 31);
    expect_writer_fails(w, "found 2147483648)", "alignbig");
    w = writer_with_tensor();
    st_gw_string(w, "general.alignment", "32");
    expect_writer_fails(w, "bad type for general.alignment| at byte offset |(expected an integer, found string)", "alignstr");
}

Test(gguf_malformed, bad_metadata)
{
    st_gw *w = writer_with_tensor();
    st_gw_u32(w, "k", 2);
    expect_writer_fails(w, "duplicate metadata key 'k'", "dupkey");

    w = writer_with_tensor();
    st_gw_raw(w, "weird", 13, "\0\0\0\0", 4);
    expect_writer_fails(w, "unknown value type for key 'weird'| at byte offset |(expected 0..12, found 13)", "vtype");

    w = writer_with_tensor();
    st_gw_raw(w, "arr", ST_GGUF_ARRAY, (uint8_t[]){20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 12);
    expect_writer_fails(w, "unknown array element type for key 'arr'| at byte offset |(expected 0..12, found 20)", "etype");

    w = writer_with_tensor();
    st_gw_raw(w, "flag", ST_GGUF_BOOL, (uint8_t[]){2}, 1);
    expect_writer_fails(w, "bad bool value for key 'flag'| at byte offset |(expected 0 or 1, found 2)", "bool2");

    w = writer_with_tensor();
    st_gw_string(w, "", "x");
    expect_writer_fails(w, "empty key in metadata entry 1", "emptykey");

    /* Keys are ASCII (the specification): invalid UTF-8 and controls are not. */
    w = writer_with_tensor();
    st_gw_u32(w, "general.\xc3\x28", 1);
    expect_writer_fails(w, "key of metadata entry 1 is not printable ASCII| at byte offset |"
                        "(expected bytes 0x20..0x7e, found 0xc3 at key byte 8)", "utf8key");
    w = writer_with_tensor();
    st_gw_u32(w, "a\x1b[2Jb", 1);
    expect_writer_fails(w, "found 0x1b at key byte 1", "ctrlkey");

    /* arrays of arrays nested 5 deep: [[[[[u8]]]]] */
    uint8_t deep[5 * 12];
    for (int i = 0; i < 5; i++) {
        memset(deep + 12 * i, 0, 12);
        deep[12 * i] = i < 4 ? ST_GGUF_ARRAY : ST_GGUF_U8;
        deep[12 * i + 4] = i < 4 ? 1 : 0;
    }
    w = writer_with_tensor();
    st_gw_raw(w, "deep", ST_GGUF_ARRAY, deep, sizeof deep);
    expect_writer_fails(w, "array 'deep' nested too deep", "deep");

    /* nested array claiming 2^62 elements */
    uint8_t nested[24] = {ST_GGUF_ARRAY, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                          ST_GGUF_U32, 0, 0, 0};
    put_u64_at(nested, 16, HUGE);
    w = writer_with_tensor();
    st_gw_raw(w, "nest", ST_GGUF_ARRAY, nested, sizeof nested);
    expect_writer_fails(w, "array 'nest' does not fit in the file", "nesthuge");
}

Test(gguf_malformed, open_errors_are_io)
{
    st_gguf *g = (st_gguf *)0x1;
    st_diag d;
    st_diag_clear(&d);
    cr_assert_eq(st_gguf_open("/nonexistent/model.gguf", &g, &d), ST_E_NOT_FOUND);
    cr_assert_null(g);
    cr_assert_str_eq(d.file, "/nonexistent/model.gguf");
    cr_assert(strstr(d.message, "cannot open GGUF file") != NULL, "%s", d.message);
    cr_assert_eq(st_gguf_open(ST_TEST_BINARY_DIR, &g, &d), ST_E_IO);
    cr_assert(strstr(d.message, "not a regular file") != NULL, "%s", d.message);
    st_gguf_close(NULL);
}

/* Deterministic random corruption of the header and metadata: every result
 * is either a clean open or one ST_E_FORMAT message naming the file; under
 * ASan+UBSan this doubles as a small fuzz run. */
Test(gguf_malformed, random_corruption_fails_cleanly)
{
    uint8_t *buf;
    size_t len;
    st_gw_layout lay;
    small_file(&buf, &len, &lay);
    uint8_t *copy = malloc(len);
    char path[512];
    tmp_path(path, sizeof path, "fuzz");
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    int refused = 0;
    for (int iter = 0; iter < 1500; iter++) {
        memcpy(copy, buf, len);
        int flips = 1 + iter % 4;
        for (int f = 0; f < flips; f++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            uint64_t at = rng % lay.data_offset;
            copy[at] = (iter & 1) ? (uint8_t)(rng >> 32) : (uint8_t)(copy[at] ^ (1u << (rng >> 61)));
        }
        cr_assert_eq(st_gw_write_bytes(path, copy, len), ST_OK);
        st_gguf *g = NULL;
        st_diag d;
        st_diag_clear(&d);
        st_status s = st_gguf_open(path, &g, &d);
        if (s == ST_OK) {
            /* whatever opened must be internally consistent */
            for (uint64_t i = 0; i < g->n_tensors; i++)
                cr_assert(g->tensors[i].offset + g->tensors[i].size <= g->map_len - g->data_offset);
            st_gguf_close(g);
            continue;
        }
        refused++;
        cr_assert_eq(s, ST_E_FORMAT, "iter %d: status %d: %s", iter, s, d.message);
        cr_assert_null(g);
        cr_assert_str_eq(d.file, path);
        cr_assert(strstr(d.message, "at byte offset ") != NULL, "iter %d: %s", iter, d.message);
    }
    cr_assert_gt(refused, 500, "most corruptions are caught (%d)", refused);
    unlink(path);
    free(copy);
    free(buf);
}
