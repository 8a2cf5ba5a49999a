/* SPDX-License-Identifier: MIT */
/* ice.h - one ICE session (RFC 8445) on libnice: one stream, one component, UDP
 * (TCP optional), STUN and TURN from [ice], trickle, consent freshness (RFC 7675).
 *
 * Runs on the daemon's GMainContext. Candidates are SDP attribute lines
 * ("a=candidate:..."), credentials "a=ice-ufrag:X" / "a=ice-pwd:Y". */
#ifndef BL_ICE_H
#define BL_ICE_H

#include <glib.h>

#include "common.h"

typedef struct ice ice_t;

typedef enum {
    ICE_ST_NEW = 0,
    ICE_ST_GATHERING,
    ICE_ST_CONNECTING,
    ICE_ST_CONNECTED, /* a pair works; data may flow */
    ICE_ST_READY,     /* nominated */
    ICE_ST_FAILED,    /* final for this session: restart or recreate */
} ice_state_t;

typedef struct ice_opts {
    const char *who; /* log prefix, e.g. "peer cabin" */
    bool controlling;
    const char *stun_host;
    int stun_port; /* NULL = none */
    const char *turn_host;
    int turn_port; /* NULL = none */
    const char *turn_username, *turn_password;
    bool tcp;                  /* also ICE-TCP candidates */
    bool force_relay;          /* only relay candidates (tests, strict sites) */
    bool send_host_candidates; /* false: keep host candidates to ourselves */
    /* Local addresses to gather host candidates on, NULL-terminated; NULL = every
     * IPv4 address of an up, non-loopback interface (loopback only if there is none).
     * Tests pass {"127.0.0.1", NULL}. Read only during ice_new. */
    const char *const *local_addrs;
    /* UDP receive buffer, bytes: at least what the peer may send at once (0: 4 MiB). */
    size_t recv_buffer;
} ice_opts_t;

typedef struct ice_events {
    /* A local candidate to trickle to the peer: "a=candidate:..." */
    void (*on_candidate)(void *ud, const char *line);
    void (*on_gathering_done)(void *ud);
    void (*on_state)(void *ud, ice_state_t st);
    /* One datagram from the peer (DTLS records, or compat frames). */
    void (*on_recv)(void *ud, const uint8_t *buf, size_t len);
} ice_events_t;

/* Callbacks run on ctx. Any ice_* call is allowed from inside a callback, ice_free too:
 * nothing is called back after ice_free returns. When TURN is configured, keep ctx
 * running a moment after ice_free so the allocation is released. */
ice_t *ice_new(GMainContext *ctx, const ice_opts_t *opts, const ice_events_t *ev, void *ud);
/* Start gathering local candidates (reported through on_candidate). */
int ice_gather(ice_t *ice);
/* Our ufrag and pwd (valid after ice_new, change on restart). */
const char *ice_ufrag(const ice_t *ice);
const char *ice_pwd(const ice_t *ice);
int ice_set_remote_credentials(ice_t *ice, const char *ufrag, const char *pwd);
/* Accepts "a=candidate:...", "candidate:..." and a bare SDP candidate. */
int ice_add_remote_candidate(ice_t *ice, const char *line);
/* The peer has no more candidates (end-of-candidates). */
void ice_remote_gathering_done(ice_t *ice);
int ice_send(ice_t *ice, const uint8_t *buf, size_t len);
/* Like ice_send, but the datagram leaves when this turn of the main loop is over (or
 * when UDPGSO_QUEUE_MAX are waiting), together with the others queued in the turn: on a
 * direct UDP path, runs of equal-size datagrams go as one segmented send (udpgso.h),
 * otherwise through libnice, all in one call. Order is kept. A datagram the socket
 * refuses then (its buffer full) is dropped and counted, as a router would drop it:
 * the transport above retransmits. 0 = queued; the errors of ice_send otherwise, and
 * BL_ETOOBIG above UDPGSO_MAX_BYTES (65,000). */
int ice_queue(ice_t *ice, const uint8_t *buf, size_t len);
typedef struct ice_send_stats {
    uint64_t datagrams;     /* sent from ice_queue */
    uint64_t gso_sends;     /* sendmsg calls that carried more than one of them */
    uint64_t gso_datagrams; /* the datagrams those carried */
    uint64_t dropped;       /* refused by the socket or the path, or the path went away */
} ice_send_stats_t;
ice_send_stats_t ice_send_stats(const ice_t *ice);
/* Bytes the kernel lets our sockets hold before it refuses a send (SO_SNDBUF, as the
 * kernel counts them: about twice a datagram's size each); 0 before ice_gather. */
size_t ice_send_buffer(const ice_t *ice);
/* What to tell the operator when the kernel gave our sockets less buffer than asked:
 * want_* as asked, got_* as getsockopt reports them (twice what was granted). Writes the
 * advice (which sysctl to raise, to what) to buf and returns 1; 0 when both got what they
 * asked (a got_* of 0, unknown, counts as that). Pure. */
int ice_buffer_advice(size_t want_rcv, size_t got_rcv, size_t want_snd, size_t got_snd, char *buf,
                      size_t len);
/* Fresh credentials and candidates, keeping the agent (RFC 8445 9): a new stream is
 * gathered at once (on_candidate/on_gathering_done again); state starts over from
 * GATHERING. Set the peer's new credentials and candidates afterwards. */
int ice_restart(ice_t *ice);
ice_state_t ice_state(const ice_t *ice);
const char *ice_state_name(ice_state_t st);
/* Local/remote type of the selected pair: "host", "srflx", "prflx", "relay" ("" if none). */
const char *ice_local_type(const ice_t *ice);
const char *ice_remote_type(const ice_t *ice);
/* "relay" when either end is a relay, else the "worse" of the two types. */
const char *ice_path_type(const ice_t *ice);
/* "198.18.0.11:40000 <-> 198.18.0.12:50000" of the selected pair. */
int ice_selected_pair(const ice_t *ice, char *buf, size_t len);
void ice_free(ice_t *ice);

#endif
