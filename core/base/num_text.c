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
    /* At least as many digits as the integer part has, so 100 prints as
     * 100 and not 1e+02 (%g turns to exponents when they exceed the
     * precision); 1e-06 keeps its exponent. */
    int whole = isfinite(v) && fabs(v) >= 1.0 ? (int)floor(log10(fabs(v))) + 1 : 1;
    for (int digits = 1; digits <= 17; digits++) {
        int precision = digits > whole ? digits : whole > 17 ? 17 : whole;
        snprintf(buf, cap, "%.*g", precision, v);
        if (!isfinite(v) || strtod(buf, NULL) == v)
            break;
    }
    return buf;
}
