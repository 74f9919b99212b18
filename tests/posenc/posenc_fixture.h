/*
 * tests/posenc/posenc_fixture.h - load a positional-encoding plugin's
 * shared object from the build tree, make instances and configure them on a
 * SmolLM2-135M-like shape, for the tests of this folder. Expected values in
 * the tests are computed here, in double precision, straight from the
 * formulas of METHODS.md, never with the plugins' code.
 */
#ifndef ST_TEST_POSENC_FIXTURE_H
#define ST_TEST_POSENC_FIXTURE_H

#include <math.h>
#include <string.h>

#include <criterion/criterion.h>

#include "test_host.h"

/* SmolLM2-135M: 64 rotary dims, base 100000, trained on 8192 tokens. */
static inline st_model_shape pe_shape(void)
{
    st_model_shape s = {.struct_size = sizeof s, .n_layers = 30, .n_heads = 9, .n_kv_heads = 3,
                        .head_dim = 64, .rope_dims = 64, .rope_base = 100000.0f,
                        .n_ctx_train = 8192, .n_ctx = 32768, .n_embd = 576, .n_vocab = 49152};
    return s;
}

static inline const st_plugin_entry *pe_entry(const char *name)
{
    char why[512] = "";
    const st_plugin_entry *e =
        st_test_load_plugin(ST_TEST_PLUGIN_DIR, "positional-encoding", name, why, sizeof why);
    cr_assert(e != NULL, "%s", why);
    cr_assert_eq(e->abi_major, ST_ABI_MAJOR);
    cr_assert_eq(e->kind, ST_KIND_POSENC);
    cr_assert_str_eq(e->name, name);
    return e;
}

static inline const st_posenc_ops *pe_ops(const st_plugin_entry *e)
{
    return (const st_posenc_ops *)e->ops;
}

/* An instance with `params` (NULL = defaults); fails the test on error. */
static inline void *pe_create(const st_plugin_entry *e, st_test_params *params)
{
    void *inst = NULL;
    st_error err = {0};
    st_status st = st_test_create(e, NULL, params, &inst, &err);
    cr_assert_eq(st, ST_OK, "create %s: %s", e->name, err.message);
    cr_assert_not_null(inst);
    return inst;
}

/* create must fail with `want` and say why. */
static inline void pe_create_fails(const st_plugin_entry *e, st_test_params *params,
                                   st_status want)
{
    void *inst = NULL;
    st_error err = {0};
    st_status st = st_test_create(e, NULL, params, &inst, &err);
    cr_assert_eq(st, want, "create %s returned %d, expected %d (%s)", e->name, (int)st, (int)want,
                 err.message);
    cr_assert_null(inst);
    cr_assert(err.message[0] != '\0', "no message");
}

/* configure on `shape`; fails the test on error. */
static inline st_posenc_desc pe_configure(const st_plugin_entry *e, void *inst,
                                          const st_model_shape *shape)
{
    st_posenc_desc d;
    memset(&d, 0xab, sizeof d);
    st_error err = {0};
    st_status st = pe_ops(e)->configure(inst, shape, &d, &err);
    cr_assert_eq(st, ST_OK, "configure %s: %s", e->name, err.message);
    cr_assert_eq(d.struct_size, sizeof d);
    return d;
}

/* Relative closeness of a float from the plugin to a double expectation:
 * the plugins round each double result to float once. */
static inline bool pe_close(float got, double want)
{
    if (want == 0.0)
        return got == 0.0f;
    return fabs((double)got - want) <= 2e-7 * fabs(want) + 1e-30;
}

/* A rotary table must equal `want` entry by entry. */
static inline void pe_assert_table(const st_posenc_desc *d, const double *want, uint32_t n,
                                   const char *what)
{
    cr_assert(d->flags & ST_POSENC_ROTARY, "%s: not rotary", what);
    cr_assert_eq(d->n_freq, n, "%s: n_freq %u, expected %u", what, d->n_freq, n);
    cr_assert_not_null(d->inv_freq, "%s: no table", what);
    for (uint32_t i = 0; i < n; i++)
        cr_assert(pe_close(d->inv_freq[i], want[i]), "%s: inv_freq[%u] = %.9g, expected %.9g",
                  what, i, (double)d->inv_freq[i], want[i]);
}

static inline void pe_assert_no_leak(void)
{
    cr_assert_eq(st_test_host_default()->live_allocs, 0, "the plugin kept %ld allocations",
                 st_test_host_default()->live_allocs);
}

#endif
