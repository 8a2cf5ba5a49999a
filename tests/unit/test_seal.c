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

/* One message through the envelope: the keys, the message, its sealed bytes and what they
 * open to. */
typedef struct {
    seal_keys_t k;
    seal_msg_t m, got;
    uint8_t *buf;
    size_t len;
} sealed_t;

/* Seal s->m under s->k for TOPIC into s->buf and open it again into s->got: both succeed. */
static void pack_and_open(sealed_t *s)
{
    assert_int_equal(seal_pack(&s->k, TOPIC, &s->m, &s->buf, &s->len), 0);
    assert_int_equal(seal_unpack(&s->k, TOPIC, s->buf, s->len, &s->got), 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    sealed_t s;
    keys(&s.k, SECRET);
    make_msg(&s.m, "offer", sdp);
    pack_and_open(&s);
    assert_string_equal(s.got.from, "alpha-site");
    assert_string_equal(s.got.to, "beta.site");
    assert_string_equal(s.got.sid, "00ff11ee22dd33cc");
    assert_string_equal(s.got.type, "offer");
    assert_string_equal(s.got.body, sdp);
    assert_true(s.got.ts_ms == NOW);
    assert_memory_equal(s.got.nonce, s.buf + 1, SEAL_NONCE_LEN);
    /* Nothing readable goes over the broker. */
    assert_false(contains(s.buf, s.len, "alpha-site"));
    assert_false(contains(s.buf, s.len, "beta.site"));
    assert_false(contains(s.buf, s.len, "ice-pwd"));
    assert_false(contains(s.buf, s.len, "offer"));
    seal_msg_clear(&s.got);
    free(s.buf);

    /* A body-less type and a candidate line. */
    make_msg(&s.m, "eoc", NULL);
    pack_and_open(&s);
    assert_null(s.got.body);
    assert_string_equal(s.got.type, "eoc");
    seal_msg_clear(&s.got);
    free(s.buf);
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

/* buf (sealed for TOPIC with k, len bytes; freed here) opens only as it is: another key,
 * another topic (a message moved to another inbox), a flipped bit anywhere (in the version
 * byte: an unknown version) and every truncation are refused. */
static void assert_only_authentic(const seal_keys_t *k, const seal_keys_t *other, uint8_t *buf,
                                  size_t len)
{
    seal_msg_t got;
    assert_int_equal(seal_unpack(other, TOPIC, buf, len, &got), BL_EAUTH);
    assert_int_equal(seal_unpack(k, "bl/ffffffffffffffffffffffffffffffff", buf, len, &got),
                     BL_EAUTH);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            buf[i] ^= (uint8_t)(1u << bit);
            int rc = seal_unpack(k, TOPIC, buf, len, &got);
            assert_true(rc == (i == 0 ? BL_EVERSION : BL_EAUTH));
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    for (size_t n = 0; n < len; n++)
        assert_true(seal_unpack(k, TOPIC, buf, n, &got) < 0);
    assert_int_equal(seal_unpack(k, TOPIC, buf, len, &got), 0);
    seal_msg_clear(&got);
    free(buf);
}

/* A candidate line sealed under k in envelope VERSION (0: the default) opens only as it is
 * (assert_only_authentic, with other as the wrong key). */
static void assert_candidate_only_authentic(const seal_keys_t *k, const seal_keys_t *other,
                                            uint8_t version)
{
    seal_msg_t m;
    uint8_t *buf;
    size_t len;
    make_msg(&m, "cand", "a=candidate:1 1 UDP 2122317823 198.18.0.1 40000 typ host");
    m.version = version;
    assert_int_equal(seal_pack(k, TOPIC, &m, &buf, &len), 0);
    assert_only_authentic(k, other, buf, len);
}

static void test_wrong_key_topic_tamper(void **state)
{
    (void)state;
    seal_keys_t k, other;
    keys(&k, SECRET);
    keys(&other, "another secret");
    assert_memory_not_equal(k.key, other.key, SEAL_KEY_LEN);
    assert_candidate_only_authentic(&k, &other, 0);
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

/* Envelope version 2: AES-256-GCM under the same key, AAD = 0x02 || topic. */
static void test_v2_round_trip(void **state)
{
    (void)state;
    sealed_t s;
    keys(&s.k, SECRET);
    make_msg(&s.m, "offer", sdp);
    s.m.version = SEAL_V2_AESGCM;
    pack_and_open(&s);
    assert_int_equal(s.buf[0], SEAL_V2_AESGCM);
    assert_int_equal(s.got.version, SEAL_V2_AESGCM);
    assert_string_equal(s.got.from, "alpha-site");
    assert_string_equal(s.got.type, "offer");
    assert_string_equal(s.got.body, sdp);
    assert_true(s.got.ts_ms == NOW);
    assert_false(contains(s.buf, s.len, "alpha-site"));
    assert_false(contains(s.buf, s.len, "ice-pwd"));
    /* What was received in version 2 packs again in version 2. */
    uint8_t *again;
    size_t again_len;
    assert_int_equal(seal_pack(&s.k, TOPIC, &s.got, &again, &again_len), 0);
    assert_int_equal(again[0], SEAL_V2_AESGCM);
    free(again);
    seal_msg_clear(&s.got);
    free(s.buf);

    /* Version 1 stays the default, and says so. */
    make_msg(&s.m, "eoc", NULL);
    pack_and_open(&s);
    assert_int_equal(s.buf[0], SEAL_V1_CHACHA);
    assert_int_equal(s.got.version, SEAL_V1_CHACHA);
    seal_msg_clear(&s.got);
    free(s.buf);
}

static void test_v2_tamper_refused(void **state)
{
    (void)state;
    seal_keys_t k, other;
    keys(&k, SECRET);
    keys(&other, "another secret");
    assert_candidate_only_authentic(&k, &other, SEAL_V2_AESGCM);
}

/* The version byte is authenticated and names the cipher: a message relabelled to the
 * other known version fails authentication, an unknown version is refused before any
 * decryption, and neither packing call accepts one. */
static void test_v2_wrong_version_refused(void **state)
{
    (void)state;
    seal_keys_t k;
    seal_msg_t m, got;
    uint8_t *buf;
    size_t len;
    keys(&k, SECRET);
    make_msg(&m, "bye", NULL);
    for (uint8_t v = SEAL_V1_CHACHA; v <= SEAL_V2_AESGCM; v++) {
        m.version = v;
        assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), 0);
        buf[0] = v == SEAL_V1_CHACHA ? SEAL_V2_AESGCM : SEAL_V1_CHACHA;
        assert_int_equal(seal_unpack(&k, TOPIC, buf, len, &got), BL_EAUTH);
        for (unsigned bad = 0; bad < 256; bad++) {
            if (bad == SEAL_V1_CHACHA || bad == SEAL_V2_AESGCM)
                continue;
            buf[0] = (uint8_t)bad;
            assert_int_equal(seal_unpack(&k, TOPIC, buf, len, &got), BL_EVERSION);
        }
        free(buf);
    }
    m.version = 3;
    buf = NULL;
    assert_int_equal(seal_pack(&k, TOPIC, &m, &buf, &len), BL_EVERSION);
    assert_null(buf);
    assert_int_equal(seal_pack_raw_v(&k, 0, TOPIC, "{}", &buf, &len), BL_EVERSION);
    assert_null(buf);
}

/* A version 2 envelope made by another implementation (Python's cryptography: HKDF-SHA256
 * of "fuzz secret", AESGCM, nonce 00..0b): what a browser's WebCrypto makes the same
 * way. It is also fuzz/corpus/fuzz_seal/sealed_answer_v2. */
static const char kat_v2_hex[] =
    "02000102030405060708090a0be96e1b671b872caf2cc272631a2db66a0e9ade8d7ab0cd"
    "53a7c4adce9d5d2a57ed4f5f3f54c9955e8efa7224f9ec5ea244d7543809ede35c08d62e"
    "86da95c09e10fd4b73af0e7dc7f698f8b8d7db33676bc8b9d0b9aa91caf43d98c130da60"
    "ff1091c53412a01028ab1118986a31800cdec5d5ed77fd9df248f7baa144aa3c9a36617d"
    "a7ce30cb0b091bb51e66c8c0055ba606baa8c51a6d2aa60866e6f1ff83f7190c58a3e51b"
    "7a2c151a92b8a94b7917c9a3d807b96f80640ee63af3b307886151e3b6788abb76bd13eb"
    "f75816131d793be119ad";

static void test_v2_known_answer(void **state)
{
    (void)state;
    seal_keys_t k;
    seal_msg_t got;
    uint8_t buf[sizeof(kat_v2_hex) / 2];
    size_t len = strlen(kat_v2_hex) / 2;
    for (size_t i = 0; i < len; i++) {
        unsigned byte;
        assert_int_equal(sscanf(kat_v2_hex + 2 * i, "%2x", &byte), 1);
        buf[i] = (uint8_t)byte;
    }
    keys(&k, "fuzz secret");
    assert_int_equal(seal_unpack(&k, "bl/0123456789abcdef0123456789abcdef", buf, len, &got), 0);
    assert_int_equal(got.version, SEAL_V2_AESGCM);
    assert_string_equal(got.from, "browser1");
    assert_string_equal(got.to, "home");
    assert_string_equal(got.type, "answer");
    assert_string_equal(got.cert, "AAAA");
    seal_msg_clear(&got);
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
        cmocka_unit_test(test_v2_round_trip),
        cmocka_unit_test(test_v2_tamper_refused),
        cmocka_unit_test(test_v2_wrong_version_refused),
        cmocka_unit_test(test_v2_known_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
