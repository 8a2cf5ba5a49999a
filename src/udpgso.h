/* SPDX-License-Identifier: MIT */
/* udpgso.h - outgoing datagrams in batches, and UDP segmentation offload.
 *
 * A flood leaves as runs of datagrams of one size (full SCTP packets in DTLS records).
 * Sent one sendmsg each, every datagram crosses the sending host's whole network stack
 * on its own, which was the largest single cost of a large-message flood (docs/BENCH.md).
 * Linux's UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18) takes a run of
 * equal-size datagrams in one sendmsg and cuts it into those datagrams at the last
 * moment: in the NIC where it can, else in the kernel after the stack. The receiver sees
 * the same datagrams as before.
 *
 * The queue collects what one turn of the main loop sends; ice.c sends it when the turn
 * is over, a run per sendmsg. udpgso_run (which datagrams may share one send) is pure and
 * unit-tested; udpgso_send is the only I/O. */
#ifndef BL_UDPGSO_H
#define BL_UDPGSO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"

/* Datagrams queued before the queue must be sent; also the most segments per send
 * (UDP_MAX_SEGMENTS is 64 in Linux 6.1; later kernels take more). */
#define UDPGSO_QUEUE_MAX 64
/* Bytes in one send: a UDP datagram's payload is at most 65,507 bytes over IPv4. */
#define UDPGSO_MAX_BYTES 65000

typedef struct udpgso_queue {
    uint8_t *buf; /* the datagrams, back to back */
    size_t used, cap;
    size_t len[UDPGSO_QUEUE_MAX];
    size_t n;
} udpgso_queue_t;

/* Append a copy of one datagram (1..UDPGSO_MAX_BYTES bytes). BL_ETOOBIG when the queue
 * is full (send it first), BL_EINVAL, BL_ENOMEM. */
int udpgso_queue_add(udpgso_queue_t *q, const uint8_t *buf, size_t len);
bool udpgso_queue_full(const udpgso_queue_t *q);
/* Empty it, keeping its memory. */
void udpgso_queue_clear(udpgso_queue_t *q);
void udpgso_queue_free(udpgso_queue_t *q);

/* How many of the n datagrams of lengths len[0..n) go in one segmented send: those of
 * len[0]'s size that follow it, then at most one shorter one (only the last segment may
 * be shorter), no more than max_segs and max_bytes in all. 1 when len[0] alone exceeds
 * max_bytes; 0 only when n is 0. */
size_t udpgso_run(const size_t *len, size_t n, size_t max_segs, size_t max_bytes);

/* One sendmsg of len bytes to `to`, cut by the kernel into datagrams of seg bytes (the
 * last one shorter); seg 0 or seg >= len sends one plain datagram. 0 or -errno. */
int udpgso_send(int fd, const struct sockaddr *to, socklen_t tolen, const uint8_t *buf, size_t len,
                size_t seg);

/* Whether the kernel takes segmented sends on this UDP socket (Linux 4.18 on; an older
 * one ignores the option and would send one oversized datagram instead). */
bool udpgso_supported(int fd);

#endif
