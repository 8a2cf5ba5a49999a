/* SPDX-License-Identifier: MIT */
/* framing.h - how the link turns messages into frames and frames back into messages;
 * one framing per kind of peer (transport.h names it).
 *
 *   framing_wire  brokerless's frames (wire.h, docs/PROTOCOL.md "Frames"): MSG with
 *                 origin and sequence, ACK, HELLO; FRAG pieces for frames larger than
 *                 the channel takes, BATCH for small ones.
 *   framing_esp   the ESP32 example's datagrams (espframe.h): a topic and a payload,
 *                 at most 4096 bytes. A frame from the peer decodes to a MSG at QoS 0
 *                 with no origin (the link sets the peer's name); what a message has
 *                 beyond topic and payload does not cross.
 * Pure: bytes in, frames out. */
#ifndef BL_FRAMING_H
#define BL_FRAMING_H

#include "msg.h"
#include "wire.h"

typedef struct framing {
    const char *name;
    size_t max_frame; /* the largest frame the transport takes in one piece */
    bool fragments;   /* larger frames go in FRAG pieces; without it they are refused */
    bool batches;     /* small frames go in BATCH frames once the peer's HELLO asks */
    /* Carries origin, sequence, retain and properties, and ACK and HELLO frames.
     * Without it the peer cannot take part in a mesh (it is a leaf, link.h) and the
     * link takes a message as delivered once it is handed to the transport. */
    bool control;
    /* m as one frame (*out: free()). BL_ETOOBIG when over max_frame and not
     * fragmented; BL_EINVAL when the framing cannot carry it at all. */
    int (*encode_msg)(const bl_msg_t *m, uint8_t **out, size_t *len);
    /* NULL without control. */
    int (*encode_ack)(const uint64_t *seqs, size_t n, uint8_t **out, size_t *len);
    int (*encode_hello)(const wire_hello_t *h, uint8_t **out, size_t *len);
    /* One frame from the peer, as wire_decode: MSG, ACK, HELLO, FRAG or BATCH. */
    int (*decode)(const uint8_t *buf, size_t len, size_t max_payload, wire_frame_t *out);
} framing_t;

extern const framing_t framing_wire;
extern const framing_t framing_esp;

#endif
