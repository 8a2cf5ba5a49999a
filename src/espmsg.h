/* SPDX-License-Identifier: MIT */
/* espmsg.h - what the ESP32 example publishes on its signalling topics (libjuice
 * variant), as the board writes and reads it.
 *
 * A payload of one byte is a handshake step: '0' (peer1: "are you there?", once a
 * second), '1' (peer2: "here"), '2' (peer1: "go"). A longer payload is the ICE
 * description, pretty-printed JSON as cJSON_Print writes it:
 *
 *   {"desc": "a=ice-ufrag:U\r\na=ice-pwd:P\r\na=ice-options:ice2,trickle\r\n",
 *    "cand0": "a=candidate:1 1 UDP 2122317823 192.168.0.40 62703 typ host", ...}
 *
 * with every candidate gathered (no trickle, no end-of-candidates); the board writes at
 * most 10 (cand0..cand9) and reads cand0, cand1, ... up to the first gap or the tenth.
 * Read tolerantly: CRLF or LF in "desc", candidates in any order and with gaps, extra
 * keys and lines ignored. Pure; fuzzed by fuzz/fuzz_esphandshake.c and fuzz_espdesc.c. */
#ifndef BL_ESPMSG_H
#define BL_ESPMSG_H

#include "common.h"

#define ESPMSG_MAX_CANDS 10
/* A candidate line, as libjuice bounds it (JUICE_MAX_CANDIDATE_SDP_STRING_LEN). */
#define ESPMSG_CAND_MAX 256
/* ICE credentials (RFC 8839 5.4: at most 256 characters). */
#define ESPMSG_CRED_MAX 256
/* The largest description taken: the board's own buffer is 4096 bytes, its JSON a few
 * hundred more. */
#define ESPMSG_DESC_MAX 8192
/* What we write fits one receive buffer of the board's MQTT client (esp-mqtt's 1024
 * bytes by default, which also hold the packet's header and topic): a larger message
 * reaches the example's handler in pieces, and it cannot parse a piece. */
#define ESPMSG_DESC_BUDGET 900

typedef enum espmsg_step { ESPMSG_SYNC0 = 0, ESPMSG_SYNC1 = 1, ESPMSG_SYNC2 = 2 } espmsg_step_t;

typedef struct espmsg_desc {
    char ufrag[ESPMSG_CRED_MAX + 1];
    char pwd[ESPMSG_CRED_MAX + 1];
    char *cands[ESPMSG_MAX_CANDS]; /* "a=candidate:...", owned, in cand number order */
    size_t n_cands;
    size_t dropped; /* candidate entries past ESPMSG_MAX_CANDS or not candidates */
} espmsg_desc_t;

/* One byte: a handshake step. BL_EINVAL for any other byte or length. */
int espmsg_handshake_parse(const uint8_t *buf, size_t len, espmsg_step_t *out);
/* A description. BL_EINVAL when it is not a JSON object with a "desc" string holding
 * both credentials (why says what, static), BL_ETOOBIG over ESPMSG_DESC_MAX. *out is
 * filled only on success; free it with espmsg_desc_clear. */
int espmsg_desc_parse(const uint8_t *buf, size_t len, espmsg_desc_t *out, const char **why);
void espmsg_desc_clear(espmsg_desc_t *d);
/* Our description as the board writes its own, with the first candidates that fit in
 * ESPMSG_DESC_BUDGET bytes (at most ESPMSG_MAX_CANDS); *used says how many. NULL when
 * even none fit or a credential is unusable. free() the result. */
char *espmsg_desc_build(const char *ufrag, const char *pwd, const char *const *cands, size_t n,
                        size_t *used);

#endif
