/*
 * tools/maskbench/compile_all.h - declared coverage of a folder of schema
 * subsets with one token trie (st-maskbench --compile-only).
 */
#ifndef ST_MB_COMPILE_ALL_H
#define ST_MB_COMPILE_ALL_H

#include <stdio.h>

#include "cg_constraint.h"

/* Every DATA_DIR/SUBSET/NAME.json (all subset folders, or only `subset`;
 * files sorted by name, the first `limit`, all when limit < 0) compiled as
 * the json-schema sampler compiles it; one points line per schema to
 * `out`, after a header line. 0 on success. */
int mb_compile_all(const cg_vocab *v, const char *data_dir, const char *subset, long limit,
                   FILE *out);

/* The whole file at `path`, NUL-terminated, its length in *len; NULL when
 * it cannot be read. The caller frees it. */
char *mb_read_file(const char *path, size_t *len);

#endif
