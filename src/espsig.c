/* SPDX-License-Identifier: MIT */
/* espsig.c - see espsig.h: one handler per thing the board can say, and a timer for
 * each wait it imposes. */
#include "espsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "mqtt.h"

/* A description with its topic and header fits (the broker keeps anything larger). */
#define ESPSIG_MAX_PACKET (ESPMSG_DESC_MAX + 512)

struct espsig {
    GMainContext *ctx;
    char who[96];
    int role; /* ours: 1 or 2 */
    char pub_topic[256], sub_topic[256];
    mqtt_t *mqtt;
    uint64_t *bad;

    bool connected, was_connected, found, synced, have_desc, desc_sent;
    unsigned tries;    /* "0"s sent (peer1) or silent seconds (peer2) */
    GSource *tick_src; /* connect wait, then the handshake's second */
    GSource *desc_src; /* the board's description */
    bool warned_role;
    espsig_events_t ev;
    void *ud;
};

static void failed(espsig_t *s, const char *why)
{
    loop_cancel(&s->tick_src);
    loop_cancel(&s->desc_src);
    s->ev.on_failed(s->ud, why);
}

static void publish(espsig_t *s, const char *payload, size_t len)
{
    bl_msg_t m;
    msg_init(&m);
    m.topic = s->pub_topic;
    m.payload = (uint8_t *)payload;
    m.payload_len = len;
    m.qos = 1;
    if (mqtt_publish(s->mqtt, &m, 0))
        LOG_WARN(s->who, "cannot publish on %s", s->pub_topic);
}

/* At WARN the 1st, 2nd, 4th, ... time: anyone on the broker can publish junk here. */
static void bad(espsig_t *s, const char *what, const char *why)
{
    uint64_t n = ++*s->bad;
    LOG_AT((n & (n - 1)) == 0 ? LOG_LVL_WARN : LOG_LVL_DEBUG, s->who,
           "dropped a %s on %s: %s (%llu so far)", what, s->sub_topic, why, (unsigned long long)n);
}

/* ---- timers ---- */

static gboolean desc_timeout_cb(gpointer p)
{
    espsig_t *s = p;
    s->desc_src = NULL;
    failed(s, "no description from the board within 10 s of the handshake");
    return G_SOURCE_REMOVE;
}

/* Every second until synced: peer1 says "0"; peer2 counts the silence. */
static gboolean tick_cb(gpointer p)
{
    espsig_t *s = p;
    if (!s->connected) {
        s->tick_src = NULL;
        failed(s, s->was_connected ? "lost the broker during the handshake"
                                   : "cannot reach the broker within 10 s");
        return G_SOURCE_REMOVE;
    }
    if (s->tries >= ESPSIG_SYNC_TRIES) {
        s->tick_src = NULL;
        failed(s, s->role == 1 ? "no answer from the board to 60 handshakes, one a second"
                               : "no handshake from the board for 60 s");
        return G_SOURCE_REMOVE;
    }
    s->tries++;
    if (s->role == 1) {
        LOG_DEBUG(s->who, "handshake: 0 on %s (%u of %d)", s->pub_topic, s->tries,
                  ESPSIG_SYNC_TRIES);
        publish(s, "0", 1);
    }
    return G_SOURCE_CONTINUE;
}

static void synced(espsig_t *s)
{
    s->synced = true;
    loop_cancel(&s->tick_src);
    if (!s->have_desc)
        s->desc_src = loop_timeout(s->ctx, ESPSIG_DESC_MS, desc_timeout_cb, s);
    s->ev.on_synced(s->ud);
}

/* ---- what the board says ---- */

/* True when our role is role, which the board's words (the other role's) say it has too:
 * a warning the first time. */
static bool same_role(espsig_t *s, int role, const char *says)
{
    if (s->role != role)
        return false;
    if (!s->warned_role)
        LOG_WARN(s->who, "the board %s on %s: is it peer%d too? (we are role = peer%d)", says,
                 s->sub_topic, role, role);
    s->warned_role = true;
    return true;
}

static void on_step0(espsig_t *s)
{
    if (same_role(s, 1, "also says \"0\""))
        return;
    if (s->synced) {
        /* It says "0" only from the start: it rebooted (it does on any ICE failure). */
        failed(s, "the board started the handshake again (it restarted)");
        return;
    }
    if (!s->found)
        LOG_INFO(s->who, "the board is there (handshake 0 on %s), answering", s->sub_topic);
    s->found = true;
    s->tries = 0; /* like the board: an answered "0" is not a silent second */
    publish(s, "1", 1);
}

static void on_step1(espsig_t *s)
{
    if (same_role(s, 2, "says \"1\""))
        return;
    if (s->synced)
        return; /* an answer to one of our earlier "0"s */
    LOG_INFO(s->who, "the board answered the handshake on %s", s->sub_topic);
    publish(s, "2", 1);
    synced(s);
}

static void on_step2(espsig_t *s)
{
    if (s->role == 1 || s->synced)
        return; /* a second "2" for a second "1" of ours */
    LOG_INFO(s->who, "handshake with the board done on %s", s->sub_topic);
    synced(s);
}

static void on_description(espsig_t *s, const uint8_t *buf, size_t len)
{
    espmsg_desc_t d;
    const char *why = NULL;
    if (espmsg_desc_parse(buf, len, &d, &why)) {
        bad(s, "malformed description", why);
        return;
    }
    if (!s->synced || s->have_desc) {
        /* The board describes itself once, right after the handshake. */
        bad(s, "description",
            s->synced ? "a second one in the same session" : "before the handshake");
        espmsg_desc_clear(&d);
        return;
    }
    s->have_desc = true;
    loop_cancel(&s->desc_src);
    LOG_INFO(s->who, "the board's description: %zu candidates%s", d.n_cands,
             d.dropped ? " (some entries not usable, ignored)" : "");
    s->ev.on_desc(s->ud, &d);
    espmsg_desc_clear(&d);
}

static void on_message(void *ud, const bl_msg_t *m)
{
    espsig_t *s = ud;
    if (strcmp(m->topic, s->sub_topic) != 0)
        return;
    if (m->payload_len > 1) {
        on_description(s, m->payload, m->payload_len);
        return;
    }
    espmsg_step_t step;
    if (espmsg_handshake_parse(m->payload, m->payload_len, &step)) {
        bad(s, "malformed handshake", m->payload_len ? "not 0, 1 or 2" : "an empty message");
        return;
    }
    static void (*const handlers[])(espsig_t *) = {on_step0, on_step1, on_step2};
    handlers[step](s);
}

static void on_connect(void *ud)
{
    espsig_t *s = ud;
    s->connected = s->was_connected = true;
    LOG_DEBUG(s->who, "signalling as peer%d on %s, listening on %s", s->role, s->pub_topic,
              s->sub_topic);
    if (s->synced)
        return;
    /* The handshake's clock starts now; peer1 says "0" at once and then every second. */
    loop_cancel(&s->tick_src);
    s->tries = 0;
    s->tick_src = loop_timeout(s->ctx, ESPSIG_SYNC_PERIOD_MS, tick_cb, s);
    if (s->role == 1)
        tick_cb(s);
}

static void on_disconnect(void *ud, int rc)
{
    espsig_t *s = ud;
    (void)rc;
    s->connected = false;
}

/* ---- calls ---- */

espsig_t *espsig_new(GMainContext *ctx, const char *who, const config_peer_t *peer,
                     uint64_t *bad_count, const espsig_events_t *ev, void *ud)
{
    espsig_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->ctx = ctx;
    snprintf(s->who, sizeof(s->who), "%s", who);
    s->role = peer->esp_role;
    snprintf(s->pub_topic, sizeof(s->pub_topic), "%s%d", peer->esp_sync_topic, s->role);
    snprintf(s->sub_topic, sizeof(s->sub_topic), "%s%d", peer->esp_sync_topic, 3 - s->role);
    s->bad = bad_count;
    s->ev = *ev;
    s->ud = ud;
    char name[128];
    snprintf(name, sizeof(name), "%s: broker", who);
    mqtt_opts_t o = {
        .name = name,
        /* Like the board: a session that starts empty and nothing kept for us. */
        .clean_start = true,
        .fresh_client_id = true,
        .keepalive = 60,
        .max_packet_size = ESPSIG_MAX_PACKET,
        .quiet = true,
    };
    mqtt_opts_set_broker(&o, &peer->esp_broker);
    mqtt_events_t mev = {
        .on_connect = on_connect, .on_disconnect = on_disconnect, .on_message = on_message};
    s->mqtt = mqtt_new(ctx, &o, &mev, s);
    if (!s->mqtt) {
        espsig_free(s);
        return NULL;
    }
    return s;
}

int espsig_start(espsig_t *s)
{
    int rc = mqtt_subscribe(s->mqtt, s->sub_topic, 1, false, false);
    if (!rc)
        rc = mqtt_start(s->mqtt);
    if (!rc) /* if the broker is not there within 10 s, the attempt ends (tick_cb) */
        s->tick_src = loop_timeout(s->ctx, ESPSIG_CONNECT_MS, tick_cb, s);
    return rc;
}

int espsig_publish_desc(espsig_t *s, const char *json)
{
    if (!s->synced || s->desc_sent)
        return BL_ESTATE;
    s->desc_sent = true;
    publish(s, json, strlen(json));
    return 0;
}

void espsig_free(espsig_t *s)
{
    if (!s)
        return;
    loop_cancel(&s->tick_src);
    loop_cancel(&s->desc_src);
    mqtt_free(s->mqtt);
    free(s);
}
