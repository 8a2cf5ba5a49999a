/* SPDX-License-Identifier: MIT */
#include "espframe.h"

#include <stdlib.h>
#include <string.h>

static size_t align4(size_t n)
{
    return (n + 3u) & ~(size_t)3u;
}

static unsigned get_u16le(const uint8_t *p)
{
    return (unsigned)p[0] | ((unsigned)p[1] << 8);
}

size_t espframe_size(size_t topic_len, size_t payload_len)
{
    return ESPFRAME_HEADER_LEN + align4(topic_len + 1) + payload_len;
}

int espframe_encode(const char *topic, size_t topic_len, const uint8_t *payload, size_t payload_len,
                    uint8_t **out, size_t *out_len)
{
    if (!topic || !topic_len || memchr(topic, '\0', topic_len) || (!payload && payload_len) ||
        !out || !out_len)
        return BL_EINVAL;
    if (topic_len >= ESPFRAME_MAX || payload_len >= ESPFRAME_MAX ||
        espframe_size(topic_len, payload_len) > ESPFRAME_MAX)
        return BL_ETOOBIG;
    size_t n = espframe_size(topic_len, payload_len);
    uint8_t *f = calloc(1, n); /* the pad bytes are zero */
    if (!f)
        return BL_ENOMEM;
    size_t tl = topic_len + 1;
    f[0] = (uint8_t)(tl & 0xff);
    f[1] = (uint8_t)(tl >> 8);
    f[2] = (uint8_t)(payload_len & 0xff);
    f[3] = (uint8_t)(payload_len >> 8);
    memcpy(f + ESPFRAME_HEADER_LEN, topic, topic_len);
    if (payload_len)
        memcpy(f + ESPFRAME_HEADER_LEN + align4(tl), payload, payload_len);
    *out = f;
    *out_len = n;
    return 0;
}

int espframe_parse(const uint8_t *buf, size_t len, espframe_t *out)
{
    if (!buf || !out)
        return BL_EINVAL;
    memset(out, 0, sizeof(*out));
    if (len < ESPFRAME_HEADER_LEN) {
        out->why = "a datagram shorter than its header";
        return BL_ETRUNC;
    }
    size_t tl = get_u16le(buf), dl = get_u16le(buf + 2);
    if (tl < 2) { /* a topic of at least one byte, and its NUL */
        out->why = "a datagram with no topic";
        return BL_EINVAL;
    }
    size_t at = ESPFRAME_HEADER_LEN + align4(tl);
    if (len < ESPFRAME_HEADER_LEN + tl || len < at + dl) {
        out->why = "a datagram shorter than its topic and payload lengths";
        return BL_ETRUNC;
    }
    if (len != at + dl) {
        out->why = "bytes after the datagram's payload";
        return BL_EINVAL;
    }
    const char *topic = (const char *)buf + ESPFRAME_HEADER_LEN;
    if (topic[tl - 1] != '\0' || memchr(topic, '\0', tl - 1)) {
        out->why = "a datagram topic whose NUL is missing or early";
        return BL_EINVAL;
    }
    *out =
        (espframe_t){.topic = topic, .topic_len = tl - 1, .payload = buf + at, .payload_len = dl};
    return 0;
}
