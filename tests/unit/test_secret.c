/* SPDX-License-Identifier: MIT */
/* test_secret.c - new secrets are strong, weak ones are recognised, and the start-up
 * warnings about a config that is valid but unsafe (confwarn.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "confwarn.h"
#include "secret.h"

static void test_generate(void **state)
{
    (void)state;
    char a[SECRET_NEW_LEN + 1], b[SECRET_NEW_LEN + 1];
    assert_int_equal(secret_generate(a, sizeof(a)), 0);
    assert_int_equal(secret_generate(b, sizeof(b)), 0);
    assert_int_equal(strlen(a), SECRET_NEW_LEN);
    assert_string_not_equal(a, b);
    for (const char *p = a; *p; p++)
        assert_true(g_ascii_isalnum(*p) || *p == '-' || *p == '_');
    assert_true(secret_estimate_bits(a) >= 256);
    assert_int_equal(secret_generate(a, SECRET_NEW_LEN), BL_EINVAL);
}

static void test_estimate(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        unsigned min, max;
    } cases[] = {
        {"", 0, 0},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0, 0},  /* one character */
        {"abababababababababababababababab", 32, 32},        /* two: 1 bit each */
        {"0123456789abcdef0123456789abcdef", 128, 128},      /* openssl rand -hex 16 */
        {"3q2+7wHk9xQ1m0aZ/4bV8w==", 144, 144},              /* openssl rand -base64 16 */
        {"MyHomeNetwork123", 90, 100},                       /* 16 of 62 characters */
        {"lab-network-secret-not-for-production", 200, 230}, /* words score too high */
        {"0123456789012345", 50, 56},                        /* digits only */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned b = secret_estimate_bits(cases[i].s);
        if (b < cases[i].min || b > cases[i].max)
            fail_msg("\"%s\": %u bits, expected %u..%u", cases[i].s, b, cases[i].min, cases[i].max);
    }
    assert_int_equal(secret_estimate_bits(NULL), 0);
}

static GPtrArray *warnings_of(const char *text)
{
    config_t c;
    char err[256];
    if (config_load_data(text, strlen(text), "t.conf", &c, err, sizeof(err)))
        fail_msg("refused: %s", err);
    GPtrArray *w = g_ptr_array_new_with_free_func(g_free);
    confwarn_list(&c, w);
    config_free(&c);
    return w;
}

static bool has(GPtrArray *w, const char *what)
{
    for (guint i = 0; i < w->len; i++)
        if (strstr(g_ptr_array_index(w, i), what))
            return true;
    return false;
}

#define PEER                                                                                       \
    "[peer cabin]\nfingerprint = "                                                                 \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\ntopic = #\n"
#define GOOD "secret = awVIg65DKv96-RIAOopz0w3E8SUfGuEqbSFgIvLDvik\n"

static void test_warnings(void **state)
{
    (void)state;
    GPtrArray *w =
        warnings_of("[site]\nname = home\n[signal]\nurl = mqtt://sig.example\n" GOOD PEER);
    assert_int_equal(w->len, 0);
    g_ptr_array_unref(w);

    /* Passwords in the clear to another machine. */
    w = warnings_of("[site]\nname = home\n[local]\nhost = 10.1.2.3\nusername = u\npassword = p\n"
                    "[signal]\nurl = mqtt://sig.example\nusername = u\npassword = p\n" GOOD PEER);
    assert_int_equal(w->len, 2);
    assert_true(has(w, "[local] password goes to 10.1.2.3:1883 without TLS"));
    assert_true(has(w, "[signal] password goes to sig.example:1883 without TLS"));
    g_ptr_array_unref(w);

    /* Over TLS, or to this machine, they are fine. */
    w = warnings_of("[site]\nname = home\n[local]\nusername = u\npassword = p\n"
                    "[signal]\nurl = mqtts://sig.example\nusername = u\npassword = p\n" GOOD PEER);
    assert_int_equal(w->len, 0);
    g_ptr_array_unref(w);
    w = warnings_of("[site]\nname = home\n[local]\nhost = ::1\nusername = u\npassword = p\n"
                    "[signal]\nurl = mqtt://localhost\nusername = u\npassword = p\n" GOOD PEER);
    assert_int_equal(w->len, 0);
    g_ptr_array_unref(w);

    /* A weak secret: long enough to be accepted, guessable all the same. */
    w = warnings_of(
        "[site]\nname = home\n[signal]\nurl = mqtt://h\nsecret = MyHomeNetwork123\n" PEER);
    assert_int_equal(w->len, 1);
    assert_true(has(w, "about 96 bits of entropy"));
    assert_true(has(w, "brokerless secret"));
    assert_false(has(w, "MyHomeNetwork123")); /* never the secret itself */
    g_ptr_array_unref(w);

    /* An ESP32 example peer: said at every start. */
    w = warnings_of("[site]\nname = home\n[peer cabin]\nmode = esp32-example\ninsecure = true\n"
                    "role = peer2\nbroker = mqtt://198.18.0.1\ntopic = #\n");
    assert_int_equal(w->len, 1);
    assert_true(has(w, "[peer cabin] insecure: mode = esp32-example has no encryption and no "
                       "authentication"));
    assert_true(has(w, "198.18.0.1:1883 (topics /topic/serverless_mqtt1 and "
                       "/topic/serverless_mqtt2)"));
    g_ptr_array_unref(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_estimate),
        cmocka_unit_test(test_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
