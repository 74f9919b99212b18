/* Llama model loading: hyperparameters from `<arch>.*` keys, tensors by
 * their llama.cpp names, every shape checked so a wrong file fails here
 * with the tensor named instead of misbehaving in the forward pass. */
#include "model.h"

#include "big_alloc.h"

#include "cpu/repack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A repacked matrix's mapped original is read again only for embedding
 * rows (tied output) and by the ggml-numerics row kernels: drop its whole
 * pages from the process now that the repack has read them, so resident
 * memory holds one copy. The mapping is PROT_READ and MAP_PRIVATE (never
 * written), so a later read simply faults the page back in from the file
 * cache. Best effort: a failure only costs memory. */
static void release_mapped_pages(const st_weight *w)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || !w->packed)
        return;
    uintptr_t lo = (uintptr_t)w->data, hi = lo + (uintptr_t)w->row_bytes * w->rows;
    lo = (lo + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    hi &= ~((uintptr_t)page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static const char *gpath(const st_gguf *g)
{
    return g->path ? g->path : "";
}

/* `<arch>.<key>` as an integer; `def` (if >= 0) when absent. */
static st_status get_u32(const st_gguf *g, const char *arch, const char *key, int64_t def,
                         uint32_t *out, st_diag *diag)
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int64_t v;
    st_status s = st_gguf_get_int(g, full, &v);
    if (s == ST_E_NOT_FOUND && def >= 0) {
        *out = (uint32_t)def;
        return ST_OK;
    }
    if (s != ST_OK)
        return st_diag_set(diag, s, gpath(g), 0, 0, "model: %s key '%s'",
                           s == ST_E_NOT_FOUND ? "missing" : "unreadable", full);
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: key '%s' is %lld, out of range", full, (long long)v);
    *out = (uint32_t)v;
    return ST_OK;
}

static st_status get_f32(const st_gguf *g, const char *arch, const char *key, double def,
                         float *out, st_diag *diag)
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    double v;
    st_status s = st_gguf_get_float(g, full, &v);
    if (s == ST_E_NOT_FOUND) {
        *out = (float)def;
        return ST_OK;
    }
    if (s != ST_OK)
        return st_diag_set(diag, s, gpath(g), 0, 0, "model: unreadable key '%s'", full);
    *out = (float)v;
    return ST_OK;
}

/* Find `name` and check it is 2-d [cols, rows] of a type with a kernel. */
static st_status find_matrix(const st_gguf *g, const char *name, uint64_t cols, uint64_t rows,
                             st_weight *w, st_diag *diag)
{
    const st_gguf_tensor *t = st_gguf_tensor_find(g, name);
    if (!t)
        return st_diag_set(diag, ST_E_NOT_FOUND, gpath(g), 0, 0, "model: missing tensor '%s'",
                           name);
    uint64_t ne1 = t->n_dims >= 2 ? t->ne[1] : 1;
    bool extra = false;
    for (uint32_t d = 2; d < t->n_dims; d++)
        extra |= t->ne[d] != 1;
    if (t->ne[0] != cols || ne1 != rows || extra)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: tensor '%s' has shape [%llu, %llu%s], expected [%llu, %llu]",
                           name, (unsigned long long)t->ne[0], (unsigned long long)ne1,
                           extra ? ", ..." : "", (unsigned long long)cols,
                           (unsigned long long)rows);
    if (st_cpu_kernel_type(t->type) < 0)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: tensor '%s' has type %s, expected F32, F16, Q4_0, Q4_1 or Q8_0",
                           name, st_ggml_type_name(t->type));
    uint32_t be = st_ggml_block_elems(t->type);
    if (be == 0 || cols % be != 0 || (st_cpu_type_is_quantized(t->type) && cols % ST_ACT_BLOCK))
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: tensor '%s' rows of %llu elements are not whole %s blocks",
                           name, (unsigned long long)cols, st_ggml_type_name(t->type));
    size_t row_bytes = (size_t)(cols / be) * st_ggml_block_bytes(t->type);
    if (t->size < row_bytes * rows)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: tensor '%s' holds %llu bytes, expected %llu", name,
                           (unsigned long long)t->size, (unsigned long long)(row_bytes * rows));
    w->type = t->type;
    w->cols = (uint32_t)cols;
    w->rows = (uint32_t)rows;
    w->row_bytes = row_bytes;
    w->data = t->data;
    return ST_OK;
}

/* A norm vector of n elements, converted to an owned float array. */
static st_status load_vector(const st_gguf *g, const char *name, uint64_t n, float **out,
                             st_diag *diag)
{
    st_weight w;
    st_status s = find_matrix(g, name, n, 1, &w, diag);
    if (s != ST_OK)
        return s;
    float *v = malloc(n * sizeof *v);
    if (!v)
        return st_diag_set(diag, ST_E_NOMEM, gpath(g), 0, 0, "model: out of memory");
    st_cpu_dequant_row(w.type, w.data, v, (uint32_t)n);
    *out = v;
    return ST_OK;
}

/* The optional learned position table, converted to owned floats. */
static st_status load_pos_table(const st_gguf *g, st_model *m, st_diag *diag)
{
    const char *name = "position_embd.weight";
    const st_gguf_tensor *t = st_gguf_tensor_find(g, name);
    if (!t)
        return ST_OK;
    uint64_t rows = t->n_dims >= 2 ? t->ne[1] : 1;
    if (rows == 0 || rows > (uint64_t)INT32_MAX)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: tensor '%s' must be 2-d [n_embd, rows] with 1 to 2^31-1 rows",
                           name);
    st_weight w;
    st_status s = find_matrix(g, name, m->hp.n_embd, rows, &w, diag);
    if (s != ST_OK)
        return s;
    m->pos_embd = malloc((size_t)rows * m->hp.n_embd * sizeof(float));
    if (!m->pos_embd)
        return st_diag_set(diag, ST_E_NOMEM, gpath(g), 0, 0,
                           "model: out of memory for the position table");
    for (uint64_t r = 0; r < rows; r++)
        st_cpu_dequant_row(w.type, w.data + r * w.row_bytes, m->pos_embd + r * m->hp.n_embd,
                           m->hp.n_embd);
    m->n_pos = (uint32_t)rows;
    return ST_OK;
}

static st_status read_hparams(const st_gguf *g, st_model_hparams *hp, st_diag *diag)
{
    const char *arch_s;
    uint64_t arch_len;
    char arch[64];
    st_status s = st_gguf_get_string(g, "general.architecture", &arch_s, &arch_len);
    if (s != ST_OK)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: missing key 'general.architecture'");
    if (arch_len == 0 || arch_len >= sizeof arch)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: 'general.architecture' has an unusable length %llu",
                           (unsigned long long)arch_len);
    memcpy(arch, arch_s, arch_len);
    arch[arch_len] = 0;
    if (strcmp(arch, "llama") != 0)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: architecture '%s' is not supported, expected 'llama'", arch);
    if ((s = get_u32(g, arch, "block_count", -1, &hp->n_layers, diag)) ||
        (s = get_u32(g, arch, "embedding_length", -1, &hp->n_embd, diag)) ||
        (s = get_u32(g, arch, "feed_forward_length", -1, &hp->n_ff, diag)) ||
        (s = get_u32(g, arch, "attention.head_count", -1, &hp->n_heads, diag)))
        return s;
    if ((s = get_u32(g, arch, "attention.head_count_kv", hp->n_heads, &hp->n_kv_heads, diag)) ||
        (s = get_u32(g, arch, "context_length", 2048, &hp->n_ctx_train, diag)))
        return s;
    if (hp->n_layers == 0 || hp->n_embd == 0 || hp->n_ff == 0 || hp->n_heads == 0 ||
        hp->n_kv_heads == 0 || hp->n_heads % hp->n_kv_heads != 0 || hp->n_embd % hp->n_heads)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: inconsistent shape: %u layers, n_embd %u, n_ff %u, %u heads, "
                           "%u kv heads (expected nonzero, heads a multiple of kv heads, n_embd "
                           "a multiple of heads)", hp->n_layers, hp->n_embd, hp->n_ff,
                           hp->n_heads, hp->n_kv_heads);
    /* Each layer is nine tensors: a block count beyond the file's tensor
     * count is a format error naming the key, not an allocation that fails
     * (a count the file could hold goes on to name the missing tensor). */
    if (hp->n_layers > g->n_tensors)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: '%s.block_count' is %u (expected at most %llu, the number "
                           "of tensors in the file; each layer needs nine)", arch,
                           hp->n_layers, (unsigned long long)g->n_tensors);
    if ((s = get_u32(g, arch, "attention.key_length", hp->n_embd / hp->n_heads, &hp->head_dim,
                     diag)))
        return s;
    if ((s = get_u32(g, arch, "rope.dimension_count", hp->head_dim, &hp->rope_dims, diag)) ||
        (s = get_f32(g, arch, "rope.freq_base", 10000.0, &hp->rope_base, diag)) ||
        (s = get_f32(g, arch, "attention.layer_norm_rms_epsilon", 1e-5, &hp->rms_eps, diag)))
        return s;
    if (hp->head_dim == 0 || hp->head_dim % 2 || hp->rope_dims > hp->head_dim || hp->rope_dims % 2)
        return st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                           "model: head_dim %u / rope dims %u: expected even, rope dims <= head_dim",
                           hp->head_dim, hp->rope_dims);
    return ST_OK;
}

st_status st_model_load(const st_gguf *g, st_model **out, st_diag *diag)
{
    *out = NULL;
    st_model *m = calloc(1, sizeof *m);
    if (!m)
        return st_diag_set(diag, ST_E_NOMEM, gpath(g), 0, 0, "model: out of memory");
    m->gguf = g;
    st_model_hparams *hp = &m->hp;
    st_status s = read_hparams(g, hp, diag);
    if (s != ST_OK)
        goto fail;

    const st_gguf_tensor *te = st_gguf_tensor_find(g, "token_embd.weight");
    if (!te) {
        s = st_diag_set(diag, ST_E_NOT_FOUND, gpath(g), 0, 0,
                        "model: missing tensor 'token_embd.weight'");
        goto fail;
    }
    if (te->n_dims < 2 || te->ne[1] == 0 || te->ne[1] > INT32_MAX) {
        s = st_diag_set(diag, ST_E_FORMAT, gpath(g), 0, 0,
                        "model: tensor 'token_embd.weight' must be 2-d [n_embd, n_vocab]");
        goto fail;
    }
    hp->n_vocab = (uint32_t)te->ne[1];
    uint64_t E = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    uint64_t QD = (uint64_t)hp->n_heads * hp->head_dim, KD = (uint64_t)hp->n_kv_heads * hp->head_dim;
    if ((s = find_matrix(g, "token_embd.weight", E, V, &m->tok_embd, diag)) ||
        (s = load_vector(g, "output_norm.weight", E, &m->out_norm, diag)))
        goto fail;
    if (st_gguf_tensor_find(g, "output.weight")) {
        if ((s = find_matrix(g, "output.weight", E, V, &m->output, diag)))
            goto fail;
    } else {
        m->output = m->tok_embd;
        m->tied_output = true;
    }
    if ((s = load_pos_table(g, m, diag)))
        goto fail;
    m->layers = calloc(hp->n_layers, sizeof *m->layers);
    if (!m->layers) {
        s = st_diag_set(diag, ST_E_NOMEM, gpath(g), 0, 0, "model: out of memory");
        goto fail;
    }
    for (uint32_t i = 0; i < hp->n_layers; i++) {
        st_model_layer *L = &m->layers[i];
        char n[9][64];
        static const char *const suffix[9] = {
            "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
            "ffn_norm", "ffn_gate", "ffn_up", "ffn_down",
        };
        for (int j = 0; j < 9; j++)
            snprintf(n[j], sizeof n[j], "blk.%u.%s.weight", i, suffix[j]);
        if ((s = load_vector(g, n[0], E, &L->attn_norm, diag)) ||
            (s = find_matrix(g, n[1], E, QD, &L->wq, diag)) ||
            (s = find_matrix(g, n[2], E, KD, &L->wk, diag)) ||
            (s = find_matrix(g, n[3], E, KD, &L->wv, diag)) ||
            (s = find_matrix(g, n[4], QD, E, &L->wo, diag)) ||
            (s = load_vector(g, n[5], E, &L->ffn_norm, diag)) ||
            (s = find_matrix(g, n[6], E, F, &L->gate, diag)) ||
            (s = find_matrix(g, n[7], E, F, &L->up, diag)) ||
            (s = find_matrix(g, n[8], F, E, &L->down, diag)))
            goto fail;
    }
    /* The AVX2 and AVX-512 kernels read quantized matrices in a 16-row
     * interleaved layout: repack once here (a copy; the mapping is then
     * only read for embedding rows and by the ggml-numerics row kernels).
     * The scalar path reads the mapping as is. */
    if (st_cpu_isa_active() >= ST_ISA_AVX2) {
        /* Two passes over the matrices, in the order decode reads them:
         * their sizes (each start 64-byte aligned), then the copies. */
        for (int pass = 0; pass < 2; pass++) {
            size_t at = 0;
            for (uint32_t i = 0; i <= hp->n_layers; i++) {
                st_weight *all[ST_MODEL_STEP_MATS];
                size_t k = st_model_step_matrices(m, i, all);
                for (size_t j = 0; j < k; j++) {
                    size_t bytes = st_repack_bytes(all[j]);
                    if (!bytes)
                        continue;
                    if (pass == 1) {
                        st_repack_weight_into(all[j], m->packed_arena + at);
                        release_mapped_pages(all[j]);
                    }
                    at += (bytes + 63) & ~(size_t)63;
                }
            }
            if (pass == 0) {
                if (!at)
                    break;
                m->packed_arena = st_big_alloc(at);
                m->packed_arena_bytes = at;
                if (!m->packed_arena) {
                    s = st_diag_set(diag, ST_E_NOMEM, gpath(g), 0, 0,
                                    "model: out of memory repacking weights (%zu bytes)", at);
                    goto fail;
                }
            }
        }
    }
    *out = m;
    return ST_OK;
fail:
    st_model_free(m);
    return s;
}

size_t st_model_step_matrices(st_model *m, uint32_t l, st_weight *out[ST_MODEL_STEP_MATS])
{
    if (l >= m->hp.n_layers) {
        out[0] = &m->output;
        return 1;
    }
    st_model_layer *L = &m->layers[l];
    st_weight *w[ST_MODEL_STEP_MATS] = { &L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up,
                                         &L->down };
    memcpy(out, w, sizeof w);
    return ST_MODEL_STEP_MATS;
}

void st_model_free(st_model *m)
{
    if (!m)
        return;
    if (m->layers) {
        for (uint32_t i = 0; i < m->hp.n_layers; i++) {
            st_model_layer *L = &m->layers[i];
            free(L->attn_norm);
            free(L->ffn_norm);
        }
        free(m->layers);
    }
    free(m->out_norm);
    st_big_free(m->packed_arena, m->packed_arena_bytes);
    free(m->pos_embd);
    free(m);
}
