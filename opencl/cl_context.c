/* A context and an in-order command queue on one device. */
#include <stdio.h>
#include <string.h>

#include "opencl_internal.h"

st_status st_cl_ctx_open(st_cl_ctx *c, const st_cl_device *dev, bool no_cache,
                         const char *cache_dir, st_diag *diag)
{
    memset(c, 0, sizeof *c);
    c->dev = *dev;
    c->no_cache = no_cache;
    if (!no_cache && !st_cl_cache_dir(cache_dir, c->cache_dir, sizeof c->cache_dir))
        c->no_cache = true;   /* no $XDG_CACHE_HOME nor $HOME: build every time */
    cl_int rc;
    cl_context_properties props[] = { CL_CONTEXT_PLATFORM, (cl_context_properties)dev->platform,
                                      0 };
    c->ctx = clCreateContext(props, 1, &dev->id, NULL, NULL, &rc);
    if (rc != CL_SUCCESS)
        return st_diag_set(diag, ST_E_UNAVAILABLE, "", 0, 0,
                           "OpenCL device '%s': cannot create a context (%s, %d)",
                           dev->info.name, st_cl_status_name(rc), rc);
    c->queue = clCreateCommandQueue(c->ctx, dev->id, 0, &rc);
    if (rc != CL_SUCCESS) {
        clReleaseContext(c->ctx);
        c->ctx = NULL;
        return st_diag_set(diag, ST_E_UNAVAILABLE, "", 0, 0,
                           "OpenCL device '%s': cannot create a command queue (%s, %d)",
                           dev->info.name, st_cl_status_name(rc), rc);
    }
    return ST_OK;
}

void st_cl_ctx_close(st_cl_ctx *c)
{
    if (c->queue) {
        clFinish(c->queue);
        clReleaseCommandQueue(c->queue);
    }
    if (c->ctx)
        clReleaseContext(c->ctx);
    c->queue = NULL;
    c->ctx = NULL;
}
