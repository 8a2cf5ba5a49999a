/* SPDX-License-Identifier: MIT */
/* subs.h - which subscriptions a site holds in its local broker's session (pure).
 *
 * The broker keeps a persistent session's subscriptions across restarts, and a
 * SUBSCRIBE for a filter it already has keeps the old options (mosquitto 2.0 updates
 * only the QoS). So a site records what it subscribed, and at the next start drops what
 * that run does not want as it is before subscribing (site.c does the I/O). Records are
 * text, one escaped "QOS NO_LOCAL FILTER" line per subscription; escaping keeps a filter
 * with a newline on one line. */
#ifndef BL_SUBS_H
#define BL_SUBS_H

#include <glib.h>

#include "config.h"

/* The local filter of every rule of every peer, in any direction, leaving out one
 * covered by another (a broker delivers a message once per matching subscription; of
 * two equal filters the first stays). Free with g_ptr_array_unref. */
GPtrArray *subs_local_filters(const config_t *cfg);

/* The record line of one subscription (g_free). */
char *subs_line(const char *filter, int qos, bool no_local);

typedef struct subs_plan {
    GPtrArray *unsubscribe; /* filters (g_free'd) to drop before subscribing */
    char *record_now;       /* the record once the broker has confirmed the drops */
    char *record_both;      /* the record until then: this run's lines and the stale ones */
} subs_plan_t;

/* Plan the start: `old` is the last run's record, NULL when there is none or it could
 * not be read (then every wanted filter is dropped and subscribed again); `want` holds
 * this run's lines (subs_line). A line of `old` not in `want` is stale. */
void subs_plan(const char *old, const GPtrArray *want, subs_plan_t *out);
void subs_plan_clear(subs_plan_t *p);

#endif
