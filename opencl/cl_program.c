/* Program builds: from the binary cache when it holds a sound entry for
 * this device, driver, option set and source, else from source (and the
 * binary stored for next time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cl_sources.h"
#include "opencl_internal.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

const st_cl_source *st_cl_source_find(const char *name)
{
    for (unsigned i = 0; i < st_cl_n_sources; i++)
        if (strcmp(st_cl_sources[i].name, name) == 0)
            return &st_cl_sources[i];
    return NULL;
}

/* The build log, squeezed onto one line and cut to fit a message. */
static void build_log(st_cl_ctx *c, cl_program p, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    if (clGetProgramBuildInfo(p, c->dev.id, CL_PROGRAM_BUILD_LOG, 0, NULL, &n) != CL_SUCCESS ||
        !n)
        return;
    char *log = malloc(n + 1);
    if (!log)
        return;
    if (clGetProgramBuildInfo(p, c->dev.id, CL_PROGRAM_BUILD_LOG, n, log, NULL) == CL_SUCCESS) {
        log[n] = '\0';
        size_t o = 0;
        bool space = false;
        for (char *s = log; *s && o + 1 < cap; s++) {
            bool ws = *s == '\n' || *s == '\r' || *s == '\t' || *s == ' ';
            if (ws) {
                space = o > 0;
                continue;
            }
            if (space && o + 2 < cap)
                out[o++] = ' ';
            space = false;
            out[o++] = *s;
        }
        out[o] = '\0';
    }
    free(log);
}

static st_status from_binary(st_cl_ctx *c, const char *key, cl_program *out)
{
    unsigned char *bin;
    size_t len;
    st_diag ignored;
    if (st_cl_cache_load(c->cache_dir, key, &bin, &len, &ignored) != ST_OK)
        return ST_E_NOT_FOUND;
    cl_int rc, bin_rc;
    const unsigned char *bp = bin;
    cl_program p = clCreateProgramWithBinary(c->ctx, 1, &c->dev.id, &len, &bp, &bin_rc, &rc);
    free(bin);
    if (rc != CL_SUCCESS || bin_rc != CL_SUCCESS) {
        if (p)
            clReleaseProgram(p);
        return ST_E_FORMAT;   /* the driver refused it: rebuild */
    }
    if (clBuildProgram(p, 1, &c->dev.id, NULL, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(p);
        return ST_E_FORMAT;
    }
    *out = p;
    return ST_OK;
}

static void store_binary(st_cl_ctx *c, const char *key, cl_program p)
{
    size_t len = 0;
    if (clGetProgramInfo(p, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) != CL_SUCCESS ||
        !len)
        return;
    unsigned char *bin = malloc(len);
    if (!bin)
        return;
    unsigned char *bins[1] = { bin };
    st_diag ignored;
    /* A cache that cannot be written costs the next run a build, nothing
     * more. */
    if (clGetProgramInfo(p, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS)
        st_cl_cache_store(c->cache_dir, key, bin, len, &ignored);
    free(bin);
}

st_status st_cl_program_build(st_cl_ctx *c, const char *name, const char *source, size_t len,
                              const char *options, cl_program *out, st_diag *diag)
{
    *out = NULL;
    double t0 = now_ms();
    char key[1024];
    st_cl_cache_key(&c->dev.info, options, source, len, key, sizeof key);
    if (!c->no_cache && from_binary(c, key, out) == ST_OK) {
        c->n_cached++;
        c->compile_ms += now_ms() - t0;
        return ST_OK;
    }
    cl_int rc;
    cl_program p = clCreateProgramWithSource(c->ctx, 1, &source, &len, &rc);
    if (rc != CL_SUCCESS)
        return st_diag_set(diag, ST_E_UNAVAILABLE, "", 0, 0,
                           "OpenCL kernel '%s': cannot create the program (%s, %d)", name,
                           st_cl_status_name(rc), rc);
    rc = clBuildProgram(p, 1, &c->dev.id, options, NULL, NULL);
    if (rc != CL_SUCCESS) {
        char log[700];
        build_log(c, p, log, sizeof log);
        clReleaseProgram(p);
        return st_diag_set(diag, ST_E_FORMAT, "", 0, 0,
                           "OpenCL kernel '%s' failed to build for '%s' (%s): %s", name,
                           c->dev.info.name, st_cl_status_name(rc),
                           log[0] ? log : "the driver gave no build log");
    }
    if (!c->no_cache)
        store_binary(c, key, p);
    c->n_built++;
    c->compile_ms += now_ms() - t0;
    *out = p;
    return ST_OK;
}

st_status st_cl_program_embedded(st_cl_ctx *c, const char *name, const char *options,
                                 cl_program *out, st_diag *diag)
{
    const st_cl_source *src = st_cl_source_find(name);
    if (!src) {
        *out = NULL;
        return st_diag_set(diag, ST_E_INTERNAL, "", 0, 0,
                           "OpenCL kernel source '%s' is not embedded in this build", name);
    }
    return st_cl_program_build(c, name, src->text, src->len, options, out, diag);
}
