/* SPDX-License-Identifier: MIT */
/* framer.h - a link's frame pipe: messages in and out of frames of the link's framing
 * (framing.h), and the queues between the site and the transport.
 *
 * Out: a message, ACK or HELLO is encoded and queued. Small frames (at most 2 KiB) wait
 * in one queue and leave first, packed in BATCH frames once the peer asked for them;
 * large frames, and FRAG pieces of frames larger than the transport takes whole, wait
 * in another and go to the transport only while less than 64 KiB waits unsent there.
 * A small message on the topic of a large one still queued stays behind it (MQTT keeps
 * order per topic). Past 256 KiB queued, framer_can_send() says no until it drains;
 * framer_can_send_small() still says yes while less than 64 KiB of small frames wait.
 * A framing without control (the ESP32 example's) refuses frames over its limit (counted
 * and logged with topic and size, never truncated) and takes a message with a sequence
 * as delivered once the transport has it: it reports an ACK for it (deferred).
 *
 * In: frames are decoded; BATCH frames unpacked, FRAG pieces reassembled (up to
 * max_message plus a MSG's overhead); a message from a framing without origin gets the
 * peer's name as its origin. Undecodable frames are counted and logged (at WARN the 1st,
 * 2nd, 4th... time), never handed up.
 *
 * Attached to a transport while a session is open; detaching drops whatever waits. */
#ifndef BL_FRAMER_H
#define BL_FRAMER_H

#include <glib.h>

#include "framing.h"
#include "transport.h"

typedef struct framer framer_t;

typedef struct framer_events {
    /* A MSG, ACK or HELLO (owned by the framer; valid during the call). */
    void (*on_frame)(void *ud, const wire_frame_t *f);
    /* framer_can_send() or framer_can_send_small() may have turned true again. */
    void (*on_writable)(void *ud);
    /* The transport refused a frame for good: the session cannot go on. Further sends
     * are refused until the next attach. */
    void (*on_broken)(void *ud, const char *why);
} framer_events_t;

typedef struct framer_stats {
    uint64_t frames_out, frames_in, bytes_out, bytes_in;
    uint64_t bad_frames; /* undecodable frames from the peer */
    uint64_t too_big;    /* messages over what the framing carries, refused */
} framer_stats_t;

/* who: log prefix; peer: its name, the origin of what a framing without origin brings. */
framer_t *framer_new(GMainContext *ctx, const char *who, const char *peer, const framing_t *fr,
                     size_t max_message, const framer_events_t *ev, void *ud);
void framer_attach(framer_t *f, transport_t *tr);
void framer_detach(framer_t *f);
/* Queue one message / acknowledgement / HELLO. BL_ESTATE when not attached. A framing
 * without control sends no ACK or HELLO (0). */
int framer_send_msg(framer_t *f, const bl_msg_t *m);
int framer_send_ack(framer_t *f, const uint64_t *seqs, size_t n);
int framer_send_hello(framer_t *f, const wire_hello_t *h);
/* Queue a frame already encoded in the link's framing (test tools craft them by hand). */
int framer_send_frame(framer_t *f, const uint8_t *frame, size_t len);
/* One frame from the transport. */
void framer_feed(framer_t *f, const uint8_t *buf, size_t len);
/* The transport has room again. */
void framer_writable(framer_t *f);
/* Attached, not broken and not backed up: the caller may queue more. */
bool framer_can_send(const framer_t *f);
/* Attached, not broken, and fewer than 64 KiB of small frames wait: a small frame may be
 * queued even while large ones back the framer up (framer_can_send false). */
bool framer_can_send_small(const framer_t *f);
/* A large message on `topic` waits in the framer: a small one on it would wait behind. */
bool framer_topic_held(const framer_t *f, const char *topic);
const framer_stats_t *framer_stats(const framer_t *f);
void framer_free(framer_t *f);

#endif
