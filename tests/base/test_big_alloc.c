/* core/base/big_alloc.h: 2 MiB aligned zeroed buffers, advised for huge
 * pages unless STRETCH_NO_HUGEPAGES says otherwise. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "big_alloc.h"

#define MIB ((size_t)1 << 20)

static void check_buffer(size_t bytes)
{
    uint8_t *p = st_big_alloc(bytes);
    cr_assert_not_null(p, "%zu bytes", bytes);
#if defined(__linux__)
    cr_assert_eq((uintptr_t)p % (2 * MIB), 0, "%zu bytes at %p: not 2 MiB aligned", bytes, (void *)p);
#endif
    size_t n = bytes ? bytes : 1;
    for (size_t i = 0; i < n; i += 4096)
        cr_assert_eq(p[i], 0, "byte %zu of %zu not zero", i, n);
    cr_assert_eq(p[n - 1], 0);
    memset(p, 0xA5, n); /* every byte is writable */
    cr_assert_eq(p[n - 1], 0xA5);
    st_big_free(p, bytes);
}

Test(big_alloc, sizes_around_the_huge_page)
{
    size_t sizes[] = {0, 1, 4096, 2 * MIB - 1, 2 * MIB, 2 * MIB + 1, 5 * MIB + 123};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        check_buffer(sizes[i]);
}

Test(big_alloc, many_buffers_are_distinct)
{
    uint8_t *p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = st_big_alloc(MIB + (size_t)i);
        cr_assert_not_null(p[i]);
        memset(p[i], i + 1, MIB + (size_t)i);
    }
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(p[i][0], i + 1, "buffer %d was overwritten by another", i);
        cr_assert_eq(p[i][MIB + (size_t)i - 1], i + 1);
        st_big_free(p[i], MIB + (size_t)i);
    }
    st_big_free(NULL, 123); /* a no-op, as free(NULL) */
}

Test(big_alloc, the_environment_turns_the_advice_off)
{
    unsetenv("STRETCH_NO_HUGEPAGES");
    bool huge = st_big_alloc_huge();
#if defined(__linux__)
    cr_assert(huge, "Linux has MADV_HUGEPAGE: buffers should be advised by default");
#endif
    setenv("STRETCH_NO_HUGEPAGES", "1", 1);
    cr_assert_not(st_big_alloc_huge());
    check_buffer(3 * MIB); /* still a working buffer */
    setenv("STRETCH_NO_HUGEPAGES", "0", 1);
    cr_assert_eq(st_big_alloc_huge(), huge);
    unsetenv("STRETCH_NO_HUGEPAGES");
}
