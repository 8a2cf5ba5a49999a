/* SPDX-License-Identifier: MIT */
/* udpgso.c - see udpgso.h. */
#include "udpgso.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h; glibc's netinet/udp.h has it from 2.28 on */
#endif

int udpgso_queue_add(udpgso_queue_t *q, const uint8_t *buf, size_t len)
{
    if (!q || !buf || len == 0 || len > UDPGSO_MAX_BYTES)
        return BL_EINVAL;
    if (q->n >= UDPGSO_QUEUE_MAX)
        return BL_ETOOBIG;
    if (q->used + len > q->cap) {
        size_t cap = BL_MAX(q->cap * 2, q->used + len);
        cap = BL_MAX(cap, (size_t)16384);
        uint8_t *nb = realloc(q->buf, cap);
        if (!nb)
            return BL_ENOMEM;
        q->buf = nb;
        q->cap = cap;
    }
    memcpy(q->buf + q->used, buf, len);
    q->used += len;
    q->len[q->n++] = len;
    return 0;
}

bool udpgso_queue_full(const udpgso_queue_t *q)
{
    return q->n >= UDPGSO_QUEUE_MAX;
}

void udpgso_queue_clear(udpgso_queue_t *q)
{
    q->used = 0;
    q->n = 0;
}

void udpgso_queue_free(udpgso_queue_t *q)
{
    free(q->buf);
    memset(q, 0, sizeof(*q));
}

size_t udpgso_run(const size_t *len, size_t n, size_t max_segs, size_t max_bytes)
{
    if (n == 0)
        return 0;
    size_t seg = len[0], bytes = seg, k = 1;
    while (k < n && k < max_segs && bytes + len[k] <= max_bytes && len[k] <= seg) {
        bytes += len[k];
        if (len[k++] < seg)
            break; /* a shorter one ends the run */
    }
    return k;
}

int udpgso_send(int fd, const struct sockaddr *to, socklen_t tolen, const uint8_t *buf, size_t len,
                size_t seg)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr mh = {
        .msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov, .msg_iovlen = 1};
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctl;
    if (seg && seg < len) {
        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = sizeof(ctl.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t s = (uint16_t)seg;
        memcpy(CMSG_DATA(cm), &s, sizeof(s));
    }
    ssize_t n;
    do
        n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    return 0;
}

bool udpgso_supported(int fd)
{
    int v = 0;
    socklen_t l = sizeof(v);
    return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &l) == 0;
}
