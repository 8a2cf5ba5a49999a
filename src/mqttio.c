/* SPDX-License-Identifier: MIT */
/* mqttio.c - a non-blocking TCP/TLS stream on a GLib main context (mqttio.h). */
#include "mqttio.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

typedef enum { IO_CONNECTING, IO_HANDSHAKE, IO_UP, IO_DEAD } io_state_t;

typedef struct io_source {
    GSource src;
    mqttio_t *io;
} io_source_t;

struct mqttio {
    GMainContext *ctx;
    mqttio_opts_t o; /* host and cafile owned */
    mqttio_events_t ev;
    void *ud;
    io_state_t state;
    struct addrinfo *ai, *next; /* addresses of the host, the one being tried */
    int fd;
    SSL_CTX *tls_ctx;
    SSL *ssl;
    io_source_t *src;
    gpointer tag;
    GIOCondition events;
    bool want_write;       /* a write returned BL_EAGAIN: tell on_writable */
    bool read_wants_write; /* TLS: a read needs the socket writable first */
    char why[256];
};

/* ---------------------------------------------------------------- the watch */

static void watch(mqttio_t *io, GIOCondition want)
{
    want |= G_IO_HUP | G_IO_ERR;
    /* Every change wakes the context up: change only what changed. */
    if (io->src && want != io->events) {
        io->events = want;
        g_source_modify_unix_fd(&io->src->src, io->tag, want);
    }
}

static void watch_up(mqttio_t *io)
{
    watch(io, G_IO_IN | (io->want_write || io->read_wants_write ? G_IO_OUT : 0));
}

static const char *tls_error(mqttio_t *io, const char *what)
{
    long v = io->ssl ? SSL_get_verify_result(io->ssl) : X509_V_OK;
    unsigned long e = ERR_get_error();
    if (v != X509_V_OK)
        snprintf(io->why, sizeof io->why, "%s: certificate not accepted (%s)", what,
                 X509_verify_cert_error_string(v));
    else if (e)
        snprintf(io->why, sizeof io->why, "%s: %s", what, ERR_reason_error_string(e));
    else
        snprintf(io->why, sizeof io->why, "%s: %s", what,
                 errno ? strerror(errno) : "connection closed");
    ERR_clear_error();
    return io->why;
}

static void source_remove(mqttio_t *io);

static void failed(mqttio_t *io, const char *why)
{
    io->state = IO_DEAD;
    source_remove(io); /* a dead socket would stay ready for ever */
    if (io->ev.on_failed)
        io->ev.on_failed(io->ud, why); /* may free io */
}

static int try_next_address(mqttio_t *io);

static const char *tls_setup(mqttio_t *io)
{
    io->tls_ctx = SSL_CTX_new(TLS_client_method());
    if (!io->tls_ctx)
        return "cannot create a TLS context";
    SSL_CTX_set_min_proto_version(io->tls_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(io->tls_ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(io->tls_ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (io->o.cafile ? SSL_CTX_load_verify_locations(io->tls_ctx, io->o.cafile, NULL) != 1
                     : SSL_CTX_set_default_verify_paths(io->tls_ctx) != 1) {
        snprintf(io->why, sizeof io->why, "cannot load the CA certificates from %s",
                 io->o.cafile ? io->o.cafile : "the system store");
        ERR_clear_error();
        return io->why;
    }
    return NULL;
}

/* The certificate must name the host we dialled (RFC 6125): an IP address is checked
 * against the IP addresses in it, a name against its DNS names; the name also goes in
 * SNI. */
static const char *tls_start(mqttio_t *io)
{
    io->ssl = SSL_new(io->tls_ctx);
    if (!io->ssl || SSL_set_fd(io->ssl, io->fd) != 1)
        return "cannot start TLS";
    unsigned char addr[16];
    bool literal =
        inet_pton(AF_INET, io->o.host, addr) == 1 || inet_pton(AF_INET6, io->o.host, addr) == 1;
    if (literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(io->ssl), io->o.host) != 1
                : SSL_set1_host(io->ssl, io->o.host) != 1 ||
                      SSL_set_tlsext_host_name(io->ssl, io->o.host) != 1)
        return "cannot set the TLS host name";
    SSL_set_connect_state(io->ssl);
    io->state = IO_HANDSHAKE;
    return NULL;
}

static void handshake(mqttio_t *io)
{
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(io->ssl);
    if (rc == 1) {
        io->state = IO_UP;
        watch_up(io);
        if (io->ev.on_up)
            io->ev.on_up(io->ud);
        return;
    }
    switch (SSL_get_error(io->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
        watch(io, G_IO_IN);
        return;
    case SSL_ERROR_WANT_WRITE:
        watch(io, G_IO_OUT);
        return;
    default:
        failed(io, tls_error(io, "TLS handshake failed"));
    }
}

/* The TCP connect finished, one way or the other. */
static void connected(mqttio_t *io)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err) {
        snprintf(io->why, sizeof io->why, "%s", strerror(err));
        if (try_next_address(io))
            failed(io, io->why);
        return;
    }
    if (io->o.tls) {
        const char *why = tls_start(io);
        if (why)
            failed(io, why);
        else
            handshake(io);
        return;
    }
    io->state = IO_UP;
    watch_up(io);
    if (io->ev.on_up)
        io->ev.on_up(io->ud);
}

static gboolean io_dispatch(GSource *src, GSourceFunc cb, gpointer ud)
{
    (void)cb, (void)ud;
    mqttio_t *io = ((io_source_t *)src)->io;
    GIOCondition rev = g_source_query_unix_fd(src, io->tag);
    switch (io->state) {
    case IO_CONNECTING:
        connected(io);
        break;
    case IO_HANDSHAKE:
        handshake(io);
        break;
    case IO_UP:
        /* Each callback may free io: after one, return at once. */
        if ((rev & G_IO_OUT) && (io->read_wants_write || io->want_write)) {
            /* A read that waited for the socket to be writable goes first. */
            bool reading = io->read_wants_write;
            *(reading ? &io->read_wants_write : &io->want_write) = false;
            watch_up(io);
            void (*cb)(void *ud) = reading ? io->ev.on_readable : io->ev.on_writable;
            if (cb)
                cb(io->ud);
            break;
        }
        if ((rev & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && io->ev.on_readable)
            io->ev.on_readable(io->ud);
        break;
    case IO_DEAD:
        break;
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs io_funcs = {NULL, NULL, io_dispatch, NULL, NULL, NULL};

static void source_remove(mqttio_t *io)
{
    if (io->src) {
        g_source_destroy(&io->src->src);
        g_source_unref(&io->src->src);
        io->src = NULL;
    }
}

static int socket_open(const struct addrinfo *a)
{
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0)
        return -1;
    /* Acknowledgements and publishes leave in bursts that we write at once: Nagle would
     * hold a burst's tail until the broker's delayed ACK, up to 40 ms. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Connect to the next address of the host; 0 when an attempt is under way. */
static int try_next_address(mqttio_t *io)
{
    source_remove(io);
    if (io->fd >= 0) {
        close(io->fd);
        io->fd = -1;
    }
    for (; io->next; io->next = io->next->ai_next) {
        io->fd = socket_open(io->next);
        if (io->fd < 0) {
            snprintf(io->why, sizeof io->why, "%s", strerror(errno));
            continue;
        }
        io->next = io->next->ai_next;
        io->src = (io_source_t *)g_source_new(&io_funcs, sizeof(io_source_t));
        io->src->io = io;
        io->events = G_IO_OUT | G_IO_HUP | G_IO_ERR;
        io->tag = g_source_add_unix_fd(&io->src->src, io->fd, io->events);
        /* GLib otherwise takes a non-recursive source's fd out of the poll set and puts
         * it back around every dispatch: two more wake-ups each time. */
        g_source_set_can_recurse(&io->src->src, TRUE);
        g_source_attach(&io->src->src, io->ctx);
        io->state = IO_CONNECTING;
        return 0;
    }
    return BL_EIO;
}

mqttio_t *mqttio_connect(GMainContext *ctx, const mqttio_opts_t *o, const mqttio_events_t *ev,
                         void *ud, const char **why)
{
    static const char *unused;
    if (!why)
        why = &unused;
    mqttio_t *io = calloc(1, sizeof(*io));
    if (!io) {
        *why = "out of memory";
        return NULL;
    }
    io->ctx = ctx;
    io->o = *o;
    io->o.host = strdup(o->host);
    io->o.cafile = o->cafile ? strdup(o->cafile) : NULL;
    io->ev = *ev;
    io->ud = ud;
    io->fd = -1;
    if (!io->o.host || (o->cafile && !io->o.cafile)) {
        *why = "out of memory";
        goto error;
    }
    if (o->tls && (*why = tls_setup(io)) != NULL) {
        snprintf(io->why, sizeof io->why, "%s", *why);
        *why = io->why;
        goto error;
    }
    char port[8];
    snprintf(port, sizeof port, "%d", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int grc = getaddrinfo(o->host, port, &hints, &io->ai);
    if (grc) {
        snprintf(io->why, sizeof io->why, "cannot resolve %s: %s", o->host, gai_strerror(grc));
        *why = io->why;
        goto error;
    }
    io->next = io->ai;
    if (try_next_address(io)) {
        *why = io->why;
        goto error;
    }
    return io;
error:
    mqttio_free(io);
    return NULL;
}

/* A plain recv or send failed: true when it only would block, else false with errno's
 * message in *why. */
static bool would_block(mqttio_t *io, const char **why)
{
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return true;
    snprintf(io->why, sizeof io->why, "%s", strerror(errno));
    *why = io->why;
    return false;
}

/* A write must wait until the socket is writable. */
static ssize_t wait_writable(mqttio_t *io)
{
    io->want_write = true;
    watch_up(io);
    return BL_EAGAIN;
}

/* Before SSL_read or SSL_write: nothing left that tls_error could take for their error;
 * len as the int they take. */
static int tls_len(size_t len)
{
    ERR_clear_error();
    errno = 0;
    return (int)BL_MIN(len, (size_t)INT32_MAX);
}

ssize_t mqttio_read(mqttio_t *io, void *buf, size_t len, const char **why)
{
    if (io->state != IO_UP)
        return BL_EAGAIN;
    if (!io->ssl) {
        ssize_t n = recv(io->fd, buf, len, MSG_DONTWAIT);
        if (n >= 0)
            return n;
        return would_block(io, why) ? BL_EAGAIN : BL_EIO;
    }
    int n = SSL_read(io->ssl, buf, tls_len(len));
    if (n > 0)
        return n;
    switch (SSL_get_error(io->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return BL_EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        io->read_wants_write = true;
        watch_up(io);
        return BL_EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        *why = tls_error(io, "TLS read failed");
        return BL_EIO;
    }
}

ssize_t mqttio_write(mqttio_t *io, const void *buf, size_t len, const char **why)
{
    if (io->state != IO_UP)
        return BL_EAGAIN;
    ssize_t n;
    if (!io->ssl) {
        n = send(io->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        return would_block(io, why) ? wait_writable(io) : BL_EIO;
    }
    int w = SSL_write(io->ssl, buf, tls_len(len));
    if (w > 0)
        return w;
    switch (SSL_get_error(io->ssl, w)) {
    case SSL_ERROR_WANT_WRITE:
        return wait_writable(io);
    case SSL_ERROR_WANT_READ:
        return BL_EAGAIN; /* reading is always watched; the next read lets it on */
    default:
        *why = tls_error(io, "TLS write failed");
        return BL_EIO;
    }
}

void mqttio_free(mqttio_t *io)
{
    if (!io)
        return;
    source_remove(io);
    if (io->ssl)
        SSL_free(io->ssl);
    if (io->tls_ctx)
        SSL_CTX_free(io->tls_ctx);
    if (io->fd >= 0)
        close(io->fd);
    if (io->ai)
        freeaddrinfo(io->ai);
    free((char *)io->o.host);
    free((char *)io->o.cafile);
    free(io);
}
