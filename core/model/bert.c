/*
 * core/model/bert.c - map a BERT encoder's tensors from GGUF and check
 * every shape against the hyperparameters, so the forward pass never reads
 * out of bounds.
 */
#include "bert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "repack.h"

static st_status need_int(const st_gguf *g, const char *key, int64_t min, int64_t max,
                          uint32_t *out, st_diag *d)
{
    int64_t v;
    if (st_gguf_get_int(g, key, &v) != ST_OK)
        return st_diag_set(d, ST_E_FORMAT, g->path, 0, 0, "missing integer key %s", key);
    if (v < min || v > max)
        return st_diag_set(d, ST_E_FORMAT, g->path, 0, 0, "%s is %lld, expected %lld..%lld", key,
                           (long long)v, (long long)min, (long long)max);
    *out = (uint32_t)v;
    return ST_OK;
}

/* An f32 tensor of exactly [ne0] or [ne0 x ne1] (ne1 0 = one dimension). */
static const float *tensor(const st_gguf *g, const char *name, uint64_t ne0, uint64_t ne1,
                           st_status *st, st_diag *d)
{
    if (*st != ST_OK)
        return NULL;
    const st_gguf_tensor *t = st_gguf_tensor_find(g, name);
    if (!t) {
        *st = st_diag_set(d, ST_E_FORMAT, g->path, 0, 0, "missing tensor %s", name);
        return NULL;
    }
    bool shape = ne1 ? t->n_dims == 2 && t->ne[0] == ne0 && t->ne[1] == ne1
                     : t->n_dims == 1 && t->ne[0] == ne0;
    if (t->type != ST_GGML_F32 || !shape) {
        *st = st_diag_set(d, ST_E_FORMAT, g->path, 0, 0,
                          "tensor %s: expected f32 [%llu%s%llu], found %s with %u dims "
                          "[%llu, %llu]", name, (unsigned long long)ne0, ne1 ? " x " : "",
                          (unsigned long long)(ne1 ? ne1 : 0), st_ggml_type_name(t->type),
                          t->n_dims, (unsigned long long)t->ne[0],
                          (unsigned long long)(t->n_dims > 1 ? t->ne[1] : 0));
        return NULL;
    }
    return t->data;
}

/* A layer's matrix [rows][cols] (GGUF ne0 = cols, ne1 = rows): f32, or
 * Q8_0 (quant.h; e.g. tools/convert_minilm.py --type q8_0), which the
 * matmul multiplies with int8 activations through the repacked 16-row
 * kernels (the copy in w->packed is made here; st_bert_model_free frees
 * it). */
static st_weight matrix(const st_gguf *g, const char *name, uint32_t cols, uint32_t rows,
                        st_status *st, st_diag *d)
{
    st_weight w = {.type = ST_GGML_F32, .cols = cols, .rows = rows};
    if (*st != ST_OK)
        return w;
    const st_gguf_tensor *t = st_gguf_tensor_find(g, name);
    if (!t) {
        *st = st_diag_set(d, ST_E_FORMAT, g->path, 0, 0, "missing tensor %s", name);
        return w;
    }
    bool shape = t->n_dims == 2 && t->ne[0] == cols && t->ne[1] == rows;
    bool q8 = t->type == ST_GGML_Q8_0 && cols % ST_ACT_BLOCK == 0;
    if ((t->type != ST_GGML_F32 && !q8) || !shape) {
        *st = st_diag_set(d, ST_E_FORMAT, g->path, 0, 0,
                          "tensor %s: expected f32 or q8_0 (with %u a multiple of 32) "
                          "[%u x %u], found %s with %u dims [%llu, %llu]", name, cols, cols,
                          rows, st_ggml_type_name(t->type), t->n_dims,
                          (unsigned long long)t->ne[0],
                          (unsigned long long)(t->n_dims > 1 ? t->ne[1] : 0));
        return w;
    }
    w.type = t->type;
    w.row_bytes = (size_t)st_ggml_row_bytes(t->type, cols);
    w.data = t->data;
    if (q8 && st_repack_weight(&w) != ST_OK)
        *st = st_diag_set(d, ST_E_NOMEM, g->path, 0, 0, "out of memory repacking %s", name);
    return w;
}

st_status st_bert_model_load(const st_gguf *g, st_bert_model **out, st_diag *d)
{
    *out = NULL;
    const char *arch;
    uint64_t arch_len;
    if (st_gguf_get_string(g, "general.architecture", &arch, &arch_len) != ST_OK ||
        arch_len != 4 || memcmp(arch, "bert", 4) != 0)
        return st_diag_set(d, ST_E_FORMAT, g->path, 0, 0,
                           "general.architecture: expected \"bert\" (a sentence encoder)");
    st_bert_model *m = calloc(1, sizeof *m);
    if (!m)
        return st_diag_set(d, ST_E_NOMEM, g->path, 0, 0, "out of memory");
    st_status st = ST_OK;
    if ((st = need_int(g, "bert.embedding_length", 1, 65536, &m->n_embd, d)) ||
        (st = need_int(g, "bert.feed_forward_length", 1, 1 << 20, &m->n_ff, d)) ||
        (st = need_int(g, "bert.block_count", 1, 1024, &m->n_layers, d)) ||
        (st = need_int(g, "bert.attention.head_count", 1, 1024, &m->n_heads, d)) ||
        (st = need_int(g, "bert.context_length", 2, 1 << 20, &m->n_pos, d))) {
        free(m);
        return st;
    }
    if (m->n_embd % m->n_heads) {
        uint32_t e = m->n_embd, h = m->n_heads;
        free(m);
        return st_diag_set(d, ST_E_FORMAT, g->path, 0, 0,
                           "bert.embedding_length %u is not a multiple of the %u heads", e, h);
    }
    int64_t pooling = 1, v;
    if (st_gguf_get_int(g, "bert.pooling_type", &pooling) == ST_OK && pooling != 1) {
        free(m);
        return st_diag_set(d, ST_E_FORMAT, g->path, 0, 0,
                           "bert.pooling_type is %lld; only mean pooling (1) is supported",
                           (long long)pooling);
    }
    double eps = 1e-12;
    st_gguf_get_float(g, "bert.attention.layer_norm_epsilon", &eps);
    m->eps = (float)eps;
    m->max_tokens = m->n_pos;
    if (st_gguf_get_int(g, "bert.max_tokens", &v) == ST_OK && v >= 2 && v <= m->n_pos)
        m->max_tokens = (uint32_t)v;
    m->normalize = st_gguf_get_int(g, "bert.normalize", &v) == ST_OK ? v != 0 : true;

    const st_gguf_tensor *te = st_gguf_tensor_find(g, "token_embd.weight");
    const st_gguf_tensor *tt = st_gguf_tensor_find(g, "token_types.weight");
    m->n_vocab = te && te->n_dims == 2 ? (uint32_t)te->ne[1] : 0;
    m->n_types = tt && tt->n_dims == 2 ? (uint32_t)tt->ne[1] : 0;
    uint32_t e = m->n_embd, f = m->n_ff;
    m->tok_embd = tensor(g, "token_embd.weight", e, m->n_vocab ? m->n_vocab : 1, &st, d);
    m->pos_embd = tensor(g, "position_embd.weight", e, m->n_pos, &st, d);
    m->type_embd = tensor(g, "token_types.weight", e, m->n_types ? m->n_types : 1, &st, d);
    m->embd_norm_w = tensor(g, "token_embd_norm.weight", e, 0, &st, d);
    m->embd_norm_b = tensor(g, "token_embd_norm.bias", e, 0, &st, d);
    if (st == ST_OK && !(m->layers = calloc(m->n_layers, sizeof *m->layers)))
        st = st_diag_set(d, ST_E_NOMEM, g->path, 0, 0, "out of memory");
    char name[96];
#define T(field, suffix, ne0, ne1)                                                   \
    (snprintf(name, sizeof name, "blk.%u.%s", l, suffix), tensor(g, name, ne0, ne1, &st, d))
#define W(suffix, cols, rows)                                                        \
    (snprintf(name, sizeof name, "blk.%u.%s", l, suffix), matrix(g, name, cols, rows, &st, d))
    for (uint32_t l = 0; l < m->n_layers && st == ST_OK; l++) {
        st_bert_layer *L = &m->layers[l];
        L->q = W("attn_q.weight", e, e);
        L->q_b = T(q_b, "attn_q.bias", e, 0);
        L->k = W("attn_k.weight", e, e);
        L->k_b = T(k_b, "attn_k.bias", e, 0);
        L->v = W("attn_v.weight", e, e);
        L->v_b = T(v_b, "attn_v.bias", e, 0);
        L->out = W("attn_output.weight", e, e);
        L->out_b = T(out_b, "attn_output.bias", e, 0);
        L->attn_norm_w = T(n, "attn_output_norm.weight", e, 0);
        L->attn_norm_b = T(n, "attn_output_norm.bias", e, 0);
        L->up = W("ffn_up.weight", e, f);
        L->up_b = T(up_b, "ffn_up.bias", f, 0);
        L->down = W("ffn_down.weight", f, e);
        L->down_b = T(down_b, "ffn_down.bias", e, 0);
        L->out_norm_w = T(n, "layer_output_norm.weight", e, 0);
        L->out_norm_b = T(n, "layer_output_norm.bias", e, 0);
        /* Q, K and V are one product over one input (bert_forward.c),
         * quantized to int8 or not by the type of the first: mixed, a
         * Q8_0 matrix would read int8 blocks that were never made. */
        if (st == ST_OK && (L->k.type != L->q.type || L->v.type != L->q.type))
            st = st_diag_set(d, ST_E_FORMAT, g->path, 0, 0,
                             "blk.%u.attn_q, attn_k and attn_v are %s, %s and %s; they must "
                             "share one type (f32 or q8_0)",
                             l, st_ggml_type_name(L->q.type), st_ggml_type_name(L->k.type),
                             st_ggml_type_name(L->v.type));
    }
#undef T
#undef W
    if (st != ST_OK) {
        st_bert_model_free(m);
        return st;
    }
    *out = m;
    return ST_OK;
}

void st_bert_model_free(st_bert_model *m)
{
    if (!m)
        return;
    for (uint32_t l = 0; m->layers && l < m->n_layers; l++) {
        st_bert_layer *L = &m->layers[l];
        st_weight *ws[] = {&L->q, &L->k, &L->v, &L->out, &L->up, &L->down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            free(ws[i]->packed);
    }
    free(m->layers);
    free(m);
}
