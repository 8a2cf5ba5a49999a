/* SPDX-License-Identifier: MIT */
/* test_dcep - the DCEP codec (RFC 8832 5): round trips, ACK, every truncation, bad
 * lengths, unknown types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dcep.h"

/* RFC 8832 5.1 layout of OPEN for label "brokerless", protocol "", reliable ordered. */
static const uint8_t open_brokerless[] = {
    0x03, 0x00, 0x01, 0x00, /* type, channel_type, priority 256 */
    0x00, 0x00, 0x00, 0x00, /* reliability */
    0x00, 0x0a, 0x00, 0x00, /* label_len 10, protocol_len 0 */
    'b',  'r',  'o',  'k',  'e', 'r', 'l', 'e', 's', 's',
};

static void test_open_bytes(void **state)
{
    (void)state;
    dcep_open_t o = {.channel_type = DCEP_RELIABLE, .priority = 256, .label = "brokerless"};
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(dcep_build_open(&o, &buf, &len), 0);
    assert_int_equal(len, sizeof(open_brokerless));
    assert_memory_equal(buf, open_brokerless, len);
    free(buf);
}

static void test_round_trip(void **state)
{
    (void)state;
    const uint8_t types[] = {0x00, 0x01, 0x02, 0x80, 0x81, 0x82};
    for (size_t i = 0; i < sizeof(types); i++) {
        /* reliability uses all 32 bits: a 16-bit read would lose 0x12345678's top. */
        dcep_open_t in = {.channel_type = types[i],
                          .priority = 0xbeef,
                          .reliability = 0x12345678u,
                          .label = "chan\xc3\xa9",
                          .protocol = "mqtt"};
        uint8_t *buf;
        size_t len;
        assert_int_equal(dcep_build_open(&in, &buf, &len), 0);
        assert_int_equal(len, 12 + 6 + 4);
        dcep_open_t out;
        assert_int_equal(dcep_parse(buf, len, &out), DCEP_MSG_OPEN);
        assert_int_equal(out.channel_type, types[i]);
        assert_int_equal(out.priority, 0xbeef);
        assert_int_equal(out.reliability, 0x12345678u);
        assert_string_equal(out.label, "chan\xc3\xa9");
        assert_string_equal(out.protocol, "mqtt");
        dcep_open_clear(&out);
        assert_null(out.label);
        free(buf);
    }
}

static void test_parse_known_bytes(void **state)
{
    (void)state;
    dcep_open_t o;
    assert_int_equal(dcep_parse(open_brokerless, sizeof(open_brokerless), &o), DCEP_MSG_OPEN);
    assert_string_equal(o.label, "brokerless");
    assert_string_equal(o.protocol, "");
    assert_int_equal(o.channel_type, DCEP_RELIABLE);
    assert_int_equal(o.priority, 256);
    dcep_open_clear(&o);
}

static void test_ack(void **state)
{
    (void)state;
    uint8_t ack[1];
    assert_int_equal(dcep_build_ack(ack), 1);
    assert_int_equal(ack[0], 0x02);
    assert_int_equal(dcep_parse(ack, 1, NULL), DCEP_MSG_ACK);
    const uint8_t long_ack[] = {0x02, 0x00};
    assert_int_equal(dcep_parse(long_ack, 2, NULL), BL_EINVAL);
}

static void test_every_truncation(void **state)
{
    (void)state;
    for (size_t n = 0; n < sizeof(open_brokerless); n++) {
        dcep_open_t o = {0};
        assert_int_equal(dcep_parse(open_brokerless, n, &o), n == 0 ? BL_ETRUNC : BL_ETRUNC);
        assert_null(o.label);
    }
    assert_int_equal(dcep_parse(NULL, 0, NULL), BL_ETRUNC);
}

static void test_bad_lengths(void **state)
{
    (void)state;
    uint8_t b[sizeof(open_brokerless) + 1];
    dcep_open_t o;
    /* label_len larger than what follows */
    memcpy(b, open_brokerless, sizeof(open_brokerless));
    b[9] = 11;
    assert_int_equal(dcep_parse(b, sizeof(open_brokerless), &o), BL_ETRUNC);
    /* protocol_len pointing past the end */
    memcpy(b, open_brokerless, sizeof(open_brokerless));
    b[10] = 0xff;
    b[11] = 0xff;
    assert_int_equal(dcep_parse(b, sizeof(open_brokerless), &o), BL_ETRUNC);
    /* lengths that do not cover the whole message: trailing byte */
    memcpy(b, open_brokerless, sizeof(open_brokerless));
    b[sizeof(open_brokerless)] = 'x';
    assert_int_equal(dcep_parse(b, sizeof(b), &o), BL_EINVAL);
    /* an embedded NUL or invalid UTF-8 in the label */
    memcpy(b, open_brokerless, sizeof(open_brokerless));
    b[14] = 0;
    assert_int_equal(dcep_parse(b, sizeof(open_brokerless), &o), BL_EINVAL);
    b[14] = 0xff;
    assert_int_equal(dcep_parse(b, sizeof(open_brokerless), &o), BL_EINVAL);
    /* channel types outside RFC 8832 5.1 */
    memcpy(b, open_brokerless, sizeof(open_brokerless));
    b[1] = 0x03;
    assert_int_equal(dcep_parse(b, sizeof(open_brokerless), &o), BL_EINVAL);
    b[1] = 0x40;
    assert_int_equal(dcep_parse(b, sizeof(open_brokerless), &o), BL_EINVAL);
}

static void test_unknown_type(void **state)
{
    (void)state;
    dcep_open_t o;
    for (unsigned t = 0; t < 256; t++) {
        if (t == DCEP_MSG_ACK || t == DCEP_MSG_OPEN)
            continue;
        uint8_t b[sizeof(open_brokerless)];
        memcpy(b, open_brokerless, sizeof(b));
        b[0] = (uint8_t)t;
        assert_int_equal(dcep_parse(b, sizeof(b), &o), BL_EINVAL);
        assert_int_equal(dcep_parse(b, 1, &o), BL_EINVAL);
    }
}

static void test_build_refuses(void **state)
{
    (void)state;
    uint8_t *buf;
    size_t len;
    dcep_open_t bad = {.channel_type = 0x05, .label = "x"};
    assert_int_equal(dcep_build_open(&bad, &buf, &len), BL_EINVAL);
    char *huge = malloc(70000);
    assert_non_null(huge);
    memset(huge, 'a', 69999);
    huge[69999] = 0;
    dcep_open_t big = {.label = huge};
    assert_int_equal(dcep_build_open(&big, &buf, &len), BL_ETOOBIG);
    free(huge);
    /* A NULL label or protocol is the empty string. */
    dcep_open_t empty = {0};
    assert_int_equal(dcep_build_open(&empty, &buf, &len), 0);
    assert_int_equal(len, 12);
    dcep_open_t o;
    assert_int_equal(dcep_parse(buf, len, &o), DCEP_MSG_OPEN);
    assert_string_equal(o.label, "");
    dcep_open_clear(&o);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_bytes),        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_parse_known_bytes), cmocka_unit_test(test_ack),
        cmocka_unit_test(test_every_truncation),  cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_unknown_type),      cmocka_unit_test(test_build_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
