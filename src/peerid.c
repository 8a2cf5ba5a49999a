/* SPDX-License-Identifier: MIT */
/* peerid.c - the identity checks of peerid.h. */
#include "peerid.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <glib.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

/* "AB:CD:.." of the SHA-256 of der. */
static void peerid_fp_of(const unsigned char *der, size_t len, char out[96])
{
    unsigned char md[32];
    unsigned int n = 0;
    if (EVP_Digest(der, len, md, &n, EVP_sha256(), NULL) != 1 || n != sizeof(md)) {
        snprintf(out, 96, "none");
        return;
    }
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + i * 3, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
}

/* The public key that the profile's `cert` carries, with the fingerprint of its DER. */
static EVP_PKEY *peerid_key_of(peerid_profile_t profile, const unsigned char *der, size_t len,
                               char fp[96], X509 **x509)
{
    const unsigned char *p = der;
    EVP_PKEY *key = NULL;
    *x509 = NULL;
    if (profile == PEERID_SITE) {
        X509 *x = d2i_X509(NULL, &p, (long)len);
        if (!x)
            return NULL;
        if (p != der + len) { /* trailing bytes: not the DER the fingerprint is of */
            X509_free(x);
            return NULL;
        }
        *x509 = x;
        key = X509_get0_pubkey(x);
    } else {
        key = d2i_PUBKEY(NULL, &p, (long)len);
        if (key && p != der + len) {
            EVP_PKEY_free(key);
            return NULL;
        }
        /* WebCrypto's ECDSA P-256 and nothing else. */
        char group[32] = "";
        size_t glen = 0;
        if (key && (!EVP_PKEY_is_a(key, "EC") ||
                    !EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof(group), &glen) ||
                    strcmp(group, "prime256v1") != 0)) {
            EVP_PKEY_free(key);
            return NULL;
        }
    }
    if (key)
        peerid_fp_of(der, len, fp);
    return key;
}

peerid_result_t peerid_verify(peerid_profile_t profile, const char *pinned, const char *key_b64,
                              const char *sig_b64, const uint8_t *data, size_t len, char fp[96])
{
    snprintf(fp, 96, "none");
    if (!key_b64 || !sig_b64 || !*key_b64 || !*sig_b64)
        return PEERID_NO_KEY;
    gsize klen = 0, slen = 0;
    guchar *der = g_base64_decode(key_b64, &klen);
    X509 *x509 = NULL;
    EVP_PKEY *key = der && klen ? peerid_key_of(profile, der, klen, fp, &x509) : NULL;
    g_free(der);
    if (!key)
        return PEERID_BAD_KEY;
    peerid_result_t r = PEERID_NOT_PINNED;
    if (pinned && strcasecmp(fp, pinned) == 0) {
        guchar *sig = g_base64_decode(sig_b64, &slen);
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        bool ok = c && sig && slen && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, key) == 1 &&
                  EVP_DigestVerify(c, sig, slen, data, len) == 1;
        EVP_MD_CTX_free(c);
        g_free(sig);
        r = ok ? PEERID_OK : PEERID_BAD_SIG;
    }
    if (x509)
        X509_free(x509); /* owns key */
    else
        EVP_PKEY_free(key);
    return r;
}

void peerid_dtls_fingerprint(peerid_profile_t profile, const char *pinned, const sdp_desc_t *d,
                             char out[96])
{
    snprintf(out, 96, "%s", profile == PEERID_BROWSER ? d->fingerprint : pinned);
}

const char *peerid_result_str(peerid_result_t r)
{
    switch (r) {
    case PEERID_OK:
        return "signed by the pinned key";
    case PEERID_NO_KEY:
        return "no key or signature";
    case PEERID_BAD_KEY:
        return "the key is not what the profile needs";
    case PEERID_NOT_PINNED:
        return "a key that is not the pinned one";
    case PEERID_BAD_SIG:
        return "the pinned key, but the signature does not verify";
    }
    return "?";
}
