/* SPDX-License-Identifier: MIT */
/* mqttpkt.h - MQTT 5.0 packets as a client sends and receives them (pure codec).
 *
 * Encoders append one whole packet to a GByteArray; the parser takes the bytes a
 * client read from its broker and returns one packet at a time. Only what a client
 * needs: CONNECT, PUBLISH, PUBACK/PUBREC/PUBREL/PUBCOMP, SUBSCRIBE, UNSUBSCRIBE,
 * PINGREQ, DISCONNECT out; CONNACK, PUBLISH, the four publish acknowledgements,
 * SUBACK, UNSUBACK, PINGRESP, DISCONNECT in. AUTH and a topic alias (we announce Topic
 * Alias Maximum 0) are protocol errors. Section numbers are those of MQTT 5.0 (OASIS,
 * 2019). No I/O, no logging: errors come back as BL_E* codes, and the parser says what
 * was wrong in a short static string. */
#ifndef BL_MQTTPKT_H
#define BL_MQTTPKT_H

#include <glib.h>

#include "common.h"
#include "msg.h"

enum mqttpkt_type {
    MQTTPKT_CONNECT = 1,
    MQTTPKT_CONNACK = 2,
    MQTTPKT_PUBLISH = 3,
    MQTTPKT_PUBACK = 4,
    MQTTPKT_PUBREC = 5,
    MQTTPKT_PUBREL = 6,
    MQTTPKT_PUBCOMP = 7,
    MQTTPKT_SUBSCRIBE = 8,
    MQTTPKT_SUBACK = 9,
    MQTTPKT_UNSUBSCRIBE = 10,
    MQTTPKT_UNSUBACK = 11,
    MQTTPKT_PINGREQ = 12,
    MQTTPKT_PINGRESP = 13,
    MQTTPKT_DISCONNECT = 14,
    MQTTPKT_AUTH = 15,
};

/* 1.5.5: the Remaining Length is at most 268,435,455; a packet adds at most 5 bytes. */
#define MQTTPKT_MAX_REMAINING 268435455u
/* Subscription options (3.8.3.1). */
#define MQTTPKT_SUB_NO_LOCAL 0x04
#define MQTTPKT_SUB_RAP 0x08

typedef struct mqttpkt_connect {
    const char *client_id; /* may be "" with clean_start (the broker assigns one) */
    const char *username;  /* NULL: none */
    const char *password;  /* NULL: none; needs username here */
    uint16_t keepalive;    /* seconds */
    bool clean_start;
    uint32_t session_expiry;  /* seconds, 0: ends with the connection */
    uint16_t receive_max;     /* 0: not sent (65535) */
    uint32_t max_packet_size; /* 0: not sent (no limit but the protocol's) */
    const bl_msg_t *will;     /* NULL: no Will; else its topic, payload, QoS, retain, props */
} mqttpkt_connect_t;

/* One packet from the broker. Strings and the message are owned (mqttpkt_clear). */
typedef struct mqttpkt {
    uint8_t type;
    uint8_t flags;       /* the low nibble of the fixed header */
    uint16_t pid;        /* packet identifier, 0 when the packet has none */
    uint8_t reason;      /* CONNACK, PUB*, DISCONNECT: reason code (0 when omitted) */
    char *reason_string; /* NULL when absent */
    /* CONNACK (3.2.2) */
    bool session_present;
    uint16_t receive_max;     /* 65535 when absent */
    uint8_t max_qos;          /* 2 when absent */
    bool retain_available;    /* true when absent */
    uint32_t max_packet_size; /* 0 when absent: no limit but the protocol's */
    int32_t server_keepalive; /* -1 when absent */
    char *assigned_client_id;
    /* PUBLISH (3.3): topic, payload, QoS, retain, dup and the properties brokerless
     * carries; topic alias and subscription identifiers are hop-by-hop and dropped. */
    bl_msg_t msg;
    /* SUBACK, UNSUBACK: one reason code per filter */
    uint8_t *codes;
    size_t n_codes;
} mqttpkt_t;

/* Parse one packet from the start of buf (len bytes). Returns 0 with *used = 0 when
 * more bytes are needed, 0 with *used = the packet's size and *out filled, or
 * BL_ETOOBIG when the packet announces more than max_size bytes (0: the protocol's
 * limit), BL_EINVAL for a malformed packet or a protocol error (*why says which),
 * BL_ENOMEM. *out needs no clearing after an error. */
int mqttpkt_parse(const uint8_t *buf, size_t len, size_t max_size, mqttpkt_t *out, size_t *used,
                  const char **why);
void mqttpkt_clear(mqttpkt_t *p);
/* The size of the packet that starts buf, from its fixed header alone, or 0 when the
 * header is not all there yet (or is malformed: the parser says so). */
size_t mqttpkt_peek_size(const uint8_t *buf, size_t len);

/* Encoders: append one packet to out. BL_EINVAL for what cannot be encoded (a string
 * over 65535 bytes, a packet over the protocol's size, a bad QoS). */
int mqttpkt_connect(GByteArray *out, const mqttpkt_connect_t *c);
/* m->qos, m->retain and m's properties; pid is used when m->qos > 0. */
int mqttpkt_publish(GByteArray *out, const bl_msg_t *m, uint16_t pid, bool dup);
/* The size mqttpkt_publish would append (to compare with the broker's Maximum Packet
 * Size before queueing it), or 0 when m cannot be encoded. */
size_t mqttpkt_publish_size(const bl_msg_t *m);
/* PUBACK, PUBREC, PUBREL or PUBCOMP with a reason code (0: success, sent short). */
int mqttpkt_ack(GByteArray *out, uint8_t type, uint16_t pid, uint8_t reason);
int mqttpkt_subscribe(GByteArray *out, uint16_t pid, const char *filter, uint8_t qos,
                      uint8_t options);
int mqttpkt_unsubscribe(GByteArray *out, uint16_t pid, const char *filter);
int mqttpkt_pingreq(GByteArray *out);
int mqttpkt_disconnect(GByteArray *out, uint8_t reason);

/* 1.5.4: well-formed UTF-8 without U+0000; control characters and non-characters are
 * refused too (mosquitto disconnects a client that sends them). */
bool mqttpkt_utf8_valid(const char *s, size_t len);
/* A topic name a client may publish on (4.7: not empty, no wildcard, valid UTF-8). */
bool mqttpkt_topic_valid(const char *topic);
/* A topic filter (4.7.1). */
bool mqttpkt_filter_valid(const char *filter);
/* Why filter is not one, for a message ("is empty", ...), or NULL when it is. */
const char *mqttpkt_filter_problem(const char *filter);
/* 0 when m can be published: topic, QoS, and properties that are valid and fit. */
int mqttpkt_check_publish(const bl_msg_t *m);
/* A short name of a reason code (2.4), for logs. */
const char *mqttpkt_reason_name(uint8_t reason);

#endif
