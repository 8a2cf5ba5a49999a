/* SPDX-License-Identifier: MIT */
/* secfile.h - the files that hold this site's secrets: the state directory (key.pem,
 * queue.db with what waits for peers) and the network secret's file.
 *
 * Modes are put right at every start, not only at creation: a directory restored from a
 * backup or made by hand keeps whatever it was given. A key file is never written over:
 * it is written under a temporary name created with O_EXCL | O_NOFOLLOW (no symlink
 * planted there is followed) and linked into place, which fails if the name exists. */
#ifndef BL_SECFILE_H
#define BL_SECFILE_H

#include <sys/types.h>

#include "common.h"

/* Make dir mode 0700 and the database files brokerless keeps in it (queue.db and its
 * -wal and -shm) 0600, where they exist. Each change is logged; one that cannot be made
 * (not our file) is logged as a warning. BL_EIO only when dir cannot be read. */
int secfile_private_dir(const char *dir);
/* 0 when path is a regular file that neither group nor others may read or write, else
 * BL_EINVAL (or BL_EIO) with the reason, and the chmod that fixes it, in err. */
int secfile_check_private(const char *path, char *err, size_t errlen);
/* Create path with `data` and `mode`; BL_EINVAL (errno EEXIST) if path exists, in which
 * case nothing is changed. The data is on disk (fsync) before the name appears. */
int secfile_write_new(const char *path, const void *data, size_t len, mode_t mode);

#endif
