/* SPDX-License-Identifier: MIT */
/* test_wire.c - the frame codec against docs/PROTOCOL.md "Frames": round trips, exact
 * bytes, and refusal of every truncated, overlong or inconsistent frame. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "wire.h"

#define BIG (16u * 1024u * 1024u)

/* ---- helpers ---------------------------------------------------------------------- */

static bl_msg_t *base_msg(void)
{
    bl_msg_t *m = msg_new();
    assert_non_null(m);
    m->origin = strdup("siteA");
    m->seq = 0x0102030405060708ull;
    assert_int_equal(msg_set_topic(m, "a/b"), 0);
    assert_int_equal(msg_set_payload(m, "xy", 2), 0);
    m->qos = 1;
    return m;
}

/* The full test message (fixture.h) as a peer sends it: origin and sequence set. */
static bl_msg_t *full_msg(void)
{
    bl_msg_t *m = msg_new();
    fixture_full_msg(m, "a/b");
    return m;
}

static void assert_same_msg(const bl_msg_t *a, const bl_msg_t *b)
{
    assert_true(msg_equal(a, b));
    assert_string_equal(a->origin, b->origin);
    assert_true(a->seq == b->seq);
    assert_int_equal(a->dup, b->dup);
}

/* Encode, decode, compare; returns the decoded message (caller frees). */
static bl_msg_t *roundtrip(const bl_msg_t *m)
{
    uint8_t *buf;
    size_t len;
    wire_frame_t f;
    assert_int_equal(wire_encode_msg(m, &buf, &len), 0);
    assert_int_equal(wire_decode(buf, len, BIG, &f), 0);
    free(buf);
    assert_int_equal(f.type, WIRE_MSG);
    assert_same_msg(m, f.u.msg);
    bl_msg_t *d = f.u.msg;
    f.type = 0;
    return d;
}

static int decode_rc(const uint8_t *buf, size_t len)
{
    wire_frame_t f;
    int rc = wire_decode(buf, len, BIG, &f);
    wire_frame_clear(&f);
    return rc;
}

/* decode_rc of buf, which is freed. */
static int decode_rc_free(uint8_t *buf, size_t len)
{
    int rc = decode_rc(buf, len);
    free(buf);
    return rc;
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--, v >>= 8)
        p[i - 1] = (uint8_t)v;
}

/* A MSG from siteA, seq 7, topic "a/b", payload "xy", with a raw property block. */
static uint8_t *raw_msg(const void *props, size_t plen, size_t *len)
{
    *len = 4 + 1 + 5 + 8 + 2 + 3 + 4 + plen + 4 + 2;
    uint8_t *b = malloc(*len), *p = b;
    memcpy(p, "\x01\x01\x00\x00\x05siteA", 10);
    p += 10;
    put_be(p, 7, 8);
    p += 8;
    static const uint8_t topic[] = {0, 3, 'a', '/', 'b'};
    memcpy(p, topic, sizeof(topic));
    p += 5;
    put_be(p, plen, 4);
    memcpy(p + 4, props, plen);
    p += 4 + plen;
    memcpy(p, "\x00\x00\x00\x02xy", 6);
    return b;
}

static int raw_msg_rc(const void *props, size_t plen)
{
    size_t len;
    uint8_t *b = raw_msg(props, plen, &len);
    return decode_rc_free(b, len);
}

/* ---- MSG round trips ---------------------------------------------------------------- */

static void test_msg_roundtrip_plain(void **state)
{
    (void)state;
    bl_msg_t *m = base_msg();
    bl_msg_t *d = roundtrip(m);
    assert_int_equal(d->payload_format, -1);
    assert_false(d->has_expiry);
    assert_null(d->content_type);
    assert_null(d->response_topic);
    assert_null(d->correlation);
    assert_int_equal(d->n_user_props, 0);
    assert_memory_equal(d->payload, "xy", 2);
    msg_free(d);
    msg_free(m);
}

static void test_msg_roundtrip_all_props(void **state)
{
    (void)state;
    bl_msg_t *m = full_msg();
    bl_msg_t *d = roundtrip(m);
    fixture_check_full(d, 0);
    msg_free(d);
    msg_free(m);
}

static void test_msg_roundtrip_each_prop_alone(void **state)
{
    (void)state;
    for (int i = 0; i < 6; i++) {
        bl_msg_t *m = base_msg();
        switch (i) {
        case 0:
            m->payload_format = 0;
            break;
        case 1:
            m->has_expiry = true;
            m->expiry_s = 0xfffffffe;
            break;
        case 2:
            m->content_type = strdup("");
            break;
        case 3:
            m->response_topic = strdup("r/t");
            break;
        case 4:
            m->correlation = malloc(1);
            m->correlation[0] = 9;
            m->correlation_len = 1;
            break;
        default:
            assert_int_equal(msg_add_user_prop(m, "only", "one"), 0);
            break;
        }
        msg_free(roundtrip(m));
        msg_free(m);
    }
}

static void test_msg_roundtrip_qos_retain_dup(void **state)
{
    (void)state;
    for (int q = 0; q <= 2; q++)
        for (int r = 0; r <= 1; r++)
            for (int d = 0; d <= 1; d++) {
                bl_msg_t *m = base_msg();
                m->qos = (uint8_t)q;
                m->retain = r;
                m->dup = d;
                bl_msg_t *x = roundtrip(m);
                assert_int_equal(x->qos, q);
                assert_int_equal(x->retain, r);
                assert_int_equal(x->dup, d);
                msg_free(x);
                msg_free(m);
            }
}

/* A retained message with an empty payload clears the retained topic: keep it exact. */
static void test_msg_empty_payload(void **state)
{
    (void)state;
    bl_msg_t *m = base_msg();
    msg_set_payload(m, NULL, 0);
    m->retain = true;
    bl_msg_t *d = roundtrip(m);
    assert_int_equal(d->payload_len, 0);
    assert_true(d->retain);
    msg_free(d);
    msg_free(m);
}

static void test_msg_empty_correlation_present(void **state)
{
    (void)state;
    bl_msg_t *m = base_msg();
    m->correlation = malloc(1);
    m->correlation_len = 0;
    bl_msg_t *d = roundtrip(m);
    assert_non_null(d->correlation);
    assert_int_equal(d->correlation_len, 0);
    msg_free(d);
    msg_free(m);
}

static void test_msg_big_seq_and_payload(void **state)
{
    (void)state;
    bl_msg_t *m = base_msg();
    m->seq = UINT64_MAX;
    uint8_t *pl = malloc(100000);
    for (size_t i = 0; i < 100000; i++)
        pl[i] = (uint8_t)(i * 7);
    msg_set_payload(m, pl, 100000);
    free(pl);
    msg_free(roundtrip(m));
    msg_free(m);
}

/* The exact bytes of a small MSG, as docs/PROTOCOL.md draws them. */
static void test_msg_exact_bytes(void **state)
{
    (void)state;
    bl_msg_t *m = base_msg();
    m->seq = 7;
    m->retain = true;
    m->has_expiry = true;
    m->expiry_s = 0x0a0b0c0d;
    uint8_t *buf;
    size_t len;
    assert_int_equal(wire_encode_msg(m, &buf, &len), 0);
    static const uint8_t want[] = {
        1,    1,   0x05, 0,                                /* v1, MSG, qos 1 | retain, reserved */
        5,    's', 'i',  't', 'e', 'A',                    /* origin */
        0,    0,   0,    0,   0,   0,    0,    7,          /* seq */
        0,    3,   'a',  '/', 'b',                         /* topic */
        0,    0,   0,    9,                                /* props_len */
        0x02, 0,   0,    0,   4,   0x0a, 0x0b, 0x0c, 0x0d, /* expiry TLV */
        0,    0,   0,    2,   'x', 'y',                    /* payload */
    };
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    free(buf);
    msg_free(m);
}

static void test_msg_encode_refused(void **state)
{
    (void)state;
    uint8_t *buf = NULL;
    size_t len;
    bl_msg_t *m = base_msg();
    free(m->origin);
    m->origin = NULL;
    assert_int_equal(wire_encode_msg(m, &buf, &len), BL_EINVAL);
    m->origin = strdup("bad site");
    assert_int_equal(wire_encode_msg(m, &buf, &len), BL_EINVAL);
    free(m->origin);
    m->origin = strdup("siteA");
    m->qos = 3;
    assert_int_equal(wire_encode_msg(m, &buf, &len), BL_EINVAL);
    m->qos = 0;
    m->payload_format = 2;
    assert_int_equal(wire_encode_msg(m, &buf, &len), BL_EINVAL);
    m->payload_format = -1;
    msg_set_topic(m, "");
    assert_int_equal(wire_encode_msg(m, &buf, &len), BL_EINVAL);
    char *longkey = malloc(70000);
    memset(longkey, 'k', 69999);
    longkey[69999] = '\0';
    msg_set_topic(m, "t");
    msg_add_user_prop(m, longkey, "v");
    free(longkey);
    assert_int_equal(wire_encode_msg(m, &buf, &len), BL_EINVAL);
    assert_null(buf);
    msg_free(m);
}

/* ---- ACK, HELLO --------------------------------------------------------------------- */

static void ack_roundtrip(size_t n)
{
    uint64_t *seqs = calloc(n + 1, sizeof(*seqs));
    for (size_t i = 0; i < n; i++)
        seqs[i] = 0x8000000000000000ull + i * 977;
    uint8_t *buf;
    size_t len;
    wire_frame_t f;
    assert_int_equal(wire_encode_ack(seqs, n, &buf, &len), 0);
    assert_int_equal(len, 6 + 8 * n);
    assert_int_equal(wire_decode(buf, len, 0, &f), 0);
    assert_int_equal(f.type, WIRE_ACK);
    assert_int_equal(f.u.ack.n, n);
    if (n)
        assert_memory_equal(f.u.ack.seqs, seqs, n * sizeof(*seqs));
    wire_frame_clear(&f);
    free(buf);
    free(seqs);
}

static void test_ack_roundtrip(void **state)
{
    (void)state;
    ack_roundtrip(0);
    ack_roundtrip(1);
    ack_roundtrip(100);
    ack_roundtrip(UINT16_MAX);
    uint8_t *buf;
    size_t len;
    uint64_t one = 1;
    assert_int_equal(wire_encode_ack(&one, UINT16_MAX + 1, &buf, &len), BL_EINVAL);
}

static void test_hello_roundtrip(void **state)
{
    (void)state;
    wire_hello_t h = {
        .features = 0xdeadbeef, .max_message_size = BIG, .epoch = 0x0123456789abcdefULL};
    strcpy(h.site, "cabin-2.lan_x");
    uint8_t *buf;
    size_t len;
    wire_frame_t f;
    assert_int_equal(wire_encode_hello(&h, &buf, &len), 0);
    assert_int_equal(len, 4 + 1 + strlen(h.site) + 8 + 8);
    assert_int_equal(wire_decode(buf, len, 0, &f), 0);
    assert_int_equal(f.type, WIRE_HELLO);
    assert_string_equal(f.u.hello.site, h.site);
    assert_int_equal(f.u.hello.features, h.features);
    assert_true(f.u.hello.epoch == h.epoch);
    assert_int_equal(f.u.hello.max_message_size, h.max_message_size);
    wire_frame_clear(&f);

    /* A later version may append fields: they are ignored. */
    uint8_t *longer = malloc(len + 7);
    memcpy(longer, buf, len);
    memset(longer + len, 0xee, 7);
    assert_int_equal(wire_decode(longer, len + 7, 0, &f), 0);
    assert_string_equal(f.u.hello.site, h.site);
    wire_frame_clear(&f);
    free(longer);
    free(buf);

    strcpy(h.site, "no/slash");
    assert_int_equal(wire_encode_hello(&h, &buf, &len), BL_EINVAL);
    h.site[0] = '\0';
    assert_int_equal(wire_encode_hello(&h, &buf, &len), BL_EINVAL);
}

static void test_hello_bad_site(void **state)
{
    (void)state;
    static const uint8_t zero_len[] = {1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t bad_char[] = {1, 3, 0, 0, 2, 'a', '/', 0, 0, 0, 0, 0, 0, 0, 0};
    static const uint8_t nul_char[] = {1, 3, 0, 0, 2, 'a', 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(decode_rc(zero_len, sizeof(zero_len)), BL_EINVAL);
    assert_int_equal(decode_rc(bad_char, sizeof(bad_char)), BL_EINVAL);
    assert_int_equal(decode_rc(nul_char, sizeof(nul_char)), BL_EINVAL);
    uint8_t long_site[4 + 1 + 65 + 8];
    memset(long_site, 'a', sizeof(long_site));
    memcpy(long_site, "\x01\x03\x00\x00\x41", 5);
    assert_int_equal(decode_rc(long_site, sizeof(long_site)), BL_EINVAL);
}

/* ---- refusals ----------------------------------------------------------------------- */

/* Every proper prefix of a valid frame is refused, whatever the frame type. */
static void assert_prefixes_refused(const uint8_t *buf, size_t len)
{
    assert_int_equal(decode_rc(buf, len), 0);
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* exact size so ASan sees any overread */
        memcpy(cut, buf, n);
        int rc = decode_rc(cut, n);
        if (rc == 0)
            fail_msg("prefix of %zu/%zu bytes accepted", n, len);
        assert_true(rc == BL_ETRUNC || rc == BL_EINVAL);
        free(cut);
    }
}

static void test_every_truncation_refused(void **state)
{
    (void)state;
    uint8_t *buf, *frame;
    size_t len, flen;
    bl_msg_t *m = full_msg();
    assert_int_equal(wire_encode_msg(m, &frame, &flen), 0);
    assert_prefixes_refused(frame, flen);
    /* The last piece: its flag says where the frame ends. (A cut middle piece looks like
     * a shorter piece; reassembly catches it when the next offset does not follow.) */
    size_t last = wire_frag_count(flen, 10) - 1;
    assert_int_equal(wire_encode_frag(frame, flen, 10, 3, last, &buf, &len), 0);
    assert_prefixes_refused(buf, len);
    free(buf);
    free(frame);
    msg_free(m);

    uint64_t seqs[3] = {1, 2, 3};
    assert_int_equal(wire_encode_ack(seqs, 3, &buf, &len), 0);
    assert_prefixes_refused(buf, len);
    free(buf);
    assert_int_equal(wire_encode_ack(NULL, 0, &buf, &len), 0);
    assert_prefixes_refused(buf, len);
    free(buf);

    wire_hello_t h = {.site = "s", .features = 1, .max_message_size = 2};
    assert_int_equal(wire_encode_hello(&h, &buf, &len), 0);
    assert_prefixes_refused(buf, len);
    free(buf);
}

/* Offsets in the MSG of base_msg(): origin "siteA", topic "a/b". */
enum { OFF_ORIGIN_LEN = 4, OFF_TOPIC_LEN = 18, OFF_PROPS_LEN = 23, OFF_PROPS = 27 };

static int patched_rc(const bl_msg_t *m, size_t off, uint64_t v, size_t n)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(wire_encode_msg(m, &buf, &len), 0);
    put_be(buf + off, v, n);
    return decode_rc_free(buf, len);
}

static void test_bad_lengths(void **state)
{
    (void)state;
    bl_msg_t *m = base_msg();
    size_t len, off_payload_len = OFF_PROPS;
    uint8_t *buf;
    assert_int_equal(wire_encode_msg(m, &buf, &len), 0);
    assert_int_equal(len, off_payload_len + 4 + 2);
    free(buf);

    assert_int_equal(patched_rc(m, OFF_ORIGIN_LEN, 0, 1), BL_EINVAL);
    assert_int_equal(patched_rc(m, OFF_ORIGIN_LEN, 255, 1), BL_ETRUNC);
    assert_int_equal(patched_rc(m, OFF_TOPIC_LEN, 0, 2), BL_EINVAL);
    assert_int_equal(patched_rc(m, OFF_TOPIC_LEN, 14, 2), BL_ETRUNC);
    assert_int_equal(patched_rc(m, OFF_TOPIC_LEN, 0xffff, 2), BL_ETRUNC);
    assert_int_equal(patched_rc(m, OFF_PROPS_LEN, 7, 4), BL_ETRUNC);
    /* Over WIRE_MAX_PROPS_LEN: refused as too big before its bytes are looked at. */
    assert_int_equal(patched_rc(m, OFF_PROPS_LEN, 0xffffffff, 4), BL_ETOOBIG);
    assert_int_equal(patched_rc(m, off_payload_len, 3, 4), BL_ETRUNC);
    assert_int_equal(patched_rc(m, off_payload_len, 0xffffffff, 4), BL_ETOOBIG);
    /* Shorter lengths leave bytes over: trailing garbage. */
    assert_int_equal(patched_rc(m, off_payload_len, 1, 4), BL_EINVAL);

    /* A property value running past the property block. */
    m->content_type = strdup("text");
    assert_int_equal(patched_rc(m, OFF_PROPS + 1, 5, 4), BL_ETRUNC);
    assert_int_equal(patched_rc(m, OFF_PROPS + 1, 0xffffffff, 4), BL_ETRUNC);
    msg_free(m);

    /* User property key length running past its value. */
    static const uint8_t up[] = {0x26, 0, 0, 0, 4, 0, 3, 'k', 'v'};
    assert_int_equal(raw_msg_rc(up, sizeof(up)), BL_ETRUNC);
    static const uint8_t up1[] = {0x26, 0, 0, 0, 1, 0};
    assert_int_equal(raw_msg_rc(up1, sizeof(up1)), BL_ETRUNC);
    static const uint8_t half_tlv[] = {0x03, 0, 0};
    assert_int_equal(raw_msg_rc(half_tlv, sizeof(half_tlv)), BL_ETRUNC);
}

static void test_bad_version(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    uint64_t s = 1;
    assert_int_equal(wire_encode_ack(&s, 1, &buf, &len), 0);
    buf[0] = 0;
    assert_int_equal(decode_rc(buf, len), BL_EVERSION);
    buf[0] = 2;
    assert_int_equal(decode_rc(buf, len), BL_EVERSION);
    buf[1] = 99; /* version is judged before the type */
    assert_int_equal(decode_rc(buf, len), BL_EVERSION);
    free(buf);
}

static void test_unknown_type(void **state)
{
    (void)state;
    uint8_t f[] = {1, 0, 0, 0, 0, 0};
    assert_int_equal(decode_rc(f, sizeof(f)), BL_EINVAL);
    f[1] = 7;
    assert_int_equal(decode_rc(f, sizeof(f)), BL_EINVAL);
    f[1] = 255;
    assert_int_equal(decode_rc(f, sizeof(f)), BL_EINVAL);
    assert_int_equal(decode_rc(f, 3), BL_ETRUNC);
}

/* PING: a token, the reply bit; anything else in it is refused. */
static void test_ping(void **state)
{
    (void)state;
    uint8_t *f;
    size_t n;
    for (int reply = 0; reply < 2; reply++) {
        assert_int_equal(wire_encode_ping(0x0102030405060708ull, reply, &f, &n), 0);
        assert_int_equal(n, WIRE_HEADER_LEN + 8);
        wire_frame_t d;
        assert_int_equal(wire_decode(f, n, 1024, &d), 0);
        assert_int_equal(d.type, WIRE_PING);
        assert_true(d.u.ping.token == 0x0102030405060708ull);
        assert_int_equal(d.u.ping.reply, reply);
        wire_frame_clear(&d);
        assert_int_equal(decode_rc(f, n - 1), BL_ETRUNC);
        f[2] = 0x2; /* an unknown flag */
        assert_int_equal(decode_rc(f, n), BL_EINVAL);
        free(f);
    }
    uint8_t longer[WIRE_HEADER_LEN + 9] = {1, WIRE_PING};
    assert_int_equal(decode_rc(longer, sizeof(longer)), BL_EINVAL);
}

static void test_bad_flags_and_reserved(void **state)
{
    (void)state;
    bl_msg_t *m = base_msg();
    uint8_t *buf;
    size_t len;
    assert_int_equal(wire_encode_msg(m, &buf, &len), 0);
    buf[3] = 0xaa; /* reserved: ignored */
    assert_int_equal(decode_rc(buf, len), 0);
    buf[2] = 0x03; /* QoS 3 */
    assert_int_equal(decode_rc(buf, len), BL_EINVAL);
    buf[2] = 0x10; /* unknown flag */
    assert_int_equal(decode_rc(buf, len), BL_EINVAL);
    free(buf);
    msg_free(m);

    uint64_t s = 1;
    assert_int_equal(wire_encode_ack(&s, 1, &buf, &len), 0);
    buf[2] = 1;
    assert_int_equal(decode_rc(buf, len), BL_EINVAL);
    free(buf);
    wire_hello_t h = {.site = "s"};
    assert_int_equal(wire_encode_hello(&h, &buf, &len), 0);
    buf[2] = 1;
    assert_int_equal(decode_rc(buf, len), BL_EINVAL);
    free(buf);
}

static void test_payload_over_max(void **state)
{
    (void)state;
    bl_msg_t *m = base_msg();
    uint8_t *buf;
    size_t len;
    wire_frame_t f;
    assert_int_equal(wire_encode_msg(m, &buf, &len), 0);
    assert_int_equal(wire_decode(buf, len, 1, &f), BL_ETOOBIG);
    assert_int_equal(f.type, 0);
    assert_int_equal(wire_decode(buf, len, 2, &f), 0);
    wire_frame_clear(&f);
    free(buf);
    msg_set_payload(m, NULL, 0);
    assert_int_equal(wire_encode_msg(m, &buf, &len), 0);
    assert_int_equal(wire_decode(buf, len, 0, &f), 0);
    wire_frame_clear(&f);
    free(buf);
    msg_free(m);
}

static void test_property_errors(void **state)
{
    (void)state;
    static const uint8_t pf_twice[] = {1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0};
    static const uint8_t pf_two[] = {1, 0, 0, 0, 1, 2};
    static const uint8_t pf_len2[] = {1, 0, 0, 0, 2, 1, 0};
    static const uint8_t exp_len3[] = {2, 0, 0, 0, 3, 1, 2, 3};
    static const uint8_t exp_twice[] = {2, 0, 0, 0, 4, 0, 0, 0, 1, 2, 0, 0, 0, 4, 0, 0, 0, 1};
    static const uint8_t ct_twice[] = {3, 0, 0, 0, 1, 'a', 3, 0, 0, 0, 0};
    static const uint8_t rt_twice[] = {8, 0, 0, 0, 0, 8, 0, 0, 0, 0};
    static const uint8_t cd_twice[] = {9, 0, 0, 0, 0, 9, 0, 0, 0, 1, 7};
    static const uint8_t ct_nul[] = {3, 0, 0, 0, 3, 'a', 0, 'b'};
    static const uint8_t rt_nul[] = {8, 0, 0, 0, 1, 0};
    static const uint8_t key_nul[] = {0x26, 0, 0, 0, 4, 0, 1, 0, 'v'};
    static const uint8_t val_nul[] = {0x26, 0, 0, 0, 4, 0, 1, 'k', 0};
    const struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {
        {pf_twice, sizeof(pf_twice)}, {pf_two, sizeof(pf_two)},       {pf_len2, sizeof(pf_len2)},
        {exp_len3, sizeof(exp_len3)}, {exp_twice, sizeof(exp_twice)}, {ct_twice, sizeof(ct_twice)},
        {rt_twice, sizeof(rt_twice)}, {cd_twice, sizeof(cd_twice)},   {ct_nul, sizeof(ct_nul)},
        {rt_nul, sizeof(rt_nul)},     {key_nul, sizeof(key_nul)},     {val_nul, sizeof(val_nul)},
    };
    for (size_t i = 0; i < BL_ARRAY_LEN(bad); i++)
        if (raw_msg_rc(bad[i].p, bad[i].n) != BL_EINVAL)
            fail_msg("bad property block %zu accepted", i);

    /* NUL inside the topic. */
    bl_msg_t *m = base_msg();
    assert_int_equal(patched_rc(m, OFF_TOPIC_LEN + 3, 0, 1), BL_EINVAL);
    msg_free(m);
}

/* n empty user property TLVs (7 bytes each), as a hostile peer would send them. */
static uint8_t *empty_user_props(size_t n, size_t *len)
{
    static const uint8_t tlv[] = {0x26, 0, 0, 0, 2, 0, 0};
    *len = n * sizeof(tlv);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        memcpy(b + i * sizeof(tlv), tlv, sizeof(tlv));
    return b;
}

/* The attack of issue 12 item 1: one frame of 2 million empty user properties (14 MB,
 * under the 16 MiB frame limit) used to decode into 4 million strings and stall the
 * loop building them for libmosquitto. It is refused as too big; so is one over the
 * count by one, and a block over WIRE_MAX_PROPS_LEN whatever it holds. */
static void test_user_props_capped(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = empty_user_props(2000000, &len);
    assert_int_equal(raw_msg_rc(b, len), BL_ETOOBIG);
    free(b);
    b = empty_user_props(WIRE_MAX_USER_PROPS + 1, &len);
    assert_int_equal(raw_msg_rc(b, len), BL_ETOOBIG);
    free(b);
    b = empty_user_props(WIRE_MAX_USER_PROPS, &len);
    assert_int_equal(raw_msg_rc(b, len), 0);
    free(b);

    /* An unknown property just over the block limit: the block is refused unread. */
    size_t big = WIRE_MAX_PROPS_LEN + 1;
    b = calloc(1, big);
    b[0] = 0x7f;
    b[4] = (uint8_t)(big - 5);
    b[3] = (uint8_t)((big - 5) >> 8);
    b[2] = (uint8_t)((big - 5) >> 16);
    assert_int_equal(raw_msg_rc(b, big), BL_ETOOBIG);
    b[4] = (uint8_t)(big - 6);
    b[3] = (uint8_t)((big - 6) >> 8);
    b[2] = (uint8_t)((big - 6) >> 16);
    assert_int_equal(raw_msg_rc(b, big - 1), 0);
    free(b);
}

/* A sender refuses to encode what receivers refuse (site_out.c refuses it first). */
static void test_user_props_encode_capped(void **state)
{
    (void)state;
    bl_msg_t *m = base_msg();
    uint8_t *buf = NULL;
    size_t len;
    for (int i = 0; i < WIRE_MAX_USER_PROPS; i++)
        assert_int_equal(msg_add_user_prop(m, "k", "v"), 0);
    assert_int_equal(wire_msg_check(m), 0);
    assert_int_equal(wire_encode_msg(m, &buf, &len), 0);
    free(buf);
    buf = NULL;
    assert_int_equal(msg_add_user_prop(m, "k", "v"), 0);
    assert_int_equal(wire_msg_check(m), BL_ETOOBIG);
    assert_int_equal(wire_encode_msg(m, &buf, &len), BL_ETOOBIG);
    assert_null(buf);
    msg_free(m);

    m = base_msg();
    char *v = malloc(WIRE_MAX_PROPS_LEN);
    memset(v, 'v', WIRE_MAX_PROPS_LEN - 1);
    v[WIRE_MAX_PROPS_LEN - 1] = '\0';
    assert_int_equal(msg_add_user_prop(m, "", v), 0);
    free(v);
    assert_int_equal(wire_msg_check(m), BL_ETOOBIG); /* + 7 bytes of TLV head and key_len */
    msg_free(m);
}

/* A property id this version does not know is skipped, whatever its length. */
static void test_unknown_property_skipped(void **state)
{
    (void)state;
    static const uint8_t props[] = {
        0x7f, 0, 0, 0, 3, 1,   2,   3,        /* unknown, 3 bytes */
        0x03, 0, 0, 0, 2, 't', 'x',           /* content type "tx" */
        0x0b, 0, 0, 0, 0,                     /* unknown, empty */
        0x26, 0, 0, 0, 4, 0,   1,   'k', 'v', /* user property k=v */
        0xff, 0, 0, 0, 1, 0,                  /* unknown, a NUL byte */
    };
    size_t len;
    uint8_t *b = raw_msg(props, sizeof(props), &len);
    wire_frame_t f;
    assert_int_equal(wire_decode(b, len, BIG, &f), 0);
    assert_string_equal(f.u.msg->content_type, "tx");
    assert_int_equal(f.u.msg->n_user_props, 1);
    assert_string_equal(f.u.msg->user_props[0].value, "v");
    assert_int_equal(f.u.msg->payload_format, -1);
    wire_frame_clear(&f);
    free(b);
}

static void test_trailing_garbage(void **state)
{
    (void)state;
    bl_msg_t *m = full_msg();
    uint8_t *buf, *big;
    size_t len;
    assert_int_equal(wire_encode_msg(m, &buf, &len), 0);
    big = malloc(len + 1);
    memcpy(big, buf, len);
    big[len] = 0;
    assert_int_equal(decode_rc(big, len + 1), BL_EINVAL);
    free(big);
    free(buf);
    msg_free(m);

    uint64_t s[2] = {5, 6};
    assert_int_equal(wire_encode_ack(s, 2, &buf, &len), 0);
    big = malloc(len + 3);
    memcpy(big, buf, len);
    assert_int_equal(decode_rc(big, len + 3), BL_EINVAL);
    free(big);
    free(buf);
}

/* ---- fragmentation ------------------------------------------------------------------ */

static void frag_and_reassemble(const uint8_t *frame, size_t flen, size_t chunk)
{
    size_t n = wire_frag_count(flen, chunk);
    assert_int_equal(n, (flen + chunk - 1) / chunk);
    wire_reasm_t r;
    wire_reasm_init(&r, BIG);
    uint8_t *whole = NULL;
    size_t whole_len = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t *piece;
        size_t plen;
        wire_frame_t f;
        assert_int_equal(wire_encode_frag(frame, flen, chunk, 42, i, &piece, &plen), 0);
        assert_true(plen <= WIRE_FRAG_HEADER_LEN + chunk);
        assert_int_equal(wire_decode(piece, plen, 0, &f), 0);
        assert_int_equal(f.type, WIRE_FRAG);
        assert_int_equal(f.u.frag.msg_no, 42);
        assert_int_equal(f.u.frag.offset, i * chunk);
        assert_int_equal(f.u.frag.total, flen);
        assert_int_equal(piece[2], i + 1 == n ? 1 : 0); /* last-piece flag */
        int rc = wire_reasm_feed(&r, &f.u.frag, &whole, &whole_len);
        assert_int_equal(rc, i + 1 == n ? 1 : 0);
        free(piece);
    }
    assert_int_equal(whole_len, flen);
    assert_memory_equal(whole, frame, flen);
    assert_null(r.buf);
    free(whole);
    wire_reasm_clear(&r);
}

static void test_frag_5mib(void **state)
{
    (void)state;
    bl_msg_t *m = full_msg();
    size_t plen = 5u * 1024u * 1024u;
    uint8_t *pl = malloc(plen);
    for (size_t i = 0; i < plen; i++)
        pl[i] = (uint8_t)(i ^ (i >> 11));
    msg_set_payload(m, pl, plen);
    free(pl);
    uint8_t *frame;
    size_t flen;
    assert_int_equal(wire_encode_msg(m, &frame, &flen), 0);
    assert_true(wire_frag_count(flen, WIRE_MAX_CHUNK) > 80);
    frag_and_reassemble(frame, flen, WIRE_MAX_CHUNK);
    /* With WIRE_FRAG_CHUNK every piece fits what any WebRTC peer accepts. */
    frag_and_reassemble(frame, flen, WIRE_FRAG_CHUNK);
    frag_and_reassemble(frame, flen, flen); /* one piece */

    wire_frame_t f;
    assert_int_equal(wire_decode(frame, flen, BIG, &f), 0);
    assert_same_msg(m, f.u.msg);
    wire_frame_clear(&f);
    free(frame);
    msg_free(m);
}

static void test_frag_encode_args(void **state)
{
    (void)state;
    uint8_t frame[10] = {1, 1}, *out = NULL;
    size_t len;
    assert_int_equal(wire_frag_count(10, 3), 4);
    assert_int_equal(wire_frag_count(9, 3), 3);
    assert_int_equal(wire_frag_count(0, 3), 0);
    assert_int_equal(wire_frag_count(10, 0), 0);
    assert_int_equal(wire_encode_frag(frame, 10, 3, 0, 4, &out, &len), BL_EINVAL);
    assert_int_equal(wire_encode_frag(frame, 10, 0, 0, 0, &out, &len), BL_EINVAL);
    assert_int_equal(wire_encode_frag(frame, 0, 3, 0, 0, &out, &len), BL_EINVAL);
    frame[1] = WIRE_FRAG; /* no FRAG inside a FRAG */
    assert_int_equal(wire_encode_frag(frame, 10, 3, 0, 0, &out, &len), BL_EINVAL);
    assert_null(out);
    frame[1] = WIRE_MSG;
    assert_int_equal(wire_encode_frag(frame, 10, 3, 0x01020304, 3, &out, &len), 0);
    static const uint8_t want[] = {1, 4, 1, 0, 1, 2, 3, 4, 0, 0, 0, 9, 0, 0, 0, 10, 0};
    assert_int_equal(len, sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
    free(out);
}

static void test_frag_decode_inconsistent(void **state)
{
    (void)state;
    /* v1 FRAG flags msg_no=1 offset total chunk... */
    uint8_t f[] = {1, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 4, 'a', 'b'};
    assert_int_equal(decode_rc(f, sizeof(f)), 0); /* 2 of 4, more to come */
    f[2] = 1;                                     /* "last" but not at the end */
    assert_int_equal(decode_rc(f, sizeof(f)), BL_EINVAL);
    f[15] = 2; /* total 2: now it is the end */
    assert_int_equal(decode_rc(f, sizeof(f)), 0);
    f[2] = 0; /* at the end without "last" */
    assert_int_equal(decode_rc(f, sizeof(f)), BL_EINVAL);
    f[2] = 1;
    f[11] = 1; /* offset 1 + 2 > total 2 */
    assert_int_equal(decode_rc(f, sizeof(f)), BL_EINVAL);
    f[11] = 0xff;
    f[8] = 0xff; /* offset way past total */
    assert_int_equal(decode_rc(f, sizeof(f)), BL_EINVAL);
    f[8] = 0;
    f[11] = 0;
    f[2] = 3; /* unknown flag */
    assert_int_equal(decode_rc(f, sizeof(f)), BL_EINVAL);
    f[2] = 1;
    assert_int_equal(decode_rc(f, 16), BL_ETRUNC); /* no chunk byte */
}

static wire_frag_t piece(uint32_t msg_no, uint32_t offset, uint32_t total, const char *s)
{
    wire_frag_t p = {msg_no, offset, total, (const uint8_t *)s, strlen(s)};
    return p;
}

/* Feed r the piece (piece()) and return what wire_reasm_feed does; a frame it completes is
 * left in *whole (*wl bytes). */
static int feed(wire_reasm_t *r, uint32_t msg_no, uint32_t offset, uint32_t total, const char *s,
                uint8_t **whole, size_t *wl)
{
    wire_frag_t p = piece(msg_no, offset, total, s);
    return wire_reasm_feed(r, &p, whole, wl);
}

static void test_reasm_errors(void **state)
{
    (void)state;
    wire_reasm_t r;
    uint8_t *whole;
    size_t wl;
    wire_reasm_init(&r, 100);
    wire_frag_t p;

    /* Offset gap: the frame is dropped, the next offset-0 piece starts afresh. */
    assert_int_equal(feed(&r, 1, 0, 9, "abc", &whole, &wl), 0);
    assert_int_equal(feed(&r, 1, 4, 9, "def", &whole, &wl), BL_EINVAL);
    assert_null(r.buf);
    /* The rest of the dropped frame. */
    assert_int_equal(feed(&r, 1, 6, 9, "ghi", &whole, &wl), BL_EINVAL);

    /* Total changes mid-frame. */
    assert_int_equal(feed(&r, 2, 0, 9, "abc", &whole, &wl), 0);
    assert_int_equal(feed(&r, 2, 3, 10, "def", &whole, &wl), BL_EINVAL);

    /* msg_no changes mid-frame, even with a fresh offset 0 piece. */
    assert_int_equal(feed(&r, 3, 0, 6, "abc", &whole, &wl), 0);
    assert_int_equal(feed(&r, 4, 3, 6, "def", &whole, &wl), BL_EINVAL);
    assert_int_equal(feed(&r, 5, 0, 6, "abc", &whole, &wl), 0);
    assert_int_equal(feed(&r, 6, 0, 6, "abc", &whole, &wl), BL_EINVAL);

    /* Over max_total, including a hostile 4 GiB total (refused before any allocation). */
    assert_int_equal(feed(&r, 7, 0, 101, "abc", &whole, &wl), BL_ETOOBIG);
    assert_int_equal(feed(&r, 7, 0, UINT32_MAX, "abc", &whole, &wl), BL_ETOOBIG);
    assert_null(r.buf);

    /* A piece past its own total. */
    assert_int_equal(feed(&r, 8, 0, 2, "abc", &whole, &wl), BL_EINVAL);

    /* Still works after all that; exactly max_total is fine. */
    char hundred[101];
    memset(hundred, 'z', 100);
    hundred[100] = '\0';
    hundred[1] = WIRE_MSG;
    assert_int_equal(feed(&r, 9, 0, 100, hundred, &whole, &wl), 1);
    assert_int_equal(wl, 100);
    assert_memory_equal(whole, hundred, 100);
    free(whole);

    /* A reassembled FRAG is refused. */
    static const uint8_t nested[] = {1, WIRE_FRAG, 0, 0, 'x'};
    p = (wire_frag_t){10, 0, 5, nested, sizeof(nested)};
    assert_int_equal(wire_reasm_feed(&r, &p, &whole, &wl), BL_EINVAL);

    /* Clearing mid-frame releases the partial buffer (ASan checks the leak). */
    assert_int_equal(feed(&r, 11, 0, 50, "abc", &whole, &wl), 0);
    wire_reasm_clear(&r);
    assert_null(r.buf);
}

/* ---- BATCH ------------------------------------------------------------------------ */

/* A MSG and an ACK packed together come out as the same two frames, in order. */
static void test_batch_roundtrip(void **state)
{
    (void)state;
    bl_msg_t *m = full_msg();
    uint64_t seqs[] = {7, 8, 9};
    uint8_t *fm, *fa, *b;
    size_t lm, la, lb;
    assert_int_equal(wire_encode_msg(m, &fm, &lm), 0);
    assert_int_equal(wire_encode_ack(seqs, 3, &fa, &la), 0);
    wire_piece_t pieces[] = {{fm, lm}, {fa, la}, {fm, lm}};
    assert_int_equal(wire_encode_batch(pieces, 3, &b, &lb), 0);
    assert_int_equal(lb, WIRE_BATCH_HEADER_LEN + 3 * WIRE_BATCH_ENTRY_OVERHEAD + 2 * lm + la);
    assert_int_equal(b[1], WIRE_BATCH);
    assert_int_equal((b[4] << 8) | b[5], 3);

    wire_frame_t f;
    assert_int_equal(wire_decode(b, lb, 1024, &f), 0);
    assert_int_equal(f.type, WIRE_BATCH);
    assert_int_equal(f.u.batch.count, 3);
    const uint8_t *in;
    size_t il;
    uint8_t want[] = {WIRE_MSG, WIRE_ACK, WIRE_MSG};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wire_batch_next(&f.u.batch, &in, &il), 1);
        wire_frame_t g;
        assert_int_equal(wire_decode(in, il, 1024, &g), 0);
        assert_int_equal(g.type, want[i]);
        if (g.type == WIRE_MSG)
            assert_same_msg(m, g.u.msg);
        else
            assert_int_equal(g.u.ack.n, 3);
        wire_frame_clear(&g);
    }
    assert_int_equal(wire_batch_next(&f.u.batch, &in, &il), 0);
    wire_frame_clear(&f);
    free(fm), free(fa), free(b);
    msg_free(m);
}

/* Only MSG and ACK frames go into a batch: no HELLO, FRAG or BATCH inside, no empty
 * batch, nothing that is not a frame. */
static void test_batch_encode_refused(void **state)
{
    (void)state;
    wire_hello_t h = {.features = WIRE_FEAT_BATCH, .max_message_size = 10, .epoch = 1};
    strcpy(h.site, "x");
    uint8_t *fh, *b;
    size_t lh, lb;
    assert_int_equal(wire_encode_hello(&h, &fh, &lh), 0);
    wire_piece_t hello = {fh, lh};
    assert_int_equal(wire_encode_batch(&hello, 1, &b, &lb), BL_EINVAL);
    assert_int_equal(wire_encode_batch(&hello, 0, &b, &lb), BL_EINVAL);
    uint8_t short_frame[] = {1, 2, 0};
    wire_piece_t tiny = {short_frame, sizeof(short_frame)};
    assert_int_equal(wire_encode_batch(&tiny, 1, &b, &lb), BL_EINVAL);
    free(fh);
}

/* A received batch is refused whole, before any of its frames is used, when it does
 * not add up or carries a frame that has no place in a batch. */
static void test_batch_decode_refused(void **state)
{
    (void)state;
    uint8_t ack[] = {1, WIRE_ACK, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5};
    uint8_t b[64];
    size_t n = 0;
    memcpy(b, "\x01\x05\x00\x00\x00\x01\x00\x00\x00\x0e", 10);
    memcpy(b + 10, ack, sizeof(ack));
    n = 10 + sizeof(ack);
    assert_int_equal(decode_rc(b, n), 0);
    for (size_t cut = 0; cut < n; cut++) /* every truncation */
        assert_int_not_equal(decode_rc(b, cut), 0);
    b[n] = 0; /* a byte after the last frame */
    assert_int_equal(decode_rc(b, n + 1), BL_EINVAL);
    b[5] = 2; /* count says two, one is there */
    assert_int_equal(decode_rc(b, n), BL_ETRUNC);
    b[5] = 0; /* count 0 */
    assert_int_equal(decode_rc(b, n), BL_EINVAL);
    b[5] = 1;
    b[2] = 1; /* flags */
    assert_int_equal(decode_rc(b, n), BL_EINVAL);
    b[2] = 0;
    for (uint8_t t = WIRE_HELLO; t <= WIRE_BATCH; t++) { /* HELLO, FRAG, BATCH inside */
        b[11] = t;
        assert_int_equal(decode_rc(b, n), BL_EINVAL);
    }
    b[11] = WIRE_ACK;
    b[10] = 2; /* inner version */
    assert_int_equal(decode_rc(b, n), BL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_roundtrip_plain),
        cmocka_unit_test(test_msg_roundtrip_all_props),
        cmocka_unit_test(test_msg_roundtrip_each_prop_alone),
        cmocka_unit_test(test_msg_roundtrip_qos_retain_dup),
        cmocka_unit_test(test_msg_empty_payload),
        cmocka_unit_test(test_msg_empty_correlation_present),
        cmocka_unit_test(test_msg_big_seq_and_payload),
        cmocka_unit_test(test_msg_exact_bytes),
        cmocka_unit_test(test_msg_encode_refused),
        cmocka_unit_test(test_ack_roundtrip),
        cmocka_unit_test(test_hello_roundtrip),
        cmocka_unit_test(test_hello_bad_site),
        cmocka_unit_test(test_every_truncation_refused),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_bad_flags_and_reserved),
        cmocka_unit_test(test_payload_over_max),
        cmocka_unit_test(test_property_errors),
        cmocka_unit_test(test_user_props_capped),
        cmocka_unit_test(test_user_props_encode_capped),
        cmocka_unit_test(test_unknown_property_skipped),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_frag_5mib),
        cmocka_unit_test(test_frag_encode_args),
        cmocka_unit_test(test_frag_decode_inconsistent),
        cmocka_unit_test(test_reasm_errors),
        cmocka_unit_test(test_batch_roundtrip),
        cmocka_unit_test(test_ping),
        cmocka_unit_test(test_batch_encode_refused),
        cmocka_unit_test(test_batch_decode_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
