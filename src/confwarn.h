/* SPDX-License-Identifier: MIT */
/* confwarn.h - what a valid configuration lets through that is unsafe: said once at
 * start (main.c), not refused. Pure. */
#ifndef BL_CONFWARN_H
#define BL_CONFWARN_H

#include <glib.h>

#include "config.h"

/* Append one line (g_free) per finding to `out`:
 *   - a password sent over plain MQTT ([local] without tls, [signal] with mqtt://) to a
 *     host that is not this machine (localhost, 127.0.0.0/8, ::1): anyone on the path
 *     reads it;
 *   - a network secret under SECRET_GOOD_BITS by secret_estimate_bits;
 *   - a peer with insecure = true (mode = esp32-example): plaintext, no authentication. */
void confwarn_list(const config_t *c, GPtrArray *out);

#endif
