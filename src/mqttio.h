/* SPDX-License-Identifier: MIT */
/* mqttio.h - one non-blocking TCP (optionally TLS) stream to a broker on a GLib main
 * context: connect, read, write, and a callback when the socket is ready.
 *
 * TLS is OpenSSL with the peer verified against `cafile` or the system store, and its
 * name (or IP address) checked against the certificate. Name resolution is a blocking
 * getaddrinfo(); the TCP connect and the handshake are not. Every address the name has
 * is tried in turn. Callbacks never come from inside mqttio_read/write: only from the
 * loop. The owner frees the stream from any callback (the stream is then not touched
 * again). */
#ifndef BL_MQTTIO_H
#define BL_MQTTIO_H

#include <glib.h>
#include <sys/types.h>

#include "common.h"

typedef struct mqttio mqttio_t;

typedef struct mqttio_events {
    /* TCP (and TLS) is up: reads and writes may start. */
    void (*on_up)(void *ud);
    /* The socket may be read (or has an error or EOF, which a read reports). */
    void (*on_readable)(void *ud);
    /* Room to write again after a write returned BL_EAGAIN. */
    void (*on_writable)(void *ud);
    /* The connect or the handshake failed; `why` says how (for a log line). */
    void (*on_failed)(void *ud, const char *why);
} mqttio_events_t;

typedef struct mqttio_opts {
    const char *host;
    int port;
    bool tls;
    const char *cafile; /* NULL: the system store */
} mqttio_opts_t;

/* Resolve and start connecting. NULL when the name does not resolve or no socket can
 * be made (*why says which). */
mqttio_t *mqttio_connect(GMainContext *ctx, const mqttio_opts_t *o, const mqttio_events_t *ev,
                         void *ud, const char **why);
/* Bytes read (> 0), 0 at end of stream, BL_EAGAIN when nothing is there now, BL_EIO on
 * an error (*why set). */
ssize_t mqttio_read(mqttio_t *io, void *buf, size_t len, const char **why);
/* Bytes written (> 0), BL_EAGAIN when the socket is full (on_writable follows), BL_EIO. */
ssize_t mqttio_write(mqttio_t *io, const void *buf, size_t len, const char **why);
void mqttio_free(mqttio_t *io);

#endif
