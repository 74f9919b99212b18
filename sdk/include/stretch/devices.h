/*
 * stretch/devices.h - the compute devices this build can run a model on:
 * every OpenCL platform and device the ICD loader finds (`stretch devices`).
 * Since ABI 1.3.
 *
 * A device is named in a strategy as `backend: opencl:PLATFORM:DEVICE`
 * (the indices below) or `backend: opencl` with `device:` (an index into
 * this list, or a substring of the device's name).
 */
#ifndef STRETCH_DEVICES_H
#define STRETCH_DEVICES_H

#include "stretch.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_DEVICE_TEXT_MAX 128

typedef struct st_device_info {
    uint32_t struct_size;          /* sizeof(st_device_info) */
    uint32_t index;                /* position in the whole list (`device: N`) */
    uint32_t platform, device;     /* `opencl:PLATFORM:DEVICE` */
    char platform_name[ST_DEVICE_TEXT_MAX];
    char name[ST_DEVICE_TEXT_MAX];
    char vendor[ST_DEVICE_TEXT_MAX];
    char driver_version[ST_DEVICE_TEXT_MAX];
    char opencl_version[ST_DEVICE_TEXT_MAX];   /* CL_DEVICE_VERSION */
    char type[16];                 /* "gpu", "cpu", "accelerator", "other" */
    uint32_t compute_units;
    uint64_t global_mem_bytes, local_mem_bytes, max_alloc_bytes;
    bool fp16;                     /* cl_khr_fp16 */
    bool subgroups;                /* cl_khr_subgroups or cl_intel_subgroups */
    bool integer_dot;              /* cl_khr_integer_dot_product */
} st_device_info;

/* Every device, platform by platform. *out is an array of *n entries, the
 * caller's: st_free() it. A build without the OpenCL backend, or a machine
 * with no OpenCL platform, answers ST_E_UNAVAILABLE with a message saying
 * how to get one. */
ST_API st_status st_devices_list(st_device_info **out, size_t *n, st_error *err);

#ifdef __cplusplus
}
#endif
#endif
