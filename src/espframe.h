/* SPDX-License-Identifier: MIT */
/* espframe.h - the ESP32 example's datagram: one MQTT message per UDP datagram.
 *
 *   u16le topic_len    the topic's length including its NUL
 *   u16le data_len     the payload's length
 *   topic, NUL         padded with 0..3 bytes to a multiple of 4 (the board does not
 *                      zero its pad bytes; we do, and ignore them)
 *   payload            data_len bytes
 *
 * Nothing else: no QoS, retain, properties, origin, sequence or acknowledgement. The
 * board's buffers hold 4096 bytes and it drops a larger datagram, so we never send one
 * (espframe_encode refuses it). Pure: bytes in, views out; fuzzed by fuzz/fuzz_espframe.c. */
#ifndef BL_ESPFRAME_H
#define BL_ESPFRAME_H

#include "common.h"

#define ESPFRAME_HEADER_LEN 4
/* The board's frame buffer (JUICE_MAX_SDP_STRING_LEN in the example). */
#define ESPFRAME_MAX 4096

/* A parsed datagram: views into the caller's buffer. */
typedef struct espframe {
    const char *topic; /* NUL-terminated in the buffer */
    size_t topic_len;  /* without the NUL, >= 1 */
    const uint8_t *payload;
    size_t payload_len;
    const char *why; /* after a failed espframe_parse: what was wrong (static) */
} espframe_t;

/* Bytes of the datagram for a topic of topic_len bytes (without its NUL) and a payload. */
size_t espframe_size(size_t topic_len, size_t payload_len);
/* One datagram into *out (free()). BL_EINVAL for an empty topic or one with a NUL in it,
 * BL_ETOOBIG when it would be over ESPFRAME_MAX. */
int espframe_encode(const char *topic, size_t topic_len, const uint8_t *payload, size_t payload_len,
                    uint8_t **out, size_t *out_len);
/* 0 with *out set, or (out->why saying what) BL_ETRUNC (shorter than its lengths say), BL_EINVAL
 * (no topic, its NUL missing or early, bytes after the payload). Checks what the example's receiver
 * does not: the payload's length and the topic's NUL. */
int espframe_parse(const uint8_t *buf, size_t len, espframe_t *out);

#endif
