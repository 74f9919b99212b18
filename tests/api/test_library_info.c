/* What libstretch says about itself: version, ABI, status names. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <stretch/stretch.h>

Test(library_info, version_and_abi)
{
    const char *v = st_version();
    cr_assert_not_null(v);
    unsigned major, minor, patch;
    cr_assert_eq(sscanf(v, "%u.%u.%u", &major, &minor, &patch), 3, "version '%s'", v);
    cr_assert_eq(st_abi_version(), ST_ABI_VERSION_NUMBER(ST_ABI_MAJOR, ST_ABI_MINOR));
    cr_assert_eq(st_abi_version() / 1000u, (unsigned)ST_ABI_MAJOR);
}

Test(library_info, every_status_has_a_name_and_a_text)
{
    for (int s = ST_OK; s >= ST_E_INTERNAL; s--) {
        const char *name = st_status_name((st_status)s);
        cr_assert(strncmp(name, "ST_", 3) == 0, "%d: %s", s, name);
        cr_assert_neq(strcmp(name, "ST_E_UNKNOWN"), 0, "status %d has no name", s);
        cr_assert_neq(strcmp(st_strerror((st_status)s), "unknown status"), 0, "status %d", s);
    }
    cr_assert_str_eq(st_status_name(ST_E_RANGE), "ST_E_RANGE");
    cr_assert_str_eq(st_status_name((st_status)-99), "ST_E_UNKNOWN");
}

Test(library_info, peak_rss_is_reported)
{
    cr_assert_gt(st_peak_rss_bytes(), 0u);
}

Test(library_info, cpu_summary_names_kernels_and_amx)
{
    const char *s = st_cpu_summary();
    cr_assert_not_null(s);
    cr_assert(strncmp(s, "kernels ", 8) == 0, "%s", s);
    cr_assert(strstr(s, "; amx: ") != NULL, "%s", s);
    cr_assert_eq(st_cpu_summary(), s); /* probed once */
}

/* The samplers' parameter names that the CLI, the server and the Python
 * binding share: a field once, a flag once, a sane range, and a name
 * without a flag only as a second name of a parameter that has one. */
Test(library_info, sampling_names_are_one_consistent_table)
{
    size_t n = 0;
    while (st_sampling_name_at(n))
        n++;
    cr_assert_geq(n, 7, "temperature, top_p, top_k, min_p and the three penalties");
    cr_assert_null(st_sampling_name_at(n + 1));
    for (size_t i = 0; i < n; i++) {
        const st_sampling_name *a = st_sampling_name_at(i);
        cr_assert(a->field && a->plugin && a->param, "entry %zu", i);
        cr_assert_lt(a->lo, a->hi, "%s", a->field);
        bool second_name_of = a->flag != NULL;
        for (size_t k = 0; k < n; k++) {
            const st_sampling_name *b = st_sampling_name_at(k);
            if (k == i)
                continue;
            cr_assert_neq(strcmp(a->field, b->field), 0, "'%s' twice", a->field);
            if (a->flag && b->flag)
                cr_assert_neq(strcmp(a->flag, b->flag), 0, "'%s' twice", a->flag);
            if (!a->flag && b->flag && !strcmp(a->plugin, b->plugin) &&
                !strcmp(a->param, b->param))
                second_name_of = true;
        }
        cr_assert(second_name_of, "'%s' has no flag and no other name", a->field);
    }
}
