/*
 * The kernel services a plugin gets on the OpenCL backend (through
 * host_services' st_host_kernels): compile, launch with buffers and
 * scalars, release; and their refusals: a source that does not compile
 * (the build log), a kernel name the source lacks, an argument that does
 * not fit, a launch the driver refuses (enqueue failure), each a status and
 * a message, never a crash.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cl_fixture.h"

static st_backend *be;
static const st_host_kernels *hk;

static void open_backend(void)
{
    st_opencl_options o = { .backend = "opencl", .no_kernel_cache = true };
    st_diag d;
    cr_assert_eq(st_opencl_backend_open(&o, NULL, &be, &d), ST_OK, "%s", d.message);
    hk = st_opencl_host_kernels();
    cr_assert_not_null(hk);
}

static void close_backend(void)
{
    st_backend_free(be);
}

TestSuite(opencl_plugin_kernels, .init = open_backend, .fini = close_backend);

static const char SAXPY[] =
    "kernel void saxpy(global float *y, global const float *x, float a, uint n)\n"
    "{ uint i = get_global_id(0); if (i < n) y[i] = a * x[i] + y[i]; }\n";

Test(opencl_plugin_kernels, compile_launch_release)
{
    st_kernel *k = NULL;
    st_error err = {0};
    cr_assert_eq(hk->compile(be, "saxpy", SAXPY, NULL, &k, &err), ST_OK, "%s", err.message);
    enum { N = 37 };
    float y[N], x[N];
    for (int i = 0; i < N; i++) {
        y[i] = (float)i;
        x[i] = 2.0f * (float)i;
    }
    float a = 0.5f;
    uint32_t n = N;
    st_kernel_arg args[4] = { { y, sizeof y, true, true }, { x, sizeof x, true, false },
                              { &a, sizeof a, false, false }, { &n, sizeof n, false, false } };
    size_t global = 64;   /* more work-items than elements: the kernel checks */
    cr_assert_eq(hk->launch(be, k, args, 4, &global, NULL, 1, &err), ST_OK, "%s", err.message);
    for (int i = 0; i < N; i++)
        cr_expect_float_eq(y[i], 2.0f * (float)i, 0.0f, "y[%d]", i);
    /* The read-only argument came back untouched. */
    cr_expect_float_eq(x[5], 10.0f, 0.0f);
    hk->release(be, k);
}

Test(opencl_plugin_kernels, refusals_name_what_went_wrong)
{
    st_kernel *k = NULL;
    st_error err = {0};
    cr_expect_eq(hk->compile(be, "broken", "kernel void broken(global float *x) { x[0] = ; }",
                             "", &k, &err), ST_E_FORMAT);
    cr_expect_null(k);
    cr_expect(strstr(err.message, "'broken' failed to build") && strstr(err.message, "error"),
              "%s", err.message);
    cr_expect_eq(hk->compile(be, "not_there", SAXPY, "", &k, &err), ST_E_NOT_FOUND);
    cr_expect(strstr(err.message, "no kernel named 'not_there'"), "%s", err.message);

    cr_assert_eq(hk->compile(be, "saxpy", SAXPY, "", &k, &err), ST_OK, "%s", err.message);
    float y[4] = {0}, x[4] = {0};
    double wrong = 1.0;
    uint32_t n = 4;
    st_kernel_arg bad_size[4] = { { y, sizeof y, true, true }, { x, sizeof x, true, false },
                                  { &wrong, sizeof wrong, false, false },
                                  { &n, sizeof n, false, false } };
    size_t global = 4;
    cr_expect_eq(hk->launch(be, k, bad_size, 4, &global, NULL, 1, &err), ST_E_INVALID);
    cr_expect(strstr(err.message, "argument 2 does not fit"), "%s", err.message);
    /* Two arguments of four: the driver refuses the enqueue. */
    float a = 1.0f;
    st_kernel_arg too_few[2] = { { y, sizeof y, true, true }, { &a, sizeof a, false, false } };
    cr_expect_neq(hk->launch(be, k, too_few, 2, &global, NULL, 1, &err), ST_OK);
    cr_expect(strstr(err.message, "kernel_launch 'saxpy'"), "%s", err.message);
    /* A local size that does not divide the global one. */
    st_kernel_arg ok[4] = { { y, sizeof y, true, true }, { x, sizeof x, true, false },
                            { &a, sizeof a, false, false }, { &n, sizeof n, false, false } };
    size_t local = 3;
    cr_expect_eq(hk->launch(be, k, ok, 4, &global, &local, 1, &err), ST_E_INVALID);
    cr_expect(strstr(err.message, "enqueue failed"), "%s", err.message);
    hk->release(be, k);
}

/* A kernel the plugin never releases goes with the backend (the
 * sanitizer build would report it otherwise). */
Test(opencl_plugin_kernels, forgotten_kernels_are_released_with_the_backend)
{
    st_kernel *k = NULL;
    st_error err = {0};
    cr_assert_eq(hk->compile(be, "saxpy", SAXPY, "", &k, &err), ST_OK, "%s", err.message);
    cr_assert_not_null(k);
}
