/* SPDX-License-Identifier: MIT */
/* wire_int.h - what the frame codec's two files share (wire.c: frames, ACK, HELLO, PING,
 * FRAG, BATCH, reassembly; wire_msg.c: MSG and its properties): flags, property ids and
 * the bounds-checked cursor that every decoder reads through. Internal to the codec. */
#ifndef BL_WIRE_INT_H
#define BL_WIRE_INT_H

#include "wire.h"

#include <stdlib.h>
#include <string.h>

#define MSG_FLAG_QOS_MASK 0x03u
#define MSG_FLAG_RETAIN 0x04u
#define MSG_FLAG_DUP 0x08u
#define MSG_FLAGS_KNOWN (MSG_FLAG_QOS_MASK | MSG_FLAG_RETAIN | MSG_FLAG_DUP)
#define FRAG_FLAG_LAST 0x01u

/* Property identifiers, the same numbers as MQTT 5 (OASIS MQTT 5.0, section 2.2.2.2). */
enum {
    PROP_PAYLOAD_FORMAT = 0x01,
    PROP_EXPIRY = 0x02,
    PROP_CONTENT_TYPE = 0x03,
    PROP_RESPONSE_TOPIC = 0x08,
    PROP_CORRELATION = 0x09,
    PROP_USER = 0x26,
};
#define PROP_TLV_HEAD 5 /* u8 id + u32 len */

/* ---- reading ---------------------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t left;
    const char *why; /* what was wrong, for wire_frame_t.why */
} rd_t;

static inline int rd_take(rd_t *r, size_t n, const uint8_t **out)
{
    if (n > r->left)
        return BL_ETRUNC;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

static inline int rd_be(rd_t *r, size_t n, uint64_t *v)
{
    const uint8_t *p;
    int rc = rd_take(r, n, &p);
    if (rc)
        return rc;
    *v = 0;
    for (size_t i = 0; i < n; i++)
        *v = (*v << 8) | p[i];
    return 0;
}

static inline int rd_u8(rd_t *r, uint8_t *v)
{
    uint64_t x;
    int rc = rd_be(r, 1, &x);
    *v = (uint8_t)x;
    return rc;
}

static inline int rd_u16(rd_t *r, uint16_t *v)
{
    uint64_t x;
    int rc = rd_be(r, 2, &x);
    *v = (uint16_t)x;
    return rc;
}

static inline int rd_u32(rd_t *r, uint32_t *v)
{
    uint64_t x;
    int rc = rd_be(r, 4, &x);
    *v = (uint32_t)x;
    return rc;
}

/* A string field: no NUL inside (it becomes a C string), copied NUL-terminated. */
static inline int dup_text(const uint8_t *p, size_t n, char **out)
{
    if (memchr(p, 0, n)) {
        return BL_EINVAL;
    }
    char *s = malloc(n + 1);
    if (!s)
        return BL_ENOMEM;
    memcpy(s, p, n);
    s[n] = '\0';
    *out = s;
    return 0;
}

/* u8 length + site name (MSG origin, HELLO site) into a buffer of BL_SITE_NAME_MAX+1. */
static inline int rd_site(rd_t *r, char *site)
{
    uint8_t n;
    const uint8_t *p;
    int rc = rd_u8(r, &n);
    if (!rc)
        rc = rd_take(r, n, &p);
    if (rc)
        return rc;
    if (n == 0 || n > BL_SITE_NAME_MAX || memchr(p, 0, n)) {
        r->why = "a site name too long";
        return BL_EINVAL;
    }
    memcpy(site, p, n);
    site[n] = '\0';
    if (!bl_site_name_valid(site)) {
        r->why = "an invalid site name";
        return BL_EINVAL;
    }
    return 0;
}

/* ---- writing ---------------------------------------------------------------------- */

static inline uint8_t *put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (uint8_t)v;
        v >>= 8;
    }
    return p + n;
}

static inline uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

static inline uint8_t *put_header(uint8_t *p, uint8_t type, uint8_t flags)
{
    p[0] = WIRE_VERSION;
    p[1] = type;
    p[2] = flags;
    p[3] = 0; /* reserved */
    return p + WIRE_HEADER_LEN;
}

/* acc += n, refusing to wrap size_t (matters where size_t is 32 bits). */
static inline int add_len(size_t *acc, size_t n)
{
    if (n > SIZE_MAX - *acc)
        return BL_ETOOBIG;
    *acc += n;
    return 0;
}

static inline int alloc_out(size_t len, uint8_t **out, size_t *out_len)
{
    *out = malloc(len);
    if (!*out)
        return BL_ENOMEM;
    *out_len = len;
    return 0;
}

/* MSG body after the frame header (wire_msg.c): allocates *out. */
int wire_decode_msg_body(rd_t *r, uint8_t flags, size_t max_payload, bl_msg_t **out);

#endif
