/*
 * tests/fuzz/fuzz_gguf.c - the GGUF reader and the llama model loader. The
 * input is written as model.gguf and opened; the file is mapped, so ASan
 * cannot see a read past a value inside the mapping: the reader's promise
 * that every value, string and tensor lies inside the file is checked
 * here, then every metadata value is read through each typed reader, the
 * first row of every tensor is dequantized, and the model loaded: as a
 * Llama, which, when it loads, prefills three tokens and decodes one, and
 * as a BERT sentence encoder, which, when it loads, embeds three tokens
 * (everything a forward pass reads, its loader must have checked).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bert.h"
#include "bert_forward.h"
#include "forward.h"
#include "fuzz_util.h"
#include "gguf.h"
#include "model.h"

#define MAX_ELEMS 64
#define ROW_MAX 4096

static void check_inside(const st_gguf *g, const void *p, uint64_t len, const char *what)
{
    const uint8_t *b = p;
    if (len && (!b || b < g->map || len > g->map_len || (uint64_t)(b - g->map) > g->map_len - len))
        st_fuzz_fail("%s lies outside the file", what);
}

static void read_kv(const st_gguf *g, const st_gguf_kv *kv)
{
    char key[256];
    size_t n = kv->key_len < sizeof key - 1 ? kv->key_len : sizeof key - 1;
    check_inside(g, kv->key, kv->key_len, "a key");
    check_inside(g, kv->data, kv->data_len, "a value");
    memcpy(key, kv->key, n);
    key[n] = '\0';
    int64_t i;
    double f;
    const char *s;
    uint64_t len;
    st_meta_value mv;
    st_gguf_get_int(g, key, &i);
    st_gguf_get_float(g, key, &f);
    if (st_gguf_get_string(g, key, &s, &len) == ST_OK)
        check_inside(g, s, len, "a string value");
    st_gguf_meta_value(g, key, &mv);
    if (kv->type != ST_GGUF_ARRAY)
        return;
    for (uint64_t k = 0; k < kv->array_len && k < MAX_ELEMS; k++) {
        st_gguf_array_int(g, key, k, &i);
        st_gguf_array_float(g, key, k, &f);
        if (st_gguf_array_string(g, key, k, &s, &len) == ST_OK)
            check_inside(g, s, len, "an array string");
    }
}

static void read_tensor(const st_gguf *g, const st_gguf_tensor *t, float *row)
{
    check_inside(g, t->data, t->size, "tensor data");
    if (st_gguf_tensor_find(g, t->name) == NULL)
        st_fuzz_fail("tensor '%s' cannot be found by its name", t->name);
    uint32_t be = st_ggml_block_elems(t->type);
    uint64_t n = t->ne[0] < ROW_MAX ? t->ne[0] : ROW_MAX;
    n = be ? n / be * be : 0;
    if (n && n <= t->size / st_ggml_block_bytes(t->type) * be)
        st_dequantize(t->type, t->data, row, n);
}

/* A loaded Llama, on the CPU without a pool: three tokens (first, last
 * and middle of its vocabulary) prefilled into a 16-slot cache, Q8_0 where
 * the head size allows it, then one decoded; each step gives logits or a
 * refusal with a message. Models too large to run quickly are skipped
 * (the file bounds the weights, not the dimensions' products). */
static void run_llama(const st_model *m)
{
    const st_model_hparams *hp = &m->hp;
    if (!hp->n_vocab || hp->n_vocab > (1u << 16) || hp->n_embd > 1024 || hp->n_ff > 4096 ||
        hp->n_layers > 8)
        return;
    st_diag diag;
    st_diag_clear(&diag);
    st_kv_cache *kv = NULL;
    st_kv_type type = hp->head_dim % 32 == 0 ? ST_KV_Q8_0 : ST_KV_F16;
    if (st_kv_cache_create(hp->n_layers, hp->n_kv_heads, hp->head_dim, 16, type, &kv, &diag) !=
        ST_OK) {
        if (!diag.message[0])
            st_fuzz_fail("st_kv_cache_create failed without a message");
        return;
    }
    st_forward_config cfg = {.model = m, .kv = kv, .weights_layer = -1};
    st_forward_ctx *ctx = NULL;
    if (st_forward_ctx_create(&cfg, &ctx, &diag) != ST_OK) {
        if (!diag.message[0])
            st_fuzz_fail("st_forward_ctx_create failed without a message");
        st_kv_cache_free(kv);
        return;
    }
    float *logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    int32_t tok[4] = {0, (int32_t)hp->n_vocab - 1, (int32_t)(hp->n_vocab / 2), 1 % hp->n_vocab};
    int32_t pos[4] = {0, 1, 2, 3};
    for (int step = 0; logits && step < 2; step++) {
        st_diag_clear(&diag);
        st_status st = step == 0 ? st_forward(ctx, tok, pos, 3, logits, 0, &diag)
                                 : st_forward(ctx, tok + 3, pos + 3, 1, logits, 0, &diag);
        if (st != ST_OK) {
            if (!diag.message[0])
                st_fuzz_fail("st_forward failed without a message");
            break;
        }
    }
    free(logits);
    st_forward_ctx_free(ctx);
    st_kv_cache_free(kv);
}

/* As an encoder: a loaded model embeds [first, last, middle] ids of its
 * vocabulary (up to max_tokens of them) on the scalar kernels, without a
 * pool, to a vector or a refusal with a message. */
static void load_bert(const st_gguf *g)
{
    st_bert_model *b = NULL;
    st_diag diag;
    st_diag_clear(&diag);
    if (st_bert_model_load(g, &b, &diag) != ST_OK) {
        if (!diag.message[0])
            st_fuzz_fail("st_bert_model_load failed without a message");
        return;
    }
    if (b->n_vocab && b->max_tokens && b->n_embd <= 4096) {
        int32_t ids[3] = {0, (int32_t)(b->n_vocab - 1), (int32_t)(b->n_vocab / 2)};
        size_t n = b->max_tokens < 3 ? b->max_tokens : 3;
        float *out = malloc(b->n_embd * sizeof *out);
        st_error err = {0};
        if (out && st_bert_embed(b, NULL, st_cpu_kernels_get(ST_ISA_SCALAR), ids, n, out, &err) !=
                       ST_OK &&
            !err.message[0])
            st_fuzz_fail("st_bert_embed failed without a message");
        free(out);
    }
    st_bert_model_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = st_fuzz_write(0, "model.gguf", data, size);
    st_gguf *g = NULL;
    st_diag diag;
    st_diag_clear(&diag);
    if (st_gguf_open(path, &g, &diag) != ST_OK) {
        if (!diag.message[0])
            st_fuzz_fail("st_gguf_open failed without a message");
        return 0;
    }
    for (uint64_t k = 0; k < g->n_kv; k++)
        read_kv(g, &g->kv[k]);
    static float row[ROW_MAX];
    for (uint64_t k = 0; k < g->n_tensors; k++)
        read_tensor(g, &g->tensors[k], row);
    st_model *m = NULL;
    if (st_model_load(g, &m, &diag) == ST_OK) {
        run_llama(m);
        st_model_free(m);
    } else if (!diag.message[0])
        st_fuzz_fail("st_model_load failed without a message");
    load_bert(g);
    st_gguf_close(g);
    return 0;
}
