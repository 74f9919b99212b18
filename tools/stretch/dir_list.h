/* Sorted directory listings for the commands that walk a benchmark's
 * folders (`stretch eval jsonschema`, st-maskbench). */
#ifndef ST_CLI_DIR_LIST_H
#define ST_CLI_DIR_LIST_H

#include <stddef.h>

/* Names in `dir`, sorted, without hidden ones: regular files ending in
 * `suffix`, or sub-folders when suffix is NULL. NULL with *n = 0 when the
 * folder cannot be read or holds none; on running out of memory the names
 * listed so far. */
char **st_cli_dir_list(const char *dir, const char *suffix, size_t *n);

void st_cli_dir_list_free(char **names, size_t n);

#endif
