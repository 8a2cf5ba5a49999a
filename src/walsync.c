/* SPDX-License-Identifier: MIT */
/* walsync.c - see walsync.h. */
#include "walsync.h"

#include <fcntl.h>
#include <stdbool.h>
#include <glib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

struct walsync {
    GThread *thread;
    GMutex mu;
    GCond cv;
    bool stop;
    gint kicked; /* walsync_kick since the thread last looked */
    gint idle;   /* the thread waits for a kick (not for the interval) */
    char *path;
    gint64 interval_us;
    int fd;
    struct timespec seen; /* mtime at the last flush: unchanged, nothing to write */
    off_t seen_size;
    gint flushes;
};

/* One turn: open the log once it exists, and flush it if it changed since last time. */
static void flush_once(walsync_t *w)
{
    if (w->fd < 0) {
        w->fd = open(w->path, O_RDONLY | O_CLOEXEC);
        if (w->fd < 0)
            return; /* not written yet */
    }
    struct stat st;
    if (fstat(w->fd, &st) != 0)
        return;
    if (st.st_mtim.tv_sec == w->seen.tv_sec && st.st_mtim.tv_nsec == w->seen.tv_nsec &&
        st.st_size == w->seen_size)
        return;
    w->seen = st.st_mtim;
    w->seen_size = st.st_size;
    if (fdatasync(w->fd) == 0)
        g_atomic_int_inc(&w->flushes);
}

static gpointer run(gpointer ud)
{
    walsync_t *w = ud;
    g_mutex_lock(&w->mu);
    while (!w->stop) {
        /* Nothing written since the last flush: sleep until a commit kicks us. idle is
         * set before kicked is read again, and walsync_kick sets kicked before it reads
         * idle, so one of the two always sees the other (no lost wake-up). */
        g_atomic_int_set(&w->idle, 1);
        while (!w->stop && !g_atomic_int_get(&w->kicked))
            g_cond_wait(&w->cv, &w->mu);
        g_atomic_int_set(&w->idle, 0);
        g_atomic_int_set(&w->kicked, 0);
        gint64 until = g_get_monotonic_time() + w->interval_us;
        while (!w->stop && g_cond_wait_until(&w->cv, &w->mu, until))
            ; /* woken early (stop, or spuriously): check and wait on */
        if (w->stop)
            break;
        g_mutex_unlock(&w->mu);
        flush_once(w);
        g_mutex_lock(&w->mu);
    }
    g_mutex_unlock(&w->mu);
    return NULL;
}

walsync_t *walsync_start(const char *path, unsigned interval_ms)
{
    if (!path || !interval_ms)
        return NULL;
    walsync_t *w = g_new0(walsync_t, 1);
    g_mutex_init(&w->mu);
    g_cond_init(&w->cv);
    w->path = g_strdup(path);
    w->interval_us = (gint64)interval_ms * 1000;
    w->fd = -1;
    GError *err = NULL;
    w->thread = g_thread_try_new("walsync", run, w, &err);
    if (!w->thread) {
        LOG_WARN("queue",
                 "cannot start the log flushing thread (%s): checkpoints will "
                 "pause the daemon longer",
                 err ? err->message : "unknown");
        g_clear_error(&err);
        g_mutex_clear(&w->mu);
        g_cond_clear(&w->cv);
        g_free(w->path);
        g_free(w);
        return NULL;
    }
    return w;
}

void walsync_kick(walsync_t *w)
{
    if (!w || g_atomic_int_get(&w->kicked))
        return;
    g_atomic_int_set(&w->kicked, 1);
    if (g_atomic_int_get(&w->idle)) {
        g_mutex_lock(&w->mu);
        g_cond_signal(&w->cv);
        g_mutex_unlock(&w->mu);
    }
}

void walsync_stop(walsync_t *w)
{
    if (!w)
        return;
    g_mutex_lock(&w->mu);
    w->stop = true;
    g_cond_signal(&w->cv);
    g_mutex_unlock(&w->mu);
    g_thread_join(w->thread);
    if (w->fd >= 0)
        close(w->fd);
    g_mutex_clear(&w->mu);
    g_cond_clear(&w->cv);
    g_free(w->path);
    g_free(w);
}

unsigned walsync_flushes(const walsync_t *w)
{
    return w ? (unsigned)g_atomic_int_get(&((walsync_t *)w)->flushes) : 0;
}
