/* SPDX-License-Identifier: MIT */
/* watch.c - see watch.h. */
#include "watch.h"

watch_verdict_t watch_step(watch_cond_t *c, bool bad, int64_t now_ms, int64_t after_ms,
                           int64_t every_ms)
{
    if (!bad) {
        bool said = c->said_at != 0;
        c->bad_since = c->said_at = 0;
        return said ? WATCH_OVER : WATCH_QUIET;
    }
    if (!c->bad_since)
        c->bad_since = now_ms;
    if (now_ms - c->bad_since < after_ms)
        return WATCH_QUIET;
    if (c->said_at && now_ms - c->said_at < every_ms)
        return WATCH_QUIET;
    c->said_at = now_ms;
    return WATCH_SAY;
}
