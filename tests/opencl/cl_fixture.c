#include "cl_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *st_cl_test_cache_dir(const char *tag)
{
    static char dir[256];
    snprintf(dir, sizeof dir, "/tmp/st_cl_%s_%ld", tag, (long)getpid());
    st_cl_test_cache_remove(dir);
    return dir;
}

void st_cl_test_cache_remove(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

void st_cl_test_open(st_cl_ctx *c, const char *cache_dir)
{
    st_cl_device *devs;
    size_t n;
    st_diag d;
    cr_assert_eq(st_cl_enumerate(&devs, &n, &d), ST_OK, "%s", d.message);
    st_status s = st_cl_ctx_open(c, &devs[0], cache_dir == NULL, cache_dir, &d);
    free(devs);
    cr_assert_eq(s, ST_OK, "%s", d.message);
}
