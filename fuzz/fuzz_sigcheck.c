/* SPDX-License-Identifier: MIT */
/* fuzz_sigcheck.c - sigcheck_accept on what a holder of the network secret can put in an
 * inbox: authentic envelopes around arbitrary JSON, so that the checks behind the AEAD
 * (addresses, the base64 and DER of cert and sig, the signature, the replay cache) are
 * reached. First input byte: even = the rest is a sealed payload as received; odd = the
 * rest is JSON text, sealed for alpha's inbox (envelope version 2 when bit 1 is set),
 * then checked. Besides the site bravo, alpha pins a browser, web (profile = browser:
 * its cert is a bare public key, peerid.h). The clock moves with the
 * input so that the cache both fills and prunes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "sigcheck.h"

#define SECRET "fuzz network secret"
#define NOW 1700000000000LL

static config_t cfg;
static seal_keys_t keys;
static char inbox[64];
static sigcheck_t *check;

/* The fingerprint of a fresh P-256 key's SubjectPublicKeyInfo: a browser's pin. */
static void browser_pin(char fp[96])
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    unsigned char *der = NULL, md[32];
    unsigned int n = 0;
    int len = k ? i2d_PUBKEY(k, &der) : -1;
    if (len <= 0 || EVP_Digest(der, (size_t)len, md, &n, EVP_sha256(), NULL) != 1)
        abort();
    for (unsigned i = 0; i < 32; i++)
        snprintf(fp + 3 * i, 4, "%02X%s", md[i], i < 31 ? ":" : "");
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

static void init(void)
{
    cert_t *bravo;
    char web[96];
    if (cert_generate("bravo", &bravo))
        abort();
    browser_pin(web);
    char text[1024];
    snprintf(text, sizeof(text),
             "[site]\nname = alpha\n[signal]\nurl = mqtt://h\nsecret = %s\n"
             "[peer bravo]\nfingerprint = %s\ntopic = #\n"
             "[peer web]\nprofile = browser\nfingerprint = %s\ntopic = #\n",
             SECRET, bravo->fingerprint, web);
    cert_free(bravo);
    if (config_load_data(text, strlen(text), "fuzz", &cfg, NULL, 0) || seal_derive(SECRET, &keys) ||
        seal_inbox_topic(SECRET, "alpha", inbox, sizeof(inbox)))
        abort();
    check = sigcheck_new(&cfg, &keys, inbox, 64);
    if (!check)
        abort();
}

static void check_one(const uint8_t *buf, size_t len, int64_t now)
{
    seal_msg_t m;
    char why[400];
    if (sigcheck_accept(check, buf, len, now, &m, why, sizeof(why)) == SIGCHECK_OK) {
        /* Only a message signed by bravo's or web's key is accepted, and the fuzzer has
         * neither. */
        abort();
    }
    if (m.body || m.cert || m.sig)
        abort(); /* a refusal leaves nothing to free */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int64_t tick;
    if (!check)
        init();
    if (size == 0)
        return 0;
    int64_t now = NOW + (tick++ % 1000) * 1000;
    if ((data[0] & 1) == 0) {
        check_one(data + 1, size - 1, now);
        return 0;
    }
    char *json = malloc(size);
    if (!json)
        return 0;
    memcpy(json, data + 1, size - 1);
    json[size - 1] = '\0';
    uint8_t *sealed;
    size_t sealed_len;
    uint8_t version = (data[0] & 2) ? SEAL_V2_AESGCM : SEAL_V1_CHACHA;
    if (seal_pack_raw_v(&keys, version, inbox, json, &sealed, &sealed_len) == 0) {
        check_one(sealed, sealed_len, now);
        free(sealed);
    }
    free(json);
    return 0;
}
