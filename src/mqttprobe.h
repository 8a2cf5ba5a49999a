/* SPDX-License-Identifier: MIT */
/* mqttprobe.h - one MQTT 5 connection to a broker for `brokerless check --net`: CONNECT,
 * its CONNACK, optionally SUBSCRIBEs and their SUBACKs, then the connection is closed.
 * It never acknowledges anything the broker sends: with a persistent session's client id
 * (clean_start false) what the broker holds for the session stays there, unacknowledged,
 * for the daemon. Blocking, on a private GMainContext (mqttio.h, mqttpkt.h). */
#ifndef BL_MQTTPROBE_H
#define BL_MQTTPROBE_H

#include <glib.h>

#include "common.h"

typedef struct mqttprobe_opts {
    const char *host;
    int port;
    bool tls;
    const char *cafile;
    const char *client_id;
    const char *username, *password;
    bool clean_start;           /* false: resume the session (expiry as the daemon's, one day) */
    const char *const *filters; /* to subscribe (QoS 2, No Local, Retain As Published), or NULL */
    size_t n_filters;
    int timeout_ms;
} mqttprobe_opts_t;

typedef struct mqttprobe_result {
    char why[256];   /* when it failed: what happened */
    bool mqtt5;      /* the broker answered CONNECT with an MQTT 5 CONNACK */
    uint8_t connack; /* its reason code */
    uint8_t *codes;  /* one SUBACK reason code per filter (g_free), NULL when none came */
} mqttprobe_result_t;

/* 0 when the broker accepted the connection (and answered every SUBSCRIBE), else BL_EIO
 * with why set. */
int mqttprobe_run(const mqttprobe_opts_t *o, mqttprobe_result_t *r);

#endif
