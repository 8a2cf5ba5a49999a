/* SPDX-License-Identifier: MIT */
/* sigcheck.h - what a site accepts from its signalling inbox, and the signature it puts
 * on what it sends (docs/PROTOCOL.md "Signatures", "Freshness and replay"). Pure: the
 * caller passes the wall clock.
 *
 * A sealed payload is checked in this order, and the first failure is the verdict:
 * authenticated and well formed (seal_unpack), fresh (|now - ts| <= SEAL_MAX_AGE_MS),
 * addressed to us from another site, from a configured peer, not seen before (a SHA-256
 * digest of its signed bytes, so neither a new nonce nor a re-encoded or malleated
 * signature makes a capture new), signed by the certificate pinned for that peer, and,
 * for an offer or restart, newer than the last offer or restart accepted from it. Only
 * a message that passes all of these is remembered: anyone holding the network secret
 * can write well-formed messages, but without a pinned key none of them enters the
 * replay cache, so none can pre-empt a genuine message or grow the cache. Each peer's
 * cache holds at most SIGCHECK_MAX_SEEN digests and forgets them in arrival order once
 * their message would be stale anyway; a peer that sends more within the window is
 * refused (only its own signalling suffers). */
#ifndef BL_SIGCHECK_H
#define BL_SIGCHECK_H

#include "cert.h"
#include "config.h"
#include "seal.h"

/* Per peer, within ~2 * SEAL_MAX_AGE_MS: a link that retries at its fastest (an offer,
 * about 20 candidates and an end of candidates per second) stays well under it. */
#define SIGCHECK_MAX_SEEN 16384

typedef enum {
    SIGCHECK_OK = 0,
    SIGCHECK_BAD,           /* cannot be opened, or malformed */
    SIGCHECK_STALE,         /* outside the time window */
    SIGCHECK_MISDIRECTED,   /* not addressed to us, or from ourselves */
    SIGCHECK_UNKNOWN_PEER,  /* from a site that is not a configured peer */
    SIGCHECK_REPLAYED,      /* its signed bytes were accepted before */
    SIGCHECK_BAD_SIGNATURE, /* not signed by the peer's pinned certificate */
    SIGCHECK_LATE,          /* an offer or restart not newer than the last one */
    SIGCHECK_FLOOD,         /* the peer's replay cache is full */
} sigcheck_verdict_t;

typedef struct sigcheck sigcheck_t;

/* For the site cfg->site_name, whose inbox topic is `inbox`; cfg and keys must outlive it.
 * max_seen: the cap per peer, SIGCHECK_MAX_SEEN (tests pass less). */
/* A reloaded config with the same [site] and secret: peers kept keep what was seen of
 * them (so no replay window opens), new ones start empty, removed ones are forgotten.
 * cfg must outlive the checker. */
int sigcheck_rebind(sigcheck_t *c, const config_t *cfg);
sigcheck_t *sigcheck_new(const config_t *cfg, const seal_keys_t *keys, const char *inbox,
                         size_t max_seen);
/* Check one payload received on the inbox. On SIGCHECK_OK *out holds the message
 * (seal_msg_clear); otherwise *out is cleared and `why` (may be NULL) says what was
 * wrong, naming the sender where it is known. */
sigcheck_verdict_t sigcheck_accept(sigcheck_t *c, const uint8_t *buf, size_t len,
                                   int64_t now_wall_ms, seal_msg_t *out, char *why, size_t whylen);
/* The signature (base64 DER) of m by cert's key, over the bytes docs/PROTOCOL.md
 * "Signatures" lists (g_free), or NULL. */
char *sigcheck_sign(const cert_t *cert, const seal_msg_t *m);
void sigcheck_free(sigcheck_t *c);

#endif
