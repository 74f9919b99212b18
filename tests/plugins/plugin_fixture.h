/*
 * tests/plugins/plugin_fixture.h - load a built-in plugin's shared object
 * and make instances of it, for the behavioural tests in this folder.
 */
#ifndef ST_TEST_PLUGIN_FIXTURE_H
#define ST_TEST_PLUGIN_FIXTURE_H

#include <criterion/criterion.h>

#include "test_host.h"

static inline const st_plugin_entry *fx_entry(const char *kind, const char *name)
{
    char why[512] = "";
    const st_plugin_entry *e = st_test_load_plugin(ST_TEST_PLUGIN_DIR, kind, name, why, sizeof why);
    cr_assert(e != NULL, "%s", why);
    cr_assert_eq(e->abi_major, ST_ABI_MAJOR);
    cr_assert_str_eq(e->name, name);
    return e;
}

/* An instance with `params` (NULL = defaults); fails the test on error. */
static inline void *fx_create(const st_plugin_entry *e, st_test_params *params)
{
    void *inst = NULL;
    st_error err = {0};
    st_status st = st_test_create(e, NULL, params, &inst, &err);
    cr_assert_eq(st, ST_OK, "create %s: %s", e->name, err.message);
    cr_assert_not_null(inst);
    return inst;
}

/* create must fail with `want`; returns the message. */
static inline void fx_create_fails(const st_plugin_entry *e, st_test_params *params,
                                   st_status want)
{
    void *inst = NULL;
    st_error err = {0};
    st_status st = st_test_create(e, NULL, params, &inst, &err);
    cr_assert_eq(st, want, "create %s returned %d, expected %d (%s)", e->name, (int)st,
                 (int)want, err.message);
    cr_assert_null(inst);
    cr_assert(err.message[0] != '\0', "no message");
}

#endif
