/* SPDX-License-Identifier: MIT */
/* mqttpkt_int.h - what the MQTT packet codec's two files share (mqttpkt.c: checks and
 * encoding; mqttpkt_parse.c: parsing): the property identifiers. Internal to the codec. */
#ifndef BL_MQTTPKT_INT_H
#define BL_MQTTPKT_INT_H

#include "mqttpkt.h"

/* Property identifiers (2.2.2.2). */
enum {
    P_PAYLOAD_FORMAT = 0x01,
    P_EXPIRY = 0x02,
    P_CONTENT_TYPE = 0x03,
    P_RESPONSE_TOPIC = 0x08,
    P_CORRELATION = 0x09,
    P_SUB_ID = 0x0B,
    P_SESSION_EXPIRY = 0x11,
    P_ASSIGNED_ID = 0x12,
    P_SERVER_KEEPALIVE = 0x13,
    P_AUTH_METHOD = 0x15,
    P_AUTH_DATA = 0x16,
    P_RESPONSE_INFO = 0x1A,
    P_SERVER_REF = 0x1C,
    P_REASON_STRING = 0x1F,
    P_RECEIVE_MAX = 0x21,
    P_TOPIC_ALIAS_MAX = 0x22,
    P_TOPIC_ALIAS = 0x23,
    P_MAX_QOS = 0x24,
    P_RETAIN_AVAILABLE = 0x25,
    P_USER = 0x26,
    P_MAX_PACKET = 0x27,
    P_WILDCARD_AVAILABLE = 0x28,
    P_SUB_ID_AVAILABLE = 0x29,
    P_SHARED_AVAILABLE = 0x2A,
};

#endif
