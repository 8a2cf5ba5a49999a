/* SPDX-License-Identifier: MIT */
/* queue_frame.c - the row form of a message in the durable store (queue_frame.h). */
#include "queue_frame.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAME_VERSION 1

/* ---- frame: the private row serialisation of a bl_msg_t ----
 *
 * u8 version, u8 flags, u8 qos, u8 payload_format (0xff = absent), varint seq,
 * [varint expiry], str topic, [str origin], [str content_type], [str response_topic],
 * [bytes correlation], varint n_user_props, n x (str key, str value), bytes payload.
 * varint = LEB128; str/bytes = varint length + data. Optional fields by flag. */
enum {
    F_RETAIN = 1,
    F_DUP = 2,
    F_EXPIRY = 4,
    F_ORIGIN = 8,
    F_CTYPE = 16,
    F_RTOPIC = 32,
    F_CORR = 64,
    F_ALL = 127
};

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_bytes(uint8_t *p, const void *data, size_t len)
{
    p = put_varint(p, len);
    if (len)
        memcpy(p, data, len);
    return p + len;
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
    return put_bytes(p, s, strlen(s));
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

static size_t bytes_size(size_t len)
{
    return varint_size(len) + len;
}

static size_t str_size(const char *s)
{
    return s ? bytes_size(strlen(s)) : 0;
}

int queue_frame_check(const bl_msg_t *m)
{
    if (!m->topic || m->qos > 2 || m->payload_format < -1 || m->payload_format > 1 ||
        (m->payload_len && !m->payload) || (m->correlation_len && !m->correlation) ||
        (m->n_user_props && !m->user_props))
        return BL_EINVAL;
    for (size_t i = 0; i < m->n_user_props; i++)
        if (!m->user_props[i].key || !m->user_props[i].value)
            return BL_EINVAL;
    return 0;
}

size_t queue_frame_size(const bl_msg_t *m)
{
    size_t size = 4 + varint_size(m->seq) + (m->has_expiry ? varint_size(m->expiry_s) : 0) +
                  str_size(m->topic) + str_size(m->origin) + str_size(m->content_type) +
                  str_size(m->response_topic) +
                  (m->correlation ? bytes_size(m->correlation_len) : 0) +
                  varint_size(m->n_user_props) + bytes_size(m->payload_len);
    for (size_t i = 0; i < m->n_user_props; i++)
        size += str_size(m->user_props[i].key) + str_size(m->user_props[i].value);
    return size;
}

int queue_frame_encode(const bl_msg_t *m, uint8_t **out, size_t *out_len)
{
    int rc = queue_frame_check(m);
    if (rc)
        return rc;
    size_t size = queue_frame_size(m);
    if (size > INT32_MAX) /* SQLite binds blob lengths as int */
        return BL_ETOOBIG;
    uint8_t *buf = malloc(size), *p = buf;
    if (!buf)
        return BL_ENOMEM;
    uint8_t flags = (m->retain ? F_RETAIN : 0) | (m->dup ? F_DUP : 0) |
                    (m->has_expiry ? F_EXPIRY : 0) | (m->origin ? F_ORIGIN : 0) |
                    (m->content_type ? F_CTYPE : 0) | (m->response_topic ? F_RTOPIC : 0) |
                    (m->correlation ? F_CORR : 0);
    *p++ = FRAME_VERSION;
    *p++ = flags;
    *p++ = m->qos;
    *p++ = m->payload_format < 0 ? 0xff : (uint8_t)m->payload_format;
    p = put_varint(p, m->seq);
    if (m->has_expiry)
        p = put_varint(p, m->expiry_s);
    p = put_str(p, m->topic);
    if (m->origin)
        p = put_str(p, m->origin);
    if (m->content_type)
        p = put_str(p, m->content_type);
    if (m->response_topic)
        p = put_str(p, m->response_topic);
    if (m->correlation)
        p = put_bytes(p, m->correlation, m->correlation_len);
    p = put_varint(p, m->n_user_props);
    for (size_t i = 0; i < m->n_user_props; i++) {
        p = put_str(p, m->user_props[i].key);
        p = put_str(p, m->user_props[i].value);
    }
    p = put_bytes(p, m->payload, m->payload_len);
    *out = buf;
    *out_len = (size_t)(p - buf);
    return 0;
}

typedef struct {
    const uint8_t *p;
    size_t len, off;
} rd_t;

static int rd_varint(rd_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->off >= r->len)
            return BL_ETRUNC;
        uint8_t b = r->p[r->off++];
        if (shift == 63 && (b & 0xfe)) /* would overflow 64 bits */
            return BL_EINVAL;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return BL_EINVAL;
}

/* Owned copy of a length-prefixed field; `text` refuses embedded NULs (C strings). */
static int rd_field(rd_t *r, bool text, uint8_t **out, size_t *out_len)
{
    uint64_t n;
    int rc = rd_varint(r, &n);
    if (rc)
        return rc;
    if (n > r->len - r->off)
        return BL_ETRUNC;
    if (text && memchr(r->p + r->off, 0, n))
        return BL_EINVAL;
    uint8_t *d = malloc(n + 1);
    if (!d)
        return BL_ENOMEM;
    memcpy(d, r->p + r->off, n);
    d[n] = 0;
    r->off += n;
    *out = d;
    if (out_len)
        *out_len = n;
    return 0;
}

static int rd_str(rd_t *r, char **out)
{
    return rd_field(r, true, (uint8_t **)out, NULL);
}

static int frame_decode_props(rd_t *r, bl_msg_t *m)
{
    uint64_t n;
    int rc = rd_varint(r, &n);
    if (rc)
        return rc;
    if (n > (r->len - r->off) / 2) /* each pair takes at least two bytes */
        return BL_ETRUNC;
    if (n) {
        m->user_props = calloc(n, sizeof(*m->user_props));
        if (!m->user_props)
            return BL_ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        msg_user_prop_t *up = &m->user_props[i];
        if ((rc = rd_str(r, &up->key)) || (rc = rd_str(r, &up->value))) {
            free(up->key);
            up->key = NULL;
            return rc;
        }
        m->n_user_props++;
    }
    return 0;
}

static int frame_decode_body(rd_t *r, bl_msg_t *m)
{
    if (r->len < 4)
        return BL_ETRUNC;
    uint8_t ver = r->p[0], flags = r->p[1], qos = r->p[2], pf = r->p[3];
    if (ver != FRAME_VERSION || (flags & ~F_ALL) || qos > 2 || (pf > 1 && pf != 0xff))
        return BL_EINVAL;
    r->off = 4;
    m->qos = qos;
    m->retain = flags & F_RETAIN;
    m->dup = flags & F_DUP;
    m->payload_format = pf == 0xff ? -1 : pf;
    uint64_t v;
    int rc = rd_varint(r, &m->seq);
    if (!rc && (flags & F_EXPIRY) && !(rc = rd_varint(r, &v))) {
        if (v > UINT32_MAX)
            return BL_EINVAL;
        m->has_expiry = true;
        m->expiry_s = (uint32_t)v;
    }
    if (rc || (rc = rd_str(r, &m->topic)) || ((flags & F_ORIGIN) && (rc = rd_str(r, &m->origin))) ||
        ((flags & F_CTYPE) && (rc = rd_str(r, &m->content_type))) ||
        ((flags & F_RTOPIC) && (rc = rd_str(r, &m->response_topic))) ||
        ((flags & F_CORR) && (rc = rd_field(r, false, &m->correlation, &m->correlation_len))) ||
        (rc = frame_decode_props(r, m)) || (rc = rd_field(r, false, &m->payload, &m->payload_len)))
        return rc;
    return r->off == r->len ? 0 : BL_EINVAL; /* trailing bytes: not our frame */
}

/* The origin of a stored frame without decoding the rest ("" when it has none). */
int queue_frame_origin(const void *buf, size_t len, char origin[BL_SITE_NAME_MAX + 1])
{
    rd_t r = {.p = buf, .len = len, .off = 4};
    uint64_t v;
    origin[0] = '\0';
    if (!buf || len < 4)
        return BL_ETRUNC;
    uint8_t flags = r.p[1];
    int rc = rd_varint(&r, &v);
    if (!rc && (flags & F_EXPIRY))
        rc = rd_varint(&r, &v);
    for (int i = 0; !rc && i < ((flags & F_ORIGIN) ? 2 : 1); i++) { /* topic, origin */
        if (!(rc = rd_varint(&r, &v)) && v > r.len - r.off)
            rc = BL_ETRUNC;
        if (!rc && i == 1) {
            if (v > BL_SITE_NAME_MAX)
                return BL_EINVAL;
            memcpy(origin, r.p + r.off, v);
            origin[v] = '\0';
        }
        r.off += rc ? 0 : v;
    }
    return rc;
}

int queue_frame_decode(const void *buf, size_t len, bl_msg_t **out)
{
    bl_msg_t *m = msg_new();
    if (!m)
        return BL_ENOMEM;
    rd_t r = {.p = buf, .len = len, .off = 0};
    int rc = buf ? frame_decode_body(&r, m) : BL_ETRUNC;
    if (rc) {
        msg_free(m);
        return rc;
    }
    *out = m;
    return 0;
}
