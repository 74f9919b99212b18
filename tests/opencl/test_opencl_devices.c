/*
 * Devices: the ICD loader's enumeration, the selectors a strategy and the
 * CLI use (`opencl`, `opencl:P:D`, `device:` index or name), and the
 * refusals for no platform and a selector that matches nothing.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stretch/devices.h>

#include "cl_fixture.h"

static st_cl_device *devs;
static size_t n_devs;

static void enumerate(void)
{
    st_diag d;
    cr_assert_eq(st_cl_enumerate(&devs, &n_devs, &d), ST_OK, "%s", d.message);
    cr_assert_gt(n_devs, 0);
}

static void release(void)
{
    free(devs);
}

TestSuite(opencl_devices, .init = enumerate, .fini = release);

Test(opencl_devices, every_device_is_described)
{
    for (size_t i = 0; i < n_devs; i++) {
        const st_device_info *in = &devs[i].info;
        cr_expect_eq(in->index, i);
        cr_expect_neq(in->name[0], '\0');
        cr_expect_neq(in->driver_version[0], '\0');
        cr_expect_eq(strncmp(in->opencl_version, "OpenCL ", 7), 0, "%s", in->opencl_version);
        cr_expect_gt(in->compute_units, 0);
        cr_expect_gt(in->global_mem_bytes, 0);
    }
    /* The public list says the same. */
    st_device_info *pub;
    size_t n;
    st_error err = {0};
    cr_assert_eq(st_devices_list(&pub, &n, &err), ST_OK, "%s", err.message);
    cr_assert_eq(n, n_devs);
    cr_expect_str_eq(pub[0].name, devs[0].info.name);
    cr_expect_eq(pub[0].struct_size, sizeof pub[0]);
    st_free(pub);
}

Test(opencl_devices, selectors_choose)
{
    size_t i = 99;
    st_diag d;
    cr_assert_eq(st_cl_select(devs, n_devs, "opencl", NULL, &i, &d), ST_OK, "%s", d.message);
    cr_expect_lt(i, n_devs);
    char sel[64];
    const st_device_info *last = &devs[n_devs - 1].info;
    snprintf(sel, sizeof sel, "opencl:%u:%u", last->platform, last->device);
    cr_assert_eq(st_cl_select(devs, n_devs, sel, NULL, &i, &d), ST_OK, "%s", d.message);
    cr_expect_eq(i, n_devs - 1);
    snprintf(sel, sizeof sel, "%zu", n_devs - 1);
    cr_assert_eq(st_cl_select(devs, n_devs, "opencl", sel, &i, &d), ST_OK, "%s", d.message);
    cr_expect_eq(i, n_devs - 1);
    /* A name substring, in another case: the device: key wins over the
     * indices of opencl:P:D. */
    char part[8] = {0};
    for (size_t k = 0; k < 4 && last->name[k]; k++)
        part[k] = (char)((last->name[k] >= 'a' && last->name[k] <= 'z') ? last->name[k] - 32
                                                                          : last->name[k]);
    cr_assert_eq(st_cl_select(devs, n_devs, "opencl:0:0", part, &i, &d), ST_OK, "%s",
                 d.message);
    cr_expect(strcasestr(devs[i].info.name, part), "'%s' chose '%s'", part, devs[i].info.name);
}

Test(opencl_devices, bad_selectors_are_refused_with_the_devices_there_are)
{
    size_t i;
    st_diag d;
    cr_assert_eq(st_cl_select(devs, n_devs, "opencl:7:9", NULL, &i, &d), ST_E_NOT_FOUND);
    cr_expect(strstr(d.message, "opencl:7:9") && strstr(d.message, devs[0].info.name), "%s",
              d.message);
    cr_assert_eq(st_cl_select(devs, n_devs, "opencl:x:0", NULL, &i, &d), ST_E_INVALID);
    cr_expect(strstr(d.message, "opencl:PLATFORM:DEVICE"), "%s", d.message);
    cr_assert_eq(st_cl_select(devs, n_devs, "opencl", "4096", &i, &d), ST_E_NOT_FOUND);
    cr_expect(strstr(d.message, "device '4096'"), "%s", d.message);
    cr_assert_eq(st_cl_select(devs, n_devs, "opencl", "no-such-gpu-xyz", &i, &d),
                 ST_E_NOT_FOUND);
    cr_expect(strstr(d.message, "no-such-gpu-xyz") && strstr(d.message, devs[0].info.name),
              "%s", d.message);
}

/* An empty vendors directory: the ICD loader finds no driver. Criterion
 * runs each test in a fresh child, so the loader reads the variable anew. */
Test(opencl_devices_none, no_platform_is_a_clear_error, .init = NULL)
{
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/st_cl_novendors_%ld", (long)getpid());
    mkdir(dir, 0755);
    setenv("OCL_ICD_VENDORS", dir, 1);
    st_cl_device *none = NULL;
    size_t n = 7;
    st_diag d;
    st_status s = st_cl_enumerate(&none, &n, &d);
    rmdir(dir);
    cr_assert_eq(s, ST_E_UNAVAILABLE);
    cr_expect_eq(n, 0);
    cr_expect_null(none);
    cr_expect(strstr(d.message, "no OpenCL platform found") && strstr(d.message, "pocl"), "%s",
              d.message);
    st_device_info *pub = NULL;
    st_error err = {0};
    cr_expect_eq(st_devices_list(&pub, &n, &err), ST_E_UNAVAILABLE);
    cr_expect(strstr(err.message, "no OpenCL platform found"), "%s", err.message);
}

/* `stretch devices`: the list as text and JSON, and the refusal with no
 * platform (exit 5, the reason on stderr). */
static int run_cli(const char *args, const char *env, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s/bin/stretch %s 2>&1", env ? env : "", ST_TEST_BINARY_DIR,
             args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

Test(opencl_devices, the_cli_lists_them)
{
    static char out[65536];
    cr_assert_eq(run_cli("devices", NULL, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, devs[0].info.name) && strstr(out, "opencl:0:0"), "%s", out);
    cr_assert_eq(run_cli("devices --json", NULL, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "\"devices\"") && strstr(out, "\"global_mem_bytes\"") &&
                  strstr(out, "\"backend\": \"opencl:0:0\""), "%s", out);
    cr_expect_eq(run_cli("devices --bogus", NULL, out, sizeof out), 1, "%s", out);
}

Test(opencl_devices, the_cli_says_when_there_is_no_platform)
{
    static char out[8192];
    char env[160];
    snprintf(env, sizeof env, "mkdir -p /tmp/st_cl_nov_%ld && OCL_ICD_VENDORS=/tmp/st_cl_nov_%ld",
             (long)getpid(), (long)getpid());
    cr_expect_eq(run_cli("devices", env, out, sizeof out), 5, "%s", out);
    cr_expect(strstr(out, "stretch devices: no OpenCL platform found"), "%s", out);
    snprintf(env, sizeof env, "rmdir /tmp/st_cl_nov_%ld", (long)getpid());
    cr_expect_eq(system(env), 0);
}
