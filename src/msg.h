/* SPDX-License-Identifier: MIT */
/* msg.h - one MQTT message as brokerless carries it between sites.
 *
 * Owned, heap-allocated fields; msg_free() releases all of them. Every optional MQTT 5
 * property has an explicit "absent" representation so a round trip keeps absence. */
#ifndef BL_MSG_H
#define BL_MSG_H

#include "common.h"

typedef struct msg_user_prop {
    char *key;
    char *value;
} msg_user_prop_t;

typedef struct bl_msg {
    char *origin;     /* site where the message was first published (NULL = unset) */
    uint64_t seq;     /* origin's sequence number, 0 = none */
    char *topic;      /* NUL-terminated, never NULL in a valid message */
    uint8_t *payload; /* may be NULL when payload_len == 0 */
    size_t payload_len;
    uint8_t qos; /* 0..2 */
    bool retain;
    bool dup; /* a resend of a frame the peer may already have */

    /* MQTT 5 properties */
    int payload_format; /* -1 absent, else 0 (bytes) or 1 (UTF-8) */
    bool has_expiry;
    uint32_t expiry_s;    /* remaining message expiry interval, seconds */
    char *content_type;   /* NULL = absent */
    char *response_topic; /* NULL = absent */
    uint8_t *correlation; /* NULL = absent */
    size_t correlation_len;
    msg_user_prop_t *user_props;
    size_t n_user_props;
} bl_msg_t;

/* A zeroed message with payload_format = -1. */
bl_msg_t *msg_new(void);
void msg_init(bl_msg_t *m);
/* Free the fields, not the struct (for messages on the stack). */
void msg_clear(bl_msg_t *m);
void msg_free(bl_msg_t *m);
bl_msg_t *msg_dup(const bl_msg_t *m);
/* A copy of m under the topic and QoS a rule mapped it to; takes topic (also on
 * failure, when it returns NULL). */
bl_msg_t *msg_routed_copy(const bl_msg_t *m, char *topic, int qos);
int msg_set_topic(bl_msg_t *m, const char *topic);
int msg_set_payload(bl_msg_t *m, const void *data, size_t len);
int msg_add_user_prop(bl_msg_t *m, const char *key, const char *value);
/* Bytes m holds in memory for its topic, payload and properties (not the struct):
 * what a message waiting for a broker costs. */
size_t msg_size(const bl_msg_t *m);
/* True when both carry the same topic, payload, QoS, retain and properties. */
bool msg_equal(const bl_msg_t *a, const bl_msg_t *b);

#endif
