/* SPDX-License-Identifier: MIT */
/* watch.h - when to say again that something is still wrong (pure).
 *
 * A condition that persists (the local broker unreachable, a peer not connected for
 * minutes, signalling that never answers) is said once it has lasted `after_ms`, then
 * again every `every_ms` while it lasts, at warning level, instead of once and never
 * again; when it ends after being said, that is said once too. */
#ifndef BL_WATCH_H
#define BL_WATCH_H

#include <stdbool.h>
#include <stdint.h>

typedef struct watch_cond {
    int64_t bad_since; /* 0: the condition does not hold */
    int64_t said_at;   /* 0: not said during this spell */
} watch_cond_t;

typedef enum { WATCH_QUIET = 0, WATCH_SAY, WATCH_OVER } watch_verdict_t;

/* bad: does the condition hold at now_ms (a monotonic clock, > 0)? WATCH_SAY: warn now
 * (it has held for now_ms - bad_since); WATCH_OVER: it ended after it was said. */
watch_verdict_t watch_step(watch_cond_t *c, bool bad, int64_t now_ms, int64_t after_ms,
                           int64_t every_ms);

#endif
