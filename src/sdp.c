/* SPDX-License-Identifier: MIT */
#include "sdp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

char *sdp_build(const char *session_id, const char *ufrag, const char *pwd, const char *fingerprint,
                sdp_setup_t setup, size_t max_message_size)
{
    const char *role = setup == SDP_SETUP_ACTIVE    ? "active"
                       : setup == SDP_SETUP_PASSIVE ? "passive"
                                                    : "actpass";
    /* RFC 8841 4: a data-channel-only offer is one application m-line with
     * UDP/DTLS/SCTP and the webrtc-datachannel format. Port 9 with c=0.0.0.0 because
     * the real addresses trickle as candidates (RFC 8840). */
    return g_strdup_printf("v=0\r\n"
                           "o=- %s 2 IN IP4 127.0.0.1\r\n"
                           "s=-\r\n"
                           "t=0 0\r\n"
                           "a=group:BUNDLE 0\r\n"
                           "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"
                           "c=IN IP4 0.0.0.0\r\n"
                           "a=mid:0\r\n"
                           "a=ice-ufrag:%s\r\n"
                           "a=ice-pwd:%s\r\n"
                           "a=ice-options:trickle\r\n"
                           "a=fingerprint:sha-256 %s\r\n"
                           "a=setup:%s\r\n"
                           "a=sctp-port:5000\r\n"
                           "a=max-message-size:%zu\r\n",
                           session_id, ufrag, pwd, fingerprint, role, max_message_size);
}

/* RFC 8839 5.4: ice-char = ALPHA / DIGIT / "+" / "/" */
static bool is_ice_chars(const char *s, size_t len, size_t min, size_t max)
{
    if (len < min || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '+' && s[i] != '/')
            return false;
    return true;
}

/* An ice-char value of min..256 characters into out. */
static int ice_value(const char *v, size_t n, size_t min, char out[257])
{
    if (!is_ice_chars(v, n, min, 256))
        return BL_EINVAL;
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

/* A short value as a string in out (size bytes); false when it does not fit. */
static bool short_value(const char *v, size_t n, char *out, size_t size)
{
    if (n >= size)
        return false;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

static bool parse_fingerprint(const char *v, size_t len, char out[96])
{
    /* "sha-256 AB:CD:..." (RFC 8122 5); other hash functions are ignored. */
    if (len < 8 || g_ascii_strncasecmp(v, "sha-256 ", 8) != 0)
        return false;
    v += 8;
    len -= 8;
    if (len != 95)
        return false;
    for (size_t i = 0; i < 95; i++) {
        char c = v[i];
        if (i % 3 == 2) {
            if (c != ':')
                return false;
        } else if (!isxdigit((unsigned char)c)) {
            return false;
        }
        out[i] = (char)toupper((unsigned char)c);
    }
    out[95] = '\0';
    return true;
}

static int parse_line(const char *l, size_t len, sdp_desc_t *d, bool *has_app)
{
#define ATTR(name) (len >= sizeof(name) - 1 && memcmp(l, name, sizeof(name) - 1) == 0)
#define VAL(name) (l + sizeof(name) - 1), (len - (sizeof(name) - 1))
    if (ATTR("m=application ")) {
        *has_app = true;
    } else if (ATTR("a=ice-ufrag:")) {
        return ice_value(VAL("a=ice-ufrag:"), 4, d->ufrag);
    } else if (ATTR("a=ice-pwd:")) {
        return ice_value(VAL("a=ice-pwd:"), 22, d->pwd);
    } else if (ATTR("a=fingerprint:")) {
        char fp[96];
        if (parse_fingerprint(VAL("a=fingerprint:"), fp))
            memcpy(d->fingerprint, fp, sizeof(fp));
    } else if (ATTR("a=setup:")) {
        char v[16];
        if (!short_value(VAL("a=setup:"), v, sizeof(v)))
            return BL_EINVAL;
        d->setup = !strcmp(v, "actpass")   ? SDP_SETUP_ACTPASS
                   : !strcmp(v, "active")  ? SDP_SETUP_ACTIVE
                   : !strcmp(v, "passive") ? SDP_SETUP_PASSIVE
                                           : SDP_SETUP_NONE;
    } else if (ATTR("a=sctp-port:")) {
        char v[8], *end;
        if (!short_value(VAL("a=sctp-port:"), v, sizeof(v)) || !v[0])
            return BL_EINVAL;
        long p = strtol(v, &end, 10);
        if (*end || p < 1 || p > 65535)
            return BL_EINVAL;
        d->sctp_port = (int)p;
    } else if (ATTR("a=max-message-size:")) {
        char v[24], *end;
        if (!short_value(VAL("a=max-message-size:"), v, sizeof(v)) || !v[0])
            return BL_EINVAL;
        unsigned long long m = strtoull(v, &end, 10);
        if (*end || v[0] == '-')
            return BL_EINVAL;
        d->max_message_size = (size_t)m;
    } else if (ATTR("a=candidate:")) {
        if (d->n_candidates < SDP_MAX_CANDIDATES && len < 1024)
            d->candidates[d->n_candidates++] = g_strndup(l + 2, len - 2);
    }
    return 0;
#undef ATTR
#undef VAL
}

int sdp_parse(const char *text, size_t len, sdp_desc_t *out)
{
    memset(out, 0, sizeof(*out));
    bool has_app = false;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && text[i] != '\n' && text[i] != '\0')
            i++;
        size_t end = i;
        if (end > start && text[end - 1] == '\r')
            end--;
        if (i < len && text[i] == '\0')
            break;
        i++;
        int rc = parse_line(text + start, end - start, out, &has_app);
        if (rc) {
            sdp_desc_clear(out);
            return rc;
        }
    }
    if (!has_app || !out->ufrag[0] || !out->pwd[0] || !out->fingerprint[0]) {
        sdp_desc_clear(out);
        return BL_EINVAL;
    }
    return 0;
}

void sdp_desc_clear(sdp_desc_t *d)
{
    for (size_t i = 0; i < d->n_candidates; i++)
        g_free(d->candidates[i]);
    memset(d, 0, sizeof(*d));
}
