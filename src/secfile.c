/* SPDX-License-Identifier: MIT */
#include "secfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "log.h"

#define WHO "state"

static void tighten(const char *path, mode_t want)
{
    struct stat st;
    if (lstat(path, &st) != 0 || S_ISLNK(st.st_mode) || (st.st_mode & 07777) == want)
        return;
    if (chmod(path, want) == 0)
        LOG_INFO(WHO, "%s was mode %04o: made %04o", path, (unsigned)(st.st_mode & 07777),
                 (unsigned)want);
    else
        LOG_WARN(WHO, "%s is mode %04o and cannot be made %04o: %s", path,
                 (unsigned)(st.st_mode & 07777), (unsigned)want, strerror(errno));
}

int secfile_private_dir(const char *dir)
{
    static const char *const files[] = {"queue.db", "queue.db-wal", "queue.db-shm"};
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? 0 : BL_EIO;
    if (!S_ISDIR(st.st_mode))
        return BL_EIO;
    tighten(dir, 0700);
    for (size_t i = 0; i < BL_ARRAY_LEN(files); i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        tighten(path, 0600);
    }
    return 0;
}

int secfile_check_private(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return BL_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return BL_EINVAL;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen,
                 "%s is accessible to other users (mode %04o); make it private: chmod 600 %s", path,
                 (unsigned)(st.st_mode & 07777), path);
        return BL_EINVAL;
    }
    return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int secfile_write_new(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.new", path) >= (int)sizeof(tmp))
        return BL_EINVAL;
    /* A leftover of a crash; a symlink here is removed, never followed. */
    if (unlink(tmp) != 0 && errno != ENOENT)
        return BL_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return BL_EIO;
    int rc = write_all(fd, data, len) || fchmod(fd, mode) || fsync(fd) ? BL_EIO : 0;
    if (close(fd) != 0)
        rc = BL_EIO;
    /* link() fails on an existing name, where rename() would replace it. */
    if (!rc && link(tmp, path) != 0)
        rc = errno == EEXIST ? BL_EINVAL : BL_EIO;
    int saved = errno;
    unlink(tmp);
    if (!rc) { /* the new name itself survives a crash */
        char *dir = g_path_get_dirname(path);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        g_free(dir);
    }
    errno = saved;
    return rc;
}
