/* SPDX-License-Identifier: MIT */
/* ctlclient.h - the command line's side of the control socket (ctlproto.h): connect,
 * send one request, read the one answer line. Blocking, with a timeout. */
#ifndef BL_CTLCLIENT_H
#define BL_CTLCLIENT_H

#include <cjson/cJSON.h>

#include "ctlproto.h"

/* The answer object in *answer (cJSON_Delete), whether ok or not. BL_ENOTFOUND: no
 * daemon listens there; BL_EPERM: the socket is not ours to use; BL_EIO: anything else;
 * err says which. */
int ctlclient_request(const char *path, const ctl_req_t *req, int timeout_ms, cJSON **answer,
                      char *err, size_t errlen);

#endif
