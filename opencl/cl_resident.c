/* The forward pass's steps on the device (backend.h's resident ops): a
 * context's activations and KV cache live in device buffers, the kernels
 * of kernels/forward.cl and the weight products (cl_matmul.c) work on
 * them in one in-order queue, and only the block's ids, positions and
 * rotation tables, each layer's plan, and the logits cross the bus. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_tiled.h"
#include "opencl_internal.h"

enum {
    K_EMBED, K_QUANT, K_NORM, K_SWIGLU, K_ROPE, K_TABLES, K_GATHER, K_ATTEND, K_SPLIT, K_MERGE,
    K_TILE,
    K_COUNT
};
static const char *const kernel_names[K_COUNT] = {
    "embed", "quantize", "rmsnorm", "swiglu", "rope_store", "slot_tables", "kv_gather", "attend",
    "attend_split", "attend_merge", "attend_tile",
};

typedef struct dev_norm {
    const float *w;
    cl_mem buf;
} dev_norm;

struct st_cl_fwd {
    st_cl_ctx *c;
    st_cl_matmul *mm;
    cl_program prog;
    cl_kernel k[K_COUNT];
    bool fast;
    dev_norm *norms;
    size_t n_norms;
    uint64_t bytes;
};

/* ENT_WORDS of forward.cl. */
#define ENT_WORDS 10

struct st_bres {
    st_cl_fwd *f;
    const st_model *m;
    st_kv_cache *kv;
    uint32_t E, F, QD, row, nf_max;
    /* Activations, room for cap_n rows. */
    cl_mem act[ST_BACT_COUNT], qr, xq, hq, lxq, lxn;
    size_t cap_n;
    /* The block: ids, rotation tables. */
    cl_mem tok, qcs, qsn;
    /* The cache: positions per slot, a key and a value buffer per layer
     * ([kv head][capacity] rows, as the host's), one spare for compaction. */
    cl_mem pos, rot_pos, *k, *v, spare;
    size_t layer_bytes;
    /* Re-rotation tables of the current step (ST_POS_FIXED, ST_POS_SLOT). */
    cl_mem sd_cs, sd_sn, un_cs, un_sn, inv_freq;
    uint64_t step, tables_step;
    /* The layer's plan. */
    cl_mem ents, idx, slopes, part;
    size_t ents_cap, idx_cap, part_cap;
    int32_t *ents_host;
    size_t ents_host_cap;
    cl_mem logits;
    size_t logits_cap;
    uint64_t bytes;
    /* A failure in a step that cannot report one (the cache's compaction
     * hook), reported by the next op. */
    st_status sticky;
    char sticky_msg[ST_DIAG_MESSAGE_MAX];
};

static st_status cl_fail(st_diag *diag, const char *what, cl_int rc)
{
    return st_diag_set(diag, rc == CL_MEM_OBJECT_ALLOCATION_FAILURE ||
                                     rc == CL_OUT_OF_RESOURCES || rc == CL_OUT_OF_HOST_MEMORY
                                 ? ST_E_NOMEM
                                 : ST_E_UNAVAILABLE,
                       "", 0, 0, "OpenCL: %s failed (%s, %d)", what, st_cl_status_name(rc), rc);
}

static st_status nomem(st_diag *diag)
{
    return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "OpenCL: out of memory");
}

/* ---- the program ------------------------------------------------------ */

st_status st_cl_fwd_new(st_cl_ctx *c, st_cl_matmul *mm, const st_model *m, st_cl_fwd **out,
                        st_diag *diag)
{
    *out = NULL;
    st_cl_fwd *f = calloc(1, sizeof *f);
    if (!f)
        return nomem(diag);
    f->c = c;
    f->mm = mm;
    const char *env = getenv("STRETCH_OPENCL_FP16");
    f->fast = c->dev.info.fp16 && !(env && strcmp(env, "off") == 0) &&
              m->hp.head_dim % 8 == 0;
    char opts[160];
    st_status s;
    for (;;) {
        snprintf(opts, sizeof opts,
                 "-DACT_BYTES=%zu -DHD=%u%s -cl-fp32-correctly-rounded-divide-sqrt",
                 sizeof(st_act_block), m->hp.head_dim, f->fast ? " -DFP16_KV" : "");
        s = st_cl_program_embedded(c, "forward.cl", opts, &f->prog, diag);
        /* A driver that claims cl_khr_fp16 but cannot build the fast path
         * still gets the baseline. */
        if (s == ST_OK || !f->fast)
            break;
        f->fast = false;
    }
    if (s != ST_OK) {
        free(f);
        return s;
    }
    for (int i = 0; i < K_COUNT; i++) {
        cl_int rc;
        f->k[i] = clCreateKernel(f->prog, kernel_names[i], &rc);
        if (rc != CL_SUCCESS) {
            st_cl_fwd_free(f);
            return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0,
                               "OpenCL: forward.cl has no kernel '%s' (%s)", kernel_names[i],
                               st_cl_status_name(rc));
        }
    }
    /* The norm weights go up once, as the matrices do. */
    size_t n = 2 * (size_t)m->hp.n_layers + 1;
    f->norms = calloc(n, sizeof *f->norms);
    if (!f->norms) {
        st_cl_fwd_free(f);
        return nomem(diag);
    }
    for (size_t i = 0; i < n; i++) {
        const float *w = i == n - 1 ? m->out_norm
                       : i % 2    ? m->layers[i / 2].ffn_norm
                                  : m->layers[i / 2].attn_norm;
        cl_int rc;
        size_t bytes = (size_t)m->hp.n_embd * sizeof(float);
        f->norms[i].w = w;
        f->norms[i].buf = clCreateBuffer(c->ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes,
                                         (void *)w, &rc);
        if (rc != CL_SUCCESS) {
            st_cl_fwd_free(f);
            return cl_fail(diag, "uploading the norm weights", rc);
        }
        f->n_norms++;
        f->bytes += bytes;
    }
    *out = f;
    return ST_OK;
}

void st_cl_fwd_free(st_cl_fwd *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_norms; i++)
        clReleaseMemObject(f->norms[i].buf);
    free(f->norms);
    for (int i = 0; i < K_COUNT; i++)
        if (f->k[i])
            clReleaseKernel(f->k[i]);
    if (f->prog)
        clReleaseProgram(f->prog);
    free(f);
}

uint64_t st_cl_fwd_bytes(const st_cl_fwd *f)
{
    return f ? f->bytes : 0;
}

bool st_cl_fwd_fast(const st_cl_fwd *f)
{
    return f && f->fast;
}

/* ---- helpers ---------------------------------------------------------- */

static void release(cl_mem *m)
{
    if (*m)
        clReleaseMemObject(*m);
    *m = NULL;
}

static st_status alloc(st_bres *r, cl_mem *m, size_t bytes, st_diag *diag)
{
    release(m);
    cl_int rc;
    *m = clCreateBuffer(r->f->c->ctx, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &rc);
    if (rc != CL_SUCCESS) {
        *m = NULL;
        return cl_fail(diag, "allocating a device buffer", rc);
    }
    return ST_OK;
}

/* Grow *m to `bytes` (contents are not kept). */
static st_status grow(st_bres *r, cl_mem *m, size_t *cap, size_t bytes, st_diag *diag)
{
    if (*m && bytes <= *cap)
        return ST_OK;
    st_status s = alloc(r, m, bytes, diag);
    *cap = s == ST_OK ? bytes : 0;
    return s;
}

static st_status write_buf(st_bres *r, cl_mem m, size_t off, size_t bytes, const void *src,
                           st_diag *diag)
{
    if (!bytes)
        return ST_OK;
    cl_int rc = clEnqueueWriteBuffer(r->f->c->queue, m, CL_TRUE, off, bytes, src, 0, NULL, NULL);
    return rc == CL_SUCCESS ? ST_OK : cl_fail(diag, "sending to the device", rc);
}

/* Set a kernel's arguments from (size, pointer) pairs and launch it. */
static st_status launch(st_bres *r, int kid, cl_uint dims, const size_t *global, st_diag *diag,
                        int n_args, ...)
{
    cl_kernel k = r->f->k[kid];
    va_list ap;
    va_start(ap, n_args);
    cl_int rc = CL_SUCCESS;
    for (int i = 0; i < n_args; i++) {
        size_t sz = va_arg(ap, size_t);
        const void *p = va_arg(ap, const void *);
        cl_int e = clSetKernelArg(k, (cl_uint)i, sz, p);
        if (e != CL_SUCCESS && rc == CL_SUCCESS)
            rc = e;
    }
    va_end(ap);
    if (rc != CL_SUCCESS)
        return cl_fail(diag, kernel_names[kid], rc);
    for (cl_uint d = 0; d < dims; d++)
        if (!global[d])
            return ST_OK;
    rc = clEnqueueNDRangeKernel(r->f->c->queue, k, dims, NULL, global, NULL, 0, NULL, NULL);
    return rc == CL_SUCCESS ? ST_OK : cl_fail(diag, kernel_names[kid], rc);
}

#define A(v) sizeof(v), (const void *)&(v)

static st_status check(st_bres *r, st_diag *diag)
{
    if (r->sticky == ST_OK)
        return ST_OK;
    return st_diag_set(diag, r->sticky, "", 0, 0, "%s", r->sticky_msg);
}

static size_t act_width(const st_bres *r, st_bact a)
{
    switch (a) {
    case ST_BACT_X: case ST_BACT_XN: case ST_BACT_TMP: return r->E;
    case ST_BACT_Q: case ST_BACT_ATT: return r->QD;
    case ST_BACT_K: case ST_BACT_V: return r->row;
    case ST_BACT_G: case ST_BACT_U: return r->F;
    case ST_BACT_COUNT: break;
    }
    return 0;
}

/* ---- open and close --------------------------------------------------- */

static void res_close(st_bres *r)
{
    if (!r)
        return;
    for (int i = 0; i < ST_BACT_COUNT; i++)
        release(&r->act[i]);
    cl_mem *one[] = { &r->qr, &r->xq, &r->hq, &r->lxq, &r->lxn, &r->tok, &r->qcs, &r->qsn,
                      &r->pos, &r->rot_pos, &r->spare, &r->sd_cs, &r->sd_sn, &r->un_cs,
                      &r->un_sn, &r->inv_freq, &r->ents, &r->idx, &r->slopes, &r->part, &r->logits };
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        release(one[i]);
    if (r->k)
        for (uint32_t l = 0; l < r->kv->n_layers; l++)
            release(&r->k[l]);
    if (r->v)
        for (uint32_t l = 0; l < r->kv->n_layers; l++)
            release(&r->v[l]);
    free(r->k);
    free(r->v);
    free(r->ents_host);
    free(r);
}

static st_status res_open(st_backend *b, const st_model *m, st_kv_cache *kv, st_bres **out,
                          st_diag *diag)
{
    *out = NULL;
    cl_backend *cb = (cl_backend *)b;
    if (!cb->fwd)
        return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0,
                           "OpenCL: the backend was opened without a model");
    const st_model_hparams *hp = &m->hp;
    st_bres *r = calloc(1, sizeof *r);
    if (!r)
        return nomem(diag);
    r->f = cb->fwd;
    r->m = m;
    r->kv = kv;
    r->E = hp->n_embd;
    r->F = hp->n_ff;
    r->QD = hp->n_heads * hp->head_dim;
    r->row = (uint32_t)st_kv_row(kv);
    r->layer_bytes = (size_t)kv->n_kv_heads * kv->capacity * kv->row_bytes;
    const st_device_info *d = &cb->ctx.dev.info;
    uint64_t cache = 2ull * kv->n_layers * r->layer_bytes;
    uint64_t have = st_cl_matmul_bytes(cb->mm) + st_cl_fwd_bytes(cb->fwd);
    if (r->layer_bytes > d->max_alloc_bytes || have + cache > d->global_mem_bytes) {
        size_t lb = r->layer_bytes;
        free(r);
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0,
                           "OpenCL device '%s' has %llu bytes of memory (largest allocation "
                           "%llu); the weights take %llu and a KV cache of %u slots needs "
                           "%llu more (%zu a layer): lower `context:` or use a smaller "
                           "kv-type", d->name, (unsigned long long)d->global_mem_bytes,
                           (unsigned long long)d->max_alloc_bytes, (unsigned long long)have,
                           kv->capacity, (unsigned long long)cache, lb);
    }
    r->k = calloc(kv->n_layers, sizeof *r->k);
    r->v = calloc(kv->n_layers, sizeof *r->v);
    st_status s = r->k && r->v ? ST_OK : nomem(diag);
    for (uint32_t l = 0; s == ST_OK && l < kv->n_layers; l++)
        if ((s = alloc(r, &r->k[l], r->layer_bytes, diag)) == ST_OK)
            s = alloc(r, &r->v[l], r->layer_bytes, diag);
    if (s == ST_OK)
        s = alloc(r, &r->spare, r->layer_bytes, diag);
    if (s == ST_OK)
        s = alloc(r, &r->pos, kv->capacity * sizeof(cl_int), diag);
    if (s == ST_OK)
        s = alloc(r, &r->rot_pos, kv->capacity * sizeof(cl_int), diag);
    if (s == ST_OK)
        s = alloc(r, &r->inv_freq, (hp->head_dim / 2 + 1) * sizeof(float), diag);
    if (s == ST_OK)
        s = alloc(r, &r->slopes, hp->n_heads * sizeof(float), diag);
    if (s != ST_OK) {
        res_close(r);
        return s;
    }
    r->bytes = (2ull * kv->n_layers + 1) * r->layer_bytes + 2ull * kv->capacity * sizeof(cl_int);
    /* The cache's positions so far (a context opened over a used cache). */
    if ((s = write_buf(r, r->pos, 0, kv->n_slots * sizeof(cl_int), kv->pos, diag)) != ST_OK ||
        (s = write_buf(r, r->rot_pos, 0, kv->n_slots * sizeof(cl_int), kv->rot_pos, diag)) !=
            ST_OK) {
        res_close(r);
        return s;
    }
    for (uint32_t l = 0; l < kv->n_layers && kv->n_slots; l++) {
        size_t o[3] = { 0, 0, 0 }, reg[3] = { kv->n_slots * kv->row_bytes, kv->n_kv_heads, 1 };
        size_t pitch = kv->capacity * kv->row_bytes;
        cl_int rc = clEnqueueWriteBufferRect(cb->ctx.queue, r->k[l], CL_TRUE, o, o, reg, pitch, 0,
                                             pitch, 0, kv->k[l], 0, NULL, NULL);
        if (rc == CL_SUCCESS)
            rc = clEnqueueWriteBufferRect(cb->ctx.queue, r->v[l], CL_TRUE, o, o, reg, pitch, 0,
                                          pitch, 0, kv->v[l], 0, NULL, NULL);
        if (rc != CL_SUCCESS) {
            res_close(r);
            return cl_fail(diag, "sending the cache", rc);
        }
    }
    *out = r;
    return ST_OK;
}

/* ---- the block -------------------------------------------------------- */

static st_status reserve(st_bres *r, uint32_t nt, st_diag *diag)
{
    if (nt <= r->cap_n)
        return ST_OK;
    st_status s = ST_OK;
    for (int i = 0; i < ST_BACT_COUNT && s == ST_OK; i++)
        s = alloc(r, &r->act[i], (size_t)nt * act_width(r, (st_bact)i) * sizeof(float), diag);
    size_t xw = (r->E > r->QD ? r->E : r->QD) / ST_ACT_BLOCK;
    if (s == ST_OK)
        s = alloc(r, &r->qr, (size_t)nt * r->QD * sizeof(float), diag);
    if (s == ST_OK)
        s = alloc(r, &r->xq, (size_t)nt * xw * sizeof(st_act_block), diag);
    if (s == ST_OK)
        s = alloc(r, &r->hq, (size_t)nt * (r->F / ST_ACT_BLOCK) * sizeof(st_act_block), diag);
    if (s == ST_OK)
        s = alloc(r, &r->lxq, (size_t)nt * (r->E / ST_ACT_BLOCK) * sizeof(st_act_block), diag);
    if (s == ST_OK)
        s = alloc(r, &r->lxn, (size_t)nt * r->E * sizeof(float), diag);
    if (s == ST_OK)
        s = alloc(r, &r->tok, nt * sizeof(cl_int), diag);
    size_t nf = r->m->hp.head_dim / 2 + 1;
    if (s == ST_OK)
        s = alloc(r, &r->qcs, (size_t)nt * nf * sizeof(float), diag);
    if (s == ST_OK)
        s = alloc(r, &r->qsn, (size_t)nt * nf * sizeof(float), diag);
    r->cap_n = s == ST_OK ? nt : 0;
    return s;
}

static st_status res_begin(st_bres *r, const int32_t *tokens, uint32_t nt, uint32_t slot0,
                           const float *qcs, const float *qsn, uint32_t n_freq, st_diag *diag)
{
    st_status s = check(r, diag);
    if (s != ST_OK || (s = reserve(r, nt, diag)) != ST_OK)
        return s;
    r->step++;
    size_t tb = (size_t)nt * n_freq * sizeof(float);
    if ((s = write_buf(r, r->tok, 0, nt * sizeof(cl_int), tokens, diag)) != ST_OK ||
        (s = write_buf(r, r->pos, slot0 * sizeof(cl_int), nt * sizeof(cl_int),
                       r->kv->pos + slot0, diag)) != ST_OK ||
        (s = write_buf(r, r->rot_pos, slot0 * sizeof(cl_int), nt * sizeof(cl_int),
                       r->kv->rot_pos + slot0, diag)) != ST_OK ||
        (s = write_buf(r, r->qcs, 0, tb, qcs, diag)) != ST_OK)
        return s;
    return write_buf(r, r->qsn, 0, tb, qsn, diag);
}

static st_status res_embed(st_bres *r, const st_weight *w, uint32_t nt, st_diag *diag)
{
    st_status s = check(r, diag);
    if (s == ST_OK)
        s = st_cl_matmul_upload(r->f->mm, w, diag);
    if (s != ST_OK)
        return s;
    cl_mem wb = st_cl_matmul_weight(r->f->mm, w);
    cl_uint type = (cl_uint)w->type == ST_GGML_F32 ? 0 : w->type == ST_GGML_F16 ? 1
                 : w->type == ST_GGML_Q4_0 ? 2 : w->type == ST_GGML_Q4_1 ? 3 : 4;
    cl_uint rb = (cl_uint)w->row_bytes, E = r->E;
    size_t g[2] = { E, nt };
    return launch(r, K_EMBED, 2, g, diag, 6, A(wb), A(type), A(rb), A(E), A(r->tok),
                  A(r->act[ST_BACT_X]));
}

static cl_mem norm_buf(const st_bres *r, const float *w)
{
    for (size_t i = 0; i < r->f->n_norms; i++)
        if (r->f->norms[i].w == w)
            return r->f->norms[i].buf;
    return NULL;
}

static st_status res_norm(st_bres *r, const float *w, bool residual, uint32_t t0, uint32_t t1,
                          float eps, st_diag *diag)
{
    st_status s = check(r, diag);
    if (s != ST_OK)
        return s;
    cl_mem wb = norm_buf(r, w);
    if (!wb)
        return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0, "OpenCL: a norm weight not uploaded");
    cl_uint E = r->E, res = residual, t = t0;
    size_t g[1] = { t1 - t0 };
    return launch(r, K_NORM, 1, g, diag, 9, A(r->act[ST_BACT_X]), A(r->act[ST_BACT_TMP]), A(wb),
                  A(r->act[ST_BACT_XN]), A(r->xq), A(E), A(eps), A(res), A(t));
}

static st_status quantize(st_bres *r, cl_mem x, uint32_t n, cl_mem xq, uint32_t nt,
                          st_diag *diag)
{
    cl_uint w = n;
    size_t g[2] = { n / ST_ACT_BLOCK, nt };
    return launch(r, K_QUANT, 2, g, diag, 3, A(x), A(w), A(xq));
}

static st_status res_quantize_att(st_bres *r, uint32_t nt, st_diag *diag)
{
    st_status s = check(r, diag);
    return s != ST_OK ? s : quantize(r, r->act[ST_BACT_ATT], r->QD, r->xq, nt, diag);
}

static st_status res_swiglu(st_bres *r, uint32_t nt, st_diag *diag)
{
    st_status s = check(r, diag);
    if (s != ST_OK)
        return s;
    cl_uint F = r->F;
    size_t g[2] = { F, nt };
    s = launch(r, K_SWIGLU, 2, g, diag, 3, A(r->act[ST_BACT_G]), A(r->act[ST_BACT_U]), A(F));
    return s != ST_OK ? s : quantize(r, r->act[ST_BACT_G], r->F, r->hq, nt, diag);
}

static st_status res_matmul(st_bres *r, uint32_t n_mats, const st_weight *const *w,
                            const st_bact *out, st_bact in, uint32_t nt, st_diag *diag)
{
    st_status s = check(r, diag);
    if (s != ST_OK)
        return s;
    cl_mem y[ST_MATMUL_MAX_MATS];
    for (uint32_t i = 0; i < n_mats && i < ST_MATMUL_MAX_MATS; i++)
        y[i] = r->act[out[i]];
    size_t ld = act_width(r, in);
    cl_mem xq = in == ST_BACT_G ? r->hq : r->xq;
    return st_cl_matmul_run_dev(r->f->mm, n_mats, w, y, r->act[in], ld, xq, ld / ST_ACT_BLOCK,
                                nt, diag);
}

static st_status res_rope_store(st_bres *r, uint32_t layer, uint32_t nt, uint32_t slot0,
                                st_diag *diag)
{
    st_status s = check(r, diag);
    if (s != ST_OK)
        return s;
    const st_model_hparams *hp = &r->m->hp;
    const st_kv_cache *kv = r->kv;
    cl_uint type = kv->type, rb = (cl_uint)kv->row_bytes, cap = kv->capacity;
    /* The table width the host used (forward.c's n_freq), as given to begin. */
    cl_uint nf = r->nf_max, nh = hp->n_heads, nkv = hp->n_kv_heads, s0 = slot0;
    size_t g[2] = { nh + nkv, nt };
    return launch(r, K_ROPE, 2, g, diag, 15, A(r->act[ST_BACT_Q]), A(r->qr),
                  A(r->act[ST_BACT_K]), A(r->act[ST_BACT_V]), A(r->k[layer]), A(r->v[layer]),
                  A(type), A(rb), A(cap), A(r->qcs), A(r->qsn), A(nf), A(nh), A(nkv), A(s0));
}

/* The rotation tables of re-rotated keys for slots [0, n), once a step. */
static st_status slot_tables(st_bres *r, const st_bres_attn *a, uint32_t n, st_diag *diag)
{
    if (r->tables_step == r->step)
        return ST_OK;
    const st_kv_cache *kv = r->kv;
    size_t nf = r->m->hp.head_dim / 2 ? r->m->hp.head_dim / 2 : 1;
    size_t bytes = (size_t)kv->capacity * nf * sizeof(float);
    st_status s = ST_OK;
    cl_mem *t[4] = { &r->sd_cs, &r->sd_sn, &r->un_cs, &r->un_sn };
    for (int i = 0; i < 4 && s == ST_OK; i++)
        if (!*t[i])
            s = alloc(r, t[i], bytes, diag);
    if (s != ST_OK)
        return s;
    cl_uint nfa = a->n_freq, nn = n;
    float inv_scale = 1.0f / a->rot_scale;
    size_t g[1] = { n };
    s = launch(r, K_TABLES, 1, g, diag, 9, A(r->rot_pos), A(r->inv_freq), A(nfa), A(inv_scale),
               A(nn), A(r->sd_cs), A(r->sd_sn), A(r->un_cs), A(r->un_sn));
    if (s == ST_OK)
        r->tables_step = r->step;
    return s;
}

/* First slot in [lo, hi) whose position is >= p (attn_tiled.c's). */
static uint32_t lower_bound(const int32_t *pos, uint32_t lo, uint32_t hi, int64_t p)
{
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (pos[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static st_status res_attend(st_bres *r, const st_bres_attn *a, st_diag *diag)
{
    st_status s = check(r, diag);
    if (s != ST_OK)
        return s;
    const st_model_hparams *hp = &r->m->hp;
    const st_kv_cache *kv = r->kv;
    /* The plan, packed as forward.cl's entries. */
    size_t words = (a->n_entries ? a->n_entries : 1) * ENT_WORDS;
    if (words > r->ents_host_cap) {
        int32_t *p = realloc(r->ents_host, words * sizeof *p);
        if (!p)
            return nomem(diag);
        r->ents_host = p;
        r->ents_host_cap = words;
    }
    bool rerotate = false;
    for (size_t e = 0; e < a->n_entries; e++) {
        const st_bres_entry *E = &a->entries[e];
        int32_t *o = r->ents_host + e * ENT_WORDS;
        o[0] = (int32_t)E->r.head;
        o[1] = (int32_t)E->r.k_begin;
        o[2] = (int32_t)E->r.k_end;
        o[3] = E->r.min_dist;
        o[4] = E->r.max_dist;
        o[5] = (int32_t)E->r.pos_mode;
        o[6] = E->r.fixed_dist;
        o[7] = (int32_t)E->indices;
        o[8] = (int32_t)E->idx_off;
        o[9] = (int32_t)E->n_idx;
        rerotate |= E->r.pos_mode != ST_POS_TRUE;
    }
    if ((s = grow(r, &r->ents, &r->ents_cap, words * sizeof(int32_t), diag)) != ST_OK ||
        (s = write_buf(r, r->ents, 0, a->n_entries * ENT_WORDS * sizeof(int32_t), r->ents_host,
                       diag)) != ST_OK ||
        (s = grow(r, &r->idx, &r->idx_cap, (a->n_idx ? a->n_idx : 1) * sizeof(uint32_t),
                  diag)) != ST_OK ||
        (s = write_buf(r, r->idx, 0, a->n_idx * sizeof(uint32_t), a->idx, diag)) != ST_OK ||
        (s = write_buf(r, r->inv_freq, 0, a->n_freq * sizeof(float), a->inv_freq, diag)) !=
            ST_OK ||
        (a->slopes &&
         (s = write_buf(r, r->slopes, 0, hp->n_heads * sizeof(float), a->slopes, diag)) !=
             ST_OK) ||
        (rerotate && (s = slot_tables(r, a, a->slot0 + a->nt, diag)) != ST_OK))
        return s;
    if (!r->sd_cs && (s = alloc(r, &r->sd_cs, 4, diag)) != ST_OK)
        return s;
    cl_mem sdc = r->sd_cs, sds = r->sd_sn ? r->sd_sn : r->sd_cs;
    cl_mem unc = r->un_cs ? r->un_cs : r->sd_cs, uns = r->un_sn ? r->un_sn : r->sd_cs;
    cl_uint type = kv->type, rb = (cl_uint)kv->row_bytes, cap = kv->capacity;
    cl_uint ne = (cl_uint)a->n_entries, nf = a->n_freq, has_slopes = a->slopes != NULL;
    cl_uint s0 = a->slot0, nh = hp->n_heads, nkv = hp->n_kv_heads;
    float rs = a->rot_scale, fs = a->rot_scale * a->rot_scale, sc = a->scale;
    /* The CPU's per-row decode kernels follow its vector order for head
     * sizes up to 64 (a multiple of 8); its fused f16 and Q8_0 kernel for
     * any multiple of 16 (Q8_0: of 32). forward.cl's split kernel follows
     * both. */
    bool all_fused = a->split_fused;
    for (size_t e = 0; e < a->n_entries; e++)
        all_fused &= a->entries[e].r.pos_mode == ST_POS_TRUE;
    if (a->split && a->nt == 1 &&
        ((hp->head_dim <= 64 && hp->head_dim % 8 == 0) || all_fused)) {
        /* The CPU's chunking (attn_tiled.c plan_chunks): the query's
         * visible keys over the ranges. */
        uint64_t n = 0;
        int64_t pq = kv->pos[a->slot0];
        for (size_t e = 0; e < a->n_entries; e++) {
            const st_attn_range *R = &a->entries[e].r;
            uint32_t lo = lower_bound(kv->pos, R->k_begin, R->k_end, pq - R->max_dist);
            uint32_t hi = lower_bound(kv->pos, lo, R->k_end, pq - R->min_dist + 1);
            n += lo < hi ? hi - lo : 0;
        }
        cl_uint ch, nc, fused = a->split_fused;
        st_attn_tiled_chunks(n, &ch, &nc);
        size_t pb = (size_t)nkv * nc * (hp->head_dim + 2) * (nh / nkv) * sizeof(float);
        if ((s = grow(r, &r->part, &r->part_cap, pb, diag)) != ST_OK)
            return s;
        size_t g2[2] = { nkv, nc };
        s = launch(r, K_SPLIT, 2, g2, diag, 28, A(r->act[ST_BACT_Q]), A(r->qr), A(r->part),
                   A(r->k[a->layer]), A(r->v[a->layer]), A(type), A(rb), A(cap), A(r->pos),
                   A(r->ents), A(ne), A(r->inv_freq), A(nf), A(rs), A(fs), A(sc), A(r->slopes),
                   A(has_slopes), A(sdc), A(sds), A(unc), A(uns), A(s0), A(nh), A(nkv), A(ch),
                   A(nc), A(fused));
        if (s != ST_OK)
            return s;
        size_t g1[1] = { nh };
        return launch(r, K_MERGE, 1, g1, diag, 5, A(r->part), A(r->act[ST_BACT_ATT]), A(nh),
                      A(nkv), A(nc));
    }
    size_t g[2] = { nh, a->nt };
    if (a->tiled && a->q_per_tile > 0) {
        cl_uint n = a->nt, qpt = a->q_per_tile;
        return launch(r, K_TILE, 2, g, diag, 27, A(r->act[ST_BACT_Q]), A(r->qr),
                      A(r->act[ST_BACT_ATT]), A(r->k[a->layer]), A(r->v[a->layer]), A(type),
                      A(rb), A(cap), A(r->pos), A(r->ents), A(ne), A(r->inv_freq), A(nf), A(rs),
                      A(fs), A(sc), A(r->slopes), A(has_slopes), A(sdc), A(sds), A(unc), A(uns),
                      A(s0), A(nh), A(nkv), A(n), A(qpt));
    }
    return launch(r, K_ATTEND, 2, g, diag, 27, A(r->act[ST_BACT_Q]), A(r->qr),
                  A(r->act[ST_BACT_ATT]), A(r->k[a->layer]), A(r->v[a->layer]), A(type), A(rb),
                  A(cap), A(r->pos), A(r->rot_pos), A(r->ents), A(ne), A(r->idx),
                  A(r->inv_freq), A(nf), A(rs), A(fs), A(sc), A(r->slopes), A(has_slopes),
                  A(sdc), A(sds), A(unc), A(uns), A(s0), A(nh), A(nkv));
}

static st_status res_logits(st_bres *r, const st_weight *out, uint32_t first, uint32_t n,
                            float *logits, st_diag *diag)
{
    st_status s = check(r, diag);
    if (s != ST_OK)
        return s;
    cl_command_queue q = r->f->c->queue;
    size_t xb = (size_t)(r->E / ST_ACT_BLOCK) * sizeof(st_act_block);
    size_t fb = (size_t)r->E * sizeof(float);
    cl_int rc = clEnqueueCopyBuffer(q, r->xq, r->lxq, first * xb, 0, n * xb, 0, NULL, NULL);
    if (rc == CL_SUCCESS)
        rc = clEnqueueCopyBuffer(q, r->act[ST_BACT_XN], r->lxn, first * fb, 0, n * fb, 0, NULL,
                                 NULL);
    if (rc != CL_SUCCESS)
        return cl_fail(diag, "copying the last rows", rc);
    size_t bytes = (size_t)n * out->rows * sizeof(float);
    if ((s = grow(r, &r->logits, &r->logits_cap, bytes, diag)) != ST_OK)
        return s;
    const st_weight *w[1] = { out };
    cl_mem y[1] = { r->logits };
    if ((s = st_cl_matmul_run_dev(r->f->mm, 1, w, y, r->lxn, r->E, r->lxq,
                                  r->E / ST_ACT_BLOCK, n, diag)) != ST_OK)
        return s;
    rc = clEnqueueReadBuffer(q, r->logits, CL_TRUE, 0, bytes, logits, 0, NULL, NULL);
    return rc == CL_SUCCESS ? ST_OK : cl_fail(diag, "reading the logits", rc);
}

/* A named activation buffer, or an error: the callers pass constants,
 * but a Release build's bounds analysis (GCC 12, -O3) cannot see that. */
static st_status act_known(st_bact a, st_diag *diag)
{
    if ((unsigned)a < ST_BACT_COUNT)
        return ST_OK;
    return st_diag_set(diag, ST_E_INVALID, "", 0, 0, "opencl: activation buffer %d of %d",
                       (int)a, (int)ST_BACT_COUNT);
}

static st_status res_read(st_bres *r, st_bact a, uint32_t nt, float *dst, st_diag *diag)
{
    st_status s = check(r, diag);
    if (s == ST_OK)
        s = act_known(a, diag);
    if (s != ST_OK)
        return s;
    cl_int rc = clEnqueueReadBuffer(r->f->c->queue, r->act[a], CL_TRUE, 0,
                                    (size_t)nt * act_width(r, a) * sizeof(float), dst, 0, NULL,
                                    NULL);
    return rc == CL_SUCCESS ? ST_OK : cl_fail(diag, "reading activations", rc);
}

static st_status res_write(st_bres *r, st_bact a, uint32_t nt, const float *src, st_diag *diag)
{
    st_status s = check(r, diag);
    if (s == ST_OK)
        s = act_known(a, diag);
    return s != ST_OK ? s
                      : write_buf(r, r->act[a], 0, (size_t)nt * act_width(r, a) * sizeof(float),
                                  src, diag);
}

/* Slots [s0, s1) of layer l's keys and values, between device and host. */
static st_status kv_move(st_bres *r, int32_t layer, uint32_t s0, uint32_t s1, bool up,
                         st_diag *diag)
{
    st_status s = check(r, diag);
    if (s != ST_OK || s1 <= s0)
        return s;
    st_kv_cache *kv = r->kv;
    uint32_t l0 = layer < 0 ? 0 : (uint32_t)layer;
    uint32_t l1 = layer < 0 ? kv->n_layers : (uint32_t)layer + 1;
    size_t o[3] = { s0 * kv->row_bytes, 0, 0 };
    size_t reg[3] = { (size_t)(s1 - s0) * kv->row_bytes, kv->n_kv_heads, 1 };
    size_t pitch = kv->capacity * kv->row_bytes;
    cl_command_queue q = r->f->c->queue;
    for (uint32_t l = l0; l < l1; l++) {
        cl_mem dev[2] = { r->k[l], r->v[l] };
        uint8_t *host[2] = { kv->k[l], kv->v[l] };
        for (int i = 0; i < 2; i++) {
            cl_int rc = up ? clEnqueueWriteBufferRect(q, dev[i], CL_TRUE, o, o, reg, pitch, 0,
                                                      pitch, 0, host[i], 0, NULL, NULL)
                           : clEnqueueReadBufferRect(q, dev[i], CL_TRUE, o, o, reg, pitch, 0,
                                                     pitch, 0, host[i], 0, NULL, NULL);
            if (rc != CL_SUCCESS)
                return cl_fail(diag, up ? "sending the cache" : "reading the cache", rc);
        }
    }
    return ST_OK;
}

static st_status res_kv_pull(st_bres *r, int32_t layer, uint32_t s0, uint32_t s1, st_diag *diag)
{
    return kv_move(r, layer, s0, s1, false, diag);
}

static st_status res_kv_push(st_bres *r, int32_t layer, uint32_t s0, uint32_t s1, st_diag *diag)
{
    return kv_move(r, layer, s0, s1, true, diag);
}

static st_status compact(st_bres *r, const uint8_t *keep, uint32_t n_before, st_diag *diag)
{
    st_kv_cache *kv = r->kv;
    uint32_t *list = malloc((n_before ? n_before : 1) * sizeof *list);
    int32_t *pos = malloc((n_before ? n_before : 1) * 2 * sizeof *pos);
    if (!list || !pos) {
        free(list);
        free(pos);
        return nomem(diag);
    }
    uint32_t n = 0;
    for (uint32_t j = 0; j < n_before; j++)
        if (keep[j]) {
            pos[n] = kv->pos[j];
            pos[n_before + n] = kv->rot_pos[j];
            list[n++] = j;
        }
    cl_mem lb = NULL;
    size_t lcap = 0;
    st_status s = grow(r, &lb, &lcap, n * sizeof *list, diag);
    if (s == ST_OK)
        s = write_buf(r, lb, 0, n * sizeof *list, list, diag);
    if (s == ST_OK)
        s = write_buf(r, r->pos, 0, n * sizeof(int32_t), pos, diag);
    if (s == ST_OK)
        s = write_buf(r, r->rot_pos, 0, n * sizeof(int32_t), pos + n_before, diag);
    cl_uint nk = n, cap = kv->capacity, rb = (cl_uint)kv->row_bytes;
    size_t g[2] = { n, kv->n_kv_heads };
    for (uint32_t l = 0; s == ST_OK && l < kv->n_layers; l++) {
        cl_mem *bufs[2] = { &r->k[l], &r->v[l] };
        for (int i = 0; i < 2 && s == ST_OK; i++) {
            s = launch(r, K_GATHER, 2, g, diag, 6, A(*bufs[i]), A(r->spare), A(lb), A(nk),
                       A(cap), A(rb));
            cl_mem t = *bufs[i];
            *bufs[i] = r->spare;
            r->spare = t;
        }
    }
    if (s == ST_OK) {
        cl_int rc = clFinish(r->f->c->queue);
        if (rc != CL_SUCCESS)
            s = cl_fail(diag, "compacting the cache", rc);
    }
    release(&lb);
    free(list);
    free(pos);
    r->tables_step = 0;
    return s;
}

static st_status res_kv_compact(st_bres *r, const uint8_t *keep, uint32_t n_before,
                                st_diag *diag)
{
    st_status s = check(r, diag);
    if (s != ST_OK)
        return s;
    st_diag d;
    st_diag_clear(&d);
    s = compact(r, keep, n_before, &d);
    if (s != ST_OK) {
        r->sticky = s;
        snprintf(r->sticky_msg, sizeof r->sticky_msg, "%s", d.message);
        if (diag)
            st_diag_set(diag, s, "", 0, 0, "%s", d.message);
    }
    return s;
}

/* The host's n_freq for the block's tables: begin is told; rope_store
 * uses the same width. */
static st_status res_begin_nf(st_bres *r, const int32_t *tokens, uint32_t nt, uint32_t slot0,
                              const float *qcs, const float *qsn, uint32_t n_freq, st_diag *diag)
{
    r->nf_max = n_freq;
    return res_begin(r, tokens, nt, slot0, qcs, qsn, n_freq, diag);
}

const st_backend_resident_ops st_cl_resident_ops = {
    .open = res_open, .close = res_close, .begin = res_begin_nf, .embed = res_embed,
    .norm = res_norm, .matmul = res_matmul, .quantize_att = res_quantize_att,
    .swiglu = res_swiglu, .rope_store = res_rope_store, .attend = res_attend,
    .logits = res_logits, .read = res_read, .write = res_write, .kv_pull = res_kv_pull,
    .kv_push = res_kv_push, .kv_compact = res_kv_compact,
};
