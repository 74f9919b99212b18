/*
 * tests/gguf/test_open.c - open valid files: the tiny models of every weight
 * type (metadata, tokenizer, tensor infos, data), and writer-built files
 * exercising every metadata type, arrays of arrays, GGUF v2, alignment and
 * files without tensors.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "gguf_test_util.h"
#include "quant.h"
#include "tiny_model.h"

static st_gguf *open_ok(const char *path)
{
    st_gguf *g = NULL;
    st_diag d;
    st_diag_clear(&d);
    st_status s = st_gguf_open(path, &g, &d);
    cr_assert_eq(s, ST_OK, "open %s: %s", path, d.message);
    cr_assert_not_null(g);
    return g;
}

static int64_t get_i(const st_gguf *g, const char *key)
{
    int64_t v = -1;
    cr_assert_eq(st_gguf_get_int(g, key, &v), ST_OK, "%s", key);
    return v;
}

static void assert_str(const st_gguf *g, const char *key, const char *want)
{
    const char *s;
    uint64_t len;
    cr_assert_eq(st_gguf_get_string(g, key, &s, &len), ST_OK, "%s", key);
    cr_assert_eq(len, strlen(want), "%s length", key);
    cr_assert_eq(memcmp(s, want, len), 0, "%s value", key);
}

static void check_tensor(const st_gguf *g, const char *name, st_ggml_type type,
                         uint32_t n_dims, uint64_t ne0, uint64_t ne1)
{
    const st_gguf_tensor *t = st_gguf_tensor_find(g, name);
    cr_assert_not_null(t, "tensor %s", name);
    cr_assert_eq(t->type, type, "%s type %d", name, t->type);
    cr_assert_eq(t->n_dims, n_dims, "%s n_dims", name);
    cr_assert_eq(t->ne[0], ne0, "%s ne0", name);
    cr_assert_eq(t->ne[1], ne1, "%s ne1", name);
    cr_assert_eq(t->size, st_ggml_row_bytes(type, ne0) * ne1, "%s size", name);
    cr_assert_eq(t->offset % g->alignment, 0);
    cr_assert_eq((const uint8_t *)t->data, g->map + g->data_offset + t->offset);
    cr_assert(t->offset + t->size <= g->map_len - g->data_offset);
}

static void check_tiny(st_ggml_type type, st_ggml_type embd_type, bool tied)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = type;
    spec.embd_type = embd_type;
    spec.tied = tied;
    char path[512];
    tmp_path(path, sizeof path, st_ggml_type_name(type));
    st_diag d;
    st_diag_clear(&d);
    cr_assert_eq(st_gen_tiny_model(&spec, path, &d), ST_OK, "%s", d.message);
    st_gguf *g = open_ok(path);

    cr_assert_eq(g->version, 3);
    cr_assert_eq(g->alignment, 32);
    cr_assert_eq(g->data_offset % 32, 0);
    assert_str(g, "general.architecture", "llama");
    assert_str(g, "tokenizer.ggml.model", "gpt2");
    assert_str(g, "tokenizer.ggml.pre", "smollm");
    assert_str(g, "tokenizer.chat_template", st_tiny_chat_template);
    cr_assert_eq(get_i(g, "llama.block_count"), 2);
    cr_assert_eq(get_i(g, "llama.context_length"), 128);
    cr_assert_eq(get_i(g, "llama.embedding_length"), 64);
    cr_assert_eq(get_i(g, "llama.feed_forward_length"), 128);
    cr_assert_eq(get_i(g, "llama.attention.head_count"), 4);
    cr_assert_eq(get_i(g, "llama.attention.head_count_kv"), 2);
    cr_assert_eq(get_i(g, "llama.rope.dimension_count"), 16);
    cr_assert_eq(get_i(g, "llama.vocab_size"), 459);
    cr_assert_eq(get_i(g, "tokenizer.ggml.bos_token_id"), 1);
    cr_assert_eq(get_i(g, "tokenizer.ggml.eos_token_id"), 2);
    cr_assert_eq(get_i(g, "tokenizer.ggml.unknown_token_id"), 0);
    cr_assert_eq(get_i(g, "tokenizer.ggml.padding_token_id"), 2);
    cr_assert_eq(get_i(g, "tokenizer.ggml.add_bos_token"), 0);
    double f;
    cr_assert_eq(st_gguf_get_float(g, "llama.rope.freq_base", &f), ST_OK);
    cr_assert_eq(f, 100000.0);
    cr_assert_eq(st_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f), ST_OK);
    cr_assert_eq((float)f, 1e-5f);

    /* tensors: names, types, dims in GGUF order (ne[0] = input dim) */
    cr_assert_eq(g->n_tensors, 2 + 9 * 2 + (tied ? 0 : 1));
    check_tensor(g, "token_embd.weight", embd_type, 2, 64, 459);
    check_tensor(g, "output_norm.weight", ST_GGML_F32, 1, 64, 1);
    for (int l = 0; l < 2; l++) {
        char n[64];
#define T(name, ty, nd, a, b) snprintf(n, sizeof n, "blk.%d." name ".weight", l); check_tensor(g, n, ty, nd, a, b)
        T("attn_norm", ST_GGML_F32, 1, 64, 1);
        T("ffn_norm", ST_GGML_F32, 1, 64, 1);
        T("attn_q", type, 2, 64, 64);
        T("attn_k", type, 2, 64, 32);
        T("attn_v", type, 2, 64, 32);
        T("attn_output", type, 2, 64, 64);
        T("ffn_gate", type, 2, 64, 128);
        T("ffn_up", type, 2, 64, 128);
        T("ffn_down", type, 2, 128, 64);
#undef T
    }
    if (tied)
        cr_assert_null(st_gguf_tensor_find(g, "output.weight"));
    else
        check_tensor(g, "output.weight", embd_type, 2, 64, 459);

    /* the data is what the generator drew: norms near 1, weights bounded */
    const st_gguf_tensor *t = st_gguf_tensor_find(g, "blk.1.ffn_norm.weight");
    float y[64 * 128];
    cr_assert_eq(st_dequantize(t->type, t->data, y, 64), ST_OK);
    for (int i = 0; i < 64; i++)
        cr_assert(y[i] >= 0.89f && y[i] <= 1.11f, "norm %g", y[i]);
    t = st_gguf_tensor_find(g, "blk.0.ffn_down.weight");
    cr_assert_eq(st_dequantize(t->type, t->data, y, 64 * 128), ST_OK);
    float amax = 0;
    for (int i = 0; i < 64 * 128; i++) {
        cr_assert(isfinite(y[i]));
        amax = fmaxf(amax, fabsf(y[i]));
    }
    cr_assert(amax > 0.05f && amax < 0.1f, "ffn_down |w| max %g (scale 1/sqrt(128))", amax);
    st_gguf_close(g);
    unlink(path);
}

Test(gguf_open, tiny_model_f32) { check_tiny(ST_GGML_F32, ST_GGML_Q8_0, true); }
Test(gguf_open, tiny_model_f16) { check_tiny(ST_GGML_F16, ST_GGML_F16, true); }
Test(gguf_open, tiny_model_q4_0) { check_tiny(ST_GGML_Q4_0, ST_GGML_Q4_0, false); }
Test(gguf_open, tiny_model_q4_1) { check_tiny(ST_GGML_Q4_1, ST_GGML_Q8_0, true); }
Test(gguf_open, tiny_model_q8_0) { check_tiny(ST_GGML_Q8_0, ST_GGML_F32, false); }

Test(gguf_open, tiny_model_tokenizer_vocab)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    char path[512];
    tmp_path(path, sizeof path, "vocab");
    cr_assert_eq(st_gen_tiny_model(&spec, path, NULL), ST_OK);
    st_gguf *g = open_ok(path);
    const char *s;
    uint64_t len;
    const char *specials[] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(st_gguf_array_string(g, "tokenizer.ggml.tokens", (uint64_t)i, &s, &len), ST_OK);
        cr_assert_eq(len, strlen(specials[i]));
        cr_assert_eq(memcmp(s, specials[i], len), 0);
    }
    /* GPT-2 byte symbols: '!' first, ' ' is U+0120 'Ġ', '\n' is U+010A 'Ċ' */
    cr_assert_eq(st_tiny_byte_token('!'), 3);
    cr_assert_str_eq(st_tiny_byte_symbol(' '), "\xc4\xa0");
    cr_assert_str_eq(st_tiny_byte_symbol('\n'), "\xc4\x8a");
    cr_assert_str_eq(st_tiny_byte_symbol('a'), "a");
    cr_assert_str_eq(st_tiny_byte_symbol(0xad), "\xc5\x83"); /* U+0143, the 68th remapped byte */
    for (int b = 0; b < 256; b++) {
        cr_assert_eq(st_gguf_array_string(g, "tokenizer.ggml.tokens", st_tiny_byte_token((uint8_t)b), &s, &len), ST_OK);
        cr_assert_eq(len, strlen(st_tiny_byte_symbol((uint8_t)b)));
        cr_assert_eq(memcmp(s, st_tiny_byte_symbol((uint8_t)b), len), 0, "byte %d", b);
    }
    st_meta_value mv;
    cr_assert_eq(st_gguf_meta_value(g, "tokenizer.ggml.merges", &mv), ST_OK);
    cr_assert_eq(mv.type, ST_META_ARRAY);
    cr_assert_eq(mv.array_type, ST_META_STRING);
    cr_assert_eq(mv.len, 200);
    /* merge i is "A B" and token 259+i is AB */
    for (uint64_t i = 0; i < mv.len; i++) {
        const char *m, *tok;
        uint64_t ml, tl;
        cr_assert_eq(st_gguf_array_string(g, "tokenizer.ggml.merges", i, &m, &ml), ST_OK);
        cr_assert_eq(st_gguf_array_string(g, "tokenizer.ggml.tokens", 259 + i, &tok, &tl), ST_OK);
        const char *sp = memchr(m, ' ', ml);
        cr_assert_not_null(sp);
        cr_assert_eq(tl, ml - 1);
        cr_assert_eq(memcmp(tok, m, (size_t)(sp - m)), 0);
        cr_assert_eq(memcmp(tok + (sp - m), sp + 1, (size_t)(ml - (uint64_t)(sp - m) - 1)), 0);
    }
    /* the training is deterministic: these are its first merges (SmolLM2's
     * first five hold 'Ġ t', 'h e', 'Ġ Ġ' too) */
    const char *first[] = {"\xc4\xa0 \xc4\xa0", "\xc4\xa0 t", "h e"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(st_gguf_array_string(g, "tokenizer.ggml.merges", (uint64_t)i, &s, &len), ST_OK);
        cr_assert_eq(len, strlen(first[i]));
        cr_assert_eq(memcmp(s, first[i], len), 0, "merge %d", i);
    }
    int64_t tt;
    cr_assert_eq(st_gguf_array_int(g, "tokenizer.ggml.token_type", 2, &tt), ST_OK);
    cr_assert_eq(tt, 3);
    cr_assert_eq(st_gguf_array_int(g, "tokenizer.ggml.token_type", 3, &tt), ST_OK);
    cr_assert_eq(tt, 1);
    cr_assert_eq(st_gguf_array_int(g, "tokenizer.ggml.token_type", 459, &tt), ST_E_RANGE);
    st_gguf_close(g);
    unlink(path);
}

Test(gguf_open, tiny_model_is_deterministic)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = ST_GGML_Q4_1;
    char a[512], b[512], c[512];
    tmp_path(a, sizeof a, "det_a");
    tmp_path(b, sizeof b, "det_b");
    tmp_path(c, sizeof c, "det_c");
    cr_assert_eq(st_gen_tiny_model(&spec, a, NULL), ST_OK);
    cr_assert_eq(st_gen_tiny_model(&spec, b, NULL), ST_OK);
    spec.seed = 2;
    cr_assert_eq(st_gen_tiny_model(&spec, c, NULL), ST_OK);
    st_gguf *ga = open_ok(a), *gb = open_ok(b), *gc = open_ok(c);
    cr_assert_eq(ga->map_len, gb->map_len);
    cr_assert_eq(memcmp(ga->map, gb->map, ga->map_len), 0, "same spec, same bytes");
    cr_assert_eq(ga->map_len, gc->map_len);
    cr_assert_neq(memcmp(ga->map, gc->map, ga->map_len), 0, "another seed, other weights");
    st_gguf_close(ga);
    st_gguf_close(gb);
    st_gguf_close(gc);
    unlink(a);
    unlink(b);
    unlink(c);
}

Test(gguf_open, tiny_model_bad_spec_is_refused)
{
    st_tiny_model_spec spec;
    st_tiny_model_spec_default(&spec);
    spec.type = ST_GGML_Q4_0;
    spec.n_embd = 48; /* not a multiple of 32 */
    spec.n_heads = 4;
    st_diag d;
    st_diag_clear(&d);
    cr_assert_eq(st_gen_tiny_model(&spec, "/nonexistent/x.gguf", &d), ST_E_INVALID);
    cr_assert(strstr(d.message, "block size") != NULL, "%s", d.message);
    st_tiny_model_spec_default(&spec);
    cr_assert_eq(st_gen_tiny_model(&spec, "/nonexistent/dir/x.gguf", &d), ST_E_IO);
    cr_assert_str_eq(d.file, "/nonexistent/dir/x.gguf");
}

/* Every metadata type through the writer and back through each reader. */
Test(gguf_open, every_metadata_type)
{
    st_gw *w = st_gw_new();
    st_gw_u8(w, "t.u8", 200);
    st_gw_i8(w, "t.i8", -100);
    st_gw_u16(w, "t.u16", 60000);
    st_gw_i16(w, "t.i16", -30000);
    st_gw_u32(w, "t.u32", 4000000000u);
    st_gw_i32(w, "t.i32", -2000000000);
    st_gw_u64(w, "t.u64", 1ull << 40);
    st_gw_u64(w, "t.u64big", UINT64_MAX);
    st_gw_i64(w, "t.i64", -(1ll << 50));
    st_gw_f32(w, "t.f32", 0.25f);
    st_gw_f64(w, "t.f64", -1e300);
    st_gw_bool(w, "t.bool", true);
    st_gw_string(w, "t.str", "h\xc3\xa9llo");
    st_gw_string(w, "t.empty", "");
    int16_t i16s[3] = {-1, 2, -3};
    st_gw_array(w, "t.ai16", ST_GGUF_I16, i16s, 3);
    double f64s[2] = {1.5, -2.25};
    st_gw_array(w, "t.af64", ST_GGUF_F64, f64s, 2);
    uint8_t bools[2] = {0, 1};
    st_gw_array(w, "t.abool", ST_GGUF_BOOL, bools, 2);
    st_gw_array(w, "t.aempty", ST_GGUF_U32, NULL, 0);
    const char *strs[3] = {"a", "", "ccc"};
    st_gw_str_array(w, "t.astr", strs, 3);
    /* array of 2 arrays: [u8 x2], [string x1] */
    uint8_t nested[] = {ST_GGUF_ARRAY, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
                        ST_GGUF_U8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7, 9,
                        ST_GGUF_STRING, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                        1, 0, 0, 0, 0, 0, 0, 0, 'z'};
    st_gw_raw(w, "t.nested", ST_GGUF_ARRAY, nested, sizeof nested);
    float one[32];
    for (int i = 0; i < 32; i++)
        one[i] = (float)i;
    st_gw_tensor_f32(w, "x", ST_GGML_F32, 1, (uint64_t[]){32}, one);
    char path[512];
    tmp_path(path, sizeof path, "types");
    cr_assert_eq(st_gw_write(w, path, NULL), ST_OK);
    st_gw_free(w);

    st_gguf *g = open_ok(path);
    cr_assert_eq(g->n_kv, 20);
    cr_assert_eq(get_i(g, "t.u8"), 200);
    cr_assert_eq(get_i(g, "t.i8"), -100);
    cr_assert_eq(get_i(g, "t.u16"), 60000);
    cr_assert_eq(get_i(g, "t.i16"), -30000);
    cr_assert_eq(get_i(g, "t.u32"), 4000000000ll);
    cr_assert_eq(get_i(g, "t.i32"), -2000000000ll);
    cr_assert_eq(get_i(g, "t.u64"), 1ll << 40);
    cr_assert_eq(get_i(g, "t.i64"), -(1ll << 50));
    cr_assert_eq(get_i(g, "t.bool"), 1);
    int64_t iv;
    double fv;
    cr_assert_eq(st_gguf_get_int(g, "t.u64big", &iv), ST_E_RANGE);
    cr_assert_eq(st_gguf_get_int(g, "t.f32", &iv), ST_E_FORMAT);
    cr_assert_eq(st_gguf_get_int(g, "t.str", &iv), ST_E_FORMAT);
    cr_assert_eq(st_gguf_get_int(g, "t.missing", &iv), ST_E_NOT_FOUND);
    cr_assert_eq(st_gguf_get_float(g, "t.f32", &fv), ST_OK);
    cr_assert_eq(fv, 0.25);
    cr_assert_eq(st_gguf_get_float(g, "t.f64", &fv), ST_OK);
    cr_assert_eq(fv, -1e300);
    cr_assert_eq(st_gguf_get_float(g, "t.i16", &fv), ST_OK);
    cr_assert_eq(fv, -30000.0);
    cr_assert_eq(st_gguf_get_float(g, "t.str", &fv), ST_E_FORMAT);
    assert_str(g, "t.str", "h\xc3\xa9llo");
    assert_str(g, "t.empty", "");

    cr_assert_eq(st_gguf_array_int(g, "t.ai16", 2, &iv), ST_OK);
    cr_assert_eq(iv, -3);
    cr_assert_eq(st_gguf_array_int(g, "t.ai16", 3, &iv), ST_E_RANGE);
    cr_assert_eq(st_gguf_array_float(g, "t.af64", 1, &fv), ST_OK);
    cr_assert_eq(fv, -2.25);
    cr_assert_eq(st_gguf_array_int(g, "t.abool", 1, &iv), ST_OK);
    cr_assert_eq(iv, 1);
    cr_assert_eq(st_gguf_array_int(g, "t.aempty", 0, &iv), ST_E_RANGE);
    cr_assert_eq(st_gguf_array_int(g, "t.astr", 0, &iv), ST_E_FORMAT);
    cr_assert_eq(st_gguf_array_int(g, "t.u8", 0, &iv), ST_E_FORMAT);
    const char *s;
    uint64_t len;
    cr_assert_eq(st_gguf_array_string(g, "t.astr", 2, &s, &len), ST_OK);
    cr_assert_eq(len, 3);
    cr_assert_eq(memcmp(s, "ccc", 3), 0);
    cr_assert_eq(st_gguf_array_string(g, "t.astr", 1, &s, &len), ST_OK);
    cr_assert_eq(len, 0);
    cr_assert_eq(st_gguf_array_string(g, "t.ai16", 0, &s, &len), ST_E_FORMAT);

    st_meta_value mv;
    cr_assert_eq(st_gguf_meta_value(g, "t.u32", &mv), ST_OK);
    cr_assert_eq(mv.type, ST_META_INT);
    cr_assert_eq(mv.i, 4000000000ll);
    cr_assert_eq(st_gguf_meta_value(g, "t.bool", &mv), ST_OK);
    cr_assert_eq(mv.type, ST_META_INT);
    cr_assert_eq(mv.i, 1);
    cr_assert_eq(st_gguf_meta_value(g, "t.f64", &mv), ST_OK);
    cr_assert_eq(mv.type, ST_META_FLOAT);
    cr_assert_eq(mv.f, -1e300);
    cr_assert_eq(st_gguf_meta_value(g, "t.str", &mv), ST_OK);
    cr_assert_eq(mv.type, ST_META_STRING);
    cr_assert_eq(mv.len, 6);
    cr_assert_eq(memcmp(mv.str, "h\xc3\xa9llo", 6), 0);
    cr_assert_eq(st_gguf_meta_value(g, "t.af64", &mv), ST_OK);
    cr_assert_eq(mv.type, ST_META_ARRAY);
    cr_assert_eq(mv.array_type, ST_META_FLOAT);
    cr_assert_eq(mv.len, 2);
    cr_assert_eq(st_gguf_meta_value(g, "t.nested", &mv), ST_OK);
    cr_assert_eq(mv.type, ST_META_ARRAY);
    cr_assert_eq(mv.array_type, ST_META_ARRAY);
    cr_assert_eq(mv.len, 2);
    cr_assert_eq(st_gguf_meta_value(g, "nope", &mv), ST_E_NOT_FOUND);

    const st_gguf_tensor *t = st_gguf_tensor_find(g, "x");
    cr_assert_not_null(t);
    cr_assert_eq(memcmp(t->data, one, sizeof one), 0);
    cr_assert_null(st_gguf_tensor_find(g, "y"));
    st_gguf_close(g);
    unlink(path);
}

Test(gguf_open, version_2_alignment_64_and_no_tensors)
{
    st_gw *w = st_gw_new();
    st_gw_set_version(w, 2);
    st_gw_set_alignment(w, 64);
    st_gw_string(w, "general.architecture", "llama");
    uint8_t q[2 * 34] = {0};
    q[0] = 0x00;
    q[1] = 0x3c; /* d = 1 */
    q[2] = 5;
    st_gw_tensor(w, "a", ST_GGML_Q8_0, 2, (uint64_t[]){32, 2}, q);
    st_gw_tensor(w, "b", ST_GGML_F16, 1, (uint64_t[]){3}, NULL);
    st_gw_tensor(w, "c", ST_GGML_Q4_1, 3, (uint64_t[]){32, 1, 2}, NULL);
    char path[512];
    tmp_path(path, sizeof path, "v2");
    st_gw_layout lay;
    cr_assert_eq(st_gw_write(w, path, &lay), ST_OK);
    st_gw_free(w);
    st_gguf *g = open_ok(path);
    cr_assert_eq(g->version, 2);
    cr_assert_eq(g->alignment, 64);
    cr_assert_eq(g->data_offset, lay.data_offset);
    cr_assert_eq(g->data_offset % 64, 0);
    cr_assert_eq(st_gguf_tensor_find(g, "b")->offset, 128);
    cr_assert_eq(st_gguf_tensor_find(g, "c")->offset, 192);
    cr_assert_eq(st_gguf_tensor_find(g, "c")->size, 40);
    cr_assert_eq(st_gguf_tensor_find(g, "c")->ne[2], 2);
    float y[64];
    const st_gguf_tensor *a = st_gguf_tensor_find(g, "a");
    cr_assert_eq(st_dequantize(a->type, a->data, y, 64), ST_OK);
    cr_assert_eq(y[0], 5.0f);
    st_gguf_close(g);

    w = st_gw_new();
    st_gw_u32(w, "only.key", 7);
    cr_assert_eq(st_gw_write(w, path, NULL), ST_OK);
    st_gw_free(w);
    g = open_ok(path);
    cr_assert_eq(g->n_tensors, 0);
    cr_assert_eq(g->n_kv, 1);
    cr_assert_eq(get_i(g, "only.key"), 7);
    st_gguf_close(g);

    w = st_gw_new();
    cr_assert_eq(st_gw_write(w, path, NULL), ST_OK);
    st_gw_free(w);
    g = open_ok(path);
    cr_assert_eq(g->map_len, 32, "header padded to the alignment");
    cr_assert_eq(g->n_kv, 0);
    st_gguf_close(g);
    unlink(path);
}
