/* SPDX-License-Identifier: MIT */
/* mqtt_int.h - what mqtt.c (the connection and the loop) and mqtt_flow.c (the packets in
 * flight, both ways) share; not for other modules. mqtt.c calls into mqtt_flow.c, never
 * the other way: the flow writes packets into the output buffer and calls the layer
 * above's callbacks, the connection decides when the buffer leaves. */
#ifndef BL_MQTT_INT_H
#define BL_MQTT_INT_H

#include "mqtt.h"

#include <glib.h>

#include "loop.h"
#include "mqttio.h"
#include "mqttpkt.h"

#define MQTT_INFLIGHT_MAX 1000u /* publishes in flight, unacknowledged */
#define MQTT_RECEIVE_MAX 1000u  /* what we let the broker have in flight to us */
#define MQTT_BACKOFF_MIN_MS 500u
#define MQTT_BACKOFF_MAX_MS 30000u

#define MQTT_CONNECT_TIMEOUT_MS 10000
#define MQTT_READ_CHUNK 65536u
#define MQTT_IN_HIGH (4u << 20)  /* unparsed input past which we stop reading */
#define MQTT_OUT_HIGH (1u << 20) /* unwritten output past which publishes wait */
#define MQTT_PARSE_BATCH 512     /* packets per turn of the loop: one commit above */

typedef enum { ST_IDLE, ST_CONNECTING, ST_CONNACK, ST_CONNECTED, ST_WAITING } mqtt_state_t;
typedef enum { PUB_SENT = 1, PUB_RELEASED } pub_state_t;

typedef struct pub {
    bl_msg_t *m; /* NULL: a publish of the last run whose PUBREL is all that is left */
    uint64_t token;
    int64_t queued_ms; /* when mqtt_publish() took it, for the message expiry */
    uint16_t pid;
    uint8_t qos;   /* as sent */
    uint8_t state; /* pub_state_t once in flight */
    uint64_t no;   /* c->pubs_out when sent (acks_delivered) */
    bool resend;   /* was in flight when a clean_start connection dropped */
    bool reported; /* on_published already called (QoS 2 at its PUBREC) */
    bool durable;  /* its identifier is in the store */
} pub_t;

typedef struct sub {
    char *filter;
    int qos;
    int options;
    uint16_t pid; /* its SUBSCRIBE or UNSUBSCRIBE in flight, 0 when none */
} sub_t;

struct mqtt {
    GMainContext *ctx;
    mqtt_opts_t o; /* strings owned */
    mqtt_events_t ev;
    void *ud;
    mqtt_store_t st;
    void *st_ud;
    bool has_store;

    mqtt_state_t state;
    unsigned backoff_ms;
    unsigned failures; /* consecutive failed attempts, to log the first one loudly */
    mqttio_t *io;
    GSource *timer, *retry, *kick;
    GByteArray *in, *out;
    size_t in_off, out_off;                              /* parsed / written so far */
    bool in_full;                                        /* reading stopped at MQTT_IN_HIGH */
    bool in_more;                                        /* parsing stopped at MQTT_PARSE_BATCH */
    int64_t attempt_ms, last_rx_ms, last_tx_ms, ping_ms; /* ping_ms 0: none out */

    /* What the broker said in its CONNACK. */
    unsigned keepalive;
    uint16_t srv_receive_max;
    uint32_t srv_max_packet;
    uint8_t srv_max_qos;
    bool srv_retain;
    bool warned_qos, warned_retain;

    /* Which of our acknowledgements the broker has read (on_acks_delivered): messages
     * handed up so far, publishes sent so far, and the state of the newest drained
     * output waiting for a broker reply to a later publish. */
    uint64_t msgs_in, pubs_out;
    bool mark;
    uint64_t mark_msgs, mark_pubs;

    GQueue fifo;          /* pub_t *, not yet sent */
    size_t pending_bytes; /* payload bytes of fifo + inflight */
    GQueue inflight;      /* pub_t *, in send order */
    GHashTable *by_pid;   /* pid -> GList link in inflight */
    uint16_t next_pid;
    GPtrArray *subs;   /* sub_t * */
    GPtrArray *unsubs; /* sub_t *: filters to drop from a resumed session, before subs */
    uint8_t in2[8192]; /* QoS 2 packet identifiers received, not yet released */

    void (*wake)(mqtt_t *c); /* mqtt.c: send what was queued, on the next turn */
    loop_guard_t guard;      /* mqtt_free() from inside a callback waits for it to unwind */
};

/* mqtt_flow.c */
pub_t *mqtt_flow_pub_new(mqtt_t *c, const bl_msg_t *m, uint64_t token);
void mqtt_flow_release(mqtt_t *c, pub_t *p);
uint16_t mqtt_flow_pid(mqtt_t *c);
void mqtt_flow_track(mqtt_t *c, pub_t *p);
pub_t *mqtt_flow_find(mqtt_t *c, uint16_t pid);
void mqtt_flow_in2_set(mqtt_t *c, uint16_t pid, bool on);
size_t mqtt_flow_out_pending(const mqtt_t *c);
void mqtt_flow_requeue(mqtt_t *c, bool resend);
void mqtt_flow_resume(mqtt_t *c);
void mqtt_flow_session_gone(mqtt_t *c);
void mqtt_flow_flush(mqtt_t *c);
void mqtt_flow_on_publish(mqtt_t *c, mqttpkt_t *k);
void mqtt_flow_on_pubrel(mqtt_t *c, uint16_t pid);
void mqtt_flow_on_puback(mqtt_t *c, const mqttpkt_t *k);
void mqtt_flow_on_pubrec(mqtt_t *c, const mqttpkt_t *k);
void mqtt_flow_on_pubcomp(mqtt_t *c, const mqttpkt_t *k);
void mqtt_flow_subscribe_all(mqtt_t *c);
void mqtt_flow_on_suback(mqtt_t *c, const mqttpkt_t *k);
void mqtt_flow_on_unsuback(mqtt_t *c, const mqttpkt_t *k);
void mqtt_flow_sub_free(gpointer p);

#endif
