/* SPDX-License-Identifier: MIT */
/* echo.h - recognising our own publishes when the local broker sends them back.
 *
 * With delivery = exactly-once, what brokerless injects from a peer at QoS 1 or 2 (or
 * retained) goes in over a second connection, so its persistent session, which
 * subscribes with No Local, gets it back: the echo. The echo is the broker's proof that
 * it took the message, and it is how split horizon is kept (an echo is never routed
 * out). Since the session is persistent, echoes of what the broker took just before a
 * crash are delivered after the restart, which makes "delivered" knowable across a
 * crash (site_in.c). What is injected over the persistent session itself (everything with
 * delivery = at-least-once, plain QoS 0 with exactly-once) has no echo (No Local): its
 * record has no key, only maps the publish token to its peer and ends at the PUBACK
 * (or, for QoS 0, once written). Records are keyed by topic and a digest of the
 * payload; identical messages in flight at once are matched oldest first. Pure data
 * structure. */
#ifndef BL_ECHO_H
#define BL_ECHO_H

#include "common.h"

typedef struct echo_rec {
    char origin[BL_SITE_NAME_MAX + 1];
    uint64_t seq;   /* 0: an unsequenced QoS 0 message */
    uint64_t token; /* local publish token, 0 when recovered from the database */
    void *peer;     /* the link's context, NULL when recovered */
    bool acked;     /* the broker acknowledged it and the peer was told */
    bool recovered; /* loaded at start from the in-doubt table */
    int64_t t_ms;   /* when it was added (monotonic) */
    char *key;      /* NULL for a record found only by its token */
} echo_rec_t;

typedef struct echo echo_t;

echo_t *echo_new(void);
void echo_free(echo_t *e);
/* "topic\x1f<32 hex of SHA-256(payload)>" (malloc). */
char *echo_key(const char *topic, const uint8_t *payload, size_t len);
/* key NULL: a record found only by its token (at-least-once: no echo to match). */
echo_rec_t *echo_add(echo_t *e, const char *key, const char *origin, uint64_t seq, uint64_t token,
                     void *peer, bool recovered);
/* The oldest record waiting for this key, removed (free with echo_rec_free), or NULL. */
echo_rec_t *echo_take(echo_t *e, const char *key);
/* The record published with `token` (still in the map), or NULL. */
echo_rec_t *echo_by_token(echo_t *e, uint64_t token);
/* The record published with `token`, removed (free with echo_rec_free), or NULL: for
 * at-least-once delivery, where no echo comes and the PUBACK ends the record. */
echo_rec_t *echo_take_token(echo_t *e, uint64_t token);
/* Remove every record for which pred is true, handing each to done (which frees it). */
void echo_sweep(echo_t *e, bool (*pred)(const echo_rec_t *r, void *ud),
                void (*done)(echo_rec_t *r, void *ud), void *ud);
/* The peer is gone (a reload removed it): its records keep waiting, with peer NULL, as
 * recovered ones do. */
void echo_forget_peer(echo_t *e, const void *peer);
size_t echo_count(const echo_t *e);
/* Whether any record waits for an echo (has a key): else no local message can be one. */
bool echo_waiting(const echo_t *e);
void echo_rec_free(echo_rec_t *r);

#endif
