/* SPDX-License-Identifier: MIT */
/* ctl.h - the daemon's control socket: a unix socket in its state directory, mode 0600,
 * that serves its own user (and root) one request per connection (ctlproto.h).
 *
 * Others are refused twice: by the socket file's mode and directory (0700), and by the
 * peer credentials of every connection (SO_PEERCRED), which are checked before a byte
 * is read. A request that is garbage, too long, or does not come within CTL_IDLE_MS is
 * answered with an error and the connection closed; at most CTL_MAX_CLIENTS are open
 * at once. Everything runs on the daemon's GMainContext, no threads, no GIO tasks. */
#ifndef BL_CTL_H
#define BL_CTL_H

#include <cjson/cJSON.h>
#include <glib.h>

#include "common.h"

#define CTL_IDLE_MS 5000
#define CTL_PING_TIMEOUT_MS 5000
#define CTL_MAX_CLIENTS 32

typedef struct ctl ctl_t;

/* What the daemon does for each request. Errors go back to the client as the text in
 * err. */
typedef struct ctl_handlers {
    cJSON *(*status)(void *ud);
    int (*reload)(void *ud, char *err, size_t errlen);
    /* *result: what to tell the client (owned by the caller after the call). */
    int (*forget)(void *ud, const char *peer, cJSON **result, char *err, size_t errlen);
    /* Send a PING with token; its answer comes back through ctl_pong. */
    int (*ping)(void *ud, const char *peer, uint64_t token, char *err, size_t errlen);
} ctl_handlers_t;

/* Listen on `path`. A socket file left there by a daemon that died is replaced; one a
 * running daemon answers on is not: BL_ESTATE (two daemons on one state directory would
 * share one database). Other errors: BL_EIO; the reason in err. */
int ctl_new(GMainContext *ctx, const char *path, const ctl_handlers_t *h, void *ud, ctl_t **out,
            char *err, size_t errlen);
/* The answer to the PING with this token came from `peer`. */
void ctl_pong(ctl_t *c, const char *peer, uint64_t token);
/* Closes every connection and removes the socket file. */
void ctl_free(ctl_t *c);

#endif
