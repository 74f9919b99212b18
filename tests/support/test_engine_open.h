/*
 * tests/support/test_engine_open.h - an engine opened through a manifest
 * a test writes to its scratch directory, which most engine tests start
 * from (each had its own fopen / fprintf / st_engine_open).
 */
#ifndef ST_TEST_ENGINE_OPEN_H
#define ST_TEST_ENGINE_OPEN_H

#include <stretch/stretch.h>

#include "test_dir.h"

/* Write the manifest `text` as dir/name and open an engine through it,
 * failing the test (with the engine's message) when it does not open. */
static inline st_engine *st_test_open_engine(const char *dir, const char *name, const char *text)
{
    st_test_write(dir, name, text);
    st_engine *e = NULL;
    st_error err = {0};
    cr_assert_eq(st_engine_open(st_test_path(dir, name), NULL, &e, &err), ST_OK, "%s: %s",
                 name, err.message);
    return e;
}

#endif
