/* SPDX-License-Identifier: MIT */
/* Unit tests for sdp.c: what we write, we and a browser-like peer can read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "sdp.h"

#define FP                                                                                         \
    "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:"   \
    "67:89"

static void test_round_trip(void **state)
{
    (void)state;
    char *text = sdp_build("123", "ufrg", "0123456789abcdefghijkl", FP, SDP_SETUP_ACTIVE, 65600);
    sdp_desc_t d;
    assert_int_equal(sdp_parse(text, strlen(text), &d), 0);
    assert_string_equal(d.ufrag, "ufrg");
    assert_string_equal(d.pwd, "0123456789abcdefghijkl");
    assert_string_equal(d.fingerprint, FP);
    assert_int_equal(d.setup, SDP_SETUP_ACTIVE);
    assert_int_equal(d.sctp_port, 5000);
    assert_int_equal(d.max_message_size, 65600);
    assert_non_null(strstr(text, "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
    sdp_desc_clear(&d);
    g_free(text);
}

/* A browser's offer: LF or CRLF, extra attributes, inline candidates, lower-case hex. */
static void test_browser_offer(void **state)
{
    (void)state;
    const char *text =
        "v=0\no=- 4611731400430051336 2 IN IP4 127.0.0.1\ns=-\nt=0 0\n"
        "a=group:BUNDLE 0\na=extmap-allow-mixed\na=msid-semantic: WMS\n"
        "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\nc=IN IP4 0.0.0.0\n"
        "a=candidate:1 1 udp 2122260223 198.18.0.11 50000 typ host generation 0\r\n"
        "a=ice-ufrag:Ab+/\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaaaa\na=ice-options:trickle\n"
        "a=fingerprint:sha-256 ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:"
        "67:89:ab:cd:ef:01:23:45:67:89\n"
        "a=setup:actpass\na=mid:0\na=sctp-port:5000\na=max-message-size:262144\n";
    sdp_desc_t d;
    assert_int_equal(sdp_parse(text, strlen(text), &d), 0);
    assert_string_equal(d.fingerprint, FP);
    assert_int_equal(d.setup, SDP_SETUP_ACTPASS);
    assert_int_equal(d.n_candidates, 1);
    assert_string_equal(d.candidates[0],
                        "candidate:1 1 udp 2122260223 198.18.0.11 50000 typ host generation 0");
    sdp_desc_clear(&d);
}

/* The parts of a valid description, for the refusals below to leave out or spoil. */
#define SDP_M "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
#define SDP_U "a=ice-ufrag:abcd\n"
#define SDP_P "a=ice-pwd:0123456789abcdefghijkl\n"
#define SDP_F "a=fingerprint:sha-256 " FP "\n"

static void test_refusals(void **state)
{
    (void)state;
    static const char *const refused[] = {
        /* each of the four required parts missing */
        SDP_U SDP_P SDP_F,
        SDP_M SDP_P SDP_F,
        SDP_M SDP_U SDP_F,
        SDP_M SDP_U SDP_P,
        /* short ufrag, short pwd, bad chars */
        SDP_M "a=ice-ufrag:abc\n" SDP_P SDP_F,
        SDP_M SDP_U "a=ice-pwd:short\n" SDP_F,
        SDP_M "a=ice-ufrag:ab cd\n" SDP_P SDP_F,
        /* sha-1 only, truncated fingerprint */
        SDP_M SDP_U SDP_P "a=fingerprint:sha-1 AB:CD\n",
        SDP_M SDP_U SDP_P "a=fingerprint:sha-256 AB:CD:EF\n",
        /* bad sctp port and max size */
        SDP_M SDP_U SDP_P SDP_F "a=sctp-port:70000\n",
        SDP_M SDP_U SDP_P SDP_F "a=max-message-size:-1\n",
        "",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        sdp_desc_t d;
        assert_int_equal(sdp_parse(refused[i], strlen(refused[i]), &d), BL_EINVAL);
    }
}

/* A NUL inside the text ends it: nothing after it is read. */
static void test_embedded_nul(void **state)
{
    (void)state;
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\n"
                     "a=ice-ufrag:abcd\n%ca=ice-pwd:0123456789abcdefghijkl\n"
                     "a=fingerprint:sha-256 " FP "\n",
                     0);
    sdp_desc_t d;
    assert_int_equal(sdp_parse(buf, (size_t)n, &d), BL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_browser_offer),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_embedded_nul),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
