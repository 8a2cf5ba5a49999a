/* SPDX-License-Identifier: MIT */
/* compat.h - the transport to an ESP32 running Espressif's serverless_mqtt example
 * (libjuice variant), see transport.h: raw ICE datagrams, plaintext, no flow control.
 *
 * One attempt: the example's signalling (espsig.h) finds the board; once it has
 * answered, an ICE agent (ice.c: STUN and TURN from [ice]) gathers every candidate, and
 * its description goes out as the board writes its own; the board's comes in with all
 * of its candidates (no trickle). We are ICE-controlled: the board's libjuice takes the
 * controlling role whenever it describes itself first, which the example always does
 * (RFC 8445 7.3.1.1 settles it by tie-breaker should a peer claim the same role). The
 * pipe is open when ICE has a working pair; each frame is one datagram. 90 s for ICE
 * after the descriptions, as the board waits; consent as ice.c keeps it. */
#ifndef BL_COMPAT_H
#define BL_COMPAT_H

#include <glib.h>

#include "config.h"
#include "ice.h"
#include "transport.h"

#define COMPAT_ICE_MS 90000

typedef struct compat_opts {
    const char *who;
    const config_peer_t *peer;
    ice_opts_t ice;       /* controlling is set (false) here */
    uint64_t *bad_signal; /* counts malformed signalling (espsig.h) */
} compat_opts_t;

transport_t *compat_new(GMainContext *ctx, const compat_opts_t *o, const transport_events_t *ev,
                        void *ud);

#endif
