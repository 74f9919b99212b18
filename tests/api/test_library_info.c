/* What libstretch says about itself: version, ABI, status names. */
#include <criterion/criterion.h>
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
