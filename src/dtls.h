/* SPDX-License-Identifier: MIT */
/* dtls.h - DTLS 1.2 (OpenSSL) over datagrams handed in and out by the caller.
 *
 * Read side: a memory BIO fed with dtls_feed(). Write side: a BIO that emits each record
 * flight as exactly one datagram through ev->send. Retransmission timers run on the
 * GMainContext. The peer's certificate is checked against `expected_fp` inside the
 * handshake (verify callback), so a mismatch aborts it; the log line carries both
 * fingerprints. Certificate: ECDSA P-256 from cert.h. RFC 7983 demultiplexing (first byte
 * 20..63 is DTLS) is the caller's job. */
#ifndef BL_DTLS_H
#define BL_DTLS_H

#include <glib.h>

#include "cert.h"
#include "common.h"

typedef struct dtls dtls_t;

typedef struct dtls_events {
    /* Send one datagram to the peer. */
    int (*send)(void *ud, const uint8_t *buf, size_t len);
    void (*on_connected)(void *ud);
    /* Decrypted application data (one DTLS record = one SCTP packet). */
    void (*on_data)(void *ud, const uint8_t *buf, size_t len);
    /* Handshake failed, fingerprint mismatch, timeout (30 s) or close_notify. */
    void (*on_failed)(void *ud, const char *why);
} dtls_events_t;

typedef struct dtls_opts {
    const char *who;         /* log prefix */
    const cert_t *cert;      /* ours */
    const char *expected_fp; /* the peer's pinned "AB:CD:.." */
    bool client;             /* DTLS client (the answerer, a=setup:active) */
    unsigned mtu;            /* datagram size limit, default 1200 */
} dtls_opts_t;

dtls_t *dtls_new(GMainContext *ctx, const dtls_opts_t *opts, const dtls_events_t *ev, void *ud);
/* Begin the handshake (the client sends ClientHello; the server waits). */
int dtls_start(dtls_t *d);
/* One datagram from the peer. */
int dtls_feed(dtls_t *d, const uint8_t *buf, size_t len);
/* Encrypt and send application data. BL_ESTATE before the handshake completes. */
int dtls_send(dtls_t *d, const uint8_t *buf, size_t len);
bool dtls_connected(const dtls_t *d);
/* The fingerprint the peer presented ("" before it did). */
const char *dtls_peer_fingerprint(const dtls_t *d);
/* When connected, sends close_notify through ev->send first (so free the DTLS before the
 * ICE agent under it); after that no callback is made. Safe from inside a callback. */
void dtls_free(dtls_t *d);

#endif
