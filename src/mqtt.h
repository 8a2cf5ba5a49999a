/* SPDX-License-Identifier: MIT */
/* mqtt.h - an MQTT v5 client session on a GLib main context, with its session state
 * open to a durable store.
 *
 * One thread: the socket (mqttio.h) is watched by the loop, packets are encoded and
 * parsed by mqttpkt.h. Connects in the background and reconnects with exponential
 * backoff (0.5 s .. 30 s) whenever the broker goes away; every subscription made with
 * mqtt_subscribe() is renewed after each connect. Publishes made while disconnected
 * wait in memory, in order. At most 1000 publishes (or the broker's Receive Maximum)
 * are in flight; the wait queue is bounded only by the caller.
 *
 * Nothing leaves before the layer above has stored what it depends on: bytes are
 * written only when can_write() says so (the layer above has committed), never from
 * inside a callback. So the PUBACK/PUBREC of a message handed to on_message follows
 * the commit of what on_message stored, and a QoS 2 publish leaves only once its
 * packet identifier is recorded.
 *
 * clean_start true: every connection is a new session; publishes unacknowledged when it
 * dropped are published again, in order, ahead of the rest (still_wanted may veto).
 * clean_start false (session expiry one day): the session lives on in the broker
 * across reconnects and, with a store, across restarts of the process (MQTT 5 4.3.3,
 * 4.4): a QoS 2 message from the broker is handed over at its PUBLISH and its packet
 * identifier is recorded until the PUBREL, so a resend after a crash is recognised and
 * not handed over twice; a QoS 2 publish is recorded with its packet identifier before
 * it leaves, and its PUBREC before the PUBREL, so after a crash it goes again with the
 * same identifier (or its PUBREL does) and the broker delivers it once. */
#ifndef BL_MQTT_H
#define BL_MQTT_H

#include <glib.h>

#include "common.h"
#include "msg.h"

typedef struct mqtt mqtt_t;
struct config_broker;

#define MQTT_SESSION_EXPIRY_S 86400u /* one day, for clean_start false */

typedef struct mqtt_opts {
    const char *name; /* for logs: "local", "signal" */
    const char *host;
    int port;
    const char *client_id; /* NULL with fresh_client_id */
    const char *username, *password;
    bool tls;
    const char *cafile;       /* NULL = system store when tls */
    int keepalive;            /* seconds */
    bool clean_start;         /* false: persistent session (session expiry = 1 day); needs
                               * a client_id */
    bool fresh_client_id;     /* clean_start only: a new random client id per connection */
    uint32_t max_packet_size; /* announced to the broker: it sends nothing larger (0: none) */
    const bl_msg_t *will;     /* Last Will (copied), or NULL */
    bool quiet;               /* connects, losses and failures to connect at debug level: the caller
                               * says what they came to (a connection per attempt of its own) */
} mqtt_opts_t;

typedef struct mqtt_events {
    void (*on_connect)(void *ud);
    void (*on_disconnect)(void *ud, int rc);
    /* A message from the broker. The callee borrows m for the duration of the call. */
    void (*on_message)(void *ud, const bl_msg_t *m);
    /* The broker has the publish that was given `token`: PUBACK, for QoS 2 its PUBREC
     * on a persistent session with a store (the PUBREL is then ours to send, also after
     * a crash) and its PUBCOMP otherwise, the hand-over to the socket for QoS 0. Also
     * after a final refusal or expiry (logged), so one bad message cannot wedge the
     * queue above. */
    void (*on_published)(void *ud, uint64_t token);
    /* The broker has read our acknowledgements of the first `upto` messages handed to
     * on_message (mqtt_msgs_in() counts them): it answered a publish written after
     * them. Comes only while we publish at QoS > 0 (optional). */
    void (*on_acks_delivered)(void *ud, uint64_t upto);
    /* Every filter given to mqtt_unsubscribe() is gone from the session (optional). */
    void (*on_unsubscribed)(void *ud);
    /* clean_start only: asked before a publish that was in flight when the connection
     * dropped goes out again; false drops it without a callback (the layer above
     * knows the broker has it, e.g. from its echo). Optional: NULL resends all. */
    bool (*still_wanted)(void *ud, uint64_t token);
    /* False while the layer above holds uncommitted state that what we would write
     * depends on; we try again on a later turn of the loop (optional: always true). */
    bool (*can_write)(void *ud);
} mqtt_events_t;

/* The session state a persistent session (clean_start false) keeps in the caller's
 * durable store. Each call is made from inside a loop callback; what it records must
 * be committed before can_write() says true. */
typedef struct mqtt_store {
    /* A QoS 2 message with this packet identifier was handed to on_message; ours once
     * the PUBREC leaves. A PUBLISH with a recorded identifier is a resend: not handed
     * over again. */
    void (*in_add)(void *ud, uint16_t pid);
    /* Its PUBREL came: the broker may reuse the identifier once our PUBCOMP leaves. */
    void (*in_del)(void *ud, uint16_t pid);
    /* The QoS 2 publish m of `token` is about to leave with this identifier. */
    void (*out_add)(void *ud, uint64_t token, uint16_t pid, const bl_msg_t *m);
    /* Its PUBREC came (on_published follows): we owe the PUBREL. */
    void (*out_rec)(void *ud, uint16_t pid);
    /* Its PUBCOMP came: the identifier is free. */
    void (*out_del)(void *ud, uint16_t pid);
    /* The broker has no session for us (a new one, or it lost ours): every recorded
     * identifier is void. Publishes still unreleased are published afresh (out_add
     * again, with new identifiers). */
    void (*reset)(void *ud);
    /* Optional, for QoS 1 exactly once: a QoS 1 message handed to on_message is recorded
     * with its identifier; a resend (DUP) whose identifier and message in1_seen knows
     * is acknowledged and not handed over again. */
    void (*in1_add)(void *ud, uint16_t pid, const bl_msg_t *m);
    bool (*in1_seen)(void *ud, uint16_t pid, const bl_msg_t *m);
} mqtt_store_t;

/* o's host, port, tls, username, password and cafile: b's (borrowed, as all of o). */
void mqtt_opts_set_broker(mqtt_opts_t *o, const struct config_broker *b);
mqtt_t *mqtt_new(GMainContext *ctx, const mqtt_opts_t *opts, const mqtt_events_t *ev, void *ud);
/* clean_start false only, before mqtt_start: keep the session state in `st`, whose
 * calls get `ud`. */
void mqtt_set_store(mqtt_t *c, const mqtt_store_t *st, void *ud);
/* Before mqtt_start: the recorded state of the last run. A QoS 2 message it received
 * and has not seen released; a QoS 2 publish m it made with `pid`: released (its
 * PUBREC came; m may be NULL), the PUBREL goes at connect; not released, m goes again
 * with that identifier and DUP, and is reported with `token`. */
void mqtt_restore_in(mqtt_t *c, uint16_t pid);
void mqtt_restore_out(mqtt_t *c, uint16_t pid, bool released, const bl_msg_t *m, uint64_t token);
/* Start connecting (returns at once). */
int mqtt_start(mqtt_t *c);
/* Remembered; (re)sent on every connect. no_local and retain_as_published are the MQTT 5
 * subscription options. */
int mqtt_subscribe(mqtt_t *c, const char *filter, int qos, bool no_local, bool rap);
/* Drop `filter` from a resumed session (a subscription an earlier run made that this one
 * does not want, or wants with other options): sent at the next connect before the
 * subscriptions, or now when connected; retried at every connect until acknowledged. */
int mqtt_unsubscribe(mqtt_t *c, const char *filter);
/* Stop renewing `filter` at each connect (it stays in the broker's session until
 * mqtt_unsubscribe drops it). */
void mqtt_subscription_forget(mqtt_t *c, const char *filter);
/* Messages handed to on_message so far, this one included when called from it. */
uint64_t mqtt_msgs_in(const mqtt_t *c);
/* Queue a copy of m (topic, payload, QoS, retain, properties). BL_EINVAL when it could
 * never be sent (mqtt_check_publish). */
int mqtt_publish(mqtt_t *c, const bl_msg_t *m, uint64_t token);
/* 0 if m could be published: a valid topic name, QoS, payload size, and properties that
 * are valid UTF-8 and fit; else BL_EINVAL. Pure. */
int mqtt_check_publish(const bl_msg_t *m);
bool mqtt_connected(const mqtt_t *c);
/* Publishes waiting for the broker (queued + in flight). */
size_t mqtt_pending(const mqtt_t *c);
/* Their payload bytes. */
size_t mqtt_pending_bytes(const mqtt_t *c);
/* Any state, also from inside a callback; no callback afterwards. A connected session
 * sends DISCONNECT (the Will is not published). */
void mqtt_free(mqtt_t *c);

#endif
