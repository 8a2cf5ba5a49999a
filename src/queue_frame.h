/* SPDX-License-Identifier: MIT */
/* queue_frame.h - the private row serialisation of a bl_msg_t in the durable store
 * (docs/QUEUE.md): independent of the wire format, so either can change alone. Pure. */
#ifndef BL_QUEUE_FRAME_H
#define BL_QUEUE_FRAME_H

#include "common.h"
#include "msg.h"

/* 0 when m can be stored, else BL_EINVAL (a string with a NUL, a bad QoS...). */
int queue_frame_check(const bl_msg_t *m);
/* The length of m's row, exactly (m checked). */
size_t queue_frame_size(const bl_msg_t *m);
/* m as a row (malloc). */
int queue_frame_encode(const bl_msg_t *m, uint8_t **out, size_t *out_len);
/* A row back into a message (msg_free); BL_EINVAL for anything malformed. */
int queue_frame_decode(const void *buf, size_t len, bl_msg_t **out);
/* The origin of a row, without decoding the rest. */
int queue_frame_origin(const void *buf, size_t len, char origin[BL_SITE_NAME_MAX + 1]);

#endif
