/*
 * core/base/num_text.c - shortest round-trip text of a double.
 */
#include "num_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

const char *st_num_text(double v, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    /* Non-finite values have one spelling; finite ones try 1..17 digits,
     * and 17 always reads back (IEEE double). */
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, cap, "%.*g", digits, v);
        if (!isfinite(v) || strtod(buf, NULL) == v)
            break;
    }
    return buf;
}
