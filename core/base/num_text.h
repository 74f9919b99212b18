/*
 * core/num_text.h - numbers in messages as a person wrote them: a bound
 * given as 1e-06 in a plugin.yaml prints as 1e-06, not as the
 * 9.9999999999999995e-07 that %.17g gives, yet never loses a digit.
 */
#ifndef ST_CORE_NUM_TEXT_H
#define ST_CORE_NUM_TEXT_H

#include <stddef.h>

/* The shortest %g form of `v` that reads back as exactly `v` (at most 17
 * significant digits); "nan", "inf" as printf writes them. Returns buf. */
const char *st_num_text(double v, char *buf, size_t cap);

#endif
