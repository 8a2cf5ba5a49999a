/* SPDX-License-Identifier: MIT */
#include "signaling.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "log.h"
#include "mqtt.h"
#include "sigcheck.h"

/* The largest packet the signalling broker may send us: a sealed message of the largest
 * plaintext seal.c accepts (SEAL_MAX_JSON), in base64, with its topic and headers. */
#define SIGNAL_MAX_PACKET (SEAL_MAX_JSON * 4 / 3 + 4096)

struct signaling {
    const config_t *cfg;
    const cert_t *cert;
    char *cert_b64; /* our certificate, DER, base64: sent with every message */
    seal_keys_t keys;
    sigcheck_t *check; /* what we accept (sigcheck.h) */
    int64_t last_ts;   /* of the last message we sent */
    char inbox[64];
    mqtt_t *mqtt;
    signaling_stats_t stats;
    signaling_events_t ev;
    void *ud;
};

static void on_connect(void *ud)
{
    signaling_t *s = ud;
    /* Nothing derived from the secret is logged: each would let whoever reads the log
     * test guesses of it offline. */
    LOG_INFO("signal", "connected to %s:%d, listening on our inbox", s->cfg->signal.host,
             s->cfg->signal.port);
    if (s->ev.on_connect)
        s->ev.on_connect(s->ud);
}

static void on_disconnect(void *ud, int rc)
{
    (void)ud;
    (void)rc;
}

/* Drop one incoming message: count it, and log at WARN the first time of each kind
 * (a hostile broker could flood us; the counters keep the full story). */
static void refuse(uint64_t *counter, const char *what, const char *detail)
{
    (*counter)++;
    /* WARN at 1, 2, 4, 8, ... so a flood costs a few lines, not one each. */
    bool pow2 = (*counter & (*counter - 1)) == 0;
    log_level_t lvl = pow2 ? LOG_LVL_WARN : LOG_LVL_DEBUG;
    LOG_AT(lvl, "signal", "dropped a signalling message: %s%s%s (%llu so far)", what,
           detail ? ": " : "", detail ? detail : "", (unsigned long long)*counter);
}

/* What each refusal of sigcheck_accept is counted as (a uint64_t of signaling_stats_t) and
 * logged as. */
static const struct {
    size_t counter;
    const char *what;
} refusals[] = {
    [SIGCHECK_BAD] = {offsetof(signaling_stats_t, bad), "cannot open it"},
    [SIGCHECK_STALE] = {offsetof(signaling_stats_t, stale), "stale timestamp"},
    [SIGCHECK_MISDIRECTED] = {offsetof(signaling_stats_t, misdirected), "not addressed to us"},
    [SIGCHECK_UNKNOWN_PEER] = {offsetof(signaling_stats_t, unknown_peer),
                               "from a site that is not a configured peer"},
    [SIGCHECK_REPLAYED] = {offsetof(signaling_stats_t, replayed), "replayed"},
    [SIGCHECK_BAD_SIGNATURE] = {offsetof(signaling_stats_t, bad_signature),
                                "not signed by the pinned certificate of"},
    [SIGCHECK_LATE] = {offsetof(signaling_stats_t, late),
                       "an offer or restart not newer than the last one"},
    [SIGCHECK_FLOOD] = {offsetof(signaling_stats_t, flood),
                        "the peer sends more than signalling needs"},
};

/* The network secret only hides signalling: every message is also signed with the
 * sender's site key and checked against the fingerprint pinned for it (sigcheck.h), so a
 * holder of the secret (or a hostile broker) cannot speak for another site, not even to
 * tear down a session with "restart" or a new offer. */
static void on_message(void *ud, const bl_msg_t *m)
{
    signaling_t *s = ud;
    seal_msg_t sm;
    char why[400];
    if (strcmp(m->topic, s->inbox) != 0)
        return;
    signaling_stats_t *st = &s->stats;
    sigcheck_verdict_t res =
        sigcheck_accept(s->check, m->payload, m->payload_len, bl_wall_ms(), &sm, why, sizeof(why));
    if (res == SIGCHECK_OK) {
        st->received++;
        LOG_DEBUG("signal", "%s from %s (session %s), envelope v%u", sm.type, sm.from, sm.sid,
                  sm.version);
        s->ev.on_message(s->ud, &sm);
        seal_msg_clear(&sm);
    } else if ((size_t)res < BL_ARRAY_LEN(refusals) && refusals[res].what) {
        refuse((uint64_t *)((char *)st + refusals[res].counter), refusals[res].what, why);
    }
}

int signaling_rebind(signaling_t *s, const config_t *cfg)
{
    int rc = sigcheck_rebind(s->check, cfg);
    if (!rc)
        s->cfg = cfg;
    return rc;
}

signaling_t *signaling_new(GMainContext *ctx, const config_t *cfg, const cert_t *cert,
                           const signaling_events_t *ev, void *ud)
{
    signaling_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->cert = cert;
    unsigned char *der = NULL;
    int dlen = i2d_X509(cert->x509, &der);
    if (dlen <= 0)
        goto error;
    s->cert_b64 = g_base64_encode(der, (gsize)dlen);
    OPENSSL_free(der);
    s->ev = *ev;
    s->ud = ud;
    if (seal_derive(cfg->network_secret, &s->keys) ||
        seal_inbox_topic(cfg->network_secret, cfg->site_name, s->inbox, sizeof(s->inbox)))
        goto error;
    s->check = sigcheck_new(cfg, &s->keys, s->inbox, SIGCHECK_MAX_SEEN);
    if (!s->check)
        goto error;
    mqtt_opts_t o = {
        .name = "signal",
        /* A new random client id at every connection: one derived from what the broker
         * sees (the inbox topic) would let anyone take it over, again and again, and
         * keep our links from forming (a broker drops the older of two clients with
         * one id). */
        .fresh_client_id = true,
        /* The largest legitimate message is a sealed offer of a few KiB: the broker
         * keeps anything larger from us (3.1.2.11.4), so a holder of the secret cannot
         * make us buffer its junk. */
        .max_packet_size = SIGNAL_MAX_PACKET,
        .keepalive = 20,
        .clean_start = true,
    };
    mqtt_opts_set_broker(&o, &cfg->signal);
    mqtt_events_t mev = {
        .on_connect = on_connect, .on_disconnect = on_disconnect, .on_message = on_message};
    s->mqtt = mqtt_new(ctx, &o, &mev, s);
    if (!s->mqtt)
        goto error;
    return s;
error:
    signaling_free(s);
    return NULL;
}

int signaling_start(signaling_t *s)
{
    int rc = mqtt_subscribe(s->mqtt, s->inbox, 1, true, false);
    return rc ? rc : mqtt_start(s->mqtt);
}

/* The envelope version for `to`, by its profile alone: 2 (AES-256-GCM) for a browser,
 * whose WebCrypto has no ChaCha20-Poly1305, and 1 for a site. Not by the version it last
 * spoke: the version byte is not signed, and a holder of the secret could re-seal a
 * peer's message in the other version to turn our answers into one it cannot open
 * (docs/PROTOCOL.md "Envelope versions"). */
static uint8_t version_for(const signaling_t *s, const char *to)
{
    for (size_t i = 0; i < s->cfg->n_peers; i++)
        if (!strcmp(s->cfg->peers[i].name, to) && s->cfg->peers[i].browser)
            return SEAL_V2_AESGCM;
    return SEAL_V1_CHACHA;
}

int signaling_send(signaling_t *s, const char *to, const char *type, const char *sid,
                   const char *body)
{
    seal_msg_t m;
    memset(&m, 0, sizeof(m));
    snprintf(m.from, sizeof(m.from), "%s", s->cfg->site_name);
    snprintf(m.to, sizeof(m.to), "%s", to);
    snprintf(m.sid, sizeof(m.sid), "%s", sid);
    snprintf(m.type, sizeof(m.type), "%s", type);
    /* Strictly increasing within a second: a receiver refuses an offer or restart that
     * is not newer than the last one (sigcheck.h), and two can leave in one millisecond.
     * A clock set back further is followed as it is. */
    int64_t now = bl_wall_ms();
    m.ts_ms = now <= s->last_ts && s->last_ts - now < 1000 ? s->last_ts + 1 : now;
    s->last_ts = m.ts_ms;
    m.body = (char *)body;
    m.version = version_for(s, to);
    m.cert = s->cert_b64;
    m.sig = sigcheck_sign(s->cert, &m);
    if (!m.sig)
        return BL_EIO;

    char topic[64];
    int rc = seal_inbox_topic(s->cfg->network_secret, to, topic, sizeof(topic));
    if (rc)
        return rc;
    uint8_t *buf;
    size_t len;
    rc = seal_pack(&s->keys, topic, &m, &buf, &len);
    g_free(m.sig);
    if (rc)
        return rc;
    bl_msg_t pm;
    msg_init(&pm);
    pm.topic = topic;
    pm.payload = buf;
    pm.payload_len = len;
    pm.qos = 1;
    rc = mqtt_publish(s->mqtt, &pm, 0);
    free(buf);
    if (!rc)
        s->stats.sent++;
    return rc;
}

bool signaling_connected(const signaling_t *s)
{
    return mqtt_connected(s->mqtt);
}

const signaling_stats_t *signaling_stats(const signaling_t *s)
{
    return &s->stats;
}

void signaling_free(signaling_t *s)
{
    if (!s)
        return;
    mqtt_free(s->mqtt);
    sigcheck_free(s->check);
    g_free(s->cert_b64);
    OPENSSL_cleanse(&s->keys, sizeof(s->keys));
    free(s);
}
