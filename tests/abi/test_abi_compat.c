/*
 * ABI compatibility: a plugin built against the ABI 1.1 headers, and the
 * same 1.1 source built with today's SDK in source-compatibility mode,
 * still load, get their parameters (as the msgpack map they expect),
 * pass the conformance suite and sample correctly (tests/abi/README.md).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conformance.h"
#include "manifest.h"
#include "registry.h"
#include "test_host.h"

static st_library *open_fixture(const char *name, st_plugin_manifest **m)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/sampler/%s/plugin.yaml", ST_ABI_FIX_DIR, name);
    st_diag d = {0};
    char buf[2048];
    cr_assert_eq(st_plugin_manifest_load(path, m, &d), ST_OK, "%s",
                 st_diag_format(&d, buf, sizeof buf));
    st_library *lib = NULL;
    st_refusal why = ST_REFUSE_NONE;
    cr_assert_eq(st_library_open(*m, &lib, &why, &d), ST_OK, "%s",
                 st_diag_format(&d, buf, sizeof buf));
    return lib;
}

/* {margin: <margin>} as the strategy manifest's parser would give it. */
static st_value *margin_param(double margin)
{
    st_value *map = calloc(1, sizeof *map), *v = calloc(1, sizeof *v);
    cr_assert(map && v);
    map->type = ST_VALUE_MAP;
    map->entries = calloc(1, sizeof *map->entries);
    cr_assert_not_null(map->entries);
    v->type = ST_VALUE_FLOAT;
    v->f = margin;
    v->s = strdup("margin");
    map->entries[0].key = strdup("margin");
    map->entries[0].value = v;
    map->n = 1;
    return map;
}

/* Index the plugin picks among ids {5, 3, 9} with logits {2, 1, 2}. */
static int64_t pick(st_library *lib, double margin)
{
    st_value *params = margin_param(margin);
    st_instance *in = NULL;
    st_diag d = {0};
    cr_assert_eq(st_instance_create(lib, st_test_host_services(), params, &in, &d), ST_OK,
                 "%s", d.message);
    st_value_free(params);
    st_candidate data[3] = {{5, 2.0f, 0}, {3, 1.0f, 0}, {9, 2.0f, 0}};
    st_candidates c = {data, 3, false, -1};
    st_error err = {0};
    const st_sampler_ops *ops = in->ops;
    cr_assert_eq(ops->apply(in->inst, &c, &err), ST_OK, "%s", err.message);
    st_instance_destroy(in);
    return c.selected;
}

static void check_fixture(const char *name)
{
    st_plugin_manifest *m = NULL;
    st_library *lib = open_fixture(name, &m);
    cr_assert_eq(lib->entry->abi_major, 1);
    cr_assert_eq(lib->entry->abi_minor, 1, "%s declares ABI 1.%u", name, lib->entry->abi_minor);
    /* The margin reaches the plugin: 0 keeps ids 5 and 9 (pick 5), 1.5
     * lets id 3 in (pick 3). */
    cr_assert_eq(pick(lib, 0.0), 0);
    cr_assert_eq(pick(lib, 1.5), 1);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    st_diag d = {0};
    cr_assert_eq(st_params_validate(m, NULL, &sb, &d), ST_OK, "%s", d.message);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    cr_assert_eq(msgpack_unpack_next(&u, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    static st_conformance_report rep;
    st_status st = st_conformance_run(lib->entry, st_test_host_services(), &u.data, &rep);
    for (size_t i = 0; i < rep.n_checks; i++)
        cr_expect(rep.checks[i].passed, "%s: %s: %s", name, rep.checks[i].name,
                  rep.checks[i].message);
    cr_assert_eq(st, ST_OK);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    st_library_close(lib);
    st_plugin_manifest_free(m);
}

Test(abi_compat, binary_built_against_1_1_headers)
{
    check_fixture("legacy-sampler-1-1");
}

Test(abi_compat, source_written_for_1_1_builds_with_todays_sdk)
{
    check_fixture("legacy-sampler-src");
}
