/* SPDX-License-Identifier: MIT */
/* transport.h - the seam between a peer link and the pipe that carries its frames.
 *
 * link.c drives one transport per connection attempt through this interface and does
 * not know what is underneath. Implementations:
 *   rtc.c     the secure WebRTC data channel: ICE (ice.c) -> DTLS (dtls.c) -> SCTP with
 *             DCEP (sctp.c), one reliable ordered channel "brokerless".
 *   (later)   the ESP32 example's raw ICE datagrams with its framing, plaintext.
 * Signalling content is opaque to link.c: the transport emits (type, body) pairs that
 * link.c seals and sends, and accepts the peer's. */
#ifndef BL_TRANSPORT_H
#define BL_TRANSPORT_H

#include "common.h"

typedef struct transport transport_t;

typedef struct transport_events {
    /* Send a signalling message to the peer: type "offer", "answer", "cand", "eoc". */
    void (*signal)(void *ud, const char *type, const char *body);
    /* One step of the way up, for the link's log: ("ice", "connected srflx") etc. */
    void (*on_step)(void *ud, const char *layer, const char *what);
    /* The channel is open: frames may be sent. */
    void (*on_open)(void *ud);
    /* The pipe is dead for good (ICE failed, DTLS refused, SCTP closed). The link frees
     * the transport (never from inside this callback) and retries with a new one. */
    void (*on_failed)(void *ud, const char *why);
    /* One whole frame from the peer. */
    void (*on_frame)(void *ud, const uint8_t *buf, size_t len);
    /* Room to send again after BL_EAGAIN. */
    void (*on_writable)(void *ud);
} transport_events_t;

/* Where the pipe's windows stand, for the log and benchmarks (link.c traces it at debug
 * level). Fields a transport does not have stay 0. */
typedef struct transport_stats {
    size_t buffered;    /* bytes accepted and not yet acknowledged by the peer */
    uint32_t cwnd;      /* congestion window, bytes */
    uint32_t peer_rwnd; /* what the peer's receive window leaves us, bytes */
    uint32_t srtt_ms, rto_ms;
    uint32_t unacked, unsent; /* chunks in flight / queued behind them */
    /* Counters of the whole process, since it started. */
    uint64_t retrans, fast_retrans, timeouts, delayed_acks, burst_limited;
    uint64_t packets_out, packets_in;
} transport_stats_t;

typedef struct transport_ops {
    const char *name;
    /* The offerer gathers and emits an "offer"; the answerer waits for one. */
    int (*start)(transport_t *t);
    /* A signalling message from the peer for this session. */
    int (*signal_in)(transport_t *t, const char *type, const char *body);
    /* One frame (<= WIRE_MAX_CHUNK). BL_EAGAIN: buffer full, keep it, wait on_writable. */
    int (*send)(transport_t *t, const uint8_t *buf, size_t len);
    /* Bytes accepted but not yet sent. */
    size_t (*buffered)(const transport_t *t);
    /* Bytes accepted that wait behind those in flight (not sent yet). With notify_below > 0
     * and at least that much waiting, on_writable comes once less waits. NULL: unknown. */
    size_t (*backlog)(transport_t *t, size_t notify_below);
    /* Stop (true) or resume handing frames up. A pipe with flow control leaves the
     * peer's frames in its receive buffer, whose window then stops the peer; one without
     * may drop them. NULL: not supported (frames keep coming). */
    void (*pause_rx)(transport_t *t, bool pause);
    /* Fill *out (transport_stats_t); NULL: no figures. */
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

#endif
