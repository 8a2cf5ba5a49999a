/* SPDX-License-Identifier: MIT */
/* local.h - the site's attachment to its local broker.
 *
 * One MQTT v5 connection that both subscribes (No Local, Retain As Published, so what
 * we inject from peers never comes back to us: split horizon) and publishes what peers
 * send. Built on mqtt.c. */
#ifndef BL_LOCAL_H
#define BL_LOCAL_H

#include <glib.h>

#include "config.h"
#include "mqtt.h"

typedef struct local local_t;

typedef struct local_events {
    /* A message published by a local client (never one we injected). */
    void (*on_message)(void *ud, const bl_msg_t *m);
    /* The local broker accepted the message published with `token`. */
    void (*on_delivered)(void *ud, uint64_t token);
    void (*on_connect)(void *ud);
    void (*on_disconnect)(void *ud);
} local_events_t;

local_t *local_new(GMainContext *ctx, const config_t *cfg, const local_events_t *ev, void *ud);
/* Subscribe the local filters of every peer's out/both rules and connect. */
int local_start(local_t *l);
int local_subscribe(local_t *l, const char *filter, int qos);
int local_publish(local_t *l, const bl_msg_t *m, uint64_t token);
bool local_connected(const local_t *l);
size_t local_pending(const local_t *l);
void local_free(local_t *l);

#endif
