/* SPDX-License-Identifier: MIT */
/* log.c - see log.h. Every line goes through GLib's structured logging: ours with the
 * fields BL_WHO and BL_SITE, GLib's and libnice's with their domain. One writer formats
 * them all: to journald with their priority when stderr is the journal (systemd sets
 * JOURNAL_STREAM), else as one line on stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>

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

/* GLib's levels for ours. G_LOG_LEVEL_ERROR would abort: ours maps to CRITICAL, which
 * journald files as priority 3 ("err"), WARNING as 4, INFO 6, DEBUG 7. */
static GLogLevelFlags glib_level(log_level_t l)
{
    static const GLogLevelFlags map[] = {G_LOG_LEVEL_DEBUG, G_LOG_LEVEL_INFO, G_LOG_LEVEL_WARNING,
                                         G_LOG_LEVEL_CRITICAL};
    return map[l < 0 || l > 3 ? 3 : l];
}

static log_level_t our_level(GLogLevelFlags f)
{
    if (f & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
        return LOG_LVL_ERROR;
    if (f & G_LOG_LEVEL_WARNING)
        return LOG_LVL_WARN;
    if (f & (G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO))
        return LOG_LVL_INFO;
    return LOG_LVL_DEBUG;
}

static const char *field(const GLogField *f, gsize n, const char *key)
{
    for (gsize i = 0; i < n; i++)
        if (!strcmp(f[i].key, key) && f[i].length < 0)
            return f[i].value;
    return NULL;
}

/* "HH:MM:SS.mmm [site] LEVEL who: message". Wall-clock time with milliseconds so a test
 * or a person can read step durations off the log. */
static void write_line(log_level_t lvl, const char *who, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld %s%s%s%s %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, g_site[0] ? "[" : "", g_site, g_site[0] ? "] " : "",
            level_names[lvl], who ? who : "-", msg ? msg : "");
    fflush(stderr);
}

static GLogWriterOutput writer(GLogLevelFlags flags, const GLogField *f, gsize n, gpointer ud)
{
    (void)ud;
    log_level_t lvl = our_level(flags);
    if (lvl < g_level)
        return G_LOG_WRITER_HANDLED;
    static int journal = -1;
    if (journal < 0)
        journal = g_log_writer_is_journald(fileno(stderr));
    const char *who = field(f, n, "BL_WHO"), *msg = field(f, n, "MESSAGE");
    if (!who)
        who = field(f, n, "GLIB_DOMAIN");
    if (journal && n < 32) {
        /* journalctl shows MESSAGE: it starts with who, as the line on stderr does. */
        GLogField copy[32];
        char line[1200];
        snprintf(line, sizeof(line), "%s: %s", who ? who : "-", msg ? msg : "");
        for (gsize i = 0; i < n; i++) {
            copy[i] = f[i];
            if (!strcmp(f[i].key, "MESSAGE"))
                copy[i] = (GLogField){"MESSAGE", line, -1};
        }
        if (g_log_writer_journald(flags, copy, n, NULL) == G_LOG_WRITER_HANDLED)
            return G_LOG_WRITER_HANDLED;
    }
    write_line(lvl, who, msg);
    return G_LOG_WRITER_HANDLED;
}

void log_printf(log_level_t lvl, const char *who, const char *fmt, ...)
{
    static bool installed;
    if (!installed) { /* once per process, as GLib allows */
        installed = true;
        g_log_set_writer_func(writer, NULL, NULL);
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const GLogField fields[] = {{"MESSAGE", msg, -1},
                                {"BL_WHO", who ? who : "-", -1},
                                {"BL_SITE", g_site, -1},
                                {"GLIB_DOMAIN", "brokerless", -1},
                                {"SYSLOG_IDENTIFIER", "brokerless", -1}};
    g_log_structured_array(glib_level(lvl), fields, G_N_ELEMENTS(fields));
}
