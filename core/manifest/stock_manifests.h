/*
 * core/stock_manifests.h - where `extends:` finds a stock strategy by name
 * ("extends: greedy" or "extends: stretch:greedy"), so that a manifest
 * written anywhere (an out-of-tree plugin's example) can build on the
 * shipped ones without knowing where they were installed.
 */
#ifndef ST_CORE_STOCK_MANIFESTS_H
#define ST_CORE_STOCK_MANIFESTS_H

#include <stddef.h>

/* The prefix that always means "a stock manifest by name". */
#define ST_STOCK_PREFIX "stretch:"

/* The directory of the shipped strategy manifests beside the code that
 * holds this function (<dir>/../share/stretch/manifests of the library or
 * executable; the build tree mirrors it), else the install prefix's; NULL
 * when none exists. Static storage. */
const char *st_stock_manifest_dir(void);

/* Find stock manifest `name` ("greedy" or "greedy.yaml"): each directory of
 * $STRETCH_MANIFEST_PATH (colon-separated) in order, then the stock
 * directory. Returns a malloc'd path, or NULL with `searched` (cap bytes)
 * listing where it looked. A name holding '/' is never searched. */
char *st_stock_manifest_find(const char *name, char *searched, size_t cap);

#endif
