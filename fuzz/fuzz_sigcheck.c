/* SPDX-License-Identifier: MIT */
/* fuzz_sigcheck.c - sigcheck_accept on what a holder of the network secret can put in an
 * inbox: authentic envelopes around arbitrary JSON, so that the checks behind the AEAD
 * (addresses, the base64 and DER of cert and sig, the signature, the replay cache) are
 * reached. First input byte: even = the rest is a sealed payload as received; odd = the
 * rest is JSON text, sealed for alpha's inbox, then checked. The clock moves with the
 * input so that the cache both fills and prunes. */
#include <stdlib.h>
#include <string.h>

#include "sigcheck.h"

#define SECRET "fuzz network secret"
#define NOW 1700000000000LL

static config_t cfg;
static seal_keys_t keys;
static char inbox[64];
static sigcheck_t *check;

static void init(void)
{
    cert_t *bravo;
    if (cert_generate("bravo", &bravo))
        abort();
    char text[1024];
    snprintf(text, sizeof(text),
             "[site]\nname = alpha\n[signal]\nurl = mqtt://h\nsecret = %s\n"
             "[peer bravo]\nfingerprint = %s\ntopic = #\n",
             SECRET, bravo->fingerprint);
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
        /* Only a message signed by bravo's key is accepted, and the fuzzer has none. */
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
    if (seal_pack_raw(&keys, inbox, json, &sealed, &sealed_len) == 0) {
        check_one(sealed, sealed_len, now);
        free(sealed);
    }
    free(json);
    return 0;
}
