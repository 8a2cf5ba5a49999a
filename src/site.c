/* SPDX-License-Identifier: MIT */
#include "site.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "echo.h"
#include "link.h"
#include "local.h"
#include "log.h"
#include "queue.h"
#include "router.h"
#include "signaling.h"
#include "subs.h"
#include "wire.h"

#define SITE_PUMP_BATCH 64
#define SITE_ACK_BATCH 512
#define SITE_LAZY_COMMIT_MS 50 /* at the latest, for writes a crash may lose (txn_lazy) */
#define SITE_EXIT_STORAGE 3 /* exit status after a lost database write (storage_failed) */
#define SITE_PROBE_MS 100     /* echo confirmation probe while echo records wait */
#define SITE_ECHO_STALE_MS 30000 /* an acknowledged message whose echo never came */
/* Messages from peers waiting for the local broker (not yet acknowledged by it): past
 * either mark the links stop taking frames until a quarter of it is left. */
#define SITE_LOCAL_HIGH_MSGS 10000
#define SITE_LOCAL_HIGH_BYTES ((size_t)64 << 20)
/* QoS 0 for an open but busy link waits in memory up to this many messages; the rest
 * of a burst waits in the durable queue (route_out), so memory stays bounded and a
 * connected peer loses nothing. QoS 0 for a peer that is not there is dropped. */
#define SITE_Q0_MAX 8192
/* ...and at most this many more in the durable queue, so that a peer fed QoS 0 faster
 * than its link carries it for good cannot fill the queue that QoS 1 needs. */
#define SITE_Q0_SPILL_MAX 100000

typedef struct peer_ctx {
    site_t *site;
    const config_peer_t *cfg;
    link_t *link;
    uint64_t cursor;   /* highest seq handed to the link in this session */
    uint64_t sent_max; /* highest seq ever handed to the link (dup flag) */
    GArray *acks;      /* seqs to acknowledge to this peer */
    bool dirty;        /* queue grew: pump after commit */
    bool sync_pending; /* retained sync waits for the backlog resend (commit_cb) */
    GQueue q0;         /* QoS 0 messages for an open link that is momentarily full */
    bool warned_full;
    bool q0_spill;     /* QoS 0 overflow is in the durable queue (route_out) */
    size_t q0_spilled; /* how many since the spill began */
} peer_ctx_t;

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
    peer_ctx_t *peers;
    size_t n_peers;
    echo_t *echo;           /* our publishes waiting to come back (echo.h) */
    GArray *to_publish;     /* pending_pub_t: published once their records commit */
    GHashTable *delivering; /* "peer/seq" being published locally */
    bool recovering;        /* waiting for echoes of what the broker took before a crash */
    GSource *recover_src, *sweep_src;
    bool warned_no_echo;
    int64_t local_up_ms; /* when the persistent session last connected (bl_now_ms) */
    bool rx_paused;      /* links stopped: the local broker is behind (local_backpressure) */
    bool rx_loud;        /* ... because it was away: its resume is logged too */
    char sync_topic[128]; /* brokerless/<site>/sync: the recovery marker's topic */
    char sync_marker[33];
    uint64_t next_token;
    bool txn_open;
    GSource *commit_src;
    GSource *lazy_src; /* commits lazy writes if nothing else does first (txn_lazy) */
    GSource *probe_src; /* publishes a probe while echo records wait (probe_cb) */
    GArray *echo_dels; /* indoubt_ref_t: echoed, their PUBACK not yet read by the broker */
    bool settling;     /* the local connection dropped: waiting for echoes sent again */
    char *subs_now;    /* this run's subscriptions, recorded once the stale ones are gone */
    GSource *stats_src;
    uint64_t epoch;
    site_stats_t stats;
};

/* ---- batching: one transaction per main-loop dispatch ----
 *
 * Writes open a transaction lazily; a high-priority idle commits it right after the
 * callback that wrote, before any other I/O is dispatched. Only after the commit do we
 * send frames (a sequence must be durable before a peer can see it) and acks (a dedupe
 * mark must be durable before the peer forgets the message). */

static void pump(peer_ctx_t *p);
static void flush_acks(peer_ctx_t *p);
static void sync_retained(peer_ctx_t *p);
static void echo_seen(site_t *s, echo_rec_t *r);
static void recover_after(site_t *s, unsigned ms);
static void local_unsubscribed(void *ud);
static void settle_done(site_t *s);
static void unpublished(site_t *s, uint64_t token, const char *topic, int rc);
static void local_backpressure(site_t *s);

/* The database lost a write that an acknowledgement will rely on (a failed commit, a
 * transaction that cannot begin, a message that cannot be queued). Going on would
 * acknowledge what is not stored: stop as a crash would (no exit handlers, no last
 * writes). The database is consistent, and the local broker and the peers send again
 * what was not acknowledged (docs/QUEUE.md, Durability). */
static _Noreturn void storage_failed(const char *what)
{
    LOG_ERROR("site",
              "%s (disk full or failing?): stopping now, as after a crash; nothing "
              "unstored was acknowledged. Restart once the disk is fixed.",
              what);
    _exit(SITE_EXIT_STORAGE);
}

/* A peer's message that needs no echo with exactly-once: a broker keeps no QoS 0 echo
 * for a session that is away, so the echo could not tell across a crash whether it was
 * delivered anyway (a sequenced QoS 0, queue_qos0 or a burst spill, may come twice after
 * a crash in either mode). It goes in over the persistent session, whose No Local keeps
 * it from coming back (a broker sends what it takes twice otherwise: to the subscribers
 * and to us). A retained one still takes the injecting connection: the order of a set
 * and its clearing decides what stays retained, and a clearing is often QoS 0. */
static bool plain_qos0(const bl_msg_t *m)
{
    return m->qos == 0 && !m->retain;
}

static gboolean commit_cb(gpointer ud)
{
    site_t *s = ud;
    s->commit_src = NULL;
    if (s->lazy_src) {
        g_source_destroy(s->lazy_src);
        s->lazy_src = NULL;
    }
    if (s->txn_open) {
        s->txn_open = false;
        /* What this commit held (queued messages whose PUBACK is waiting, seen marks
         * whose ACK is waiting, in-doubt records, sequences) would be gone, and
         * libmosquitto already holds some of those PUBACKs. */
        if (queue_commit(s->q))
            storage_failed("cannot commit the queue database");
    }
    /* Messages from peers go to our broker only now that their in-doubt records are
     * durable: after a crash we can tell whether the broker had them (their echo). */
    for (guint i = 0; i < s->to_publish->len; i++) {
        pending_pub_t *pp = &g_array_index(s->to_publish, pending_pub_t, i);
        int rc = plain_qos0(pp->msg) ? local_publish(s->local, pp->msg, pp->token)
                                     : local_inject(s->local, pp->msg, pp->token);
        if (rc) /* checked in remote_message: out of memory */
            unpublished(s, pp->token, pp->msg->topic, rc);
        msg_free(pp->msg);
    }
    g_array_set_size(s->to_publish, 0);
    local_backpressure(s);
    for (size_t i = 0; i < s->n_peers; i++) {
        peer_ctx_t *p = &s->peers[i];
        flush_acks(p);
        if (p->dirty) {
            p->dirty = false;
            pump(p);
        }
        if (p->sync_pending && link_is_open(p->link)) {
            p->sync_pending = false;
            sync_retained(p);
        }
    }
    return G_SOURCE_REMOVE;
}

/* Attach src to our context with fn(s); the context owns it, the pointer returned
 * stays valid until the source is destroyed or its callback returns REMOVE. */
static GSource *attach(site_t *s, GSource *src, GSourceFunc fn)
{
    g_source_set_callback(src, fn, s, NULL);
    g_source_attach(src, s->ctx);
    g_source_unref(src);
    return src;
}

static void schedule_commit(site_t *s)
{
    if (s->commit_src)
        return;
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_HIGH);
    s->commit_src = attach(s, src, commit_cb);
}

static void txn_begin(site_t *s)
{
    if (s->txn_open)
        return;
    if (queue_begin(s->q))
        storage_failed("cannot begin a transaction in the queue database");
    s->txn_open = true;
}

static void txn(site_t *s)
{
    txn_begin(s);
    schedule_commit(s);
}

static gboolean lazy_commit_cb(gpointer ud)
{
    site_t *s = ud;
    s->lazy_src = NULL;
    if (!s->commit_src)
        schedule_commit(s);
    return G_SOURCE_REMOVE;
}

/* For writes that nothing waits on and that a crash may lose: a peer's ACK deleting a
 * message (lost, the message is sent again and the peer's dedupe window drops it) or
 * an echo closing an in-doubt record (lost, the recovery finds no echo and drops the
 * record; the delivery itself was committed at the PUBACK). They ride with the next
 * commit, or at the latest SITE_LAZY_COMMIT_MS later: under load that halves the
 * commits of a sending site. */
static void txn_lazy(site_t *s)
{
    txn_begin(s);
    if (!s->commit_src && !s->lazy_src)
        s->lazy_src = attach(s, g_timeout_source_new(SITE_LAZY_COMMIT_MS), lazy_commit_cb);
}

/* ---- status on the local broker ---- */

static void publish_status(site_t *s, const char *sub, const char *json)
{
    /* $SYS is reserved to the broker (mosquitto drops client publishes there), so the
     * status tree lives under brokerless/<site>/. */
    char topic[256];
    snprintf(topic, sizeof(topic), "brokerless/%s/%s", s->cfg->site_name, sub);
    bl_msg_t m;
    msg_init(&m);
    m.topic = topic;
    m.payload = (uint8_t *)json;
    m.payload_len = strlen(json);
    m.retain = true;
    local_publish(s->local, &m, 0);
}

static void publish_peer_state(peer_ctx_t *p)
{
    char json[256], sub[128];
    link_t *l = p->link;
    snprintf(json, sizeof(json), "{\"state\":\"%s\",\"path\":\"%s\",\"queued\":%zu}",
             link_state_name(link_state(l)), link_path_type(l),
             queue_depth(p->site->q, p->cfg->name));
    snprintf(sub, sizeof(sub), "peers/%s", p->cfg->name);
    publish_status(p->site, sub, json);
}

/* ---- outbound ---- */

static int send_msg(peer_ctx_t *p, bl_msg_t *m)
{
    uint8_t *frame;
    size_t len;
    int rc = wire_encode_msg(m, &frame, &len);
    if (rc)
        return rc;
    rc = link_send_frame(p->link, frame, len);
    free(frame);
    return rc;
}

/* Message expiry (MQTT 5 3.3.2.3.3): the interval left is what was left when we took
 * it in, minus the time it spent in our queue. */
static bool expire(bl_msg_t *m, int64_t enq_ms)
{
    if (!m->has_expiry)
        return false;
    int64_t spent = (bl_wall_ms() - enq_ms) / 1000;
    if (spent < 0)
        spent = 0;
    if ((int64_t)m->expiry_s <= spent)
        return true;
    m->expiry_s -= (uint32_t)spent;
    return false;
}

static void pump(peer_ctx_t *p)
{
    site_t *s = p->site;
    if (s->txn_open) {
        /* Frames leave only once their sequence is committed (commit_cb pumps); a lazy
         * transaction is committed now. */
        p->dirty = true;
        schedule_commit(s);
        return;
    }
    bl_msg_t *m0;
    while (link_can_send(p->link) && (m0 = g_queue_pop_head(&p->q0))) {
        send_msg(p, m0);
        msg_free(m0);
    }
    while (link_can_send(p->link)) {
        bl_msg_t **msgs;
        int64_t *enq;
        size_t n = 0;
        if (queue_peek(s->q, p->cfg->name, p->cursor, SITE_PUMP_BATCH, &msgs, &enq, &n))
            return;
        if (!n) {
            p->q0_spill = false; /* drained: QoS 0 may take the memory queue again */
            p->q0_spilled = 0;
            return;
        }
        size_t i = 0;
        for (; i < n && link_can_send(p->link); i++) {
            bl_msg_t *m = msgs[i];
            p->cursor = m->seq;
            if (expire(m, enq[i])) {
                s->stats.expired++;
                LOG_DEBUG("site", "message on %s for %s expired in the queue", m->topic,
                          p->cfg->name);
                txn(s);
                queue_ack(s->q, p->cfg->name, m->seq);
                continue;
            }
            m->dup = m->seq <= p->sent_max;
            if (send_msg(p, m))
                LOG_WARN("site", "cannot send a message on %s to %s", m->topic, p->cfg->name);
            if (m->seq > p->sent_max)
                p->sent_max = m->seq;
        }
        queue_msgs_free(msgs, enq, n);
    }
}

/* A copy of m under the topic and QoS a rule mapped it to; takes topic (also on
 * failure, when it returns NULL). */
static bl_msg_t *routed_copy(const bl_msg_t *m, char *topic, int qos)
{
    bl_msg_t *c = msg_dup(m);
    if (!c) {
        free(topic);
        return NULL;
    }
    free(c->topic);
    c->topic = topic;
    c->qos = (uint8_t)qos;
    return c;
}

static void route_out(site_t *s, peer_ctx_t *p, const bl_msg_t *m, uint64_t *seq)
{
    char *wire_topic = NULL;
    int qos = 0;
    if (router_map_out(p->cfg->rules, p->cfg->n_rules, m->topic, m->qos, &wire_topic, &qos) != 1)
        return;
    bl_msg_t *c = routed_copy(m, wire_topic, qos);
    if (!c)
        return;
    free(c->origin);
    c->origin = strdup(s->cfg->site_name);
    s->stats.routed_out++;

    bool spilled = false;
    if (qos == 0 && !p->cfg->queue_qos0) {
        /* MQTT QoS 0: at most once, nothing kept for a peer that is not there. */
        if (!link_is_open(p->link)) {
            s->stats.dropped_qos0++;
            msg_free(c);
            return;
        }
        /* From memory a message goes out ahead of the peer's durable backlog, so it
         * carries no sequence (one far ahead of the backlog would move the receiver's
         * dedupe window past it). Only a retained one needs its sequence (the retained
         * sync's dedupe): with a backlog it takes the queue, in sequence order. */
        c->seq = c->retain ? *seq : 0;
        bool backlog = c->retain && queue_depth(s->q, p->cfg->name) > 0;
        if (!p->q0_spill && !backlog && p->q0.length < SITE_Q0_MAX) {
            g_queue_push_tail(&p->q0, c);
            p->dirty = true;
            schedule_commit(s); /* pumps after any commit, like everything else */
            return;
        }
        /* The peer is there but the link is behind a burst: past SITE_Q0_MAX in
         * memory, QoS 0 goes into the durable queue, and keeps going there (in
         * order: pump sends memory first) until the queue has drained, instead of
         * being dropped; past SITE_Q0_SPILL_MAX there too, it is dropped after
         * all. A retained one for a peer with a backlog starts the same. */
        if (p->q0_spilled >= SITE_Q0_SPILL_MAX) {
            if (p->q0_spilled++ == SITE_Q0_SPILL_MAX)
                LOG_WARN("site",
                         "QoS 0 for %s keeps coming faster than the link carries it: "
                         "dropping QoS 0 for it until its queue drains",
                         p->cfg->name);
            s->stats.dropped_qos0++;
            msg_free(c);
            return;
        }
        if (!p->q0_spill && !backlog)
            LOG_INFO("site",
                     "QoS 0 burst for %s over %d messages: the rest waits in the "
                     "queue (up to %d more, then QoS 0 is dropped until it drains)",
                     p->cfg->name, SITE_Q0_MAX, SITE_Q0_SPILL_MAX);
        p->q0_spill = true;
        p->q0_spilled++;
        spilled = true;
    }
    txn(s);
    if (*seq == 0 && queue_next_seq(s->q, seq))
        storage_failed("cannot allocate a sequence number");
    c->seq = *seq;
    int rc = queue_push(s->q, p->cfg->name, c, bl_wall_ms(), s->cfg->queue_max_messages);
    if (rc == BL_ETOOBIG && spilled) {
        s->stats.dropped_qos0++; /* a QoS 0 spill refused: counted as the drop it is */
    } else if (rc == BL_ETOOBIG) {
        s->stats.queue_full++;
        if (!p->warned_full)
            LOG_WARN("site",
                     "queue for %s is full (%zu messages): refusing new messages "
                     "for it until it drains",
                     p->cfg->name, s->cfg->queue_max_messages);
        p->warned_full = true;
    } else if (rc == BL_EIO || rc == BL_ENOMEM || rc == BL_EAGAIN) {
        storage_failed("cannot queue a message"); /* its PUBACK would follow */
    } else if (rc) {
        LOG_ERROR("site", "cannot queue a message on %s for %s: %s", m->topic, p->cfg->name,
                  bl_strerror(rc));
    } else {
        p->warned_full = false;
        p->dirty = true;
    }
    msg_free(c);
}

/* The retained store keeps, per local topic, the last retained message and where it
 * came from, so a site that was away can be brought up to date when its link opens
 * (sync_retained), and a late resend never overwrites a newer retained value. */
static void remember_retained(site_t *s, const bl_msg_t *m, uint64_t *seq)
{
    txn(s);
    if (*seq == 0 && queue_next_seq(s->q, seq))
        return;
    bl_msg_t *c = msg_dup(m);
    if (!c)
        return;
    free(c->origin);
    c->origin = strdup(s->cfg->site_name);
    c->seq = *seq;
    if (queue_retained_put(s->q, c))
        LOG_WARN("site", "cannot store the retained message of %s", m->topic);
    msg_free(c);
}

/* At every (re)subscribe the broker replays its retained messages. Those we already
 * know (same topic and payload as our store) are not news and are not sent again;
 * a retained value that changed while we were away is. A client re-publishing an
 * identical retained value is taken for a replay too: every site already has it. */
static bool retained_known(site_t *s, const bl_msg_t *m)
{
    bl_msg_t *have = NULL;
    if (queue_retained_get(s->q, m->topic, &have) != 0)
        return false;
    bool same = have->payload_len == m->payload_len &&
                (m->payload_len == 0 || !memcmp(have->payload, m->payload, m->payload_len));
    msg_free(have);
    return same;
}

static void local_message(void *ud, const bl_msg_t *m)
{
    site_t *s = ud;
    if (!strcmp(m->topic, s->sync_topic)) {
        bool marker = m->payload_len == strlen(s->sync_marker) &&
                      !memcmp(m->payload, s->sync_marker, m->payload_len);
        if (marker && s->recovering)
            recover_after(s, 0);
        else if (marker && s->settling)
            settle_done(s);
        return;
    }
    if (echo_waiting(s->echo)) {
        char *key = echo_key(m->topic, m->payload, m->payload_len);
        echo_rec_t *r = key ? echo_take(s->echo, key) : NULL;
        free(key);
        if (r) {
            echo_seen(s, r); /* split horizon: what came from a peer never goes out */
            return;
        }
    }
    s->stats.local_in++;
    if (m->payload_len > s->cfg->max_message_size) {
        s->stats.too_big++;
        LOG_WARN("site",
                 "refused a message on %s: %zu bytes is over max_message_size %zu "
                 "(%llu refused so far)",
                 m->topic, m->payload_len, s->cfg->max_message_size,
                 (unsigned long long)s->stats.too_big);
        return;
    }
    if (m->retain && retained_known(s, m)) {
        s->stats.retained_replays++;
        return;
    }
    uint64_t seq = 0; /* one origin sequence per message, shared by all peers */
    if (m->retain)
        remember_retained(s, m, &seq);
    for (size_t i = 0; i < s->n_peers; i++)
        route_out(s, &s->peers[i], m, &seq);
}

/* ---- inbound ---- */

static void ack_add(peer_ctx_t *p, uint64_t seq)
{
    g_array_append_val(p->acks, seq);
    schedule_commit(p->site);
}

static void flush_acks(peer_ctx_t *p)
{
    while (p->acks->len) {
        size_t n = BL_MIN(p->acks->len, SITE_ACK_BATCH);
        uint8_t *frame;
        size_t len;
        if (link_is_open(p->link) &&
            wire_encode_ack((uint64_t *)(void *)p->acks->data, n, &frame, &len) == 0) {
            link_send_frame(p->link, frame, len);
            free(frame);
        }
        g_array_remove_range(p->acks, 0, (guint)n);
    }
}

/* "peer/seq", built without printf: this runs for every message from a peer. */
static char *delivery_key(peer_ctx_t *p, uint64_t seq)
{
    char digits[24];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + seq % 10);
    while ((seq /= 10) && n < sizeof digits);
    size_t nl = strlen(p->cfg->name);
    char *k = g_malloc(nl + 1 + n + 1);
    memcpy(k, p->cfg->name, nl);
    k[nl] = '/';
    for (size_t i = 0; i < n; i++)
        k[nl + 1 + i] = digits[n - 1 - i];
    k[nl + 1 + n] = '\0';
    return k;
}

/* A retained message from a peer: keep it as the topic's retained value, unless we
 * hold a newer one from the same origin (a resend or sync overtaken by a newer
 * message); then it still reaches live subscribers, but not as retained. */
static void retained_in(site_t *s, bl_msg_t *c)
{
    bl_msg_t *have = NULL;
    if (queue_retained_get(s->q, c->topic, &have) == 0 && have->origin &&
        !strcmp(have->origin, c->origin) && have->seq > c->seq) {
        c->retain = false;
    } else {
        txn(s);
        queue_retained_put(s->q, c);
    }
    msg_free(have);
}

static void remote_message(peer_ctx_t *p, const bl_msg_t *m)
{
    site_t *s = p->site;
    if (!m->origin || strcmp(m->origin, p->cfg->name) != 0) {
        /* Split horizon: a peer only forwards what its own clients published. */
        s->stats.bad_origin++;
        LOG_WARN(p->cfg->name, "peer sent a message of origin \"%s\", dropped",
                 m->origin ? m->origin : "");
        if (m->seq)
            ack_add(p, m->seq);
        return;
    }
    char *local_topic = NULL;
    int qos = 0;
    if (router_map_in(p->cfg->rules, p->cfg->n_rules, m->topic, m->qos, &local_topic, &qos) != 1) {
        s->stats.not_routed_in++;
        LOG_DEBUG(p->cfg->name, "no in-rule for %s, dropped", m->topic);
        if (m->seq)
            ack_add(p, m->seq);
        return;
    }
    if (m->seq) {
        if (queue_seen(s->q, m->origin, m->seq) == 1) {
            s->stats.duplicates++;
            ack_add(p, m->seq);
            free(local_topic);
            return;
        }
        char *key = delivery_key(p, m->seq);
        bool on_its_way = g_hash_table_contains(s->delivering, key);
        g_free(key);
        if (on_its_way) { /* already on its way to our broker; its ack will follow */
            free(local_topic);
            return;
        }
    }
    bl_msg_t *c = routed_copy(m, local_topic, qos);
    if (!c)
        return;
    int rc = local_check_publish(c);
    if (rc) {
        /* Never publishable (a property that is not UTF-8, say): waiting for it would
         * keep it in the peer's queue for ever. Dropped, counted, and acknowledged. */
        s->stats.refused_in++;
        LOG_WARN(p->cfg->name,
                 "cannot give its message on %s to our broker (%s: a topic or property "
                 "that is not valid MQTT), dropped (%llu so far)",
                 c->topic, bl_strerror(rc), (unsigned long long)s->stats.refused_in);
        if (m->seq)
            ack_add(p, m->seq);
        msg_free(c);
        return;
    }
    if (c->retain && m->seq)
        retained_in(s, c);
    uint64_t token = ++s->next_token;
    /* Only what goes in over the injecting connection comes back (echoed): no key, no
     * echo to recognise, the token will do. */
    bool echoed = !s->cfg->at_least_once && !plain_qos0(c);
    char *key = echoed ? echo_key(c->topic, c->payload, c->payload_len) : NULL;
    if ((!key && echoed) || !echo_add(s->echo, key, m->origin, m->seq, token, p, false)) {
        free(key);
        msg_free(c);
        return;
    }
    txn(s);
    if (m->seq) {
        g_hash_table_add(s->delivering, delivery_key(p, m->seq));
        if (key)
            queue_indoubt_add(s->q, m->origin, m->seq, key, strlen(key));
    }
    free(key);
    pending_pub_t pp = {.msg = c, .token = token};
    g_array_append_val(s->to_publish, pp);
}

/* The peer's message is in our broker: remember it as seen and tell the peer. */
static void delivered(site_t *s, peer_ctx_t *p, const char *origin, uint64_t seq)
{
    s->stats.remote_in++;
    if (!seq)
        return;
    txn(s);
    queue_mark_seen(s->q, origin, seq);
    if (p) {
        char *key = delivery_key(p, seq);
        g_hash_table_remove(s->delivering, key);
        g_free(key);
        ack_add(p, seq);
    }
}

/* A message from a peer could not be handed to libmosquitto after all (out of memory):
 * forget it was on its way, so that the peer's resend (at the next link) is taken. */
static void unpublished(site_t *s, uint64_t token, const char *topic, int rc)
{
    LOG_ERROR("site", "cannot publish a message from a peer on %s: %s", topic, bl_strerror(rc));
    echo_rec_t *r = echo_take_token(s->echo, token);
    if (r && r->seq && r->peer) {
        char *key = delivery_key(r->peer, r->seq);
        g_hash_table_remove(s->delivering, key);
        g_free(key);
        if (r->key) {
            txn_lazy(s);
            queue_indoubt_del(s->q, r->origin, r->seq);
        }
    }
    echo_rec_free(r);
}

static peer_ctx_t *peer_named(site_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_peers; i++)
        if (!strcmp(s->peers[i].cfg->name, name))
            return &s->peers[i];
    return NULL;
}

/* Echo records wait for the broker to have read our PUBACKs of their echoes, which
 * its answer to a later publish on the same session proves (local_acked). What peers
 * send is published on another connection (local.c), so while records wait, a QoS 1
 * probe goes out on the persistent session now and then; it comes back on the sync
 * topic and is ignored there. */
static gboolean probe_cb(gpointer ud)
{
    site_t *s = ud;
    if (!s->echo_dels->len) {
        s->probe_src = NULL;
        return G_SOURCE_REMOVE;
    }
    if (local_connected(s->local)) {
        static const char probe[] = "probe";
        bl_msg_t m;
        msg_init(&m);
        m.topic = s->sync_topic;
        m.payload = (uint8_t *)probe;
        m.payload_len = sizeof(probe) - 1;
        m.qos = 1;
        local_publish(s->local, &m, 0);
    }
    return G_SOURCE_CONTINUE;
}

/* The injecting connection dropped with this message in flight: publish it again only
 * while its echo has not come (the echo is the broker's word that it has it). */
static bool local_still_wanted(void *ud, uint64_t token)
{
    site_t *s = ud;
    return echo_by_token(s->echo, token) != NULL;
}

/* A message came back from our broker: the echo of one we published. */
static void echo_seen(site_t *s, echo_rec_t *r)
{
    if (r->recovered) {
        /* The broker took it before we crashed: it counts as delivered. */
        LOG_DEBUG("site", "recovered delivery of %s/%llu confirmed by its echo", r->origin,
                  (unsigned long long)r->seq);
        delivered(s, peer_named(s, r->origin), r->origin, r->seq);
    } else if (!r->acked) {
        delivered(s, r->peer, r->origin, r->seq);
    }
    if (r->seq) {
        /* The in-doubt record goes once the echo's own acknowledgement is written
         * (local_acked). Deleted before, a kill -9 would make the broker send the echo
         * again to a daemon that no longer knows it for one: it would go out as a local
         * message. */
        indoubt_ref_t d = {.seq = r->seq, .upto = local_msgs_in(s->local), .key = r->key};
        r->key = NULL;
        g_strlcpy(d.origin, r->origin, sizeof(d.origin));
        g_array_append_val(s->echo_dels, d);
        if (!s->probe_src)
            s->probe_src = attach(s, g_timeout_source_new(SITE_PROBE_MS), probe_cb);
    }
    echo_rec_free(r);
}

/* The broker has read our PUBACKs of the first `upto` messages: the in-doubt records of
 * the echoes among them may go. */
static void local_acked(void *ud, uint64_t upto)
{
    site_t *s = ud;
    guint n = 0;
    while (n < s->echo_dels->len && g_array_index(s->echo_dels, indoubt_ref_t, n).upto <= upto)
        n++;
    if (!n)
        return;
    txn_lazy(s);
    /* Echoes come back in the order we published, so mostly as runs of consecutive
     * sequences of one origin: one delete per run. */
    for (guint i = 0, j; i < n; i = j) {
        indoubt_ref_t *d = &g_array_index(s->echo_dels, indoubt_ref_t, i);
        uint64_t last = d->seq;
        for (j = i + 1; j < n; j++) {
            indoubt_ref_t *e = &g_array_index(s->echo_dels, indoubt_ref_t, j);
            if (last == UINT64_MAX || e->seq != last + 1 || strcmp(e->origin, d->origin))
                break;
            last = e->seq;
        }
        queue_indoubt_del_range(s->q, d->origin, d->seq, last);
    }
    for (guint i = 0; i < n; i++)
        free(g_array_index(s->echo_dels, indoubt_ref_t, i).key);
    g_array_remove_range(s->echo_dels, 0, n);
}

/* The connection to the local broker dropped: the PUBACKs of the echoes still listed
 * may never have reached it, and then it sends those echoes again. Until a marker comes
 * back after them they are known as recovered records, as after a crash. */
static void local_down(void *ud)
{
    site_t *s = ud;
    for (guint i = 0; i < s->echo_dels->len; i++) {
        indoubt_ref_t *d = &g_array_index(s->echo_dels, indoubt_ref_t, i);
        if (!echo_add(s->echo, d->key, d->origin, d->seq, 0, NULL, true)) {
            txn_lazy(s); /* cannot wait for it: the peer resends, the window drops it */
            queue_indoubt_del(s->q, d->origin, d->seq);
        }
        free(d->key);
    }
    if (s->echo_dels->len)
        s->settling = true;
    g_array_set_size(s->echo_dels, 0);
}

/* Messages from peers pile up in memory while the local broker is away or slower than
 * the links: past a high mark the links stop reading, so the peers' frames wait in
 * their queues (on disk) and in the transport's window, not here. */
static void local_backpressure(site_t *s)
{
    size_t n = local_pending(s->local), bytes = local_pending_bytes(s->local);
    bool over = n >= SITE_LOCAL_HIGH_MSGS || bytes >= SITE_LOCAL_HIGH_BYTES;
    bool under = n <= SITE_LOCAL_HIGH_MSGS / 4 && bytes <= SITE_LOCAL_HIGH_BYTES / 4;
    if (s->rx_paused ? !under : !over)
        return;
    s->rx_paused = !s->rx_paused;
    /* A broker that is away is news; one that is only slower than a flood is flow
     * control, said once and then at debug level (stats count it). */
    bool away = !local_connected(s->local);
    if (s->rx_paused) {
        s->stats.rx_paused++;
        s->rx_loud = away;
        LOG_AT(away ? LOG_LVL_WARN : s->stats.rx_paused == 1 ? LOG_LVL_INFO : LOG_LVL_DEBUG,
               "site",
               "%zu messages (%zu bytes) from peers wait for the local broker%s: "
               "not taking more from peers until it has taken most of them",
               n, bytes, away ? " (not connected)" : "");
    } else {
        LOG_AT(s->rx_loud || s->stats.rx_paused == 1 ? LOG_LVL_INFO : LOG_LVL_DEBUG, "site",
               "the local broker has caught up (%zu waiting): taking messages from peers again",
               n);
        s->rx_loud = false;
    }
    for (size_t i = 0; i < s->n_peers; i++)
        link_pause_rx(s->peers[i].link, s->rx_paused);
}

/* The broker acknowledged a message from a peer (PUBACK/PUBCOMP): acknowledge it to
 * the peer now; its record stays until the echo, which we must still recognise. */
static void local_delivered(void *ud, uint64_t token)
{
    site_t *s = ud;
    if (s->rx_paused)
        local_backpressure(s);
    echo_rec_t *r = echo_by_token(s->echo, token);
    if (r && !r->key) { /* no echo will come: the PUBACK (or the write) is the end */
        r = echo_take_token(s->echo, token);
        if (r)
            delivered(s, r->peer, r->origin, r->seq);
        echo_rec_free(r);
        return;
    }
    if (!r || r->acked)
        return;
    r->acked = true;
    delivered(s, r->peer, r->origin, r->seq);
}

/* ---- link events ---- */

static peer_ctx_t *peer_of(site_t *s, link_t *l)
{
    for (size_t i = 0; i < s->n_peers; i++)
        if (s->peers[i].link == l)
            return &s->peers[i];
    return NULL;
}

static void link_signal(void *ud, link_t *l, const char *type, const char *sid, const char *body)
{
    site_t *s = ud;
    if (signaling_send(s->sig, link_peer_name(l), type, sid, body))
        LOG_WARN(link_peer_name(l), "cannot send a %s over signalling", type);
}

/* Send the peer our own retained messages (the newest per topic, clears included) that
 * its rules take. Each carries its original sequence: what the peer already has is
 * recognised and only acknowledged; what it missed (it was away, a QoS 0 retained
 * message, a new peer) is delivered. */
static void sync_retained(peer_ctx_t *p)
{
    site_t *s = p->site;
    bl_msg_t **msgs;
    size_t n = 0;
    if (queue_retained_all(s->q, &msgs, &n))
        return;
    size_t sent = 0;
    for (size_t i = 0; i < n; i++) {
        bl_msg_t *m = msgs[i];
        char *wire_topic = NULL;
        int qos = 0;
        if (!m->origin || strcmp(m->origin, s->cfg->site_name) != 0 ||
            router_map_out(p->cfg->rules, p->cfg->n_rules, m->topic, m->qos, &wire_topic, &qos) !=
                1)
            continue;
        free(m->topic);
        m->topic = wire_topic;
        m->qos = (uint8_t)qos;
        m->dup = true;
        m->retain = true;
        if (send_msg(p, m) == 0)
            sent++;
    }
    queue_msgs_free(msgs, NULL, n);
    if (sent)
        LOG_INFO(p->cfg->name, "retained sync: offered %zu retained topics", sent);
}

static void link_open(void *ud, link_t *l)
{
    site_t *s = ud;
    peer_ctx_t *p = peer_of(s, l);
    wire_hello_t h = {
        .features = WIRE_FEAT_BATCH, .max_message_size = (uint32_t)s->cfg->max_message_size, .epoch = s->epoch};
    snprintf(h.site, sizeof(h.site), "%s", s->cfg->site_name);
    uint8_t *frame;
    size_t len;
    if (wire_encode_hello(&h, &frame, &len) == 0) {
        link_send_frame(l, frame, len);
        free(frame);
    }
    /* Resend everything not yet acknowledged, in order, then our retained state; with a
     * transaction open the resend waits for its commit, and the sync with it. */
    p->cursor = 0;
    if (s->txn_open) {
        p->dirty = true;
        p->sync_pending = true;
        schedule_commit(s);
        return;
    }
    pump(p);
    sync_retained(p);
}

static void link_down(void *ud, link_t *l)
{
    site_t *s = ud;
    peer_ctx_t *p = peer_of(s, l);
    g_array_set_size(p->acks, 0);
    p->sync_pending = false; /* the next link-up syncs again */
    bl_msg_t *m0;
    while ((m0 = g_queue_pop_head(&p->q0))) {
        s->stats.dropped_qos0++;
        msg_free(m0);
    }
}

/* A peer that lost its state numbers its messages from 1 again: forget what we saw of
 * its old numbering, or its new messages would be taken for duplicates. */
static void check_epoch(peer_ctx_t *p, uint64_t epoch)
{
    site_t *s = p->site;
    char key[96], have[32], now[32];
    snprintf(key, sizeof(key), "epoch:%s", p->cfg->name);
    snprintf(now, sizeof(now), "%016llx", (unsigned long long)epoch);
    int rc = queue_meta_get(s->q, key, have, sizeof(have));
    if (rc == 0 && strcmp(have, now) == 0)
        return;
    txn(s);
    if (rc == 0) {
        LOG_WARN(p->cfg->name,
                 "peer's state was re-created (epoch %s, was %s): forgetting "
                 "which of its messages we saw",
                 now, have);
        queue_seen_reset(s->q, p->cfg->name);
    }
    queue_meta_set(s->q, key, now);
}

static void link_frame(void *ud, link_t *l, const wire_frame_t *f)
{
    site_t *s = ud;
    peer_ctx_t *p = peer_of(s, l);
    switch (f->type) {
    case WIRE_MSG:
        remote_message(p, f->u.msg);
        break;
    case WIRE_ACK:
        txn_lazy(s);
        /* Acks come mostly as runs of consecutive sequences: one delete per run. */
        for (size_t i = 0, j; i < f->u.ack.n; i = j) {
            for (j = i + 1; j < f->u.ack.n && f->u.ack.seqs[j - 1] < UINT64_MAX &&
                            f->u.ack.seqs[j] == f->u.ack.seqs[j - 1] + 1;
                 j++)
                ;
            queue_ack_range(s->q, p->cfg->name, f->u.ack.seqs[i], f->u.ack.seqs[j - 1]);
        }
        break;
    case WIRE_HELLO:
        if (strcmp(f->u.hello.site, p->cfg->name) != 0)
            LOG_WARN(p->cfg->name, "peer calls itself \"%s\"; check the [peer] name",
                     f->u.hello.site);
        check_epoch(p, f->u.hello.epoch);
        link_set_peer_features(l, f->u.hello.features);
        break;
    default:
        break;
    }
}

static void link_writable(void *ud, link_t *l)
{
    pump(peer_of(ud, l));
}

static void link_state_cb(void *ud, link_t *l)
{
    publish_peer_state(peer_of(ud, l));
}

/* ---- signalling and local events ---- */

static void signal_up(void *ud)
{
    site_t *s = ud;
    for (size_t i = 0; i < s->n_peers; i++)
        link_signal_up(s->peers[i].link);
}

static void signal_message(void *ud, const seal_msg_t *m)
{
    peer_ctx_t *p = peer_named(ud, m->from);
    if (p)
        link_signal_in(p->link, m);
}

static void local_up(void *ud)
{
    site_t *s = ud;
    s->local_up_ms = bl_now_ms();
    /* The broker hands over the session's queued messages, echoes included, as soon as
     * it accepts us. A marker we publish now comes back after all of them: when it
     * does, every echo of what the broker took before the crash has been seen. */
    if (s->recovering || s->settling) {
        bl_msg_t m;
        msg_init(&m);
        m.topic = s->sync_topic;
        m.payload = (uint8_t *)s->sync_marker;
        m.payload_len = strlen(s->sync_marker);
        m.qos = 1;
        local_publish(s->local, &m, 0);
    }
    for (size_t i = 0; i < s->n_peers; i++)
        publish_peer_state(&s->peers[i]);
}

static gboolean stats_cb(gpointer ud)
{
    site_t *s = ud;
    const site_stats_t *st = &s->stats;
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"local_in\":%llu,\"routed_out\":%llu,\"remote_in\":%llu,\"duplicates\":%llu,"
             "\"dropped_qos0\":%llu,\"too_big\":%llu,\"queue_full\":%llu,\"expired\":%llu,"
             "\"not_routed_in\":%llu,\"refused_in\":%llu,\"bad_origin\":%llu,"
             "\"rx_paused\":%llu,\"local_waiting\":%zu}",
             (unsigned long long)st->local_in, (unsigned long long)st->routed_out,
             (unsigned long long)st->remote_in, (unsigned long long)st->duplicates,
             (unsigned long long)st->dropped_qos0, (unsigned long long)st->too_big,
             (unsigned long long)st->queue_full, (unsigned long long)st->expired,
             (unsigned long long)st->not_routed_in, (unsigned long long)st->refused_in,
             (unsigned long long)st->bad_origin, (unsigned long long)st->rx_paused,
             local_pending(s->local));
    publish_status(s, "stats", json);
    for (size_t i = 0; i < s->n_peers; i++)
        publish_peer_state(&s->peers[i]);
    return G_SOURCE_CONTINUE;
}

/* ---- lifecycle ---- */

static void recover_one(void *ud, const char *origin, uint64_t seq, const void *key, size_t key_len)
{
    site_t *s = ud;
    char *k = g_strndup(key, key_len);
    echo_add(s->echo, k, origin, seq, 0, NULL, true);
    g_free(k);
}

static bool is_recovered(const echo_rec_t *r, void *ud)
{
    (void)ud;
    return r->recovered;
}

/* A recovered record whose echo did not come: the broker never had the message. Its
 * peer will resend it, and it will be delivered then. */
static void drop_recovered(echo_rec_t *r, void *ud)
{
    site_t *s = ud;
    txn(s);
    queue_indoubt_del(s->q, r->origin, r->seq);
    echo_rec_free(r);
}

static gboolean recover_done_cb(gpointer ud)
{
    site_t *s = ud;
    s->recover_src = NULL;
    if (!s->recovering)
        return G_SOURCE_REMOVE;
    s->recovering = false;
    echo_sweep(s->echo, is_recovered, drop_recovered, s);
    LOG_INFO("site", "in-doubt messages settled, opening links");
    if (signaling_start(s->sig))
        LOG_ERROR("site", "cannot start signalling");
    return G_SOURCE_REMOVE;
}

/* After a drop of the local connection, the marker is back: every echo the broker sent
 * again has been seen; the records of the others go. */
static void settle_done(site_t *s)
{
    s->settling = false;
    echo_sweep(s->echo, is_recovered, drop_recovered, s);
    LOG_INFO("site", "local broker back: the echoes it sent again are settled");
}

static void recover_after(site_t *s, unsigned ms)
{
    if (s->recover_src)
        g_source_destroy(s->recover_src);
    s->recover_src = attach(s, g_timeout_source_new(ms), recover_done_cb);
}

/* An echo that never came (30 s, with the session that gets echoes connected all that
 * time): the broker acknowledged the message but did not send it back; our subscription
 * does not cover its topic, or an ACL hides it. While that session is away its echoes
 * wait in the broker, and a record dropped then would let its echo out as local. */
static bool echo_stale(const echo_rec_t *r, void *ud)
{
    site_t *s = ud;
    int64_t now = bl_now_ms();
    return !r->recovered && r->acked && now - r->t_ms > SITE_ECHO_STALE_MS &&
           local_connected(s->local) && now - s->local_up_ms > SITE_ECHO_STALE_MS;
}

static void echo_gone(echo_rec_t *r, void *ud)
{
    site_t *s = ud;
    if (!s->warned_no_echo)
        LOG_WARN("site",
                 "the local broker did not send back a message we published on %.*s: "
                 "can brokerless subscribe to it?",
                 r->key ? (int)strcspn(r->key, "\x1f") : 0, r->key ? r->key : "");
    s->warned_no_echo = true;
    if (r->seq) {
        txn_lazy(s);
        queue_indoubt_del(s->q, r->origin, r->seq);
    }
    echo_rec_free(r);
}

static gboolean sweep_cb(gpointer ud)
{
    site_t *s = ud;
    echo_sweep(s->echo, echo_stale, echo_gone, s);
    return G_SOURCE_CONTINUE;
}

static int load_epoch(site_t *s)
{
    char buf[32];
    if (queue_meta_get(s->q, "epoch", buf, sizeof(buf)) == 0) {
        s->epoch = strtoull(buf, NULL, 16);
        return 0;
    }
    if (RAND_bytes((unsigned char *)&s->epoch, sizeof(s->epoch)) != 1)
        return BL_EIO;
    snprintf(buf, sizeof(buf), "%016llx", (unsigned long long)s->epoch);
    return queue_meta_set(s->q, "epoch", buf);
}

site_t *site_new(GMainContext *ctx, const config_t *cfg, const cert_t *cert)
{
    site_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->ctx = ctx;
    s->cfg = cfg;
    s->cert = cert;
    s->echo = echo_new();
    s->to_publish = g_array_new(FALSE, FALSE, sizeof(pending_pub_t));
    s->echo_dels = g_array_new(FALSE, FALSE, sizeof(indoubt_ref_t));
    s->delivering = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    char path[4096];
    snprintf(path, sizeof(path), "%s/queue.db", cfg->state_dir);
    if (queue_open(path, &s->q)) {
        LOG_ERROR("site", "cannot open the queue database %s", path);
        goto error;
    }
    if (load_epoch(s))
        goto error;
    queue_indoubt_each(s->q, recover_one, s);
    snprintf(s->sync_topic, sizeof(s->sync_topic), "brokerless/%s/sync", cfg->site_name);
    uint8_t rnd[16];
    RAND_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < 16; i++)
        snprintf(s->sync_marker + 2 * i, 3, "%02x", rnd[i]);
    /* Also with delivery = at-least-once: records left by an exactly-once run still have
     * echoes queued in the broker session, which must not pass for local messages. */
    if (echo_count(s->echo)) {
        s->recovering = true;
        LOG_INFO("site",
                 "%zu messages from peers were in doubt when we stopped: waiting for "
                 "their echoes before opening links",
                 echo_count(s->echo));
    }
    local_events_t lev = {.on_message = local_message,
                          .on_delivered = local_delivered,
                          .on_connect = local_up,
                          .on_acked = local_acked,
                          .on_disconnect = local_down,
                          .on_unsubscribed = local_unsubscribed,
                          .still_wanted = local_still_wanted};
    s->local = local_new(ctx, cfg, &lev, s);
    signaling_events_t sev = {.on_connect = signal_up, .on_message = signal_message};
    s->sig = signaling_new(ctx, cfg, cert, &sev, s);
    if (!s->local || !s->sig)
        goto error;

    s->peers = calloc(cfg->n_peers, sizeof(*s->peers));
    if (!s->peers)
        goto error;
    link_events_t kev = {.signal_send = link_signal,
                         .on_open = link_open,
                         .on_down = link_down,
                         .on_frame = link_frame,
                         .on_writable = link_writable,
                         .on_state = link_state_cb};
    for (size_t i = 0; i < cfg->n_peers; i++) {
        peer_ctx_t *p = &s->peers[i];
        p->site = s;
        p->cfg = &cfg->peers[i];
        p->acks = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        p->link = link_new(ctx, cfg, p->cfg, cert, &kev, s);
        s->n_peers++;
        if (!p->link)
            goto error;
    }
    return s;
error:
    site_free(s);
    return NULL;
}

/* Once the stale subscriptions are gone, the session holds just what this run wants. */
static void local_unsubscribed(void *ud)
{
    site_t *s = ud;
    if (!s->subs_now)
        return;
    txn(s);
    queue_meta_set(s->q, "local_subs", s->subs_now);
}

/* Subscribe what this run wants, dropping first what the last run left in the broker
 * session that this one does not want as it is (subs.h says why). */
static void subscribe_local(site_t *s)
{
    GPtrArray *filters = subs_local_filters(s->cfg);
    GPtrArray *want = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < filters->len; i++) {
        const char *f = g_ptr_array_index(filters, i);
        local_subscribe(s->local, f, 2, true);
        g_ptr_array_add(want, subs_line(f, 2, true));
    }
    g_ptr_array_unref(filters);
    local_subscribe(s->local, s->sync_topic, 1, false);
    g_ptr_array_add(want, subs_line(s->sync_topic, 1, false));

    size_t cap = 65536;
    char *old = g_malloc(cap);
    int rc = queue_meta_get(s->q, "local_subs", old, cap);
    if (rc && rc != BL_ENOTFOUND)
        LOG_WARN("site", "cannot read the subscriptions of the last run (%s): renewing every one",
                 bl_strerror(rc));
    subs_plan_t plan;
    subs_plan(rc ? NULL : old, want, &plan);
    g_free(old);
    g_ptr_array_unref(want);
    for (guint i = 0; i < plan.unsubscribe->len; i++) {
        const char *f = g_ptr_array_index(plan.unsubscribe, i);
        LOG_INFO("site", "renewing the subscription %s: the last run's is %s", f,
                 rc ? "unknown" : "not this one's");
        local_unsubscribe(s->local, f);
    }
    txn(s);
    queue_meta_set(s->q, "local_subs", plan.record_both);
    g_free(s->subs_now);
    s->subs_now = NULL;
    if (plan.unsubscribe->len) {
        s->subs_now = plan.record_now;
        plan.record_now = NULL;
    }
    subs_plan_clear(&plan);
}

int site_start(site_t *s)
{
    subscribe_local(s);
    s->stats_src = attach(s, g_timeout_source_new_seconds(10), stats_cb);
    s->sweep_src = attach(s, g_timeout_source_new_seconds(5), sweep_cb);
    int rc = local_start(s->local);
    if (rc)
        return rc;
    if (s->recovering) {
        recover_after(s, 30000); /* at the latest, even if the broker stays away */
        return 0;
    }
    return signaling_start(s->sig);
}

const site_stats_t *site_stats(const site_t *s)
{
    return &s->stats;
}

void site_free(site_t *s)
{
    if (!s)
        return;
    if (s->stats_src)
        g_source_destroy(s->stats_src);
    if (s->commit_src)
        g_source_destroy(s->commit_src);
    if (s->lazy_src)
        g_source_destroy(s->lazy_src);
    if (s->probe_src)
        g_source_destroy(s->probe_src);
    for (size_t i = 0; i < s->n_peers; i++) {
        link_free(s->peers[i].link);
        g_array_free(s->peers[i].acks, TRUE);
        g_queue_clear_full(&s->peers[i].q0, (GDestroyNotify)msg_free);
    }
    free(s->peers);
    signaling_free(s->sig);
    local_free(s->local);
    if (s->q) {
        if (s->txn_open)
            queue_commit(s->q);
        queue_close(s->q);
    }
    for (guint i = 0; s->to_publish && i < s->to_publish->len; i++)
        msg_free(g_array_index(s->to_publish, pending_pub_t, i).msg);
    if (s->to_publish)
        g_array_free(s->to_publish, TRUE);
    for (guint i = 0; s->echo_dels && i < s->echo_dels->len; i++)
        free(g_array_index(s->echo_dels, indoubt_ref_t, i).key);
    if (s->echo_dels) /* left in doubt: a restart's recovery settles them */
        g_array_free(s->echo_dels, TRUE);
    g_free(s->subs_now);
    if (s->recover_src)
        g_source_destroy(s->recover_src);
    if (s->sweep_src)
        g_source_destroy(s->sweep_src);
    echo_free(s->echo);
    g_hash_table_destroy(s->delivering);
    free(s);
}
