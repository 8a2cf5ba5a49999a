/* SPDX-License-Identifier: MIT */
/* dtls.c - DTLS 1.2 over caller-provided datagrams (RFC 6347), the WebRTC way
 * (RFC 8827 6.5): self-signed certificates, identity = the pinned SHA-256 fingerprint.
 *
 * Re-entrancy: every entry point (feed, send, start, timers) holds the guard; dtls_free
 * called from inside a callback only marks the object and the outermost entry point
 * destroys it on the way out. No callback is made after dtls_free. */
#include "dtls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log.h"
#include "loop.h"

#define DTLS_DEFAULT_MTU 1200
#define DTLS_HANDSHAKE_TIMEOUT_MS 30000
/* RFC 6347 4.2.4.1 suggests 1 s; RFC 9147 5.8.2 allows less. 400 ms doubling up to 8 s
 * gives 7 retransmissions inside the 30 s budget and recovers quickly from a lost
 * flight on ordinary paths. */
#define DTLS_RETX_INITIAL_US 400000u
#define DTLS_RETX_MAX_US 8000000u

/* AEAD suites only: a fixed, small per-record overhead (13 header + 24 for GCM at most)
 * lets sctp.c size its packets to fit one record in one datagram; every browser and
 * WebRTC stack offers these. */
#define DTLS_CIPHERS                                                                               \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"

typedef enum { ST_NEW, ST_HANDSHAKE, ST_CONNECTED, ST_FAILED } dtls_state_t;

struct dtls {
    GMainContext *ctx;
    char who[80];
    char expected_fp[96];
    char peer_fp[96];
    dtls_events_t ev;
    void *ud;
    bool client;
    unsigned mtu;
    dtls_state_t state;
    bool fp_mismatch;

    SSL_CTX *sctx;
    SSL *ssl;
    BIO *rbio; /* owned by ssl once attached */
    BIO_METHOD *wmeth;

    GSource *retx;     /* OpenSSL's retransmission timer */
    GSource *deadline; /* whole-handshake limit */

    loop_guard_t guard; /* entry points on the stack; dtls_free while inside waits */
};

/* Entry points enter d->guard and leave it with loop_leave_destroy(..., destroy, d). */
static void destroy(void *p);

static void fail(dtls_t *d, const char *why)
{
    if (d->state == ST_FAILED || d->guard.freed)
        return;
    d->state = ST_FAILED;
    loop_cancel(&d->retx);
    loop_cancel(&d->deadline);
    LOG_WARN(d->who, "dtls: failed: %s", why);
    if (d->ev.on_failed)
        d->ev.on_failed(d->ud, why);
}

/* The most useful OpenSSL error text for a log line ("tlsv1 alert bad certificate"). */
static const char *ssl_reason(dtls_t *d, char *buf, size_t len)
{
    if (d->fp_mismatch)
        return "peer certificate fingerprint mismatch";
    unsigned long e = ERR_peek_last_error();
    if (!e)
        return "handshake failed";
    const char *r = ERR_reason_error_string(e);
    snprintf(buf, len, "%s", r ? r : "handshake failed");
    return buf;
}

/* ---- write side: one BIO_write = one datagram -------------------------------------------- */

static int wbio_write(BIO *b, const char *buf, int len)
{
    dtls_t *d = BIO_get_data(b);
    if (len <= 0)
        return 0;
    /* A lost datagram is normal for DTLS: the record layer or SCTP retransmits, so a
     * send error is not reported to OpenSSL. */
    if (d && !d->guard.freed && d->ev.send)
        d->ev.send(d->ud, (const uint8_t *)buf, (size_t)len);
    return len;
}

static long wbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    dtls_t *d = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* every write already left as a datagram */
    case BIO_CTRL_DGRAM_QUERY_MTU:
    case BIO_CTRL_DGRAM_GET_MTU:
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU:
        return d ? (long)d->mtu : DTLS_DEFAULT_MTU;
    case BIO_CTRL_DGRAM_GET_MTU_OVERHEAD: /* the caller's mtu is already the payload size */
    case BIO_CTRL_WPENDING:
    case BIO_CTRL_PENDING:
    case BIO_CTRL_DGRAM_MTU_EXCEEDED:
    default:
        return 0;
    }
}

static int wbio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static BIO_METHOD *wbio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "bl-dtls-dgram");
    if (!m)
        return NULL;
    if (!BIO_meth_set_write(m, wbio_write) || !BIO_meth_set_ctrl(m, wbio_ctrl) ||
        !BIO_meth_set_create(m, wbio_create)) {
        BIO_meth_free(m);
        return NULL;
    }
    return m;
}

/* ---- certificate pinning --------------------------------------------------------------- */

/* Replaces OpenSSL's chain verification (so a self-signed leaf is acceptable by
 * construction) and runs while the peer's Certificate message is processed: returning 0
 * aborts the handshake with a bad_certificate alert before any application data can
 * flow (RFC 8827 6.5 / RFC 8122 5). The identity is the leaf's SHA-256 fingerprint. */
static int verify_cert_cb(X509_STORE_CTX *xs, void *arg)
{
    (void)arg;
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    dtls_t *d = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *leaf = X509_STORE_CTX_get0_cert(xs);
    char fp[96];
    if (!d || !leaf || cert_fingerprint_of(leaf, fp)) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_UNSPECIFIED);
        return 0;
    }
    snprintf(d->peer_fp, sizeof(d->peer_fp), "%s", fp);
    if (strcasecmp(fp, d->expected_fp) != 0) {
        d->fp_mismatch = true;
        LOG_WARN(d->who, "dtls: refusing peer certificate: expected fingerprint %s, presented %s",
                 d->expected_fp, fp);
        X509_STORE_CTX_set_error(xs, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    return 1;
}

/* Start small and double (see DTLS_RETX_INITIAL_US). */
static unsigned int retx_timer_cb(SSL *ssl, unsigned int timer_us)
{
    (void)ssl;
    if (timer_us == 0)
        return DTLS_RETX_INITIAL_US;
    return timer_us >= DTLS_RETX_MAX_US / 2 ? DTLS_RETX_MAX_US : timer_us * 2;
}

static void info_cb(const SSL *ssl, int where, int ret)
{
    dtls_t *d = SSL_get_app_data(ssl);
    if (d && (where & SSL_CB_ALERT))
        LOG_INFO(d->who, "dtls: %s alert %s %s", (where & SSL_CB_READ) ? "received" : "sent",
                 SSL_alert_type_string_long(ret), SSL_alert_desc_string_long(ret));
}

static int setup_ctx(dtls_t *d, const cert_t *cert)
{
    d->sctx = SSL_CTX_new(DTLS_method());
    if (!d->sctx)
        return BL_EIO;
    SSL_CTX *c = d->sctx;
    /* No renegotiation: WebRTC never uses it (RFC 8827), and refusing it removes a way to
     * swap the certificate or burn CPU mid-session. No resumption: every handshake must
     * pass through verify_cert_cb. */
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET | SSL_OP_NO_QUERY_MTU);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    if (!SSL_CTX_set_min_proto_version(c, DTLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(c, DTLS_CIPHERS) ||
        !SSL_CTX_set1_groups_list(c, "X25519:P-256:P-384") ||
        SSL_CTX_use_certificate(c, cert->x509) != 1 || SSL_CTX_use_PrivateKey(c, cert->key) != 1 ||
        SSL_CTX_check_private_key(c) != 1)
        return BL_EIO;
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    SSL_CTX_set_cert_verify_callback(c, verify_cert_cb, NULL);
    return 0;
}

static int setup_ssl(dtls_t *d)
{
    d->ssl = SSL_new(d->sctx);
    d->rbio = BIO_new(BIO_s_mem());
    d->wmeth = wbio_method();
    BIO *wbio = d->wmeth ? BIO_new(d->wmeth) : NULL;
    if (!d->ssl || !d->rbio || !wbio) {
        BIO_free(wbio);
        return BL_EIO;
    }
    BIO_set_data(wbio, d);
    /* An empty memory BIO means "no datagram yet", not end of file. */
    BIO_set_mem_eof_return(d->rbio, -1);
    SSL_set_bio(d->ssl, d->rbio, wbio); /* ssl owns both from here */
    SSL_set_app_data(d->ssl, d);
    SSL_set_info_callback(d->ssl, info_cb);
    DTLS_set_timer_cb(d->ssl, retx_timer_cb);
    DTLS_set_link_mtu(d->ssl, d->mtu);
    if (!SSL_set_mtu(d->ssl, d->mtu))
        return BL_EINVAL;
    if (d->client)
        SSL_set_connect_state(d->ssl);
    else
        SSL_set_accept_state(d->ssl);
    return 0;
}

dtls_t *dtls_new(GMainContext *ctx, const dtls_opts_t *opts, const dtls_events_t *ev, void *ud)
{
    if (!opts || !opts->cert || !opts->expected_fp || !ev || !ev->send)
        return NULL;
    dtls_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    snprintf(d->who, sizeof(d->who), "%s", opts->who ? opts->who : "dtls");
    snprintf(d->expected_fp, sizeof(d->expected_fp), "%s", opts->expected_fp);
    d->ev = *ev;
    d->ud = ud;
    d->client = opts->client;
    d->mtu = opts->mtu ? opts->mtu : DTLS_DEFAULT_MTU;
    if (setup_ctx(d, opts->cert) || setup_ssl(d))
        goto error;
    return d;
error:
    LOG_ERROR(d->who, "dtls: setup failed: %s", ERR_reason_error_string(ERR_peek_last_error()));
    ERR_clear_error();
    destroy(d);
    return NULL;
}

/* ---- timers ---------------------------------------------------------------------------- */

static gboolean retx_fire(gpointer p);

/* Follow OpenSSL's own retransmission timer after every call that may have changed it. */
static void arm_retx(dtls_t *d)
{
    loop_cancel(&d->retx);
    struct timeval tv;
    if (d->guard.freed || d->state == ST_FAILED || !DTLSv1_get_timeout(d->ssl, &tv))
        return;
    guint ms = (guint)(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
    d->retx = loop_timeout(d->ctx, ms ? ms : 1, retx_fire, d);
}

static gboolean retx_fire(gpointer p)
{
    dtls_t *d = p;
    loop_enter(&d->guard);
    d->retx = NULL; /* this source is finished: arm_retx makes a new one */
    ERR_clear_error();
    if (DTLSv1_handle_timeout(d->ssl) < 0) {
        char buf[128];
        fail(d, ssl_reason(d, buf, sizeof(buf)));
    } else {
        arm_retx(d);
    }
    loop_leave_destroy(&d->guard, destroy, d);
    return G_SOURCE_REMOVE;
}

static gboolean deadline_fire(gpointer p)
{
    dtls_t *d = p;
    loop_enter(&d->guard);
    d->deadline = NULL;
    if (d->state != ST_CONNECTED)
        fail(d, "handshake timeout (30 s)");
    loop_leave_destroy(&d->guard, destroy, d);
    return G_SOURCE_REMOVE;
}

/* ---- handshake and records -------------------------------------------------------------- */

/* Defence in depth: the verify callback already ran inside the handshake. */
static int check_peer(dtls_t *d)
{
    X509 *peer = SSL_get0_peer_certificate(d->ssl);
    char fp[96];
    if (!peer || cert_fingerprint_of(peer, fp) || strcasecmp(fp, d->expected_fp) != 0)
        return BL_EAUTH;
    snprintf(d->peer_fp, sizeof(d->peer_fp), "%s", fp);
    return 0;
}

static void handshake_done(dtls_t *d)
{
    loop_cancel(&d->deadline);
    if (check_peer(d)) {
        fail(d, "peer certificate missing or not the pinned one");
        return;
    }
    d->state = ST_CONNECTED;
    LOG_INFO(d->who, "dtls: connected as %s, %s %s, peer fingerprint verified",
             d->client ? "client" : "server", SSL_get_version(d->ssl), SSL_get_cipher_name(d->ssl));
    if (d->ev.on_connected)
        d->ev.on_connected(d->ud);
}

static void drive_handshake(dtls_t *d)
{
    ERR_clear_error();
    int r = SSL_do_handshake(d->ssl);
    if (r == 1) {
        handshake_done(d);
    } else {
        int e = SSL_get_error(d->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            char buf[128];
            fail(d, ssl_reason(d, buf, sizeof(buf)));
        }
    }
    if (!d->guard.freed)
        arm_retx(d);
}

/* Decrypt every record the datagram held; the handshake may also have left some. */
static void read_records(dtls_t *d)
{
    uint8_t buf[16384 + 256];
    while (d->state == ST_CONNECTED && !d->guard.freed) {
        ERR_clear_error();
        int n = SSL_read(d->ssl, buf, sizeof(buf));
        if (n > 0) {
            if (d->ev.on_data)
                d->ev.on_data(d->ud, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(d->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            fail(d, "peer closed the connection (close_notify)");
        } else {
            char rb[128];
            fail(d, ssl_reason(d, rb, sizeof(rb)));
        }
    }
    if (!d->guard.freed && d->state == ST_CONNECTED)
        arm_retx(d); /* a retransmitted final flight may have been answered */
}

static void start_locked(dtls_t *d)
{
    d->state = ST_HANDSHAKE;
    d->deadline = loop_timeout(d->ctx, DTLS_HANDSHAKE_TIMEOUT_MS, deadline_fire, d);
    LOG_DEBUG(d->who, "dtls: handshake started as %s", d->client ? "client" : "server");
    if (d->client)
        drive_handshake(d); /* sends the ClientHello */
}

int dtls_start(dtls_t *d)
{
    if (!d || d->guard.freed)
        return BL_EINVAL;
    if (d->state != ST_NEW)
        return d->state == ST_FAILED ? BL_ESTATE : 0;
    loop_enter(&d->guard);
    start_locked(d);
    loop_leave_destroy(&d->guard, destroy, d);
    return 0;
}

int dtls_feed(dtls_t *d, const uint8_t *buf, size_t len)
{
    if (!d || d->guard.freed || !buf || len == 0 || len > INT32_MAX)
        return BL_EINVAL;
    if (d->state == ST_FAILED)
        return BL_ESTATE;
    loop_enter(&d->guard);
    /* The peer may finish ICE first and send its ClientHello before our caller has
     * called dtls_start: start now rather than drop it. */
    if (d->state == ST_NEW)
        start_locked(d);
    if (!d->guard.freed && d->state != ST_FAILED) {
        BIO_write(d->rbio, buf, (int)len);
        if (d->state == ST_HANDSHAKE)
            drive_handshake(d);
        read_records(d);
        /* Whatever OpenSSL did not take (garbage after a fatal error) must not be read
         * later as part of the next datagram. */
        if (!d->guard.freed)
            (void)BIO_reset(d->rbio);
    }
    loop_leave_destroy(&d->guard, destroy, d);
    return 0;
}

int dtls_send(dtls_t *d, const uint8_t *buf, size_t len)
{
    if (!d || d->guard.freed || !buf || len == 0)
        return BL_EINVAL;
    if (d->state != ST_CONNECTED)
        return BL_ESTATE;
    if (len > 16384)
        return BL_ETOOBIG;
    loop_enter(&d->guard);
    ERR_clear_error();
    int n = SSL_write(d->ssl, buf, (int)len);
    int rc = 0;
    if (n <= 0) {
        int e = SSL_get_error(d->ssl, n);
        LOG_DEBUG(d->who, "dtls: write failed (%d)", e);
        rc = BL_EIO;
    }
    loop_leave_destroy(&d->guard, destroy, d);
    return rc;
}

bool dtls_connected(const dtls_t *d)
{
    return d && !d->guard.freed && d->state == ST_CONNECTED;
}

const char *dtls_peer_fingerprint(const dtls_t *d)
{
    return d ? d->peer_fp : "";
}

static void destroy(void *p)
{
    dtls_t *d = p;
    loop_cancel(&d->retx);
    loop_cancel(&d->deadline);
    if (d->ssl)
        SSL_free(d->ssl); /* frees both BIOs */
    else
        BIO_free(d->rbio);
    BIO_meth_free(d->wmeth);
    SSL_CTX_free(d->sctx);
    if (d->ctx)
        g_main_context_unref(d->ctx);
    free(d);
}

void dtls_free(dtls_t *d)
{
    if (!d || d->guard.freed)
        return;
    /* Tell the peer at once (RFC 5246 7.2.1) instead of letting it time out; this is
     * the last thing ev->send sees. */
    if (d->state == ST_CONNECTED && !d->guard.depth) {
        ERR_clear_error();
        SSL_shutdown(d->ssl);
    }
    bool now = loop_free(&d->guard);
    loop_cancel(&d->retx);
    loop_cancel(&d->deadline);
    if (now)
        destroy(d);
}
