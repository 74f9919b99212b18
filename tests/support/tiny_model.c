/*
 * tests/support/tiny_model.c - see tiny_model.h. Three parts: the GPT-2
 * byte-level alphabet, a tiny deterministic BPE trainer, and the weights.
 */
#include "tiny_model.h"
#include "gguf_writer.h"
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char st_tiny_chat_template[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}";

/* The training text: English prose and a little C and Python, so the merges
 * look like a code-and-text model's first merges (" t", "in", "he", ...). */
static const char corpus[] =
    "The quick brown fox jumps over the lazy dog. The dog was not amused, and the fox ran into the forest.\n"
    "In the beginning there was the word, and the word was written in the language of the machine.\n"
    "Hello, world! This is a small test of the tokenizer: it should learn the most common pairs of "
    "characters in this text, such as the, and, ing, tion and er.\n"
    "A transformer reads the tokens of the input one after another and predicts the next token. "
    "The attention of each layer looks at the tokens that came before it, and the position of each "
    "token is encoded with a rotation of the query and the key.\n"
    "When the context is longer than the model was trained on, the positions must be interpolated, "
    "the attention must be restricted to a window, or the older tokens must be retrieved when needed.\n"
    "There are many ways to extend the context of a language model; this project compares them.\n"
    "int main(int argc, char **argv)\n{\n    int count = 0;\n    for (int i = 0; i < argc; i++) {\n"
    "        if (argv[i][0] == '-')\n            count++;\n    }\n    printf(\"%d options\\n\", count);\n"
    "    return 0;\n}\n"
    "static int add(int a, int b) { return a + b; }\n"
    "def tokenize(text):\n    tokens = []\n    for word in text.split():\n        tokens.append(word)\n"
    "    return tokens\n\n"
    "def main():\n    print(\"hello world\")\n    for i in range(10):\n        print(i, i * i)\n\n"
    "if __name__ == \"__main__\":\n    main()\n"
    "The weather today is sunny with a chance of rain in the evening. Take an umbrella if you go out.\n"
    "She said that she would come to the meeting at ten, but she was late because the train was delayed.\n"
    "Numbers like 2024, 100000 and 3.14159 appear in text too, and so do dates such as 12/05/2023.\n"
    "The function returns the number of tokens in the string, or a negative value on error.\n"
    "Every plugin is loaded from a shared library and described by a manifest with its name, kind and "
    "version. The host checks the version of the interface before it calls the plugin.\n"
    "Once upon a time there was a little girl who lived in a village near the forest. Whenever she went "
    "out, she wore a red riding cloak, so everyone in the village called her Little Red Riding Hood.\n"
    "for (size_t i = 0; i < n; i++) {\n        sum += values[i] * weights[i];\n    }\n"
    "    if (sum > max_value) {\n        max_value = sum;\n    }\n"
    "class Model:\n    def __init__(self, layers):\n        self.layers = layers\n\n"
    "    def forward(self, tokens):\n        for layer in self.layers:\n            tokens = layer(tokens)\n"
    "        return tokens\n";

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to
 * U+0100 upwards, in this order (which is also the vocabulary order). */
static uint32_t byte_cp[256];     /* byte -> code point */
static uint8_t order_byte[256];   /* k-th byte symbol -> byte */
static uint8_t byte_order[256];   /* byte -> k */
static char byte_sym[256][3];

static int printable(int b)
{
    return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

static void init_bytes(void)
{
    if (byte_sym[0][0])
        return;
    int k = 0, n = 0;
    for (int b = 0; b < 256; b++)
        if (printable(b)) {
            byte_cp[b] = (uint32_t)b;
            order_byte[k++] = (uint8_t)b;
        }
    for (int b = 0; b < 256; b++)
        if (!printable(b)) {
            byte_cp[b] = (uint32_t)(256 + n++);
            order_byte[k++] = (uint8_t)b;
        }
    for (k = 0; k < 256; k++)
        byte_order[order_byte[k]] = (uint8_t)k;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = byte_cp[b];
        if (cp < 0x80) {
            byte_sym[b][0] = (char)cp;
            byte_sym[b][1] = 0;
        } else { /* all code points are < 0x800: two UTF-8 bytes */
            byte_sym[b][0] = (char)(0xc0 | (cp >> 6));
            byte_sym[b][1] = (char)(0x80 | (cp & 0x3f));
            byte_sym[b][2] = 0;
        }
    }
}

const char *st_tiny_byte_symbol(uint8_t byte)
{
    init_bytes();
    return byte_sym[byte];
}

uint32_t st_tiny_byte_token(uint8_t byte)
{
    init_bytes();
    return ST_TINY_FIRST_BYTE_TOKEN + byte_order[byte];
}

/* ---- BPE training ---------------------------------------------------- */

typedef struct word {
    uint32_t *sym;
    uint32_t n;
    uint32_t count;
    const char *text;  /* into corpus, for dedup */
    uint32_t len;
} word;

typedef struct vocab {
    char **tok;        /* token strings (UTF-8) */
    uint32_t n, cap;
    char **merges;
    uint32_t n_merges;
} vocab;

static int cls(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return 1;
    if (c >= '0' && c <= '9') return 2;
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') return 3;
    return 4;
}

/* GPT-2-like pre-split: an optional single leading space joins the run of
 * letters, digits or punctuation that follows; other whitespace stands alone. */
static size_t split_words(word **out)
{
    size_t n = 0, cap = 0, len = sizeof corpus - 1;
    word *ws = NULL;
    for (size_t i = 0; i < len;) {
        size_t s = i;
        if (corpus[i] == ' ' && i + 1 < len && cls((unsigned char)corpus[i + 1]) != 3)
            i++;
        int c = cls((unsigned char)corpus[i]);
        while (i < len && cls((unsigned char)corpus[i]) == c)
            i++;
        uint32_t wl = (uint32_t)(i - s);
        size_t j;
        for (j = 0; j < n; j++)
            if (ws[j].len == wl && memcmp(ws[j].text, corpus + s, wl) == 0)
                break;
        if (j < n) {
            ws[j].count++;
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            word *nw = realloc(ws, cap * sizeof *nw);
            if (!nw)
                goto oom;
            ws = nw;
        }
        ws[n].text = corpus + s;
        ws[n].len = wl;
        ws[n].count = 1;
        ws[n].n = wl;
        ws[n].sym = malloc(wl * sizeof(uint32_t));
        if (!ws[n].sym)
            goto oom;
        for (uint32_t k = 0; k < wl; k++)
            ws[n].sym[k] = st_tiny_byte_token((uint8_t)corpus[s + k]);
        n++;
    }
    *out = ws;
    return n;
oom:
    for (size_t j = 0; j < n; j++)
        free(ws[j].sym);
    free(ws);
    *out = NULL;
    return 0;
}

static void vocab_free(vocab *v)
{
    for (uint32_t i = 0; i < v->n; i++)
        free(v->tok[i]);
    for (uint32_t i = 0; i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->tok);
    free(v->merges);
}

static st_status train_vocab(uint32_t n_vocab, vocab *v, st_diag *diag, const char *path)
{
    init_bytes();
    memset(v, 0, sizeof *v);
    uint32_t cap = n_vocab < ST_TINY_FIRST_MERGE_TOKEN ? ST_TINY_FIRST_MERGE_TOKEN : n_vocab;
    v->tok = calloc(cap, sizeof *v->tok);
    v->merges = calloc(cap, sizeof *v->merges);
    uint32_t *pair = calloc((size_t)cap * cap, sizeof *pair);
    word *ws = NULL;
    size_t nw = split_words(&ws);
    if (!v->tok || !v->merges || !pair || !ws)
        goto oom;
    static const char *specials[ST_TINY_N_SPECIAL] = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    for (int i = 0; i < ST_TINY_N_SPECIAL; i++)
        if (!(v->tok[v->n++] = strdup(specials[i])))
            goto oom;
    for (int k = 0; k < 256; k++)
        if (!(v->tok[v->n++] = strdup(byte_sym[order_byte[k]])))
            goto oom;

    while (v->n < n_vocab) {
        memset(pair, 0, (size_t)cap * cap * sizeof *pair);
        for (size_t i = 0; i < nw; i++)
            for (uint32_t k = 0; k + 1 < ws[i].n; k++)
                pair[(size_t)ws[i].sym[k] * cap + ws[i].sym[k + 1]] += ws[i].count;
        /* most frequent pair; ties go to the smaller (left, right) strings */
        uint32_t best_a = 0, best_b = 0, best = 0;
        for (uint32_t a = 0; a < v->n; a++)
            for (uint32_t b = 0; b < v->n; b++) {
                uint32_t c = pair[(size_t)a * cap + b];
                if (c < 2 || c < best)
                    continue;
                if (c == best) {
                    int r = strcmp(v->tok[a], v->tok[best_a]);
                    if (r > 0 || (r == 0 && strcmp(v->tok[b], v->tok[best_b]) >= 0))
                        continue;
                }
                best = c;
                best_a = a;
                best_b = b;
            }
        if (best < 2)
            break; /* nothing repeats any more */
        size_t la = strlen(v->tok[best_a]), lb = strlen(v->tok[best_b]);
        char *tok = malloc(la + lb + 1), *m = malloc(la + lb + 2);
        if (!tok || !m) {
            free(tok);
            free(m);
            goto oom;
        }
        memcpy(tok, v->tok[best_a], la);
        memcpy(tok + la, v->tok[best_b], lb + 1);
        memcpy(m, v->tok[best_a], la);
        m[la] = ' ';
        memcpy(m + la + 1, v->tok[best_b], lb + 1);
        uint32_t id = v->n;
        v->tok[v->n++] = tok;
        v->merges[v->n_merges++] = m;
        for (size_t i = 0; i < nw; i++) {
            uint32_t o = 0;
            for (uint32_t k = 0; k < ws[i].n; k++) {
                if (k + 1 < ws[i].n && ws[i].sym[k] == best_a && ws[i].sym[k + 1] == best_b) {
                    ws[i].sym[o++] = id;
                    k++;
                } else {
                    ws[i].sym[o++] = ws[i].sym[k];
                }
            }
            ws[i].n = o;
        }
    }
    for (size_t i = 0; i < nw; i++)
        free(ws[i].sym);
    free(ws);
    free(pair);
    return ST_OK;
oom:
    if (ws)
        for (size_t i = 0; i < nw; i++)
            free(ws[i].sym);
    free(ws);
    free(pair);
    vocab_free(v);
    return st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory training the tiny vocabulary");
}

/* ---- weights ---------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-1, 1) */
static float urand(uint64_t *s) { return (float)((splitmix64(s) >> 40) * (2.0 / 16777216.0) - 1.0); }

static int add_tensor(st_gw *w, uint64_t *rng, const char *name, st_ggml_type type,
                      uint64_t ne0, uint64_t ne1, float center, float scale)
{
    uint64_t ne[2] = {ne0, ne1};
    uint64_t n = ne0 * ne1;
    float *x = malloc(n * sizeof *x);
    if (!x)
        return -1;
    for (uint64_t i = 0; i < n; i++)
        x[i] = center + scale * urand(rng);
    st_gw_tensor_f32(w, name, type, ne1 == 1 ? 1 : 2, ne, x);
    free(x);
    return 0;
}

void st_tiny_model_spec_default(st_tiny_model_spec *s)
{
    memset(s, 0, sizeof *s);
    s->type = ST_GGML_F32;
    s->embd_type = ST_GGML_Q8_0;
    s->seed = 1;
    s->n_layers = 2;
    s->n_embd = 64;
    s->n_heads = 4;
    s->n_kv_heads = 2;
    s->n_ff = 128;
    s->n_ctx = 128;
    s->n_vocab = ST_TINY_FIRST_MERGE_TOKEN + 200;
    s->tied = true;
    s->rope_base = 100000.0f;
    s->rms_eps = 1e-5f;
}

static uint32_t file_type(st_ggml_type t)
{
    switch (t) { /* llama.cpp's llama_ftype */
    case ST_GGML_F32: return 0;
    case ST_GGML_F16: return 1;
    case ST_GGML_Q4_0: return 2;
    case ST_GGML_Q4_1: return 3;
    case ST_GGML_Q8_0: return 7;
    }
    return 0;
}

static st_status check_spec(const st_tiny_model_spec *s, const char *path, st_diag *diag)
{
    const char *bad = NULL;
    uint32_t be = st_ggml_block_elems(s->type), bee = st_ggml_block_elems(s->embd_type);
    if (be == 0 || bee == 0)
        bad = "unknown tensor type";
    else if (s->n_layers == 0 || s->n_layers > 64)
        bad = "layers must be 1..64";
    else if (s->n_heads == 0 || s->n_kv_heads == 0 || s->n_heads % s->n_kv_heads != 0)
        bad = "heads must be a positive multiple of kv-heads";
    else if (s->n_embd == 0 || s->n_embd % s->n_heads != 0 || (s->n_embd / s->n_heads) % 2 != 0)
        bad = "embd must be a multiple of heads with an even head size";
    else if (s->n_embd % be != 0 || s->n_embd % bee != 0 || s->n_ff % be != 0 ||
             ((s->n_embd / s->n_heads) * s->n_kv_heads) % be != 0)
        bad = "embd, ffn and kv width must be multiples of the block size (32 for quantized types)";
    else if (s->n_ff == 0 || s->n_ff > 65536 || s->n_embd > 8192)
        bad = "ffn must be 1..65536 and embd at most 8192";
    else if (s->n_ctx == 0)
        bad = "ctx must be positive";
    else if (s->n_vocab < ST_TINY_FIRST_MERGE_TOKEN || s->n_vocab > 4096)
        bad = "vocab must be 259..4096";
    if (bad)
        return st_diag_set(diag, ST_E_INVALID, path, 0, 0, "bad tiny model spec: %s", bad);
    return ST_OK;
}

st_status st_gen_tiny_model(const st_tiny_model_spec *s, const char *path, st_diag *diag)
{
    st_status st = check_spec(s, path, diag);
    if (st)
        return st;
    vocab v;
    st = train_vocab(s->n_vocab, &v, diag, path);
    if (st)
        return st;
    st_gw *w = st_gw_new();
    int32_t *types = malloc(v.n * sizeof *types);
    if (!w || !types) {
        st_gw_free(w);
        free(types);
        vocab_free(&v);
        return st_diag_set(diag, ST_E_NOMEM, path, 0, 0, "out of memory");
    }
    uint32_t head_dim = s->n_embd / s->n_heads, kv_dim = head_dim * s->n_kv_heads;

    st_gw_string(w, "general.architecture", "llama");
    st_gw_string(w, "general.type", "model");
    st_gw_string(w, "general.name", "stretch tiny random llama");
    st_gw_u32(w, "llama.block_count", s->n_layers);
    st_gw_u32(w, "llama.context_length", s->n_ctx);
    st_gw_u32(w, "llama.embedding_length", s->n_embd);
    st_gw_u32(w, "llama.feed_forward_length", s->n_ff);
    st_gw_u32(w, "llama.attention.head_count", s->n_heads);
    st_gw_u32(w, "llama.attention.head_count_kv", s->n_kv_heads);
    st_gw_f32(w, "llama.rope.freq_base", s->rope_base);
    st_gw_f32(w, "llama.attention.layer_norm_rms_epsilon", s->rms_eps);
    st_gw_u32(w, "general.file_type", file_type(s->type));
    st_gw_u32(w, "llama.vocab_size", v.n);
    st_gw_u32(w, "llama.rope.dimension_count", head_dim);
    st_gw_bool(w, "tokenizer.ggml.add_space_prefix", false);
    st_gw_bool(w, "tokenizer.ggml.add_bos_token", false);
    st_gw_string(w, "tokenizer.ggml.model", "gpt2");
    st_gw_string(w, "tokenizer.ggml.pre", "smollm");
    st_gw_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v.tok, v.n);
    for (uint32_t i = 0; i < v.n; i++)
        types[i] = i < ST_TINY_N_SPECIAL ? 3 : 1; /* CONTROL, NORMAL */
    st_gw_array(w, "tokenizer.ggml.token_type", ST_GGUF_I32, types, v.n);
    st_gw_str_array(w, "tokenizer.ggml.merges", (const char *const *)v.merges, v.n_merges);
    st_gw_u32(w, "tokenizer.ggml.bos_token_id", 1);
    st_gw_u32(w, "tokenizer.ggml.eos_token_id", 2);
    st_gw_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    st_gw_u32(w, "tokenizer.ggml.padding_token_id", 2);
    st_gw_string(w, "tokenizer.chat_template", st_tiny_chat_template);
    st_gw_u32(w, "general.quantization_version", 2);

    uint64_t rng = s->seed;
    float sm = 1.0f / sqrtf((float)s->n_embd), sf = 1.0f / sqrtf((float)s->n_ff);
    int bad = add_tensor(w, &rng, "token_embd.weight", s->embd_type, s->n_embd, v.n, 0.0f, 1.0f);
    char name[64];
    for (uint32_t l = 0; l < s->n_layers && !bad; l++) {
        struct { const char *n; st_ggml_type t; uint64_t ne0, ne1; float c, sc; } ts[] = {
            {"attn_norm", ST_GGML_F32, s->n_embd, 1, 1.0f, 0.1f},
            {"attn_q", s->type, s->n_embd, s->n_embd, 0.0f, sm},
            {"attn_k", s->type, s->n_embd, kv_dim, 0.0f, sm},
            {"attn_v", s->type, s->n_embd, kv_dim, 0.0f, sm},
            {"attn_output", s->type, s->n_embd, s->n_embd, 0.0f, sm},
            {"ffn_norm", ST_GGML_F32, s->n_embd, 1, 1.0f, 0.1f},
            {"ffn_gate", s->type, s->n_embd, s->n_ff, 0.0f, sm},
            {"ffn_up", s->type, s->n_embd, s->n_ff, 0.0f, sm},
            {"ffn_down", s->type, s->n_ff, s->n_embd, 0.0f, sf},
        };
        for (size_t i = 0; i < sizeof ts / sizeof ts[0] && !bad; i++) {
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, ts[i].n);
            bad = add_tensor(w, &rng, name, ts[i].t, ts[i].ne0, ts[i].ne1, ts[i].c, ts[i].sc);
        }
    }
    if (!bad)
        bad = add_tensor(w, &rng, "output_norm.weight", ST_GGML_F32, s->n_embd, 1, 1.0f, 0.1f);
    if (!bad && !s->tied)
        bad = add_tensor(w, &rng, "output.weight", s->embd_type, s->n_embd, v.n, 0.0f, sm);
    /* Last, so a table leaves every other tensor's random values as they were. */
    if (!bad && s->n_pos_table)
        bad = add_tensor(w, &rng, "position_embd.weight", ST_GGML_F32, s->n_embd,
                         s->n_pos_table, 0.0f, 1.0f);

    st = bad ? ST_E_NOMEM : st_gw_write(w, path, NULL);
    st_gw_free(w);
    free(types);
    vocab_free(&v);
    if (st == ST_E_NOMEM)
        return st_diag_set(diag, st, path, 0, 0, "out of memory writing the tiny model");
    if (st)
        return st_diag_set(diag, st, path, 0, 0, "cannot write the tiny model file");
    return ST_OK;
}

st_status st_tiny_model_in_tmp(const char *name, const st_tiny_model_spec *spec, char *dir,
                               size_t dir_cap, char *model, size_t model_cap, st_diag *diag)
{
    snprintf(dir, dir_cap, "/tmp/%s_%d", name, (int)getpid());
    mkdir(dir, 0700);
    snprintf(model, model_cap, "%s/tiny.gguf", dir);
    return st_gen_tiny_model(spec, model, diag);
}

int st_tiny_model_tmp_remove(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

st_status st_tiny_model_load(const st_tiny_model_spec *spec, st_gguf **g, st_model **m,
                             st_diag *diag)
{
    *g = NULL;
    *m = NULL;
    char path[] = "/tmp/st_tiny_model_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return st_diag_set(diag, ST_E_IO, path, 0, 0, "cannot create a temporary model file: %s",
                           strerror(errno));
    close(fd);
    st_status s = st_gen_tiny_model(spec, path, diag);
    if (s == ST_OK)
        s = st_gguf_open(path, g, diag);
    unlink(path);
    if (s == ST_OK && (s = st_model_load(*g, m, diag)) != ST_OK) {
        st_gguf_close(*g);
        *g = NULL;
    }
    return s;
}
