/* SPDX-License-Identifier: MIT */
/* ctlproto.h - the control socket's protocol (pure).
 *
 * A client connects to the daemon's unix socket (CTL_SOCKET_NAME in its state_dir,
 * mode 0600, and only the daemon's own user or root is served), writes one request line
 * and reads one answer line, then the daemon closes the connection.
 *
 *   request:  COMMAND [PEER] "\n", at most CTL_MAX_REQUEST bytes with the newline
 *               status          the status model (status.h) as JSON
 *               ping PEER       a round trip over the peer's open channel
 *               reload          read the config file again (as SIGHUP does)
 *               forget PEER     drop the queue of a peer no longer configured
 *   answer:   one line of JSON: {"ok":true,...} or {"ok":false,"error":"why"}
 *
 * Anything else (an unknown command, a bad peer name, bytes that are not printable
 * ASCII, a line that is too long) is answered with an error naming what was wrong. */
#ifndef BL_CTLPROTO_H
#define BL_CTLPROTO_H

#include <cjson/cJSON.h>

#include "common.h"

#define CTL_MAX_REQUEST 256
#define CTL_SOCKET_NAME "control.sock"

typedef enum { CTL_STATUS = 1, CTL_PING, CTL_RELOAD, CTL_FORGET } ctl_cmd_t;

typedef struct ctl_req {
    ctl_cmd_t cmd;
    char peer[BL_SITE_NAME_MAX + 1]; /* ping and forget */
} ctl_req_t;

/* One request line, without its newline. 0, or BL_EINVAL / BL_ETOOBIG with the reason
 * in err. */
int ctlproto_parse(const uint8_t *buf, size_t len, ctl_req_t *out, char *err, size_t errlen);
/* The request line for req (g_free), newline included. */
char *ctlproto_request(const ctl_req_t *req);
/* Answer lines, newline included (g_free). ctlproto_ok takes body (may be NULL). */
char *ctlproto_ok(cJSON *body);
char *ctlproto_error(const char *why);
/* The socket's path for a state directory: BL_ETOOBIG when it does not fit a
 * sockaddr_un (108 bytes with its NUL). */
int ctlproto_socket_path(const char *state_dir, char *out, size_t len);

#endif
