/* The OpenCL backend's entry points in a build without it (ST_OPENCL off,
 * or its headers and loader not found): each refuses, saying how to get
 * it. The real ones are in opencl/. */
#ifndef ST_HAVE_OPENCL
#include "opencl_backend.h"

#include <string.h>

bool st_opencl_built(void)
{
    return false;
}

st_status st_opencl_devices(st_device_info **out, size_t *n, st_diag *diag)
{
    *out = NULL;
    *n = 0;
    return st_diag_set(diag, ST_E_UNAVAILABLE, "", 0, 0,
                       "this build has no OpenCL backend: %s", ST_OPENCL_HOWTO);
}

st_status st_opencl_backend_open(const st_opencl_options *opts, const st_model *m,
                                 st_backend **out, st_diag *diag)
{
    (void)m;
    *out = NULL;
    return st_diag_set(diag, ST_E_UNAVAILABLE, "", 0, 0,
                       "backend '%s': this build has no OpenCL backend: %s",
                       opts && opts->backend ? opts->backend : "opencl", ST_OPENCL_HOWTO);
}

const st_host_kernels *st_opencl_host_kernels(void)
{
    return NULL;
}

void st_opencl_backend_report(const st_backend *b, st_opencl_report *out)
{
    (void)b;
    memset(out, 0, sizeof *out);
}
#else
/* ISO C wants a translation unit to declare something. */
typedef int st_opencl_absent_unused;
#endif
