/* SPDX-License-Identifier: MIT */
/* blforge.c - what a holder of the network secret can do to signalling, for the lab
 * (issue 12): open what it captures on the broker, change it, and seal it again under a
 * nonce of its choosing. It has no site key: it cannot sign. The secret comes from the
 * environment (BL_SECRET), payloads go in and out as hex (mosquitto_sub -F %x).
 *
 *   blforge inbox SITE               the inbox topic of SITE
 *   blforge open TOPIC HEX           the JSON inside a sealed payload
 *   blforge nonce HEX                its nonce, as hex
 *   blforge seal TOPIC [NONCE] <JSON a sealed payload (hex), under NONCE or a random one
 *   blforge seal2 TOPIC <JSON        the same in envelope version 2 (AES-256-GCM)
 *   blforge mutate MODE <JSON        the same message with its signature changed:
 *     b64nl   the same signature, its base64 text with a line break (read alike)
 *     highs   the other valid ECDSA signature of the same bytes, (r, n - s)
 *     badsig  a signature that does not verify
 *
 * Test code, built only under tests/; it uses the core library's key derivation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <glib.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "seal.h"
#include "ecdsa_high_s.h"

static seal_keys_t keys;

static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex) / 2;
    uint8_t *b = g_malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        sscanf(hex + 2 * i, "%2hhx", &b[i]);
    *len = n;
    return b;
}

static void print_hex(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    printf("\n");
}

/* ChaCha20-Poly1305 as docs/PROTOCOL.md "Envelope" says: AAD = version byte + topic. */
static int aead(bool enc, const char *topic, const uint8_t *nonce, const uint8_t *in, size_t n,
                uint8_t *out, uint8_t *tag)
{
    const uint8_t ver = 1;
    int l, ok;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    ok = EVP_CipherInit_ex(c, EVP_chacha20_poly1305(), NULL, keys.key, nonce, enc) &&
         EVP_CipherUpdate(c, NULL, &l, &ver, 1) &&
         EVP_CipherUpdate(c, NULL, &l, (const uint8_t *)topic, (int)strlen(topic)) &&
         EVP_CipherUpdate(c, out, &l, in, (int)n) &&
         (enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, SEAL_TAG_LEN, tag)) &&
         EVP_CipherFinal_ex(c, out + n, &l) &&
         (!enc || EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, SEAL_TAG_LEN, tag));
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

static int cmd_open(const char *topic, const char *hex)
{
    size_t len;
    uint8_t *b = unhex(hex, &len);
    if (len < SEAL_OVERHEAD)
        return 1;
    size_t n = len - SEAL_OVERHEAD;
    char *pt = g_malloc0(n + 16);
    int rc =
        aead(false, topic, b + 1, b + 1 + SEAL_NONCE_LEN, n, (uint8_t *)pt, b + len - SEAL_TAG_LEN);
    if (!rc)
        printf("%s\n", pt);
    g_free(pt);
    g_free(b);
    return rc ? 1 : 0;
}

static char *read_stdin(void)
{
    GString *s = g_string_new(NULL);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
        g_string_append_len(s, buf, (gssize)n);
    while (s->len && (s->str[s->len - 1] == '\n' || s->str[s->len - 1] == '\r'))
        g_string_truncate(s, s->len - 1);
    return g_string_free(s, FALSE);
}

static int cmd_seal(const char *topic, const char *nonce_hex)
{
    char *json = read_stdin();
    size_t n = strlen(json), nl;
    uint8_t *out = g_malloc(SEAL_OVERHEAD + n), *nonce = out + 1;
    out[0] = 1;
    if (nonce_hex) {
        uint8_t *given = unhex(nonce_hex, &nl);
        if (nl != SEAL_NONCE_LEN)
            return 1;
        memcpy(nonce, given, SEAL_NONCE_LEN);
        g_free(given);
    } else {
        RAND_bytes(nonce, SEAL_NONCE_LEN);
    }
    uint8_t *ct = nonce + SEAL_NONCE_LEN;
    if (aead(true, topic, nonce, (const uint8_t *)json, n, ct, ct + n))
        return 1;
    print_hex(out, SEAL_OVERHEAD + n);
    g_free(out);
    g_free(json);
    return 0;
}

/* Envelope version 2, as the site and the browser page seal it (seal.c). */
static int cmd_seal2(const char *topic)
{
    char *json = read_stdin();
    uint8_t *out = NULL;
    size_t len = 0;
    int rc = seal_pack_raw_v(&keys, SEAL_V2_AESGCM, topic, json, &out, &len);
    if (!rc)
        print_hex(out, len);
    free(out);
    g_free(json);
    return rc ? 1 : 0;
}

static int cmd_mutate(const char *mode)
{
    char *json = read_stdin();
    cJSON *o = cJSON_Parse(json);
    cJSON *sig = o ? cJSON_GetObjectItemCaseSensitive(o, "sig") : NULL;
    if (!cJSON_IsString(sig))
        return 1;
    const char *s = sig->valuestring;
    char *now = NULL;
    if (!strcmp(mode, "b64nl"))
        now = g_strdup_printf("%.8s\n%s", s, s + 8);
    else if (!strcmp(mode, "highs"))
        now = ecdsa_high_s(s);
    else if (!strcmp(mode, "badsig"))
        now = g_strdup_printf("%.10s%c%s", s, s[10] == 'A' ? 'B' : 'A', s + 11);
    if (!now)
        return 1;
    cJSON_ReplaceItemInObjectCaseSensitive(o, "sig", cJSON_CreateString(now));
    char *out = cJSON_PrintUnformatted(o);
    printf("%s\n", out);
    cJSON_free(out);
    cJSON_Delete(o);
    g_free(now);
    g_free(json);
    return 0;
}

int main(int argc, char **argv)
{
    const char *secret = getenv("BL_SECRET");
    if (!secret || argc < 3 || seal_derive(secret, &keys)) {
        fprintf(stderr, "usage: BL_SECRET=... blforge inbox|open|nonce|seal|mutate ...\n");
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "inbox")) {
        char topic[64];
        if (seal_inbox_topic(secret, argv[2], topic, sizeof(topic)))
            return 1;
        printf("%s\n", topic);
        return 0;
    }
    if (!strcmp(cmd, "open") && argc == 4)
        return cmd_open(argv[2], argv[3]);
    if (!strcmp(cmd, "nonce")) {
        size_t len;
        uint8_t *b = unhex(argv[2], &len);
        if (len < SEAL_OVERHEAD)
            return 1;
        print_hex(b + 1, SEAL_NONCE_LEN);
        g_free(b);
        return 0;
    }
    if (!strcmp(cmd, "seal"))
        return cmd_seal(argv[2], argc > 3 ? argv[3] : NULL);
    if (!strcmp(cmd, "seal2"))
        return cmd_seal2(argv[2]);
    if (!strcmp(cmd, "mutate"))
        return cmd_mutate(argv[2]);
    fprintf(stderr, "blforge: unknown command %s\n", cmd);
    return 2;
}
