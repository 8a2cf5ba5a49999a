/* SPDX-License-Identifier: MIT */
/* fake_link.h - link.h without a transport, for test_site: it records the frames the site
 * sends to a peer and lets the test play the link (open, down, busy, writable) and the
 * peer (frames encoded with wire.c). */
#ifndef BL_FAKE_LINK_H
#define BL_FAKE_LINK_H

#include "link.h"

/* The site's link to `peer`, NULL if none. */
link_t *fake_link(const char *peer);
/* The transport is up (on_open, state OPEN) or gone (on_down, state FAILED). */
void fake_link_open(link_t *l);
void fake_link_down(link_t *l);
/* The link takes `room` more frames (at first any number) before it is busy
 * (link_can_send false; it still queues what it is given, as link.c does). */
void fake_link_set_room(link_t *l, size_t room);
/* It carried what it had and takes `room` more: on_writable, when it is open. */
void fake_link_drain(link_t *l, size_t room);
/* The peer sends a frame: decoded as the real link does and handed to the site. */
void fake_link_receive(link_t *l, const uint8_t *frame, size_t len);
/* ... a message (WIRE_MSG) or its HELLO. */
void fake_link_receive_msg(link_t *l, const bl_msg_t *m);
void fake_link_receive_hello(link_t *l, uint64_t epoch);
/* Frames the site has sent (each as encoded), oldest first. */
size_t fake_link_n_sent(const link_t *l);
const GByteArray *fake_link_sent(const link_t *l, size_t i);
/* What the site last asked of link_pause_rx, and how many times it asked. */
bool fake_link_paused(const link_t *l);
unsigned fake_link_pause_calls(const link_t *l);

#endif
