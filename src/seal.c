/* SPDX-License-Identifier: MIT */
/* seal.c - sealed signalling envelopes (docs/PROTOCOL.md "Signalling").
 *
 * Pure: no I/O, no clocks.
 * Keys: HKDF-SHA256 (RFC 5869) through OpenSSL 3's EVP_KDF. AEAD: ChaCha20-Poly1305
 * (RFC 8439, envelope version 1) or AES-256-GCM (version 2) through EVP. Body: JSON
 * through cJSON. */
#include "seal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <glib.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#define SEAL_JSON_VERSION 1 /* the "v" of the JSON body, the same in both envelopes */
#define SEAL_SALT "brokerless/v1"
#define SEAL_INBOX_LEN 16

static const char *const seal_types[] = {"offer", "answer", "cand", "eoc", "bye", "restart"};

/* RFC 5869 extract-and-expand with the fixed salt; info is the purpose label. */
static int seal_hkdf(const char *secret, const char *info, size_t info_len, uint8_t *out,
                     size_t out_len)
{
    if (!secret || !*secret)
        return BL_EINVAL;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    EVP_KDF_free(kdf);
    if (!kctx)
        return BL_EIO;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, strlen(secret)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)SEAL_SALT,
                                          strlen(SEAL_SALT)),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(kctx, out, out_len, params);
    EVP_KDF_CTX_free(kctx);
    return ok == 1 ? 0 : BL_EIO;
}

static void seal_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int seal_derive(const char *secret, seal_keys_t *out)
{
    memset(out, 0, sizeof(*out));
    int rc = seal_hkdf(secret, "signal key", strlen("signal key"), out->key, SEAL_KEY_LEN);
    if (rc)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

int seal_inbox_topic(const char *secret, const char *site, char *out, size_t outlen)
{
    char info[6 + BL_SITE_NAME_MAX + 1];
    uint8_t h[SEAL_INBOX_LEN];
    if (!bl_site_name_valid(site) || outlen < 3 + 2 * SEAL_INBOX_LEN + 1)
        return BL_EINVAL;
    int n = snprintf(info, sizeof(info), "inbox:%s", site);
    int rc = seal_hkdf(secret, info, (size_t)n, h, sizeof(h));
    if (rc)
        return rc;
    memcpy(out, "bl/", 3);
    seal_hex(h, sizeof(h), out + 3);
    return 0;
}

/* The AEAD of an envelope version: ChaCha20-Poly1305 (RFC 8439) for 1, AES-256-GCM
 * (NIST SP 800-38D, what WebCrypto offers) for 2; NULL for any other. */
static const EVP_CIPHER *seal_cipher(uint8_t ver)
{
    if (ver == SEAL_V1_CHACHA)
        return EVP_chacha20_poly1305();
    if (ver == SEAL_V2_AESGCM)
        return EVP_aes_256_gcm();
    return NULL;
}

/* The AEAD of version ver over pt with AAD = version byte || topic (RFC 8439 2.8). ct
 * receives len bytes, tag SEAL_TAG_LEN. Returns 0, BL_EAUTH (decrypt: tag mismatch),
 * BL_EVERSION or BL_EIO. */
static int seal_aead(bool enc, uint8_t ver, const uint8_t *key, const uint8_t *nonce,
                     const char *topic, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    const EVP_CIPHER *cipher = seal_cipher(ver);
    size_t tlen = strlen(topic);
    int outl = 0, rc = BL_EIO;
    if (!cipher)
        return BL_EVERSION;
    if (len > INT_MAX || tlen > INT_MAX)
        return BL_ETOOBIG;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        return BL_ENOMEM;
    if (EVP_CipherInit_ex(c, cipher, NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1 ||
        EVP_CipherUpdate(c, NULL, &outl, &ver, 1) != 1 ||
        EVP_CipherUpdate(c, NULL, &outl, (const uint8_t *)topic, (int)tlen) != 1)
        goto out;
    if (len > 0 && EVP_CipherUpdate(c, out, &outl, in, (int)len) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, SEAL_TAG_LEN, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(c, out + (len > 0 ? outl : 0), &outl) != 1) {
        rc = enc ? BL_EIO : BL_EAUTH;
        goto out;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, SEAL_TAG_LEN, tag) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(c);
    return rc;
}

int seal_pack_raw_v(const seal_keys_t *k, uint8_t version, const char *topic, const char *json,
                    uint8_t **out, size_t *out_len)
{
    if (!k || !topic || !json || !out || !out_len)
        return BL_EINVAL;
    if (!seal_cipher(version))
        return BL_EVERSION;
    size_t n = strlen(json);
    if (n > SEAL_MAX_JSON)
        return BL_ETOOBIG;
    uint8_t *buf = malloc(SEAL_OVERHEAD + n);
    if (!buf)
        return BL_ENOMEM;
    buf[0] = version;
    /* A random 96-bit nonce per message: at signalling rates a collision under one key
     * is negligible (RFC 8439 4 and SP 800-38D 8.2.2 ask that a nonce never repeat; a
     * random one stays within SP 800-38D's bound far beyond signalling volumes). */
    if (RAND_bytes(buf + 1, SEAL_NONCE_LEN) != 1) {
        free(buf);
        return BL_EIO;
    }
    uint8_t *ct = buf + 1 + SEAL_NONCE_LEN;
    int rc = seal_aead(true, version, k->key, buf + 1, topic, (const uint8_t *)json, n, ct, ct + n);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = SEAL_OVERHEAD + n;
    return 0;
}

int seal_pack_raw(const seal_keys_t *k, const char *topic, const char *json, uint8_t **out,
                  size_t *out_len)
{
    return seal_pack_raw_v(k, SEAL_V1_CHACHA, topic, json, out, out_len);
}

static bool seal_sid_valid(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!g_ascii_isxdigit(s[i]))
            return false;
    return true;
}

static bool seal_type_known(const char *t)
{
    for (size_t i = 0; i < BL_ARRAY_LEN(seal_types); i++)
        if (!strcmp(t, seal_types[i]))
            return true;
    return false;
}

/* offer, answer and cand mean nothing without their body (SDP, candidate line). */
static bool seal_type_needs_body(const char *t)
{
    return !strcmp(t, "offer") || !strcmp(t, "answer") || !strcmp(t, "cand");
}

/* ts must be an integer number of milliseconds that a double holds exactly. */
static bool seal_ts_valid(double d)
{
    return d >= 0 && d <= 9007199254740992.0 && d == (double)(int64_t)d;
}

static int seal_check_msg(const seal_msg_t *m)
{
    if (!bl_site_name_valid(m->from) || !bl_site_name_valid(m->to) || !seal_sid_valid(m->sid) ||
        !seal_type_known(m->type) || !seal_ts_valid((double)m->ts_ms))
        return BL_EINVAL;
    if (m->body && strlen(m->body) > SEAL_MAX_LEN)
        return BL_ETOOBIG;
    if (!m->body && seal_type_needs_body(m->type))
        return BL_EINVAL;
    if ((m->cert && strlen(m->cert) > SEAL_MAX_B64) || (m->sig && strlen(m->sig) > SEAL_MAX_B64))
        return BL_ETOOBIG;
    return 0;
}

/* An optional string field, copied; absent or null leaves *dst NULL. */
static int seal_get_opt(const cJSON *o, const char *name, size_t max, char **dst)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!it || cJSON_IsNull(it))
        return 0;
    if (!cJSON_IsString(it) || !it->valuestring)
        return BL_EINVAL;
    if (strlen(it->valuestring) > max)
        return BL_ETOOBIG;
    return (*dst = strdup(it->valuestring)) ? 0 : BL_ENOMEM;
}

int seal_pack(const seal_keys_t *k, const char *topic, const seal_msg_t *m, uint8_t **out,
              size_t *out_len)
{
    if (!m)
        return BL_EINVAL;
    int rc = seal_check_msg(m);
    if (rc)
        return rc;
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddNumberToObject(o, "v", SEAL_JSON_VERSION) ||
        !cJSON_AddStringToObject(o, "from", m->from) || !cJSON_AddStringToObject(o, "to", m->to) ||
        !cJSON_AddStringToObject(o, "sid", m->sid) ||
        !cJSON_AddNumberToObject(o, "ts", (double)m->ts_ms) ||
        !cJSON_AddStringToObject(o, "type", m->type) ||
        (m->body && !cJSON_AddStringToObject(o, "body", m->body)) ||
        (m->cert && !cJSON_AddStringToObject(o, "cert", m->cert)) ||
        (m->sig && !cJSON_AddStringToObject(o, "sig", m->sig))) {
        cJSON_Delete(o);
        return BL_ENOMEM;
    }
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json)
        return BL_ENOMEM;
    rc = seal_pack_raw_v(k, m->version ? m->version : SEAL_V1_CHACHA, topic, json, out, out_len);
    OPENSSL_cleanse(json, strlen(json));
    cJSON_free(json);
    return rc;
}

/* Copy a JSON string field into dst[cap]; false when absent, not a string or too long. */
static bool seal_get_str(const cJSON *o, const char *name, char *dst, size_t cap)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(it) || !it->valuestring || strlen(it->valuestring) >= cap)
        return false;
    strcpy(dst, it->valuestring);
    return true;
}

static int seal_parse_json(const cJSON *o, seal_msg_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "v");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "ts");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(o, "body");
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(v))
        return BL_EINVAL;
    if (v->valuedouble != SEAL_JSON_VERSION)
        return BL_EVERSION;
    if (!cJSON_IsNumber(ts) || !seal_ts_valid(ts->valuedouble))
        return BL_EINVAL;
    out->ts_ms = (int64_t)ts->valuedouble;
    if (!seal_get_str(o, "from", out->from, sizeof(out->from)) ||
        !seal_get_str(o, "to", out->to, sizeof(out->to)) ||
        !seal_get_str(o, "sid", out->sid, sizeof(out->sid)) ||
        !seal_get_str(o, "type", out->type, sizeof(out->type)))
        return BL_EINVAL;
    if (body && !cJSON_IsNull(body)) {
        if (!cJSON_IsString(body) || !body->valuestring)
            return BL_EINVAL;
        if (strlen(body->valuestring) > SEAL_MAX_LEN)
            return BL_ETOOBIG;
        if (!(out->body = strdup(body->valuestring)))
            return BL_ENOMEM;
    }
    int rc = seal_get_opt(o, "cert", SEAL_MAX_B64, &out->cert);
    if (!rc)
        rc = seal_get_opt(o, "sig", SEAL_MAX_B64, &out->sig);
    return rc ? rc : seal_check_msg(out);
}

int seal_unpack(const seal_keys_t *k, const char *topic, const uint8_t *buf, size_t len,
                seal_msg_t *out)
{
    if (!k || !topic || !out || (!buf && len))
        return BL_EINVAL;
    memset(out, 0, sizeof(*out));
    if (len < SEAL_OVERHEAD)
        return BL_ETRUNC;
    if (!seal_cipher(buf[0]))
        return BL_EVERSION;
    size_t n = len - SEAL_OVERHEAD;
    if (n > SEAL_MAX_JSON)
        return BL_ETOOBIG;
    char *pt = malloc(n + 1);
    if (!pt)
        return BL_ENOMEM;
    uint8_t tag[SEAL_TAG_LEN];
    memcpy(tag, buf + len - SEAL_TAG_LEN, SEAL_TAG_LEN);
    int rc = seal_aead(false, buf[0], k->key, buf + 1, topic, buf + 1 + SEAL_NONCE_LEN, n,
                       (uint8_t *)pt, tag);
    if (!rc) {
        pt[n] = '\0';
        /* An embedded NUL would hide the rest of the text from the parser. */
        cJSON *o = memchr(pt, '\0', n) ? NULL : cJSON_ParseWithOpts(pt, NULL, 1);
        rc = o ? seal_parse_json(o, out) : BL_EINVAL;
        cJSON_Delete(o);
    }
    OPENSSL_cleanse(pt, n);
    free(pt);
    if (rc) {
        seal_msg_clear(out);
        return rc;
    }
    memcpy(out->nonce, buf + 1, SEAL_NONCE_LEN);
    out->version = buf[0];
    return 0;
}

void seal_msg_clear(seal_msg_t *m)
{
    if (!m)
        return;
    free(m->body);
    free(m->cert);
    free(m->sig);
    memset(m, 0, sizeof(*m));
}
