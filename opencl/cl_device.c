/* Devices: enumerate every platform's devices through the ICD loader, and
 * choose one from a strategy's `backend:` and `device:`. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opencl_internal.h"

#define NO_PLATFORM_MSG                                                                   \
    "no OpenCL platform found: the ICD loader found no driver (it reads "                \
    "/etc/OpenCL/vendors, or $OCL_ICD_VENDORS when set); install one, such as "          \
    "pocl-opencl-icd (runs on the CPU) or your GPU vendor's OpenCL driver"

const char *st_cl_status_name(cl_int code)
{
    switch (code) {
    case CL_SUCCESS: return "CL_SUCCESS";
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_BINARY: return "CL_INVALID_BINARY";
    case CL_INVALID_BUILD_OPTIONS: return "CL_INVALID_BUILD_OPTIONS";
    case CL_INVALID_PROGRAM: return "CL_INVALID_PROGRAM";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_ARG_INDEX: return "CL_INVALID_ARG_INDEX";
    case CL_INVALID_ARG_VALUE: return "CL_INVALID_ARG_VALUE";
    case CL_INVALID_ARG_SIZE: return "CL_INVALID_ARG_SIZE";
    case CL_INVALID_WORK_DIMENSION: return "CL_INVALID_WORK_DIMENSION";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_WORK_ITEM_SIZE: return "CL_INVALID_WORK_ITEM_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR";
    default: return "an OpenCL error";
    }
}

static void text_info(cl_device_id d, cl_device_info what, char *out, size_t cap)
{
    out[0] = '\0';
    if (clGetDeviceInfo(d, what, cap, out, NULL) != CL_SUCCESS)
        snprintf(out, cap, "?");
    out[cap - 1] = '\0';
}

static bool has_extension(const char *list, const char *ext)
{
    size_t n = strlen(ext);
    for (const char *p = list; (p = strstr(p, ext)) != NULL; p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
            return true;
    return false;
}

static void describe(st_cl_device *d, uint32_t index, uint32_t pi, uint32_t di)
{
    st_device_info *o = &d->info;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->index = index;
    o->platform = pi;
    o->device = di;
    if (clGetPlatformInfo(d->platform, CL_PLATFORM_NAME, sizeof o->platform_name,
                          o->platform_name, NULL) != CL_SUCCESS)
        snprintf(o->platform_name, sizeof o->platform_name, "?");
    o->platform_name[sizeof o->platform_name - 1] = '\0';
    text_info(d->id, CL_DEVICE_NAME, o->name, sizeof o->name);
    text_info(d->id, CL_DEVICE_VENDOR, o->vendor, sizeof o->vendor);
    text_info(d->id, CL_DRIVER_VERSION, o->driver_version, sizeof o->driver_version);
    text_info(d->id, CL_DEVICE_VERSION, o->opencl_version, sizeof o->opencl_version);
    cl_device_type type = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    snprintf(o->type, sizeof o->type, "%s",
             (type & CL_DEVICE_TYPE_GPU) ? "gpu"
             : (type & CL_DEVICE_TYPE_CPU) ? "cpu"
             : (type & CL_DEVICE_TYPE_ACCELERATOR) ? "accelerator" : "other");
    cl_uint cu = 0;
    cl_ulong gm = 0, lm = 0, ma = 0;
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lm, &lm, NULL);
    clGetDeviceInfo(d->id, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof ma, &ma, NULL);
    o->compute_units = cu;
    o->global_mem_bytes = gm;
    o->local_mem_bytes = lm;
    o->max_alloc_bytes = ma;
    size_t ext_len = 0;
    if (clGetDeviceInfo(d->id, CL_DEVICE_EXTENSIONS, 0, NULL, &ext_len) == CL_SUCCESS &&
        ext_len) {
        char *ext = malloc(ext_len + 1);
        if (ext && clGetDeviceInfo(d->id, CL_DEVICE_EXTENSIONS, ext_len, ext, NULL) ==
                       CL_SUCCESS) {
            ext[ext_len] = '\0';
            o->fp16 = has_extension(ext, "cl_khr_fp16");
            o->subgroups = has_extension(ext, "cl_khr_subgroups") ||
                           has_extension(ext, "cl_intel_subgroups");
            o->integer_dot = has_extension(ext, "cl_khr_integer_dot_product");
        }
        free(ext);
    }
}

st_status st_cl_enumerate(st_cl_device **out, size_t *n, st_diag *diag)
{
    *out = NULL;
    *n = 0;
    cl_uint np = 0;
    cl_int rc = clGetPlatformIDs(0, NULL, &np);
    if (rc == -1001 /* CL_PLATFORM_NOT_FOUND_KHR */ || (rc == CL_SUCCESS && np == 0))
        return st_diag_set(diag, ST_E_UNAVAILABLE, "", 0, 0, NO_PLATFORM_MSG);
    if (rc != CL_SUCCESS)
        return st_diag_set(diag, ST_E_UNAVAILABLE, "", 0, 0,
                           "OpenCL: listing platforms failed (%s, %d)", st_cl_status_name(rc),
                           rc);
    cl_platform_id *plats = calloc(np, sizeof *plats);
    if (!plats)
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "OpenCL: out of memory");
    clGetPlatformIDs(np, plats, NULL);
    st_cl_device *devs = NULL;
    size_t count = 0;
    for (cl_uint p = 0; p < np; p++) {
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd) != CL_SUCCESS || !nd)
            continue;   /* a platform without devices lists nothing */
        cl_device_id *ids = calloc(nd, sizeof *ids);
        st_cl_device *grown = ids ? realloc(devs, (count + nd) * sizeof *devs) : NULL;
        if (!grown) {
            free(ids);
            free(devs);
            free(plats);
            return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "OpenCL: out of memory");
        }
        devs = grown;
        clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, ids, NULL);
        for (cl_uint d = 0; d < nd; d++) {
            devs[count].platform = plats[p];
            devs[count].id = ids[d];
            describe(&devs[count], (uint32_t)count, p, d);
            count++;
        }
        free(ids);
    }
    free(plats);
    if (!count) {
        free(devs);
        return st_diag_set(diag, ST_E_UNAVAILABLE, "", 0, 0,
                           "OpenCL: %u platform(s) found, but none has a device", np);
    }
    *out = devs;
    *n = count;
    return ST_OK;
}

/* "a:b" -> two non-negative integers. */
static bool parse_pair(const char *s, unsigned long *a, unsigned long *b)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    *a = strtoul(s, &end, 10);
    if (errno || *end != ':' || !isdigit((unsigned char)end[1]))
        return false;
    *b = strtoul(end + 1, &end, 10);
    return !errno && *end == '\0';
}

static bool contains_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return true;
    return n == 0;
}

/* "0:0 'name' (platform), ..." for a refusal. */
static void list_devices(const st_cl_device *devs, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++) {
        int w = snprintf(out + len, cap - len, "%s[%zu] opencl:%u:%u '%s'", i ? ", " : "", i,
                         devs[i].info.platform, devs[i].info.device, devs[i].info.name);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

st_status st_cl_select(const st_cl_device *devs, size_t n, const char *backend,
                       const char *device, size_t *index, st_diag *diag)
{
    char have[512];
    list_devices(devs, n, have, sizeof have);
    /* `device:` (or --device) chooses when given; the indices of
     * opencl:PLATFORM:DEVICE otherwise. Both are checked. */
    bool indexed = backend && strncmp(backend, "opencl:", 7) == 0;
    unsigned long p = 0, d = 0;
    if (indexed && !parse_pair(backend + 7, &p, &d))
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "backend '%s': expected opencl:PLATFORM:DEVICE with two "
                           "non-negative indices", backend);
    if (indexed && !(device && *device)) {
        for (size_t i = 0; i < n; i++)
            if (devs[i].info.platform == p && devs[i].info.device == d) {
                *index = i;
                return ST_OK;
            }
        return st_diag_set(diag, ST_E_NOT_FOUND, "", 0, 0,
                           "backend '%s': no such OpenCL device; there are: %s", backend,
                           have);
    }
    if (!indexed && backend && strcmp(backend, "opencl") != 0)
        return st_diag_set(diag, ST_E_INVALID, "", 0, 0,
                           "backend '%s': expected opencl or opencl:PLATFORM:DEVICE", backend);
    if (device && *device) {
        char *end;
        errno = 0;
        unsigned long i = strtoul(device, &end, 10);
        if (isdigit((unsigned char)*device) && *end == '\0' && !errno) {
            if (i < n) {
                *index = i;
                return ST_OK;
            }
            return st_diag_set(diag, ST_E_NOT_FOUND, "", 0, 0,
                               "device '%s': there are %zu OpenCL device(s): %s", device, n,
                               have);
        }
        for (size_t k = 0; k < n; k++)
            if (contains_nocase(devs[k].info.name, device)) {
                *index = k;
                return ST_OK;
            }
        return st_diag_set(diag, ST_E_NOT_FOUND, "", 0, 0,
                           "device '%s': no OpenCL device's name contains it; there are: %s",
                           device, have);
    }
    /* The first GPU, else the first device of any kind. */
    for (size_t k = 0; k < n; k++)
        if (strcmp(devs[k].info.type, "gpu") == 0) {
            *index = k;
            return ST_OK;
        }
    *index = 0;
    return ST_OK;
}

st_status st_opencl_devices(st_device_info **out, size_t *n, st_diag *diag)
{
    st_cl_device *devs;
    *out = NULL;
    *n = 0;
    st_status s = st_cl_enumerate(&devs, n, diag);
    if (s != ST_OK)
        return s;
    st_device_info *info = malloc(*n * sizeof *info);
    if (!info) {
        free(devs);
        *n = 0;
        return st_diag_set(diag, ST_E_NOMEM, "", 0, 0, "OpenCL: out of memory");
    }
    for (size_t i = 0; i < *n; i++)
        info[i] = devs[i].info;
    free(devs);
    *out = info;
    return ST_OK;
}

bool st_opencl_built(void)
{
    return true;
}
