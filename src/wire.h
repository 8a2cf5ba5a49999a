/* SPDX-License-Identifier: MIT */
/* wire.h - the frame codec spoken inside the data channel (docs/PROTOCOL.md).
 *
 * Pure: bytes in, structs out, no I/O, no globals. Every decoder checks every length
 * against the buffer and returns BL_ETRUNC / BL_EINVAL / BL_EVERSION / BL_ETOOBIG,
 * never reads past `len`. Fuzzed by fuzz/fuzz_wire.c. */
#ifndef BL_WIRE_H
#define BL_WIRE_H

#include "common.h"
#include "msg.h"

#define WIRE_VERSION 1
#define WIRE_HEADER_LEN 4
/* Largest frame handed to the channel in one piece; larger frames are fragmented.
 * 65536 is what a WebRTC peer without a=max-message-size accepts (RFC 8841 6.1). */
#define WIRE_MAX_CHUNK 65536
/* A FRAG frame is this header (frame header + msg_no, offset, total) plus its chunk, so
 * pieces cut with chunk = WIRE_FRAG_CHUNK are at most WIRE_MAX_CHUNK bytes on the wire. */
#define WIRE_FRAG_HEADER_LEN (WIRE_HEADER_LEN + 12)
#define WIRE_FRAG_CHUNK (WIRE_MAX_CHUNK - WIRE_FRAG_HEADER_LEN)

typedef enum {
    WIRE_MSG = 1,   /* one MQTT message */
    WIRE_ACK = 2,   /* the peer's broker accepted these origin sequences */
    WIRE_HELLO = 3, /* first frame on a channel: who I am, what I accept */
    WIRE_FRAG = 4,  /* one piece of a frame larger than WIRE_MAX_CHUNK */
    WIRE_BATCH = 5, /* several MSG/ACK frames in one channel message (WIRE_FEAT_BATCH) */
    WIRE_PING = 6,  /* a round trip: the peer answers with the same token (WIRE_FEAT_PING) */
} wire_type_t;

/* HELLO feature bits. */
#define WIRE_FEAT_BATCH 0x1u /* "send me BATCH frames": both must say so to use them */
#define WIRE_FEAT_PING 0x2u  /* "I answer PING frames": a ping goes only to such a peer */
/* PING flags: the answer carries the request's token with this bit set. */
#define WIRE_PING_REPLY 0x1u
/* A BATCH is the header, a u16 count, then count times (u32 length, frame). */
#define WIRE_BATCH_HEADER_LEN (WIRE_HEADER_LEN + 2)
#define WIRE_BATCH_ENTRY_OVERHEAD 4

/* Limits on the properties of one MSG (docs/PROTOCOL.md "Property TLVs"). Every user
 * property is two allocations in each copy of a message (decoded, routed, queued for
 * the broker), and work for each client of the broker that gets it (libmosquitto, which
 * many clients use, walks its whole property list for each one it adds: 128 of them cost
 * it about 90 us per message, 2 million of them hours). Without a cap, one 16 MiB frame
 * of 2 million empty ones was millions of allocations for the receiving daemon and a
 * stalled loop for whatever handles them after it. */
#define WIRE_MAX_USER_PROPS 128
#define WIRE_MAX_PROPS_LEN 65536 /* bytes of the property block, TLV headers included */
/* Most bytes a MSG frame adds to its payload: header, origin, seq, topic, properties. */
#define WIRE_MSG_MAX_OVERHEAD                                                                      \
    (WIRE_HEADER_LEN + 1 + BL_SITE_NAME_MAX + 8 + 2 + 65535 + 4 + WIRE_MAX_PROPS_LEN + 4)

typedef struct wire_hello {
    char site[BL_SITE_NAME_MAX + 1];
    uint32_t features;         /* bit flags, WIRE_FEAT_* */
    uint32_t max_message_size; /* largest MQTT payload this site accepts */
    uint64_t epoch;            /* random, fixed when the site's queue database was made:
                                  a new epoch means its sequences start again */
} wire_hello_t;

typedef struct wire_frag {
    uint32_t msg_no;      /* per-channel counter of fragmented frames */
    uint32_t offset;      /* of this chunk in the whole frame */
    uint32_t total;       /* whole frame length */
    const uint8_t *chunk; /* points into the decoded buffer */
    size_t chunk_len;
} wire_frag_t;

/* A decoded BATCH: its frames, still encoded, checked to fit exactly and to be MSG or
 * ACK frames of this version (each is decoded on its own with wire_decode). */
typedef struct wire_batch {
    const uint8_t *p; /* the next (length, frame) entry; points into the decoded buffer */
    size_t left;
    size_t count; /* frames not yet taken */
} wire_batch_t;

/* One frame to pack into a BATCH. */
typedef struct wire_piece {
    const uint8_t *data;
    size_t len;
} wire_piece_t;

typedef struct wire_frame {
    uint8_t type;
    union {
        bl_msg_t *msg; /* WIRE_MSG: owned, freed by wire_frame_clear */
        struct {
            uint64_t *seqs; /* owned */
            size_t n;
        } ack;
        wire_hello_t hello;
        wire_frag_t frag;
        wire_batch_t batch;
        struct {
            uint64_t token;
            bool reply;
        } ping;
    } u;
    const char *why; /* after a failed wire_decode: what was wrong (static), or NULL */
} wire_frame_t;

/* 0 when m's properties are within WIRE_MAX_USER_PROPS and WIRE_MAX_PROPS_LEN (what a
 * peer accepts), else BL_ETOOBIG (BL_EINVAL when one cannot be encoded at all). */
int wire_msg_check(const bl_msg_t *m);

/* Encoders allocate *out (free()). wire_encode_msg refuses what wire_msg_check refuses. */
int wire_encode_msg(const bl_msg_t *m, uint8_t **out, size_t *out_len);
int wire_encode_ack(const uint64_t *seqs, size_t n, uint8_t **out, size_t *out_len);
int wire_encode_hello(const wire_hello_t *h, uint8_t **out, size_t *out_len);
/* A PING (reply false) or its answer (reply true) carrying `token`. */
int wire_encode_ping(uint64_t token, bool reply, uint8_t **out, size_t *out_len);
/* Piece `index` of `frame` cut into chunks of at most `chunk` payload bytes. */
size_t wire_frag_count(size_t frame_len, size_t chunk);
int wire_encode_frag(const uint8_t *frame, size_t frame_len, size_t chunk, uint32_t msg_no,
                     size_t index, uint8_t **out, size_t *out_len);

/* Pack n (1..65535) encoded MSG or ACK frames into one BATCH frame. */
int wire_encode_batch(const wire_piece_t *pieces, size_t n, uint8_t **out, size_t *out_len);
/* The next frame of a decoded BATCH: 1 with *frame and *len set, or 0 when none is left. */
int wire_batch_next(wire_batch_t *b, const uint8_t **frame, size_t *len);

/* Decode one frame. `max_payload` bounds MSG payloads (BL_ETOOBIG over it); a MSG over
 * the property limits is BL_ETOOBIG too, found before its properties are copied. */
int wire_decode(const uint8_t *buf, size_t len, size_t max_payload, wire_frame_t *out);
void wire_frame_clear(wire_frame_t *f);

/* Reassembly of WIRE_FRAG pieces, which arrive in order on the reliable channel. */
typedef struct wire_reasm {
    size_t max_total;
    uint32_t msg_no;
    uint8_t *buf;
    size_t total, filled;
    const char *why; /* after a failed wire_reasm_feed: what was wrong (static) */
} wire_reasm_t;

void wire_reasm_init(wire_reasm_t *r, size_t max_total);
/* Returns 1 and hands over *whole (free()) when the frame is complete, 0 when more is
 * needed, <0 on an inconsistent or oversize piece (the partial frame is discarded). */
int wire_reasm_feed(wire_reasm_t *r, const wire_frag_t *f, uint8_t **whole, size_t *whole_len);
void wire_reasm_clear(wire_reasm_t *r);

#endif
