/* SPDX-License-Identifier: MIT */
/* common.h - error codes and small helpers shared by every module.
 *
 * Contract: functions return int, 0 on success or one negative BL_E* code. */
#ifndef BL_COMMON_H
#define BL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum bl_err {
    BL_OK = 0,
    BL_ENOMEM = -1,     /* allocation failed */
    BL_EINVAL = -2,     /* malformed input or bad argument */
    BL_ETRUNC = -3,     /* input ends before a length it announced */
    BL_ETOOBIG = -4,    /* over a configured or protocol limit */
    BL_EIO = -5,        /* an I/O or library call failed */
    BL_EAGAIN = -6,     /* try again later (buffer full, not connected) */
    BL_ESTATE = -7,     /* call not valid in the current state */
    BL_EAUTH = -8,      /* authentication failed (AEAD tag, fingerprint) */
    BL_ESTALE = -9,     /* too old (signalling timestamp) */
    BL_EREPLAY = -10,   /* seen before */
    BL_ENOTFOUND = -11, /* no such thing */
    BL_EVERSION = -12,  /* unsupported protocol version */
    BL_EPERM = -13,     /* not allowed (a peer's topic that would reach a '$' topic) */
};

const char *bl_strerror(int rc);

/* Monotonic and wall clocks in milliseconds. */
int64_t bl_now_ms(void);
int64_t bl_wall_ms(void);

#define BL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define BL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Site names: 1..64 bytes of [A-Za-z0-9._-]. Used in config, wire and signalling. */
#define BL_SITE_NAME_MAX 64
bool bl_site_name_valid(const char *name);

/* Default maximum MQTT payload carried across a link (docs/CONFIG.md). */
#define BL_MAX_MESSAGE_DEFAULT (16u * 1024u * 1024u)
/* config link_window: what a link keeps in flight, enough for ~28 MB/s at 150 ms */
#define BL_LINK_WINDOW_DEFAULT (4u * 1024u * 1024u)

#endif
