/* SPDX-License-Identifier: MIT */
/* config.c - load and validate the site's INI file (format in docs/CONFIG.md).
 *
 * The text is read by confscan.c (a line scan of our own, then GKeyFile); here are the
 * sections and keys and what each must be. The result is built in a local config_t and
 * copied to *out only when everything is valid, so every error path just frees that
 * local. Strings are GLib-allocated (g_free). Over 600 lines: one loader per section,
 * and the peer section has two kinds (webrtc, esp32-example) with keys of their own;
 * each loader is short and only the file's sections tie them together. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "confscan.h"
#include "log.h"

/* An error at [sect] key, with its line. */
#define fail(L, sect, key, ...)                                                                    \
    confscan_fail((L), confscan_line((L), (sect), (key)), (sect), (key), __VA_ARGS__)

#define CONFIG_MAX_BYTES (1024 * 1024)
#define SECRET_MIN 16
#define SECRET_LINE_MAX 4096
#define DEFAULT_STATE_DIR "/var/lib/brokerless"
#define DEFAULT_QUEUE_MAX 1000000
#define MAX_MESSAGE_LIMIT (256u * 1024u * 1024u) /* MQTT's own payload limit */
#define LINK_WINDOW_MIN (256u * 1024u)
#define LINK_WINDOW_MAX (256u * 1024u * 1024u)
/* A peer's retained messages in our store: enough for thousands of device states, and a
 * bound on the disk a peer can fill (issue 12). */
#define DEFAULT_RETAINED_TOPICS 100000
#define DEFAULT_RETAINED_BYTES ((size_t)256 << 20)
#define RETAINED_BYTES_LIMIT ((size_t)1 << 40)
/* The example's topic base (CONFIG_EXAMPLE_MQTT_SYNC_TOPIC). */
#define ESP_SYNC_TOPIC_DEFAULT "/topic/serverless_mqtt"
#define ESP_SYNC_TOPIC_MAX 200

static const char *const site_keys[] = {
    "name",     "state_dir",   "log_level", "max_message_size", "queue_max_messages",
    "delivery", "link_window", NULL};
static const char *const local_keys[] = {"host",   "port",      "username",  "password", "tls",
                                         "cafile", "client_id", "keepalive", NULL};
static const char *const signal_keys[] = {"url",    "username",    "password", "cafile",
                                          "secret", "secret_file", NULL};
static const char *const ice_keys[] = {
    "stun", "turn",        "turn_username",        "turn_password",
    "tcp",  "force_relay", "send_host_candidates", NULL};
static const char *const metrics_keys[] = {"listen", NULL};
static const char *const peer_keys[] = {
    "fingerprint",        "mode",     "profile", "queue_qos0", "topic",      "retained_max_topics",
    "retained_max_bytes", "insecure", "role",    "broker",     "sync_topic", NULL};
/* Keys only an esp32-example peer has, and one only a webrtc peer has. */
static const char *const esp_keys[] = {"insecure", "role", "broker", "sync_topic", NULL};
static const char *const webrtc_keys[] = {"profile", NULL};

/* ---- sections ------------------------------------------------------------------------- */

static int load_site(confscan_t *L, config_t *c)
{
    const char *S = "site";
    c->site_name = confscan_str(L, S, "name");
    if (!c->site_name)
        return fail(L, S, "name", "missing (required): this site's name");
    if (!bl_site_name_valid(c->site_name))
        return fail(L, S, "name",
                    "\"%.100s\" is not a valid site name (1 to 64 of A-Z a-z 0-9 . _ -)",
                    c->site_name);
    c->state_dir = confscan_str(L, S, "state_dir");
    if (!c->state_dir)
        c->state_dir = g_strdup(DEFAULT_STATE_DIR);
    c->log_level = LOG_LVL_INFO;
    char *lvl = confscan_str(L, S, "log_level");
    if (lvl && (c->log_level = log_level_parse(lvl)) < 0) {
        fail(L, S, "log_level", "\"%.100s\" is not debug, info, warn or error", lvl);
        g_free(lvl);
        return BL_EINVAL;
    }
    g_free(lvl);
    c->max_message_size = BL_MAX_MESSAGE_DEFAULT;
    if (confscan_size(L, S, "max_message_size", MAX_MESSAGE_LIMIT, &c->max_message_size))
        return BL_EINVAL;
    long q = DEFAULT_QUEUE_MAX;
    if (confscan_long(L, S, "queue_max_messages", 1, 1000000000L, &q))
        return BL_EINVAL;
    c->queue_max_messages = (size_t)q;
    char *d = confscan_str(L, S, "delivery");
    if (d && strcmp(d, "qos") && strcmp(d, "exactly-once") && strcmp(d, "at-least-once")) {
        fail(L, S, "delivery", "\"%.100s\" is not qos, exactly-once or at-least-once", d);
        g_free(d);
        return BL_EINVAL;
    }
    c->delivery = !d || !strcmp(d, "qos")      ? CONFIG_DELIVERY_QOS
                  : !strcmp(d, "exactly-once") ? CONFIG_DELIVERY_EXACTLY_ONCE
                                               : CONFIG_DELIVERY_AT_LEAST_ONCE;
    g_free(d);
    c->link_window = BL_LINK_WINDOW_DEFAULT;
    if (confscan_size(L, S, "link_window", LINK_WINDOW_MAX, &c->link_window))
        return BL_EINVAL;
    if (c->link_window < LINK_WINDOW_MIN)
        return fail(L, S, "link_window", "%zu bytes is less than the minimum of 256k",
                    c->link_window);
    return 0;
}

/* A broker's username, password and cafile in section S: a password needs a username, a
 * cafile needs TLS (b->tls; no_tls: how the section turns it on). */
static int load_login(confscan_t *L, const char *S, const char *no_tls, config_broker_t *b)
{
    b->username = confscan_str(L, S, "username");
    b->password = confscan_str(L, S, "password");
    if (b->password && !b->username)
        return fail(L, S, "password", "given without a username");
    b->cafile = confscan_str(L, S, "cafile");
    if (b->cafile && !b->tls)
        return fail(L, S, "cafile", "given but %s", no_tls);
    return 0;
}

static int load_local(confscan_t *L, config_t *c)
{
    const char *S = "local";
    config_broker_t *b = &c->local;
    b->host = confscan_str(L, S, "host");
    if (!b->host)
        b->host = g_strdup("127.0.0.1");
    if (confscan_bool(L, S, "tls", &b->tls))
        return BL_EINVAL;
    b->port = b->tls ? 8883 : 1883;
    if (confscan_int(L, S, "port", 1, 65535, &b->port))
        return BL_EINVAL;
    if (load_login(L, S, "tls is false (set tls = true)", b))
        return BL_EINVAL;
    c->local_client_id = confscan_str(L, S, "client_id");
    if (!c->local_client_id)
        c->local_client_id = g_strconcat("brokerless-", c->site_name, NULL);
    c->local_keepalive = 30;
    return confscan_int(L, S, "keepalive", 5, 3600, &c->local_keepalive);
}

/* "mqtt://host[:port]" (1883) or "mqtts://host[:port]" (8883), optional trailing '/',
 * from [sect] key, which is there: b's host, port and tls. */
static int parse_url(confscan_t *L, const char *sect, const char *key, config_broker_t *b)
{
    char *url = confscan_str(L, sect, key);
    const char *rest = NULL, *why = NULL;
    b->tls = false;
    if (!url) /* present but empty */
        return fail(L, sect, key, "missing (required): mqtt://HOST[:PORT] or mqtts://HOST[:PORT]");
    if (g_ascii_strncasecmp(url, "mqtt://", 7) == 0)
        rest = url + 7;
    else if (g_ascii_strncasecmp(url, "mqtts://", 8) == 0)
        rest = url + 8, b->tls = true;
    if (!rest) {
        why = "scheme is not mqtt:// or mqtts://";
    } else {
        char *hp = g_strdup(rest);
        size_t n = strlen(hp);
        if (n && hp[n - 1] == '/')
            hp[n - 1] = '\0';
        why = confscan_parse_hostport(hp, b->tls ? 8883 : 1883, &b->host, &b->port);
        g_free(hp);
    }
    if (why)
        fail(L, sect, key, "\"%.100s\": %s", url, why);
    g_free(url);
    return why ? BL_EINVAL : 0;
}

static int load_url(confscan_t *L, config_t *c, bool need)
{
    if (!g_key_file_has_key(L->kf, "signal", "url", NULL)) {
        if (!need)
            return 0;
        return fail(L, "signal", "url",
                    "missing (required): mqtt://HOST[:PORT] or "
                    "mqtts://HOST[:PORT] of the signalling broker");
    }
    return parse_url(L, "signal", "url", &c->signal);
}

/* The first line of the file, trailing blanks removed. Only a regular file is read, so a
 * FIFO or device named by mistake cannot block or flood the daemon. */
static int read_secret_file(confscan_t *L, const char *name, char **out)
{
    char *path = g_path_is_absolute(name) ? g_strdup(name) : g_build_filename(L->dir, name, NULL);
    char buf[SECRET_LINE_MAX + 1];
    ssize_t n = -1;
    struct stat st;
    int err = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0)
        err = errno;
    else if (!S_ISREG(st.st_mode))
        err = EINVAL;
    else if (st.st_mode & 077)
        err = EACCES;
    else if ((n = read(fd, buf, SECRET_LINE_MAX)) < 0)
        err = errno;
    if (fd >= 0)
        close(fd);
    int rc = 0;
    if (err == EACCES && fd >= 0) {
        /* Like ssh with a private key: a secret others can read is not one. */
        rc = fail(L, "signal", "secret_file",
                  "\"%.200s\" is accessible to other users (mode %04o); "
                  "make it private: chmod 600 %.200s",
                  path, (unsigned)(st.st_mode & 07777), path);
    } else if (n < 0) {
        rc = fail(L, "signal", "secret_file", "cannot read \"%.200s\": %s", path,
                  err == EINVAL ? "not a regular file" : g_strerror(err));
    } else {
        buf[n] = '\0';
        char *nl = memchr(buf, '\n', (size_t)n);
        if (memchr(buf, '\0', (size_t)n))
            rc = fail(L, "signal", "secret_file", "\"%.200s\" contains a NUL byte", path);
        else if (!nl && n == SECRET_LINE_MAX)
            rc =
                fail(L, "signal", "secret_file", "first line of \"%.200s\" is longer than %d bytes",
                     path, SECRET_LINE_MAX - 1);
        if (nl)
            *nl = '\0';
        *out = g_strchomp(g_strdup(buf));
    }
    explicit_bzero(buf, sizeof(buf));
    if (rc == 0 && strlen(*out) < SECRET_MIN)
        rc = fail(L, "signal", "secret_file", "the secret in \"%.200s\" is shorter than %d bytes",
                  path, SECRET_MIN);
    g_free(path);
    return rc;
}

/* need: a webrtc peer is met through it (signal_needed). */
static int load_signal(confscan_t *L, config_t *c, bool need)
{
    const char *S = "signal";
    if (load_url(L, c, need))
        return BL_EINVAL;
    if (load_login(L, S, "the url is mqtt:// (use mqtts:// for TLS)", &c->signal))
        return BL_EINVAL;
    char *file = confscan_str(L, S, "secret_file");
    c->network_secret = confscan_str(L, S, "secret");
    int rc = 0;
    if (file && c->network_secret)
        rc = fail(L, S, "secret_file", "given together with secret; give exactly one");
    else if (file)
        rc = read_secret_file(L, file, &c->network_secret);
    else if (!c->network_secret && need)
        rc = fail(L, S, "secret",
                  "missing (required): the network secret shared by all "
                  "sites, or secret_file naming a file that holds it");
    else if (c->network_secret && strlen(c->network_secret) < SECRET_MIN)
        rc = fail(L, S, "secret", "shorter than %d bytes", SECRET_MIN);
    g_free(file);
    return rc;
}

static int load_ice(confscan_t *L, config_t *c)
{
    const char *S = "ice";
    c->send_host_candidates = true;
    if (confscan_hostport(L, S, "stun", 3478, &c->stun_host, &c->stun_port) ||
        confscan_hostport(L, S, "turn", 3478, &c->turn_host, &c->turn_port) ||
        confscan_bool(L, S, "tcp", &c->ice_tcp) ||
        confscan_bool(L, S, "force_relay", &c->force_relay) ||
        confscan_bool(L, S, "send_host_candidates", &c->send_host_candidates))
        return BL_EINVAL;
    c->turn_username = confscan_str(L, S, "turn_username");
    c->turn_password = confscan_str(L, S, "turn_password");
    if (c->turn_host && !c->turn_username)
        return fail(L, S, "turn_username", "missing (required with turn)");
    if (c->turn_host && !c->turn_password)
        return fail(L, S, "turn_password", "missing (required with turn)");
    if (!c->turn_host && (c->turn_username || c->turn_password))
        return fail(L, S, c->turn_username ? "turn_username" : "turn_password",
                    "given but there is no turn server (set turn = HOST[:PORT])");
    if (c->force_relay && !c->turn_host)
        return fail(L, S, "force_relay", "needs a turn server (set turn = HOST[:PORT])");
    return 0;
}

/* Off unless asked for: an endpoint is one more thing listening. */
static int load_metrics(confscan_t *L, config_t *c)
{
    return confscan_hostport(L, "metrics", "listen", 9469, &c->metrics_host, &c->metrics_port);
}

/* "peer NAME" -> "NAME" (maybe empty), or NULL when the section is not a peer's. */
static const char *peer_name_of(const char *sect)
{
    if (strncmp(sect, "peer", 4) != 0 || (sect[4] && sect[4] != ' ' && sect[4] != '\t'))
        return NULL;
    const char *n = sect + 4;
    while (*n == ' ' || *n == '\t')
        n++;
    return n;
}

static int load_rules(confscan_t *L, int sect_idx, const char *sect, config_peer_t *p)
{
    size_t n = 0;
    for (guint i = 0; i < L->keys->len; i++) {
        confscan_key_t *k = &g_array_index(L->keys, confscan_key_t, i);
        n += k->sect == sect_idx && strcmp(k->key, "topic") == 0;
    }
    if (n == 0)
        return fail(L, sect, "topic",
                    "missing: a peer needs at least one topic = PATTERN "
                    "[in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]] line");
    p->rules = g_new0(route_rule_t, n);
    for (guint i = 0; i < L->keys->len; i++) {
        confscan_key_t *k = &g_array_index(L->keys, confscan_key_t, i);
        if (k->sect != sect_idx || strcmp(k->key, "topic") != 0)
            continue;
        char why[400];
        if (router_rule_parse(k->value, &p->rules[p->n_rules], why, sizeof(why)))
            return confscan_fail(L, k->line, sect, "topic", "%s", why);
        p->n_rules++;
    }
    return 0;
}

static int load_common(confscan_t *L, int sect_idx, const char *sect, config_peer_t *p);

/* The example's topic base: a topic name (no wildcard) that "1" and "2" complete. */
static int load_sync_topic(confscan_t *L, const char *sect, config_peer_t *p)
{
    p->esp_sync_topic = confscan_str(L, sect, "sync_topic");
    if (!p->esp_sync_topic)
        p->esp_sync_topic = g_strdup(ESP_SYNC_TOPIC_DEFAULT);
    size_t n = strlen(p->esp_sync_topic);
    if (n == 0 || n > ESP_SYNC_TOPIC_MAX || strpbrk(p->esp_sync_topic, "+#"))
        return fail(L, sect, "sync_topic",
                    "\"%.100s\" is not a topic name of 1 to %d bytes without + or #",
                    p->esp_sync_topic, ESP_SYNC_TOPIC_MAX);
    return 0;
}

/* An ESP32 running Espressif's serverless_mqtt example (libjuice variant). */
static int load_esp(confscan_t *L, const config_t *c, const char *sect, config_peer_t *p)
{
    if (g_key_file_has_key(L->kf, sect, "fingerprint", NULL))
        return fail(L, sect, "fingerprint",
                    "an esp32-example peer has no certificate to pin; remove this line");
    if (confscan_bool(L, sect, "insecure", &p->insecure))
        return BL_EINVAL;
    if (!p->insecure)
        return fail(L, sect, "insecure",
                    "%s: mode = esp32-example is plaintext and unauthenticated (the board has no "
                    "key): its messages, and its addresses and ICE credentials on the broker, can "
                    "be read and forged by anyone on the path or on the broker. Set insecure = "
                    "true to accept that",
                    g_key_file_has_key(L->kf, sect, "insecure", NULL) ? "must be true"
                                                                      : "missing (required)");
    char *role = confscan_str(L, sect, "role");
    p->esp_role = !role ? 0 : !strcmp(role, "peer1") ? 1 : !strcmp(role, "peer2") ? 2 : -1;
    if (p->esp_role <= 0)
        fail(L, sect, "role",
             "%s%.100s%s: our role in the example's handshake, peer1 or peer2 (the board has the "
             "other one)",
             role ? "\"" : "missing (required)", role ? role : "",
             role ? "\" is not peer1 or peer2" : "");
    g_free(role);
    if (p->esp_role <= 0)
        return BL_EINVAL;
    if (g_key_file_has_key(L->kf, sect, "broker", NULL)) {
        if (parse_url(L, sect, "broker", &p->esp_broker))
            return BL_EINVAL;
    } else if (c->signal.host) {
        p->esp_broker = (config_broker_t){.host = g_strdup(c->signal.host),
                                          .port = c->signal.port,
                                          .tls = c->signal.tls,
                                          .username = g_strdup(c->signal.username),
                                          .password = g_strdup(c->signal.password),
                                          .cafile = g_strdup(c->signal.cafile)};
    } else {
        return fail(L, sect, "broker",
                    "missing: mqtt://HOST[:PORT] of the broker the board signals on (there is "
                    "no [signal] url to use instead)");
    }
    return load_sync_topic(L, sect, p);
}

static int load_peer(confscan_t *L, config_t *c, int sect_idx, config_peer_t *p)
{
    const char *sect = g_ptr_array_index(L->sects, sect_idx);
    const char *name = peer_name_of(sect);
    if (!bl_site_name_valid(name))
        return fail(L, sect, NULL,
                    "\"%.100s\" is not a valid site name (1 to 64 of A-Z a-z "
                    "0-9 . _ -)",
                    name);
    if (strcmp(name, c->site_name) == 0)
        return fail(L, sect, NULL,
                    "this is the site's own name ([site] name); a site does "
                    "not peer with itself");
    p->name = g_strdup(name);
    p->mode = confscan_str(L, sect, "mode");
    if (!p->mode)
        p->mode = g_strdup("webrtc");
    if (strcmp(p->mode, "webrtc") != 0 && strcmp(p->mode, "esp32-example") != 0)
        return fail(L, sect, "mode", "\"%.100s\" is not webrtc or esp32-example", p->mode);
    if (!strcmp(p->mode, "esp32-example")) {
        for (const char *const *k = webrtc_keys; *k; k++)
            if (g_key_file_has_key(L->kf, sect, *k, NULL))
                return fail(L, sect, *k, "only for mode = webrtc");
        if (load_esp(L, c, sect, p))
            return BL_EINVAL;
        return load_common(L, sect_idx, sect, p);
    }
    for (const char *const *k = esp_keys; *k; k++)
        if (g_key_file_has_key(L->kf, sect, *k, NULL))
            return fail(L, sect, *k, "only for mode = esp32-example");
    char *profile = confscan_str(L, sect, "profile");
    p->browser = profile && !strcmp(profile, "browser");
    bool profile_ok = !profile || p->browser || !strcmp(profile, "site");
    if (!profile_ok)
        fail(L, sect, "profile", "\"%.100s\" is not site or browser", profile);
    g_free(profile);
    if (!profile_ok)
        return BL_EINVAL;
    char *fp = confscan_str(L, sect, "fingerprint");
    char norm[96];
    int rc = 0;
    if (!fp)
        rc = fail(L, sect, "fingerprint",
                  "missing (required): the peer's certificate "
                  "fingerprint, as printed by brokerless init there");
    else if (config_fingerprint_normalise(fp, norm))
        rc = fail(L, sect, "fingerprint",
                  "\"%.100s\" is not a SHA-256 fingerprint (32 hex "
                  "bytes, AB:CD:...)",
                  fp);
    g_free(fp);
    if (rc)
        return rc;
    for (size_t i = 0; i < c->n_peers; i++)
        if (&c->peers[i] != p && c->peers[i].fingerprint &&
            strcmp(c->peers[i].fingerprint, norm) == 0)
            return fail(L, sect, "fingerprint",
                        "same as [peer %s]; each peer has its own "
                        "certificate",
                        c->peers[i].name);
    p->fingerprint = g_strdup(norm);
    return load_common(L, sect_idx, sect, p);
}

/* What every peer has: its queue, its retained caps and its rules. */
static int load_common(confscan_t *L, int sect_idx, const char *sect, config_peer_t *p)
{
    if (confscan_bool(L, sect, "queue_qos0", &p->queue_qos0))
        return BL_EINVAL;
    long topics = DEFAULT_RETAINED_TOPICS;
    p->retained_max_bytes = DEFAULT_RETAINED_BYTES;
    if (confscan_long(L, sect, "retained_max_topics", 1, 1000000000L, &topics) ||
        confscan_size(L, sect, "retained_max_bytes", RETAINED_BYTES_LIMIT, &p->retained_max_bytes))
        return BL_EINVAL;
    p->retained_max_topics = (size_t)topics;
    return load_rules(L, sect_idx, sect, p);
}

static int load_peers(confscan_t *L, config_t *c)
{
    size_t n = 0;
    for (guint i = 0; i < L->sects->len; i++)
        n += peer_name_of(g_ptr_array_index(L->sects, i)) != NULL;
    /* None yet is a site waiting for its first `brokerless peer add`. */
    c->peers = g_new0(config_peer_t, n ? n : 1);
    for (guint i = 0; i < L->sects->len; i++) {
        if (!peer_name_of(g_ptr_array_index(L->sects, i)))
            continue;
        /* Counted before it is filled, so config_free() frees a half-built peer. */
        config_peer_t *p = &c->peers[c->n_peers++];
        if (load_peer(L, c, (int)i, p))
            return BL_EINVAL;
    }
    return 0;
}

/* Every section and key must be one we know: a typo must not silently fall back to a
 * default. Reported in file order, at the offending line. */
static int check_names(confscan_t *L)
{
    static const struct {
        const char *name;
        const char *const *keys;
    } known[] = {{"site", site_keys},
                 {"local", local_keys},
                 {"signal", signal_keys},
                 {"ice", ice_keys},
                 {"metrics", metrics_keys}};
    const char *const **keys = g_new0(const char *const *, L->sects->len + 1);
    int rc = 0;
    for (guint i = 0; i < L->sects->len && !rc; i++) {
        const char *s = g_ptr_array_index(L->sects, i);
        int line = g_array_index(L->sect_lines, int, i);
        for (size_t j = 0; j < BL_ARRAY_LEN(known); j++)
            if (strcmp(s, known[j].name) == 0)
                keys[i] = known[j].keys;
        const char *peer = peer_name_of(s);
        if (peer && !*peer)
            rc = confscan_fail(L, line, s, NULL, "a peer section needs a name: [peer NAME]");
        else if (peer)
            keys[i] = peer_keys;
        else if (!keys[i])
            rc = confscan_fail(L, line, s, NULL,
                               "unknown section (known: [site], [local], [signal], "
                               "[ice], [metrics], [peer NAME])");
    }
    for (guint i = 0; i < L->keys->len && !rc; i++) {
        confscan_key_t *k = &g_array_index(L->keys, confscan_key_t, i);
        if (g_strv_contains((const char *const *)keys[k->sect], k->key))
            continue;
        char *list = g_strjoinv(", ", (char **)keys[k->sect]);
        rc = confscan_fail(L, k->line, g_ptr_array_index(L->sects, k->sect), k->key,
                           "unknown key (known here: %s)", list);
        g_free(list);
    }
    g_free(keys);
    return rc;
}

/* [signal] is required (url and secret) when a webrtc peer is configured; an
 * esp32-example peer without a broker of its own uses its url (load_esp says so). */
static bool signal_needed(confscan_t *L)
{
    bool need = false, peers = false;
    for (guint i = 0; i < L->sects->len && !need; i++) {
        const char *sect = g_ptr_array_index(L->sects, i);
        if (!peer_name_of(sect))
            continue;
        peers = true;
        char *mode = confscan_str(L, sect, "mode");
        need = !mode || strcmp(mode, "esp32-example") != 0;
        g_free(mode);
    }
    return need || !peers; /* a site without peers yet will pair them through it */
}

/* ---- public ----------------------------------------------------------------------------- */

static int load_all(confscan_t *L, char *text, config_t *c)
{
    GError *gerr = NULL;
    if (confscan_scan(L, text))
        return BL_EINVAL;
    /* Our scan accepts only what GKeyFile accepts, so this rarely speaks; when it does
     * its message has no line number, only the offending text. */
    if (!g_key_file_load_from_data(L->kf, text, strlen(text), G_KEY_FILE_NONE, &gerr)) {
        confscan_fail(L, 0, NULL, NULL, "%s", gerr->message);
        g_error_free(gerr);
        return BL_EINVAL;
    }
    if (check_names(L) || load_site(L, c) || load_local(L, c) ||
        load_signal(L, c, signal_needed(L)) || load_ice(L, c) || load_metrics(L, c) ||
        load_peers(L, c))
        return BL_EINVAL;
    return 0;
}

int config_load_data(const char *data, size_t len, const char *name, config_t *out, char *err,
                     size_t errlen)
{
    char dummy[1];
    confscan_t L = {.file = name ? name : "config", .err = err, .errlen = errlen};
    if (!err || !errlen) {
        L.err = dummy;
        L.errlen = sizeof(dummy);
    }
    L.err[0] = '\0';
    if (!data || !out)
        return confscan_fail(&L, 0, NULL, NULL, "no configuration given");
    if (len > CONFIG_MAX_BYTES)
        return confscan_fail(&L, 0, NULL, NULL, "larger than %d bytes", CONFIG_MAX_BYTES);
    int rc = confscan_check_bytes(&L, data, len);
    if (rc)
        return rc;

    config_t c = {0};
    char *text = g_strndup(data, len);
    L.dir = g_path_get_dirname(L.file);
    L.kf = g_key_file_new();
    L.sects = g_ptr_array_new_with_free_func(g_free);
    L.sect_lines = g_array_new(FALSE, FALSE, sizeof(int));
    L.keys = g_array_new(FALSE, FALSE, sizeof(confscan_key_t));
    g_array_set_clear_func(L.keys, confscan_key_clear);
    L.lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    rc = load_all(&L, text, &c);
    c.path = g_strdup(L.file);
    confscan_clear(&L);
    explicit_bzero(text, len); /* it may hold the network secret */
    g_free(text);
    if (rc) {
        config_free(&c);
        return rc;
    }
    *out = c;
    return 0;
}

int config_load_file(const char *path, config_t *out, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    struct stat st;
    if (!path || !out) {
        snprintf(err, errlen, "config: no file given");
        return BL_EINVAL;
    }
    if (stat(path, &st) != 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, g_strerror(errno));
        return BL_EIO;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "%s: %s", path,
                 S_ISREG(st.st_mode) ? "larger than 1 MiB" : "not a regular file");
        return BL_EINVAL;
    }
    gchar *data = NULL;
    gsize len = 0;
    GError *gerr = NULL;
    if (!g_file_get_contents(path, &data, &len, &gerr)) {
        snprintf(err, errlen, "%s: %s", path, gerr->message);
        g_error_free(gerr);
        return BL_EIO;
    }
    int rc = config_load_data(data, len, path, out, err, errlen);
    explicit_bzero(data, len);
    g_free(data);
    return rc;
}

static void wipe_free(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    g_free(s);
}

static void broker_clear(config_broker_t *b)
{
    g_free(b->host);
    g_free(b->username);
    wipe_free(b->password);
    g_free(b->cafile);
}

void config_free(config_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_peers; i++) {
        config_peer_t *p = &c->peers[i];
        for (size_t j = 0; j < p->n_rules; j++)
            router_rule_clear(&p->rules[j]);
        g_free(p->rules);
        g_free(p->name);
        g_free(p->fingerprint);
        g_free(p->mode);
        broker_clear(&p->esp_broker);
        g_free(p->esp_sync_topic);
    }
    g_free(c->peers);
    char *strs[] = {c->path,      c->site_name, c->state_dir,     c->local_client_id,
                    c->stun_host, c->turn_host, c->turn_username, c->metrics_host};
    for (size_t i = 0; i < BL_ARRAY_LEN(strs); i++)
        g_free(strs[i]);
    broker_clear(&c->local);
    broker_clear(&c->signal);
    wipe_free(c->turn_password);
    wipe_free(c->network_secret);
    memset(c, 0, sizeof(*c));
}

const config_peer_t *config_find_peer(const config_t *c, const char *name)
{
    for (size_t i = 0; c && name && i < c->n_peers; i++)
        if (c->peers[i].name && strcmp(c->peers[i].name, name) == 0)
            return &c->peers[i];
    return NULL;
}

char *config_signal_url(const config_t *c)
{
    return g_strdup_printf("%s://%s:%d", c->signal.tls ? "mqtts" : "mqtt", c->signal.host,
                           c->signal.port);
}

int config_fingerprint_normalise(const char *in, char out[96])
{
    if (!in || !out)
        return BL_EINVAL;
    const char *p = in;
    while (*p == ' ' || *p == '\t')
        p++;
    /* The SDP form (RFC 8122 5): "sha-256 AB:CD:...". */
    if (g_ascii_strncasecmp(p, "sha-256", 7) == 0 && (p[7] == ' ' || p[7] == '\t')) {
        p += 7;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    bool colons = n == 95;
    if (!colons && n != 64)
        return BL_EINVAL;
    char hex[64];
    for (size_t i = 0, k = 0; i < n; i++) {
        if (colons && i % 3 == 2) {
            if (p[i] != ':')
                return BL_EINVAL;
        } else if (g_ascii_isxdigit(p[i])) {
            hex[k++] = g_ascii_toupper(p[i]);
        } else {
            return BL_EINVAL;
        }
    }
    for (size_t i = 0; i < 32; i++) {
        out[i * 3] = hex[i * 2];
        out[i * 3 + 1] = hex[i * 2 + 1];
        out[i * 3 + 2] = i < 31 ? ':' : '\0';
    }
    return 0;
}
