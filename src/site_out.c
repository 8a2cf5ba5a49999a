/* SPDX-License-Identifier: MIT */
/* site_out.c - what local clients publish: mapped by the peers' rules, given one origin
 * sequence, queued durably per peer (QoS 0 in memory while the link keeps up), and sent
 * once committed; the retained store and the retained sync at link-up. */
#include "site_int.h"

static int send_msg(peer_ctx_t *p, bl_msg_t *m)
{
    int rc = link_send_msg(p->link, m);
    if (!rc)
        p->msgs_sent++;
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

/* One queued message to the link, or out of the queue if it expired there. */
static void hand(peer_ctx_t *p, bl_msg_t *m, int64_t enq_ms)
{
    site_t *s = p->site;
    if (expire(m, enq_ms)) {
        SITE_COUNT(p, expired);
        LOG_DEBUG(p->who, "message on %s expired in its queue", m->topic);
        site_txn(s);
        site_db(queue_ack(s->q, p->cfg->name, m->seq),
                "cannot remove an expired message from the queue");
        site_lane_acked(p, m->seq, m->seq);
        return;
    }
    /* dup: the peer may have it. A large message the lane overtook is marked too (it
     * may not), so that nothing the peer may have goes without the mark. */
    m->dup = m->seq <= p->sent_max;
    if (send_msg(p, m))
        LOG_WARN(p->who, "cannot send a message on %s", m->topic);
    if (m->seq > p->sent_max)
        p->sent_max = m->seq;
}

/* ---- the small-message lane ----
 *
 * The queue goes to the link in sequence order, and a large message holds the link for
 * as long as it takes to cross: without the lane, a small message published after a
 * 1 MiB one waits for all of it (docs/BENCH.md, head of line). While the link is backed
 * up, the lane hands it small messages from further on in the queue, except those with a
 * large message on their topic still before them (MQTT keeps order per topic): the link
 * sends small frames ahead of large ones. What the lane handed is not handed again by
 * the cursor in this session; at the next session everything unacknowledged goes again
 * in order. The lane knows the large messages this process queued (p->large, until
 * acknowledged); those queued before it started are unknown, so the lane waits until the
 * cursor has passed them. */

static gint seq_cmp(gconstpointer a, gconstpointer b, gpointer ud)
{
    (void)ud;
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t *seq_new(uint64_t seq)
{
    uint64_t *k = g_new(uint64_t, 1);
    *k = seq;
    return k;
}

void site_lane_init(peer_ctx_t *p)
{
    p->large = g_tree_new_full(seq_cmp, NULL, g_free, g_free);
    p->ahead = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    site_lane_rules_changed(p);
}

void site_lane_rules_changed(peer_ctx_t *p)
{
    /* Everything queued so far is unknown to the lane (p->large starts empty), or was
     * mapped to wire topics by other rules: the lane waits until the cursor has passed
     * it. */
    if (queue_last_seq(p->site->q, &p->lane_from))
        p->lane_from = UINT64_MAX; /* the lane stays shut */
}

void site_lane_free(peer_ctx_t *p)
{
    if (p->large)
        g_tree_destroy(p->large);
    if (p->ahead)
        g_hash_table_destroy(p->ahead);
}

void site_lane_reset(peer_ctx_t *p)
{
    g_hash_table_remove_all(p->ahead);
    p->lane_after = 0;
    p->lane_dirty = true;
}

/* Forget the sequences in [first, last] the lane handed: acknowledged, the cursor will
 * not meet them. */
static void ahead_acked(peer_ctx_t *p, uint64_t first, uint64_t last)
{
    guint n = g_hash_table_size(p->ahead);
    if (!n)
        return;
    if (last - first < n) {
        for (uint64_t seq = first;; seq++) {
            g_hash_table_remove(p->ahead, &seq);
            if (seq == last)
                break;
        }
        return;
    }
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init(&it, p->ahead);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        uint64_t seq = *(const uint64_t *)key;
        if (seq >= first && seq <= last)
            g_hash_table_iter_remove(&it);
    }
}

void site_lane_acked(peer_ctx_t *p, uint64_t first, uint64_t last)
{
    ahead_acked(p, first, last);
    if (!g_tree_nnodes(p->large))
        return;
    GArray *gone = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    for (GTreeNode *n = g_tree_lower_bound(p->large, &first);
         n && *(const uint64_t *)g_tree_node_key(n) <= last; n = g_tree_node_next(n))
        g_array_append_val(gone, *(const uint64_t *)g_tree_node_key(n));
    for (guint i = 0; i < gone->len; i++)
        g_tree_remove(p->large, &g_array_index(gone, uint64_t, i));
    g_array_free(gone, TRUE);
}

/* The topics of the large messages the cursor has yet to hand, up to `upto`, each with
 * its first sequence; NULL if there are none. */
static GHashTable *large_ahead(peer_ctx_t *p, uint64_t upto)
{
    GHashTable *t = NULL;
    uint64_t from = p->cursor + 1;
    for (GTreeNode *n = g_tree_lower_bound(p->large, &from);
         n && *(const uint64_t *)g_tree_node_key(n) <= upto; n = g_tree_node_next(n)) {
        if (!t)
            t = g_hash_table_new(g_str_hash, g_str_equal); /* borrows the tree's */
        if (!g_hash_table_contains(t, g_tree_node_value(n)))
            g_hash_table_insert(t, g_tree_node_value(n), g_tree_node_key(n));
    }
    return t;
}

/* QoS 0 waiting in memory, oldest first, while the link has room for it; for the lane,
 * room for small ones, and only while the oldest is small. True when none is left. */
static bool send_memory(peer_ctx_t *p, bool lane)
{
    bl_msg_t *m0;
    while ((m0 = g_queue_peek_head(&p->q0)) &&
           (lane ? queue_row_size(m0) <= SITE_LANE_ROW_MAX && link_can_send_small(p->link)
                 : link_can_send(p->link))) {
        g_queue_pop_head(&p->q0);
        send_msg(p, m0);
        msg_free(m0);
    }
    return !p->q0.length;
}

static void pump_lane(peer_ctx_t *p)
{
    site_t *s = p->site;
    if (!p->lane_dirty || !link_can_send_small(p->link))
        return;
    uint64_t upto = p->cursor + SITE_LANE_SPAN;
    GHashTable *blocked = p->cursor >= p->lane_from ? large_ahead(p, upto) : NULL;
    if (!blocked) { /* nothing large to overtake (or not known yet) */
        p->lane_dirty = false;
        return;
    }
    /* Memory first, as site_pump sends it: QoS 0 waiting there is older than any QoS 0
     * in the queue (the spill, a retained one behind a backlog). */
    if (!send_memory(p, true)) {
        g_hash_table_destroy(blocked);
        return; /* still dirty: again when the link has room */
    }
    /* Rows up to lane_after were looked at in this session: sent, or held back until a
     * large message is handed (site_pump then rewinds lane_after). */
    uint64_t after = BL_MAX(p->cursor, p->lane_after);
    bool full = false, more = true;
    while (more && !full) {
        bl_msg_t **msgs;
        int64_t *enq;
        size_t n = 0;
        if (queue_peek_small(s->q, p->cfg->name, after, upto, SITE_LANE_ROW_MAX, SITE_PUMP_BATCH,
                             &msgs, &enq, &n))
            break;
        more = n == SITE_PUMP_BATCH;
        for (size_t i = 0; i < n; i++) {
            bl_msg_t *m = msgs[i];
            const uint64_t *first = g_hash_table_lookup(blocked, m->topic);
            if (g_hash_table_contains(p->ahead, &m->seq)) {
                /* handed already */
            } else if ((first && *first < m->seq) || link_topic_held(p->link, m->topic)) {
                /* a large message on its topic is before it, here or in the link */
                p->lane_blocked++;
            } else if (!link_can_send_small(p->link)) {
                full = true;
                break;
            } else {
                g_hash_table_add(p->ahead, seq_new(m->seq));
                SITE_COUNT(p, overtook);
                hand(p, m, enq[i]);
            }
            after = p->lane_after = m->seq;
        }
        queue_msgs_free(msgs, enq, n);
    }
    g_hash_table_destroy(blocked);
    p->lane_dirty = full;
}

void site_pump(peer_ctx_t *p)
{
    site_t *s = p->site;
    if (s->txn_open) {
        /* Frames leave only once their sequence is committed (commit_cb pumps); a lazy
         * transaction is committed now. */
        p->dirty = true;
        site_schedule_commit(s);
        return;
    }
    send_memory(p, false);
    while (link_can_send(p->link)) {
        bl_msg_t **msgs;
        int64_t *enq;
        size_t n = 0, want = p->pump_n ? p->pump_n : SITE_PUMP_BATCH;
        if (queue_peek(s->q, p->cfg->name, p->cursor, want, &msgs, &enq, &n))
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
            if (g_hash_table_remove(p->ahead, &m->seq))
                continue; /* the lane handed it in this session */
            if (p->lane_blocked && g_tree_lookup(p->large, &m->seq)) {
                p->lane_dirty = true; /* it may have held small ones back: look again */
                p->lane_after = 0;
                p->lane_blocked = 0;
            }
            hand(p, m, enq[i]);
        }
        /* What the link could not take is read again next time: with large messages a
         * full batch would be read from the database many times over. Read about what
         * fitted, and more again as the link keeps up. */
        p->pump_n = i < n ? BL_MAX(i, 1) : BL_MIN(want * 2, SITE_PUMP_BATCH);
        queue_msgs_free(msgs, enq, n);
    }
    pump_lane(p);
}

static void route_out(site_t *s, peer_ctx_t *p, const bl_msg_t *m, uint64_t *seq)
{
    char *wire_topic = NULL;
    int qos = 0;
    if (router_map_out(p->cfg->rules, p->cfg->n_rules, m->topic, m->qos, &wire_topic, &qos) != 1)
        return;
    bl_msg_t *c = msg_routed_copy(m, wire_topic, qos);
    if (!c || router_map_reply(p->cfg->rules, p->cfg->n_rules, ROUTE_OUT, &c->response_topic) < 0) {
        msg_free(c);
        return;
    }
    free(c->origin);
    c->origin = strdup(s->cfg->site_name);
    SITE_COUNT(p, routed_out);

    bool spilled = false;
    if (qos == 0 && !p->cfg->queue_qos0) {
        /* MQTT QoS 0: at most once, nothing kept for a peer that is not there. */
        if (!link_is_open(p->link)) {
            SITE_COUNT(p, dropped_qos0);
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
            site_schedule_commit(s); /* pumps after any commit, like everything else */
            return;
        }
        /* The peer is there but the link is behind a burst: past SITE_Q0_MAX in
         * memory, QoS 0 goes into the durable queue, and keeps going there (in
         * order: pump sends memory first) until the queue has drained, instead of
         * being dropped; past SITE_Q0_SPILL_MAX there too, it is dropped after
         * all. A retained one for a peer with a backlog starts the same. */
        if (p->q0_spilled >= SITE_Q0_SPILL_MAX) {
            if (p->q0_spilled++ == SITE_Q0_SPILL_MAX)
                LOG_WARN(p->who, "QoS 0 keeps coming faster than the link carries it: "
                                 "dropping QoS 0 for this peer until its queue drains");
            SITE_COUNT(p, dropped_qos0);
            msg_free(c);
            return;
        }
        if (!p->q0_spill && !backlog)
            LOG_INFO(p->who,
                     "QoS 0 burst over %d messages: the rest waits in the queue (up to %d "
                     "more, then QoS 0 is dropped until it drains)",
                     SITE_Q0_MAX, SITE_Q0_SPILL_MAX);
        p->q0_spill = true;
        p->q0_spilled++;
        spilled = true;
    }
    site_txn(s);
    if (*seq == 0)
        site_db(queue_next_seq(s->q, seq), "cannot allocate a sequence number");
    c->seq = *seq;
    int rc = queue_push(s->q, p->cfg->name, c, bl_wall_ms(), s->cfg->queue_max_messages);
    if (rc == BL_ETOOBIG && spilled) {
        SITE_COUNT(p, dropped_qos0); /* a QoS 0 spill refused: counted as the drop it is */
    } else if (rc == BL_ETOOBIG) {
        SITE_COUNT(p, queue_full);
        if (!p->warned_full)
            LOG_WARN(p->who,
                     "queue is full (%zu messages): refusing new messages for this peer "
                     "until it drains",
                     s->cfg->queue_max_messages);
        p->warned_full = true;
    } else if (rc == BL_EIO || rc == BL_ENOMEM || rc == BL_EAGAIN) {
        site_storage_failed("cannot queue a message"); /* its PUBACK would follow */
    } else if (rc) {
        LOG_ERROR(p->who, "cannot queue a message on %s: %s", m->topic, bl_strerror(rc));
    } else {
        p->warned_full = false;
        p->dirty = true;
        if (queue_row_size(c) > SITE_LANE_ROW_MAX)
            g_tree_insert(p->large, seq_new(c->seq), g_strdup(c->topic));
        else
            p->lane_dirty = true;
    }
    msg_free(c);
}

/* The retained store keeps, per local topic, the last retained message and where it
 * came from, so a site that was away can be brought up to date when its link opens
 * (site_sync_retained), and a late resend never overwrites a newer retained value. */
static void remember_retained(site_t *s, const bl_msg_t *m, uint64_t *seq)
{
    site_txn(s);
    if (*seq == 0)
        site_db(queue_next_seq(s->q, seq), "cannot allocate a sequence number");
    bl_msg_t *c = msg_dup(m);
    if (!c)
        return;
    free(c->origin);
    c->origin = strdup(s->cfg->site_name);
    c->seq = *seq;
    site_db(queue_retained_put(s->q, c), "cannot store a retained message");
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

/* A message a local client published: refused if too big, dropped if it is a replay of
 * a retained value every site has, else numbered and routed to every peer. */
void site_out_local(site_t *s, const bl_msg_t *m)
{
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
    if (wire_msg_check(m)) {
        /* Peers refuse it (docs/PROTOCOL.md, Property TLVs): queued, it would never leave. */
        s->stats.too_big++;
        LOG_WARN("site",
                 "refused a message on %s: %zu user properties, a peer takes at most %d "
                 "and %d bytes of properties (%llu refused so far)",
                 m->topic, m->n_user_props, WIRE_MAX_USER_PROPS, WIRE_MAX_PROPS_LEN,
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
        route_out(s, s->peers[i], m, &seq);
}

/* A message from peer `from`, as it goes to our broker: on to the peers that could not
 * have it otherwise. A leaf (link_leaf: an ESP32 running the example) is linked to us
 * alone, so what it sends goes on to every other peer and what they send goes on to it,
 * as if published here (our origin and sequence, the peer's out rules on our topic).
 * Between two sites of the mesh nothing goes on: they have a link of their own (split
 * horizon), and nothing goes back to where it came from. Retain does not cross a leaf. */
void site_out_transit(site_t *s, peer_ctx_t *from, const bl_msg_t *m)
{
    bl_msg_t t = *m; /* borrowed fields: route_out copies what it keeps */
    t.retain = false;
    t.dup = false;
    uint64_t seq = 0;
    bool leaf = link_leaf(from->link);
    for (size_t i = 0; i < s->n_peers; i++) {
        peer_ctx_t *q = s->peers[i];
        if (q != from && (leaf || link_leaf(q->link)))
            route_out(s, q, &t, &seq);
    }
}

/* Send the peer our own retained messages (the newest per topic, clears included) that
 * its rules take. Each carries its original sequence: what the peer already has is
 * recognised and only acknowledged; what it missed (it was away, a QoS 0 retained
 * message, a new peer) is delivered. */
void site_sync_retained(peer_ctx_t *p)
{
    site_t *s = p->site;
    if (link_leaf(p->link))
        return; /* no retain flag, no sequence: a leaf would take them for new messages */
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
        if (router_map_reply(p->cfg->rules, p->cfg->n_rules, ROUTE_OUT, &m->response_topic) < 0)
            continue;
        m->dup = true;
        m->retain = true;
        if (send_msg(p, m) == 0)
            sent++;
    }
    queue_msgs_free(msgs, NULL, n);
    if (sent)
        LOG_INFO(p->who, "retained sync: offered %zu retained topics", sent);
}
