/* SPDX-License-Identifier: MIT */
/* sdp.h - the few SDP attributes a WebRTC data channel needs, pure.
 *
 * We write a standard data-channel-only description (RFC 8866 syntax, RFC 8839 ICE
 * attributes, RFC 8122 fingerprint, RFC 8841 sctp-port / max-message-size) and read the
 * same attributes from any peer's description, ignoring the rest. Lines may end in LF
 * or CRLF. Fuzzed by fuzz/fuzz_sdp.c. */
#ifndef BL_SDP_H
#define BL_SDP_H

#include "common.h"

#define SDP_MAX_CANDIDATES 32

typedef enum {
    SDP_SETUP_NONE = 0,
    SDP_SETUP_ACTPASS,
    SDP_SETUP_ACTIVE,
    SDP_SETUP_PASSIVE
} sdp_setup_t;

typedef struct sdp_desc {
    char ufrag[257];      /* RFC 8839 5.4: 4..256 ice-chars */
    char pwd[257];        /* 22..256 ice-chars */
    char fingerprint[96]; /* sha-256, normalised "AB:CD:.." */
    sdp_setup_t setup;
    int sctp_port;                        /* 0 = absent */
    size_t max_message_size;              /* 0 = absent (RFC 8841: then 64 KiB) */
    char *candidates[SDP_MAX_CANDIDATES]; /* "candidate:..." lines (owned) */
    size_t n_candidates;
} sdp_desc_t;

/* Write our description (malloc'd, CRLF line ends). */
char *sdp_build(const char *session_id, const char *ufrag, const char *pwd, const char *fingerprint,
                sdp_setup_t setup, size_t max_message_size);
/* Parse; BL_EINVAL when ufrag, pwd, a sha-256 fingerprint or an application m-line is
 * missing or malformed. */
int sdp_parse(const char *text, size_t len, sdp_desc_t *out);
void sdp_desc_clear(sdp_desc_t *d);

#endif
