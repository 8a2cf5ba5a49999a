/* SPDX-License-Identifier: MIT */
/* netcheck.h - `brokerless check --net`: what the network lets this site do, asked the
 * real servers of its config, one line per finding ("ok", "warn" or "FAIL"):
 *
 *   - the local broker: reachable, speaks MQTT 5, lets in both client ids the daemon
 *     uses (the persistent session's and, with delivery = exactly-once, "<id>-in") and
 *     grants the subscriptions of the rules (its ACLs);
 *   - the signalling broker: reachable, lets a client in;
 *   - the NAT's mapping, from STUN Binding answers (RFC 8489) from two addresses of the
 *     STUN/TURN servers seen from one socket: the same mapped port for both is an
 *     endpoint-independent mapping (hole punching works), different ones a symmetric
 *     NAT (links need TURN);
 *   - TURN: an Allocate (RFC 8656) with the configured credentials, answered with an
 *     allocation (then released) or an error (401: wrong user or password).
 *
 * STUN and TURN messages are libnice's (its stun library). */
#ifndef BL_NETCHECK_H
#define BL_NETCHECK_H

#include "config.h"

/* Prints the findings; 0 when none failed. */
int netcheck_run(const config_t *cfg);

#endif
