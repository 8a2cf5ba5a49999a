/* SPDX-License-Identifier: MIT */
/* cert.h - the site's long-lived identity: an ECDSA P-256 key and self-signed
 * certificate in the state directory (key.pem mode 0600, cert.pem). Its SHA-256
 * fingerprint, "AB:CD:..", is what peers pin. */
#ifndef BL_CERT_H
#define BL_CERT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "common.h"

typedef struct cert {
    EVP_PKEY *key;
    X509 *x509;
    char fingerprint[96]; /* upper-case hex pairs joined by ':' */
} cert_t;

/* Load state_dir/{key,cert}.pem; when both are absent and `create`, make them (and the
 * dir, mode 0700). BL_ENOTFOUND when absent and !create. A key.pem that group or others
 * may read, or one of the two without the other, is refused (BL_EINVAL, logged): an
 * existing key is never replaced. */
int cert_load(const char *state_dir, bool create, cert_t **out);
/* A fresh in-memory identity (tests, the DTLS back-to-back test). */
int cert_generate(const char *common_name, cert_t **out);
/* Fingerprint of any certificate, same format. */
int cert_fingerprint_of(X509 *x, char out[96]);
void cert_free(cert_t *c);

#endif
