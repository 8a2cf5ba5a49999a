/* SPDX-License-Identifier: MIT */
/* status.h - what a running site says about itself, and its renderings (pure).
 *
 * One model (status_site_t, filled by site_status()) rendered four ways: the JSON of
 * the control socket (`brokerless status --json`), the table of `brokerless status`
 * (from that JSON, so the command line needs no model of its own), the retained JSON of
 * the status topic brokerless/<site>/peers/<peer>, and the Prometheus text of metrics.c.
 * JSON is built with cJSON. */
#ifndef BL_STATUS_H
#define BL_STATUS_H

#include <cjson/cJSON.h>

#include "common.h"

/* Why a message for or from a peer was not carried, each counted apart. */
typedef enum {
    STATUS_DROP_QOS0 = 0,     /* QoS 0 for a peer that was not there (or too fast for it) */
    STATUS_DROP_QUEUE_FULL,   /* the peer's queue was at queue_max_messages */
    STATUS_DROP_EXPIRED,      /* its Message Expiry Interval ran out in the queue */
    STATUS_DROP_NOT_ROUTED,   /* from the peer, but no in-rule lets its topic in */
    STATUS_DROP_REFUSED,      /* from the peer, but not publishable (not UTF-8, ...) */
    STATUS_DROP_BAD_ORIGIN,   /* the peer relayed a message it did not originate */
    STATUS_DROP_RETAINED_CAP, /* the peer's retained messages past its retained caps */
    STATUS_DROP_N
} status_drop_t;

/* The reason's name in JSON and in the metrics' reason label. */
const char *status_drop_name(status_drop_t d);

typedef struct status_peer {
    char name[BL_SITE_NAME_MAX + 1];
    const char *state; /* link_state_name(), or "removed" (queue kept, not configured) */
    int64_t since_ms;  /* wall clock of the last change of state, 0 when unknown */
    char path[8];      /* host, srflx, prflx, relay while open, else "" */
    char local_addr[64], remote_addr[64];
    uint32_t rtt_ms; /* 0 when unknown */
    uint64_t msgs_out, msgs_in, bytes_out, bytes_in;
    uint64_t queued;
    uint64_t duplicates; /* resends recognised and only acknowledged */
    uint64_t drops[STATUS_DROP_N];
    uint64_t link_opens, link_failures;
    char last_error[160];
    bool insecure; /* a plaintext, unauthenticated peer (an ESP32 without a key) */
    bool browser;  /* profile = browser: "profile":"browser" in the JSON */
} status_peer_t;

typedef struct status_site {
    char name[BL_SITE_NAME_MAX + 1];
    int64_t started_ms, now_ms; /* wall clock */
    bool local_connected, signal_connected;
    uint64_t local_in, routed_out, remote_in, duplicates, too_big, retained_replays, rx_paused;
    uint64_t drops[STATUS_DROP_N]; /* the peers' together */
    uint64_t local_waiting;        /* messages from peers the local broker has not taken yet */
    uint64_t reloads, reloads_refused;
    size_t n_peers;
    status_peer_t *peers; /* owned: status_site_clear */
} status_site_t;

void status_site_clear(status_site_t *s);

/* "A:P <-> B:Q" (a link's pair) into its two addresses; both "" when it is not one. */
void status_split_pair(const char *pair, char *local, size_t llen, char *remote, size_t rlen);

/* The whole status, for the control socket. */
cJSON *status_json(const status_site_t *s);
/* One peer's retained status topic: state, since, path, both addresses, queued, last
 * error and counters. */
cJSON *status_peer_json(const status_peer_t *p);
/* The site's counters as its retained stats topic has always carried them. */
cJSON *status_stats_json(const status_site_t *s);

/* The table `brokerless status` prints, from status_json's output (g_free). Fields
 * missing from the JSON print as "-": an older daemon's answer still renders. */
char *status_table(const cJSON *status);

#endif
