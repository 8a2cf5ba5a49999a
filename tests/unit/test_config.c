/* SPDX-License-Identifier: MIT */
/* Unit tests for config.c: a full valid file, defaults, and a table of refusals, each
 * checked for a message that names the file, the [section] and the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "config.h"
#include "fixture.h"
#include "log.h"

#define FP1                                                                                        \
    "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:"   \
    "CD:EF"
#define FP1_LOWER_BARE "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define FP2                                                                                        \
    "FE:DC:BA:98:76:54:32:10:FE:DC:BA:98:76:54:32:10:FE:DC:BA:98:76:54:32:10:FE:DC:BA:98:76:54:"   \
    "32:10"

#define SITE "[site]\nname = home\n"
#define SIGNAL "[signal]\nurl = mqtt://127.0.0.1\nsecret = 0123456789abcdef\n"
#define PEER "[peer cabin]\nfingerprint = " FP1 "\ntopic = # both 1\n"
#define BASE SITE SIGNAL PEER

static int load(const char *text, config_t *c, char *err, size_t errlen)
{
    return config_load_data(text, strlen(text), "test.conf", c, err, errlen);
}

/* The file is refused; the message names test.conf, [sect] (if any), key (if any) and
 * contains `why`; *out is left exactly as it was. */
static void expect_err(const char *text, const char *sect, const char *key, const char *why)
{
    char err[512] = "";
    config_t c, before;
    memset(&c, 0x5a, sizeof(c));
    memcpy(&before, &c, sizeof(c));
    int rc = load(text, &c, err, sizeof(err));
    if (rc == 0)
        fail_msg("accepted:\n%s", text);
    if (getenv("BL_SHOW_ERRORS"))
        print_message("%s\n", err);
    assert_memory_equal(&c, &before, sizeof(c));
    char want[128];
    snprintf(want, sizeof(want), "[%s]", sect ? sect : "");
    if (!strstr(err, "test.conf") || (sect && !strstr(err, want)) || (key && !strstr(err, key)) ||
        !strstr(err, why))
        fail_msg("error \"%s\" should name test.conf, %s, %s and say \"%s\"", err,
                 sect ? want : "-", key ? key : "-", why);
}

static void test_full_config(void **state)
{
    (void)state;
    const char *text = "# a full site\n"
                       "[site]\n"
                       "name = home\n"
                       "state_dir = /srv/bl\n"
                       "log_level = debug\n"
                       "delivery = at-least-once\n"
                       "max_message_size = 4M\n"
                       "queue_max_messages = 5000\n"
                       "link_window = 16M\n"
                       "\n"
                       "[local]\n"
                       "host = broker.lan\n"
                       "port = 1884\n"
                       "username = bl\n"
                       "password = pw-local\n"
                       "tls = true\n"
                       "cafile = /etc/ssl/ca.pem\n"
                       "client_id = bl-home\n"
                       "keepalive = 60\n"
                       "[signal]\n"
                       "url = mqtts://signal.example.org:8884/\n"
                       "username = su\n"
                       "password = sp\n"
                       "cafile = /etc/ssl/sig.pem\n"
                       "secret = correct horse battery staple\n"
                       "[ice]\n"
                       "stun = stun.example.org:19302\n"
                       "turn = [2001:db8::1]\n"
                       "turn_username = tu\n"
                       "turn_password = tp\n"
                       "tcp = yes\n"
                       "force_relay = true\n"
                       "send_host_candidates = false\n"
                       "; a peer\n"
                       "[peer cabin]\n"
                       "fingerprint = sha-256 " FP1_LOWER_BARE "\n"
                       "mode = webrtc\n"
                       "queue_qos0 = true\n"
                       "topic = sensors/# out 1 home/ sites/home/\n"
                       "topic = cmd/+ in\n"
                       "[peer esp]\n"
                       "mode = esp32-example\n"
                       "insecure = true\n"
                       "role = peer2\n"
                       "topic = esp/#\n";
    char err[512] = "";
    config_t c;
    int rc = load(text, &c, err, sizeof(err));
    if (rc)
        fail_msg("refused: %s", err);
    assert_string_equal(c.path, "test.conf");
    assert_string_equal(c.site_name, "home");
    assert_string_equal(c.state_dir, "/srv/bl");
    assert_int_equal(c.log_level, LOG_LVL_DEBUG);
    assert_int_equal(c.delivery, CONFIG_DELIVERY_AT_LEAST_ONCE);
    assert_int_equal(c.max_message_size, 4 * 1024 * 1024);
    assert_int_equal(c.queue_max_messages, 5000);
    assert_int_equal(c.link_window, 16 * 1024 * 1024);
    assert_string_equal(c.local.host, "broker.lan");
    assert_int_equal(c.local.port, 1884);
    assert_string_equal(c.local.username, "bl");
    assert_string_equal(c.local.password, "pw-local");
    assert_true(c.local.tls);
    assert_string_equal(c.local.cafile, "/etc/ssl/ca.pem");
    assert_string_equal(c.local_client_id, "bl-home");
    assert_int_equal(c.local_keepalive, 60);
    assert_string_equal(c.signal.host, "signal.example.org");
    assert_int_equal(c.signal.port, 8884);
    assert_true(c.signal.tls);
    assert_string_equal(c.signal.username, "su");
    assert_string_equal(c.signal.password, "sp");
    assert_string_equal(c.signal.cafile, "/etc/ssl/sig.pem");
    assert_string_equal(c.network_secret, "correct horse battery staple");
    assert_string_equal(c.stun_host, "stun.example.org");
    assert_int_equal(c.stun_port, 19302);
    assert_string_equal(c.turn_host, "2001:db8::1");
    assert_int_equal(c.turn_port, 3478);
    assert_string_equal(c.turn_username, "tu");
    assert_string_equal(c.turn_password, "tp");
    assert_true(c.ice_tcp);
    assert_true(c.force_relay);
    assert_false(c.send_host_candidates);

    assert_int_equal(c.n_peers, 2);
    const config_peer_t *p = config_find_peer(&c, "cabin");
    assert_non_null(p);
    assert_string_equal(p->name, "cabin");
    assert_string_equal(p->fingerprint, FP1);
    assert_string_equal(p->mode, "webrtc");
    assert_true(p->queue_qos0);
    assert_int_equal(p->n_rules, 2);
    assert_string_equal(p->rules[0].pattern, "sensors/#");
    assert_int_equal(p->rules[0].dir, ROUTE_OUT);
    assert_int_equal(p->rules[0].qos, 1);
    assert_string_equal(p->rules[0].local_prefix, "home/");
    assert_string_equal(p->rules[0].remote_prefix, "sites/home/");
    assert_string_equal(p->rules[1].pattern, "cmd/+");
    assert_int_equal(p->rules[1].dir, ROUTE_IN);
    assert_int_equal(p->rules[1].qos, 2);
    assert_false(p->insecure);
    p = config_find_peer(&c, "esp");
    assert_non_null(p);
    assert_null(p->fingerprint);
    assert_string_equal(p->mode, "esp32-example");
    assert_true(p->insecure);
    assert_int_equal(p->esp_role, 2);
    /* The broker is the [signal] one, credentials and all. */
    assert_string_equal(p->esp_broker.host, "signal.example.org");
    assert_int_equal(p->esp_broker.port, 8884);
    assert_true(p->esp_broker.tls);
    assert_string_equal(p->esp_broker.username, "su");
    assert_string_equal(p->esp_sync_topic, "/topic/serverless_mqtt");
    assert_false(p->queue_qos0);
    assert_int_equal(p->n_rules, 1);
    assert_null(config_find_peer(&c, "home"));
    config_free(&c);
    assert_null(c.site_name);
    config_free(&c); /* twice is harmless */
}

static void test_defaults(void **state)
{
    (void)state;
    char err[512] = "";
    config_t c;
    int rc = load(BASE, &c, err, sizeof(err));
    if (rc)
        fail_msg("refused: %s", err);
    assert_string_equal(c.state_dir, "/var/lib/brokerless");
    assert_int_equal(c.log_level, LOG_LVL_INFO);
    assert_int_equal(c.delivery, CONFIG_DELIVERY_QOS); /* by each message's QoS unless asked */
    assert_int_equal(c.max_message_size, 16 * 1024 * 1024);
    assert_int_equal(c.queue_max_messages, 1000000);
    assert_int_equal(c.link_window, 4 * 1024 * 1024);
    assert_string_equal(c.local.host, "127.0.0.1");
    assert_int_equal(c.local.port, 1883);
    assert_null(c.local.username);
    assert_null(c.local.password);
    assert_false(c.local.tls);
    assert_null(c.local.cafile);
    assert_string_equal(c.local_client_id, "brokerless-home");
    assert_int_equal(c.local_keepalive, 30);
    assert_string_equal(c.signal.host, "127.0.0.1");
    assert_int_equal(c.signal.port, 1883);
    assert_false(c.signal.tls);
    assert_null(c.stun_host);
    assert_null(c.turn_host);
    assert_false(c.ice_tcp);
    assert_false(c.force_relay);
    assert_true(c.send_host_candidates);
    assert_int_equal(c.n_peers, 1);
    assert_string_equal(c.peers[0].mode, "webrtc");
    assert_false(c.peers[0].queue_qos0);
    assert_int_equal(c.peers[0].retained_max_topics, 100000);
    assert_int_equal(c.peers[0].retained_max_bytes, 256 * 1024 * 1024);
    config_free(&c);

    /* tls moves the default ports; mqtts:// means TLS on 8883. */
    rc = load(SITE "[local]\ntls = true\n[signal]\nurl = MQTTS://sig\nsecret = 0123456789abcdef\n"
                   "[ice]\nstun = [::1]\n" PEER,
              &c, err, sizeof(err));
    if (rc)
        fail_msg("refused: %s", err);
    assert_int_equal(c.local.port, 8883);
    assert_true(c.signal.tls);
    assert_int_equal(c.signal.port, 8883);
    assert_string_equal(c.stun_host, "::1");
    assert_int_equal(c.stun_port, 3478);
    config_free(&c);
}

static void test_syntax_variants(void **state)
{
    (void)state;
    /* CRLF, ';' comments, indentation, trailing blanks, 'k' suffix, empty = default. */
    const char *text = "; hello\r\n[site]\r\n  name=home  \r\n max_message_size = 64k\r\n"
                       "state_dir =\r\n; no = key\r\n[signal]\r\nurl=mqtt://h:1\r\n"
                       "secret=0123456789abcdef\r\n[peer cabin]  \r\nfingerprint=" FP1 "\r\n"
                       "topic=a\r\ntopic = b out\r\n";
    char err[512] = "";
    config_t c;
    int rc = load(text, &c, err, sizeof(err));
    if (rc)
        fail_msg("refused: %s", err);
    assert_string_equal(c.site_name, "home");
    assert_int_equal(c.max_message_size, 65536);
    assert_string_equal(c.state_dir, "/var/lib/brokerless");
    assert_int_equal(c.signal.port, 1);
    assert_int_equal(c.peers[0].n_rules, 2);
    assert_string_equal(c.peers[0].rules[1].pattern, "b");
    config_free(&c);
}

static void test_fingerprint_normalise(void **state)
{
    (void)state;
    char out[96];
    const char *ok[] = {FP1, FP1_LOWER_BARE, "sha-256 " FP1, "SHA-256  " FP1_LOWER_BARE,
                        "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:"
                        "ef:01:23:45:67:89:ab:cd:ef"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        memset(out, 0, sizeof(out));
        assert_int_equal(config_fingerprint_normalise(ok[i], out), 0);
        assert_string_equal(out, FP1);
    }
    const char *bad[] = {"",
                         "AB:CD",
                         FP1 ":00",
                         FP1_LOWER_BARE "0",
                         "sha-1 " FP1,
                         "sha-256" FP1,
                         "0123456789abcdef0123456789abcdef0123456789abcdef01234567"
                         "89abcdeg",
                         "01-23-45-67-89-AB-CD-EF-01-23-45-67-89-AB-CD-EF-01-23-45-67-89-AB-CD-"
                         "EF-01-23-45-67-89-AB-CD-EF",
                         "0:123:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:"
                         "01:23:45:67:89:AB:CD:EF"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(config_fingerprint_normalise(bad[i], out), BL_EINVAL);
    assert_int_equal(config_fingerprint_normalise(NULL, out), BL_EINVAL);
}

/* A temporary directory holding a config file and, optionally, a secret file. */
static char *write_tmp(const char *dir, const char *name, const char *text)
{
    char *path = g_build_filename(dir, name, NULL);
    assert_true(g_file_set_contents(path, text, -1, NULL));
    return path;
}

static void test_load_file_and_secret_file(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir("bl-config");
    char *secret = write_tmp(dir, "secret", "  a secret of some length \t\r\nsecond line\n");
    /* Readable by others: refused, with the chmod that fixes it (issue 12 item 10). */
    assert_int_equal(g_chmod(secret, 0644), 0);
    char *open_conf =
        write_tmp(dir, "open.conf", SITE "[signal]\nurl = mqtt://h\nsecret_file = secret\n" PEER);
    char err0[512] = "";
    config_t c0;
    assert_int_equal(config_load_file(open_conf, &c0, err0, sizeof(err0)), BL_EINVAL);
    assert_non_null(strstr(err0, "[signal] secret_file"));
    assert_non_null(strstr(err0, "mode 0644"));
    assert_non_null(strstr(err0, "chmod 600 "));
    g_free(open_conf);
    assert_int_equal(g_chmod(secret, 0640), 0);
    open_conf =
        write_tmp(dir, "open2.conf", SITE "[signal]\nurl = mqtt://h\nsecret_file = secret\n" PEER);
    assert_int_equal(config_load_file(open_conf, &c0, err0, sizeof(err0)), BL_EINVAL);
    assert_non_null(strstr(err0, "mode 0640"));
    g_free(open_conf);
    assert_int_equal(g_chmod(secret, 0600), 0);
    char *conf =
        write_tmp(dir, "site.conf", SITE "[signal]\nurl = mqtt://h\nsecret_file = secret\n" PEER);
    char err[512] = "";
    config_t c;
    int rc = config_load_file(conf, &c, err, sizeof(err));
    if (rc)
        fail_msg("refused: %s", err);
    /* Relative to the config file's directory; trailing blanks stripped, leading kept. */
    assert_string_equal(c.network_secret, "  a secret of some length");
    assert_string_equal(c.path, conf);
    config_free(&c);

    char *abs = g_strdup_printf(SITE "[signal]\nurl = mqtt://h\nsecret_file = %s\n" PEER, secret);
    rc = load(abs, &c, err, sizeof(err));
    assert_int_equal(rc, 0);
    config_free(&c);
    g_free(abs);

    /* A secret file whose first line is too short is named in the error. */
    char *short_secret = write_tmp(dir, "short", "tiny\n");
    assert_int_equal(g_chmod(short_secret, 0600), 0);
    g_free(short_secret);
    g_free(conf);
    conf =
        write_tmp(dir, "short.conf", SITE "[signal]\nurl = mqtt://h\nsecret_file = short\n" PEER);
    assert_int_equal(config_load_file(conf, &c, err, sizeof(err)), BL_EINVAL);
    assert_non_null(strstr(err, "short.conf"));
    assert_non_null(strstr(err, "[signal] secret_file"));
    assert_non_null(strstr(err, "short\" is shorter than 16"));

    /* A directory is not a secret. */
    abs = g_strdup_printf(SITE "[signal]\nurl = mqtt://h\nsecret_file = %s\n" PEER, dir);
    expect_err(abs, "signal", "secret_file", "not a regular file");
    g_free(abs);

    g_free(secret);
    g_free(conf);
    fixture_rmdir(dir);

    assert_int_equal(config_load_file("/nonexistent/bl.conf", &c, err, sizeof(err)), BL_EIO);
    assert_non_null(strstr(err, "/nonexistent/bl.conf"));
}

/* ---- the refusals ------------------------------------------------------------------- */

#define ESP "[peer cabin]\nmode = esp32-example\ntopic = #\n"

/* Each refused, as expect_err checks: the file, section, key and reason it names. */
static const struct refusal {
    const char *text, *sect, *key, *why;
} k_refusals[] = {
    /* missing name */
    {"[site]\nlog_level = info\n" SIGNAL PEER, "site", "name", "missing"},
    {SIGNAL PEER, "site", "name", "missing"},
    /* bad name */
    {"[site]\nname = my home\n" SIGNAL PEER, "site", "name", "not a valid site name"},
    /* bad delivery */
    {SITE "delivery = twice\n" SIGNAL PEER, "site", "delivery",
     "\"twice\" is not qos, exactly-once or at-least-once"},
    /* bad log level */
    {SITE "log_level = loud\n" SIGNAL PEER, "site", "log_level",
     "\"loud\" is not debug, info, warn or error"},
    /* bad max size */
    {SITE "max_message_size = 0\n" SIGNAL PEER, "site", "max_message_size", "size"},
    {SITE "max_message_size = 257M\n" SIGNAL PEER, "site", "max_message_size",
     "from 1 to 268435456"},
    {SITE "max_message_size = 10G\n" SIGNAL PEER, "site", "max_message_size", "10G"},
    {SITE "max_message_size = -1\n" SIGNAL PEER, "site", "max_message_size", "-1"},
    /* bad link window */
    {SITE "link_window = 100k\n" SIGNAL PEER, "site", "link_window", "minimum of 256k"},
    {SITE "link_window = 300M\n" SIGNAL PEER, "site", "link_window", "from 1 to 268435456"},
    {SITE "link_window = lots\n" SIGNAL PEER, "site", "link_window", "lots"},
    /* bad queue max */
    {SITE "queue_max_messages = lots\n" SIGNAL PEER, "site", "queue_max_messages",
     "not a whole number"},
    /* bad port */
    {BASE "[local]\nport = 70000\n", "local", "port", "from 1 to 65535"},
    {BASE "[local]\nport = 12ab\n", "local", "port", "\"12ab\""},
    /* bad keepalive */
    {BASE "[local]\nkeepalive = 1\n", "local", "keepalive", "from 5 to 3600"},
    /* bad bool */
    {BASE "[local]\ntls = maybe\n", "local", "tls", "not a boolean"},
    /* local cafile without tls */
    {BASE "[local]\ncafile = /ca.pem\n", "local", "cafile", "tls is false"},
    /* missing url */
    {SITE "[signal]\nsecret = 0123456789abcdef\n" PEER, "signal", "url", "missing"},
    /* bad url scheme */
    {SITE "[signal]\nurl = http://h\nsecret = 0123456789abcdef\n" PEER, "signal", "url",
     "scheme is not mqtt:// or mqtts://"},
    {SITE "[signal]\nurl = mqtt://h:0\nsecret = 0123456789abcdef\n" PEER, "signal", "url", "port"},
    {SITE "[signal]\nurl = mqtt://\nsecret = 0123456789abcdef\n" PEER, "signal", "url", "host"},
    /* missing secret */
    {SITE "[signal]\nurl = mqtt://h\n" PEER, "signal", "secret", "missing"},
    /* secret and secret file */
    {SITE "[signal]\nurl = mqtt://h\nsecret = 0123456789abcdef\nsecret_file = /x\n" PEER, "signal",
     "secret_file", "exactly one"},
    /* short secret */
    {SITE "[signal]\nurl = mqtt://h\nsecret = 0123456789abcde\n" PEER, "signal", "secret",
     "shorter than 16"},
    /* unreadable secret file */
    {SITE "[signal]\nurl = mqtt://h\nsecret_file = /nonexistent/bl-secret\n" PEER, "signal",
     "secret_file", "cannot read \"/nonexistent/bl-secret\""},
    /* turn without credentials */
    {BASE "[ice]\nturn = turn.example.org\n", "ice", "turn_username", "missing"},
    {BASE "[ice]\nturn = t\nturn_username = u\n", "ice", "turn_password", "missing"},
    {BASE "[ice]\nturn_username = u\nturn_password = p\n", "ice", "turn_username",
     "no turn server"},
    /* force relay without turn */
    {BASE "[ice]\nforce_relay = true\n", "ice", "force_relay", "needs a turn server"},
    /* bad stun */
    {BASE "[ice]\nstun = stun.example.org:99999\n", "ice", "stun", "port"},
    {BASE "[ice]\nstun = ::1\n", "ice", "stun", "brackets"},
    {BASE "[ice]\nstun = :3478\n", "ice", "stun", "host"},
    {BASE "[ice]\nstun = stun:stun.example.org:3478\n", "ice", "stun", "HOST[:PORT]"},
    /* unknown section */
    {BASE "[sitee]\nname = x\n", "sitee", NULL, "unknown section"},
    {BASE "[peer]\ntopic = #\n", "peer", NULL, "needs a name"},
    /* unknown key */
    {SITE "nmae = x\n" SIGNAL PEER, "site", "nmae", "unknown key"},
    {BASE "[local]\nprot = 1\n", "local", "prot", "unknown key"},
    {SITE SIGNAL "[peer cabin]\nfingerprint = " FP1 "\ntopic = #\ntopics = a\n", "peer cabin",
     "topics", "unknown key"},
    {SITE "name[de] = x\n" SIGNAL PEER, "site", "name[de]", "unknown key"},
    /* duplicate key */
    {SITE "name = again\n" SIGNAL PEER, "site", "name", "given twice"},
    /* peer own name */
    {BASE "[peer home]\nfingerprint = " FP2 "\ntopic = #\n", "peer home", NULL, "own name"},
    /* peer bad name */
    {BASE "[peer the/cabin]\nfingerprint = " FP2 "\ntopic = #\n", "peer the/cabin", NULL,
     "not a valid site name"},
    /* missing fingerprint */
    {SITE SIGNAL "[peer cabin]\ntopic = #\n", "peer cabin", "fingerprint", "missing"},
    /* bad fingerprint */
    {SITE SIGNAL "[peer cabin]\nfingerprint = AB:CD\ntopic = #\n", "peer cabin", "fingerprint",
     "not a SHA-256 fingerprint"},
    /* duplicate fingerprint */
    {BASE "[peer barn]\nfingerprint = " FP1_LOWER_BARE "\ntopic = #\n", "peer barn", "fingerprint",
     "same as [peer cabin]"},
    /* duplicate peer section */
    {BASE "[peer cabin]\ntopic = x\n", "peer cabin", NULL, "section repeated"},
    {SITE SIGNAL PEER "[site]\nlog_level = info\n", "site", NULL, "section repeated"},
    /* peer without topic */
    {SITE SIGNAL "[peer cabin]\nfingerprint = " FP1 "\n", "peer cabin", "topic",
     "at least one topic"},
    /* bad topic rule */
    {SITE SIGNAL "[peer cabin]\nfingerprint = " FP1 "\ntopic = a\ntopic = b sideways\n",
     "peer cabin", "topic", "direction \"sideways\" is not in, out or both"},
    /* The line of the bad rule is given. */
    {SITE SIGNAL "[peer cabin]\nfingerprint = " FP1 "\ntopic = a\ntopic = b sideways\n",
     "peer cabin", "topic", "test.conf:9:"},
    /* bad mode */
    {SITE SIGNAL "[peer cabin]\nfingerprint = " FP1 "\nmode = udp\ntopic = #\n", "peer cabin",
     "mode", "\"udp\" is not webrtc or esp32-example"},
    /* esp32-example */
    {SITE SIGNAL ESP "role = peer1\n", "peer cabin", "insecure",
     "missing (required): mode = esp32-example is plaintext and unauthenticated"},
    {SITE SIGNAL ESP "role = peer1\ninsecure = false\n", "peer cabin", "insecure", "must be true"},
    {SITE SIGNAL ESP "insecure = true\n", "peer cabin", "role", "missing (required)"},
    {SITE SIGNAL ESP "insecure = true\nrole = peer3\n", "peer cabin", "role",
     "\"peer3\" is not peer1 or peer2"},
    {SITE SIGNAL ESP "insecure = true\nrole = peer1\nfingerprint = " FP1 "\n", "peer cabin",
     "fingerprint", "no certificate to pin"},
    {SITE SIGNAL ESP "insecure = true\nrole = peer1\nbroker = http://x\n", "peer cabin", "broker",
     "scheme is not mqtt:// or mqtts://"},
    {SITE SIGNAL ESP "insecure = true\nrole = peer1\nsync_topic = a/#\n", "peer cabin",
     "sync_topic", "without + or #"},
    /* No broker of its own and no [signal] url to use instead. */
    {SITE ESP "insecure = true\nrole = peer1\n", "peer cabin", "broker", "no [signal] url"},
    /* The esp32-example keys on a webrtc peer, and a webrtc peer without [signal]. */
    {BASE "[peer barn]\nfingerprint = " FP2 "\ntopic = #\nrole = peer1\n", "peer barn", "role",
     "only for mode = esp32-example"},
    {SITE "[signal]\nurl = mqtt://h\n" PEER, "signal", "secret", "missing (required)"},
    {SITE PEER, "signal", "url", "missing (required)"},
    /* Present but empty (found by fuzz_config). */
    {SITE "[signal]\nurl =\nsecret = 0123456789abcdef\n" PEER, "signal", "url",
     "missing (required)"},
};
#undef ESP

static void test_refusals(void **s)
{
    (void)s;
    for (size_t i = 0; i < sizeof(k_refusals) / sizeof(k_refusals[0]); i++)
        expect_err(k_refusals[i].text, k_refusals[i].sect, k_refusals[i].key, k_refusals[i].why);
}

/* "My ESP32 at the cabin, this Linux box at home": no [signal], no secret, no fingerprint. */
static void test_esp32_alone(void **s)
{
    (void)s;
    char err[512] = "";
    config_t c;
    const char *text = SITE "[ice]\nstun = 198.18.0.1\n"
                            "[peer cabin]\nmode = esp32-example\ninsecure = yes\nrole = peer1\n"
                            "broker = mqtt://198.18.0.1:1884\nsync_topic = /cabin/sync\n"
                            "topic = # both 0\n";
    if (load(text, &c, err, sizeof(err)))
        fail_msg("refused: %s", err);
    assert_null(c.signal.host);
    assert_null(c.network_secret);
    const config_peer_t *p = &c.peers[0];
    assert_int_equal(p->esp_role, 1);
    assert_string_equal(p->esp_broker.host, "198.18.0.1");
    assert_int_equal(p->esp_broker.port, 1884);
    assert_false(p->esp_broker.tls);
    assert_null(p->esp_broker.username);
    assert_string_equal(p->esp_sync_topic, "/cabin/sync");
    config_free(&c);
}

static void test_retained_caps(void **s)
{
    (void)s;
    char err[512] = "";
    config_t c;
    const char *text =
        SITE SIGNAL "[peer cabin]\nfingerprint = " FP1 "\ntopic = #\nretained_max_topics = 50\n"
                    "retained_max_bytes = 3M\n";
    if (load(text, &c, err, sizeof(err)))
        fail_msg("refused: %s", err);
    assert_int_equal(c.peers[0].retained_max_topics, 50);
    assert_int_equal(c.peers[0].retained_max_bytes, 3 * 1024 * 1024);
    config_free(&c);
    expect_err(SITE SIGNAL "[peer cabin]\nfingerprint = " FP1
                           "\ntopic = #\nretained_max_topics = 0\n",
               "peer cabin", "retained_max_topics", "not a whole number from 1");
    expect_err(SITE SIGNAL "[peer cabin]\nfingerprint = " FP1
                           "\ntopic = #\nretained_max_bytes = lots\n",
               "peer cabin", "retained_max_bytes", "not a size");
}

/* A site waiting for its first `brokerless peer add` has a valid config. */
static void test_no_peers(void **s)
{
    (void)s;
    config_t c;
    char err[512];
    assert_int_equal(
        config_load_data(SITE SIGNAL, strlen(SITE SIGNAL), "t.conf", &c, err, sizeof(err)), 0);
    assert_int_equal(c.n_peers, 0);
    config_free(&c);
}

static void test_err_syntax(void **s)
{
    (void)s;
    expect_err(SITE "this line is wrong\n" SIGNAL PEER, NULL, NULL,
               "test.conf:3: \"this line is wrong\" is not a key = value line");
    expect_err("name = home\n" SITE SIGNAL PEER, NULL, "name", "test.conf:1:");
    expect_err(SITE "[signal] # comment\n", NULL, NULL, "test.conf:3:");
    expect_err(SITE "[]\n", NULL, NULL, "not a [section] header");
    expect_err(SITE "= x\n", NULL, NULL, "no key");
    const char nul[] = "[site]\nname = h\0me\n";
    char err[256];
    config_t c;
    assert_int_equal(config_load_data(nul, sizeof(nul) - 1, "test.conf", &c, err, sizeof(err)),
                     BL_EINVAL);
    assert_non_null(strstr(err, "test.conf:2: contains a NUL byte"));
    expect_err(SITE "state_dir = /\xff\n", NULL, NULL, "test.conf:3: is not valid UTF-8");
}

static void test_err_null_and_tiny_buffers(void **s)
{
    (void)s;
    config_t c;
    char err[8];
    assert_int_equal(config_load_data(SITE, strlen(SITE), "x", &c, NULL, 0), BL_EINVAL);
    assert_int_equal(config_load_data(SITE, strlen(SITE), "test.conf", &c, err, sizeof(err)),
                     BL_EINVAL);
    assert_int_equal(strlen(err), sizeof(err) - 1);
    assert_int_equal(config_load_data(NULL, 0, "x", &c, err, sizeof(err)), BL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_retained_caps),
        cmocka_unit_test(test_syntax_variants),
        cmocka_unit_test(test_fingerprint_normalise),
        cmocka_unit_test(test_load_file_and_secret_file),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_esp32_alone),
        cmocka_unit_test(test_no_peers),
        cmocka_unit_test(test_err_syntax),
        cmocka_unit_test(test_err_null_and_tiny_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
