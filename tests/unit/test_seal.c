/* SPDX-License-Identifier: MIT */
/* test_seal.c - sealed signalling: round trip, authentication, replay, freshness,
 * malformed bodies and what the sealed bytes do not reveal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "seal.h"

#define SECRET "correct horse battery staple"
#define TOPIC "bl/0123456789abcdef0123456789abcdef"
#define NOW 1700000000000LL

static const char sdp[] = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\n"
                          "a=ice-pwd:0123456789012345678901\r\n";

static void make_msg(seal_msg_t *m, const char *type, const char *body)
{
    memset(m, 0, sizeof(*m));
    strcpy(m->from, "alpha-site");
    strcpy(m->to, "beta.site");
    strcpy(m->sid, "00ff11ee22dd33cc");
    m->ts_ms = NOW;
    strcpy(m->type, type);
    m->body = (char *)body;
}

static void keys(seal_keys_t *k, const char *secret)
{
    assert_int_equal(seal_derive(secret, k), 0);
}

static bool contains(const uint8_t *buf, size_t len, const char *needle)
{
    return memmem(buf, len, needle, strlen(needle)) != NULL;
}

static void test_round_trip(void **state)
{
    (void)state;
    seal_keys_t k;
    seal_msg_t m, got;
    uint8_t *buf;
    size_t len;
    keys(&k, SECRET);
    make_msg(&m, "offer", sdp);
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), 0);
    assert_int_equal(seal_unpack(&k, TOPIC, buf, len, &got), 0);
    assert_string_equal(got.from, "alpha-site");
    assert_string_equal(got.to, "beta.site");
    assert_string_equal(got.sid, "00ff11ee22dd33cc");
    assert_string_equal(got.type, "offer");
    assert_string_equal(got.body, sdp);
    assert_true(got.ts_ms == NOW);
    assert_memory_equal(got.nonce, buf + 1, SEAL_NONCE_LEN);
    /* Nothing readable goes over the broker. */
    assert_false(contains(buf, len, "alpha-site"));
    assert_false(contains(buf, len, "beta.site"));
    assert_false(contains(buf, len, "ice-pwd"));
    assert_false(contains(buf, len, "offer"));
    seal_msg_clear(&got);
    free(buf);

    /* A body-less type and a candidate line. */
    make_msg(&m, "eoc", NULL);
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), 0);
    assert_int_equal(seal_unpack(&k, TOPIC, buf, len, &got), 0);
    assert_null(got.body);
    assert_string_equal(got.type, "eoc");
    seal_msg_clear(&got);
    free(buf);
}

static void test_pack_refuses_bad_msg(void **state)
{
    (void)state;
    seal_keys_t k;
    seal_msg_t m;
    uint8_t *buf = NULL;
    size_t len;
    keys(&k, SECRET);
    make_msg(&m, "hello", "x");
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), BL_EINVAL);
    make_msg(&m, "cand", NULL);
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), BL_EINVAL);
    make_msg(&m, "bye", NULL);
    strcpy(m.from, "a/b");
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), BL_EINVAL);
    make_msg(&m, "bye", NULL);
    strcpy(m.sid, "xyz");
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), BL_EINVAL);
    char *big = malloc(SEAL_MAX_LEN + 2);
    memset(big, 'a', SEAL_MAX_LEN + 1);
    big[SEAL_MAX_LEN + 1] = '\0';
    make_msg(&m, "offer", big);
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), BL_ETOOBIG);
    big[SEAL_MAX_LEN] = '\0'; /* exactly the limit is fine */
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), 0);
    seal_msg_t got;
    assert_int_equal(seal_unpack(&k, TOPIC, buf, len, &got), 0);
    assert_int_equal(strlen(got.body), SEAL_MAX_LEN);
    seal_msg_clear(&got);
    free(buf);
    free(big);
}

static void test_wrong_key_topic_tamper(void **state)
{
    (void)state;
    seal_keys_t k, other;
    seal_msg_t m, got;
    uint8_t *buf;
    size_t len;
    keys(&k, SECRET);
    keys(&other, "another secret");
    assert_memory_not_equal(k.key, other.key, SEAL_KEY_LEN);
    make_msg(&m, "cand", "a=candidate:1 1 UDP 2122317823 198.18.0.1 40000 typ host");
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), 0);

    assert_int_equal(seal_unpack(&other, TOPIC, buf, len, &got), BL_EAUTH);
    /* The topic is authenticated: a message moved to another inbox is refused. */
    assert_int_equal(seal_unpack(&k, "bl/ffffffffffffffffffffffffffffffff", buf, len, &got),
                     BL_EAUTH);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            buf[i] ^= (uint8_t)(1u << bit);
            int rc = seal_unpack(&k, TOPIC, buf, len, &got);
            assert_true(rc == (i == 0 ? BL_EVERSION : BL_EAUTH));
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    /* Every truncation is refused too. */
    for (size_t n = 0; n < len; n++)
        assert_true(seal_unpack(&k, TOPIC, buf, n, &got) < 0);
    assert_int_equal(seal_unpack(&k, TOPIC, buf, len, &got), 0);
    seal_msg_clear(&got);
    free(buf);
}

/* Each of these is authentic (sealed with the right key) but not a valid message. */
static void test_malformed_json(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        int rc;
    } cases[] = {
        {"", BL_EINVAL},
        {"not json", BL_EINVAL},
        {"[1,2,3]", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"} x",
         BL_EINVAL},
        {"{\"v\":2,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"}",
         BL_EVERSION},
        {"{\"v\":\"1\",\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"}",
         BL_EINVAL},
        {"{\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"}", BL_EINVAL},
        {"{\"v\":1,\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"}", BL_EINVAL},
        {"{\"v\":1,\"from\":7,\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"}", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a b\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"}", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"../x\",\"sid\":\"1\",\"ts\":1,\"type\":\"bye\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"ts\":1,\"type\":\"bye\"}", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"\",\"ts\":1,\"type\":\"bye\"}", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"xyz\",\"ts\":1,\"type\":\"bye\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"0123456789abcdef0123456789abcdef0\","
         "\"ts\":1,\"type\":\"bye\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":1,\"ts\":1,\"type\":\"bye\"}", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"type\":\"bye\"}", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":\"1\",\"type\":\"bye\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":-5,\"type\":\"bye\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1.5,\"type\":\"bye\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1e300,\"type\":\"bye\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1}", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"hello\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":[]}", BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"offer\"}",
         BL_EINVAL},
        {"{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,\"type\":\"cand\","
         "\"body\":42}",
         BL_EINVAL},
    };
    seal_keys_t k;
    seal_msg_t got;
    uint8_t *buf;
    size_t len;
    keys(&k, SECRET);
    for (size_t i = 0; i < BL_ARRAY_LEN(cases); i++) {
        assert_int_equal(seal_pack_raw(&k, TOPIC, cases[i].json, &buf, &len), 0);
        int rc = seal_unpack(&k, TOPIC, buf, len, &got);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s): got %d, want %d", i, cases[i].json, rc, cases[i].rc);
        free(buf);
    }
    /* The minimal valid one, with unknown extra fields ignored (forward compatible). */
    assert_int_equal(seal_pack_raw(&k, TOPIC,
                                   "{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,"
                                   "\"type\":\"bye\",\"extra\":{\"x\":[1]}}",
                                   &buf, &len),
                     0);
    assert_int_equal(seal_unpack(&k, TOPIC, buf, len, &got), 0);
    seal_msg_clear(&got);
    free(buf);

    /* A body over the limit, sealed raw, is refused on the way in. */
    size_t n = SEAL_MAX_LEN + 200;
    char *json = malloc(n);
    int off = snprintf(json, n,
                       "{\"v\":1,\"from\":\"a\",\"to\":\"b\",\"sid\":\"1\",\"ts\":1,"
                       "\"type\":\"offer\",\"body\":\"");
    memset(json + off, 'x', SEAL_MAX_LEN + 1);
    strcpy(json + off + SEAL_MAX_LEN + 1, "\"}");
    assert_int_equal(seal_pack_raw(&k, TOPIC, json, &buf, &len), 0);
    assert_int_equal(seal_unpack(&k, TOPIC, buf, len, &got), BL_ETOOBIG);
    free(buf);
    free(json);
}

static void test_short_and_version(void **state)
{
    (void)state;
    seal_keys_t k;
    seal_msg_t got;
    uint8_t zeros[SEAL_OVERHEAD + 8] = {0};
    keys(&k, SECRET);
    assert_int_equal(seal_unpack(&k, TOPIC, zeros, 0, &got), BL_ETRUNC);
    assert_int_equal(seal_unpack(&k, TOPIC, zeros, SEAL_OVERHEAD - 1, &got), BL_ETRUNC);
    assert_int_equal(seal_unpack(&k, TOPIC, zeros, sizeof(zeros), &got), BL_EVERSION);
    zeros[0] = 1;
    assert_int_equal(seal_unpack(&k, TOPIC, zeros, sizeof(zeros), &got), BL_EAUTH);
    assert_int_equal(seal_unpack(&k, TOPIC, zeros, SEAL_OVERHEAD, &got), BL_EAUTH);
}

static void test_topics_and_keys(void **state)
{
    (void)state;
    char a1[64], b1[64], a2[64], again[64];
    assert_int_equal(seal_inbox_topic(SECRET, "alpha", a1, sizeof(a1)), 0);
    assert_int_equal(seal_inbox_topic(SECRET, "beta", b1, sizeof(b1)), 0);
    assert_int_equal(seal_inbox_topic("other secret", "alpha", a2, sizeof(a2)), 0);
    assert_int_equal(seal_inbox_topic(SECRET, "alpha", again, sizeof(again)), 0);
    assert_int_equal(strlen(a1), 3 + 32);
    assert_memory_equal(a1, "bl/", 3);
    for (size_t i = 3; i < strlen(a1); i++)
        assert_non_null(strchr("0123456789abcdef", a1[i]));
    assert_string_equal(a1, again);
    assert_string_not_equal(a1, b1);
    assert_string_not_equal(a1, a2);
    assert_null(strstr(a1, "alpha"));
    assert_int_equal(seal_inbox_topic(SECRET, "bad/site", a1, sizeof(a1)), BL_EINVAL);
    assert_int_equal(seal_inbox_topic(SECRET, "alpha", a1, 20), BL_EINVAL);
    assert_int_equal(seal_inbox_topic("", "alpha", a1, sizeof(a1)), BL_EINVAL);

    seal_keys_t k1, k2;
    assert_int_equal(seal_derive(SECRET, &k1), 0);
    assert_int_equal(seal_derive(SECRET, &k2), 0);
    assert_memory_equal(k1.key, k2.key, SEAL_KEY_LEN);
    assert_int_equal(seal_derive("", &k1), BL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_pack_refuses_bad_msg),
        cmocka_unit_test(test_wrong_key_topic_tamper),
        cmocka_unit_test(test_malformed_json),
        cmocka_unit_test(test_short_and_version),
        cmocka_unit_test(test_topics_and_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
