/* SPDX-License-Identifier: MIT */
/* wire_msg.c - the MSG frame and its MQTT 5 properties (docs/PROTOCOL.md "MSG"); the
 * rest of the codec is wire.c, the shared cursor wire_int.h. */
#include "wire_int.h"

/* ---- MSG properties --------------------------------------------------------------- */

/* Bytes of the property block, or <0 when a field cannot be represented. */
static int props_len(const bl_msg_t *m, size_t *len)
{
    size_t n = 0;
    int rc = 0;
    if (m->n_user_props > WIRE_MAX_USER_PROPS)
        return BL_ETOOBIG;
    if (m->payload_format != -1) {
        if (m->payload_format != 0 && m->payload_format != 1)
            return BL_EINVAL;
        rc |= add_len(&n, PROP_TLV_HEAD + 1);
    }
    if (m->has_expiry)
        rc |= add_len(&n, PROP_TLV_HEAD + 4);
    if (m->content_type)
        rc |= add_len(&n, PROP_TLV_HEAD) | add_len(&n, strlen(m->content_type));
    if (m->response_topic)
        rc |= add_len(&n, PROP_TLV_HEAD) | add_len(&n, strlen(m->response_topic));
    if (m->correlation_len && !m->correlation)
        return BL_EINVAL;
    if (m->correlation)
        rc |= add_len(&n, PROP_TLV_HEAD) | add_len(&n, m->correlation_len);
    for (size_t i = 0; i < m->n_user_props; i++) {
        const msg_user_prop_t *u = &m->user_props[i];
        if (!u->key || !u->value || strlen(u->key) > UINT16_MAX)
            return BL_EINVAL;
        rc |= add_len(&n, PROP_TLV_HEAD + 2) | add_len(&n, strlen(u->key)) |
              add_len(&n, strlen(u->value));
    }
    if (rc || n > WIRE_MAX_PROPS_LEN)
        return BL_ETOOBIG;
    *len = n;
    return 0;
}

int wire_msg_check(const bl_msg_t *m)
{
    size_t n;
    return m ? props_len(m, &n) : BL_EINVAL;
}

static uint8_t *put_prop(uint8_t *p, uint8_t id, const void *v, size_t n)
{
    p = put_be(p, id, 1);
    p = put_be(p, n, 4);
    return put_bytes(p, v, n);
}

/* Written in ascending id order, user properties last in their original order. */
static uint8_t *put_msg_props(uint8_t *p, const bl_msg_t *m)
{
    if (m->payload_format != -1) {
        uint8_t v = (uint8_t)m->payload_format;
        p = put_prop(p, PROP_PAYLOAD_FORMAT, &v, 1);
    }
    if (m->has_expiry) {
        uint8_t v[4];
        put_be(v, m->expiry_s, 4);
        p = put_prop(p, PROP_EXPIRY, v, 4);
    }
    if (m->content_type)
        p = put_prop(p, PROP_CONTENT_TYPE, m->content_type, strlen(m->content_type));
    if (m->response_topic)
        p = put_prop(p, PROP_RESPONSE_TOPIC, m->response_topic, strlen(m->response_topic));
    if (m->correlation)
        p = put_prop(p, PROP_CORRELATION, m->correlation, m->correlation_len);
    for (size_t i = 0; i < m->n_user_props; i++) {
        size_t kl = strlen(m->user_props[i].key), vl = strlen(m->user_props[i].value);
        p = put_be(p, PROP_USER, 1);
        p = put_be(p, 2 + kl + vl, 4);
        p = put_be(p, kl, 2);
        p = put_bytes(p, m->user_props[i].key, kl);
        p = put_bytes(p, m->user_props[i].value, vl);
    }
    return p;
}

static int add_user_prop(bl_msg_t *m, const uint8_t *v, size_t n)
{
    if (n < 2)
        return BL_ETRUNC;
    size_t kl = ((size_t)v[0] << 8) | v[1];
    if (kl > n - 2)
        return BL_ETRUNC;
    if (m->n_user_props >= WIRE_MAX_USER_PROPS) {
        return BL_ETOOBIG;
    }
    /* Grow in powers of two: a block of many tiny user properties stays linear. */
    size_t cnt = m->n_user_props;
    if (cnt == 0 || (cnt & (cnt - 1)) == 0) {
        size_t cap = cnt ? cnt * 2 : 4;
        msg_user_prop_t *np = realloc(m->user_props, cap * sizeof(*np));
        if (!np)
            return BL_ENOMEM;
        m->user_props = np;
    }
    msg_user_prop_t *u = &m->user_props[cnt];
    u->key = u->value = NULL;
    int rc = dup_text(v + 2, kl, &u->key);
    if (!rc)
        rc = dup_text(v + 2 + kl, n - 2 - kl, &u->value);
    if (rc) {
        free(u->key);
        free(u->value);
        return rc;
    }
    m->n_user_props++;
    return 0;
}

/* One property TLV. `seen` holds a bit per singleton id already decoded. */
static int decode_prop(bl_msg_t *m, uint8_t id, const uint8_t *v, size_t n, unsigned *seen)
{
    static const uint8_t singletons[] = {PROP_PAYLOAD_FORMAT, PROP_EXPIRY, PROP_CONTENT_TYPE,
                                         PROP_RESPONSE_TOPIC, PROP_CORRELATION};
    unsigned bit = 0;
    if (id == PROP_USER)
        return add_user_prop(m, v, n);
    for (size_t i = 0; i < BL_ARRAY_LEN(singletons); i++)
        if (id == singletons[i])
            bit = 1u << i;
    if (!bit) {
        /* Forward compatibility: a newer sender may add properties we skip. */
        return 0;
    }
    if (*seen & bit) {
        return BL_EINVAL;
    }
    *seen |= bit;
    switch (id) {
    case PROP_PAYLOAD_FORMAT:
        if (n != 1 || v[0] > 1)
            return BL_EINVAL;
        m->payload_format = v[0];
        return 0;
    case PROP_EXPIRY:
        if (n != 4)
            return BL_EINVAL;
        m->has_expiry = true;
        m->expiry_s =
            ((uint32_t)v[0] << 24) | ((uint32_t)v[1] << 16) | ((uint32_t)v[2] << 8) | v[3];
        return 0;
    case PROP_CONTENT_TYPE:
        return dup_text(v, n, &m->content_type);
    case PROP_RESPONSE_TOPIC:
        return dup_text(v, n, &m->response_topic);
    default: /* PROP_CORRELATION: present-but-empty stays non-NULL */
        m->correlation = malloc(n ? n : 1);
        if (!m->correlation)
            return BL_ENOMEM;
        put_bytes(m->correlation, v, n);
        m->correlation_len = n;
        return 0;
    }
}

static int decode_props(rd_t *r, bl_msg_t *m)
{
    unsigned seen = 0;
    while (r->left) {
        uint8_t id;
        uint32_t n;
        const uint8_t *v;
        int rc = rd_u8(r, &id);
        if (!rc)
            rc = rd_u32(r, &n);
        if (!rc)
            rc = rd_take(r, n, &v);
        if (!rc)
            rc = decode_prop(m, id, v, n, &seen);
        if (rc) {
            r->why = "a bad property block";
            return rc;
        }
    }
    return 0;
}

/* ---- MSG -------------------------------------------------------------------------- */

int wire_encode_msg(const bl_msg_t *m, uint8_t **out, size_t *out_len)
{
    size_t olen, tlen, plen, len = WIRE_HEADER_LEN + 1 + 8 + 2 + 4 + 4;
    if (!m || !m->origin || !bl_site_name_valid(m->origin) || !m->topic || m->qos > 2 ||
        (m->payload_len && !m->payload))
        return BL_EINVAL;
    olen = strlen(m->origin);
    tlen = strlen(m->topic);
    if (tlen == 0 || tlen > UINT16_MAX)
        return BL_EINVAL;
    if (m->payload_len > UINT32_MAX)
        return BL_ETOOBIG;
    int rc = props_len(m, &plen);
    if (rc)
        return rc;
    if (add_len(&len, olen) || add_len(&len, tlen) || add_len(&len, plen) ||
        add_len(&len, m->payload_len))
        return BL_ETOOBIG;
    rc = alloc_out(len, out, out_len);
    if (rc)
        return rc;
    uint8_t flags = m->qos | (m->retain ? MSG_FLAG_RETAIN : 0) | (m->dup ? MSG_FLAG_DUP : 0);
    uint8_t *p = put_header(*out, WIRE_MSG, flags);
    p = put_be(p, olen, 1);
    p = put_bytes(p, m->origin, olen);
    p = put_be(p, m->seq, 8);
    p = put_be(p, tlen, 2);
    p = put_bytes(p, m->topic, tlen);
    p = put_be(p, plen, 4);
    p = put_msg_props(p, m);
    p = put_be(p, m->payload_len, 4);
    put_bytes(p, m->payload, m->payload_len);
    return 0;
}

/* Origin, seq and topic: the fixed part of the body before the properties. */
static int decode_msg_head(rd_t *r, bl_msg_t *m)
{
    char site[BL_SITE_NAME_MAX + 1];
    uint64_t seq;
    uint16_t tlen;
    const uint8_t *t;
    int rc = rd_site(r, site);
    if (rc)
        return rc;
    m->origin = strdup(site);
    if (!m->origin)
        return BL_ENOMEM;
    rc = rd_be(r, 8, &seq);
    if (!rc)
        rc = rd_u16(r, &tlen);
    if (!rc)
        rc = rd_take(r, tlen, &t);
    if (rc)
        return rc;
    m->seq = seq;
    if (tlen == 0) {
        r->why = "a MSG with an empty topic";
        return BL_EINVAL;
    }
    return dup_text(t, tlen, &m->topic);
}

/* A u32 length and that many bytes, at most max: else BL_ETOOBIG, too_big in r->why. */
static int rd_block(rd_t *r, size_t max, const char *too_big, const uint8_t **p, uint32_t *n)
{
    int rc = rd_u32(r, n);
    if (!rc && *n > max) {
        r->why = too_big;
        rc = BL_ETOOBIG;
    }
    if (!rc)
        rc = rd_take(r, *n, p);
    return rc;
}

int wire_decode_msg_body(rd_t *r, uint8_t flags, size_t max_payload, bl_msg_t **out)
{
    if ((flags & ~MSG_FLAGS_KNOWN) || (flags & MSG_FLAG_QOS_MASK) == 3) {
        r->why = "MSG flags it does not know";
        return BL_EINVAL;
    }
    bl_msg_t *m = msg_new();
    if (!m)
        return BL_ENOMEM;
    m->qos = flags & MSG_FLAG_QOS_MASK;
    m->retain = (flags & MSG_FLAG_RETAIN) != 0;
    m->dup = (flags & MSG_FLAG_DUP) != 0;

    uint32_t n;
    const uint8_t *p;
    int rc = decode_msg_head(r, m);
    if (!rc)
        rc = rd_block(r, WIRE_MAX_PROPS_LEN, "a MSG property block over the limit", &p, &n);
    if (!rc) {
        rd_t props = {.p = p, .left = n};
        rc = decode_props(&props, m);
        r->why = props.why;
    }
    if (!rc)
        rc = rd_block(r, max_payload, "a MSG payload over max_message_size", &p, &n);
    if (!rc && r->left) {
        r->why = "bytes after the MSG payload";
        rc = BL_EINVAL;
    }
    if (!rc && n)
        rc = msg_set_payload(m, p, n);
    if (rc) {
        msg_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- ACK, HELLO ------------------------------------------------------------------- */
