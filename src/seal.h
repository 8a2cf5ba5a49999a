/* SPDX-License-Identifier: MIT */
/* seal.h - sealed signalling messages, pure (docs/PROTOCOL.md "Signalling").
 *
 * Keys and topics come from the network secret by HKDF-SHA256 (OpenSSL EVP_KDF):
 *   key   = HKDF(secret, salt "brokerless/v1", info "signal key")     32 bytes
 *   inbox = HKDF(secret, salt "brokerless/v1", info "inbox:" + site)  16 bytes, hex
 *           the topic "bl/<32 hex>" where a site receives its signalling
 * A sealed message is: version u8 | nonce 12 bytes | AEAD ciphertext of the JSON body |
 * tag 16 bytes; the AAD is the version byte and the destination topic. Version 1 is
 * ChaCha20-Poly1305, version 2 AES-256-GCM (what a browser's WebCrypto has), same key.
 * The JSON body: {"v":1,"from":S,"to":S,"sid":HEX,"ts":MS,"type":T, ...fields}.
 * Undecryptable or malformed messages are refused here; freshness, replay and the
 * sender's signature are sigcheck.h's. Fuzzed by fuzz/fuzz_seal.c. */
#ifndef BL_SEAL_H
#define BL_SEAL_H

#include "common.h"

#define SEAL_V1_CHACHA 1 /* envelope version 1: ChaCha20-Poly1305 */
#define SEAL_V2_AESGCM 2 /* envelope version 2: AES-256-GCM */
#define SEAL_KEY_LEN 32
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_MAX_AGE_MS 120000
#define SEAL_MAX_LEN 65536
#define SEAL_MAX_B64 4096 /* cert and sig fields */
/* Largest JSON plaintext sealed or accepted: a body of SEAL_MAX_LEN plus JSON escaping
 * (CR/LF in SDP double) and the other fields. */
#define SEAL_MAX_JSON (2 * SEAL_MAX_LEN + 1024)
/* Bytes a sealed message adds to its JSON: version, nonce, tag. */
#define SEAL_OVERHEAD (1 + SEAL_NONCE_LEN + SEAL_TAG_LEN)

typedef struct seal_keys {
    uint8_t key[SEAL_KEY_LEN];
} seal_keys_t;

int seal_derive(const char *secret, seal_keys_t *out);
/* "bl/<hex>" for a site's inbox; out must hold 64 bytes. */
int seal_inbox_topic(const char *secret, const char *site, char *out, size_t outlen);

typedef struct seal_msg {
    char from[BL_SITE_NAME_MAX + 1];
    char to[BL_SITE_NAME_MAX + 1];
    char sid[33];  /* session id, hex */
    int64_t ts_ms; /* sender's wall clock */
    char type[16]; /* "offer", "answer", "cand", "eoc", "bye", "restart" */
    char *body;    /* type-specific: SDP for offer/answer, candidate line; may be NULL */
    char *cert;    /* optional: the sender's certificate, base64 DER (signaling.c) */
    char *sig;     /* optional: the sender's signature, base64 (signaling.c) */
    uint8_t nonce[SEAL_NONCE_LEN];
    /* The envelope version: seal_unpack says which the message came in; seal_pack seals
     * in this one (0: SEAL_V1_CHACHA). */
    uint8_t version;
} seal_msg_t;

int seal_pack(const seal_keys_t *k, const char *topic, const seal_msg_t *m, uint8_t **out,
              size_t *out_len);
/* Seal arbitrary text as the JSON plaintext, unchecked. For tests and fuzzing only: it
 * lets them hand seal_unpack authentic envelopes around malformed JSON. The daemon
 * uses seal_pack. */
int seal_pack_raw(const seal_keys_t *k, const char *topic, const char *json, uint8_t **out,
                  size_t *out_len);
/* The same in envelope `version` (BL_EVERSION for one this build does not know). */
int seal_pack_raw_v(const seal_keys_t *k, uint8_t version, const char *topic, const char *json,
                    uint8_t **out, size_t *out_len);
/* Authenticate and parse. Does not check time, replay or signature (sigcheck.h). */
int seal_unpack(const seal_keys_t *k, const char *topic, const uint8_t *buf, size_t len,
                seal_msg_t *out);
void seal_msg_clear(seal_msg_t *m);

#endif
