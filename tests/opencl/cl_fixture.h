/*
 * tests/opencl/cl_fixture.h - a context on the first OpenCL device with
 * its program cache in a scratch directory, for the backend's tests.
 */
#ifndef ST_TEST_CL_FIXTURE_H
#define ST_TEST_CL_FIXTURE_H

#include "opencl_internal.h"


/* A scratch cache directory /tmp/st_cl_<tag>_<pid>, emptied. */
const char *st_cl_test_cache_dir(const char *tag);
void st_cl_test_cache_remove(const char *dir);

/* Open a context on device 0 with the cache in `cache_dir` (NULL: none). */
void st_cl_test_open(st_cl_ctx *c, const char *cache_dir);

#endif
