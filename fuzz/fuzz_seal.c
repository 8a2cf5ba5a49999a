/* SPDX-License-Identifier: MIT */
/* fuzz_seal.c - seal_unpack on arbitrary bytes, and on authentic envelopes around
 * arbitrary JSON so the parser behind the AEAD is reached too.
 *
 * First input byte selects the mode: even = the rest is a sealed message as received from
 * the broker (either envelope version); odd = the rest is JSON text, sealed with the
 * fixed key, then unpacked: in envelope version 1 (ChaCha20-Poly1305) when bit 1 is
 * clear, version 2 (AES-256-GCM) when it is set. */
#include <stdlib.h>
#include <string.h>

#include "seal.h"

static seal_keys_t keys;
static bool have_keys;
static const char topic[] = "bl/0123456789abcdef0123456789abcdef";

static void check(const uint8_t *buf, size_t len)
{
    seal_msg_t m;
    int rc = seal_unpack(&keys, topic, buf, len, &m);
    if (rc == 0) {
        /* Whatever is accepted must pack again (it passed the same validation). */
        uint8_t *out;
        size_t out_len;
        if (!bl_site_name_valid(m.from) || !bl_site_name_valid(m.to) ||
            (m.body && strlen(m.body) > SEAL_MAX_LEN))
            abort();
        if (m.version != SEAL_V1_CHACHA && m.version != SEAL_V2_AESGCM)
            abort();
        if (seal_pack(&keys, topic, &m, &out, &out_len) != 0 || out[0] != m.version)
            abort();
        free(out);
        seal_msg_clear(&m);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!have_keys && seal_derive("fuzz secret", &keys) != 0)
        abort();
    have_keys = true;
    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0) {
        check(data + 1, size - 1);
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
    if (seal_pack_raw_v(&keys, version, topic, json, &sealed, &sealed_len) == 0) {
        check(sealed, sealed_len);
        free(sealed);
    }
    free(json);
    return 0;
}
