/* SPDX-License-Identifier: MIT */
#include "cert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <glib.h>
#include <openssl/crypto.h>

#include "log.h"
#include "secfile.h"

int cert_fingerprint_of(X509 *x, char out[96])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!X509_digest(x, EVP_sha256(), md, &n) || n != 32)
        return BL_EIO;
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + i * 3, 4, "%02X%s", md[i], i + 1 < n ? ":" : "");
    return 0;
}

int cert_generate(const char *common_name, cert_t **out)
{
    cert_t *c = calloc(1, sizeof(*c));
    if (!c)
        return BL_ENOMEM;
    c->key = EVP_EC_gen("P-256");
    c->x509 = X509_new();
    if (!c->key || !c->x509)
        goto error;

    /* A random 64-bit serial; validity is irrelevant to pinning but some peers check
     * it, so give it ten years from an hour ago (clock skew). */
    unsigned char serial[8];
    if (RAND_bytes(serial, sizeof(serial)) != 1)
        goto error;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c->x509))) {
        BN_free(bn);
        goto error;
    }
    BN_free(bn);
    X509_set_version(c->x509, 2);
    X509_gmtime_adj(X509_getm_notBefore(c->x509), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c->x509), 10L * 365 * 24 * 3600);
    X509_NAME *name = X509_get_subject_name(c->x509);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1,
                               -1, 0);
    X509_set_issuer_name(c->x509, name);
    if (!X509_set_pubkey(c->x509, c->key) || !X509_sign(c->x509, c->key, EVP_sha256()))
        goto error;
    if (cert_fingerprint_of(c->x509, c->fingerprint))
        goto error;
    *out = c;
    return 0;
error:
    cert_free(c);
    return BL_EIO;
}

/* The PEM text of c's key or certificate (g_free), or NULL. */
static char *pem_of(cert_t *c, bool key, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL, *data;
    int ok = b && (key ? PEM_write_bio_PrivateKey(b, c->key, NULL, NULL, 0, NULL, NULL)
                       : PEM_write_bio_X509(b, c->x509));
    long n = ok ? BIO_get_mem_data(b, &data) : 0;
    if (n > 0) {
        out = g_malloc((size_t)n);
        memcpy(out, data, (size_t)n);
        *len = (size_t)n;
    }
    BIO_free(b);
    return out;
}

/* Written once, never over an existing file (secfile_write_new); the key 0600. */
static int write_pem(const char *dir, const char *name, cert_t *c, bool key)
{
    char path[4096];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *pem = pem_of(c, key, &len);
    int rc = pem ? secfile_write_new(path, pem, len, key ? 0600 : 0644) : BL_ENOMEM;
    if (rc)
        LOG_ERROR("init", "cannot write %s: %s", path,
                  rc == BL_ENOMEM ? "out of memory" : strerror(errno));
    if (pem)
        OPENSSL_cleanse(pem, len);
    g_free(pem);
    return rc;
}

static int read_pem(const char *dir, cert_t *c)
{
    char path[4096], why[4200];
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    if (secfile_check_private(path, why, sizeof(why))) {
        LOG_ERROR("init", "%s", why);
        return BL_EINVAL;
    }
    FILE *f = fopen(path, "r");
    if (!f)
        return BL_EIO;
    c->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    snprintf(path, sizeof(path), "%s/cert.pem", dir);
    f = fopen(path, "r");
    if (!f)
        return BL_EIO;
    c->x509 = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!c->key || !c->x509 || X509_check_private_key(c->x509, c->key) != 1) {
        LOG_ERROR("init", "%s: key.pem and cert.pem are unreadable or do not match", dir);
        return BL_EINVAL;
    }
    return cert_fingerprint_of(c->x509, c->fingerprint);
}

static bool exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return lstat(path, &st) == 0;
}

/* A new identity in dir, where neither file exists. */
static int create(const char *state_dir, cert_t **out)
{
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        LOG_ERROR("init", "cannot create state dir %s: %s", state_dir, strerror(errno));
        return BL_EIO;
    }
    cert_t *c;
    int rc = cert_generate("brokerless", &c);
    if (rc)
        return rc;
    /* The key first: a crash in between leaves a key without a certificate, which is
     * refused below rather than replaced. */
    rc = write_pem(state_dir, "key.pem", c, true);
    if (!rc)
        rc = write_pem(state_dir, "cert.pem", c, false);
    if (rc) {
        cert_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int cert_load(const char *state_dir, bool create_new, cert_t **out)
{
    bool key = exists(state_dir, "key.pem"), crt = exists(state_dir, "cert.pem");
    if (!key && !crt)
        return create_new ? create(state_dir, out) : BL_ENOTFOUND;
    if (!key || !crt) {
        /* Never a new key next to an old certificate, nor over an old key: the identity
         * peers pin is this pair. */
        LOG_ERROR("init",
                  "%s has %s but no %s: restore it from a backup, or move %s away to "
                  "create a new identity (with a new fingerprint every peer must pin)",
                  state_dir, key ? "key.pem" : "cert.pem", key ? "cert.pem" : "key.pem",
                  key ? "key.pem" : "cert.pem");
        return BL_EINVAL;
    }
    cert_t *c = calloc(1, sizeof(*c));
    if (!c)
        return BL_ENOMEM;
    int rc = read_pem(state_dir, c);
    if (rc) {
        cert_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cert_free(cert_t *c)
{
    if (!c)
        return;
    EVP_PKEY_free(c->key);
    X509_free(c->x509);
    free(c);
}
