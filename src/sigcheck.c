/* SPDX-License-Identifier: MIT */
/* sigcheck.c - the checks of sigcheck.h, in its order. The replay cache is keyed on a
 * digest of the signed bytes rather than on the nonce or the signature's text: a holder
 * of the secret chooses nonces freely, and an ECDSA signature has more than one valid
 * encoding (base64 that the decoder reads alike, or (r, n - s) for (r, s)). */
#include "sigcheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <openssl/evp.h>

#include "peerid.h"

#define ID_LEN 32 /* SHA-256 */

typedef struct seen {
    uint8_t id[ID_LEN];
    int64_t forget_ms; /* its message is stale from then on: ts + SEAL_MAX_AGE_MS */
} seen_t;

/* What one peer had accepted. */
typedef struct peer_seen {
    const config_peer_t *peer;
    GHashTable *ids; /* seen_t.id -> seen_t (borrowed from `order`) */
    GQueue order;    /* seen_t *, in arrival order (owned) */
    bool changed;    /* an offer or restart was accepted: last_change_ts holds */
    int64_t last_change_ts;
} peer_seen_t;

struct sigcheck {
    const config_t *cfg;
    const seal_keys_t *keys;
    char *inbox;
    size_t max_seen;
    peer_seen_t *peers; /* one per cfg->peers[i] */
};

static guint id_hash(gconstpointer p)
{
    guint h;
    memcpy(&h, p, sizeof(h)); /* a SHA-256 digest: any 4 bytes are a good hash */
    return h;
}

static gboolean id_equal(gconstpointer a, gconstpointer b)
{
    return memcmp(a, b, ID_LEN) == 0;
}

sigcheck_t *sigcheck_new(const config_t *cfg, const seal_keys_t *keys, const char *inbox,
                         size_t max_seen)
{
    sigcheck_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->cfg = cfg;
    c->keys = keys;
    c->max_seen = max_seen;
    c->inbox = strdup(inbox);
    c->peers = calloc(cfg->n_peers ? cfg->n_peers : 1, sizeof(*c->peers));
    if (!c->inbox || !c->peers) {
        sigcheck_free(c);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_peers; i++) {
        c->peers[i].peer = &cfg->peers[i];
        c->peers[i].ids = g_hash_table_new(id_hash, id_equal);
        g_queue_init(&c->peers[i].order);
    }
    return c;
}

static void peer_seen_clear(peer_seen_t *ps)
{
    if (ps->ids)
        g_hash_table_destroy(ps->ids);
    g_queue_clear_full(&ps->order, free);
}

int sigcheck_rebind(sigcheck_t *c, const config_t *cfg)
{
    peer_seen_t *np = calloc(cfg->n_peers ? cfg->n_peers : 1, sizeof(*np));
    if (!np)
        return BL_ENOMEM;
    for (size_t i = 0; i < cfg->n_peers; i++) {
        np[i].peer = &cfg->peers[i];
        for (size_t j = 0; j < c->cfg->n_peers; j++) {
            peer_seen_t *old = &c->peers[j];
            if (old->ids && !strcmp(old->peer->name, cfg->peers[i].name)) {
                np[i] = *old; /* moves the seen set */
                np[i].peer = &cfg->peers[i];
                memset(old, 0, sizeof(*old));
            }
        }
        if (!np[i].ids) {
            np[i].ids = g_hash_table_new(id_hash, id_equal);
            g_queue_init(&np[i].order);
        }
    }
    for (size_t j = 0; j < c->cfg->n_peers; j++)
        peer_seen_clear(&c->peers[j]);
    free(c->peers);
    c->peers = np;
    c->cfg = cfg;
    return 0;
}

void sigcheck_free(sigcheck_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->peers && i < c->cfg->n_peers; i++)
        peer_seen_clear(&c->peers[i]);
    free(c->peers);
    free(c->inbox);
    free(c);
}

/* ---- signatures ---- */

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

char *sigcheck_sign(const cert_t *cert, const seal_msg_t *m)
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

/* true when m carries the key pinned for peer (a certificate, or a browser's public key:
 * peerid.h) and a valid signature by it over `b`; fp receives the presented fingerprint
 * (or "none"), res what was wrong. */
static bool signed_by(const config_peer_t *peer, const seal_msg_t *m, const GByteArray *b,
                      char fp[96], peerid_result_t *res)
{
    *res = peerid_verify(peer->browser ? PEERID_BROWSER : PEERID_SITE, peer->fingerprint, m->cert,
                         m->sig, b->data, b->len, fp);
    return *res == PEERID_OK;
}

/* ---- the replay cache ---- */

/* Only a peer with a pinned certificate speaks sealed signalling (an esp32-example
 * peer has none, and its name in a sealed message is an unknown sender's). */
static peer_seen_t *peer_seen_of(sigcheck_t *c, const char *name)
{
    for (size_t i = 0; i < c->cfg->n_peers; i++)
        if (c->peers[i].peer->fingerprint && !strcmp(c->peers[i].peer->name, name))
            return &c->peers[i];
    return NULL;
}

/* Forget, oldest arrival first, what would be refused as stale from now on. An entry
 * that arrived after one still current waits for it: the cap bounds them all. */
static void prune(peer_seen_t *ps, int64_t now)
{
    seen_t *e;
    while ((e = g_queue_peek_head(&ps->order)) && e->forget_ms < now) {
        g_hash_table_remove(ps->ids, e->id);
        free(g_queue_pop_head(&ps->order));
    }
}

static bool remember(peer_seen_t *ps, const uint8_t id[ID_LEN], int64_t ts)
{
    seen_t *e = malloc(sizeof(*e));
    if (!e)
        return false;
    memcpy(e->id, id, ID_LEN);
    e->forget_ms = ts + SEAL_MAX_AGE_MS;
    g_queue_push_tail(&ps->order, e);
    g_hash_table_add(ps->ids, e->id);
    return true;
}

static bool changes_session(const seal_msg_t *m)
{
    return !strcmp(m->type, "offer") || !strcmp(m->type, "restart");
}

static int digest(const GByteArray *b, uint8_t id[ID_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(b->data, b->len, id, &n, EVP_sha256(), NULL) == 1 && n == ID_LEN ? 0 : BL_EIO;
}

/* ---- the checks ---- */

/* Everything after opening: freshness, address, peer, replay, signature, order, cap. */
static sigcheck_verdict_t judge(sigcheck_t *c, const seal_msg_t *m, int64_t now, char *why,
                                size_t whylen)
{
    int64_t age = now - m->ts_ms;
    if (age > SEAL_MAX_AGE_MS || age < -SEAL_MAX_AGE_MS) {
        snprintf(why, whylen, "%s, %lld ms off our clock", m->from, (long long)age);
        return SIGCHECK_STALE;
    }
    if (strcmp(m->to, c->cfg->site_name) != 0 || strcmp(m->from, c->cfg->site_name) == 0) {
        snprintf(why, whylen, "from %s to %s", m->from, m->to);
        return SIGCHECK_MISDIRECTED;
    }
    peer_seen_t *ps = peer_seen_of(c, m->from);
    snprintf(why, whylen, "%s", m->from);
    if (!ps)
        return SIGCHECK_UNKNOWN_PEER;
    GByteArray *b = signed_bytes(m);
    uint8_t id[ID_LEN];
    char fp[96];
    peerid_result_t res = PEERID_OK;
    sigcheck_verdict_t v = SIGCHECK_OK;
    prune(ps, now);
    if (digest(b, id))
        v = SIGCHECK_BAD;
    else if (g_hash_table_contains(ps->ids, id))
        v = SIGCHECK_REPLAYED;
    else if (!signed_by(ps->peer, m, b, fp, &res)) {
        if (ps->peer->browser)
            snprintf(why, whylen, "%s (browser), presented key %s, pinned %s: %s", m->from, fp,
                     ps->peer->fingerprint, peerid_result_str(res));
        else
            snprintf(why, whylen, "%s, presented certificate %s, pinned %s", m->from, fp,
                     ps->peer->fingerprint);
        v = SIGCHECK_BAD_SIGNATURE;
    } else if (changes_session(m) && ps->changed && m->ts_ms <= ps->last_change_ts) {
        snprintf(why, whylen, "%s, %s of %lld, the last was of %lld", m->from, m->type,
                 (long long)m->ts_ms, (long long)ps->last_change_ts);
        v = SIGCHECK_LATE;
    } else if (g_queue_get_length(&ps->order) >= c->max_seen || !remember(ps, id, m->ts_ms)) {
        snprintf(why, whylen, "%s, %zu messages within %d s", m->from, c->max_seen,
                 2 * SEAL_MAX_AGE_MS / 1000);
        v = SIGCHECK_FLOOD;
    } else if (changes_session(m)) {
        ps->changed = true;
        ps->last_change_ts = m->ts_ms;
    }
    g_byte_array_free(b, TRUE);
    return v;
}

sigcheck_verdict_t sigcheck_accept(sigcheck_t *c, const uint8_t *buf, size_t len,
                                   int64_t now_wall_ms, seal_msg_t *out, char *why, size_t whylen)
{
    char dummy[1];
    if (!why || !whylen) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    why[0] = '\0';
    int rc = seal_unpack(c->keys, c->inbox, buf, len, out);
    if (rc) {
        snprintf(why, whylen, "%s", bl_strerror(rc));
        return SIGCHECK_BAD;
    }
    sigcheck_verdict_t v = judge(c, out, now_wall_ms, why, whylen);
    if (v != SIGCHECK_OK)
        seal_msg_clear(out);
    return v;
}
