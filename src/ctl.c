/* SPDX-License-Identifier: MIT */
/* ctl.c - see ctl.h. */
#include "ctl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <gio/gunixsocketaddress.h>
#include <openssl/rand.h>

#include "ctlproto.h"
#include "log.h"
#include "loop.h"

typedef struct client {
    ctl_t *ctl;
    GSocket *sock;
    GSource *io, *timer;
    uint8_t buf[CTL_MAX_REQUEST];
    size_t len;
    char *answer; /* being written */
    size_t sent;
    bool draining;       /* answered: reading what the client still sends, to its end */
    char *refused;       /* not served (its credentials): the answer to whatever it asks */
    uint64_t ping_token; /* non-zero while a ping waits for its answer */
    char ping_peer[BL_SITE_NAME_MAX + 1];
    int64_t ping_t0_us;
} client_t;

struct ctl {
    GMainContext *ctx;
    char *path;
    GSocket *listener;
    GSource *accept_src;
    GList *clients; /* client_t * */
    ctl_handlers_t h;
    void *ud;
};

static void client_free(client_t *c)
{
    c->ctl->clients = g_list_remove(c->ctl->clients, c);
    loop_cancel(&c->io);
    loop_cancel(&c->timer);
    g_socket_close(c->sock, NULL);
    g_object_unref(c->sock);
    g_free(c->answer);
    g_free(c->refused);
    g_free(c);
}

static gboolean on_io(GSocket *sock, GIOCondition cond, gpointer ud);

static void watch(client_t *c, GIOCondition cond)
{
    loop_cancel(&c->io);
    c->io = loop_attach(c->ctl->ctx, g_socket_create_source(c->sock, cond, NULL),
                        (GSourceFunc)(void (*)(void))on_io, c);
}

static gboolean on_timer(gpointer ud);

static void timer(client_t *c, unsigned ms)
{
    loop_cancel(&c->timer);
    c->timer = loop_timeout(c->ctl->ctx, ms, on_timer, c);
}

/* Write what is left of the answer; true when the client is done with (freed). */
static bool flush(client_t *c)
{
    size_t n = strlen(c->answer);
    while (c->sent < n) {
        GError *e = NULL;
        gssize w = g_socket_send(c->sock, c->answer + c->sent, n - c->sent, NULL, &e);
        if (w < 0 && g_error_matches(e, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
            g_error_free(e);
            watch(c, G_IO_OUT);
            return false;
        }
        if (w < 0) {
            g_error_free(e);
            break;
        }
        c->sent += (size_t)w;
    }
    /* Closing with the client's bytes unread would reset the connection, and the
     * client might lose the answer: shut our side and read to its end (or the timer). */
    if (c->sent < n || !g_socket_shutdown(c->sock, FALSE, TRUE, NULL)) {
        client_free(c);
        return true;
    }
    c->draining = true;
    watch(c, G_IO_IN | G_IO_HUP | G_IO_ERR);
    return false;
}

/* After the answer: discard what comes until the client closes. */
static void drain(client_t *c)
{
    char buf[512];
    GError *e = NULL;
    gssize n;
    while ((n = g_socket_receive(c->sock, buf, sizeof(buf), NULL, &e)) > 0)
        ;
    if (n < 0 && g_error_matches(e, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        g_error_free(e);
        return;
    }
    if (e)
        g_error_free(e);
    client_free(c);
}

/* The one answer of this connection (takes line); the connection closes once it is
 * written. */
static void answer(client_t *c, char *line)
{
    c->ping_token = 0;
    c->answer = line;
    c->sent = 0;
    timer(c, CTL_IDLE_MS); /* a client that never reads its answer is dropped */
    flush(c);
}

static void answer_error(client_t *c, const char *why)
{
    answer(c, ctlproto_error(why));
}

static void do_ping(client_t *c, const ctl_req_t *r)
{
    ctl_t *ctl = c->ctl;
    uint64_t token = 0;
    while (!token)
        RAND_bytes((unsigned char *)&token, sizeof(token));
    char err[256] = "";
    if (ctl->h.ping(ctl->ud, r->peer, token, err, sizeof(err))) {
        answer_error(c, err);
        return;
    }
    c->ping_token = token;
    snprintf(c->ping_peer, sizeof(c->ping_peer), "%s", r->peer);
    c->ping_t0_us = g_get_monotonic_time();
    loop_cancel(&c->io); /* nothing more to read; the answer comes from ctl_pong or the timer */
    timer(c, CTL_PING_TIMEOUT_MS);
}

static void dispatch(client_t *c, const ctl_req_t *r)
{
    ctl_t *ctl = c->ctl;
    char err[512] = "";
    cJSON *res = NULL;
    switch (r->cmd) {
    case CTL_STATUS:
        answer(c, ctlproto_ok(ctl->h.status(ctl->ud)));
        return;
    case CTL_RELOAD:
        if (ctl->h.reload(ctl->ud, err, sizeof(err)))
            answer_error(c, err);
        else
            answer(c, ctlproto_ok(NULL));
        return;
    case CTL_FORGET:
        if (ctl->h.forget(ctl->ud, r->peer, &res, err, sizeof(err)))
            answer_error(c, err);
        else
            answer(c, ctlproto_ok(res));
        return;
    case CTL_PING:
        do_ping(c, r);
        return;
    }
}

/* Reads until a newline; then the request is parsed and answered. */
static void on_readable(client_t *c)
{
    GError *e = NULL;
    gssize n =
        g_socket_receive(c->sock, (gchar *)c->buf + c->len, sizeof(c->buf) - c->len, NULL, &e);
    if (n < 0 && g_error_matches(e, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
        g_error_free(e);
        return;
    }
    if (n <= 0) { /* gone, or ended without a whole request */
        if (e)
            g_error_free(e);
        if (c->refused)
            answer_error(c, c->refused);
        else if (c->len)
            answer_error(c, "the request ended without a newline");
        else
            client_free(c);
        return;
    }
    size_t from = c->len;
    c->len += (size_t)n;
    uint8_t *nl = memchr(c->buf + from, '\n', c->len - from);
    char why[256];
    ctl_req_t req;
    if (!nl && c->len < sizeof(c->buf))
        return;
    if (c->refused) {
        answer_error(c, c->refused);
        return;
    }
    if (ctlproto_parse(c->buf, nl ? (size_t)(nl - c->buf) : c->len, &req, why, sizeof(why))) {
        LOG_DEBUG("control", "refused a request: %s", why);
        answer_error(c, why);
        return;
    }
    dispatch(c, &req);
}

static gboolean on_io(GSocket *sock, GIOCondition cond, gpointer ud)
{
    (void)sock;
    client_t *c = ud;
    if (c->draining)
        drain(c);
    else if (c->answer)
        flush(c);
    else if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        on_readable(c);
    return G_SOURCE_CONTINUE; /* the source goes with its client (client_free, watch) */
}

static gboolean on_timer(gpointer ud)
{
    client_t *c = ud;
    c->timer = NULL; /* G_SOURCE_REMOVE below */
    if (c->answer) {
        client_free(c); /* it does not read its answer */
    } else if (c->ping_token) {
        char why[160];
        snprintf(why, sizeof(why), "no answer from %s within %d ms", c->ping_peer,
                 CTL_PING_TIMEOUT_MS);
        answer_error(c, why);
    } else {
        answer_error(c, "no request within 5 s");
    }
    return G_SOURCE_REMOVE;
}

void ctl_pong(ctl_t *ctl, const char *peer, uint64_t token)
{
    for (GList *l = ctl->clients; l; l = l->next) {
        client_t *c = l->data;
        if (!c->ping_token || c->ping_token != token || strcmp(c->ping_peer, peer) != 0)
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "peer", peer);
        cJSON_AddNumberToObject(o, "rtt_ms", (g_get_monotonic_time() - c->ping_t0_us) / 1000.0);
        answer(c, ctlproto_ok(o));
        return;
    }
}

/* Who is on the other end: only our own user and root are served. */
static bool allowed(GSocket *sock, char *why, size_t len)
{
    GError *e = NULL;
    GCredentials *cr = g_socket_get_credentials(sock, &e);
    uid_t uid = cr ? g_credentials_get_unix_user(cr, &e) : (uid_t)-1;
    if (cr)
        g_object_unref(cr);
    if (e) {
        snprintf(why, len, "cannot tell who is asking: %s", e->message);
        g_error_free(e);
        return false;
    }
    if (uid == geteuid() || uid == 0)
        return true;
    snprintf(why, len, "refused: this socket serves only uid %u and root, not uid %u",
             (unsigned)geteuid(), (unsigned)uid);
    return false;
}

static gboolean on_accept(GSocket *listener, GIOCondition cond, gpointer ud)
{
    (void)cond;
    ctl_t *ctl = ud;
    GSocket *sock = g_socket_accept(listener, NULL, NULL);
    if (!sock)
        return G_SOURCE_CONTINUE;
    g_socket_set_blocking(sock, FALSE);
    client_t *c = g_new0(client_t, 1);
    c->ctl = ctl;
    c->sock = sock;
    ctl->clients = g_list_prepend(ctl->clients, c);
    char why[160];
    if (!allowed(sock, why, sizeof(why))) {
        LOG_WARN("control", "%s", why);
        c->refused = g_strdup(why); /* said once its request is in: nothing of it is read */
    } else if (g_list_length(ctl->clients) > CTL_MAX_CLIENTS) {
        c->refused = g_strdup("busy: too many control connections");
    }
    watch(c, G_IO_IN | G_IO_HUP | G_IO_ERR);
    timer(c, CTL_IDLE_MS);
    return G_SOURCE_CONTINUE;
}

/* A socket file at path: one a daemon answers on, or one left by a daemon that died. */
static int clear_old(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err, errlen, "%s exists and is not a socket: remove it", path);
        return BL_EIO;
    }
    GSocketClient *cl = g_socket_client_new();
    GSocketAddress *a = g_unix_socket_address_new(path);
    GSocketConnection *conn = g_socket_client_connect(cl, G_SOCKET_CONNECTABLE(a), NULL, NULL);
    g_object_unref(a);
    g_object_unref(cl);
    if (conn) {
        g_object_unref(conn);
        snprintf(err, errlen,
                 "another brokerless daemon runs with this state_dir (it answers on %s)", path);
        return BL_ESTATE;
    }
    unlink(path);
    return 0;
}

int ctl_new(GMainContext *ctx, const char *path, const ctl_handlers_t *h, void *ud, ctl_t **out,
            char *err, size_t errlen)
{
    *out = NULL;
    int rc = clear_old(path, err, errlen);
    if (rc)
        return rc;
    ctl_t *ctl = g_new0(ctl_t, 1);
    ctl->ctx = ctx;
    ctl->h = *h;
    ctl->ud = ud;
    GError *e = NULL;
    ctl->listener =
        g_socket_new(G_SOCKET_FAMILY_UNIX, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, &e);
    GSocketAddress *a = g_unix_socket_address_new(path);
    mode_t old = umask(0177); /* the file is born 0600 */
    bool ok = ctl->listener && g_socket_bind(ctl->listener, a, FALSE, &e) &&
              g_socket_listen(ctl->listener, &e);
    umask(old);
    g_object_unref(a);
    if (!ok) {
        snprintf(err, errlen, "cannot listen on %s: %s", path, e ? e->message : "?");
        if (e)
            g_error_free(e);
        ctl_free(ctl);
        return BL_EIO;
    }
    ctl->path = g_strdup(path);
    chmod(path, 0600);
    g_socket_set_blocking(ctl->listener, FALSE);
    ctl->accept_src = loop_attach(ctx, g_socket_create_source(ctl->listener, G_IO_IN, NULL),
                                  (GSourceFunc)(void (*)(void))on_accept, ctl);
    *out = ctl;
    return 0;
}

void ctl_free(ctl_t *ctl)
{
    if (!ctl)
        return;
    while (ctl->clients)
        client_free(ctl->clients->data);
    loop_cancel(&ctl->accept_src);
    if (ctl->listener) {
        g_socket_close(ctl->listener, NULL);
        g_object_unref(ctl->listener);
    }
    if (ctl->path)
        unlink(ctl->path);
    g_free(ctl->path);
    g_free(ctl);
}
