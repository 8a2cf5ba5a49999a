/* SPDX-License-Identifier: MIT */
/* mqtt.h - a libmosquitto MQTT v5 client driven by a GLib main context.
 *
 * No second thread: the socket is watched with a GSource and mosquitto_loop_read/
 * write/misc are called from the loop (never mosquitto_loop_start). Connects in the
 * background and reconnects with exponential backoff (0.5 s .. 30 s) whenever the broker
 * goes away; every subscription made with mqtt_subscribe() is renewed after each
 * reconnect. Publishes made while disconnected wait in memory, in order, and are sent
 * after the next connect; on_published reports the broker's acknowledgement (PUBACK for
 * QoS 1, PUBCOMP for QoS 2, the hand-over to the socket for QoS 0). A publish the broker
 * refuses for good (reason code >= 0x80) or that expired while waiting is also reported
 * (with a log line), so one bad message cannot wedge the queue above.
 * clean_start true: a lost connection sends every unacknowledged publish again, in order
 * (at-least-once). clean_start false: libmosquitto resends them with their packet ids.
 * At most 1000 publishes are in flight; the wait queue is bounded only by the caller.
 * Used by local.c (the site's broker) and signal.c (the signalling broker). */
#ifndef BL_MQTT_H
#define BL_MQTT_H

#include <glib.h>
#include <mosquitto.h>

#include "common.h"
#include "msg.h"

typedef struct mqtt mqtt_t;

typedef struct mqtt_opts {
    const char *name; /* for logs: "local", "signal" */
    const char *host;
    int port;
    const char *client_id;
    const char *username, *password;
    bool tls;
    const char *cafile; /* NULL = system store when tls */
    int keepalive;      /* seconds */
    bool clean_start;   /* false: persistent session (session expiry = 1 day); needs
                         * a client_id */
} mqtt_opts_t;

typedef struct mqtt_events {
    void (*on_connect)(void *ud);
    void (*on_disconnect)(void *ud, int rc);
    /* A message from the broker, converted with its MQTT 5 properties. The callee
     * borrows m for the duration of the call. */
    void (*on_message)(void *ud, const bl_msg_t *m);
    /* The broker acknowledged the publish that was given `token`. */
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
} mqtt_events_t;

mqtt_t *mqtt_new(GMainContext *ctx, const mqtt_opts_t *opts, const mqtt_events_t *ev, void *ud);
/* Start connecting (returns at once). */
int mqtt_start(mqtt_t *c);
/* Remembered; (re)sent on every connect. no_local and retain_as_published are the MQTT 5
 * subscription options. */
int mqtt_subscribe(mqtt_t *c, const char *filter, int qos, bool no_local, bool rap);
/* Queue a copy of m (topic, payload, QoS, retain, properties). BL_EINVAL when it could
 * never be sent (mqtt_check_publish). */
/* Drop `filter` from a resumed session (a subscription an earlier run made that this one
 * does not want, or wants with other options): sent at the next connect before the
 * subscriptions, or now when connected; retried at every connect until acknowledged. */
int mqtt_unsubscribe(mqtt_t *c, const char *filter);
/* Messages handed to on_message so far, this one included when called from it. */
uint64_t mqtt_msgs_in(const mqtt_t *c);
int mqtt_publish(mqtt_t *c, const bl_msg_t *m, uint64_t token);
/* 0 if m could be published: a valid topic name, QoS, payload size, and properties that
 * are valid UTF-8 and fit; else BL_EINVAL (or BL_ENOMEM). Pure. */
int mqtt_check_publish(const bl_msg_t *m);
bool mqtt_connected(const mqtt_t *c);
/* Publishes waiting for the broker (queued + in flight). */
size_t mqtt_pending(const mqtt_t *c);
/* Their payload bytes. */
size_t mqtt_pending_bytes(const mqtt_t *c);
/* Any state, also from inside a callback; no callback afterwards. */
void mqtt_free(mqtt_t *c);

/* Conversion helpers (pure), exposed for tests. */
int mqtt_props_to_msg(const mosquitto_property *props, bl_msg_t *m);
int mqtt_props_from_msg(const bl_msg_t *m, mosquitto_property **props);

#endif
