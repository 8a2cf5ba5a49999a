/* SPDX-License-Identifier: MIT */
#include "signaling.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "log.h"
#include "mqtt.h"

struct signaling {
    const config_t *cfg;
    const cert_t *cert;
    char *cert_b64;   /* our certificate, DER, base64: sent with every message */
    GHashTable *sigs; /* signatures seen recently -> ts (a re-sealed replay) */
    seal_keys_t keys;
    seal_replay_t *replay;
    char inbox[64];
    char client_id[32];
    mqtt_t *mqtt;
    signaling_stats_t stats;
    signaling_events_t ev;
    void *ud;
};

static void on_connect(void *ud)
{
    signaling_t *s = ud;
    LOG_INFO("signal", "connected to %s:%d, listening on our inbox (secret id %s)",
             s->cfg->signal_host, s->cfg->signal_port, s->keys.secret_hash);
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

/* ---- per-site signatures ----
 *
 * The network secret only hides signalling. Every message is also signed with the
 * sender's site key and carries its certificate; the receiver checks the certificate
 * against the fingerprint it pins for that peer and the signature over every field.
 * So a holder of the secret (or a hostile broker) cannot speak for another site: it
 * cannot even tear down a session by sending "restart" or a new offer in its name. */

static GByteArray *signed_bytes(const seal_msg_t *m)
{
    GByteArray *b = g_byte_array_new();
    char ts[32];
    snprintf(ts, sizeof(ts), "%lld", (long long)m->ts_ms);
    const char *parts[] = {"brokerless-signal-v1", m->from, m->to, m->sid, ts, m->type,
                           m->body ? m->body : ""};
    for (size_t i = 0; i < BL_ARRAY_LEN(parts); i++)
        g_byte_array_append(b, (const guint8 *)parts[i], (guint)strlen(parts[i]) + 1);
    return b;
}

static char *sign_msg(const cert_t *cert, const seal_msg_t *m)
{
    GByteArray *b = signed_bytes(m);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char sig[256];
    size_t n = sizeof(sig);
    char *out = NULL;
    if (c && EVP_DigestSignInit(c, NULL, EVP_sha256(), NULL, cert->key) == 1 &&
        EVP_DigestSign(c, sig, &n, b->data, b->len) == 1)
        out = g_base64_encode(sig, n);
    EVP_MD_CTX_free(c);
    g_byte_array_free(b, TRUE);
    return out;
}

/* 0 when m carries a certificate with the fingerprint pinned for its sender and a
 * valid signature by it. */
static int verify_msg(const config_peer_t *peer, const seal_msg_t *m, char fp[96])
{
    snprintf(fp, 96, "none");
    if (!m->cert || !m->sig)
        return BL_EAUTH;
    gsize clen = 0, slen = 0;
    guchar *der = g_base64_decode(m->cert, &clen);
    guchar *sig = g_base64_decode(m->sig, &slen);
    const unsigned char *p = der;
    X509 *x = der ? d2i_X509(NULL, &p, (long)clen) : NULL;
    int rc = BL_EAUTH;
    if (x && cert_fingerprint_of(x, fp) == 0 && strcmp(fp, peer->fingerprint) == 0) {
        GByteArray *b = signed_bytes(m);
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        if (c && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, X509_get0_pubkey(x)) == 1 &&
            EVP_DigestVerify(c, sig, slen, b->data, b->len) == 1)
            rc = 0;
        EVP_MD_CTX_free(c);
        g_byte_array_free(b, TRUE);
    }
    X509_free(x);
    g_free(der);
    g_free(sig);
    return rc;
}

/* A signature seen before: someone re-sealed a captured message under a new nonce. */
static bool sig_replayed(signaling_t *s, const seal_msg_t *m, int64_t now)
{
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, s->sigs);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (now - *(int64_t *)v > 2 * SEAL_MAX_AGE_MS)
            g_hash_table_iter_remove(&it);
    if (g_hash_table_contains(s->sigs, m->sig))
        return true;
    int64_t *ts = g_new(int64_t, 1);
    *ts = now;
    g_hash_table_insert(s->sigs, g_strdup(m->sig), ts);
    return false;
}

static void on_message(void *ud, const bl_msg_t *m)
{
    signaling_t *s = ud;
    seal_msg_t sm;
    char fp[96];
    if (strcmp(m->topic, s->inbox) != 0)
        return;
    int rc = seal_unpack(&s->keys, s->inbox, m->payload, m->payload_len, &sm);
    if (rc) {
        refuse(&s->stats.bad, "cannot open it", bl_strerror(rc));
        return;
    }
    rc = seal_replay_check(s->replay, &sm, bl_wall_ms());
    if (rc == BL_ESTALE)
        refuse(&s->stats.stale, "stale timestamp", sm.from);
    else if (rc == BL_EREPLAY)
        refuse(&s->stats.replayed, "replayed", sm.from);
    else if (rc)
        refuse(&s->stats.bad, "replay check failed", bl_strerror(rc));
    else if (strcmp(sm.to, s->cfg->site_name) != 0 || strcmp(sm.from, s->cfg->site_name) == 0)
        refuse(&s->stats.misdirected, "not addressed to us", sm.to);
    else if (!config_find_peer(s->cfg, sm.from))
        refuse(&s->stats.unknown_peer, "from a site that is not a configured peer", sm.from);
    else if (verify_msg(config_find_peer(s->cfg, sm.from), &sm, fp)) {
        char why[320];
        snprintf(why, sizeof(why), "%s, presented certificate %s, pinned %s", sm.from, fp,
                 config_find_peer(s->cfg, sm.from)->fingerprint);
        refuse(&s->stats.bad_signature, "not signed by the pinned certificate of", why);
    } else if (sig_replayed(s, &sm, bl_wall_ms()))
        refuse(&s->stats.replayed, "replayed", sm.from);
    else {
        s->stats.received++;
        LOG_DEBUG("signal", "%s from %s (session %s)", sm.type, sm.from, sm.sid);
        s->ev.on_message(s->ud, &sm);
    }
    seal_msg_clear(&sm);
}

signaling_t *signaling_new(GMainContext *ctx, const config_t *cfg, const cert_t *cert,
                           const signaling_events_t *ev, void *ud)
{
    signaling_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cfg = cfg;
    s->cert = cert;
    s->sigs = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
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
    /* "bl-" + part of the inbox hash: stable across restarts, says nothing. */
    snprintf(s->client_id, sizeof(s->client_id), "bl-%.20s", s->inbox + 3);
    s->replay = seal_replay_new();
    if (!s->replay)
        goto error;
    mqtt_opts_t o = {
        .name = "signal",
        .host = cfg->signal_host,
        .port = cfg->signal_port,
        .client_id = s->client_id,
        .username = cfg->signal_username,
        .password = cfg->signal_password,
        .tls = cfg->signal_tls,
        .cafile = cfg->signal_cafile,
        .keepalive = 20,
        .clean_start = true,
    };
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

int signaling_send(signaling_t *s, const char *to, const char *type, const char *sid,
                   const char *body)
{
    seal_msg_t m;
    memset(&m, 0, sizeof(m));
    snprintf(m.from, sizeof(m.from), "%s", s->cfg->site_name);
    snprintf(m.to, sizeof(m.to), "%s", to);
    snprintf(m.sid, sizeof(m.sid), "%s", sid);
    snprintf(m.type, sizeof(m.type), "%s", type);
    m.ts_ms = bl_wall_ms();
    m.body = (char *)body;
    m.cert = s->cert_b64;
    m.sig = sign_msg(s->cert, &m);
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
    seal_replay_free(s->replay);
    if (s->sigs)
        g_hash_table_destroy(s->sigs);
    g_free(s->cert_b64);
    OPENSSL_cleanse(&s->keys, sizeof(s->keys));
    free(s);
}
