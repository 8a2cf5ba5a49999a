/* SPDX-License-Identifier: MIT */
/* site_int.h - what the site's files share; not for other modules. From the top:
 *
 *   site.c      lifecycle, what waits for each commit, link and signalling events,
 *               what the local broker sends (sorted out here), ping
 *   site_reload.c  a new config applied to the running site (peers come and go)
 *   site_status.c  the status model and the retained status topics
 *   site_mq.c   the local session's QoS 2 state in the database
 *   site_out.c  what local clients publish: routed, queued and sent to peers
 *   site_in.c   what peers send: deduped, recorded in doubt, published locally,
 *               confirmed by its echo; recovery after a crash; backpressure
 *   site_txn.c  the commit machinery and the failure policy
 *
 * A file calls only files below it (site_mq.c calls site_in.c; site_out.c and site_in.c
 * sit side by side); site_txn.c hands each commit to site.c through after_commit. */
#ifndef BL_SITE_INT_H
#define BL_SITE_INT_H

#include "site.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "echo.h"
#include "link.h"
#include "local.h"
#include "log.h"
#include "loop.h"
#include "queue.h"
#include "router.h"
#include "signaling.h"
#include "subs.h"
#include "wire.h"

#define SITE_PUMP_BATCH 64
#define SITE_ACK_BATCH 512
#define SITE_ACK_SPACING_US 800  /* a commit sends acks if the last ACK frame is this old */
#define SITE_ACK_LATE_MS 10      /* otherwise they go with a later commit, or after this */
#define SITE_LAZY_COMMIT_MS 50   /* at the latest, for writes a crash may lose (site_txn_lazy) */
#define SITE_EXIT_STORAGE 3      /* exit status after a lost database write (site_storage_failed) */
#define SITE_PROBE_MS 100        /* echo confirmation probe while echo records wait */
#define SITE_ECHO_STALE_MS 30000 /* an acknowledged message whose echo never came */
/* Messages from peers waiting for the local broker (not yet acknowledged by it): past
 * either mark the links stop taking frames until a quarter of it is left. */
#define SITE_LOCAL_HIGH_MSGS 10000
#define SITE_LOCAL_HIGH_BYTES ((size_t)64 << 20)
/* Topic and property bytes from which a message's are counted with its payload's. */
#define SITE_HELD_MIN 256
/* QoS 0 for an open but busy link waits in memory up to this many messages; the rest
 * of a burst waits in the durable queue (route_out), so memory stays bounded and a
 * connected peer loses nothing. QoS 0 for a peer that is not there is dropped. */
#define SITE_Q0_MAX 8192
/* ...and at most this many more in the durable queue, so that a peer fed QoS 0 faster
 * than its link carries it for good cannot fill the queue that QoS 1 needs. */
#define SITE_Q0_SPILL_MAX 100000
/* The small-message lane (site_out.c): a message whose queued row is at most this many
 * bytes may overtake larger ones (the link sends frames up to 2 KiB ahead of larger
 * ones; a row is a little smaller than its frame), looking at most this far ahead of
 * the cursor: well inside the receiver's dedupe window (QUEUE_SEEN_WINDOW, 100,000), so
 * a message sent but not yet received may trail the cursor by up to 83,616 sequences
 * before the receiver would take it for one it had (100,000 without the lane). */
#define SITE_LANE_ROW_MAX 1536
#define SITE_LANE_SPAN 16384
/* How often the retained stats and peer topics are published again (site_status.c). */
#define SITE_STATUS_S 10

typedef struct peer_ctx {
    site_t *site;
    const config_peer_t *cfg;
    char who[BL_SITE_NAME_MAX + 8]; /* "peer NAME": who the log lines are about */
    link_t *link;
    uint64_t cursor;     /* highest seq handed to the link in this session */
    uint64_t sent_max;   /* highest seq ever handed to the link (dup flag) */
    size_t pump_n;       /* messages per queue_peek (site_pump); 0: SITE_PUMP_BATCH */
    GArray *acks;        /* seqs to acknowledge to this peer, once committed */
    GArray *acks_ready;  /* committed, to go out together (site_flush_acks) */
    GSource *ack_src;    /* sends acks_ready after SITE_ACK_LATE_MS */
    int64_t ack_sent_us; /* when the last ACK frame left (monotonic) */
    bool dirty;          /* queue grew: pump after commit */
    bool sync_pending;   /* retained sync waits for the backlog resend (commit_cb) */
    GQueue q0;           /* QoS 0 messages for an open link that is momentarily full */
    bool warned_full;
    bool q0_spill;                         /* QoS 0 overflow is in the durable queue (route_out) */
    size_t q0_spilled;                     /* how many since the spill began */
    uint64_t n_dollar, n_retained_refused; /* this peer's, for the WARN cadence (site_in.c) */
    site_stats_t stats; /* this peer's share of the site's counters (SITE_COUNT) */
    uint64_t msgs_sent; /* MSG frames handed to the link, resends included */
    uint32_t features;  /* what the peer's HELLO on this link said (WIRE_FEAT_*) */
    /* The small-message lane (site_out.c). */
    GTree *large;        /* seq -> topic of each queued message too large for the lane */
    GHashTable *ahead;   /* seqs the lane handed to the link in this session */
    uint64_t lane_after; /* the lane has handed every small message up to here */
    uint64_t lane_from;  /* queued before this peer's start: the lane waits until it is sent */
    bool lane_dirty;     /* something may be for the lane: a small message, a topic freed */
    size_t lane_blocked; /* small messages the last lane pass left behind a large one */
} peer_ctx_t;

/* Count one event of peer p in the site's counters and in p's own. */
#define SITE_COUNT(p, field)                                                                       \
    do {                                                                                           \
        (p)->site->stats.field++;                                                                  \
        (p)->stats.field++;                                                                        \
    } while (0)

/* A message from a peer waiting for the commit of its in-doubt record. */
typedef struct pending_pub {
    bl_msg_t *msg;
    uint64_t token;
} pending_pub_t;

/* An echo seen, whose in-doubt record goes once the broker has our PUBACK for it. */
typedef struct indoubt_ref {
    char origin[BL_SITE_NAME_MAX + 1];
    uint64_t seq;
    uint64_t upto; /* local_msgs_in() when the echo came */
    char *key;     /* to know the echo again if the broker sends it once more */
} indoubt_ref_t;

struct site {
    GMainContext *ctx;
    const config_t *cfg;
    const cert_t *cert;
    local_t *local;
    signaling_t *sig;
    queue_t *q;
    peer_ctx_t **peers; /* each allocated alone: timers hold them across reloads */
    size_t n_peers;
    echo_t *echo;           /* our publishes waiting to come back (echo.h) */
    GArray *to_publish;     /* pending_pub_t: published once their records commit */
    GHashTable *delivering; /* "peer/seq" being published locally */
    size_t mq_restored;     /* QoS 2 publishes of the last run sent again (site_mq.c) */
    bool recovering;        /* waiting for echoes of what the broker took before a crash */
    GSource *recover_src, *sweep_src;
    bool warned_no_echo;
    int64_t local_up_ms;  /* when the persistent session last connected (bl_now_ms) */
    bool rx_paused;       /* links stopped: the local broker is behind (site_local_backpressure) */
    bool rx_loud;         /* ... because it was away: its resume is logged too */
    GHashTable *held;     /* token -> bytes beyond the payload, until the broker has it */
    size_t held_bytes;    /* their sum, counted with local_pending_bytes (site_in.c) */
    char sync_topic[128]; /* brokerless/<site>/sync: the recovery marker's topic */
    char sync_marker[33];
    uint64_t next_token;
    bool txn_open;
    GSource *commit_src;
    void (*after_commit)(site_t *s); /* site.c's, called by site_txn.c after each commit */
    GSource *lazy_src;  /* commits lazy writes if nothing else does first (site_txn_lazy) */
    GSource *probe_src; /* publishes a probe while echo records wait (probe_cb) */
    GArray *echo_dels;  /* indoubt_ref_t: echoed, their PUBACK not yet read by the broker */
    bool settling;      /* the local connection dropped: waiting for echoes sent again */
    char *subs_now;     /* this run's subscriptions, recorded once the stale ones are gone */
    GSource *stats_src;
    int64_t started_wall_ms;
    bool stopping; /* site_stop: the status topics say "stopped" and stay so */
    void (*on_pong)(void *ud, const char *peer, uint64_t token); /* site_on_pong */
    void *pong_ud;
    uint64_t epoch;
    site_stats_t stats;
};

/* site.c */
peer_ctx_t *site_peer_new(site_t *s, const config_peer_t *cfg);
void site_peer_free(peer_ctx_t *p);

/* site_status.c */
void site_publish_peer(peer_ctx_t *p);
void site_publish_online(site_t *s);
void site_publish_stopped(site_t *s);
void site_publish_removed(site_t *s, const char *peer);
gboolean site_status_cb(gpointer ud);

/* site_txn.c */
_Noreturn void site_storage_failed(const char *what);
void site_db(int rc, const char *what);
void site_schedule_commit(site_t *s);
void site_txn(site_t *s);
void site_txn_lazy(site_t *s);
bool site_can_write(void *ud);

/* site_mq.c */
int site_mq_start(site_t *s);

/* site_out.c */
void site_pump(peer_ctx_t *p);
/* The small-message lane's state: made and freed with the peer, reset at each session,
 * told of acknowledged sequences. */
void site_lane_init(peer_ctx_t *p);
void site_lane_free(peer_ctx_t *p);
void site_lane_reset(peer_ctx_t *p);
void site_lane_acked(peer_ctx_t *p, uint64_t first, uint64_t last);
/* The peer's out-rules changed: topics queued so far were mapped by the old ones. */
void site_lane_rules_changed(peer_ctx_t *p);
void site_out_local(site_t *s, const bl_msg_t *m);
void site_sync_retained(peer_ctx_t *p);
void site_out_transit(site_t *s, peer_ctx_t *from, const bl_msg_t *m);

/* site_ack.c: an ACK owed for a message that this transaction makes durable; the owed
 * ACKs after the commit; dropped when the link goes down (the peer resends). */
void site_ack_add(peer_ctx_t *p, uint64_t seq);
void site_flush_acks(peer_ctx_t *p, bool publishing);
void site_drop_acks(peer_ctx_t *p);

/* site_in.c */
bool site_plain_qos0(const bl_msg_t *m);
const bl_msg_t *site_remote_message(peer_ctx_t *p, const bl_msg_t *m);
void site_unpublished(site_t *s, uint64_t token, const char *topic, int rc);
peer_ctx_t *site_peer_named(site_t *s, const char *name);
uint64_t site_in_flight(site_t *s, const char *origin, uint64_t seq);
bool site_local_still_wanted(void *ud, uint64_t token);
void site_echo_seen(site_t *s, echo_rec_t *r);
void site_local_acked(void *ud, uint64_t upto);
void site_local_down(void *ud);
void site_local_backpressure(site_t *s);
void site_local_delivered(void *ud, uint64_t token);
void site_recover_one(void *ud, const char *origin, uint64_t seq, const void *key, size_t key_len);
void site_settle_done(site_t *s);
void site_recover_after(site_t *s, unsigned ms);
int site_open_links(site_t *s);
/* The sealed signalling, made (and started when `start`) if the site has none yet. */
int site_signal_need(site_t *s, bool start);
gboolean site_sweep_cb(gpointer ud);

#endif
