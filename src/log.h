/* SPDX-License-Identifier: MIT */
/* log.h - one line per event: "LEVEL who: message", on stderr or to journald (log.c).
 *
 * `who` is the peer's name where there is one ("peer cabin"), else the module ("local").
 * Format strings are checked by the compiler. Never log secrets (network secret, ICE
 * passwords, private keys). Disabled levels cost one comparison. */
#ifndef BL_LOG_H
#define BL_LOG_H

typedef enum { LOG_LVL_DEBUG = 0, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR } log_level_t;

void log_set_level(log_level_t lvl);
log_level_t log_get_level(void);
/* Parse "debug|info|warn|error"; returns -1 when unknown. */
int log_level_parse(const char *s);
/* The site name printed at the start of every line (may be NULL). */
void log_set_site(const char *site);
void log_printf(log_level_t lvl, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(lvl, who, ...)                                                                      \
    do {                                                                                           \
        if ((lvl) >= log_get_level())                                                              \
            log_printf((lvl), (who), __VA_ARGS__);                                                 \
    } while (0)
#define LOG_DEBUG(who, ...) LOG_AT(LOG_LVL_DEBUG, who, __VA_ARGS__)
#define LOG_INFO(who, ...) LOG_AT(LOG_LVL_INFO, who, __VA_ARGS__)
#define LOG_WARN(who, ...) LOG_AT(LOG_LVL_WARN, who, __VA_ARGS__)
#define LOG_ERROR(who, ...) LOG_AT(LOG_LVL_ERROR, who, __VA_ARGS__)

#endif
