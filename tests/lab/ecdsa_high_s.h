/* SPDX-License-Identifier: MIT */
/* ecdsa_high_s.h - the other valid ECDSA P-256 signature of the same bytes, (r, n - s): a
 * malleated signature, for blforge (to put one on the broker) and test_sigcheck (to see
 * it taken for the same message). Header-only: the lab's tools and the unit tests link
 * no common test library. */
#ifndef BL_TEST_ECDSA_HIGH_S_H
#define BL_TEST_ECDSA_HIGH_S_H

#include <glib.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>

/* b64: a DER-encoded ECDSA signature in base64. Returns (r, n - s), encoded the same way
 * (g_free), or NULL when b64 is no such signature. */
static inline char *ecdsa_high_s(const char *b64)
{
    gsize len;
    guchar *der = g_base64_decode(b64, &len);
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    char *res = NULL;
    if (sig) {
        const BIGNUM *r, *s;
        ECDSA_SIG_get0(sig, &r, &s);
        EC_GROUP *g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
        BIGNUM *nr = BN_dup(r), *ns = BN_new();
        if (nr && ns && BN_sub(ns, EC_GROUP_get0_order(g), s) == 1 &&
            ECDSA_SIG_set0(sig, nr, ns) == 1) {
            nr = ns = NULL; /* the signature's now */
            unsigned char *out = NULL;
            int n = i2d_ECDSA_SIG(sig, &out);
            if (n > 0)
                res = g_base64_encode(out, (gsize)n);
            OPENSSL_free(out);
        }
        BN_free(nr);
        BN_free(ns);
        ECDSA_SIG_free(sig);
        EC_GROUP_free(g);
    }
    g_free(der);
    return res;
}

#endif
