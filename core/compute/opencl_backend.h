/*
 * core/compute/opencl_backend.h - what the host asks of the OpenCL backend
 * (implemented in opencl/ when the build has ST_OPENCL; otherwise by
 * opencl_absent.c, whose every answer says how to get it).
 */
#ifndef ST_CORE_OPENCL_BACKEND_H
#define ST_CORE_OPENCL_BACKEND_H

#include <stretch/devices.h>

#include "backend.h"
#include "host_services.h"
#include "model.h"

/* How the build was told to find the backend, for refusals. */
#define ST_OPENCL_HOWTO                                                              \
    "install the OpenCL headers and ICD loader (apt-get install ocl-icd-opencl-dev " \
    "opencl-headers, and a driver such as pocl-opencl-icd; tools/install-deps.sh "   \
    "does it) and rebuild with -DST_OPENCL=ON"

typedef struct st_opencl_options {
    /* The strategy's backend: "opencl" or "opencl:PLATFORM:DEVICE". */
    const char *backend;
    /* The `device:` key or --device: an index into st_devices_list's
     * order, or a substring of a device name (case-insensitive); NULL =
     * the first GPU, else the first device. */
    const char *device;
    /* Skip the program binary cache (--no-kernel-cache). */
    bool no_kernel_cache;
    /* Where binaries are cached; NULL = $XDG_CACHE_HOME/stretch/opencl
     * (~/.cache/stretch/opencl). */
    const char *cache_dir;
} st_opencl_options;

/* Whether this build has the OpenCL backend. */
bool st_opencl_built(void);

st_status st_opencl_devices(st_device_info **out, size_t *n, st_diag *diag);

/* Open the backend on the device the options choose, build its programs
 * (or load them from the cache), and upload the model's weights. */
st_status st_opencl_backend_open(const st_opencl_options *opts, const st_model *m,
                                 st_backend **out, st_diag *diag);

/* The kernels the backend offers plugins (host_services.h), `ctx` being
 * the st_backend; NULL where there is no OpenCL backend. */
const st_host_kernels *st_opencl_host_kernels(void);

/* What the last open did, for `stretch bench` and `run --json`. */
typedef struct st_opencl_report {
    st_device_info device;
    double compile_ms;          /* program build or cache load */
    bool from_cache;            /* every program came from the cache */
    uint64_t weight_bytes;      /* uploaded to the device */
} st_opencl_report;
void st_opencl_backend_report(const st_backend *b, st_opencl_report *out);

#endif
