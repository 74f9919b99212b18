/*
 * opencl/opencl_internal.h - the OpenCL backend's pieces, shared by its
 * files and its tests: devices (cl_device.c), the program binary cache
 * (cl_cache.c), program builds (cl_program.c), the context and queue
 * (cl_context.c) and the weight products (cl_matmul.c).
 */
#ifndef ST_OPENCL_INTERNAL_H
#define ST_OPENCL_INTERNAL_H

#include <CL/cl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "host_services.h"
#include "opencl_backend.h"

/* One device the ICD loader found. */
typedef struct st_cl_device {
    cl_platform_id platform;
    cl_device_id id;
    st_device_info info;
} st_cl_device;

/* Every device of every platform, in st_devices_list's order. No platform
 * at all is ST_E_UNAVAILABLE with a message naming what to install. */
st_status st_cl_enumerate(st_cl_device **out, size_t *n, st_diag *diag);

/* Which of devs[0..n) the strategy's backend ("opencl" or
 * "opencl:PLATFORM:DEVICE") and `device:` choose; ST_E_NOT_FOUND, listing
 * the devices there are, when none matches. */
st_status st_cl_select(const st_cl_device *devs, size_t n, const char *backend,
                       const char *device, size_t *index, st_diag *diag);

/* The name of an OpenCL status code ("CL_OUT_OF_RESOURCES"). */
const char *st_cl_status_name(cl_int code);

/* ---- the program binary cache (cl_cache.c) ---------------------------- */

/* The cache directory: `dir` when given, else $XDG_CACHE_HOME/stretch/opencl,
 * else $HOME/.cache/stretch/opencl. Returns false when none can be named. */
bool st_cl_cache_dir(const char *dir, char *out, size_t cap);

/* The key of one program: platform, device, driver version, build options
 * and a hash of the source. `out` gets the full key text. */
void st_cl_cache_key(const st_device_info *dev, const char *options, const char *source,
                     size_t source_len, char *out, size_t cap);

/* The cache file of `key` inside `dir`. */
void st_cl_cache_path(const char *dir, const char *key, char *out, size_t cap);

/* Read the binary cached for `key`: ST_OK with *bin (malloc'd) and *len;
 * ST_E_NOT_FOUND when there is no entry; ST_E_FORMAT when the entry is
 * stale (another key), truncated or corrupted (checksum), with the reason
 * in diag. The caller rebuilds and stores over it. */
st_status st_cl_cache_load(const char *dir, const char *key, unsigned char **bin, size_t *len,
                           st_diag *diag);

/* Write the entry atomically (a temporary file renamed over the old). */
st_status st_cl_cache_store(const char *dir, const char *key, const unsigned char *bin,
                            size_t len, st_diag *diag);

/* ---- a context on one device (cl_context.c) --------------------------- */

typedef struct st_cl_ctx {
    st_cl_device dev;
    cl_context ctx;
    cl_command_queue queue;
    bool no_cache;
    char cache_dir[1024];
    /* What program builds did, for the backend's report. */
    double compile_ms;
    unsigned n_built, n_cached;
} st_cl_ctx;

st_status st_cl_ctx_open(st_cl_ctx *c, const st_cl_device *dev, bool no_cache,
                         const char *cache_dir, st_diag *diag);
void st_cl_ctx_close(st_cl_ctx *c);

/* ---- programs (cl_program.c) ------------------------------------------ */

/* Build `source` (named `name` in messages) for the context's device with
 * `options`, through the cache unless the context skips it. A build that
 * fails is ST_E_FORMAT with the kernel's name and the build log. */
st_status st_cl_program_build(st_cl_ctx *c, const char *name, const char *source,
                              size_t len, const char *options, cl_program *out,
                              st_diag *diag);

/* The embedded source `name` (opencl/kernels/NAME), built as above. */
st_status st_cl_program_embedded(st_cl_ctx *c, const char *name, const char *options,
                                 cl_program *out, st_diag *diag);

/* ---- the weight products (cl_matmul.c) -------------------------------- */

typedef struct st_cl_matmul st_cl_matmul;

/* Two kernel sets with the same bits (kernels/matmul.cl): one work-item
 * per row and token (CPU devices), or eight, one per SIMD lane (GPUs).
 * Both sum quantized rows in the CPU's block order; the ggml order
 * (STRETCH_NUMERICS=ggml) has per-row kernels only. */
typedef enum st_cl_matmul_variant {
    ST_CL_MATMUL_ROWS = 0,
    ST_CL_MATMUL_LANES = 1
} st_cl_matmul_variant;

/* The variant that suits the device: lanes on a GPU, rows elsewhere. */
st_cl_matmul_variant st_cl_matmul_variant_for(const st_device_info *dev);

st_status st_cl_matmul_new(st_cl_ctx *c, st_cl_matmul_variant variant, st_cl_matmul **out,
                           st_diag *diag);
void st_cl_matmul_free(st_cl_matmul *mm);
/* Upload `w` (kept until free; a weight already uploaded is found again). */
st_status st_cl_matmul_upload(st_cl_matmul *mm, const st_weight *w, st_diag *diag);
/* As st_backend_ops.matmul: up to ST_MATMUL_MAX_MATS matrices sharing
 * one input, which goes up once; ggml_order as its no_packed (the
 * quantized rows summed as the CPU's dot_ggml). */
st_status st_cl_matmul_run(st_cl_matmul *mm, uint32_t n_mats, const st_weight *const *w,
                           float *const *y, const size_t *ldy, const float *xf, size_t ldxf,
                           const st_act_block *xq, size_t ldxq, uint32_t nt, bool ggml_order,
                           st_diag *diag);
uint64_t st_cl_matmul_bytes(const st_cl_matmul *mm);
/* The same with the activations and products in device buffers: y[i]
 * gets nt rows of w[i]->rows floats; x is xf (floats, ldxf apart) or xq
 * (int8 blocks, ldxq apart) by each weight's type. Enqueued, not waited. */
st_status st_cl_matmul_run_dev(st_cl_matmul *mm, uint32_t n_mats, const st_weight *const *w,
                               const cl_mem *y, cl_mem xf, size_t ldxf, cl_mem xq, size_t ldxq,
                               uint32_t nt, st_diag *diag);
/* The device copy of an uploaded weight, or NULL. */
cl_mem st_cl_matmul_weight(st_cl_matmul *mm, const st_weight *w);

/* ---- plugins' kernels (cl_plugin_kernels.c) ---------------------------- */

typedef struct st_cl_plugin_kernels {
    st_cl_ctx *ctx;
    st_kernel *live;   /* compiled and not yet released */
} st_cl_plugin_kernels;

/* ---- the forward pass's steps on the device (cl_resident.c) ----------- */

/* The forward program (kernels/forward.cl) built for the model's head
 * size, and what it keeps for every context (norm weights). */
typedef struct st_cl_fwd st_cl_fwd;
st_status st_cl_fwd_new(st_cl_ctx *c, st_cl_matmul *mm, const st_model *m, st_cl_fwd **out,
                        st_diag *diag);
void st_cl_fwd_free(st_cl_fwd *f);
uint64_t st_cl_fwd_bytes(const st_cl_fwd *f);
/* Whether the fast path (cl_khr_fp16: the f16 cache read as half
 * vectors) is in use; STRETCH_OPENCL_FP16=off forces the baseline. */
bool st_cl_fwd_fast(const st_cl_fwd *f);
extern const st_backend_resident_ops st_cl_resident_ops;

/* The OpenCL st_backend (cl_backend.c). */
typedef struct cl_backend {
    st_backend base;
    st_cl_ctx ctx;
    st_cl_matmul *mm;
    st_cl_fwd *fwd;
    st_cl_plugin_kernels plugin;
} cl_backend;

/* The plugin kernel state of an OpenCL st_backend (cl_backend.c). */
st_cl_plugin_kernels *st_cl_backend_plugin_kernels(void *backend);
void st_cl_plugin_kernels_release_all(st_cl_plugin_kernels *pk);

#endif
