/* SPDX-License-Identifier: MIT */
/* sctp.h - SCTP (usrsctp, AF_CONN) over DTLS, with WebRTC data channels (RFC 8831).
 *
 * usrsctp is initialised once with usrsctp_init_nothreads and its timers are driven
 * from the GMainContext, so every callback runs on the daemon's one thread. Port 5000
 * both ends, both sides connect. The DTLS client opens channels on even stream ids,
 * the server on odd (RFC 8832 6). Path MTU discovery off, MTU 1200 - overheads, so
 * SCTP packets are never fragmented by DTLS. */
#ifndef BL_SCTP_H
#define BL_SCTP_H

#include <glib.h>

#include "common.h"

typedef struct sctp sctp_t;

typedef struct sctp_events {
    /* An SCTP packet to encrypt and send (dtls_send). */
    int (*send)(void *ud, const uint8_t *buf, size_t len);
    /* The association is up (both can open channels now). */
    void (*on_connected)(void *ud);
    /* A channel is open: ours after the peer's ACK, theirs when its OPEN arrived. */
    void (*on_channel_open)(void *ud, uint16_t stream, const char *label);
    /* One whole message on an open channel (ppid 51/53; 56/57 give len 0). */
    void (*on_message)(void *ud, uint16_t stream, uint32_t ppid, const uint8_t *buf, size_t len);
    /* Send buffer drained below half: sctp_send may be called again after EAGAIN. */
    void (*on_writable)(void *ud);
    /* The association went down (abort, shutdown, peer restart), or the peer closed one
     * of the channels (stream reset, RFC 8831 6.7): for this daemon's one channel that
     * is the same thing. */
    void (*on_closed)(void *ud, const char *why);
} sctp_events_t;

typedef struct sctp_opts {
    const char *who;
    bool dtls_client;   /* chooses even/odd stream ids */
    size_t max_message; /* largest message we send/accept (default 262144) */
    /* Send and receive buffer, i.e. what may be in flight each way (default 1 MiB; at
     * least twice max_message). */
    size_t window;
    /* What the datagram socket below takes at once before it refuses a send (the
     * kernel's SO_SNDBUF; 0: unknown, no limit): a window kept across a pause goes out in
     * one burst and is held to it (restart_after_idle in sctp.c). */
    size_t send_buffer;
    /* How long an unused window is kept, ms (0: 5 minutes; tests set it shorter). */
    unsigned idle_keep_ms;
} sctp_opts_t;

/* Process-wide init (idempotent); sctp_new calls it. */
int sctp_global_init(GMainContext *ctx);
/* Process-wide teardown (usrsctp_finish) once every sctp_t is freed; a no-op while one
 * is alive. For tests and a clean exit; sctp_global_init may be called again after. */
void sctp_global_finish(void);

sctp_t *sctp_new(GMainContext *ctx, const sctp_opts_t *opts, const sctp_events_t *ev, void *ud);
/* Start the association (call when DTLS is connected). */
int sctp_start(sctp_t *s);
/* One decrypted DTLS record from the peer. */
int sctp_feed(sctp_t *s, const uint8_t *buf, size_t len);
/* Open a data channel with DCEP; returns the stream id (>= 0) or <0. `max_rtx` < 0 means
 * fully reliable; `ordered` false sets the unordered bit. */
int sctp_open_channel(sctp_t *s, const char *label, bool ordered, int max_rtx);
/* Send one message (binary, PPID 53; empty as PPID 57). BL_EAGAIN when the send buffer
 * is full: keep the message and retry after on_writable. */
int sctp_send(sctp_t *s, uint16_t stream, const uint8_t *buf, size_t len);
/* Bytes queued in the association's send buffer. */
size_t sctp_buffered(const sctp_t *s);
/* About how many of those bytes have not been sent yet (they wait for the congestion or
 * receive window); an estimate from the chunks in flight. With notify_below > 0 and a
 * backlog at least that large, ev->on_writable comes once it is smaller. */
size_t sctp_backlog(sctp_t *s, size_t notify_below);

/* Where the association's windows stand (SCTP_STATUS, RFC 6458 8.2.1). */
typedef struct sctp_info {
    uint32_t cwnd;      /* congestion window of the path, bytes */
    uint32_t peer_rwnd; /* the peer's receive window as last advertised, less our flight */
    uint32_t srtt_ms, rto_ms, mtu;
    uint32_t unacked;       /* DATA chunks sent and not yet acknowledged */
    uint32_t pending;       /* DATA chunks received, not yet read (sstat_penddata) */
    size_t sndbuf_used;     /* bytes in the send buffer (unsent + unacknowledged) */
    uint64_t idle_restarts; /* sends after an idle second that started congestion afresh */
} sctp_info_t;
int sctp_get_info(const sctp_t *s, sctp_info_t *out);

/* Process-wide counters of usrsctp (all associations): retransmissions and the like. */
typedef struct sctp_counters {
    uint64_t data_out, data_in;       /* DATA chunks sent (first time) and received */
    uint64_t retrans, fast_retrans;   /* DATA chunks retransmitted: in all, by fast retransmit */
    uint64_t t3_timeouts;             /* retransmission timer expiries */
    uint64_t dup_in;                  /* duplicate DATA chunks received */
    uint64_t sacks_out, sacks_in;     /* SACK chunks sent and received */
    uint64_t packets_out, packets_in; /* SCTP packets */
    uint64_t sack_timeouts;           /* delayed-SACK timer expiries */
    uint64_t burst_limited;           /* times max burst held data back */
} sctp_counters_t;
void sctp_get_counters(sctp_counters_t *out);
/* Stop (true) or resume reading: while stopped, what the peer sends stays in the
 * association's receive buffer and its window closes, which stops the peer. */
void sctp_pause_rx(sctp_t *s, bool pause);
/* Aborts the association locally. Nothing reaches ev->send or any callback after this
 * returns (the ABORT is not sent: the peer learns from DTLS close_notify). Safe from
 * inside a callback. */
void sctp_free(sctp_t *s);

#endif
