/* SPDX-License-Identifier: MIT */
/* metrics_http.h - the optional Prometheus endpoint ([metrics] listen), served by
 * libsoup 3's SoupServer on the daemon's GMainContext: GET /metrics answers the text
 * metrics.c renders, anything else 404 (405 for another method). Plain HTTP, no auth:
 * listen on a loopback or management address. */
#ifndef BL_METRICS_HTTP_H
#define BL_METRICS_HTTP_H

#include <glib.h>

typedef struct metrics_http metrics_http_t;

/* The exposition text now (g_free). */
typedef char *(*metrics_http_render_fn)(void *ud);

/* host: an IP address. 0, or BL_EINVAL / BL_EIO with the reason in err. */
int metrics_http_new(const char *host, int port, metrics_http_render_fn fn, void *ud,
                     metrics_http_t **out, char *err, size_t errlen);
void metrics_http_free(metrics_http_t *m);

#endif
