/* SPDX-License-Identifier: MIT */
/* link.h - one peer: the state machine that keeps a pipe to it open.
 *
 *   WAITING -> SIGNALLING -> ICE -> DTLS -> SCTP -> OPEN
 *        ^                                           |
 *        +------ FAILED (retry after backoff) <------+
 *
 * Roles: the site whose name sorts first is the offerer and ICE-controlling; the other
 * answers and is the DTLS client. The offerer retries with backoff (1 s doubling to
 * 30 s, reset when a link opens); the answerer asks for a fresh offer ("restart") when
 * it starts, when its signalling reconnects, and when its side of a session fails.
 * Every transition is one log line with the peer's name, path type and step time.
 *
 * Above the transport, the link cuts frames larger than WIRE_MAX_CHUNK into FRAG
 * pieces and reassembles the peer's, decodes frames and hands them up. Small frames
 * leave before large ones and FRAG pieces still waiting (not before a large message on
 * their own topic), so a paced stream does not wait out a large message. */
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
    /* Send a signalling message to this peer. */
    void (*signal_send)(void *ud, link_t *l, const char *type, const char *sid, const char *body);
    void (*on_open)(void *ud, link_t *l);
    void (*on_down)(void *ud, link_t *l);
    /* A decoded frame (owned by the link; valid during the call). */
    void (*on_frame)(void *ud, link_t *l, const wire_frame_t *f);
    /* link_can_send() turned true again. */
    void (*on_writable)(void *ud, link_t *l);
    /* State changed (for status reporting). */
    void (*on_state)(void *ud, link_t *l);
} link_events_t;

typedef struct link_stats {
    uint64_t frames_out, frames_in, bytes_out, bytes_in;
    uint64_t bad_frames; /* undecodable frames from the peer */
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

link_t *link_new(GMainContext *ctx, const config_t *cfg, const config_peer_t *peer,
                 const cert_t *cert, const link_events_t *ev, void *ud);
/* Signalling is up: begin (offerer) or ask for an offer (answerer). */
void link_signal_up(link_t *l);
/* A signalling message from this peer. */
void link_signal_in(link_t *l, const seal_msg_t *m);
/* Queue one encoded frame for the peer (fragmented when large). BL_ESTATE if not open. */
int link_send_frame(link_t *l, const uint8_t *frame, size_t len);
/* What the peer's HELLO said it accepts (WIRE_FEAT_*). With WIRE_FEAT_BATCH, frames
 * queued in one turn of the loop leave packed in BATCH frames. Reset by a new session. */
void link_set_peer_features(link_t *l, uint32_t features);
/* Open and not backed up: the caller may send more. */
bool link_can_send(const link_t *l);
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
