/* Reading and writing structs whose size the caller's headers decide. */
#include "abi_sizes.h"

#include <string.h>

bool st_sized_read(void *full, size_t full_size, const void *caller, uint32_t given,
                   size_t min)
{
    memset(full, 0, full_size);
    if (given < min)
        return false;
    memcpy(full, caller, given < full_size ? given : full_size);
    return true;
}

void st_sized_write(void *caller, const void *full, size_t full_size, size_t min_1_0)
{
    uint32_t given;
    memcpy(&given, caller, sizeof given); /* every such struct starts with struct_size */
    size_t n = given ? given : min_1_0;
    if (n > full_size)
        n = full_size;
    if (n < sizeof given)
        return;
    memcpy(caller, full, n);
    given = (uint32_t)n;
    memcpy(caller, &given, sizeof given);
}
