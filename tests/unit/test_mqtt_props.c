/* SPDX-License-Identifier: MIT */
/* test_mqtt_props.c - MQTT 5 PUBLISH properties <-> bl_msg_t, both ways, pure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <mqtt_protocol.h>

#include "mqtt.h"

static void round_trip(const bl_msg_t *in, bl_msg_t *out)
{
    mosquitto_property *props = NULL;
    assert_int_equal(mqtt_props_from_msg(in, &props), 0);
    msg_init(out);
    assert_int_equal(msg_set_topic(out, in->topic), 0);
    assert_int_equal(msg_set_payload(out, in->payload, in->payload_len), 0);
    out->qos = in->qos;
    out->retain = in->retain;
    assert_int_equal(mqtt_props_to_msg(props, out), 0);
    mosquitto_property_free_all(&props);
}

static void fill_all(bl_msg_t *m)
{
    static const uint8_t corr[] = {0x00, 0xab, 0x00, 0xff};
    msg_init(m);
    assert_int_equal(msg_set_topic(m, "a/b"), 0);
    assert_int_equal(msg_set_payload(m, "\x00\x01", 2), 0);
    m->qos = 2;
    m->payload_format = 1;
    m->has_expiry = true;
    m->expiry_s = 3600;
    m->content_type = strdup("application/json");
    m->response_topic = strdup("reply/to/me");
    m->correlation = malloc(sizeof(corr));
    memcpy(m->correlation, corr, sizeof(corr));
    m->correlation_len = sizeof(corr);
    /* Out of alphabetical order, with a repeated key: order and repeats must survive. */
    assert_int_equal(msg_add_user_prop(m, "zeta", "1"), 0);
    assert_int_equal(msg_add_user_prop(m, "alpha", "2"), 0);
    assert_int_equal(msg_add_user_prop(m, "zeta", "3"), 0);
}

static void test_every_property_round_trips(void **state)
{
    (void)state;
    bl_msg_t in, out;
    fill_all(&in);
    round_trip(&in, &out);
    assert_true(msg_equal(&in, &out));
    assert_int_equal(out.payload_format, 1);
    assert_true(out.has_expiry);
    assert_int_equal(out.expiry_s, 3600);
    assert_string_equal(out.content_type, "application/json");
    assert_string_equal(out.response_topic, "reply/to/me");
    assert_int_equal(out.correlation_len, 4);
    assert_memory_equal(out.correlation, in.correlation, 4);
    assert_int_equal(out.n_user_props, 3);
    assert_string_equal(out.user_props[0].key, "zeta");
    assert_string_equal(out.user_props[1].key, "alpha");
    assert_string_equal(out.user_props[2].value, "3");
    msg_clear(&in);
    msg_clear(&out);
}

static void test_absence_round_trips(void **state)
{
    (void)state;
    bl_msg_t in, out;
    msg_init(&in);
    assert_int_equal(msg_set_topic(&in, "x"), 0);
    mosquitto_property *props = (mosquitto_property *)1;
    assert_int_equal(mqtt_props_from_msg(&in, &props), 0);
    assert_null(props); /* nothing on the wire */
    round_trip(&in, &out);
    assert_int_equal(out.payload_format, -1);
    assert_false(out.has_expiry);
    assert_null(out.content_type);
    assert_null(out.response_topic);
    assert_null(out.correlation);
    assert_int_equal(out.n_user_props, 0);
    assert_true(msg_equal(&in, &out));
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
    assert_true(msg_equal(&in, &out));
    msg_clear(&in);
    msg_clear(&out);
}

static void expect_refused(bl_msg_t *m)
{
    mosquitto_property *props = (mosquitto_property *)1;
    assert_int_equal(mqtt_props_from_msg(m, &props), BL_EINVAL);
    assert_null(props); /* nothing leaks on failure */
    msg_clear(m);
}

static void test_unsendable_properties_are_refused(void **state)
{
    (void)state;
    bl_msg_t m;

    fill_all(&m);
    m.payload_format = 2;
    expect_refused(&m);

    fill_all(&m);
    free(m.content_type);
    m.content_type = strdup("bad \xff utf8");
    expect_refused(&m);

    fill_all(&m);
    free(m.response_topic);
    m.response_topic = strdup("wild/#"); /* a topic name, not a filter (3.3.2.3.5) */
    expect_refused(&m);

    fill_all(&m);
    free(m.correlation);
    m.correlation_len = 70000; /* binary data is at most 65535 bytes (1.5.6) */
    m.correlation = calloc(1, m.correlation_len);
    expect_refused(&m);

    fill_all(&m);
    assert_int_equal(msg_add_user_prop(&m, "k", "\xc0\x80"), 0); /* overlong NUL */
    expect_refused(&m);
}

/* What a peer sends is checked before it is recorded (site.c): a message the broker
 * could never take is refused at once, for its topic or for any of its properties. */
static void test_check_publish(void **state)
{
    (void)state;
    bl_msg_t m;
    fill_all(&m);
    assert_int_equal(mqtt_check_publish(&m), 0);
    msg_clear(&m);

    fill_all(&m);
    assert_int_equal(msg_add_user_prop(&m, "k", "\xff"), 0);
    assert_int_equal(mqtt_check_publish(&m), BL_EINVAL);
    msg_clear(&m);

    static const char *const bad_topics[] = {"a/#", "a/+/b", "", "bad\xff", "x\xc0\x80"};
    for (size_t i = 0; i < sizeof(bad_topics) / sizeof(bad_topics[0]); i++) {
        fill_all(&m);
        free(m.topic); /* msg_set_topic would refuse some of them already */
        m.topic = strdup(bad_topics[i]);
        assert_int_equal(mqtt_check_publish(&m), BL_EINVAL);
        msg_clear(&m);
    }

    fill_all(&m);
    m.qos = 3;
    assert_int_equal(mqtt_check_publish(&m), BL_EINVAL);
    msg_clear(&m);
    assert_int_equal(mqtt_check_publish(NULL), BL_EINVAL);
}

/* Properties that are per-hop (subscription identifier, topic alias) are not carried;
 * the carried ones still are, whatever the order on the wire. */
static void test_hop_by_hop_properties_are_ignored(void **state)
{
    (void)state;
    mosquitto_property *props = NULL;
    assert_int_equal(mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "k", "v"),
                     0);
    assert_int_equal(mosquitto_property_add_varint(&props, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, 7),
                     0);
    assert_int_equal(mosquitto_property_add_int16(&props, MQTT_PROP_TOPIC_ALIAS, 3), 0);
    assert_int_equal(mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "text/plain"),
                     0);
    bl_msg_t m;
    msg_init(&m);
    assert_int_equal(mqtt_props_to_msg(props, &m), 0);
    assert_int_equal(m.n_user_props, 1);
    assert_string_equal(m.user_props[0].value, "v");
    assert_string_equal(m.content_type, "text/plain");
    assert_int_equal(m.payload_format, -1);
    assert_false(m.has_expiry);
    assert_int_equal(mqtt_props_to_msg(NULL, &m), 0); /* no properties at all */
    mosquitto_property_free_all(&props);
    msg_clear(&m);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
