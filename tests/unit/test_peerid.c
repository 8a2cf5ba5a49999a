/* SPDX-License-Identifier: MIT */
/* test_peerid.c - who a pinned peer is, by profile (peerid.h): a site's certificate, a
 * browser's WebCrypto public key; the DTLS fingerprint bound by a browser's signed SDP;
 * `profile` in [peer NAME]; a browser's signalling through sigcheck in envelope v2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "fixture.h"
#include "peerid.h"
#include "sigcheck.h"

#define SECRET "a network secret for the unit test"
#define NOW 1700000000000LL
/* A peer's pinned certificate fingerprint (sha-256, upper case), as a config holds it. */
#define PIN                                                                                        \
    "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:"   \
    "88:99"

static const uint8_t data[] = "brokerless-signal-v1\0web\0home\0abcd\0001\0restart\0";

/* A key as a browser holds it: P-256 (or another curve, to be refused). */
static EVP_PKEY *ec_key(const char *curve)
{
    EVP_PKEY *k = EVP_EC_gen(curve);
    assert_non_null(k);
    return k;
}

static char *spki_b64(EVP_PKEY *k, char fp[96])
{
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(k, &der);
    assert_true(n > 0);
    /* The fingerprint computed here, not by peerid.c: SHA-256 of the DER, "AB:CD:..". */
    unsigned char md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < 32; i++)
        snprintf(fp + 3 * i, 4, "%02X%s", md[i], i < 31 ? ":" : "");
    char *b = g_base64_encode(der, (gsize)n);
    OPENSSL_free(der);
    return b;
}

static char *sign_b64(EVP_PKEY *k, const uint8_t *d, size_t len)
{
    unsigned char sig[128];
    size_t n = sizeof(sig);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(EVP_DigestSign(c, sig, &n, d, len), 1);
    EVP_MD_CTX_free(c);
    return g_base64_encode(sig, n);
}

static void test_site_profile(void **state)
{
    (void)state;
    cert_t *site, *other;
    char fp[96];
    assert_int_equal(cert_generate("home", &site), 0);
    assert_int_equal(cert_generate("other", &other), 0);
    char *cert = fixture_cert_b64(site), *sig = sign_b64(site->key, data, sizeof(data));
    assert_int_equal(
        peerid_verify(PEERID_SITE, site->fingerprint, cert, sig, data, sizeof(data), fp),
        PEERID_OK);
    assert_string_equal(fp, site->fingerprint);
    /* Another byte signed, another pin, another signer. */
    assert_int_equal(peerid_verify(PEERID_SITE, site->fingerprint, cert, sig, data, 10, fp),
                     PEERID_BAD_SIG);
    assert_int_equal(
        peerid_verify(PEERID_SITE, other->fingerprint, cert, sig, data, sizeof(data), fp),
        PEERID_NOT_PINNED);
    assert_string_equal(fp, site->fingerprint);
    char *osig = sign_b64(other->key, data, sizeof(data));
    assert_int_equal(
        peerid_verify(PEERID_SITE, site->fingerprint, cert, osig, data, sizeof(data), fp),
        PEERID_BAD_SIG);
    /* Nothing presented, or not a certificate. */
    assert_int_equal(
        peerid_verify(PEERID_SITE, site->fingerprint, NULL, sig, data, sizeof(data), fp),
        PEERID_NO_KEY);
    assert_string_equal(fp, "none");
    assert_int_equal(
        peerid_verify(PEERID_SITE, site->fingerprint, cert, "", data, sizeof(data), fp),
        PEERID_NO_KEY);
    assert_int_equal(
        peerid_verify(PEERID_SITE, site->fingerprint, "!!!!", sig, data, sizeof(data), fp),
        PEERID_BAD_KEY);
    char spfp[96];
    char *spki = spki_b64(site->key, spfp);
    assert_int_equal(peerid_verify(PEERID_SITE, spfp, spki, sig, data, sizeof(data), fp),
                     PEERID_BAD_KEY);
    g_free(spki);
    g_free(osig);
    g_free(cert);
    g_free(sig);
    cert_free(site);
    cert_free(other);
}

static void test_browser_profile(void **state)
{
    (void)state;
    EVP_PKEY *k = ec_key("P-256"), *wrong = ec_key("P-256"), *p384 = ec_key("P-384");
    char pin[96], wfp[96], p384fp[96], fp[96];
    char *spki = spki_b64(k, pin), *wspki = spki_b64(wrong, wfp),
         *p384spki = spki_b64(p384, p384fp);
    char *sig = sign_b64(k, data, sizeof(data));
    assert_int_equal(peerid_verify(PEERID_BROWSER, pin, spki, sig, data, sizeof(data), fp),
                     PEERID_OK);
    assert_string_equal(fp, pin);
    /* The pin compares without regard to hex case. */
    char lower[96];
    for (int i = 0; i < 96; i++)
        lower[i] = (char)g_ascii_tolower(pin[i]);
    assert_int_equal(peerid_verify(PEERID_BROWSER, lower, spki, sig, data, sizeof(data), fp),
                     PEERID_OK);
    /* The pinned key presented, but signed by another: a wrong signing key. */
    char *wsig = sign_b64(wrong, data, sizeof(data));
    assert_int_equal(peerid_verify(PEERID_BROWSER, pin, spki, wsig, data, sizeof(data), fp),
                     PEERID_BAD_SIG);
    /* Another key presented with its own valid signature: not the pinned one. */
    assert_int_equal(peerid_verify(PEERID_BROWSER, pin, wspki, wsig, data, sizeof(data), fp),
                     PEERID_NOT_PINNED);
    assert_string_equal(fp, wfp);
    /* Only P-256, and only a bare public key: a certificate is not a browser's key. */
    char *psig = sign_b64(p384, data, sizeof(data));
    assert_int_equal(peerid_verify(PEERID_BROWSER, p384fp, p384spki, psig, data, sizeof(data), fp),
                     PEERID_BAD_KEY);
    cert_t *site;
    assert_int_equal(cert_generate("home", &site), 0);
    char *cert = fixture_cert_b64(site), *csig = sign_b64(site->key, data, sizeof(data));
    assert_int_equal(
        peerid_verify(PEERID_BROWSER, site->fingerprint, cert, csig, data, sizeof(data), fp),
        PEERID_BAD_KEY);
    /* Trailing bytes after the DER: refused, not fingerprinted differently. */
    gsize n;
    guchar *der = g_base64_decode(spki, &n);
    guchar *longer = g_malloc(n + 1);
    memcpy(longer, der, n);
    longer[n] = 0;
    char *trailing = g_base64_encode(longer, n + 1);
    assert_int_equal(peerid_verify(PEERID_BROWSER, pin, trailing, sig, data, sizeof(data), fp),
                     PEERID_BAD_KEY);
    /* A signature that is not DER (WebCrypto's raw r||s must be converted by the page). */
    assert_int_equal(peerid_verify(PEERID_BROWSER, pin, spki, "AAAA", data, sizeof(data), fp),
                     PEERID_BAD_SIG);
    assert_int_equal(peerid_verify(PEERID_BROWSER, pin, NULL, NULL, data, sizeof(data), fp),
                     PEERID_NO_KEY);
    g_free(trailing);
    g_free(longer);
    g_free(der);
    g_free(cert);
    g_free(csig);
    cert_free(site);
    g_free(psig);
    g_free(wsig);
    g_free(sig);
    g_free(spki);
    g_free(wspki);
    g_free(p384spki);
    EVP_PKEY_free(k);
    EVP_PKEY_free(wrong);
    EVP_PKEY_free(p384);
}

/* An answer as Chromium writes it: its DTLS certificate is named here, and nowhere else. */
static const char chrome_answer[] =
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:Xk3v\r\na=ice-pwd:8lmJ4mfr2Yx3uwC1CLmM7rhm\r\na=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 "
    "1d:2C:3B:4A:59:68:77:86:95:A4:B3:C2:D1:E0:FF:0E:1D:2C:3B:4A:59:68:77:86:95:A4:B3:C2:D1:"
    "E0:FF:0E\r\n"
    "a=setup:active\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n";

static void test_dtls_binding(void **state)
{
    (void)state;
    sdp_desc_t d;
    char out[96];
    const char *pin = PIN;
    assert_int_equal(sdp_parse(chrome_answer, strlen(chrome_answer), &d), 0);
    peerid_dtls_fingerprint(PEERID_BROWSER, pin, &d, out);
    assert_string_equal(out, "1D:2C:3B:4A:59:68:77:86:95:A4:B3:C2:D1:E0:FF:0E:1D:2C:3B:4A:59:68:"
                             "77:86:95:A4:B3:C2:D1:E0:FF:0E");
    /* A site is held to its pin, whatever its description says. */
    peerid_dtls_fingerprint(PEERID_SITE, pin, &d, out);
    assert_string_equal(out, pin);
    sdp_desc_clear(&d);
}

static int load(const char *peer_section, config_t *cfg, char *err, size_t errlen)
{
    char *text = g_strdup_printf("[site]\nname = home\n[signal]\nurl = mqtt://h\nsecret = %s\n%s",
                                 SECRET, peer_section);
    int rc = config_load_data(text, strlen(text), "t.conf", cfg, err, errlen);
    g_free(text);
    return rc;
}

static void test_config_profile(void **state)
{
    (void)state;
    config_t cfg;
    char err[512];
    const char *fp = PIN;
    char *s = g_strdup_printf("[peer web]\nprofile = browser\nfingerprint = %s\ntopic = # both 1\n"
                              "[peer cabin]\nprofile = site\nfingerprint = %s\ntopic = # both 1\n",
                              fp,
                              "11:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:"
                              "FF:00:11:22:33:44:55:66:77:88:99");
    assert_int_equal(load(s, &cfg, err, sizeof(err)), 0);
    assert_true(cfg.peers[0].browser);
    assert_false(cfg.peers[1].browser);
    config_free(&cfg);
    g_free(s);
    s = g_strdup_printf("[peer web]\nprofile = phone\nfingerprint = %s\ntopic = #\n", fp);
    assert_int_not_equal(load(s, &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "[peer web]"));
    assert_non_null(strstr(err, "profile"));
    assert_non_null(strstr(err, "phone"));
    g_free(s);
    const char *esp = "[peer board]\nmode = esp32-example\ninsecure = true\nrole = peer2\n"
                      "profile = browser\ntopic = #\n";
    assert_int_not_equal(load(esp, &cfg, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "profile"));
}

/* A browser's restart, sealed in envelope v2 and signed with its WebCrypto key, through
 * the site's whole check; and the same signed with a wrong key. */
static void test_sigcheck_browser(void **state)
{
    (void)state;
    EVP_PKEY *k = ec_key("P-256"), *wrong = ec_key("P-256");
    char pin[96], wfp[96];
    char *spki = spki_b64(k, pin), *wspki = spki_b64(wrong, wfp);
    char *text = g_strdup_printf("[site]\nname = home\n[signal]\nurl = mqtt://h\nsecret = %s\n"
                                 "[peer web]\nprofile = browser\nfingerprint = %s\ntopic = #\n",
                                 SECRET, pin);
    config_t cfg;
    char err[256];
    assert_int_equal(config_load_data(text, strlen(text), "t.conf", &cfg, err, sizeof(err)), 0);
    g_free(text);
    seal_keys_t keys;
    char inbox[64];
    assert_int_equal(seal_derive(SECRET, &keys), 0);
    assert_int_equal(seal_inbox_topic(SECRET, "home", inbox, sizeof(inbox)), 0);
    sigcheck_t *chk = sigcheck_new(&cfg, &keys, inbox, 64);

    for (int round = 0; round < 3; round++) {
        seal_msg_t m;
        memset(&m, 0, sizeof(m));
        strcpy(m.from, "web");
        strcpy(m.to, "home");
        strcpy(m.sid, "00");
        strcpy(m.type, "restart");
        m.ts_ms = NOW + round;
        m.version = SEAL_V2_AESGCM;
        cert_t signer = {.key = round == 1 ? wrong : k};
        m.cert = round == 2 ? wspki : spki;
        m.sig = sigcheck_sign(&signer, &m);
        if (round == 2) {
            g_free(m.sig);
            signer.key = wrong;
            m.sig = sigcheck_sign(&signer, &m);
        }
        uint8_t *buf;
        size_t len;
        assert_int_equal(seal_pack(&keys, inbox, &m, &buf, &len), 0);
        g_free(m.sig);
        seal_msg_t got;
        char why[400];
        sigcheck_verdict_t v = sigcheck_accept(chk, buf, len, NOW, &got, why, sizeof(why));
        free(buf);
        if (round == 0) {
            assert_int_equal(v, SIGCHECK_OK);
            assert_int_equal(got.version, SEAL_V2_AESGCM);
            seal_msg_clear(&got);
        } else {
            assert_int_equal(v, SIGCHECK_BAD_SIGNATURE);
            assert_non_null(strstr(why, "web (browser)"));
            assert_non_null(
                strstr(why, round == 1 ? "signature does not verify" : "not the pinned one"));
        }
    }
    sigcheck_free(chk);
    config_free(&cfg);
    g_free(spki);
    g_free(wspki);
    EVP_PKEY_free(k);
    EVP_PKEY_free(wrong);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_site_profile),     cmocka_unit_test(test_browser_profile),
        cmocka_unit_test(test_dtls_binding),     cmocka_unit_test(test_config_profile),
        cmocka_unit_test(test_sigcheck_browser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
