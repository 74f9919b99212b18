/*
 * tests/fuzz/fuzz_seeds.c - st-fuzz-seeds OUTDIR: writes the binary seed
 * corpora with the project's own writers, so no binary seed is committed
 * and each stays valid as the formats change: tiny GGUF models
 * and the tiny BERT encoder in f32 and Q8_0 (OUTDIR/gguf), a GGUF with
 * metadata of every type, a saved bm25 index
 * (OUTDIR/bm25_index; bm25.c is compiled in), embedding and hybrid indexes
 * of the same documents on the test encoder's vectors (OUTDIR/
 * embedding_index, OUTDIR/hybrid_index; embedding.c is compiled in without
 * its entry, as the hybrid plugin has it) and saved squeezed clusterings
 * without their checksum, as fuzz_squeezed_index takes them
 * (OUTDIR/squeezed_index).
 */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <stretch/plugin.h>
#include <stretch/retriever.h>

#include "bm25.h"
#include "embedding.h"
#include "gguf_writer.h"
#include "squeezed_keys.h"
#include "test_host.h"
#include "tiny_bert.h"
#include "tiny_model.h"

extern const st_plugin_entry stretch_plugin_entry;

static const char *g_out;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "st-fuzz-seeds: %s: %s\n", what, detail);
    exit(1);
}

static const char *path_in(const char *sub, const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", g_out, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die(path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s/%s", g_out, sub, name);
    return path;
}

static void tiny_models(void)
{
    static const struct {
        const char *name;
        st_ggml_type type, embd;
        bool tied;
        uint32_t pos;
    } specs[] = {
        {"tiny-f32.gguf", ST_GGML_F32, ST_GGML_Q8_0, true, 0},
        {"tiny-q4_0-untied.gguf", ST_GGML_Q4_0, ST_GGML_F16, false, 0},
        {"tiny-q4_1-pos.gguf", ST_GGML_Q4_1, ST_GGML_Q4_1, true, 8},
    };
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        st_tiny_model_spec s;
        st_tiny_model_spec_default(&s);
        /* Small enough that libFuzzer mutates it quickly. */
        s.type = specs[k].type;
        s.embd_type = specs[k].embd;
        s.tied = specs[k].tied;
        s.n_pos_table = specs[k].pos;
        s.n_layers = 1;
        s.n_embd = 32;
        s.n_heads = 2;
        s.n_kv_heads = 2; /* kv width 32: one block of the quantized types */
        s.n_ff = 32;
        s.n_ctx = 16;
        s.n_vocab = 259 + 16;
        st_diag diag;
        if (st_gen_tiny_model(&s, path_in("gguf", specs[k].name), &diag) != ST_OK)
            die(specs[k].name, diag.message);
    }
}

/* The tiny BERT encoder of the retrieval tests, f32 and with Q8_0 layer
 * matrices: seeds for st_bert_model_load (fuzz_gguf). */
static void tiny_berts(void)
{
    if (tb_write(path_in("gguf", "tiny-bert-f32.gguf"), 7, NULL, NULL) != ST_OK)
        die("tiny-bert-f32.gguf", "cannot write");
    if (tb_write_typed(path_in("gguf", "tiny-bert-q8_0.gguf"), 7, NULL, NULL, ST_GGML_Q8_0) !=
        ST_OK)
        die("tiny-bert-q8_0.gguf", "cannot write");
}

static void every_meta_type(void)
{
    st_gw *w = st_gw_new();
    st_gw_u8(w, "t.u8", 200);
    st_gw_i8(w, "t.i8", -5);
    st_gw_u16(w, "t.u16", 60000);
    st_gw_i16(w, "t.i16", -3000);
    st_gw_u32(w, "t.u32", 4000000000u);
    st_gw_i32(w, "t.i32", -7);
    st_gw_u64(w, "t.u64", UINT64_MAX);
    st_gw_i64(w, "t.i64", INT64_MIN);
    st_gw_f32(w, "t.f32", 1.5f);
    st_gw_f64(w, "t.f64", -2.25);
    st_gw_bool(w, "t.bool", true);
    st_gw_string(w, "tokenizer.chat_template", st_tiny_chat_template);
    static const int32_t ints[] = {1, -2, 3};
    static const double floats[] = {0.5, -1e300};
    static const char *const strs[] = {"a", "", "<|im_end|>"};
    st_gw_array(w, "t.ai32", ST_GGUF_I32, ints, 3);
    st_gw_array(w, "t.af64", ST_GGUF_F64, floats, 2);
    st_gw_str_array(w, "t.astr", strs, 3);
    static const float row[32] = {1, -1, 0.5f, 2};
    st_gw_tensor_f32(w, "t.q8", ST_GGML_Q8_0, 1, (const uint64_t[]){32}, row);
    st_gw_tensor_f32(w, "t.f16", ST_GGML_F16, 2, (const uint64_t[]){4, 2}, row);
    if (st_gw_write(w, path_in("gguf", "every-type.gguf"), NULL) != ST_OK)
        die("every-type.gguf", "cannot write");
    st_gw_free(w);
}

static const char *const seed_docs[][2] = {
    {"fox", "The quick brown fox jumps over the lazy dog"},
    {"caf\xc3\xa9", "caf\xc3\xa9 au lait, 42 cups"},
    {"empty", ""},
};
#define N_SEED_DOCS (sizeof seed_docs / sizeof seed_docs[0])

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static void write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        die(path, "cannot write");
}

/* The embedding and hybrid seeds of the documents `lex` and `dense` hold,
 * packed by the plugins' own writers: emb_pack's map, and the map hybrid
 * saves, {format, version, bm25, embedding}. */
static void dense_indexes(void *lex, void *dense, const char *name)
{
    char file[64];
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    emb_pack(dense, &pk);
    snprintf(file, sizeof file, "%s.emb", name);
    write_file(path_in("embedding_index", file), sb.data, sb.size);
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 4);
    pack_str(&pk, "format");
    pack_str(&pk, "stretch.hybrid");
    pack_str(&pk, "version");
    msgpack_pack_uint32(&pk, 1);
    pack_str(&pk, "bm25");
    bm25_pack(lex, &pk);
    pack_str(&pk, "embedding");
    emb_pack(dense, &pk);
    snprintf(file, sizeof file, "%s.hyb", name);
    write_file(path_in("hybrid_index", file), sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* bm25, embedding and hybrid indexes of the seed documents, and empty ones. */
static void retriever_indexes(void)
{
    const st_retriever_ops *ops = stretch_plugin_entry.ops;
    void *inst = NULL, *dense = NULL;
    st_error err = {0};
    if (st_test_create(&stretch_plugin_entry, NULL, NULL, &inst, &err) != ST_OK)
        die("bm25", err.message);
    if (emb_create(st_test_host_encoder_services(), NULL, &dense, &err) != ST_OK)
        die("embedding", err.message);
    for (size_t k = 0; k < N_SEED_DOCS; k++)
        if (ops->add(inst, seed_docs[k][0], strlen(seed_docs[k][0]), seed_docs[k][1],
                     strlen(seed_docs[k][1]), &err) != ST_OK ||
            emb_add(dense, seed_docs[k][0], strlen(seed_docs[k][0]), seed_docs[k][1],
                    strlen(seed_docs[k][1]), &err) != ST_OK)
            die("seed add", err.message);
    if (ops->save(inst, path_in("bm25_index", "three-docs.bm25"), &err) != ST_OK)
        die("bm25 save", err.message);
    dense_indexes(inst, dense, "three-docs");
    ops->clear(inst);
    emb_clear(dense);
    if (ops->save(inst, path_in("bm25_index", "empty.bm25"), &err) != ST_OK)
        die("bm25 save", err.message);
    dense_indexes(inst, dense, "empty");
    emb_destroy(dense);
    stretch_plugin_entry.destroy(inst);
}

/* A clustering of key `which`: keys assigned round-robin. */
static void squeezed_index(int which)
{
    st_sq_index_key key = st_fuzz_sq_key(which);
    st_sq_index ix;
    if (st_sq_index_init(&ix, &key) != ST_OK)
        die("squeezed", "init failed");
    for (uint32_t l = 0; l < key.n_layers; l++) {
        for (uint32_t hi = 0; hi < key.n_kv_heads; hi++) {
            st_sq_head_index *h = &ix.layers[l].heads[hi];
            h->n_keys = key.fixed_len;
            h->k = 3;
            h->kc = key.levels == 2 ? 2 : 0;
            h->centroids = calloc((size_t)h->k * key.head_dim, sizeof(float));
            h->mass = calloc(h->k, sizeof(float));
            h->assign = calloc(h->n_keys, sizeof(uint32_t));
            h->coarse_centroids = calloc((size_t)h->kc * key.head_dim + 1, sizeof(float));
            h->coarse_mass = calloc(h->kc + 1, sizeof(float));
            h->parent = calloc(h->k, sizeof(uint32_t));
            for (uint32_t i = 0; i < h->n_keys; i++)
                h->assign[i] = i % h->k;
            for (uint32_t c = 0; c < h->k; c++) {
                h->mass[c] = 4;
                h->centroids[c * key.head_dim] = (float)c;
                if (h->kc)
                    h->parent[c] = c % h->kc;
            }
            if (st_sq_head_members(h) != ST_OK)
                die("squeezed", "members");
        }
        ix.layers[l].built = true;
        ix.layers[l].thr_fine = 0.1f;
        ix.layers[l].thr_coarse = 0.2f;
    }
    char name[64], msg[1024];
    snprintf(name, sizeof name, "levels-%u.sq", key.levels);
    const char *path = path_in("squeezed_index", name);
    if (st_sq_index_save(&ix, path, msg, sizeof msg) != ST_OK)
        die("squeezed save", msg);
    st_sq_index_free(&ix);

    /* The target appends the checksum itself: keep only the map. */
    FILE *f = fopen(path, "rb");
    static char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, buf, n, &off) != MSGPACK_UNPACK_SUCCESS)
        die(path, "does not unpack");
    msgpack_unpacked_destroy(&up);
    write_file(path, buf, off);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: st-fuzz-seeds OUTDIR\n");
        return 2;
    }
    g_out = argv[1];
    if (mkdir(g_out, 0755) != 0 && errno != EEXIST)
        die(g_out, strerror(errno));
    tiny_models();
    tiny_berts();
    every_meta_type();
    retriever_indexes();
    for (int which = 0; which < ST_FUZZ_SQ_N_KEYS; which++)
        squeezed_index(which);
    return 0;
}
