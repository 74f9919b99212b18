/*
 * tests/support/tiny_bert.c - the tiny BERT of tiny_bert.h. Weights come
 * from a seeded generator in the order written, so the reference rebuilds
 * them without reading the file.
 */
#include "tiny_bert.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_writer.h"

const char *const tb_vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "dog", "sat", "play",
    "##s", "##ing", "##ed", "cafe", ".", ",", "!", "'", "\xe7\x8c\xab", "a", "b", "c",
    "##a", "##b", "##c", "s", "naive"};
const size_t tb_n_vocab = sizeof tb_vocab / sizeof tb_vocab[0];

typedef struct tb_rng {
    uint64_t s;
} tb_rng;

static float tb_next(tb_rng *r)
{
    r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
    return ((float)((r->s >> 40) & 0xFFFFFF) / (float)0x1000000 - 0.5f) * 0.8f;
}

/* Every tensor, in a fixed order: name, rows, cols (cols 0 = a vector). */
typedef struct tb_tensor {
    char name[48];
    uint32_t rows, cols;
    bool norm_weight; /* around 1 instead of 0 */
} tb_tensor;

static size_t tb_tensors(tb_tensor *t)
{
    size_t n = 0;
#define ADD(nm, r, c, nw) (snprintf(t[n].name, sizeof t[n].name, "%s", nm), t[n].rows = (r), \
                           t[n].cols = (c), t[n].norm_weight = (nw), n++)
    ADD("token_embd.weight", (uint32_t)tb_n_vocab, TB_EMBD, false);
    ADD("position_embd.weight", TB_POS, TB_EMBD, false);
    ADD("token_types.weight", 2, TB_EMBD, false);
    ADD("token_embd_norm.weight", TB_EMBD, 0, true);
    ADD("token_embd_norm.bias", TB_EMBD, 0, false);
    static const struct { const char *n; uint32_t r, c; bool nw; } per[] = {
        {"attn_q.weight", TB_EMBD, TB_EMBD, false}, {"attn_q.bias", TB_EMBD, 0, false},
        {"attn_k.weight", TB_EMBD, TB_EMBD, false}, {"attn_k.bias", TB_EMBD, 0, false},
        {"attn_v.weight", TB_EMBD, TB_EMBD, false}, {"attn_v.bias", TB_EMBD, 0, false},
        {"attn_output.weight", TB_EMBD, TB_EMBD, false}, {"attn_output.bias", TB_EMBD, 0, false},
        {"attn_output_norm.weight", TB_EMBD, 0, true}, {"attn_output_norm.bias", TB_EMBD, 0, false},
        {"ffn_up.weight", TB_FF, TB_EMBD, false}, {"ffn_up.bias", TB_FF, 0, false},
        {"ffn_down.weight", TB_EMBD, TB_FF, false}, {"ffn_down.bias", TB_EMBD, 0, false},
        {"layer_output_norm.weight", TB_EMBD, 0, true},
        {"layer_output_norm.bias", TB_EMBD, 0, false}};
    for (int l = 0; l < TB_LAYERS; l++)
        for (size_t k = 0; k < sizeof per / sizeof per[0]; k++) {
            char nm[48];
            snprintf(nm, sizeof nm, "blk.%d.%s", l, per[k].n);
            ADD(nm, per[k].r, per[k].c, per[k].nw);
        }
#undef ADD
    return n;
}

/* The values of every tensor, in order: [n][rows * max(cols, 1)]. */
static float **tb_values(uint32_t seed, tb_tensor *t, size_t n)
{
    tb_rng r = {seed * 2654435761ULL + 1};
    float **v = calloc(n, sizeof *v);
    for (size_t i = 0; v && i < n; i++) {
        size_t count = (size_t)t[i].rows * (t[i].cols ? t[i].cols : 1);
        v[i] = malloc(count * sizeof **v);
        for (size_t j = 0; v[i] && j < count; j++)
            v[i][j] = (t[i].norm_weight ? 1.0f : 0.0f) + tb_next(&r);
    }
    return v;
}

static void tb_free(float **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

st_status tb_write(const char *path, uint32_t seed, const char *arch, const char *drop)
{
    return tb_write_typed(path, seed, arch, drop, ST_GGML_F32);
}

static bool tb_is_matrix(const char *name)
{
    static const char *const m[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight",
                                    "attn_output.weight", "ffn_up.weight", "ffn_down.weight"};
    const char *dot = strncmp(name, "blk.", 4) ? NULL : strchr(name + 4, '.');
    for (size_t i = 0; dot && i < sizeof m / sizeof m[0]; i++)
        if (!strcmp(dot + 1, m[i]))
            return true;
    return false;
}

/* The model with the layer matrices in matrix_type, except the tensor
 * `odd` (NULL: none), which is written in odd_type. */
static st_status tb_write_spec(const char *path, uint32_t seed, const char *arch,
                               const char *drop, st_ggml_type matrix_type, const char *odd,
                               st_ggml_type odd_type)
{
    tb_tensor t[64];
    size_t n = tb_tensors(t);
    float **v = tb_values(seed, t, n);
    st_gw *w = st_gw_new();
    st_gw_string(w, "general.architecture", arch ? arch : "bert");
    st_gw_u32(w, "bert.context_length", TB_POS);
    st_gw_u32(w, "bert.embedding_length", TB_EMBD);
    st_gw_u32(w, "bert.feed_forward_length", TB_FF);
    st_gw_u32(w, "bert.block_count", TB_LAYERS);
    st_gw_u32(w, "bert.attention.head_count", TB_HEADS);
    st_gw_f32(w, "bert.attention.layer_norm_epsilon", 1e-12f);
    st_gw_u32(w, "bert.pooling_type", 1);
    st_gw_u32(w, "bert.max_tokens", 12);
    st_gw_string(w, "tokenizer.ggml.model", "bert");
    st_gw_str_array(w, "tokenizer.ggml.tokens", tb_vocab, tb_n_vocab);
    st_gw_u32(w, "tokenizer.ggml.cls_token_id", 2);
    st_gw_u32(w, "tokenizer.ggml.seperator_token_id", 3);
    st_gw_u32(w, "tokenizer.ggml.unknown_token_id", 1);
    st_gw_u32(w, "tokenizer.ggml.padding_token_id", 0);
    st_gw_bool(w, "tokenizer.wordpiece.lowercase", true);
    for (size_t i = 0; i < n; i++) {
        if (drop && !strcmp(drop, t[i].name))
            continue;
        uint64_t ne[2] = {t[i].cols ? t[i].cols : t[i].rows, t[i].rows};
        st_ggml_type type = odd && !strcmp(odd, t[i].name) ? odd_type
                            : tb_is_matrix(t[i].name)       ? matrix_type
                                                            : ST_GGML_F32;
        st_gw_tensor_f32(w, t[i].name, type, t[i].cols ? 2 : 1, ne, v[i]);
    }
    st_status st = st_gw_write(w, path, NULL);
    st_gw_free(w);
    tb_free(v, n);
    return st;
}

st_status tb_write_typed(const char *path, uint32_t seed, const char *arch, const char *drop,
                         st_ggml_type matrix_type)
{
    return tb_write_spec(path, seed, arch, drop, matrix_type, NULL, ST_GGML_F32);
}

st_status tb_write_odd(const char *path, uint32_t seed, const char *odd, st_ggml_type odd_type)
{
    return tb_write_spec(path, seed, NULL, NULL, ST_GGML_F32, odd, odd_type);
}

static void ln(double *x, const float *w, const float *b)
{
    double mu = 0, var = 0;
    for (int i = 0; i < TB_EMBD; i++)
        mu += x[i];
    mu /= TB_EMBD;
    for (int i = 0; i < TB_EMBD; i++)
        var += (x[i] - mu) * (x[i] - mu);
    var /= TB_EMBD;
    for (int i = 0; i < TB_EMBD; i++)
        x[i] = (x[i] - mu) / sqrt(var + 1e-12) * w[i] + b[i];
}

/* y[rows] = W x + b with W [rows][cols]. */
static void lin(double *y, const float *W, const float *b, const double *x, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double s = b[r];
        for (int c = 0; c < cols; c++)
            s += (double)W[r * cols + c] * x[c];
        y[r] = s;
    }
}

void tb_reference(uint32_t seed, const int32_t *ids, size_t n, double *out)
{
    tb_tensor t[64];
    size_t nt = tb_tensors(t);
    float **v = tb_values(seed, t, nt);
    double x[TB_POS][TB_EMBD], q[TB_POS][TB_EMBD], k[TB_POS][TB_EMBD], vv[TB_POS][TB_EMBD];
    double a[TB_POS][TB_EMBD], tmp[TB_EMBD], h[TB_FF];
    for (size_t p = 0; p < n; p++) {
        for (int i = 0; i < TB_EMBD; i++)
            x[p][i] = v[0][ids[p] * TB_EMBD + i] + v[1][p * TB_EMBD + i] + v[2][i];
        ln(x[p], v[3], v[4]);
    }
    int hd = TB_EMBD / TB_HEADS;
    for (int l = 0; l < TB_LAYERS; l++) {
        float **L = v + 5 + l * 16;
        for (size_t p = 0; p < n; p++) {
            lin(q[p], L[0], L[1], x[p], TB_EMBD, TB_EMBD);
            lin(k[p], L[2], L[3], x[p], TB_EMBD, TB_EMBD);
            lin(vv[p], L[4], L[5], x[p], TB_EMBD, TB_EMBD);
        }
        for (int hh = 0; hh < TB_HEADS; hh++)
            for (size_t p = 0; p < n; p++) {
                double s[TB_POS], mx = -1e300, sum = 0;
                for (size_t j = 0; j < n; j++) {
                    s[j] = 0;
                    for (int i = 0; i < hd; i++)
                        s[j] += q[p][hh * hd + i] * k[j][hh * hd + i];
                    s[j] /= sqrt((double)hd);
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (size_t j = 0; j < n; j++)
                    sum += (s[j] = exp(s[j] - mx));
                for (int i = 0; i < hd; i++) {
                    a[p][hh * hd + i] = 0;
                    for (size_t j = 0; j < n; j++)
                        a[p][hh * hd + i] += s[j] / sum * vv[j][hh * hd + i];
                }
            }
        for (size_t p = 0; p < n; p++) {
            lin(tmp, L[6], L[7], a[p], TB_EMBD, TB_EMBD);
            for (int i = 0; i < TB_EMBD; i++)
                x[p][i] += tmp[i];
            ln(x[p], L[8], L[9]);
            lin(h, L[10], L[11], x[p], TB_FF, TB_EMBD);
            for (int i = 0; i < TB_FF; i++)
                h[i] = 0.5 * h[i] * (1 + erf(h[i] / sqrt(2.0)));
            lin(tmp, L[12], L[13], h, TB_EMBD, TB_FF);
            for (int i = 0; i < TB_EMBD; i++)
                x[p][i] += tmp[i];
            ln(x[p], L[14], L[15]);
        }
    }
    double norm = 0;
    for (int i = 0; i < TB_EMBD; i++) {
        out[i] = 0;
        for (size_t p = 0; p < n; p++)
            out[i] += x[p][i] / (double)n;
        norm += out[i] * out[i];
    }
    for (int i = 0; i < TB_EMBD; i++)
        out[i] /= sqrt(norm);
    tb_free(v, nt);
}
