/* SPDX-License-Identifier: MIT */
/* metrics.h - the site's status in the Prometheus text exposition format (pure).
 *
 * Names follow Prometheus' conventions: brokerless_ prefix, _total on counters, base
 * units in the name (_seconds, _bytes). Per-peer series carry a peer="NAME" label; drops
 * a reason label (status_drop_name()). metrics_http.c serves it. */
#ifndef BL_METRICS_H
#define BL_METRICS_H

#include "status.h"

/* The whole exposition, ending in a newline (g_free). */
char *metrics_render(const status_site_t *s);

#endif
