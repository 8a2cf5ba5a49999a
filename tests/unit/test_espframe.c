/* SPDX-License-Identifier: MIT */
/* Unit tests for espframe.c: the ESP32 example's datagrams, byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "espframe.h"
#include "framing.h"

/* What the board sends for topic "ab" (3 with its NUL, padded to 4) and payload "xyz":
 * its pad byte is whatever was in its buffer. */
static const uint8_t board_frame[] = {3, 0, 3, 0, 'a', 'b', 0, 0x5a, 'x', 'y', 'z'};

static void test_encode_like_the_board(void **state)
{
    (void)state;
    uint8_t *f;
    size_t n;
    assert_int_equal(espframe_encode("ab", 2, (const uint8_t *)"xyz", 3, &f, &n), 0);
    assert_int_equal(n, sizeof(board_frame));
    assert_int_equal(espframe_size(2, 3), n);
    assert_memory_equal(f, board_frame, 7); /* our pad byte is zero */
    assert_int_equal(f[7], 0);
    assert_memory_equal(f + 8, "xyz", 3);
    free(f);
    /* A topic of 4 bytes: its NUL makes 5, padded to 8. */
    assert_int_equal(espframe_encode("abcd", 4, NULL, 0, &f, &n), 0);
    assert_int_equal(n, 4 + 8);
    assert_int_equal(f[0], 5);
    assert_int_equal(f[2], 0);
    free(f);
}

static void test_parse_board_frame(void **state)
{
    (void)state;
    espframe_t e;
    assert_int_equal(espframe_parse(board_frame, sizeof(board_frame), &e), 0);
    assert_int_equal(e.topic_len, 2);
    assert_string_equal(e.topic, "ab");
    assert_int_equal(e.payload_len, 3);
    assert_memory_equal(e.payload, "xyz", 3);
    /* An empty payload is a message too (the board mishandles it; we do not). */
    static const uint8_t empty[] = {3, 0, 0, 0, 'a', 'b', 0, 0};
    assert_int_equal(espframe_parse(empty, sizeof(empty), &e), 0);
    assert_int_equal(e.payload_len, 0);
}

/* The largest frame the board takes is 4096 bytes, all in: never more, never cut. */
static void test_size_limit(void **state)
{
    (void)state;
    uint8_t *payload = calloc(1, 5000), *f;
    size_t n;
    /* "t" + NUL = 2, padded to 4: 8 bytes before the payload. */
    assert_int_equal(espframe_encode("t", 1, payload, ESPFRAME_MAX - 8, &f, &n), 0);
    assert_int_equal(n, ESPFRAME_MAX);
    free(f);
    assert_int_equal(espframe_encode("t", 1, payload, ESPFRAME_MAX - 7, &f, &n), BL_ETOOBIG);
    free(payload);
    char topic[5000];
    memset(topic, 'a', sizeof(topic));
    assert_int_equal(espframe_encode(topic, sizeof(topic), NULL, 0, &f, &n), BL_ETOOBIG);
}

static void expect_refused(const uint8_t *buf, size_t len, int rc)
{
    espframe_t e;
    assert_int_equal(espframe_parse(buf, len, &e), rc);
    assert_non_null(e.why);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused(board_frame, 3, BL_ETRUNC);
    expect_refused(board_frame, sizeof(board_frame) - 1, BL_ETRUNC); /* payload cut */
    uint8_t longer[sizeof(board_frame) + 1];
    memcpy(longer, board_frame, sizeof(board_frame));
    longer[sizeof(board_frame)] = '!';
    expect_refused(longer, sizeof(longer), BL_EINVAL); /* a byte after the payload */
    static const uint8_t no_nul[] = {3, 0, 1, 0, 'a', 'b', 'c', 0, 'x'};
    expect_refused(no_nul, sizeof(no_nul), BL_EINVAL);
    static const uint8_t early_nul[] = {3, 0, 1, 0, 'a', 0, 0, 0, 'x'};
    expect_refused(early_nul, sizeof(early_nul), BL_EINVAL);
    static const uint8_t no_topic[] = {1, 0, 1, 0, 0, 0, 0, 0, 'x'};
    expect_refused(no_topic, sizeof(no_topic), BL_EINVAL);
    static const uint8_t zero[] = {0, 0, 0, 0};
    expect_refused(zero, sizeof(zero), BL_EINVAL);
    /* The example's own check lets this through: topic and header fit, the payload
     * length points far past the datagram. */
    static const uint8_t liar[] = {3, 0, 0xff, 0xff, 'a', 'b', 0, 0, 'x'};
    expect_refused(liar, sizeof(liar), BL_ETRUNC);
    uint8_t *f;
    size_t n;
    assert_int_equal(espframe_encode("", 0, NULL, 0, &f, &n), BL_EINVAL);
    assert_int_equal(espframe_encode("a\0b", 3, NULL, 0, &f, &n), BL_EINVAL);
}

/* The link's framing: a message goes out as a datagram, a datagram comes in as a QoS 0
 * message that is not retained; what a datagram cannot carry does not cross. */
static void test_framing(void **state)
{
    (void)state;
    bl_msg_t *m = msg_new();
    msg_set_topic(m, "cabin/temp");
    msg_set_payload(m, "21.5", 4);
    m->qos = 2;
    m->retain = true;
    m->seq = 7;
    msg_add_user_prop(m, "k", "v");
    uint8_t *f;
    size_t n;
    assert_int_equal(framing_esp.encode_msg(m, &f, &n), 0);
    wire_frame_t w;
    assert_int_equal(framing_esp.decode(f, n, 1024, &w), 0);
    assert_int_equal(w.type, WIRE_MSG);
    assert_string_equal(w.u.msg->topic, "cabin/temp");
    assert_int_equal(w.u.msg->payload_len, 4);
    assert_int_equal(w.u.msg->qos, 0);
    assert_false(w.u.msg->retain);
    assert_int_equal(w.u.msg->seq, 0);
    assert_null(w.u.msg->origin);
    assert_int_equal(w.u.msg->n_user_props, 0);
    wire_frame_clear(&w);
    assert_int_equal(framing_esp.decode(f, n, 3, &w), BL_ETOOBIG);
    assert_non_null(w.why);
    free(f);
    msg_free(m);
    assert_false(framing_esp.control);
    assert_null(framing_esp.encode_ack);
    assert_int_equal(framing_esp.max_frame, 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_like_the_board),
        cmocka_unit_test(test_parse_board_frame),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_framing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
