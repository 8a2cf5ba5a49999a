/* SPDX-License-Identifier: MIT */
/* notify.c - see notify.h. */
#include "notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"
#include "loop.h"

static void tell(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        LOG_DEBUG("systemd", "sd_notify: %s", g_strerror(-rc));
}

void notify_ready(const char *status)
{
    char *s = g_strdup_printf("READY=1\nSTATUS=%s", status);
    tell(s);
    g_free(s);
}

void notify_status(const char *status)
{
    char *s = g_strdup_printf("STATUS=%s", status);
    tell(s);
    g_free(s);
}

void notify_reloading(void)
{
    /* MONOTONIC_USEC: what systemd 253's Type=notify-reload wants; older ones ignore it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char *s = g_strdup_printf("RELOADING=1\nMONOTONIC_USEC=%llu",
                              (unsigned long long)ts.tv_sec * 1000000ull +
                                  (unsigned long long)ts.tv_nsec / 1000ull);
    tell(s);
    g_free(s);
}

void notify_stopping(void)
{
    tell("STOPPING=1");
}

static gboolean ping(gpointer ud)
{
    (void)ud;
    tell("WATCHDOG=1");
    return G_SOURCE_CONTINUE;
}

GSource *notify_watchdog_start(GMainContext *ctx)
{
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
        return NULL;
    LOG_INFO("systemd", "watchdog every %llu ms", (unsigned long long)usec / 2000);
    return loop_timeout(ctx, (unsigned)(usec / 2000), ping, NULL);
}
