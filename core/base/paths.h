/*
 * core/paths.h - small path helpers the registry and loader share: the
 * executable's directory, canonical paths and "is this inside that dir".
 * Every returned string is malloc'd and owned by the caller unless noted.
 */
#ifndef ST_CORE_PATHS_H
#define ST_CORE_PATHS_H

#include <stdbool.h>
#include <stddef.h>

/* Directory holding the running executable (from /proc/self/exe), or NULL
 * when it cannot be read. Static storage: do not free. */
const char *st_exe_dir(void);

/* realpath(3) into a malloc'd string; NULL with errno set on failure. */
char *st_path_canonical(const char *path);

/* True when canonical path `path` is `dir` itself or lies beneath it. Both
 * must already be canonical (absolute, no "..", no symlinks). */
bool st_path_is_inside(const char *path, const char *dir);

/* "a/b" (no doubled slash); NULL on allocation failure. */
char *st_path_join(const char *a, const char *b);

/* The directory part of `path` ("." when it has none). */
char *st_path_dirname(const char *path);

bool st_path_is_dir(const char *path);
bool st_path_is_file(const char *path);

/* Open `path` for reading only if it is a regular file: a FIFO, device,
 * socket or directory is refused without waiting on it (an open() of a
 * FIFO would block until a writer came). Returns the descriptor (close-on-
 * exec, blocking reads); -1 on failure, with *not_regular set to what the
 * path is instead ("a FIFO (named pipe)", ...) or NULL and errno set. */
int st_path_open_regular(const char *path, const char **not_regular);

#endif
