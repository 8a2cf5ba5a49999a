/* SPDX-License-Identifier: MIT */
/* fake_local.h - local.h without a broker, for test_site: it records what the site asks
 * of its local broker and lets the test play the broker. One site at a time. */
#ifndef BL_FAKE_LOCAL_H
#define BL_FAKE_LOCAL_H

#include "local.h"

/* One publish the site asked for (local_publish, local_inject or local_restore_out). */
typedef struct fake_pub {
    bl_msg_t *msg; /* a copy */
    uint64_t token;
    bool injected; /* local_inject, else local_publish (or restored) */
    bool restored; /* local_restore_out: the last run's QoS 2 publish, sent again */
    uint16_t pid;  /* a QoS 2 publish over the persistent session: its packet id */
    bool done;     /* the broker has it (fake_local_take) */
} fake_pub_t;

/* The site's local_t, NULL before site_new and after site_free. */
local_t *fake_local(void);
/* The broker accepts the connection (on_connect) or drops it (on_disconnect). */
void fake_local_connect(local_t *l);
void fake_local_disconnect(local_t *l);
/* The broker hands the session a message: a local client's, an echo or a marker. */
void fake_local_message(local_t *l, const bl_msg_t *m);
/* The broker takes publish i: its PUBACK, or for a QoS 2 publish over the persistent
 * session its PUBREC (recorded through the site's store first, as mqtt.c does). A
 * publish whose token is 0 (status, markers) counts as taken at once. */
void fake_local_take(local_t *l, size_t i);
/* The broker has read the site's acknowledgements of the first `upto` messages. */
void fake_local_acked(local_t *l, uint64_t upto);
size_t fake_local_n_pubs(const local_t *l);
const fake_pub_t *fake_local_pub(const local_t *l, size_t i);
/* Index of the first publish on `topic` after `from`, or -1. */
long fake_local_find(const local_t *l, const char *topic, size_t from);
/* Filters subscribed (local_subscribe), in order. */
const GPtrArray *fake_local_subs(const local_t *l);

#endif
