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

#include "log.h"

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

static int write_pem(const char *path, cert_t *c, bool key)
{
    /* The key file is created 0600 before anything is written into it. */
    FILE *f = NULL;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, key ? 0600 : 0644);
    if (fd < 0 || !(f = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        LOG_ERROR("init", "cannot write %s: %s", path, strerror(errno));
        return BL_EIO;
    }
    int ok = key ? PEM_write_PrivateKey(f, c->key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_X509(f, c->x509);
    if (fclose(f) != 0 || !ok)
        return BL_EIO;
    return 0;
}

static int read_pem(const char *dir, cert_t *c)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? BL_ENOTFOUND : BL_EIO;
    c->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    snprintf(path, sizeof(path), "%s/cert.pem", dir);
    f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? BL_ENOTFOUND : BL_EIO;
    c->x509 = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!c->key || !c->x509 || X509_check_private_key(c->x509, c->key) != 1) {
        LOG_ERROR("init", "%s: key.pem and cert.pem are unreadable or do not match", dir);
        return BL_EINVAL;
    }
    return cert_fingerprint_of(c->x509, c->fingerprint);
}

int cert_load(const char *state_dir, bool create, cert_t **out)
{
    cert_t *c = calloc(1, sizeof(*c));
    if (!c)
        return BL_ENOMEM;
    int rc = read_pem(state_dir, c);
    if (rc == 0) {
        *out = c;
        return 0;
    }
    cert_free(c);
    if (rc != BL_ENOTFOUND || !create)
        return rc;

    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        LOG_ERROR("init", "cannot create state dir %s: %s", state_dir, strerror(errno));
        return BL_EIO;
    }
    rc = cert_generate("brokerless", &c);
    if (rc)
        return rc;
    char path[4096];
    snprintf(path, sizeof(path), "%s/key.pem", state_dir);
    rc = write_pem(path, c, true);
    snprintf(path, sizeof(path), "%s/cert.pem", state_dir);
    if (!rc)
        rc = write_pem(path, c, false);
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
