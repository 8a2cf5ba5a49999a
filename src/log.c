/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static log_level_t g_level = LOG_LVL_INFO;
static char g_site[65];

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_set_level(log_level_t lvl)
{
    g_level = lvl;
}

log_level_t log_get_level(void)
{
    return g_level;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && strcasecmp(s, level_names[i]) == 0)
            return i;
    if (s && strcasecmp(s, "warning") == 0)
        return LOG_LVL_WARN;
    return -1;
}

void log_set_site(const char *site)
{
    snprintf(g_site, sizeof(g_site), "%s", site ? site : "");
}

void log_printf(log_level_t lvl, const char *who, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    /* Wall-clock time with milliseconds so a test or a person can read step durations
     * off the log; journald adds its own stamp, which is harmless. */
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld %s%s%s%s %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, g_site[0] ? "[" : "", g_site, g_site[0] ? "] " : "",
            level_names[lvl < 0 || lvl > 3 ? 3 : lvl], who ? who : "-", msg);
    fflush(stderr);
}
