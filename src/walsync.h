/* SPDX-License-Identifier: MIT */
/* walsync.h - keep a SQLite write-ahead log flushed to disk from a helper thread.
 *
 * With synchronous=NORMAL, SQLite fsyncs the WAL only when it checkpoints, on the thread
 * that commits: every ~16 MiB of log, the daemon's main loop stopped for the time the
 * disk took to write all of it (8-14 ms in the lab, the whole tail of the latency
 * distribution). A helper thread that fdatasync()s the log file every interval leaves
 * the checkpoint's own sync only what the last interval wrote. SQLite is not told and
 * needs not be: an fsync by anyone of a file's dirty pages is the same fsync. Nothing
 * here changes what is durable when (commits still do not wait for the disk). */
#ifndef BL_WALSYNC_H
#define BL_WALSYNC_H

typedef struct walsync walsync_t;

/* Start flushing `path` (the "-wal" file; it may not exist yet) at most every interval_ms,
 * interval_ms after a walsync_kick.
 * NULL if the thread cannot start (then nothing is flushed early; not an error). */
walsync_t *walsync_start(const char *path, unsigned interval_ms);
/* The log was written: flush it within the interval. Between kicks the thread sleeps
 * (an idle daemon does not wake for it). Cheap: an atomic read when a flush is already
 * due. NULL is fine. */
void walsync_kick(walsync_t *w);
/* Stop and join the thread. NULL is fine. */
void walsync_stop(walsync_t *w);
/* Flushes done so far that had something to write (for tests). */
unsigned walsync_flushes(const walsync_t *w);

#endif
