/* The weight products on the device: each matrix uploaded once in its
 * GGUF layout, the activations of a block sent up, the products read back
 * straight into the caller's rows (a rectangle read honours ldy). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl_internal.h"

typedef struct dev_weight {
    const st_weight *w;
    cl_mem buf;
} dev_weight;

struct st_cl_matmul {
    st_cl_ctx *c;
    st_cl_matmul_variant variant;
    cl_program prog;
    cl_kernel k[ST_KT_COUNT];
    cl_kernel k_ggml[ST_KT_COUNT]; /* quantized types only: the ggml order */
    dev_weight *weights;
    size_t n_weights, cap_weights;
    uint64_t weight_bytes;
    /* Activations (int8 blocks, floats: a call may need both when its
     * matrices differ in type) and one product buffer per matrix. */
    cl_mem xq, xf, y[ST_MATMUL_MAX_MATS];
    size_t xq_cap, xf_cap, y_cap[ST_MATMUL_MAX_MATS];   /* bytes */
};

static int kt_of(st_ggml_type t)
{
    switch (t) {
    case ST_GGML_F32: return ST_KT_F32;
    case ST_GGML_F16: return ST_KT_F16;
    case ST_GGML_Q4_0: return ST_KT_Q4_0;
    case ST_GGML_Q4_1: return ST_KT_Q4_1;
    case ST_GGML_Q8_0: return ST_KT_Q8_0;
    }
    return -1;
}

static const char *const kernel_names[2][ST_KT_COUNT] = {
    [ST_CL_MATMUL_ROWS] = { [ST_KT_F32] = "mm_f32", [ST_KT_F16] = "mm_f16",
                            [ST_KT_Q4_0] = "mm_q4_0", [ST_KT_Q4_1] = "mm_q4_1",
                            [ST_KT_Q8_0] = "mm_q8_0" },
    [ST_CL_MATMUL_LANES] = { [ST_KT_F32] = "mm8_f32", [ST_KT_F16] = "mm8_f16",
                             [ST_KT_Q4_0] = "mm8_q4_0", [ST_KT_Q4_1] = "mm8_q4_1",
                             [ST_KT_Q8_0] = "mm8_q8_0" },
};

/* The ggml order's per-row kernels (either variant uses them). */
static const char *const ggml_kernel_names[ST_KT_COUNT] = {
    [ST_KT_Q4_0] = "mmg_q4_0", [ST_KT_Q4_1] = "mmg_q4_1", [ST_KT_Q8_0] = "mmg_q8_0",
};

/* Lane-parallel groups: the largest multiple of 8 up to 64 rows' worth
 * (and the kernels' 256) that divides 8 * rows. */
static size_t lanes_local(uint32_t rows)
{
    for (size_t rows_per_group = 32; rows_per_group > 1; rows_per_group /= 2)
        if (rows % rows_per_group == 0)
            return 8 * rows_per_group;
    return 8;
}

st_cl_matmul_variant st_cl_matmul_variant_for(const st_device_info *dev)
{
    /* $STRETCH_OPENCL_MATMUL=rows|lanes overrides the choice (tuning a
     * new device; both give the same bits). */
    const char *env = getenv("STRETCH_OPENCL_MATMUL");
    if (env && strcmp(env, "lanes") == 0)
        return ST_CL_MATMUL_LANES;
    if (env && strcmp(env, "rows") == 0)
        return ST_CL_MATMUL_ROWS;
    return strcmp(dev->type, "gpu") == 0 ? ST_CL_MATMUL_LANES : ST_CL_MATMUL_ROWS;
}

static st_status cl_fail(st_diag *diag, const char *what, cl_int rc)
{
    return st_diag_set(diag, rc == CL_MEM_OBJECT_ALLOCATION_FAILURE ||
                                     rc == CL_OUT_OF_RESOURCES || rc == CL_OUT_OF_HOST_MEMORY
                                 ? ST_E_NOMEM
                                 : ST_E_UNAVAILABLE,
                       "", 0, 0, "OpenCL: %s failed (%s, %d)", what, st_cl_status_name(rc), rc);
}

st_status st_cl_matmul_new(st_cl_ctx *c, st_cl_matmul_variant variant, st_cl_matmul **out,
                           st_diag *diag)
{
    *out = NULL;
    st_cl_matmul *mm = calloc(1, sizeof *mm);
    if (!mm)
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "OpenCL: out of memory");
    mm->c = c;
    mm->variant = variant;
    char opts[64];
    snprintf(opts, sizeof opts, "-DACT_BYTES=%zu", sizeof(st_act_block));
    st_status s = st_cl_program_embedded(c, "matmul.cl", opts, &mm->prog, diag);
    if (s != ST_OK) {
        free(mm);
        return s;
    }
    for (int i = 0; i < 2 * ST_KT_COUNT; i++) {
        cl_int rc;
        bool ggml = i >= ST_KT_COUNT;
        const char *name = ggml ? ggml_kernel_names[i - ST_KT_COUNT] : kernel_names[variant][i];
        if (!name)
            continue;
        cl_kernel *slot = ggml ? &mm->k_ggml[i - ST_KT_COUNT] : &mm->k[i];
        *slot = clCreateKernel(mm->prog, name, &rc);
        if (rc != CL_SUCCESS) {
            *slot = NULL;
            st_cl_matmul_free(mm);
            return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0,
                               "OpenCL: matmul.cl has no kernel '%s' (%s)", name,
                               st_cl_status_name(rc));
        }
    }
    *out = mm;
    return ST_OK;
}

void st_cl_matmul_free(st_cl_matmul *mm)
{
    if (!mm)
        return;
    for (size_t i = 0; i < mm->n_weights; i++)
        clReleaseMemObject(mm->weights[i].buf);
    free(mm->weights);
    for (int i = 0; i < ST_KT_COUNT; i++) {
        if (mm->k[i])
            clReleaseKernel(mm->k[i]);
        if (mm->k_ggml[i])
            clReleaseKernel(mm->k_ggml[i]);
    }
    if (mm->prog)
        clReleaseProgram(mm->prog);
    if (mm->xq)
        clReleaseMemObject(mm->xq);
    if (mm->xf)
        clReleaseMemObject(mm->xf);
    for (int i = 0; i < ST_MATMUL_MAX_MATS; i++)
        if (mm->y[i])
            clReleaseMemObject(mm->y[i]);
    free(mm);
}

uint64_t st_cl_matmul_bytes(const st_cl_matmul *mm)
{
    uint64_t b = mm->weight_bytes + mm->xq_cap + mm->xf_cap;
    for (int i = 0; i < ST_MATMUL_MAX_MATS; i++)
        b += mm->y_cap[i];
    return b;
}

static dev_weight *find(st_cl_matmul *mm, const st_weight *w)
{
    for (size_t i = 0; i < mm->n_weights; i++)
        if (mm->weights[i].w == w || (mm->weights[i].w->data == w->data &&
                                      mm->weights[i].w->type == w->type &&
                                      mm->weights[i].w->rows == w->rows))
            return &mm->weights[i];
    return NULL;
}

st_status st_cl_matmul_upload(st_cl_matmul *mm, const st_weight *w, st_diag *diag)
{
    if (find(mm, w))
        return ST_OK;
    if (kt_of(w->type) < 0)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "OpenCL: weight type %d has no device kernel", (int)w->type);
    if (mm->n_weights == mm->cap_weights) {
        size_t cap = mm->cap_weights ? 2 * mm->cap_weights : 16;
        dev_weight *g = realloc(mm->weights, cap * sizeof *g);
        if (!g)
            return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "OpenCL: out of memory");
        mm->weights = g;
        mm->cap_weights = cap;
    }
    size_t bytes = (size_t)w->rows * w->row_bytes;
    if (bytes > mm->c->dev.info.max_alloc_bytes)
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0,
                           "OpenCL device '%s': a %u x %u weight of %zu bytes exceeds its "
                           "largest allocation (%llu bytes)", mm->c->dev.info.name, w->rows,
                           w->cols, bytes, (unsigned long long)mm->c->dev.info.max_alloc_bytes);
    cl_int rc;
    cl_mem b = clCreateBuffer(mm->c->ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes,
                              (void *)w->data, &rc);
    if (rc != CL_SUCCESS)
        return cl_fail(diag, "uploading a weight", rc);
    mm->weights[mm->n_weights++] = (dev_weight){ w, b };
    mm->weight_bytes += bytes;
    return ST_OK;
}

/* Grow a device buffer to `bytes`. */
static st_status reserve(st_cl_matmul *mm, cl_mem *buf, size_t *cap, size_t bytes,
                         cl_mem_flags flags, st_diag *diag)
{
    if (bytes <= *cap)
        return ST_OK;
    if (*buf)
        clReleaseMemObject(*buf);
    *cap = 0;
    cl_int rc;
    *buf = clCreateBuffer(mm->c->ctx, flags, bytes, NULL, &rc);
    if (rc != CL_SUCCESS) {
        *buf = NULL;
        return cl_fail(diag, "allocating an activation buffer", rc);
    }
    *cap = bytes;
    return ST_OK;
}

/* Launch y[i] = W_i x for nt rows, x in xf (float rows, ldxf apart) or
 * xq (int8 blocks, ldxq apart) by each weight's type; y[i] holds nt rows
 * of w[i]->rows floats. Weights are uploaded already. */
static st_status enqueue_products(st_cl_matmul *mm, uint32_t n_mats, const st_weight *const *w,
                                  const cl_mem *y, cl_mem xf, size_t ldxf, cl_mem xq,
                                  size_t ldxq, uint32_t nt, bool ggml_order, st_diag *diag)
{
    cl_command_queue q = mm->c->queue;
    cl_int rc;
    for (uint32_t i = 0; i < n_mats; i++) {
        int kt = kt_of(w[i]->type);
        if (kt < 0)   /* upload refused it already */
            return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                               "OpenCL: weight type %d has no device kernel", (int)w[i]->type);
        bool quant = kt >= ST_KT_Q4_0;
        bool ggml = ggml_order && quant;
        cl_kernel k = ggml ? mm->k_ggml[kt] : mm->k[kt];
        cl_uint row_bytes = (cl_uint)w[i]->row_bytes, rows = w[i]->rows, cols = w[i]->cols;
        cl_uint ldx = (cl_uint)(quant ? ldxq : ldxf), n = nt;
        cl_mem wb = find(mm, w[i])->buf, xb = quant ? xq : xf;
        clSetKernelArg(k, 0, sizeof wb, &wb);
        clSetKernelArg(k, 1, sizeof row_bytes, &row_bytes);
        clSetKernelArg(k, 2, sizeof rows, &rows);
        clSetKernelArg(k, 3, sizeof cols, &cols);
        clSetKernelArg(k, 4, sizeof xb, &xb);
        clSetKernelArg(k, 5, sizeof ldx, &ldx);
        clSetKernelArg(k, 6, sizeof n, &n);
        clSetKernelArg(k, 7, sizeof y[i], &y[i]);
        bool lanes = mm->variant == ST_CL_MATMUL_LANES && !ggml;
        size_t global[2] = { lanes ? (size_t)rows * 8 : rows, nt };
        size_t local[2] = { lanes ? lanes_local(rows) : 1, 1 };
        rc = clEnqueueNDRangeKernel(q, k, 2, NULL, global, lanes ? local : NULL, 0, NULL, NULL);
        if (rc != CL_SUCCESS)
            return cl_fail(diag, "launching a weight product", rc);
    }
    return ST_OK;
}

st_status st_cl_matmul_run_dev(st_cl_matmul *mm, uint32_t n_mats, const st_weight *const *w,
                               const cl_mem *y, cl_mem xf, size_t ldxf, cl_mem xq, size_t ldxq,
                               uint32_t nt, st_diag *diag)
{
    if (n_mats > ST_MATMUL_MAX_MATS)
        return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0, "OpenCL: %u matrices in one call",
                           n_mats);
    for (uint32_t i = 0; i < n_mats; i++) {
        st_status s = st_cl_matmul_upload(mm, w[i], diag);
        if (s != ST_OK)
            return s;
    }
    return enqueue_products(mm, n_mats, w, y, xf, ldxf, xq, ldxq, nt, false, diag);
}

cl_mem st_cl_matmul_weight(st_cl_matmul *mm, const st_weight *w)
{
    dev_weight *d = find(mm, w);
    return d ? d->buf : NULL;
}

st_status st_cl_matmul_run(st_cl_matmul *mm, uint32_t n_mats, const st_weight *const *w,
                           float *const *y, const size_t *ldy, const float *xf, size_t ldxf,
                           const st_act_block *xq, size_t ldxq, uint32_t nt, bool ggml_order,
                           st_diag *diag)
{
    if (n_mats > ST_MATMUL_MAX_MATS)
        return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0, "OpenCL: %u matrices in one call",
                           n_mats);
    st_status s;
    bool need_q = false, need_f = false;
    for (uint32_t i = 0; i < n_mats; i++) {
        if ((s = st_cl_matmul_upload(mm, w[i], diag)) != ST_OK)
            return s;
        if (kt_of(w[i]->type) >= ST_KT_Q4_0)
            need_q = true;
        else
            need_f = true;
    }
    cl_command_queue q = mm->c->queue;
    cl_int rc;
    /* The block's activations go up once for all the matrices. */
    size_t qbytes = (size_t)nt * ldxq * sizeof(st_act_block);
    size_t fbytes = (size_t)nt * ldxf * sizeof(float);
    if (need_q) {
        if ((s = reserve(mm, &mm->xq, &mm->xq_cap, qbytes, CL_MEM_READ_ONLY, diag)) != ST_OK)
            return s;
        rc = clEnqueueWriteBuffer(q, mm->xq, CL_FALSE, 0, qbytes, xq, 0, NULL, NULL);
        if (rc != CL_SUCCESS)
            return cl_fail(diag, "sending activations", rc);
    }
    if (need_f) {
        if ((s = reserve(mm, &mm->xf, &mm->xf_cap, fbytes, CL_MEM_READ_ONLY, diag)) != ST_OK)
            return s;
        rc = clEnqueueWriteBuffer(q, mm->xf, CL_FALSE, 0, fbytes, xf, 0, NULL, NULL);
        if (rc != CL_SUCCESS)
            return cl_fail(diag, "sending activations", rc);
    }
    cl_mem yb[ST_MATMUL_MAX_MATS] = { NULL };
    for (uint32_t i = 0; i < n_mats; i++) {
        size_t ybytes = (size_t)nt * w[i]->rows * sizeof(float);
        if ((s = reserve(mm, &mm->y[i], &mm->y_cap[i], ybytes, CL_MEM_WRITE_ONLY, diag)) !=
            ST_OK)
            return s;
        yb[i] = mm->y[i];
    }
    if ((s = enqueue_products(mm, n_mats, w, yb, mm->xf, ldxf, mm->xq, ldxq, nt, ggml_order,
                              diag)) != ST_OK)
        return s;
    /* Rows of w->rows floats on the device land ldy floats apart; the last
     * read waits for everything before it (an in-order queue). */
    for (uint32_t i = 0; i < n_mats; i++) {
        size_t origin[3] = { 0, 0, 0 };
        size_t region[3] = { (size_t)w[i]->rows * sizeof(float), nt, 1 };
        rc = clEnqueueReadBufferRect(q, mm->y[i], i + 1 == n_mats ? CL_TRUE : CL_FALSE, origin,
                                     origin, region, (size_t)w[i]->rows * sizeof(float), 0,
                                     ldy[i] * sizeof(float), 0, y[i], 0, NULL, NULL);
        if (rc != CL_SUCCESS) {
            clFinish(q);
            return cl_fail(diag, "reading products back", rc);
        }
    }
    return ST_OK;
}
