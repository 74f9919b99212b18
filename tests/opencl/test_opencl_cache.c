/*
 * Program builds and the binary cache: a first build stores an entry, a
 * second context loads it; a truncated, a corrupted and a stale entry are
 * each detected and rebuilt; --no-kernel-cache writes nothing; a kernel
 * that does not compile is refused with its name and the build log.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl_fixture.h"

static const char SRC[] =
    "kernel void add_one(global float *x) { x[get_global_id(0)] += 1.0f; }\n";

/* Build SRC in a fresh context over `dir`, run it once (a binary that
 * loads must also work), and report how the context got it. */
static void build_and_run(const char *dir, unsigned *built, unsigned *cached)
{
    st_cl_ctx c;
    st_cl_test_open(&c, dir);
    cl_program p;
    st_diag d;
    cr_assert_eq(st_cl_program_build(&c, "add_one.cl", SRC, strlen(SRC), "-DUNUSED=1", &p, &d),
                 ST_OK, "%s", d.message);
    cl_int rc;
    cl_kernel k = clCreateKernel(p, "add_one", &rc);
    cr_assert_eq(rc, CL_SUCCESS);
    float x[5] = { 1, 2, 3, 4, 5 };
    cl_mem b = clCreateBuffer(c.ctx, CL_MEM_COPY_HOST_PTR, sizeof x, x, &rc);
    cr_assert_eq(rc, CL_SUCCESS);
    clSetKernelArg(k, 0, sizeof b, &b);
    size_t g = 5;
    cr_assert_eq(clEnqueueNDRangeKernel(c.queue, k, 1, NULL, &g, NULL, 0, NULL, NULL), CL_SUCCESS);
    cr_assert_eq(clEnqueueReadBuffer(c.queue, b, CL_TRUE, 0, sizeof x, x, 0, NULL, NULL),
                 CL_SUCCESS);
    for (int i = 0; i < 5; i++)
        cr_expect_float_eq(x[i], (float)(i + 2), 0.0f);
    clReleaseMemObject(b);
    clReleaseKernel(k);
    clReleaseProgram(p);
    *built = c.n_built;
    *cached = c.n_cached;
    st_cl_ctx_close(&c);
}

/* The one entry SRC made in `dir`. */
static void entry_path(const char *dir, char *out, size_t cap)
{
    st_cl_ctx c;
    st_cl_test_open(&c, NULL);
    char key[1024];
    st_cl_cache_key(&c.dev.info, "-DUNUSED=1", SRC, strlen(SRC), key, sizeof key);
    st_cl_cache_path(dir, key, out, cap);
    st_cl_ctx_close(&c);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

Test(opencl_cache, first_build_stores_second_loads)
{
    const char *dir = st_cl_test_cache_dir("store");
    unsigned built, cached;
    build_and_run(dir, &built, &cached);
    cr_expect_eq(built, 1);
    cr_expect_eq(cached, 0);
    char path[1100];
    entry_path(dir, path, sizeof path);
    cr_assert_gt(file_size(path), 32, "no cache entry at %s", path);
    build_and_run(dir, &built, &cached);
    cr_expect_eq(built, 0);
    cr_expect_eq(cached, 1);
    st_cl_test_cache_remove(dir);
}

/* Damage the entry with `how`, check the loader names it, and that the
 * next build rebuilds and leaves a sound entry. */
static void damaged(const char *tag, void (*how)(const char *path), const char *reason)
{
    const char *dir = st_cl_test_cache_dir(tag);
    unsigned built, cached;
    build_and_run(dir, &built, &cached);
    char path[1100];
    entry_path(dir, path, sizeof path);
    how(path);

    st_cl_ctx c;
    st_cl_test_open(&c, NULL);
    char key[1024];
    st_cl_cache_key(&c.dev.info, "-DUNUSED=1", SRC, strlen(SRC), key, sizeof key);
    st_cl_ctx_close(&c);
    unsigned char *bin = NULL;
    size_t len = 0;
    st_diag d;
    cr_expect_eq(st_cl_cache_load(dir, key, &bin, &len, &d), ST_E_FORMAT);
    cr_expect_null(bin);
    cr_expect(strstr(d.message, reason) && strstr(d.file, path), "%s: %s", d.file, d.message);

    build_and_run(dir, &built, &cached);
    cr_expect_eq(built, 1, "a damaged entry was trusted");
    cr_expect_eq(cached, 0);
    cr_expect_eq(st_cl_cache_load(dir, key, &bin, &len, &d), ST_OK, "%s", d.message);
    free(bin);
    st_cl_test_cache_remove(dir);
}

static void truncate_half(const char *path)
{
    cr_assert_eq(truncate(path, file_size(path) / 2), 0);
}

static void flip_last_byte(const char *path)
{
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    fseek(f, -1, SEEK_END);
    int ch = fgetc(f);
    fseek(f, -1, SEEK_END);
    fputc(ch ^ 0x5a, f);
    fclose(f);
}

/* An entry written for another key (another driver version, say) under
 * this entry's name. */
static void overwrite_with_other_key(const char *path)
{
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    const char *other = "platform=elsewhere\n";
    unsigned char payload[16] = "not a binary";
    st_diag d;
    cr_assert_eq(st_cl_cache_store(dir, other, payload, sizeof payload, &d), ST_OK);
    char other_path[1100];
    st_cl_cache_path(dir, other, other_path, sizeof other_path);
    cr_assert_eq(rename(other_path, path), 0);
}

static void garbage(const char *path)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    fputs("this is not a program binary at all, just text in the cache", f);
    fclose(f);
}

Test(opencl_cache, truncated_entry_is_rebuilt)
{
    damaged("trunc", truncate_half, "truncated");
}

Test(opencl_cache, corrupted_entry_is_rebuilt)
{
    damaged("corrupt", flip_last_byte, "corrupted");
}

Test(opencl_cache, stale_entry_is_rebuilt)
{
    damaged("stale", overwrite_with_other_key, "stale");
}

Test(opencl_cache, foreign_file_is_rebuilt)
{
    damaged("foreign", garbage, "not a stretch kernel cache entry");
}

Test(opencl_cache, no_kernel_cache_writes_nothing)
{
    const char *dir = st_cl_test_cache_dir("none");
    unsigned built, cached;
    build_and_run(NULL, &built, &cached);
    build_and_run(NULL, &built, &cached);
    cr_expect_eq(built, 1);
    cr_expect_eq(cached, 0);
    cr_expect_eq(file_size(dir), -1);
}

Test(opencl_cache, xdg_cache_home_names_the_directory)
{
    char out[1024];
    setenv("XDG_CACHE_HOME", "/tmp/xdg-test", 1);
    cr_assert(st_cl_cache_dir(NULL, out, sizeof out));
    cr_expect_str_eq(out, "/tmp/xdg-test/stretch/opencl");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/someone", 1);
    cr_assert(st_cl_cache_dir(NULL, out, sizeof out));
    cr_expect_str_eq(out, "/home/someone/.cache/stretch/opencl");
    cr_assert(st_cl_cache_dir("/given", out, sizeof out));
    cr_expect_str_eq(out, "/given");
}

Test(opencl_cache, build_failure_shows_kernel_name_and_log)
{
    st_cl_ctx c;
    st_cl_test_open(&c, NULL);
    static const char broken[] =
        "kernel void broken_kernel(global float *x) { x[0] = undeclared_thing + ; }\n";
    cl_program p = NULL;
    st_diag d;
    cr_assert_eq(st_cl_program_build(&c, "broken_test.cl", broken, strlen(broken), "", &p, &d),
                 ST_E_FORMAT);
    cr_expect_null(p);
    cr_expect(strstr(d.message, "'broken_test.cl' failed to build") &&
                  strstr(d.message, c.dev.info.name) && strstr(d.message, "error"),
              "%s", d.message);
    cr_expect_null(strchr(d.message, '\n'), "the log is folded onto one line");
    st_cl_ctx_close(&c);
}
