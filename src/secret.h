/* SPDX-License-Identifier: MIT */
/* secret.h - the network secret: a strong one made, a weak one recognised.
 *
 * The signalling key and every inbox topic come from the secret by one HKDF with a fixed
 * salt (docs/PROTOCOL.md), and the topics are named after the sites: whoever sees the
 * broker's traffic can test guesses of a secret offline, as fast as HKDF runs. Only the
 * secret's entropy stands in the way. Pure. */
#ifndef BL_SECRET_H
#define BL_SECRET_H

#include "common.h"

#define SECRET_GOOD_BITS 128 /* below this the daemon warns at start */
#define SECRET_NEW_BYTES 32  /* what brokerless secret draws: 256 bits */
#define SECRET_NEW_LEN 43    /* ... written as unpadded base64url */

/* A new secret, SECRET_NEW_BYTES random bytes as unpadded base64url; out holds at least
 * SECRET_NEW_LEN + 1 bytes. */
int secret_generate(char *out, size_t outlen);
/* A rough, generous estimate of the entropy of s in bits: its length times log2 of the
 * alphabet its characters come from (digits 10; hex digits 16; base64 characters 64; else the sum
 * of the classes it uses: digits 10, lower case 26, upper case 26, other ASCII 33, any byte beyond
 * ASCII 128), or times log2 of its number of distinct characters when that is under 8 ("aaaa...",
 * "abab..."). It cannot tell words from random letters: a sentence scores far above its real
 * entropy. */
unsigned secret_estimate_bits(const char *s);

#endif
