/* SPDX-License-Identifier: MIT */
/* test_peerline.c - pairing lines, the [peer] section they become, and editing the config
 * text; and what a reload may apply (confdiff). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "confdiff.h"
#include "config.h"
#include "peerline.h"

#define FP                                                                                         \
    "4F:2A:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:"   \
    "CC:9C"
#define FP2                                                                                        \
    "00:2A:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:"   \
    "CC:9C"

static void test_line_roundtrip(void **st)
{
    (void)st;
    char *l = peerline_format("home", FP, "mqtts://b.example:8883");
    assert_string_equal(l, "brokerless-peer name=home fingerprint=" FP
                           " signal=mqtts://b.example:8883");
    peerline_t p;
    char err[256];
    assert_int_equal(peerline_parse(l, &p, err, sizeof(err)), 0);
    assert_string_equal(p.name, "home");
    assert_string_equal(p.fingerprint, FP);
    assert_string_equal(p.signal, "mqtts://b.example:8883");
    g_free(l);
    /* pasted with blanks around, lower-case hex, no signal */
    char *lower = g_ascii_strdown(FP, -1);
    char *l2 = g_strdup_printf("  brokerless-peer\tname=cabin fingerprint=%s \n", lower);
    assert_int_equal(peerline_parse(l2, &p, err, sizeof(err)), 0);
    assert_string_equal(p.fingerprint, FP);
    assert_string_equal(p.signal, "");
    g_free(lower);
    g_free(l2);
}

static void test_line_refused(void **st)
{
    (void)st;
    peerline_t p;
    char err[256];
    const char *bad[] = {"",
                         "name=home fingerprint=" FP,
                         "brokerless-peer name=home",
                         "brokerless-peer fingerprint=" FP,
                         "brokerless-peer name=ho/me fingerprint=" FP,
                         "brokerless-peer name=home fingerprint=12:34",
                         "brokerless-peer name=home fingerprint=" FP " signal=http://x",
                         "brokerless-peer name=home fingerprint=" FP " colour=blue",
                         "brokerless-peer name=home fingerprint=" FP " profile=phone",
                         "brokerless-peer name=home fingerprint=" FP " junk"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        err[0] = '\0';
        assert_int_equal(peerline_parse(bad[i], &p, err, sizeof(err)), BL_EINVAL);
        assert_true(err[0] != '\0');
    }
}

#define BASE "[site]\nname = cabin\n[signal]\nurl = mqtt://127.0.0.1\nsecret = 0123456789abcdef\n"

static void load(const char *text, config_t *c)
{
    char err[512];
    int rc = config_load_data(text, strlen(text), "t.conf", c, err, sizeof(err));
    if (rc)
        fail_msg("%s", err);
}

static void test_section_loads(void **st)
{
    (void)st;
    peerline_t p;
    char err[256];
    assert_int_equal(peerline_parse("brokerless-peer name=home fingerprint=" FP, &p, err, 256), 0);
    char *sec = peerline_section(&p, "cabin", NULL, 0);
    assert_non_null(strstr(sec, "topic = cabin/# out 1\ntopic = home/# in 1\n"));
    char *text = peerline_append(BASE, sec);
    config_t c;
    load(text, &c);
    assert_int_equal(c.n_peers, 1);
    assert_string_equal(c.peers[0].name, "home");
    assert_int_equal(c.peers[0].n_rules, 2);
    config_free(&c);
    /* A browser's line, as its page shows it: the section says so, and loads. */
    assert_int_equal(peerline_parse("brokerless-peer name=laptop fingerprint=" FP2
                                    " profile=browser",
                                    &p, err, 256),
                     0);
    assert_true(p.browser);
    char *bsec = peerline_section(&p, "cabin", NULL, 0);
    assert_non_null(strstr(bsec, "[peer laptop]\nprofile = browser\nfingerprint = " FP2 "\n"));
    char *btext = peerline_append(BASE, bsec);
    load(btext, &c);
    assert_true(c.peers[0].browser);
    config_free(&c);
    g_free(btext);
    g_free(bsec);
    assert_int_equal(peerline_parse("brokerless-peer name=home fingerprint=" FP, &p, err, 256), 0);
    assert_false(p.browser);
    const char *rules[] = {"sensors/# out 1", "# in 2 home/ \"\""};
    char *sec2 = peerline_section(&p, "cabin", rules, 2);
    assert_non_null(strstr(sec2, "topic = sensors/# out 1\n"));
    assert_null(strstr(sec2, "cabin/#"));
    g_free(sec2);
    /* removing it gives the text back, comments of the next section kept */
    char *more = g_strconcat(
        text, "\n# the office\n[peer office]\nfingerprint = " FP2 "\ntopic = a out 1\n", NULL);
    char *gone = peerline_remove(more, "home");
    assert_null(strstr(gone, "home"));
    assert_non_null(strstr(gone, "# the office\n[peer office]"));
    load(gone, &c);
    assert_int_equal(c.n_peers, 1);
    assert_string_equal(c.peers[0].name, "office");
    config_free(&c);
    assert_null(peerline_remove(more, "nobody"));
    g_free(gone);
    g_free(more);
    g_free(text);
    g_free(sec);
}

static void test_confdiff(void **st)
{
    (void)st;
    config_t a, b;
    char what[128];
    load(BASE "[peer home]\nfingerprint = " FP "\ntopic = a out 1\n", &a);
    load("[site]\nname = cabin\nlog_level = debug\n[signal]\nurl = mqtt://127.0.0.1\nsecret = "
         "0123456789abcdef\n[peer home]\nfingerprint = " FP "\ntopic = a out 1\n",
         &b);
    assert_int_equal(confdiff_needs_restart(&a, &b, what, sizeof(what)), 0);
    assert_true(confdiff_same_peer(&a.peers[0], &b.peers[0]));
    config_free(&b);
    load(BASE "[peer home]\nfingerprint = " FP "\ntopic = a out 2\n", &b);
    assert_true(confdiff_same_link(&a.peers[0], &b.peers[0]));
    assert_false(confdiff_same_peer(&a.peers[0], &b.peers[0]));
    config_free(&b);
    load(BASE "[peer home]\nfingerprint = " FP2 "\ntopic = a out 1\n", &b);
    assert_false(confdiff_same_link(&a.peers[0], &b.peers[0]));
    config_free(&b);
    load(BASE "[ice]\nstun = 198.18.0.1\n[peer home]\nfingerprint = " FP "\ntopic = a out 1\n", &b);
    assert_int_equal(confdiff_needs_restart(&a, &b, what, sizeof(what)), 1);
    assert_string_equal(what, "[ice] stun");
    config_free(&b);
    /* An esp32-example peer's link is its broker, role and topic base too. */
#define ESP_PEER(role, broker, sync)                                                               \
    BASE "[peer esp]\nmode = esp32-example\ninsecure = true\nrole = " role "\nbroker = " broker    \
         "\nsync_topic = " sync "\ntopic = esp/#\n"
    static const char *const esp[] = {
        ESP_PEER("peer1", "mqtt://198.18.0.1", "s"),       /* the same */
        ESP_PEER("peer1", "mqtt://198.18.0.2", "s"),       /* another broker */
        ESP_PEER("peer1", "mqtt://198.18.0.1:1884", "s"),  /* another port */
        ESP_PEER("peer1", "mqtts://198.18.0.1:1883", "s"), /* tls */
        ESP_PEER("peer2", "mqtt://198.18.0.1", "s"),       /* the other role */
        ESP_PEER("peer1", "mqtt://198.18.0.1", "t"),       /* another topic base */
    };
#undef ESP_PEER
    config_t e;
    load(esp[0], &e);
    for (size_t i = 0; i < BL_ARRAY_LEN(esp); i++) {
        load(esp[i], &b);
        assert_int_equal(confdiff_same_link(&e.peers[0], &b.peers[0]), i == 0);
        config_free(&b);
    }
    config_free(&e);
    load("[site]\nname = cabin\n[signal]\nurl = mqtt://127.0.0.1\nsecret = 0123456789abcdeX\n", &b);
    assert_int_equal(confdiff_needs_restart(&a, &b, what, sizeof(what)), 1);
    assert_string_equal(what, "[signal] secret");
    config_free(&b);
    config_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_roundtrip), cmocka_unit_test(test_line_refused),
        cmocka_unit_test(test_section_loads), cmocka_unit_test(test_confdiff)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
