/*
 * core/paths.c - path helpers (see paths.h).
 */
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char st_exe_dir_buf[PATH_MAX];
static bool st_exe_dir_ok;
static pthread_once_t st_exe_dir_once = PTHREAD_ONCE_INIT;

static void st_exe_dir_init(void)
{
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0 || (size_t)n >= sizeof buf - 1)
        return;
    buf[n] = '\0';
    char *slash = strrchr(buf, '/');
    if (!slash)
        return;
    if (slash == buf)
        slash[1] = '\0';
    else
        *slash = '\0';
    memcpy(st_exe_dir_buf, buf, strlen(buf) + 1);
    st_exe_dir_ok = true;
}

const char *st_exe_dir(void)
{
    pthread_once(&st_exe_dir_once, st_exe_dir_init);
    return st_exe_dir_ok ? st_exe_dir_buf : NULL;
}

char *st_path_canonical(const char *path)
{
    return path ? realpath(path, NULL) : NULL;
}

bool st_path_is_inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (strncmp(path, dir, n) != 0)
        return false;
    /* "/a/bc" is not inside "/a/b"; "/" contains everything. */
    return path[n] == '\0' || path[n] == '/' || (n == 1 && dir[0] == '/');
}

char *st_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    bool slash = la > 0 && a[la - 1] != '/';
    char *out = malloc(la + slash + lb + 1);
    if (!out)
        return NULL;
    memcpy(out, a, la);
    if (slash)
        out[la] = '/';
    memcpy(out + la + slash, b, lb + 1);
    return out;
}

char *st_path_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    if (slash == path)
        return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

bool st_path_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool st_path_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *st_file_type_name(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

int st_path_open_regular(const char *path, const char **not_regular)
{
    *not_regular = NULL;
    struct stat sb;
    /* stat first so a device is never opened at all; fstat again below
     * because the path may be swapped in between. */
    if (stat(path, &sb) != 0)
        return -1;
    if (!S_ISREG(sb.st_mode)) {
        *not_regular = st_file_type_name(sb.st_mode);
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        int e = errno;
        if (!S_ISREG(sb.st_mode))
            *not_regular = st_file_type_name(sb.st_mode);
        close(fd);
        errno = e;
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}
