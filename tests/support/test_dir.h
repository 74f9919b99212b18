/*
 * tests/support/test_dir.h - a test's scratch directory: the path of a
 * file in it and text written there, which every test that writes
 * manifests, indexes or inputs needs (each had its own copy).
 */
#ifndef ST_TEST_DIR_H
#define ST_TEST_DIR_H

#include <criterion/criterion.h>
#include <stdio.h>

/* dir/name, in one of four buffers used in turn, so that one call may
 * take several paths. */
static inline const char *st_test_path(const char *dir, const char *name)
{
    static char buf[4][512];
    static unsigned at;
    char *p = buf[at++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

/* Write `text` to dir/name, failing the test when it cannot. */
static inline void st_test_write(const char *dir, const char *name, const char *text)
{
    const char *path = st_test_path(dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s: cannot be opened for writing", path);
    int put = fputs(text, f);
    int closed = fclose(f);
    cr_assert(put >= 0 && closed == 0, "%s: cannot be written", path);
}

#endif
