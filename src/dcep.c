/* SPDX-License-Identifier: MIT */
/* dcep.c - DATA_CHANNEL_OPEN / DATA_CHANNEL_ACK codec (RFC 8832 5). Pure: no I/O, no
 * globals. Every length field is checked against the buffer before it is used. */
#include "dcep.h"

#include <stdlib.h>
#include <string.h>

#include <glib.h>

/* RFC 8832 5.1: the fixed part of DATA_CHANNEL_OPEN. */
#define DCEP_OPEN_HDR 12

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* RFC 8832 5.1 lists exactly six channel types. */
static bool channel_type_valid(uint8_t t)
{
    uint8_t base = t & (uint8_t)~DCEP_UNORDERED_BIT;
    return base == DCEP_RELIABLE || base == DCEP_PARTIAL_RELIABLE_REXMIT ||
           base == DCEP_PARTIAL_RELIABLE_TIMED;
}

/* Label and protocol are UTF-8 (RFC 8832 5.1); an embedded NUL would also make the C
 * string lie about its length, and g_utf8_validate refuses it. */
static int copy_utf8(const uint8_t *p, size_t n, char **out)
{
    if (n && !g_utf8_validate((const char *)p, (gssize)n, NULL))
        return BL_EINVAL;
    *out = malloc(n + 1);
    if (!*out)
        return BL_ENOMEM;
    memcpy(*out, p, n);
    (*out)[n] = '\0';
    return 0;
}

static int parse_open(const uint8_t *buf, size_t len, dcep_open_t *open)
{
    if (len < DCEP_OPEN_HDR)
        return BL_ETRUNC;
    size_t label_len = rd16(buf + 8);
    size_t proto_len = rd16(buf + 10);
    if (len < DCEP_OPEN_HDR + label_len + proto_len)
        return BL_ETRUNC;
    if (len > DCEP_OPEN_HDR + label_len + proto_len)
        return BL_EINVAL; /* trailing bytes: the lengths do not describe the message */
    if (!channel_type_valid(buf[1]))
        return BL_EINVAL;

    memset(open, 0, sizeof(*open));
    open->channel_type = buf[1];
    open->priority = rd16(buf + 2);
    open->reliability = rd32(buf + 4); /* 32 bits, RFC 8832 5.1 */
    int rc = copy_utf8(buf + DCEP_OPEN_HDR, label_len, &open->label);
    if (rc == 0)
        rc = copy_utf8(buf + DCEP_OPEN_HDR + label_len, proto_len, &open->protocol);
    if (rc) {
        dcep_open_clear(open);
        return rc;
    }
    return DCEP_MSG_OPEN;
}

int dcep_parse(const uint8_t *buf, size_t len, dcep_open_t *open)
{
    if (!buf || len == 0)
        return BL_ETRUNC;
    switch (buf[0]) {
    case DCEP_MSG_ACK:
        /* RFC 8832 5.2: the ACK is the message type alone. */
        return len == 1 ? DCEP_MSG_ACK : BL_EINVAL;
    case DCEP_MSG_OPEN:
        if (!open)
            return BL_EINVAL;
        return parse_open(buf, len, open);
    default:
        return BL_EINVAL;
    }
}

void dcep_open_clear(dcep_open_t *open)
{
    if (!open)
        return;
    free(open->label);
    free(open->protocol);
    memset(open, 0, sizeof(*open));
}

int dcep_build_open(const dcep_open_t *open, uint8_t **out, size_t *out_len)
{
    if (!open || !out || !out_len || !channel_type_valid(open->channel_type))
        return BL_EINVAL;
    const char *label = open->label ? open->label : "";
    const char *proto = open->protocol ? open->protocol : "";
    size_t label_len = strlen(label), proto_len = strlen(proto);
    if (label_len > UINT16_MAX || proto_len > UINT16_MAX)
        return BL_ETOOBIG;

    size_t n = DCEP_OPEN_HDR + label_len + proto_len;
    uint8_t *b = malloc(n);
    if (!b)
        return BL_ENOMEM;
    b[0] = DCEP_MSG_OPEN;
    b[1] = open->channel_type;
    wr16(b + 2, open->priority);
    wr32(b + 4, open->reliability);
    wr16(b + 8, (uint16_t)label_len);
    wr16(b + 10, (uint16_t)proto_len);
    memcpy(b + DCEP_OPEN_HDR, label, label_len);
    memcpy(b + DCEP_OPEN_HDR + label_len, proto, proto_len);
    *out = b;
    *out_len = n;
    return 0;
}

size_t dcep_build_ack(uint8_t out[1])
{
    out[0] = DCEP_MSG_ACK;
    return 1;
}
