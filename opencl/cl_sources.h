/*
 * opencl/cl_sources.h - the kernel sources embedded at build time
 * (every .cl file of opencl/kernels, by embed_kernels.cmake).
 */
#ifndef ST_OPENCL_CL_SOURCES_H
#define ST_OPENCL_CL_SOURCES_H

#include <stddef.h>

typedef struct st_cl_source {
    const char *name;      /* the file name, "matmul.cl" */
    const char *text;      /* NUL-terminated */
    size_t len;
} st_cl_source;

extern const st_cl_source st_cl_sources[];
extern const unsigned st_cl_n_sources;

/* The embedded source called `name`, or NULL. */
const st_cl_source *st_cl_source_find(const char *name);

#endif
