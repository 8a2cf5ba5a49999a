/* SPDX-License-Identifier: MIT */
/* test_sigcheck.c - what a site accepts from its signalling inbox, attacked the ways a
 * holder of the network secret (or a hostile broker that has it) can: replays under new
 * nonces, re-encoded and malleated signatures, junk that pre-empts a genuine message's
 * nonce, floods; and a pinned peer that floods or replays its own old offers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>
#include <openssl/ec.h>
#include <openssl/x509.h>

#include "fixture.h"
#include "sigcheck.h"
#include "../lab/ecdsa_high_s.h"

#define SECRET "a network secret for the unit test"
#define NOW 1700000000000LL
#define MAX_SEEN 256 /* the daemon's MAX_SEEN is larger: same mechanism, faster */

typedef struct fx {
    cert_t *alpha, *bravo, *charlie, *eve; /* eve: a site nobody pinned */
    config_t cfg;
    seal_keys_t keys;
    char inbox[64];
    sigcheck_t *check;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    assert_int_equal(cert_generate("alpha", &fx->alpha), 0);
    assert_int_equal(cert_generate("bravo", &fx->bravo), 0);
    assert_int_equal(cert_generate("charlie", &fx->charlie), 0);
    assert_int_equal(cert_generate("eve", &fx->eve), 0);
    char *text = g_strdup_printf("[site]\nname = alpha\n[signal]\nurl = mqtt://h\nsecret = %s\n"
                                 "[peer bravo]\nfingerprint = %s\ntopic = #\n"
                                 "[peer charlie]\nfingerprint = %s\ntopic = #\n"
                                 "[peer board]\nmode = esp32-example\ninsecure = true\n"
                                 "role = peer2\ntopic = #\n",
                                 SECRET, fx->bravo->fingerprint, fx->charlie->fingerprint);
    char err[256];
    assert_int_equal(config_load_data(text, strlen(text), "t.conf", &fx->cfg, err, sizeof(err)), 0);
    g_free(text);
    assert_int_equal(seal_derive(SECRET, &fx->keys), 0);
    assert_int_equal(seal_inbox_topic(SECRET, "alpha", fx->inbox, sizeof(fx->inbox)), 0);
    fx->check = sigcheck_new(&fx->cfg, &fx->keys, fx->inbox, MAX_SEEN);
    assert_non_null(fx->check);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    sigcheck_free(fx->check);
    config_free(&fx->cfg);
    cert_free(fx->alpha);
    cert_free(fx->bravo);
    cert_free(fx->charlie);
    cert_free(fx->eve);
    free(fx);
    return 0;
}

/* A message `from` -> alpha, signed with `signer`'s key and certificate. */
static void make(seal_msg_t *m, const char *from, const cert_t *signer, const char *type,
                 const char *sid, int64_t ts, const char *body)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->from, sizeof(m->from), "%s", from);
    snprintf(m->to, sizeof(m->to), "alpha");
    snprintf(m->sid, sizeof(m->sid), "%s", sid);
    snprintf(m->type, sizeof(m->type), "%s", type);
    m->ts_ms = ts;
    m->body = body ? g_strdup(body) : NULL;
    m->cert = fixture_cert_b64(signer);
    m->sig = sigcheck_sign(signer, m);
    assert_non_null(m->sig);
}

static void drop(seal_msg_t *m)
{
    g_free(m->body);
    g_free(m->cert);
    g_free(m->sig);
    memset(m, 0, sizeof(*m));
}

/* Sealed for alpha's inbox under a fresh random nonce. */
static GBytes *seal(fx_t *fx, const seal_msg_t *m)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(seal_pack(&fx->keys, fx->inbox, m, &buf, &len), 0);
    return g_bytes_new_take(buf, len);
}

static sigcheck_verdict_t accept_at(fx_t *fx, GBytes *b, int64_t now)
{
    seal_msg_t got;
    char why[400];
    gsize n;
    const uint8_t *p = g_bytes_get_data(b, &n);
    sigcheck_verdict_t v = sigcheck_accept(fx->check, p, n, now, &got, why, sizeof(why));
    if (getenv("BL_SHOW_ERRORS"))
        print_message("verdict %d: %s\n", v, why);
    seal_msg_clear(&got);
    return v;
}

static sigcheck_verdict_t accept_msg(fx_t *fx, const seal_msg_t *m, int64_t now)
{
    GBytes *b = seal(fx, m);
    sigcheck_verdict_t v = accept_at(fx, b, now);
    g_bytes_unref(b);
    return v;
}

/* A message made as make() makes it, offered at `now`: the verdict. */
static sigcheck_verdict_t offer(fx_t *fx, const char *from, const cert_t *signer, const char *type,
                                const char *sid, int64_t ts, const char *body, int64_t now)
{
    seal_msg_t m;
    make(&m, from, signer, type, sid, ts, body);
    sigcheck_verdict_t v = accept_msg(fx, &m, now);
    drop(&m);
    return v;
}

/* The same signature, its base64 text re-encoded: GLib's decoder skips a line break. */
static char *b64_with_newline(const char *b64)
{
    return g_strdup_printf("%.8s\n%s", b64, b64 + 8);
}

/* Issue 12 item 8: a captured message re-sealed under a new nonce, with its signature
 * re-encoded or malleated, is still the same message. */
static void test_replays(void **state)
{
    fx_t *fx = *state;
    seal_msg_t m;
    make(&m, "bravo", fx->bravo, "restart", "00", NOW, NULL);
    GBytes *orig = seal(fx, &m);
    assert_int_equal(accept_at(fx, orig, NOW + 10), SIGCHECK_OK);
    assert_int_equal(accept_at(fx, orig, NOW + 20), SIGCHECK_REPLAYED); /* the same bytes */
    assert_int_equal(accept_msg(fx, &m, NOW + 30), SIGCHECK_REPLAYED);  /* a new nonce */

    char *sig = m.sig;
    m.sig = b64_with_newline(sig);
    assert_int_equal(accept_msg(fx, &m, NOW + 40), SIGCHECK_REPLAYED);
    g_free(m.sig);
    m.sig = ecdsa_high_s(sig);
    assert_non_null(m.sig);
    assert_string_not_equal(m.sig, sig);
    assert_int_equal(accept_msg(fx, &m, NOW + 50), SIGCHECK_REPLAYED);
    g_free(m.sig);
    m.sig = sig;

    /* After the window the capture is stale, not new. */
    assert_int_equal(accept_at(fx, orig, NOW + SEAL_MAX_AGE_MS + 1), SIGCHECK_STALE);
    g_bytes_unref(orig);
    drop(&m);
}

/* m sealed for alpha under a nonce of our choosing, as a holder of the secret can (with
 * its own code: seal_pack always draws a random one). */
static GBytes *seal_with_nonce(fx_t *fx, const seal_msg_t *m, const uint8_t *nonce)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(seal_pack(&fx->keys, fx->inbox, m, &buf, &len), 0);
    seal_msg_t tmp;
    assert_int_equal(seal_unpack(&fx->keys, fx->inbox, buf, len, &tmp), 0);
    seal_msg_clear(&tmp);
    size_t n = len - SEAL_OVERHEAD;
    uint8_t *pt = malloc(n), *out = malloc(len);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl;
    const uint8_t ver = 1;
    /* decrypt with the original nonce */
    assert_int_equal(EVP_DecryptInit_ex(c, EVP_chacha20_poly1305(), NULL, fx->keys.key, buf + 1),
                     1);
    assert_int_equal(EVP_DecryptUpdate(c, NULL, &outl, &ver, 1), 1);
    assert_int_equal(
        EVP_DecryptUpdate(c, NULL, &outl, (const uint8_t *)fx->inbox, (int)strlen(fx->inbox)), 1);
    assert_int_equal(EVP_DecryptUpdate(c, pt, &outl, buf + 1 + SEAL_NONCE_LEN, (int)n), 1);
    /* encrypt under the chosen one */
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_chacha20_poly1305(), NULL, fx->keys.key, nonce), 1);
    assert_int_equal(EVP_EncryptUpdate(c, NULL, &outl, &ver, 1), 1);
    assert_int_equal(
        EVP_EncryptUpdate(c, NULL, &outl, (const uint8_t *)fx->inbox, (int)strlen(fx->inbox)), 1);
    out[0] = 1;
    memcpy(out + 1, nonce, SEAL_NONCE_LEN);
    assert_int_equal(EVP_EncryptUpdate(c, out + 1 + SEAL_NONCE_LEN, &outl, pt, (int)n), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, out + 1 + SEAL_NONCE_LEN + n, &outl), 1);
    assert_int_equal(
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, SEAL_TAG_LEN, out + 1 + SEAL_NONCE_LEN + n),
        1);
    EVP_CIPHER_CTX_free(c);
    free(pt);
    free(buf);
    return g_bytes_new_take(out, len);
}

/* Issue 12 item 6: junk from a holder of the secret is refused before anything is
 * remembered of it. The nonce used to be recorded first: junk sent under the nonce of a
 * genuine message that a broker held back made the genuine one a "replay". And 3,000
 * junk messages leave nothing behind (the cache holds MAX_SEEN). */
static void test_junk_is_not_remembered(void **state)
{
    fx_t *fx = *state;
    seal_msg_t genuine, junk;
    make(&genuine, "bravo", fx->bravo, "restart", "00", NOW, NULL);
    GBytes *g = seal(fx, &genuine);
    const uint8_t *nonce = (const uint8_t *)g_bytes_get_data(g, NULL) + 1;

    /* The same nonce, a signature that is not bravo's. */
    make(&junk, "bravo", fx->eve, "restart", "00", NOW, NULL);
    GBytes *j = seal_with_nonce(fx, &junk, nonce);
    assert_int_equal(accept_at(fx, j, NOW + 1), SIGCHECK_BAD_SIGNATURE);
    /* And junk of the very bytes bravo signed, but with another signature. */
    char *sig = junk.sig;
    junk.sig = g_strdup(genuine.sig);
    junk.sig[10] = junk.sig[10] == 'A' ? 'B' : 'A';
    g_bytes_unref(j);
    j = seal_with_nonce(fx, &junk, nonce);
    g_free(junk.sig);
    junk.sig = sig;
    assert_int_equal(accept_at(fx, j, NOW + 2), SIGCHECK_BAD_SIGNATURE);
    assert_int_equal(accept_at(fx, g, NOW + 3), SIGCHECK_OK);
    g_bytes_unref(j);
    g_bytes_unref(g);
    drop(&junk);

    /* A flood of junk, each unique: eve's key, unknown senders, wrong addressee. */
    for (int i = 0; i < 3000; i++) {
        seal_msg_t x = genuine;
        char sid[17];
        snprintf(sid, sizeof(sid), "%x", i + 1);
        snprintf(x.sid, sizeof(x.sid), "%s", sid);
        if (i % 3 == 1)
            snprintf(x.from, sizeof(x.from), "mallory%d", i);
        if (i % 3 == 2)
            snprintf(x.to, sizeof(x.to), "someone");
        sigcheck_verdict_t want = i % 3 == 0   ? SIGCHECK_BAD_SIGNATURE
                                  : i % 3 == 1 ? SIGCHECK_UNKNOWN_PEER
                                               : SIGCHECK_MISDIRECTED;
        if (accept_msg(fx, &x, NOW + 10) != want)
            fail_msg("junk %d not refused as %d", i, want);
    }
    /* Nothing of it was kept: bravo can still send MAX_SEEN - 1 more messages. */
    for (int i = 0; i < MAX_SEEN - 1; i++) {
        char sid[17];
        snprintf(sid, sizeof(sid), "c%x", i);
        if (offer(fx, "bravo", fx->bravo, "cand", sid, NOW + i % 1000,
                  "a=candidate:1 1 UDP 1 x 1 typ host", NOW + 1000) != SIGCHECK_OK)
            fail_msg("genuine message %d refused", i);
    }
    drop(&genuine);
}

/* A pinned peer sending more than signalling needs fills only its own cache; its
 * entries go once their messages are stale, and it is heard again. */
static void test_flood_capped_per_peer(void **state)
{
    fx_t *fx = *state;
    for (int i = 0; i <= MAX_SEEN; i++) {
        char sid[17];
        snprintf(sid, sizeof(sid), "%x", i + 1);
        sigcheck_verdict_t v = offer(fx, "bravo", fx->bravo, "eoc", sid, NOW, NULL, NOW);
        if (v != (i < MAX_SEEN ? SIGCHECK_OK : SIGCHECK_FLOOD))
            fail_msg("message %d: verdict %d", i, v);
    }
    assert_int_equal(offer(fx, "charlie", fx->charlie, "eoc", "1", NOW, NULL, NOW), SIGCHECK_OK);
    int64_t later = NOW + SEAL_MAX_AGE_MS + 1;
    assert_int_equal(offer(fx, "bravo", fx->bravo, "eoc", "ffff", later, NULL, later), SIGCHECK_OK);
}

/* An offer or restart must be newer than the last one accepted from that peer. */
static void test_session_changes_in_order(void **state)
{
    fx_t *fx = *state;
    static const struct {
        bool charlie; /* else bravo */
        const char *type, *sid;
        int64_t ts;
        const char *body;
        sigcheck_verdict_t want; /* offered at NOW */
    } seq[] = {
        {false, "restart", "00", NOW, NULL, SIGCHECK_OK},
        {false, "restart", "01", NOW, NULL, SIGCHECK_LATE}, /* same ms, other bytes */
        {false, "offer", "02", NOW - 5, "v=0", SIGCHECK_LATE},
        {false, "cand", "02", NOW - 5, "a=candidate:x", SIGCHECK_OK}, /* not ordered */
        {false, "offer", "03", NOW + 1, "v=0", SIGCHECK_OK},
        {true, "restart", "00", NOW - 5, NULL, SIGCHECK_OK}, /* per peer */
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        sigcheck_verdict_t v = offer(fx, seq[i].charlie ? "charlie" : "bravo",
                                     seq[i].charlie ? fx->charlie : fx->bravo, seq[i].type,
                                     seq[i].sid, seq[i].ts, seq[i].body, NOW);
        if (v != seq[i].want)
            fail_msg("message %zu (%s %s): verdict %d, want %d", i, seq[i].type, seq[i].sid, v,
                     seq[i].want);
    }
}

static void test_other_refusals(void **state)
{
    fx_t *fx = *state;
    seal_msg_t m;
    make(&m, "bravo", fx->bravo, "bye", "1", NOW, NULL);
    assert_int_equal(accept_msg(fx, &m, NOW + SEAL_MAX_AGE_MS + 1), SIGCHECK_STALE);
    assert_int_equal(accept_msg(fx, &m, NOW - SEAL_MAX_AGE_MS - 1), SIGCHECK_STALE);
    g_free(m.cert);
    m.cert = NULL;
    assert_int_equal(accept_msg(fx, &m, NOW), SIGCHECK_BAD_SIGNATURE);
    drop(&m);
    make(&m, "alpha", fx->alpha, "bye", "1", NOW, NULL); /* from ourselves */
    assert_int_equal(accept_msg(fx, &m, NOW), SIGCHECK_MISDIRECTED);
    drop(&m);
    /* An esp32-example peer has no key: a sealed message in its name, whoever signs
     * it, comes from no peer we know. */
    make(&m, "board", fx->eve, "bye", "1", NOW, NULL);
    assert_int_equal(accept_msg(fx, &m, NOW), SIGCHECK_UNKNOWN_PEER);
    drop(&m);

    static const uint8_t garbage[40] = {1};
    seal_msg_t got;
    char why[64];
    assert_int_equal(
        sigcheck_accept(fx->check, garbage, sizeof(garbage), NOW, &got, why, sizeof(why)),
        SIGCHECK_BAD);
    assert_string_equal(why, "authentication failed");
    assert_int_equal(sigcheck_accept(fx->check, garbage, 3, NOW, &got, NULL, 0), SIGCHECK_BAD);

    /* Signed correctly, but moved to another inbox: the AEAD refuses it. */
    make(&m, "bravo", fx->bravo, "bye", "1", NOW, NULL);
    uint8_t *buf;
    size_t len;
    char other[64];
    assert_int_equal(seal_inbox_topic(SECRET, "charlie", other, sizeof(other)), 0);
    assert_int_equal(seal_pack(&fx->keys, other, &m, &buf, &len), 0);
    assert_int_equal(sigcheck_accept(fx->check, buf, len, NOW, &got, NULL, 0), SIGCHECK_BAD);
    free(buf);
    drop(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junk_is_not_remembered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood_capped_per_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_changes_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
