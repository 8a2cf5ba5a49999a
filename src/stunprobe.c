/* SPDX-License-Identifier: MIT */
/* stunprobe.c - see stunprobe.h. */
#include "stunprobe.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <stun/stunagent.h>
#include <stun/usages/bind.h>
#include <stun/usages/turn.h>

#define TRIES 4
#define WAIT_MS 500
#define OTHER_ADDRESS 0x802C /* RFC 5780 7.4; not among libnice's names */

int stunprobe_resolve(const char *host, int port, struct sockaddr_storage *out, socklen_t *len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0 || !res)
        return BL_ENOTFOUND;
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void addr_text(const struct sockaddr_storage *a, char out[STUNPROBE_ADDR_LEN])
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
        port = ntohs(v4->sin_port);
    } else if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
        port = ntohs(v6->sin6_port);
    }
    snprintf(out, STUNPROBE_ADDR_LEN, a->ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
}

/* Send req (len bytes) to dst until an answer to it validates in resp; its length, or
 * 0 when none came. */
static size_t exchange(StunAgent *agent, int fd, const struct sockaddr *dst, socklen_t dlen,
                       const uint8_t *req, size_t len, StunMessage *resp, uint8_t *buf,
                       size_t buflen)
{
    for (int t = 0; t < TRIES; t++) {
        if (sendto(fd, req, len, 0, dst, dlen) < 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (poll(&p, 1, WAIT_MS) == 1) {
            ssize_t n = recv(fd, buf, buflen, 0);
            if (n > 0 && stun_agent_validate(agent, resp, buf, (size_t)n, NULL, NULL) ==
                             STUN_VALIDATION_SUCCESS)
                return (size_t)n;
        }
    }
    return 0;
}

int stunprobe_bind(int fd, const struct sockaddr *dst, socklen_t dlen,
                   char mapped[STUNPROBE_ADDR_LEN], char other[STUNPROBE_ADDR_LEN])
{
    StunAgent agent;
    StunMessage req, resp;
    uint8_t rb[STUN_MAX_MESSAGE_SIZE], buf[STUN_MAX_MESSAGE_SIZE];
    mapped[0] = other[0] = '\0';
    stun_agent_init(&agent, STUN_ALL_KNOWN_ATTRIBUTES, STUN_COMPATIBILITY_RFC5389, 0);
    size_t len = stun_usage_bind_create(&agent, &req, rb, sizeof(rb));
    if (!len || !exchange(&agent, fd, dst, dlen, rb, len, &resp, buf, sizeof(buf)))
        return BL_EIO;
    struct sockaddr_storage a, alt;
    socklen_t al = sizeof(a), altl = sizeof(alt);
    if (stun_usage_bind_process(&resp, (struct sockaddr *)&a, &al, (struct sockaddr *)&alt,
                                &altl) != STUN_USAGE_BIND_RETURN_SUCCESS)
        return BL_EIO;
    addr_text(&a, mapped);
    al = sizeof(a);
    if (stun_message_find_addr(&resp, (StunAttribute)OTHER_ADDRESS, &a, &al) ==
        STUN_MESSAGE_RETURN_SUCCESS)
        addr_text(&a, other);
    return 0;
}

int stunprobe_turn(const struct sockaddr *dst, socklen_t dlen, const char *user, const char *pass,
                   char relayed[STUNPROBE_ADDR_LEN], int *code)
{
    StunAgent agent;
    StunMessage req, resp;
    uint8_t rb[STUN_MAX_MESSAGE_SIZE], buf[STUN_MAX_MESSAGE_SIZE];
    *code = 0;
    relayed[0] = '\0';
    int fd = socket(dst->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return BL_EIO;
    stun_agent_init(&agent, STUN_ALL_KNOWN_ATTRIBUTES, STUN_COMPATIBILITY_RFC5389,
                    STUN_AGENT_USAGE_LONG_TERM_CREDENTIALS);
    int rc = BL_EIO;
    bool have_prev = false;
    /* The first answer is a 401 with the realm and nonce (RFC 8489 9.2.3); a 438 (stale
     * nonce) asks again with a new one. */
    for (int round = 0; round < 3; round++) {
        size_t len = stun_usage_turn_create(&agent, &req, rb, sizeof(rb), have_prev ? &resp : NULL,
                                            STUN_USAGE_TURN_REQUEST_PORT_NORMAL, -1, -1,
                                            (uint8_t *)user, strlen(user), (uint8_t *)pass,
                                            strlen(pass), STUN_USAGE_TURN_COMPATIBILITY_RFC5766);
        if (!len || !exchange(&agent, fd, dst, dlen, rb, len, &resp, buf, sizeof(buf)))
            break;
        struct sockaddr_storage rel, mapped, alt;
        socklen_t rl = sizeof(rel), ml = sizeof(mapped), altl = sizeof(alt);
        uint32_t bw, life;
        StunUsageTurnReturn r =
            stun_usage_turn_process(&resp, &rel, &rl, &mapped, &ml, &alt, &altl, &bw, &life,
                                    STUN_USAGE_TURN_COMPATIBILITY_RFC5766);
        if (r == STUN_USAGE_TURN_RETURN_RELAY_SUCCESS ||
            r == STUN_USAGE_TURN_RETURN_MAPPED_SUCCESS) {
            addr_text(&rel, relayed);
            rc = 0;
            break;
        }
        int err = 0;
        stun_message_find_error(&resp, &err);
        *code = err;
        rc = BL_EAUTH;
        if (!((err == 401 && !have_prev) || err == 438))
            break;
        have_prev = true; /* with the realm and nonce of this answer */
    }
    close(fd);
    return rc;
}
