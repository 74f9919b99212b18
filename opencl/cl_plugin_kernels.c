/* Plugins' own kernels (ST_HOST_OPENCL_V1 and the services table's
 * kernel_* entries) on the engine's device: compiled through the same
 * binary cache as the host's, launched with host buffers copied in (and
 * back when writable). Launches are serialised: a plugin may call from
 * more than one thread, and clSetKernelArg on one kernel is not
 * thread-safe. Kernels a plugin forgets are released with the backend. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl_internal.h"

struct st_kernel {
    cl_program prog;
    cl_kernel k;
    char name[64];
    struct st_kernel *next;   /* the backend's list of live kernels */
};

static pthread_mutex_t launch_lock = PTHREAD_MUTEX_INITIALIZER;

static st_status compile(void *ctx, const char *name, const char *source, const char *options,
                         st_kernel **out, st_error *err)
{
    st_cl_plugin_kernels *pk = st_cl_backend_plugin_kernels(ctx);
    st_kernel *kn = calloc(1, sizeof *kn);
    if (!kn)
        return st_error_set(err, ST_E_NOMEM, "kernel_compile: out of memory");
    snprintf(kn->name, sizeof kn->name, "%s", name);
    st_diag d;
    st_status s = st_cl_program_build(pk->ctx, name, source, strlen(source),
                                      options ? options : "", &kn->prog, &d);
    if (s != ST_OK) {
        free(kn);
        return st_error_from_diag(err, &d);
    }
    cl_int rc;
    kn->k = clCreateKernel(kn->prog, name, &rc);
    if (rc != CL_SUCCESS) {
        clReleaseProgram(kn->prog);
        free(kn);
        return st_error_set(err, ST_E_NOT_FOUND,
                            "kernel_compile: the source has no kernel named '%s' (%s)", name,
                            st_cl_status_name(rc));
    }
    pthread_mutex_lock(&launch_lock);
    kn->next = pk->live;
    pk->live = kn;
    pthread_mutex_unlock(&launch_lock);
    *out = kn;
    return ST_OK;
}

static void drop(st_kernel *kn)
{
    clReleaseKernel(kn->k);
    clReleaseProgram(kn->prog);
    free(kn);
}

static void release(void *ctx, st_kernel *kn)
{
    st_cl_plugin_kernels *pk = st_cl_backend_plugin_kernels(ctx);
    pthread_mutex_lock(&launch_lock);
    for (st_kernel **p = &pk->live; *p; p = &(*p)->next)
        if (*p == kn) {
            *p = kn->next;
            drop(kn);
            break;
        }
    pthread_mutex_unlock(&launch_lock);
}

void st_cl_plugin_kernels_release_all(st_cl_plugin_kernels *pk)
{
    while (pk->live) {
        st_kernel *kn = pk->live;
        pk->live = kn->next;
        drop(kn);
    }
}

static st_status launch_locked(st_cl_plugin_kernels *pk, st_kernel *kn, const st_kernel_arg *args,
                               size_t n_args, const size_t *global, const size_t *local,
                               uint32_t dims, cl_mem *mems, st_error *err)
{
    cl_int rc;
    for (size_t i = 0; i < n_args; i++) {
        const st_kernel_arg *a = &args[i];
        if (!a->data || !a->size)
            return st_error_set(err, ST_E_INVALID,
                                "kernel_launch '%s': argument %zu has no data or size", kn->name,
                                i);
        if (a->is_buffer) {
            mems[i] = clCreateBuffer(pk->ctx->ctx,
                                     (a->writable ? CL_MEM_READ_WRITE : CL_MEM_READ_ONLY) |
                                         CL_MEM_COPY_HOST_PTR,
                                     a->size, a->data, &rc);
            if (rc != CL_SUCCESS)
                return st_error_set(err, ST_E_NOMEM,
                                    "kernel_launch '%s': argument %zu: a %zu-byte device buffer "
                                    "failed (%s)", kn->name, i, a->size, st_cl_status_name(rc));
            rc = clSetKernelArg(kn->k, (cl_uint)i, sizeof(cl_mem), &mems[i]);
        } else {
            rc = clSetKernelArg(kn->k, (cl_uint)i, a->size, a->data);
        }
        if (rc != CL_SUCCESS)
            return st_error_set(err, ST_E_INVALID,
                                "kernel_launch '%s': argument %zu does not fit the kernel's "
                                "parameter (%s)", kn->name, i, st_cl_status_name(rc));
    }
    rc = clEnqueueNDRangeKernel(pk->ctx->queue, kn->k, dims, NULL, global, local, 0, NULL, NULL);
    if (rc != CL_SUCCESS)
        return st_error_set(err, ST_E_INVALID, "kernel_launch '%s': enqueue failed (%s, %d)",
                            kn->name, st_cl_status_name(rc), rc);
    for (size_t i = 0; i < n_args; i++)
        if (args[i].is_buffer && args[i].writable) {
            rc = clEnqueueReadBuffer(pk->ctx->queue, mems[i], CL_TRUE, 0, args[i].size,
                                     args[i].data, 0, NULL, NULL);
            if (rc != CL_SUCCESS)
                return st_error_set(err, ST_E_UNAVAILABLE,
                                    "kernel_launch '%s': reading argument %zu back failed (%s)",
                                    kn->name, i, st_cl_status_name(rc));
        }
    return ST_OK;
}

static st_status launch(void *ctx, st_kernel *kn, const st_kernel_arg *args, size_t n_args,
                        const size_t *global, const size_t *local, uint32_t dims, st_error *err)
{
    st_cl_plugin_kernels *pk = st_cl_backend_plugin_kernels(ctx);
    cl_mem *mems = calloc(n_args ? n_args : 1, sizeof *mems);
    if (!mems)
        return st_error_set(err, ST_E_NOMEM, "kernel_launch: out of memory");
    pthread_mutex_lock(&launch_lock);
    st_status s = launch_locked(pk, kn, args, n_args, global, local, dims, mems, err);
    if (s != ST_OK)
        clFinish(pk->ctx->queue);
    pthread_mutex_unlock(&launch_lock);
    for (size_t i = 0; i < n_args; i++)
        if (mems[i])
            clReleaseMemObject(mems[i]);
    free(mems);
    return s;
}

static const st_host_kernels plugin_kernels = { compile, launch, release };

const st_host_kernels *st_opencl_host_kernels(void)
{
    return &plugin_kernels;
}
