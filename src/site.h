/* SPDX-License-Identifier: MIT */
/* site.h - one running site: the local broker, the signalling client, the durable
 * state and one link per peer, wired together on one GMainContext.
 *
 * Message path out: local broker -> router (per peer, out rules, QoS cap) -> origin
 * sequence -> durable queue (QoS >= 1, or QoS 0 when asked) -> link -> peer.
 * Message path in: peer -> dedupe -> router (in rules) -> local broker -> ACK to peer
 * once our broker accepted it. Split horizon: only messages published by local clients
 * are routed out; what we inject comes back as a recognised echo (echo.h) and stops. */
#ifndef BL_SITE_H
#define BL_SITE_H

#include <glib.h>

#include "cert.h"
#include "config.h"
#include "status.h"

typedef struct site site_t;

typedef struct site_stats {
    uint64_t local_in;         /* messages taken from the local broker */
    uint64_t routed_out;       /* message copies queued/sent to peers */
    uint64_t dropped_qos0;     /* QoS 0 with the peer down (not queued) */
    uint64_t too_big;          /* over max_message_size */
    uint64_t queue_full;       /* refused: a peer's queue at its cap */
    uint64_t expired;          /* expired while queued */
    uint64_t remote_in;        /* messages from peers delivered locally */
    uint64_t duplicates;       /* resends recognised and only acknowledged */
    uint64_t not_routed_in;    /* from a peer but no in-rule allows the topic */
    uint64_t refused_in;       /* from a peer but not publishable (not UTF-8, ...) */
    uint64_t bad_origin;       /* a peer sent a message it did not originate */
    uint64_t retained_replays; /* retained messages the broker replayed that we knew */
    uint64_t rx_paused;        /* times the links stopped: the local broker was behind */
    uint64_t retained_refused; /* a peer's retained messages past its retained caps */
    uint64_t overtook;         /* small messages sent ahead of large ones (site_out.c) */
} site_stats_t;

site_t *site_new(GMainContext *ctx, const config_t *cfg, const cert_t *cert);
int site_start(site_t *s);
const site_stats_t *site_stats(const site_t *s);
/* The status model (status.h) as it is now; status_site_clear() it. */
void site_status(site_t *s, status_site_t *out);
/* Send a PING carrying `token` to the peer; its answer goes to the on_pong callback.
 * BL_ENOTFOUND: no such peer; BL_ESTATE: its link is not open; BL_EVERSION: the peer
 * does not answer PING frames (its HELLO did not say WIRE_FEAT_PING). */
int site_ping(site_t *s, const char *peer, uint64_t token);
void site_on_pong(site_t *s, void (*cb)(void *ud, const char *peer, uint64_t token), void *ud);
/* Apply a new config (same [site], [local], [signal] and [ice]; site_reload_check says
 * so): peers added connect, peers removed close (their queue stays on disk), changed
 * rules apply, links that did not change stay up. `cfg` must outlive the site, or the
 * next reload. 0, or BL_EINVAL with the reason in err. */
int site_reload(site_t *s, const config_t *cfg, char *err, size_t errlen);
/* Drop what the database keeps for a peer no longer configured: its queue and what we
 * saw of its messages. BL_ESTATE when it is configured. */
int site_forget_peer(site_t *s, const char *peer, size_t *dropped);
/* A clean stop begins: the status topics say "stopped". True once what it published has
 * been handed to the local broker (or the broker is away): then site_free. */
void site_stop(site_t *s);
bool site_stop_flushed(const site_t *s);
void site_free(site_t *s);

#endif
