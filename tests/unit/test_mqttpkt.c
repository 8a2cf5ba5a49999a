/* SPDX-License-Identifier: MIT */
/* test_mqttpkt.c - the MQTT 5 packet codec: PUBLISH properties <-> bl_msg_t both ways,
 * what the parser refuses, what it waits for. Pure. (Interoperation with a real broker
 * and an independent client is test_local.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "mqtt.h"
#include "mqttpkt.h"

/* Encode in as a PUBLISH, parse it back into out (owned by the caller), which must be
 * equal to in (msg_equal). */
static void round_trip(const bl_msg_t *in, bl_msg_t *out)
{
    GByteArray *b = g_byte_array_new();
    assert_int_equal(mqttpkt_publish(b, in, in->qos ? 7 : 0, false), 0);
    assert_int_equal(b->len, mqttpkt_publish_size(in));
    mqttpkt_t k;
    size_t used = 0;
    assert_int_equal(mqttpkt_parse(b->data, b->len, 0, &k, &used, NULL), 0);
    assert_int_equal(used, b->len);
    assert_int_equal(k.type, MQTTPKT_PUBLISH);
    assert_int_equal(k.pid, in->qos ? 7 : 0);
    *out = k.msg;
    msg_init(&k.msg);
    mqttpkt_clear(&k);
    g_byte_array_free(b, TRUE);
    assert_true(msg_equal(in, out));
}

/* Parse raw bytes that must be refused as malformed. */
static void expect_malformed(const uint8_t *p, size_t n)
{
    mqttpkt_t k;
    size_t used = 99;
    const char *why = NULL;
    assert_int_equal(mqttpkt_parse(p, n, 0, &k, &used, &why), BL_EINVAL);
    assert_non_null(why);
    assert_int_equal(used, 0);
}

static void test_every_property_round_trips(void **state)
{
    (void)state;
    bl_msg_t in, out;
    fixture_full_msg(&in, "a/b");
    round_trip(&in, &out);
    fixture_check_full(&out, 0);
    msg_clear(&in);
    msg_clear(&out);
}

static void test_absence_round_trips(void **state)
{
    (void)state;
    bl_msg_t in, out;
    msg_init(&in);
    assert_int_equal(msg_set_topic(&in, "x"), 0);
    /* Nothing on the wire but the empty property length: 2 + 1 topic, 1, header 2. */
    assert_int_equal(mqttpkt_publish_size(&in), 2 + 2 + 1 + 1);
    round_trip(&in, &out);
    assert_int_equal(out.payload_format, -1);
    assert_false(out.has_expiry);
    assert_null(out.content_type);
    assert_null(out.response_topic);
    assert_null(out.correlation);
    assert_int_equal(out.n_user_props, 0);
    msg_clear(&in);
    msg_clear(&out);
}

/* Present-but-empty and zero values are not absence. */
static void test_empty_and_zero_values_stay_present(void **state)
{
    (void)state;
    bl_msg_t in, out;
    msg_init(&in);
    assert_int_equal(msg_set_topic(&in, "x"), 0);
    in.payload_format = 0;
    in.has_expiry = true;
    in.expiry_s = 0;
    in.content_type = strdup("");
    in.correlation = malloc(1);
    in.correlation_len = 0;
    assert_int_equal(msg_add_user_prop(&in, "", ""), 0);
    round_trip(&in, &out);
    assert_int_equal(out.payload_format, 0);
    assert_true(out.has_expiry);
    assert_int_equal(out.expiry_s, 0);
    assert_non_null(out.content_type);
    assert_string_equal(out.content_type, "");
    assert_non_null(out.correlation);
    assert_int_equal(out.correlation_len, 0);
    assert_null(out.response_topic);
    assert_int_equal(out.n_user_props, 1);
    assert_string_equal(out.user_props[0].key, "");
    msg_clear(&in);
    msg_clear(&out);
}

static void expect_refused(bl_msg_t *m)
{
    assert_int_equal(mqttpkt_check_publish(m), BL_EINVAL);
    msg_clear(m);
}

static void test_unsendable_properties_are_refused(void **state)
{
    (void)state;
    bl_msg_t m;

    fixture_full_msg(&m, "a/b");
    m.payload_format = 2;
    expect_refused(&m);

    fixture_full_msg(&m, "a/b");
    free(m.content_type);
    m.content_type = strdup("bad \xff utf8");
    expect_refused(&m);

    fixture_full_msg(&m, "a/b");
    free(m.response_topic);
    m.response_topic = strdup("wild/#"); /* a topic name, not a filter (3.3.2.3.5) */
    expect_refused(&m);

    fixture_full_msg(&m, "a/b");
    free(m.correlation);
    m.correlation_len = 70000; /* binary data is at most 65535 bytes (1.5.6) */
    m.correlation = calloc(1, m.correlation_len);
    expect_refused(&m);

    fixture_full_msg(&m, "a/b");
    assert_int_equal(msg_add_user_prop(&m, "k", "\xc0\x80"), 0); /* overlong NUL */
    expect_refused(&m);
}

/* What a peer sends is checked before it is recorded (site.c): a message the broker
 * could never take is refused at once, for its topic or for any of its properties. */
static void test_check_publish(void **state)
{
    (void)state;
    bl_msg_t m;
    fixture_full_msg(&m, "a/b");
    assert_int_equal(mqtt_check_publish(&m), 0);
    msg_clear(&m);

    fixture_full_msg(&m, "a/b");
    assert_int_equal(msg_add_user_prop(&m, "k", "\xff"), 0);
    assert_int_equal(mqtt_check_publish(&m), BL_EINVAL);
    msg_clear(&m);

    static const char *const bad_topics[] = {"a/#", "a/+/b", "", "bad\xff", "x\xc0\x80"};
    for (size_t i = 0; i < sizeof(bad_topics) / sizeof(bad_topics[0]); i++) {
        fixture_full_msg(&m, "a/b");
        free(m.topic); /* msg_set_topic would refuse some of them already */
        m.topic = strdup(bad_topics[i]);
        assert_int_equal(mqtt_check_publish(&m), BL_EINVAL);
        msg_clear(&m);
    }

    fixture_full_msg(&m, "a/b");
    m.qos = 3;
    assert_int_equal(mqtt_check_publish(&m), BL_EINVAL);
    msg_clear(&m);
    assert_int_equal(mqtt_check_publish(NULL), BL_EINVAL);
}

/* Properties that are per-hop (subscription identifiers) are not carried; the
 * carried ones still are, whatever the order on the wire. A topic alias was never
 * allowed (we announce no Topic Alias Maximum): a protocol error. */
static void test_hop_by_hop_properties_are_ignored(void **state)
{
    (void)state;
    static const uint8_t pub[] = {0x30, 22,       /* PUBLISH QoS 0, remaining 22 */
                                  0,    1,   't', /* topic */
                                  15,             /* properties */
                                  0x26, 0,   1,   'k', 0,   1,   'v', /* user property k=v */
                                  0x0B, 7,                       /* subscription identifier 7 */
                                  0x03, 0,   3,   't', 'x', 't', /* content type */
                                  'p',  'l', 'd'};
    mqttpkt_t k;
    size_t used = 0;
    assert_int_equal(mqttpkt_parse(pub, sizeof pub, 0, &k, &used, NULL), 0);
    assert_int_equal(used, sizeof pub);
    assert_int_equal(k.msg.n_user_props, 1);
    assert_string_equal(k.msg.user_props[0].value, "v");
    assert_string_equal(k.msg.content_type, "txt");
    assert_int_equal(k.msg.payload_format, -1);
    assert_false(k.msg.has_expiry);
    assert_int_equal(k.msg.payload_len, 3);
    mqttpkt_clear(&k);

    static const uint8_t alias[] = {0x30, 9, 0, 1, 't', 3, 0x23, 0, 1, 'p', 'l'};
    expect_malformed(alias, sizeof alias);
}

/* A packet arrives in pieces: the parser says "not yet" until it is whole. */
static void test_partial_packets_wait(void **state)
{
    (void)state;
    bl_msg_t m;
    fixture_full_msg(&m, "a/b");
    GByteArray *b = g_byte_array_new();
    assert_int_equal(mqttpkt_publish(b, &m, 42, true), 0);
    for (size_t n = 0; n < b->len; n++) {
        mqttpkt_t k;
        size_t used = 99;
        assert_int_equal(mqttpkt_parse(b->data, n, 0, &k, &used, NULL), 0);
        assert_int_equal(used, 0);
    }
    mqttpkt_t k;
    size_t used = 0;
    assert_int_equal(mqttpkt_parse(b->data, b->len, 0, &k, &used, NULL), 0);
    assert_int_equal(used, b->len);
    assert_true(k.msg.dup);
    assert_int_equal(k.pid, 42);
    assert_true(msg_equal(&m, &k.msg));
    mqttpkt_clear(&k);
    /* Over our limit: refused on its header alone, before the rest arrives. */
    assert_int_equal(mqttpkt_parse(b->data, 3, 20, &k, &used, NULL), BL_ETOOBIG);
    /* Its size is known from the fixed header alone (to read on until it is whole). */
    assert_int_equal(mqttpkt_peek_size(b->data, 1), 0);
    assert_int_equal(mqttpkt_peek_size(b->data, 3), b->len);
    g_byte_array_free(b, TRUE);
    msg_clear(&m);
}

static void test_connack(void **state)
{
    (void)state;
    static const uint8_t ok[] = {0x20, 13,   0x01, 0x00, 10,
                                 0x21, 0x00, 0x14,             /* receive maximum 20 */
                                 0x27, 0x00, 0x01, 0x00, 0x00, /* max packet 65536 */
                                 0x24, 0x01,                   /* maximum QoS 1 */
                                 0x13};                        /* (truncated on purpose) */
    mqttpkt_t k;
    size_t used;
    assert_int_equal(mqttpkt_parse(ok, sizeof ok - 1, 0, &k, &used, NULL), 0);
    assert_int_equal(used, sizeof ok - 1);
    assert_int_equal(k.type, MQTTPKT_CONNACK);
    assert_true(k.session_present);
    assert_int_equal(k.reason, 0);
    assert_int_equal(k.receive_max, 20);
    assert_int_equal(k.max_packet_size, 65536);
    assert_int_equal(k.max_qos, 1);
    assert_true(k.retain_available);
    assert_int_equal(k.server_keepalive, -1);
    mqttpkt_clear(&k);

    static const uint8_t refused[] = {0x20, 3, 0x00, 0x87, 0};
    assert_int_equal(mqttpkt_parse(refused, sizeof refused, 0, &k, &used, NULL), 0);
    assert_int_equal(k.reason, 0x87);
    assert_string_equal(mqttpkt_reason_name(k.reason), "not authorized");
    mqttpkt_clear(&k);

    static const uint8_t twice[] = {0x20, 9, 0, 0, 6, 0x21, 0, 1, 0x21, 0, 2};
    expect_malformed(twice, sizeof twice);
    static const uint8_t wrong_place[] = {0x20, 5, 0, 0, 2, 0x01, 1}; /* payload format */
    expect_malformed(wrong_place, sizeof wrong_place);
}

/* What the parser refuses: a broker that sends these is disconnected. */
static void test_malformed(void **state)
{
    (void)state;
    static const uint8_t long_length[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_malformed(long_length, sizeof long_length);
    static const uint8_t qos3[] = {0x36, 5, 0, 1, 't', 0, 1};
    expect_malformed(qos3, sizeof qos3);
    static const uint8_t pid0[] = {0x32, 6, 0, 1, 't', 0, 0, 0};
    expect_malformed(pid0, sizeof pid0);
    static const uint8_t wildcard[] = {0x30, 4, 0, 1, '#', 0};
    expect_malformed(wildcard, sizeof wildcard);
    static const uint8_t nul_topic[] = {0x30, 5, 0, 2, 'a', 0, 0};
    expect_malformed(nul_topic, sizeof nul_topic);
    static const uint8_t pubrel_flags[] = {0x60, 2, 0, 1}; /* PUBREL must carry 0010 */
    expect_malformed(pubrel_flags, sizeof pubrel_flags);
    static const uint8_t trailing[] = {0xd0, 1, 0}; /* PINGRESP with a body */
    expect_malformed(trailing, sizeof trailing);
    static const uint8_t suback_id0[] = {0x90, 4, 0, 0, 0, 0x00}; /* 2.2.1: id 0 */
    expect_malformed(suback_id0, sizeof suback_id0);
    static const uint8_t connect[] = {0x10, 0};
    expect_malformed(connect, sizeof connect);
    static const uint8_t auth[] = {0xf0, 0};
    expect_malformed(auth, sizeof auth);
    static const uint8_t prop_overrun[] = {0x30, 5, 0, 1, 't', 9, 0x01};
    expect_malformed(prop_overrun, sizeof prop_overrun);
}

static void test_acks(void **state)
{
    (void)state;
    GByteArray *b = g_byte_array_new();
    assert_int_equal(mqttpkt_ack(b, MQTTPKT_PUBREL, 513, 0), 0);
    static const uint8_t rel[] = {0x62, 2, 0x02, 0x01};
    assert_int_equal(b->len, sizeof rel);
    assert_memory_equal(b->data, rel, sizeof rel);
    mqttpkt_t k;
    size_t used;
    assert_int_equal(mqttpkt_parse(b->data, b->len, 0, &k, &used, NULL), 0);
    assert_int_equal(k.type, MQTTPKT_PUBREL);
    assert_int_equal(k.pid, 513);
    mqttpkt_clear(&k);
    static const uint8_t rec_refused[] = {0x50, 3, 0, 9, 0x87};
    assert_int_equal(mqttpkt_parse(rec_refused, sizeof rec_refused, 0, &k, &used, NULL), 0);
    assert_int_equal(k.reason, 0x87);
    mqttpkt_clear(&k);
    static const uint8_t suback[] = {0x90, 5, 0, 3, 0, 0x02, 0x80};
    assert_int_equal(mqttpkt_parse(suback, sizeof suback, 0, &k, &used, NULL), 0);
    assert_int_equal(k.pid, 3);
    assert_int_equal(k.n_codes, 2);
    assert_int_equal(k.codes[1], 0x80);
    mqttpkt_clear(&k);
    assert_int_equal(mqttpkt_ack(b, MQTTPKT_PUBACK, 0, 0), BL_EINVAL); /* id 0 */
    assert_int_equal(mqttpkt_subscribe(b, 1, "a/#/b", 1, 0), BL_EINVAL);
    g_byte_array_free(b, TRUE);
}

/* CONNECT as 3.1 lays it out, byte for byte. */
static void test_connect(void **state)
{
    (void)state;
    GByteArray *b = g_byte_array_new();
    mqttpkt_connect_t c = {.client_id = "id",
                           .username = "u",
                           .password = "p",
                           .keepalive = 30,
                           .session_expiry = 86400,
                           .receive_max = 1000};
    assert_int_equal(mqttpkt_connect(b, &c), 0);
    static const uint8_t want[] = {0x10, 29,  0,    4, 'M', 'Q',  'T',  'T',  5,    0xC0, 0,
                                   30,   8,   0x11, 0, 1,   0x51, 0x80, 0x21, 0x03, 0xE8, 0,
                                   2,    'i', 'd',  0, 1,   'u',  0,    1,    'p'};
    assert_int_equal(b->len, sizeof want);
    assert_memory_equal(b->data, want, sizeof want);
    c.username = NULL; /* a password needs a user name here */
    assert_int_equal(mqttpkt_connect(b, &c), BL_EINVAL);
    g_byte_array_free(b, TRUE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_property_round_trips),
        cmocka_unit_test(test_absence_round_trips),
        cmocka_unit_test(test_empty_and_zero_values_stay_present),
        cmocka_unit_test(test_unsendable_properties_are_refused),
        cmocka_unit_test(test_check_publish),
        cmocka_unit_test(test_hop_by_hop_properties_are_ignored),
        cmocka_unit_test(test_partial_packets_wait),
        cmocka_unit_test(test_connack),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_acks),
        cmocka_unit_test(test_connect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
