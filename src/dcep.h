/* SPDX-License-Identifier: MIT */
/* dcep.h - the Data Channel Establishment Protocol (RFC 8832), pure.
 *
 * Messages ride SCTP PPID 50. DATA_CHANNEL_OPEN: type 0x03, channel_type u8,
 * priority u16, reliability u32, label_len u16, protocol_len u16 (network order), then
 * label and protocol. DATA_CHANNEL_ACK: one byte 0x02. Fuzzed by fuzz/fuzz_dcep.c. */
#ifndef BL_DCEP_H
#define BL_DCEP_H

#include "common.h"

#define DCEP_PPID 50
#define DCEP_PPID_STRING 51
#define DCEP_PPID_BINARY 53
#define DCEP_PPID_STRING_EMPTY 56
#define DCEP_PPID_BINARY_EMPTY 57

#define DCEP_MSG_ACK 0x02
#define DCEP_MSG_OPEN 0x03

/* RFC 8832 5.1 channel types */
#define DCEP_RELIABLE 0x00
#define DCEP_PARTIAL_RELIABLE_REXMIT 0x01
#define DCEP_PARTIAL_RELIABLE_TIMED 0x02
#define DCEP_UNORDERED_BIT 0x80

typedef struct dcep_open {
    uint8_t channel_type;
    uint16_t priority;
    uint32_t reliability; /* retransmits or milliseconds, per channel_type */
    char *label;          /* NUL-terminated copy (owned) */
    char *protocol;       /* NUL-terminated copy (owned) */
} dcep_open_t;

/* Parse a PPID 50 message. Returns DCEP_MSG_OPEN (filling *open, which the caller clears
 * with dcep_open_clear) or DCEP_MSG_ACK, or <0 if malformed. */
int dcep_parse(const uint8_t *buf, size_t len, dcep_open_t *open);
void dcep_open_clear(dcep_open_t *open);
int dcep_build_open(const dcep_open_t *open, uint8_t **out, size_t *out_len);
/* The one-byte ACK. */
size_t dcep_build_ack(uint8_t out[1]);

#endif
