/* SPDX-License-Identifier: MIT */
/* peerid.h - who a pinned peer is, by profile (docs/PROTOCOL.md "Signatures", "Browser
 * peers"). Pure: no I/O, no clocks.
 *
 * A [peer NAME] pins one SHA-256 fingerprint. What it is the fingerprint of, and which
 * DTLS certificate the peer may then present, depends on the peer's profile:
 *
 *   site     `cert` in its signalling is its X.509 certificate (DER, base64); the pin is
 *            the SHA-256 of that DER; its DTLS certificate is that same certificate,
 *            so the DTLS fingerprint is the pin.
 *   browser  `cert` is the DER SubjectPublicKeyInfo (base64) of an ECDSA P-256 key that
 *            a page keeps in WebCrypto (not extractable); the pin is the SHA-256 of that
 *            DER; its DTLS certificate is whatever its signed SDP's a=fingerprint names
 *            (RFC 8827 binding: a browser cannot sign with its RTCCertificate's key).
 *
 * Either way `sig` is an ECDSA P-256 / SHA-256 signature in DER (base64) over the
 * signed bytes. */
#ifndef BL_PEERID_H
#define BL_PEERID_H

#include "common.h"
#include "sdp.h"

typedef enum {
    PEERID_SITE = 0,
    PEERID_BROWSER,
} peerid_profile_t;

typedef enum {
    PEERID_OK = 0,
    PEERID_NO_KEY,     /* cert or sig absent */
    PEERID_BAD_KEY,    /* cert is not base64 DER of what the profile needs (P-256) */
    PEERID_NOT_PINNED, /* the key's fingerprint is not the pinned one */
    PEERID_BAD_SIG,    /* the signature does not verify */
} peerid_result_t;

/* Is `data` signed by the key pinned as `pinned` ("AB:CD:..")? key_b64 and sig_b64 are
 * the message's `cert` and `sig` (either may be NULL). fp receives the fingerprint of
 * the presented key, or "none". */
peerid_result_t peerid_verify(peerid_profile_t profile, const char *pinned, const char *key_b64,
                              const char *sig_b64, const uint8_t *data, size_t len, char fp[96]);
/* The fingerprint the peer's DTLS certificate must have, given the pin and its signed
 * session description `d` (an offer or answer that passed peerid_verify): the pin for a
 * site, d's a=fingerprint for a browser. */
void peerid_dtls_fingerprint(peerid_profile_t profile, const char *pinned, const sdp_desc_t *d,
                             char out[96]);
const char *peerid_result_str(peerid_result_t r);

#endif
