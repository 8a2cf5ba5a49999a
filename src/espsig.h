/* SPDX-License-Identifier: MIT */
/* espsig.h - the ESP32 example's signalling, our side of one attempt: a connection of its
 * own to the board's broker (clean start, a new random client id, nothing retained), the
 * 0/1/2 handshake with the board's timing, and the exchange of ICE descriptions
 * (espmsg.h). Plaintext: anyone on the broker reads it and may publish there.
 *
 * We publish on <sync_topic><our role> and subscribe to <sync_topic><the board's>, QoS 1,
 * retain 0, as the board does. Timing (the board's):
 *   - 10 s to reach the broker;
 *   - peer1 (we): "0" once a second, 60 times, until the board's "1"; we answer "2".
 *     peer2 (we): each "0" answered with "1" until the board's "2"; 60 s without a
 *     handshake message ends the attempt;
 *   - then both publish their description; the board's must come within 10 s.
 * Once the descriptions are exchanged the connection stays up (the board drops its own),
 * so that a board that reboots as peer1 is seen at its first "0" and the attempt ends.
 * Malformed handshakes and descriptions are counted (*bad) and logged (at WARN the 1st,
 * 2nd, 4th, ... time), and change nothing. */
#ifndef BL_ESPSIG_H
#define BL_ESPSIG_H

#include <glib.h>

#include "config.h"
#include "espmsg.h"

#define ESPSIG_CONNECT_MS 10000
#define ESPSIG_SYNC_PERIOD_MS 1000
#define ESPSIG_SYNC_TRIES 60
#define ESPSIG_DESC_MS 10000

typedef struct espsig espsig_t;

typedef struct espsig_events {
    /* The handshake is done: gather, then espsig_publish_desc. Once. */
    void (*on_synced)(void *ud);
    /* The board's description (borrowed for the call). Once. */
    void (*on_desc)(void *ud, const espmsg_desc_t *d);
    /* The attempt is over (a timeout, or the board started over). Called from a timer or
     * the connection's callback, never from inside an espsig_* call. */
    void (*on_failed)(void *ud, const char *why);
} espsig_events_t;

/* who: log prefix; bad: where malformed messages are counted (outlives the attempt). */
espsig_t *espsig_new(GMainContext *ctx, const char *who, const config_peer_t *peer, uint64_t *bad,
                     const espsig_events_t *ev, void *ud);
int espsig_start(espsig_t *s);
/* Our description (JSON, espmsg_desc_build), once synced. */
int espsig_publish_desc(espsig_t *s, const char *json);
void espsig_free(espsig_t *s);

#endif
