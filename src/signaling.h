/* SPDX-License-Identifier: MIT */
/* signaling.h - signalling over the [signal] MQTT broker, sealed (seal.h).
 *
 * Each site subscribes to its own inbox topic (derived from the network secret and its
 * name, opaque to the broker) and publishes to the peer's inbox. Every message that
 * comes in goes through sigcheck.h (authenticated, fresh, addressed to us, from a
 * configured peer, not replayed, signed by its pinned key); anything else is dropped,
 * logged at the 1st, 2nd, 4th, ... time of each kind, and counted.
 * The MQTT client id is derived from the inbox, so the broker never sees a site name.
 * Every message is also signed with the sender's site key and carries its certificate:
 * the secret hides, the pinned fingerprints authenticate (docs/PROTOCOL.md). */
#ifndef BL_SIGNALING_H
#define BL_SIGNALING_H

#include <glib.h>

#include "cert.h"
#include "config.h"
#include "seal.h"

typedef struct signaling signaling_t;

typedef struct signaling_stats {
    uint64_t sent, received;
    uint64_t bad;         /* undecryptable or malformed */
    uint64_t stale;       /* outside the time window */
    uint64_t replayed;    /* its signed bytes seen before (sigcheck.h) */
    uint64_t misdirected; /* not addressed to us, or from ourselves */
    uint64_t unknown_peer;
    uint64_t bad_signature; /* not signed by the peer's pinned certificate */
    uint64_t late;          /* an offer or restart not newer than the last one */
    uint64_t flood;         /* past the peer's replay cache (SIGCHECK_MAX_SEEN) */
} signaling_stats_t;

typedef struct signaling_events {
    void (*on_connect)(void *ud);
    /* A valid message from configured peer m->from. Borrowed for the call. */
    void (*on_message)(void *ud, const seal_msg_t *m);
} signaling_events_t;

/* cert: our identity, which signs every message we send. */
signaling_t *signaling_new(GMainContext *ctx, const config_t *cfg, const cert_t *cert,
                           const signaling_events_t *ev, void *ud);
int signaling_start(signaling_t *s);
/* A reloaded config whose [site] and [signal] are unchanged: its peer list from now on
 * (cfg must outlive s or the next rebind). */
int signaling_rebind(signaling_t *s, const config_t *cfg);
int signaling_send(signaling_t *s, const char *to, const char *type, const char *sid,
                   const char *body);
bool signaling_connected(const signaling_t *s);
const signaling_stats_t *signaling_stats(const signaling_t *s);
void signaling_free(signaling_t *s);

#endif
