/* SPDX-License-Identifier: MIT */
/* transport.h - the seam between a peer link and the pipe that carries its frames.
 *
 * link.c drives one transport per connection attempt through this interface and does
 * not know what is underneath. Transports are made by the kind that the peer's `mode`
 * names (transport_kind(), transport.c: the one place that knows the modes):
 *   webrtc         rtc.c: the secure WebRTC data channel, ICE (ice.c) -> DTLS (dtls.c)
 *                  -> SCTP with DCEP (sctp.c); offer and answer travel over the site's
 *                  sealed signalling, which link.c carries.
 *   esp32-example  compat.c: the ESP32 example's raw ICE datagrams, plaintext; it finds
 *                  the board through the example's own signalling (espsig.c).
 * A transport carries opaque frames; what they hold is the link's framing (framing.h),
 * which the kind names. */
#ifndef BL_TRANSPORT_H
#define BL_TRANSPORT_H

#include <glib.h>

#include "cert.h"
#include "config.h"
#include "framing.h"

typedef struct transport transport_t;

/* Where an attempt stands. Phases only move forward; a transport may report the phase
 * it is in again, with news for the log. */
typedef enum transport_phase {
    TRANSPORT_SIGNALLING = 0, /* meeting the peer: descriptions not yet exchanged */
    TRANSPORT_ICE,            /* both descriptions in: ICE gathers and checks */
    TRANSPORT_DTLS,           /* ICE has a working pair: DTLS secures it */
    TRANSPORT_SCTP,           /* secured: the association and the channel come up */
} transport_phase_t;

/* What a transport of a sealed kind exchanges with its peer through link.c. */
typedef enum transport_sig {
    TRANSPORT_SIG_OFFER = 0,
    TRANSPORT_SIG_ANSWER,
    TRANSPORT_SIG_CAND, /* one trickled candidate */
    TRANSPORT_SIG_EOC,  /* end of candidates */
} transport_sig_t;

typedef struct transport_events {
    /* Sealed kinds: send this to the peer over the site's signalling. */
    void (*signal)(void *ud, transport_sig_t type, const char *body);
    /* Progress: now in `phase`; `what` happened (one line of the link's log). */
    void (*on_step)(void *ud, transport_phase_t phase, const char *what);
    /* The pipe is open: frames may be sent. */
    void (*on_open)(void *ud);
    /* The pipe is dead for good. Reported from an idle callback, never from inside a
     * call into the transport: the link frees it and tries again with a new one. */
    void (*on_failed)(void *ud, const char *why);
    /* One whole frame from the peer. */
    void (*on_frame)(void *ud, const uint8_t *buf, size_t len);
    /* Room to send again after BL_EAGAIN, or the backlog fell under notify_below. */
    void (*on_writable)(void *ud);
} transport_events_t;

/* Where the pipe's windows stand, for the link's debug trace. Fields a transport does
 * not have stay 0. */
typedef struct transport_stats {
    size_t buffered;    /* bytes accepted and not yet acknowledged by the peer */
    uint32_t cwnd;      /* congestion window, bytes */
    uint32_t peer_rwnd; /* what the peer's receive window leaves us, bytes */
    uint32_t srtt_ms, rto_ms;
    uint32_t unacked; /* chunks in flight */
    uint32_t unread;  /* chunks received from the peer, not yet read */
    /* Counters of the whole process, since it started. */
    uint64_t retrans, fast_retrans, timeouts, delayed_acks, burst_limited;
    uint64_t packets_out, packets_in;
    /* This attempt's datagrams: sent in segmented sends (several per sendmsg), and
     * dropped because the socket was full or the path refused them. */
    uint64_t gso_datagrams, dropped_datagrams;
} transport_stats_t;

typedef struct transport_ops {
    const char *name;
    /* Begin the attempt: a sealed offerer gathers and signals its offer, a sealed
     * answerer waits for one; a kind that finds its peer itself starts doing so. */
    int (*start)(transport_t *t);
    /* Sealed kinds: a message from the peer for this attempt. NULL otherwise. */
    int (*signal_in)(transport_t *t, transport_sig_t type, const char *body);
    /* One frame (at most the framing's max_frame). BL_EAGAIN: full, keep it and wait
     * for on_writable; any other error ends the attempt. */
    int (*send)(transport_t *t, const uint8_t *buf, size_t len);
    /* Bytes accepted that wait behind those in flight (not sent yet). With notify_below > 0
     * and at least that much waiting, on_writable comes once less waits. NULL: nothing
     * ever waits (a datagram is sent or dropped). */
    size_t (*backlog)(transport_t *t, size_t notify_below);
    /* Stop (true) or resume handing frames up. A pipe with flow control leaves the
     * peer's frames in its receive buffer, whose window then stops the peer. NULL: no
     * flow control (frames keep coming). */
    void (*pause_rx)(transport_t *t, bool pause);
    /* Fill *out; NULL: no figures. */
    int (*stats)(const transport_t *t, transport_stats_t *out);
    /* "host", "srflx", "prflx", "relay" of the path in use, or "". */
    const char *(*path_type)(const transport_t *t);
    /* "local <-> remote" addresses of the path in use. */
    int (*describe)(const transport_t *t, char *buf, size_t len);
    void (*free)(transport_t *t);
} transport_ops_t;

struct transport {
    const transport_ops_t *ops;
};

/* What the link knows that a transport may need. */
typedef struct transport_args {
    const char *who; /* log prefix: "peer cabin" */
    bool offerer;    /* sealed kinds: we offer and control ICE (our name sorts first) */
    const config_t *cfg;
    const config_peer_t *peer;
    const cert_t *cert;
    uint64_t *bad_signal; /* where malformed signalling from the peer is counted (a kind
                           * with signalling of its own; link_stats) */
} transport_args_t;

/* One kind of peer: how the link meets it, how it frames, how it retries. */
typedef struct transport_kind {
    const char *mode; /* config's [peer] mode */
    const framing_t *framing;
    /* true: offer and answer travel over the site's sealed signalling (link.c carries
     * them, roles from the site names); false: the transport finds its peer itself and
     * the link only starts it, and starts another when it fails. */
    bool sealed;
    /* From the start of an attempt to an open pipe; 0: the transport keeps its own time. */
    unsigned connect_timeout_ms;
    /* Between attempts: from min, doubling up to max, back to min once a pipe opens. */
    unsigned retry_min_ms, retry_max_ms;
    transport_t *(*create)(GMainContext *ctx, const transport_args_t *a,
                           const transport_events_t *ev, void *ud);
} transport_kind_t;

/* The kind of `mode` (config.c accepts only the modes that have one), NULL if none. */
const transport_kind_t *transport_kind(const char *mode);

#endif
