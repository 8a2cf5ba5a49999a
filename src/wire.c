/* SPDX-License-Identifier: MIT */
/* wire.c - the frame codec spoken inside the data channel; docs/PROTOCOL.md "Frames"
 * is the specification this file implements, byte by byte.
 *
 * Decoders read through a cursor that refuses to step past the end of the buffer, so
 * every announced length is checked against the bytes actually present before anything
 * is allocated for it: a hostile u32 length costs nothing. Reasons for refusal are
 * logged at debug level only; the caller logs one warning naming the peer. */
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

static int rd_take(rd_t *r, size_t n, const uint8_t **out)
{
    if (n > r->left)
        return BL_ETRUNC;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return 0;
}

static int rd_be(rd_t *r, size_t n, uint64_t *v)
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

static int rd_u8(rd_t *r, uint8_t *v)
{
    uint64_t x;
    int rc = rd_be(r, 1, &x);
    *v = (uint8_t)x;
    return rc;
}

static int rd_u16(rd_t *r, uint16_t *v)
{
    uint64_t x;
    int rc = rd_be(r, 2, &x);
    *v = (uint16_t)x;
    return rc;
}

static int rd_u32(rd_t *r, uint32_t *v)
{
    uint64_t x;
    int rc = rd_be(r, 4, &x);
    *v = (uint32_t)x;
    return rc;
}

/* A string field: no NUL inside (it becomes a C string), copied NUL-terminated. */
static int dup_text(const uint8_t *p, size_t n, char **out)
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
static int rd_site(rd_t *r, char *site)
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

static uint8_t *put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--) {
        p[i - 1] = (uint8_t)v;
        v >>= 8;
    }
    return p + n;
}

static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
    if (n)
        memcpy(p, src, n);
    return p + n;
}

static uint8_t *put_header(uint8_t *p, uint8_t type, uint8_t flags)
{
    p[0] = WIRE_VERSION;
    p[1] = type;
    p[2] = flags;
    p[3] = 0; /* reserved */
    return p + WIRE_HEADER_LEN;
}

/* acc += n, refusing to wrap size_t (matters where size_t is 32 bits). */
static int add_len(size_t *acc, size_t n)
{
    if (n > SIZE_MAX - *acc)
        return BL_ETOOBIG;
    *acc += n;
    return 0;
}

static int alloc_out(size_t len, uint8_t **out, size_t *out_len)
{
    *out = malloc(len);
    if (!*out)
        return BL_ENOMEM;
    *out_len = len;
    return 0;
}

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

static int decode_msg(rd_t *r, uint8_t flags, size_t max_payload, bl_msg_t **out)
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
        rc = rd_u32(r, &n);
    if (!rc && n > WIRE_MAX_PROPS_LEN) {
        r->why = "a MSG property block over the limit";
        rc = BL_ETOOBIG;
    }
    if (!rc)
        rc = rd_take(r, n, &p);
    if (!rc) {
        rd_t props = {.p = p, .left = n};
        rc = decode_props(&props, m);
        r->why = props.why;
    }
    if (!rc)
        rc = rd_u32(r, &n);
    if (!rc && n > max_payload) {
        r->why = "a MSG payload over max_message_size";
        rc = BL_ETOOBIG;
    }
    if (!rc)
        rc = rd_take(r, n, &p);
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

int wire_encode_ack(const uint64_t *seqs, size_t n, uint8_t **out, size_t *out_len)
{
    if (n > UINT16_MAX || (n && !seqs))
        return BL_EINVAL;
    int rc = alloc_out(WIRE_HEADER_LEN + 2 + n * 8, out, out_len);
    if (rc)
        return rc;
    uint8_t *p = put_header(*out, WIRE_ACK, 0);
    p = put_be(p, n, 2);
    for (size_t i = 0; i < n; i++)
        p = put_be(p, seqs[i], 8);
    return 0;
}

/* The start of ACK and BATCH: no flags, a u16 count. */
static int rd_count(rd_t *r, uint8_t flags, uint16_t *n)
{
    return flags ? BL_EINVAL : rd_u16(r, n);
}

static int decode_ack(rd_t *r, uint8_t flags, wire_frame_t *f)
{
    uint16_t n;
    int rc = rd_count(r, flags, &n);
    if (rc)
        return rc;
    size_t need = (size_t)n * 8;
    if (r->left < need)
        return BL_ETRUNC;
    if (r->left > need) {
        r->why = "bytes after the ACK sequences";
        return BL_EINVAL;
    }
    if (n == 0)
        return 0;
    f->u.ack.seqs = malloc(need);
    if (!f->u.ack.seqs)
        return BL_ENOMEM;
    for (size_t i = 0; i < n; i++)
        rd_be(r, 8, &f->u.ack.seqs[i]);
    f->u.ack.n = n;
    return 0;
}

int wire_encode_hello(const wire_hello_t *h, uint8_t **out, size_t *out_len)
{
    if (!h || !bl_site_name_valid(h->site))
        return BL_EINVAL;
    size_t sl = strlen(h->site);
    int rc = alloc_out(WIRE_HEADER_LEN + 1 + sl + 4 + 4 + 8, out, out_len);
    if (rc)
        return rc;
    uint8_t *p = put_header(*out, WIRE_HELLO, 0);
    p = put_be(p, sl, 1);
    p = put_bytes(p, h->site, sl);
    p = put_be(p, h->features, 4);
    p = put_be(p, h->max_message_size, 4);
    put_be(p, h->epoch, 8);
    return 0;
}

/* Bytes after the epoch are ignored: a later version may append fields here
 * (docs/PROTOCOL.md, HELLO). */
static int decode_hello(rd_t *r, uint8_t flags, wire_hello_t *h)
{
    if (flags)
        return BL_EINVAL;
    int rc = rd_site(r, h->site);
    if (!rc)
        rc = rd_u32(r, &h->features);
    if (!rc)
        rc = rd_u32(r, &h->max_message_size);
    if (!rc)
        rc = rd_be(r, 8, &h->epoch);
    return rc;
}

/* ---- PING ------------------------------------------------------------------------- */

int wire_encode_ping(uint64_t token, bool reply, uint8_t **out, size_t *out_len)
{
    int rc = alloc_out(WIRE_HEADER_LEN + 8, out, out_len);
    if (rc)
        return rc;
    put_be(put_header(*out, WIRE_PING, reply ? WIRE_PING_REPLY : 0), token, 8);
    return 0;
}

static int decode_ping(rd_t *r, uint8_t flags, wire_frame_t *f)
{
    if (flags & ~WIRE_PING_REPLY)
        return BL_EINVAL;
    if (r->left != 8)
        return r->left < 8 ? BL_ETRUNC : BL_EINVAL;
    f->u.ping.reply = flags & WIRE_PING_REPLY;
    return rd_be(r, 8, &f->u.ping.token);
}

/* ---- FRAG ------------------------------------------------------------------------- */

size_t wire_frag_count(size_t frame_len, size_t chunk)
{
    if (chunk == 0)
        return 0;
    return frame_len / chunk + (frame_len % chunk != 0);
}

int wire_encode_frag(const uint8_t *frame, size_t frame_len, size_t chunk, uint32_t msg_no,
                     size_t index, uint8_t **out, size_t *out_len)
{
    if (!frame || frame_len == 0 || chunk == 0)
        return BL_EINVAL;
    if (frame_len > UINT32_MAX)
        return BL_ETOOBIG;
    /* A FRAG inside a FRAG would let reassembly recurse; receivers refuse it too. */
    if (frame_len >= 2 && frame[1] == WIRE_FRAG)
        return BL_EINVAL;
    if (index >= wire_frag_count(frame_len, chunk))
        return BL_EINVAL;
    size_t off = index * chunk; /* < frame_len since index < count: no overflow */
    size_t n = BL_MIN(chunk, frame_len - off);
    int rc = alloc_out(WIRE_FRAG_HEADER_LEN + n, out, out_len);
    if (rc)
        return rc;
    uint8_t *p = put_header(*out, WIRE_FRAG, off + n == frame_len ? FRAG_FLAG_LAST : 0);
    p = put_be(p, msg_no, 4);
    p = put_be(p, off, 4);
    p = put_be(p, frame_len, 4);
    put_bytes(p, frame + off, n);
    return 0;
}

static int decode_frag(rd_t *r, uint8_t flags, wire_frag_t *f)
{
    int rc = rd_u32(r, &f->msg_no);
    if (!rc)
        rc = rd_u32(r, &f->offset);
    if (!rc)
        rc = rd_u32(r, &f->total);
    if (!rc && r->left == 0)
        rc = BL_ETRUNC; /* a piece carries at least one byte */
    if (rc)
        return rc;
    f->chunk = r->p;
    f->chunk_len = r->left;
    bool fits = f->offset <= f->total && f->chunk_len <= (size_t)(f->total - f->offset);
    bool ends = fits && f->chunk_len == (size_t)(f->total - f->offset);
    if ((flags & ~FRAG_FLAG_LAST) || !fits || ends != ((flags & FRAG_FLAG_LAST) != 0)) {
        r->why = "a FRAG whose offset, length and total do not agree";
        return BL_EINVAL;
    }
    return 0;
}

/* ---- BATCH ------------------------------------------------------------------------ */

static bool batchable(const uint8_t *f, size_t len)
{
    return f && len >= WIRE_HEADER_LEN && f[0] == WIRE_VERSION &&
           (f[1] == WIRE_MSG || f[1] == WIRE_ACK);
}

int wire_encode_batch(const wire_piece_t *pieces, size_t n, uint8_t **out, size_t *out_len)
{
    if (!pieces || n == 0 || n > 0xffff)
        return BL_EINVAL;
    size_t total = WIRE_BATCH_HEADER_LEN;
    for (size_t i = 0; i < n; i++) {
        if (!batchable(pieces[i].data, pieces[i].len) || pieces[i].len > UINT32_MAX)
            return BL_EINVAL;
        total += WIRE_BATCH_ENTRY_OVERHEAD + pieces[i].len;
    }
    int rc = alloc_out(total, out, out_len);
    if (rc)
        return rc;
    uint8_t *p = put_header(*out, WIRE_BATCH, 0);
    p = put_be(p, n, 2);
    for (size_t i = 0; i < n; i++) {
        p = put_be(p, pieces[i].len, 4);
        p = put_bytes(p, pieces[i].data, pieces[i].len);
    }
    return 0;
}

/* The whole BATCH is checked here, so that wire_batch_next cannot fail and a bad batch
 * is refused before any of its frames is acted on. */
static int decode_batch(rd_t *r, uint8_t flags, wire_batch_t *b)
{
    uint16_t n;
    int rc = rd_count(r, flags, &n);
    if (rc)
        return rc;
    if (n == 0) {
        r->why = "an empty BATCH";
        return BL_EINVAL;
    }
    b->p = r->p;
    b->left = r->left;
    b->count = n;
    for (size_t i = 0; i < n; i++) {
        uint32_t len;
        const uint8_t *f;
        if ((rc = rd_u32(r, &len)) || (rc = rd_take(r, len, &f)))
            return rc;
        if (!batchable(f, len)) {
            r->why = "a BATCH entry that is not a MSG or ACK frame";
            return BL_EINVAL;
        }
    }
    if (r->left) {
        r->why = "bytes after the BATCH's frames";
        return BL_EINVAL;
    }
    return 0;
}

int wire_batch_next(wire_batch_t *b, const uint8_t **frame, size_t *len)
{
    if (!b || b->count == 0 || b->left < WIRE_BATCH_ENTRY_OVERHEAD)
        return 0;
    rd_t r = {.p = b->p, .left = b->left};
    uint32_t n;
    const uint8_t *f;
    if (rd_u32(&r, &n) || rd_take(&r, n, &f))
        return 0;
    *frame = f;
    *len = n;
    b->p = r.p;
    b->left = r.left;
    b->count--;
    return 1;
}

/* ---- frames ----------------------------------------------------------------------- */

int wire_decode(const uint8_t *buf, size_t len, size_t max_payload, wire_frame_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!buf || len < WIRE_HEADER_LEN)
        return BL_ETRUNC;
    /* Any other version is refused outright: layouts are not compatible across versions. */
    if (buf[0] != WIRE_VERSION) {
        out->why = "a frame version we do not speak";
        return BL_EVERSION;
    }
    uint8_t type = buf[1], flags = buf[2]; /* buf[3] is reserved, ignored */
    rd_t r = {.p = buf + WIRE_HEADER_LEN, .left = len - WIRE_HEADER_LEN};
    int rc;
    switch (type) {
    case WIRE_MSG:
        rc = decode_msg(&r, flags, max_payload, &out->u.msg);
        break;
    case WIRE_ACK:
        rc = decode_ack(&r, flags, out);
        break;
    case WIRE_HELLO:
        rc = decode_hello(&r, flags, &out->u.hello);
        break;
    case WIRE_FRAG:
        rc = decode_frag(&r, flags, &out->u.frag);
        break;
    case WIRE_BATCH:
        rc = decode_batch(&r, flags, &out->u.batch);
        break;
    case WIRE_PING:
        rc = decode_ping(&r, flags, out);
        break;
    default:
        out->why = "an unknown frame type";
        return BL_EINVAL;
    }
    if (rc) {
        out->type = type;
        wire_frame_clear(out);
        out->why = r.why;
        return rc;
    }
    out->type = type;
    return 0;
}

void wire_frame_clear(wire_frame_t *f)
{
    if (!f)
        return;
    if (f->type == WIRE_MSG)
        msg_free(f->u.msg);
    else if (f->type == WIRE_ACK)
        free(f->u.ack.seqs);
    memset(f, 0, sizeof(*f));
}

/* ---- reassembly ------------------------------------------------------------------- */

void wire_reasm_init(wire_reasm_t *r, size_t max_total)
{
    memset(r, 0, sizeof(*r));
    r->max_total = max_total;
}

void wire_reasm_clear(wire_reasm_t *r)
{
    free(r->buf);
    r->buf = NULL;
    r->msg_no = 0;
    r->total = r->filled = 0;
}

/* Checks the piece against the frame in progress, or starts one. The piece is never
 * used to start a new frame when it breaks the current one. */
static int reasm_accept(wire_reasm_t *r, const wire_frag_t *f)
{
    if (!f->chunk || f->chunk_len == 0 || f->offset > f->total ||
        f->chunk_len > (size_t)(f->total - f->offset)) {
        r->why = "an inconsistent FRAG piece";
        return BL_EINVAL;
    }
    if (r->buf) {
        if (f->msg_no == r->msg_no && f->total == r->total && f->offset == r->filled)
            return 0;
        r->why = "a FRAG that does not continue the frame being reassembled";
        return BL_EINVAL;
    }
    if (f->offset != 0) {
        r->why = "a first FRAG piece not at offset 0";
        return BL_EINVAL;
    }
    /* Check the announced total before allocating anything for it. */
    if (f->total > r->max_total) {
        r->why = "a fragmented frame over the limit";
        return BL_ETOOBIG;
    }
    r->buf = malloc(f->total);
    if (!r->buf)
        return BL_ENOMEM;
    r->msg_no = f->msg_no;
    r->total = f->total;
    r->filled = 0;
    return 0;
}

int wire_reasm_feed(wire_reasm_t *r, const wire_frag_t *f, uint8_t **whole, size_t *whole_len)
{
    *whole = NULL;
    *whole_len = 0;
    int rc = reasm_accept(r, f);
    if (rc) {
        wire_reasm_clear(r);
        return rc;
    }
    memcpy(r->buf + r->filled, f->chunk, f->chunk_len);
    r->filled += f->chunk_len;
    if (r->filled < r->total)
        return 0;
    if (r->total >= 2 && r->buf[1] == WIRE_FRAG) {
        r->why = "a reassembled frame that is itself a FRAG";
        wire_reasm_clear(r);
        return BL_EINVAL;
    }
    *whole = r->buf;
    *whole_len = r->total;
    r->buf = NULL;
    wire_reasm_clear(r);
    return 1;
}
