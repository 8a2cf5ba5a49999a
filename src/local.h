/* SPDX-License-Identifier: MIT */
/* local.h - the site's attachment to its local broker.
 *
 * One persistent MQTT v5 session that subscribes (Retain As Published, No Local) and
 * keeps its QoS 2 state in the site's store, and, with delivery = exactly-once, a
 * second connection with a clean session that publishes what peers send so that it
 * comes back (the echo of echo.h; local.c says why). Built on mqtt.c.
 *
 * The persistent session's Last Will is "offline", retained, on brokerless/<site>/status:
 * the broker publishes it when the daemon dies without a clean DISCONNECT, at the latest
 * one and a half keep-alives after the last packet (MQTT 5 3.1.2.10, 3.1.2.5). */
#ifndef BL_LOCAL_H
#define BL_LOCAL_H

#include <glib.h>

#include "config.h"
#include "mqtt.h"

typedef struct local local_t;

typedef struct local_events {
    /* A message published by a local client (never one we injected). */
    void (*on_message)(void *ud, const bl_msg_t *m);
    /* The local broker accepted the message published with `token` (PUBACK/PUBCOMP; the
     * write for QoS 0; also after a final refusal, which is logged). */
    void (*on_delivered)(void *ud, uint64_t token);
    void (*on_connect)(void *ud);
    void (*on_disconnect)(void *ud);
    /* The broker has read our acknowledgements of the first `upto` messages on_message
     * saw (local_msgs_in() numbers them); see mqtt.h (optional). */
    void (*on_acked)(void *ud, uint64_t upto);
    /* Every filter given to local_unsubscribe() is gone from the session (optional). */
    void (*on_unsubscribed)(void *ud);
    /* The injecting connection dropped with `token` in flight: publish it again?
     * (mqtt.h still_wanted; optional.) */
    bool (*still_wanted)(void *ud, uint64_t token);
    /* False while the site holds uncommitted writes that what we would send depends on
     * (mqtt.h can_write; optional). */
    bool (*can_write)(void *ud);
} local_events_t;

local_t *local_new(GMainContext *ctx, const config_t *cfg, const local_events_t *ev, void *ud);
/* Connect (returns at once; reconnects by itself). Subscribes nothing by itself: the
 * caller (site.c) calls local_subscribe() for the local filter of every rule, before or
 * after local_start(). */
int local_start(local_t *l);
/* Retain As Published always; no_local hides what this session publishes (what the
 * injecting connection publishes still comes back: the echo, see echo.h). Remembered and renewed on
 * every connect. QoS 2 is the usual choice: the broker downgrades each message to its own QoS. */
int local_subscribe(local_t *l, const char *filter, int qos, bool no_local);
/* A filter the config no longer wants: not renewed any more, and dropped from the
 * session (a reload). */
int local_drop_subscription(local_t *l, const char *filter);
/* Drop a subscription an earlier run left in the persistent session (mqtt_unsubscribe). */
int local_unsubscribe(local_t *l, const char *filter);
/* The persistent session's QoS 2 state lives in the caller's store (mqtt.h); before
 * local_start, what the last run left there. */
void local_set_store(local_t *l, const mqtt_store_t *st, void *ud);
void local_restore_in(local_t *l, uint16_t pid);
void local_restore_out(local_t *l, uint16_t pid, bool released, const bl_msg_t *m, uint64_t token);
/* On the persistent session (markers, status, what needs no echo). */
int local_publish(local_t *l, const bl_msg_t *m, uint64_t token);
/* A message from a peer: on the clean-session connection where there is one (see
 * local.c), else like local_publish. */
int local_inject(local_t *l, const bl_msg_t *m, uint64_t token);
/* 0 if the broker could be given m (mqtt_check_publish). */
int local_check_publish(const bl_msg_t *m);
/* Messages on_message has seen so far, the current one included. */
uint64_t local_msgs_in(const local_t *l);
bool local_connected(const local_t *l);
size_t local_pending(const local_t *l);
size_t local_pending_bytes(const local_t *l);
void local_free(local_t *l);

#endif
