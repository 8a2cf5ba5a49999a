/* SPDX-License-Identifier: MIT */
/* rtc.h - the WebRTC data channel transport (ICE + DTLS + SCTP/DCEP), see transport.h.
 *
 * SDP (RFC 8866/8839/8841) carries ufrag, pwd, fingerprint, setup role and sctp-port;
 * candidates trickle separately. The offerer is ICE-controlling and a=setup:actpass;
 * the answerer says a=setup:active and is the DTLS client. */
#ifndef BL_RTC_H
#define BL_RTC_H

#include <glib.h>

#include "cert.h"
#include "ice.h"
#include "peerid.h"
#include "transport.h"

typedef struct rtc_opts {
    const char *who;
    bool offerer;
    const cert_t *cert;
    const char *peer_fingerprint; /* pinned (peerid.h) */
    /* PEERID_BROWSER: the DTLS certificate must be the one the peer's signed
     * description names, not the pin (peerid.h). */
    peerid_profile_t profile;
    ice_opts_t ice;     /* controlling is set from offerer */
    size_t max_message; /* SCTP message limit, default WIRE_MAX_CHUNK + header room */
    size_t window;      /* bytes in flight each way (sctp_opts_t.window, UDP buffers) */
} rtc_opts_t;

transport_t *rtc_new(GMainContext *ctx, const rtc_opts_t *opts, const transport_events_t *ev,
                     void *ud);

#endif
