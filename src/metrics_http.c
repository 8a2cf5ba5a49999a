/* SPDX-License-Identifier: MIT */
/* metrics_http.c - see metrics_http.h. */
#include "metrics_http.h"

#include <stdio.h>
#include <string.h>

#include <libsoup/soup.h>

#include "common.h"
#include "log.h"

struct metrics_http {
    SoupServer *srv;
    metrics_http_render_fn fn;
    void *ud;
};

/* Prometheus' text exposition format, version 0.0.4. */
#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

static void on_request(SoupServer *srv, SoupServerMessage *msg, const char *path, GHashTable *q,
                       gpointer ud)
{
    (void)srv;
    (void)q;
    metrics_http_t *m = ud;
    const char *method = soup_server_message_get_method(msg);
    if (strcmp(path, "/metrics") != 0) {
        soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, NULL);
        soup_server_message_set_response(msg, "text/plain", SOUP_MEMORY_STATIC,
                                         "not found: the metrics are at /metrics\n", 39);
        return;
    }
    if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD) {
        soup_server_message_set_status(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    char *text = m->fn(m->ud);
    soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
    soup_server_message_set_response(msg, CONTENT_TYPE, SOUP_MEMORY_TAKE, text, strlen(text));
}

int metrics_http_new(const char *host, int port, metrics_http_render_fn fn, void *ud,
                     metrics_http_t **out, char *err, size_t errlen)
{
    *out = NULL;
    GSocketAddress *addr = g_inet_socket_address_new_from_string(host, (guint)port);
    if (!addr) {
        snprintf(err, errlen, "[metrics] listen: \"%s\" is not an IP address", host);
        return BL_EINVAL;
    }
    metrics_http_t *m = g_new0(metrics_http_t, 1);
    m->fn = fn;
    m->ud = ud;
    m->srv = soup_server_new("server-header", "brokerless", NULL);
    soup_server_add_handler(m->srv, NULL, on_request, m, NULL);
    GError *e = NULL;
    bool ok = soup_server_listen(m->srv, addr, 0, &e);
    g_object_unref(addr);
    if (!ok) {
        snprintf(err, errlen, "[metrics] listen: cannot listen on %s:%d: %s", host, port,
                 e->message);
        g_error_free(e);
        metrics_http_free(m);
        return BL_EIO;
    }
    LOG_INFO("metrics", "serving http://%s:%d/metrics", host, port);
    *out = m;
    return 0;
}

void metrics_http_free(metrics_http_t *m)
{
    if (!m)
        return;
    if (m->srv) {
        soup_server_disconnect(m->srv);
        g_object_unref(m->srv);
    }
    g_free(m);
}
