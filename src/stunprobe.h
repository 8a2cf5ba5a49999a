/* SPDX-License-Identifier: MIT */
/* stunprobe.h - one-shot STUN Binding (RFC 8489) and TURN Allocate (RFC 8656) probes over
 * UDP for `brokerless check --net`, with libnice's stun library building and reading the
 * messages. Blocking, each request sent up to 4 times over about 2 s. */
#ifndef BL_STUNPROBE_H
#define BL_STUNPROBE_H

#include <sys/socket.h>

#include "common.h"

#define STUNPROBE_ADDR_LEN 64

/* host:port to a socket address (IPv4 or IPv6). BL_ENOTFOUND when it does not resolve. */
int stunprobe_resolve(const char *host, int port, struct sockaddr_storage *out, socklen_t *len);
/* One Binding request from socket fd (UDP, unconnected) to dst: the mapped address
 * ("ip:port") it reports, and its OTHER-ADDRESS (RFC 5780) or "" when it has none.
 * BL_EIO when nothing answered. */
int stunprobe_bind(int fd, const struct sockaddr *dst, socklen_t dlen,
                   char mapped[STUNPROBE_ADDR_LEN], char other[STUNPROBE_ADDR_LEN]);
/* An Allocate with long-term credentials: 0 and the relayed address, or BL_EAUTH and the
 * server's error code (401: user or password refused), BL_EIO when nothing answered. The
 * allocation is not kept: it ends with its lifetime (the server's default). */
int stunprobe_turn(const struct sockaddr *dst, socklen_t dlen, const char *user, const char *pass,
                   char relayed[STUNPROBE_ADDR_LEN], int *code);

#endif
