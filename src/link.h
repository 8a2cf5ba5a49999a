/* SPDX-License-Identifier: MIT */
/* link.h - one peer: the session state machine that keeps a pipe to it open.
 *
 *   WAITING -> SIGNALLING -> ICE -> DTLS -> SCTP -> OPEN
 *        ^                                           |
 *        +------ FAILED (retry after backoff) <------+
 *
 * Every attempt is a new transport of the kind the peer's mode names (transport.h);
 * states follow the phases the transport reports (a kind without DTLS goes from ICE to
 * OPEN). A sealed kind meets its peer over the site's sealed signalling: the site whose
 * name sorts first is the offerer and ICE-controlling, retries with backoff (1 s
 * doubling to 30 s, reset when a link opens); the other answers, is the DTLS client, and
 * asks for a fresh offer ("restart") when it starts, when its signalling reconnects and
 * when its side of a session fails. A kind that finds its peer itself is started by
 * link_start() and started again after each failure. Every transition is one log line
 * with the peer's name and step time.
 *
 * Frames are the link's own business (framer.h): it encodes messages, acknowledgements
 * and HELLOs in the kind's framing, queues, packs and fragments them, and decodes,
 * reassembles and hands up what the peer sends. */
#ifndef BL_LINK_H
#define BL_LINK_H

#include <glib.h>

#include "cert.h"
#include "config.h"
#include "seal.h"
#include "wire.h"

typedef struct link link_t;

typedef enum {
    LINK_WAITING = 0, /* for signalling, or for the peer's offer */
    LINK_SIGNALLING,
    LINK_ICE,
    LINK_DTLS,
    LINK_SCTP,
    LINK_OPEN,
    LINK_FAILED,
} link_state_t;

typedef struct link_events {
    /* Send a sealed signalling message to this peer. */
    void (*signal_send)(void *ud, link_t *l, const char *type, const char *sid, const char *body);
    void (*on_open)(void *ud, link_t *l);
    void (*on_down)(void *ud, link_t *l);
    /* A MSG, ACK or HELLO from the peer (owned by the link; valid during the call). A
     * leaf's messages carry its name as origin; an ACK may also be the link's own word
     * that a leaf was handed a message (framer.h). */
    void (*on_frame)(void *ud, link_t *l, const wire_frame_t *f);
    /* link_can_send() or link_can_send_small() may have turned true again. */
    void (*on_writable)(void *ud, link_t *l);
    /* State changed (for status reporting). */
    void (*on_state)(void *ud, link_t *l);
} link_events_t;

typedef struct link_stats {
    uint64_t frames_out, frames_in, bytes_out, bytes_in;
    uint64_t bad_frames; /* undecodable frames from the peer */
    uint64_t too_big;    /* messages over what the peer's framing carries, refused */
    uint64_t bad_signal; /* malformed signalling from the peer (a kind with its own) */
    uint64_t opens, failures;
} link_stats_t;

/* What `brokerless status` shows of a link (link_get_info). */
typedef struct link_info {
    int64_t since_ms;     /* wall clock (bl_wall_ms) of the last change of state */
    char path[8];         /* path type while open, else "" */
    char pair[128];       /* "local <-> remote" addresses while open, else "" */
    uint32_t rtt_ms;      /* the transport's smoothed round trip, 0 when unknown */
    char last_error[160]; /* why the last session failed or went down, "" if none did */
} link_info_t;

/* NULL when the peer's mode has no transport kind. */
link_t *link_new(GMainContext *ctx, const config_t *cfg, const config_peer_t *peer,
                 const cert_t *cert, const link_events_t *ev, void *ud);
/* The site is ready for links (its recovery is over): a link whose kind finds its peer
 * itself starts trying; a sealed one waits for link_signal_up. */
void link_start(link_t *l);
/* The sealed signalling is up: begin (offerer) or ask for an offer (answerer). */
void link_signal_up(link_t *l);
/* A sealed signalling message from this peer. */
void link_signal_in(link_t *l, const seal_msg_t *m);
/* The peer is met over the site's sealed signalling. */
bool link_sealed(const link_t *l);
/* The peer's framing has no origin, sequence, retain or acknowledgement: it cannot take
 * part in a mesh, and reaches the other sites only through this one. */
bool link_leaf(const link_t *l);
/* Queue a message / acknowledgement / HELLO for the peer. BL_ESTATE if not open. */
int link_send_msg(link_t *l, const bl_msg_t *m);
int link_send_ack(link_t *l, const uint64_t *seqs, size_t n);
int link_send_hello(link_t *l, const wire_hello_t *h);
/* Queue a frame already encoded in the link's framing (test tools build them by hand). */
int link_send_frame(link_t *l, const uint8_t *frame, size_t len);
/* Open and not backed up: the caller may send more. */
bool link_can_send(const link_t *l);
/* Open, and room for small messages (framer_can_send_small), even while large ones back
 * the link up: what the site's small-message lane sends by (site_out.c). */
bool link_can_send_small(const link_t *l);
/* A large message on `topic` waits in the link (framer_topic_held). */
bool link_topic_held(const link_t *l, const char *topic);
/* Stop (true) or resume taking frames from the peer (transport.h pause_rx): the peer's
 * frames wait on its side. Kept across reconnects. */
void link_pause_rx(link_t *l, bool pause);
bool link_is_open(const link_t *l);
link_state_t link_state(const link_t *l);
const char *link_state_name(link_state_t s);
const char *link_peer_name(const link_t *l);
const config_peer_t *link_peer(const link_t *l);
const char *link_path_type(const link_t *l);
const link_stats_t *link_stats(const link_t *l);
void link_get_info(const link_t *l, link_info_t *out);
/* A reloaded config whose [site], [ice] and this [peer]'s fingerprint and mode are the
 * same: the link keeps its session and reads the new copies from now on. */
void link_rebind(link_t *l, const config_t *cfg, const config_peer_t *peer);
void link_free(link_t *l);

#endif
