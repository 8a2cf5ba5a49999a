/* SPDX-License-Identifier: MIT */
/* mqttpkt_parse.c - the MQTT 5.0 client packet codec (mqttpkt.h), pure: parsing what the
 * broker sends, through a cursor that never steps past the bytes present, with each
 * property checked against the packet types that may carry it (MQTT 5.0, 2.2.2.2). Fuzzed
 * by fuzz/fuzz_mqttpkt.c. */
#include "mqttpkt_int.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- parsing */

typedef struct rd {
    const uint8_t *p;
    size_t n, off;
    const char *why;
} rd_t;

static bool fail(rd_t *r, const char *why)
{
    if (!r->why)
        r->why = why;
    return false;
}

static bool rd_u8(rd_t *r, uint8_t *v)
{
    if (r->n - r->off < 1)
        return fail(r, "packet ends early");
    *v = r->p[r->off++];
    return true;
}

static bool rd_u16(rd_t *r, uint16_t *v)
{
    if (r->n - r->off < 2)
        return fail(r, "packet ends early");
    *v = (uint16_t)(r->p[r->off] << 8 | r->p[r->off + 1]);
    r->off += 2;
    return true;
}

static bool rd_u32(rd_t *r, uint32_t *v)
{
    if (r->n - r->off < 4)
        return fail(r, "packet ends early");
    const uint8_t *p = r->p + r->off;
    *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    r->off += 4;
    return true;
}

static const char VARINT_LONG[] = "variable byte integer longer than 4 bytes";

/* 1.5.5: at most 4 bytes. */
static bool rd_varint(rd_t *r, uint32_t *v)
{
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t b;
        if (!rd_u8(r, &b))
            return false;
        x |= (uint32_t)(b & 0x7F) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return fail(r, VARINT_LONG);
}

static bool rd_bin(rd_t *r, const uint8_t **p, uint16_t *len)
{
    if (!rd_u16(r, len))
        return false;
    if (r->n - r->off < *len)
        return fail(r, "length runs past the packet");
    *p = r->p + r->off;
    r->off += *len;
    return true;
}

/* A UTF-8 string (1.5.4), copied with its NUL when out is given. */
static bool rd_str(rd_t *r, char **out)
{
    const uint8_t *p;
    uint16_t len;
    if (!rd_bin(r, &p, &len))
        return false;
    if (!mqttpkt_utf8_valid((const char *)p, len))
        return fail(r, "string is not valid UTF-8 (or has a NUL or control character)");
    if (out) {
        free(*out); /* a repeated property was refused before; keeps this leak-free */
        *out = g_strndup((const char *)p, len);
    }
    return true;
}

/* Which properties each packet may carry (2.2.2.2). */
static bool prop_allowed(uint8_t type, uint8_t id)
{
    switch (type) {
    case MQTTPKT_CONNACK:
        switch (id) {
        case P_SESSION_EXPIRY:
        case P_ASSIGNED_ID:
        case P_SERVER_KEEPALIVE:
        case P_AUTH_METHOD:
        case P_AUTH_DATA:
        case P_RESPONSE_INFO:
        case P_SERVER_REF:
        case P_REASON_STRING:
        case P_RECEIVE_MAX:
        case P_TOPIC_ALIAS_MAX:
        case P_MAX_QOS:
        case P_RETAIN_AVAILABLE:
        case P_USER:
        case P_MAX_PACKET:
        case P_WILDCARD_AVAILABLE:
        case P_SUB_ID_AVAILABLE:
        case P_SHARED_AVAILABLE:
            return true;
        }
        return false;
    case MQTTPKT_PUBLISH:
        switch (id) {
        case P_PAYLOAD_FORMAT:
        case P_EXPIRY:
        case P_CONTENT_TYPE:
        case P_RESPONSE_TOPIC:
        case P_CORRELATION:
        case P_SUB_ID:
        case P_TOPIC_ALIAS:
        case P_USER:
            return true;
        }
        return false;
    case MQTTPKT_DISCONNECT:
        return id == P_SESSION_EXPIRY || id == P_SERVER_REF || id == P_REASON_STRING ||
               id == P_USER;
    default: /* PUB* acknowledgements, SUBACK, UNSUBACK */
        return id == P_REASON_STRING || id == P_USER;
    }
}

/* One property's value, skipped or stored into out. */
static bool rd_prop(rd_t *r, uint8_t id, mqttpkt_t *out, size_t *n_user)
{
    bl_msg_t *m = &out->msg;
    const uint8_t *bin;
    uint16_t len, u16;
    uint32_t u32;
    uint8_t u8;
    switch (id) {
    case P_PAYLOAD_FORMAT:
    case P_MAX_QOS:
    case P_RETAIN_AVAILABLE:
    case P_WILDCARD_AVAILABLE:
    case P_SUB_ID_AVAILABLE:
    case P_SHARED_AVAILABLE:
        if (!rd_u8(r, &u8))
            return false;
        if (u8 > 1)
            return fail(r, "byte property out of range");
        if (id == P_PAYLOAD_FORMAT)
            m->payload_format = u8;
        else if (id == P_MAX_QOS)
            out->max_qos = u8;
        else if (id == P_RETAIN_AVAILABLE)
            out->retain_available = u8;
        return true;
    case P_EXPIRY:
    case P_SESSION_EXPIRY:
    case P_MAX_PACKET:
        if (!rd_u32(r, &u32))
            return false;
        if (id == P_EXPIRY) {
            m->has_expiry = true;
            m->expiry_s = u32;
        } else if (id == P_MAX_PACKET) {
            if (!u32)
                return fail(r, "Maximum Packet Size 0");
            out->max_packet_size = u32;
        }
        return true;
    case P_SERVER_KEEPALIVE:
    case P_RECEIVE_MAX:
    case P_TOPIC_ALIAS_MAX:
        if (!rd_u16(r, &u16))
            return false;
        if (id == P_RECEIVE_MAX && !u16)
            return fail(r, "Receive Maximum 0");
        if (id == P_SERVER_KEEPALIVE)
            out->server_keepalive = u16;
        else if (id == P_RECEIVE_MAX)
            out->receive_max = u16;
        return true;
    case P_TOPIC_ALIAS:
        /* We announce no Topic Alias Maximum, i.e. 0: 3.3.2.3.4. */
        return fail(r, "topic alias, which we did not allow");
    case P_SUB_ID:
        return rd_varint(r, &u32) && (u32 ? true : fail(r, "Subscription Identifier 0"));
    case P_CONTENT_TYPE:
        return rd_str(r, &m->content_type);
    case P_RESPONSE_TOPIC:
        if (!rd_str(r, &m->response_topic))
            return false;
        return mqttpkt_topic_valid(m->response_topic)
                   ? true
                   : fail(r, "Response Topic is not a topic name");
    case P_ASSIGNED_ID:
        return rd_str(r, &out->assigned_client_id);
    case P_REASON_STRING:
        return rd_str(r, &out->reason_string);
    case P_AUTH_METHOD:
    case P_RESPONSE_INFO:
    case P_SERVER_REF:
        return rd_str(r, NULL);
    case P_AUTH_DATA:
        return rd_bin(r, &bin, &len);
    case P_CORRELATION:
        if (!rd_bin(r, &bin, &len))
            return false;
        free(m->correlation);
        m->correlation = malloc(len ? len : 1); /* present, even when empty */
        if (!m->correlation)
            return fail(r, "out of memory");
        memcpy(m->correlation, bin, len);
        m->correlation_len = len;
        return true;
    case P_USER: {
        char *k = NULL, *v = NULL;
        if (!rd_str(r, &k) || !rd_str(r, &v)) {
            free(k);
            free(v);
            return false;
        }
        if (out->type != MQTTPKT_PUBLISH) { /* only a message's are carried */
            free(k);
            free(v);
            return true;
        }
        m->user_props[*n_user].key = k;
        m->user_props[*n_user].value = v;
        m->n_user_props = ++*n_user;
        return true;
    }
    default:
        return fail(r, "unknown property");
    }
}

/* The property section (2.2.2): a length, then identifier-value pairs. Two passes: the
 * first checks the identifiers and counts the user properties so that their array is
 * allocated once (a message may carry many). */
static bool rd_props(rd_t *r, mqttpkt_t *out)
{
    uint32_t len;
    if (!rd_varint(r, &len))
        return false;
    if (r->n - r->off < len)
        return fail(r, "properties run past the packet");
    rd_t scan = {.p = r->p, .n = r->off + len, .off = r->off};
    uint64_t seen = 0;
    size_t users = 0;
    mqttpkt_t dummy = {.type = 0};
    while (scan.off < scan.n) {
        uint32_t id;
        if (!rd_varint(&scan, &id))
            return fail(r, scan.why);
        if (id > 0x7F || !prop_allowed(out->type, (uint8_t)id))
            return fail(r, "property not allowed in this packet");
        if (id == P_USER) {
            users++;
        } else if (id != P_SUB_ID) { /* 2.2.2.2: others at most once */
            if (seen & (1ull << (id & 63)))
                return fail(r, "property given twice");
            seen |= 1ull << (id & 63);
        }
        /* Skip the value with the parser's own rules (dummy keeps nothing). */
        dummy.type = MQTTPKT_CONNECT; /* not PUBLISH: user properties are not kept */
        dummy.msg.user_props = NULL;
        size_t none = 0;
        bool ok = rd_prop(&scan, (uint8_t)id, &dummy, &none);
        mqttpkt_clear(&dummy);
        if (!ok)
            return fail(r, scan.why);
    }
    if (users && out->type == MQTTPKT_PUBLISH) {
        out->msg.user_props = calloc(users, sizeof(*out->msg.user_props));
        if (!out->msg.user_props)
            return fail(r, "out of memory");
    }
    size_t n_user = 0;
    rd_t body = {.p = r->p, .n = r->off + len, .off = r->off};
    while (body.off < body.n) {
        uint32_t id;
        if (!rd_varint(&body, &id) || !rd_prop(&body, (uint8_t)id, out, &n_user))
            return fail(r, body.why);
    }
    r->off = body.n;
    return true;
}

/* A packet identifier (2.2.1): never 0. */
static bool rd_pid(rd_t *r, uint16_t *pid)
{
    if (!rd_u16(r, pid))
        return false;
    return *pid ? true : fail(r, "packet identifier 0");
}

/* The rest of the packet, copied (malloc); *n 0 and *out NULL when nothing is left. */
static bool rd_rest(rd_t *r, uint8_t **out, size_t *n)
{
    *n = r->n - r->off;
    if (!*n)
        return true;
    if (!(*out = malloc(*n)))
        return fail(r, "out of memory");
    memcpy(*out, r->p + r->off, *n);
    r->off = r->n;
    return true;
}

static bool parse_connack(rd_t *r, mqttpkt_t *out)
{
    uint8_t ack;
    if (!rd_u8(r, &ack) || !rd_u8(r, &out->reason))
        return false;
    if (ack & 0xFE)
        return fail(r, "CONNACK flags reserved bits set");
    out->session_present = ack & 1;
    if (out->reason && out->session_present)
        return fail(r, "CONNACK refusal with a session present");
    return rd_props(r, out);
}

static bool parse_publish(rd_t *r, mqttpkt_t *out)
{
    bl_msg_t *m = &out->msg;
    m->qos = (out->flags >> 1) & 3;
    m->retain = out->flags & 1;
    m->dup = (out->flags >> 3) & 1;
    if (m->qos == 3)
        return fail(r, "PUBLISH with QoS 3");
    if (m->qos == 0 && m->dup)
        return fail(r, "PUBLISH with QoS 0 and DUP");
    if (!rd_str(r, &m->topic))
        return false;
    if (!mqttpkt_topic_valid(m->topic))
        return fail(r, "PUBLISH topic is empty or has a wildcard");
    if (m->qos && !rd_pid(r, &out->pid))
        return false;
    return rd_props(r, out) && rd_rest(r, &m->payload, &m->payload_len);
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP (3.4-3.7): identifier, then optionally a reason code
 * and properties. */
static bool parse_ack(rd_t *r, mqttpkt_t *out)
{
    if (!rd_pid(r, &out->pid))
        return false;
    if (r->off < r->n && !rd_u8(r, &out->reason))
        return false;
    return r->off == r->n || rd_props(r, out);
}

/* SUBACK, UNSUBACK (3.9, 3.11): identifier, properties, one reason code per filter. */
static bool parse_suback(rd_t *r, mqttpkt_t *out)
{
    if (!rd_pid(r, &out->pid) || !rd_props(r, out) || !rd_rest(r, &out->codes, &out->n_codes))
        return false;
    return out->n_codes ? true : fail(r, "no reason codes");
}

static bool parse_disconnect(rd_t *r, mqttpkt_t *out)
{
    if (r->off < r->n && !rd_u8(r, &out->reason))
        return false;
    return r->off == r->n || rd_props(r, out);
}

/* 2.1.3: the flags each packet type must carry. */
static bool flags_ok(uint8_t type, uint8_t flags)
{
    switch (type) {
    case MQTTPKT_PUBLISH:
        return true;
    case MQTTPKT_PUBREL:
        return flags == 2;
    default:
        return flags == 0;
    }
}

size_t mqttpkt_peek_size(const uint8_t *buf, size_t len)
{
    rd_t hdr = {.p = buf, .n = len};
    uint8_t first;
    uint32_t remaining;
    if (!buf || !rd_u8(&hdr, &first) || !rd_varint(&hdr, &remaining))
        return 0;
    return hdr.off + remaining;
}

int mqttpkt_parse(const uint8_t *buf, size_t len, size_t max_size, mqttpkt_t *out, size_t *used,
                  const char **why)
{
    static const char *unused;
    if (!why)
        why = &unused;
    *why = NULL;
    *used = 0;
    if (!buf || !out)
        return BL_EINVAL;
    rd_t hdr = {.p = buf, .n = len};
    uint8_t first;
    uint32_t remaining;
    if (!rd_u8(&hdr, &first) || !rd_varint(&hdr, &remaining)) {
        if (hdr.why == VARINT_LONG) { /* malformed, not short */
            *why = hdr.why;
            return BL_EINVAL;
        }
        return 0;
    }
    size_t total = hdr.off + remaining;
    if (max_size && total > max_size) {
        *why = "packet larger than our Maximum Packet Size";
        return BL_ETOOBIG;
    }
    if (len < total)
        return 0;
    memset(out, 0, sizeof(*out));
    msg_init(&out->msg);
    out->type = first >> 4;
    out->flags = first & 0x0F;
    out->receive_max = UINT16_MAX;
    out->max_qos = 2;
    out->retain_available = true;
    out->server_keepalive = -1;
    rd_t r = {.p = buf + hdr.off, .n = remaining};
    bool ok;
    if (!flags_ok(out->type, out->flags)) {
        ok = fail(&r, "reserved flags in the fixed header");
    } else {
        switch (out->type) {
        case MQTTPKT_CONNACK:
            ok = parse_connack(&r, out);
            break;
        case MQTTPKT_PUBLISH:
            ok = parse_publish(&r, out);
            break;
        case MQTTPKT_PUBACK:
        case MQTTPKT_PUBREC:
        case MQTTPKT_PUBREL:
        case MQTTPKT_PUBCOMP:
            ok = parse_ack(&r, out);
            break;
        case MQTTPKT_SUBACK:
        case MQTTPKT_UNSUBACK:
            ok = parse_suback(&r, out);
            break;
        case MQTTPKT_PINGRESP:
            ok = true;
            break;
        case MQTTPKT_DISCONNECT:
            ok = parse_disconnect(&r, out);
            break;
        default: /* CONNECT, SUBSCRIBE, ... go to a server; AUTH: no enhanced auth */
            ok = fail(&r, "packet type a server does not send us");
            break;
        }
    }
    if (ok && r.off != r.n)
        ok = fail(&r, "bytes after the end of the packet");
    if (!ok) {
        bool oom = r.why && !strcmp(r.why, "out of memory");
        *why = r.why;
        mqttpkt_clear(out);
        return oom ? BL_ENOMEM : BL_EINVAL;
    }
    *used = total;
    return 0;
}

void mqttpkt_clear(mqttpkt_t *p)
{
    if (!p)
        return;
    free(p->reason_string);
    free(p->assigned_client_id);
    free(p->codes);
    /* msg_clear frees user_props[0..n); a partly filled array has n set as it fills. */
    msg_clear(&p->msg);
    p->reason_string = p->assigned_client_id = NULL;
    p->codes = NULL;
    p->n_codes = 0;
}

const char *mqttpkt_reason_name(uint8_t reason)
{
    switch (reason) {
    case 0x00:
        return "success";
    case 0x04:
        return "disconnect with Will";
    case 0x10:
        return "no matching subscribers";
    case 0x11:
        return "no subscription existed";
    case 0x80:
        return "unspecified error";
    case 0x81:
        return "malformed packet";
    case 0x82:
        return "protocol error";
    case 0x83:
        return "implementation specific error";
    case 0x84:
        return "unsupported protocol version";
    case 0x85:
        return "client identifier not valid";
    case 0x86:
        return "bad user name or password";
    case 0x87:
        return "not authorized";
    case 0x88:
        return "server unavailable";
    case 0x89:
        return "server busy";
    case 0x8A:
        return "banned";
    case 0x8B:
        return "server shutting down";
    case 0x8C:
        return "bad authentication method";
    case 0x8D:
        return "keep alive timeout";
    case 0x8E:
        return "session taken over";
    case 0x8F:
        return "topic filter invalid";
    case 0x90:
        return "topic name invalid";
    case 0x91:
        return "packet identifier in use";
    case 0x92:
        return "packet identifier not found";
    case 0x93:
        return "receive maximum exceeded";
    case 0x94:
        return "topic alias invalid";
    case 0x95:
        return "packet too large";
    case 0x96:
        return "message rate too high";
    case 0x97:
        return "quota exceeded";
    case 0x98:
        return "administrative action";
    case 0x99:
        return "payload format invalid";
    case 0x9A:
        return "retain not supported";
    case 0x9B:
        return "QoS not supported";
    case 0x9C:
        return "use another server";
    case 0x9D:
        return "server moved";
    case 0x9E:
        return "shared subscriptions not supported";
    case 0x9F:
        return "connection rate exceeded";
    case 0xA0:
        return "maximum connect time";
    case 0xA1:
        return "subscription identifiers not supported";
    case 0xA2:
        return "wildcard subscriptions not supported";
    default:
        return reason < 0x80 ? "success" : "error";
    }
}
