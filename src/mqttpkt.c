/* SPDX-License-Identifier: MIT */
/* mqttpkt.c - the MQTT 5.0 client packet codec (mqttpkt.h), pure: the checks of topics,
 * filters and publishes, and every packet the client sends. Parsing what the broker sends
 * is mqttpkt_parse.c. */
#include "mqttpkt_int.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- checks */

bool mqttpkt_utf8_valid(const char *s, size_t len)
{
    if (len > UINT16_MAX || !g_utf8_validate(s, (gssize)len, NULL) || memchr(s, 0, len))
        return false;
    for (const char *p = s; p < s + len; p = g_utf8_next_char(p)) {
        gunichar c = g_utf8_get_char(p);
        if (c <= 0x1F || (c >= 0x7F && c <= 0x9F))
            return false;
        if ((c >= 0xFDD0 && c <= 0xFDEF) || (c & 0xFFFE) == 0xFFFE)
            return false;
    }
    return true;
}

bool mqttpkt_topic_valid(const char *topic)
{
    if (!topic || !topic[0])
        return false;
    size_t n = strlen(topic);
    return !strpbrk(topic, "+#") && mqttpkt_utf8_valid(topic, n);
}

const char *mqttpkt_filter_problem(const char *f)
{
    size_t n = f ? strlen(f) : 0;
    if (n == 0)
        return "is empty";
    if (n > UINT16_MAX)
        return "is longer than 65535 bytes";
    if (!mqttpkt_utf8_valid(f, n))
        return "is not valid UTF-8 or contains control characters";
    for (size_t i = 0; i < n; i++) {
        bool starts_level = i == 0 || f[i - 1] == '/';
        bool ends_level = i + 1 == n || f[i + 1] == '/';
        if (f[i] == '#' && (!starts_level || i + 1 != n)) /* 4.7.1.2 */
            return "has '#' that is not the whole last level";
        if (f[i] == '+' && (!starts_level || !ends_level)) /* 4.7.1.3 */
            return "has '+' that is not a whole level";
    }
    return NULL;
}

bool mqttpkt_filter_valid(const char *f)
{
    return mqttpkt_filter_problem(f) == NULL;
}

static bool str_ok(const char *s)
{
    return s && mqttpkt_utf8_valid(s, strlen(s));
}

int mqttpkt_check_publish(const bl_msg_t *m)
{
    if (!m || m->qos > 2 || !mqttpkt_topic_valid(m->topic))
        return BL_EINVAL;
    if (m->payload_format < -1 || m->payload_format > 1)
        return BL_EINVAL;
    if (m->content_type && !str_ok(m->content_type))
        return BL_EINVAL;
    /* 3.3.2.3.5: the Response Topic is a topic name, not a filter. */
    if (m->response_topic && !mqttpkt_topic_valid(m->response_topic))
        return BL_EINVAL;
    if (m->correlation && m->correlation_len > UINT16_MAX)
        return BL_EINVAL;
    for (size_t i = 0; i < m->n_user_props; i++)
        if (!str_ok(m->user_props[i].key) || !str_ok(m->user_props[i].value))
            return BL_EINVAL;
    return mqttpkt_publish_size(m) ? 0 : BL_EINVAL;
}

/* ---------------------------------------------------------------- encoding */

static size_t varint_size(size_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static void put_u8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void put_u16(GByteArray *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    g_byte_array_append(b, x, 2);
}

static void put_u32(GByteArray *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    g_byte_array_append(b, x, 4);
}

/* 1.5.5 Variable Byte Integer. */
static void put_varint(GByteArray *b, size_t v)
{
    do {
        uint8_t byte = v % 128;
        v /= 128;
        if (v)
            byte |= 0x80;
        put_u8(b, byte);
    } while (v);
}

static void put_bin(GByteArray *b, const void *p, size_t n)
{
    put_u16(b, (uint16_t)n);
    if (n)
        g_byte_array_append(b, p, (guint)n);
}

static void put_str(GByteArray *b, const char *s)
{
    put_bin(b, s, strlen(s));
}

/* A property (2.2.2.2): its identifier, then its value. */
static void put_prop_u32(GByteArray *b, uint8_t id, uint32_t v)
{
    put_u8(b, id);
    put_u32(b, v);
}

static void put_prop_u16(GByteArray *b, uint8_t id, uint16_t v)
{
    put_u8(b, id);
    put_u16(b, v);
}

static void put_prop_str(GByteArray *b, uint8_t id, const char *s)
{
    put_u8(b, id);
    put_str(b, s);
}

/* The fixed header, then the body built apart (small packets only). */
static int put_packet(GByteArray *out, uint8_t first, const GByteArray *body)
{
    if (body->len > MQTTPKT_MAX_REMAINING)
        return BL_EINVAL;
    put_u8(out, first);
    put_varint(out, body->len);
    g_byte_array_append(out, body->data, body->len);
    return 0;
}

/* The properties of an application message (3.3.2.3), in the order the standard lists
 * them; user properties keep theirs (3.3.2.3.7). */
static size_t props_size(const bl_msg_t *m)
{
    size_t n = 0;
    if (m->payload_format >= 0)
        n += 2;
    if (m->has_expiry)
        n += 5;
    if (m->content_type)
        n += 3 + strlen(m->content_type);
    if (m->response_topic)
        n += 3 + strlen(m->response_topic);
    if (m->correlation)
        n += 3 + m->correlation_len;
    for (size_t i = 0; i < m->n_user_props; i++)
        n += 5 + strlen(m->user_props[i].key) + strlen(m->user_props[i].value);
    return n;
}

static void put_msg_props(GByteArray *b, const bl_msg_t *m)
{
    put_varint(b, props_size(m));
    if (m->payload_format >= 0) {
        put_u8(b, P_PAYLOAD_FORMAT);
        put_u8(b, (uint8_t)m->payload_format);
    }
    if (m->has_expiry)
        put_prop_u32(b, P_EXPIRY, m->expiry_s);
    if (m->content_type)
        put_prop_str(b, P_CONTENT_TYPE, m->content_type);
    if (m->response_topic)
        put_prop_str(b, P_RESPONSE_TOPIC, m->response_topic);
    if (m->correlation) {
        put_u8(b, P_CORRELATION);
        put_bin(b, m->correlation, m->correlation_len);
    }
    for (size_t i = 0; i < m->n_user_props; i++) {
        put_u8(b, P_USER);
        put_str(b, m->user_props[i].key);
        put_str(b, m->user_props[i].value);
    }
}

static size_t publish_remaining(const bl_msg_t *m)
{
    size_t props = props_size(m);
    return 2 + strlen(m->topic) + (m->qos ? 2 : 0) + varint_size(props) + props + m->payload_len;
}

size_t mqttpkt_publish_size(const bl_msg_t *m)
{
    if (!m || !m->topic || strlen(m->topic) > UINT16_MAX)
        return 0;
    size_t r = publish_remaining(m);
    return r > MQTTPKT_MAX_REMAINING ? 0 : 1 + varint_size(r) + r;
}

int mqttpkt_publish(GByteArray *out, const bl_msg_t *m, uint16_t pid, bool dup)
{
    if (!out || !m || m->qos > 2 || (m->qos && !pid) || !mqttpkt_publish_size(m))
        return BL_EINVAL;
    /* 3.3.1: DUP 0 for QoS 0; RETAIN; QoS in bits 1-2. */
    put_u8(out, (uint8_t)(0x30 | (dup && m->qos ? 0x08 : 0) | m->qos << 1 | (m->retain ? 1 : 0)));
    put_varint(out, publish_remaining(m));
    put_str(out, m->topic);
    if (m->qos)
        put_u16(out, pid);
    put_msg_props(out, m);
    if (m->payload_len)
        g_byte_array_append(out, m->payload, (guint)m->payload_len);
    return 0;
}

int mqttpkt_connect(GByteArray *out, const mqttpkt_connect_t *c)
{
    if (!out || !c || !c->client_id || strlen(c->client_id) > UINT16_MAX ||
        (c->password && !c->username))
        return BL_EINVAL;
    const bl_msg_t *w = c->will;
    if (w && (mqttpkt_check_publish(w) || w->payload_len > UINT16_MAX))
        return BL_EINVAL;
    GByteArray *b = g_byte_array_new();
    put_str(b, "MQTT");
    put_u8(b, 5);
    /* 3.1.2.3 Connect Flags */
    uint8_t flags =
        (c->clean_start ? 0x02 : 0) | (c->username ? 0x80 : 0) | (c->password ? 0x40 : 0);
    if (w)
        flags |= (uint8_t)(0x04 | w->qos << 3 | (w->retain ? 0x20 : 0));
    put_u8(b, flags);
    put_u16(b, c->keepalive);
    GByteArray *p = g_byte_array_new();
    if (c->session_expiry)
        put_prop_u32(p, P_SESSION_EXPIRY, c->session_expiry);
    if (c->receive_max)
        put_prop_u16(p, P_RECEIVE_MAX, c->receive_max);
    if (c->max_packet_size)
        put_prop_u32(p, P_MAX_PACKET, c->max_packet_size);
    put_varint(b, p->len);
    g_byte_array_append(b, p->data, p->len);
    g_byte_array_free(p, TRUE);
    put_str(b, c->client_id); /* 3.1.3 payload */
    if (w) {
        put_msg_props(b, w); /* 3.1.3.2 Will Properties */
        put_str(b, w->topic);
        put_bin(b, w->payload, w->payload_len);
    }
    if (c->username)
        put_str(b, c->username);
    if (c->password)
        put_str(b, c->password);
    int rc = put_packet(out, MQTTPKT_CONNECT << 4, b);
    g_byte_array_free(b, TRUE);
    return rc;
}

int mqttpkt_ack(GByteArray *out, uint8_t type, uint16_t pid, uint8_t reason)
{
    if (!out || type < MQTTPKT_PUBACK || type > MQTTPKT_PUBCOMP || !pid)
        return BL_EINVAL;
    /* 3.6.1: PUBREL's flags are 0010. 3.4.2.1: with reason 0 and no properties the
     * reason code may be left out. */
    put_u8(out, (uint8_t)(type << 4 | (type == MQTTPKT_PUBREL ? 0x02 : 0)));
    put_u8(out, reason ? 3 : 2);
    put_u16(out, pid);
    if (reason)
        put_u8(out, reason);
    return 0;
}

int mqttpkt_subscribe(GByteArray *out, uint16_t pid, const char *filter, uint8_t qos,
                      uint8_t options)
{
    if (!out || !pid || qos > 2 || !mqttpkt_filter_valid(filter))
        return BL_EINVAL;
    GByteArray *b = g_byte_array_new();
    put_u16(b, pid);
    put_varint(b, 0); /* no properties */
    put_str(b, filter);
    put_u8(b, (uint8_t)(qos | (options & (MQTTPKT_SUB_NO_LOCAL | MQTTPKT_SUB_RAP))));
    int rc = put_packet(out, MQTTPKT_SUBSCRIBE << 4 | 0x02, b); /* 3.8.1: flags 0010 */
    g_byte_array_free(b, TRUE);
    return rc;
}

int mqttpkt_unsubscribe(GByteArray *out, uint16_t pid, const char *filter)
{
    if (!out || !pid || !mqttpkt_filter_valid(filter))
        return BL_EINVAL;
    GByteArray *b = g_byte_array_new();
    put_u16(b, pid);
    put_varint(b, 0);
    put_str(b, filter);
    int rc = put_packet(out, MQTTPKT_UNSUBSCRIBE << 4 | 0x02, b); /* 3.10.1 */
    g_byte_array_free(b, TRUE);
    return rc;
}

int mqttpkt_pingreq(GByteArray *out)
{
    if (!out)
        return BL_EINVAL;
    static const uint8_t ping[2] = {MQTTPKT_PINGREQ << 4, 0};
    g_byte_array_append(out, ping, 2);
    return 0;
}

int mqttpkt_disconnect(GByteArray *out, uint8_t reason)
{
    if (!out)
        return BL_EINVAL;
    put_u8(out, MQTTPKT_DISCONNECT << 4);
    put_u8(out, reason ? 1 : 0); /* 3.14.2.1: reason 0 may be left out */
    if (reason)
        put_u8(out, reason);
    return 0;
}
