/* SPDX-License-Identifier: MIT */
/* site_in.c - what peers send: checked, deduplicated, recorded in doubt, published on the
 * local broker after the commit, acknowledged to the peer at the broker's PUBACK, and
 * confirmed by its echo (exactly-once); the recovery of records in doubt after a crash
 * or a dropped local connection; the pause of the links when the local broker is behind. */
#include "site_int.h"

/* A peer's message that needs no echo with exactly-once: a broker keeps no QoS 0 echo
 * for a session that is away, so the echo could not tell across a crash whether it was
 * delivered anyway (a sequenced QoS 0, queue_qos0 or a burst spill, may come twice after
 * a crash in either mode). It goes in over the persistent session, whose No Local keeps
 * it from coming back (a broker sends what it takes twice otherwise: to the subscribers
 * and to us). A retained one still takes the injecting connection: the order of a set
 * and its clearing decides what stays retained, and a clearing is often QoS 0. */
bool site_plain_qos0(const bl_msg_t *m)
{
    return m->qos == 0 && !m->retain;
}

/* Bytes a message from a peer holds beyond its payload (topic, properties) from its
 * hand-over to the local connection until the broker has it: local_pending_bytes counts
 * payloads only, and the links must stop for a pile of large properties too. A message
 * with less than SITE_HELD_MIN of them is not tracked, which keeps the common path free
 * of this bookkeeping and leaves at most SITE_LOCAL_HIGH_MSGS x SITE_HELD_MIN uncounted. */
static void held_add(site_t *s, uint64_t token, const bl_msg_t *c)
{
    size_t n = msg_size(c) - c->payload_len;
    if (n < SITE_HELD_MIN)
        return;
    if (!s->held)
        s->held = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    uint64_t *k = g_new(uint64_t, 1);
    *k = token;
    g_hash_table_insert(s->held, k, GSIZE_TO_POINTER(n));
    s->held_bytes += n;
}

static void held_release(site_t *s, uint64_t token)
{
    gpointer k, v;
    if (s->held && g_hash_table_lookup_extended(s->held, &token, &k, &v)) {
        s->held_bytes -= BL_MIN(s->held_bytes, GPOINTER_TO_SIZE(v));
        g_hash_table_remove(s->held, &token);
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

/* Past the peer's retained caps: the message still reaches live subscribers, but is
 * kept neither in our store nor, without its retain flag, by our broker. */
static void retained_refused(peer_ctx_t *p, bl_msg_t *c)
{
    site_t *s = p->site;
    SITE_COUNT(p, retained_refused);
    uint64_t n = ++p->n_retained_refused;
    size_t topics = 0, bytes = 0;
    if (queue_retained_usage(s->q, p->cfg->name, &topics, &bytes))
        topics = bytes = 0; /* only for the log line */
    LOG_AT((n & (n - 1)) == 0 ? LOG_LVL_WARN : LOG_LVL_DEBUG, p->who,
           "retained message on %s not kept: the peer holds %zu retained topics (%zu bytes), "
           "retained_max_topics %zu, retained_max_bytes %zu; delivered as not retained "
           "(%llu from it so far)",
           c->topic, topics, bytes, p->cfg->retained_max_topics, p->cfg->retained_max_bytes,
           (unsigned long long)n);
    c->retain = false;
}

/* A retained message from a peer: keep it as the topic's retained value, unless we
 * hold a newer one from the same origin (a resend or sync overtaken by a newer
 * message); then it still reaches live subscribers, but not as retained. */
static void retained_in(peer_ctx_t *p, bl_msg_t *c)
{
    site_t *s = p->site;
    bl_msg_t *have = NULL;
    if (queue_retained_get(s->q, c->topic, &have) == 0 && have->origin &&
        !strcmp(have->origin, c->origin) && have->seq > c->seq) {
        c->retain = false;
    } else {
        site_txn(s);
        int rc = queue_retained_put_max(s->q, c, p->cfg->retained_max_topics,
                                        p->cfg->retained_max_bytes);
        if (rc == BL_ETOOBIG)
            retained_refused(p, c);
        else
            site_db(rc, "cannot store a retained message from a peer");
    }
    msg_free(have);
}

/* No in-rule takes the message (counted, acknowledged). One that a rule would have
 * published on a '$' topic (router_map_in) is a peer trying what it must not: said at
 * WARN, at the 1st, 2nd, 4th, ... time so that a flood costs a few lines. */
static void not_routed(peer_ctx_t *p, const bl_msg_t *m, int rc)
{
    SITE_COUNT(p, not_routed_in);
    uint64_t n = rc == BL_EPERM ? ++p->n_dollar : 0;
    if (rc == BL_EPERM)
        LOG_AT((n & (n - 1)) == 0 ? LOG_LVL_WARN : LOG_LVL_DEBUG, p->who,
               "peer sent a message on %s, which our rules would publish on a '$' topic: "
               "dropped (%llu from it so far)",
               m->topic, (unsigned long long)n);
    else
        LOG_DEBUG(p->who, "no in-rule for %s, dropped", m->topic);
    if (m->seq)
        site_ack_add(p, m->seq);
}

/* Returns the message as it goes to our broker (valid until the next commit), or NULL
 * when it does not go (a duplicate, no rule, refused). */
const bl_msg_t *site_remote_message(peer_ctx_t *p, const bl_msg_t *m)
{
    site_t *s = p->site;
    if (!m->origin || strcmp(m->origin, p->cfg->name) != 0) {
        /* Split horizon: a peer only forwards what its own clients published. */
        SITE_COUNT(p, bad_origin);
        LOG_WARN(p->who, "peer sent a message of origin \"%s\", dropped",
                 m->origin ? m->origin : "");
        if (m->seq)
            site_ack_add(p, m->seq);
        return NULL;
    }
    char *local_topic = NULL;
    int qos = 0;
    int rc = router_map_in(p->cfg->rules, p->cfg->n_rules, m->topic, m->qos, &local_topic, &qos);
    if (rc != 1) {
        not_routed(p, m, rc);
        return NULL;
    }
    if (m->seq) {
        if (queue_seen(s->q, m->origin, m->seq) == 1) {
            SITE_COUNT(p, duplicates);
            site_ack_add(p, m->seq);
            free(local_topic);
            return NULL;
        }
        char *key = delivery_key(p, m->seq);
        bool on_its_way = g_hash_table_contains(s->delivering, key);
        g_free(key);
        if (on_its_way) { /* already on its way to our broker; its ack will follow */
            free(local_topic);
            return NULL;
        }
    }
    bl_msg_t *c = msg_routed_copy(m, local_topic, qos);
    if (!c || router_map_reply(p->cfg->rules, p->cfg->n_rules, ROUTE_IN, &c->response_topic) < 0) {
        msg_free(c);
        return NULL;
    }
    rc = local_check_publish(c);
    if (rc == BL_ENOMEM) { /* not now: the peer sends it again at the next link */
        msg_free(c);
        return NULL;
    }
    if (rc) {
        /* Never publishable (a property that is not UTF-8, say): waiting for it would
         * keep it in the peer's queue for ever. Dropped, counted, and acknowledged. */
        SITE_COUNT(p, refused_in);
        LOG_WARN(p->who,
                 "cannot give its message on %s to our broker (%s: a topic or property "
                 "that is not valid MQTT), dropped (%llu so far)",
                 c->topic, bl_strerror(rc), (unsigned long long)s->stats.refused_in);
        if (m->seq)
            site_ack_add(p, m->seq);
        msg_free(c);
        return NULL;
    }
    if (c->retain && m->seq)
        retained_in(p, c);
    uint64_t token = ++s->next_token;
    /* Only what goes in over the injecting connection comes back (echoed): no key, no
     * echo to recognise, the token will do. */
    bool echoed = s->cfg->delivery == CONFIG_DELIVERY_EXACTLY_ONCE && !site_plain_qos0(c);
    char *key = echoed ? echo_key(c->topic, c->payload, c->payload_len) : NULL;
    if ((!key && echoed) || !echo_add(s->echo, key, m->origin, m->seq, token, p, false)) {
        free(key);
        msg_free(c);
        return NULL;
    }
    site_txn(s);
    if (m->seq) {
        g_hash_table_add(s->delivering, delivery_key(p, m->seq));
        if (key)
            site_db(queue_indoubt_add(s->q, m->origin, m->seq, key, strlen(key)),
                    "cannot record a delivery in doubt");
    }
    free(key);
    held_add(s, token, c);
    pending_pub_t pp = {.msg = c, .token = token};
    g_array_append_val(s->to_publish, pp);
    return c;
}

/* The message of p with sequence seq is no longer on its way to our broker. */
static void not_delivering(site_t *s, peer_ctx_t *p, uint64_t seq)
{
    char *key = delivery_key(p, seq);
    g_hash_table_remove(s->delivering, key);
    g_free(key);
}

/* The peer's message is in our broker: remember it as seen and tell the peer. */
static void delivered(site_t *s, peer_ctx_t *p, const char *origin, uint64_t seq)
{
    s->stats.remote_in++;
    if (p)
        p->stats.remote_in++;
    if (!seq)
        return;
    site_txn(s);
    site_db(queue_mark_seen(s->q, origin, seq), "cannot mark a peer's message delivered");
    if (p) {
        not_delivering(s, p, seq);
        site_ack_add(p, seq);
    }
}

/* A message from a peer could not be handed to libmosquitto after all (out of memory):
 * forget it was on its way, so that the peer's resend (at the next link) is taken. */
void site_unpublished(site_t *s, uint64_t token, const char *topic, int rc)
{
    LOG_ERROR("site", "cannot publish a message from a peer on %s: %s", topic, bl_strerror(rc));
    held_release(s, token);
    echo_rec_t *r = echo_take_token(s->echo, token);
    if (r && r->seq && r->peer) {
        not_delivering(s, r->peer, r->seq);
        if (r->key) {
            site_txn_lazy(s);
            site_db(queue_indoubt_del(s->q, r->origin, r->seq),
                    "cannot remove a delivery in doubt");
        }
    }
    echo_rec_free(r);
}

peer_ctx_t *site_peer_named(site_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_peers; i++)
        if (!strcmp(s->peers[i]->cfg->name, name))
            return s->peers[i];
    return NULL;
}

/* A message of origin/seq that the last run handed to our broker and that goes again
 * (site_mq.c): on its way, under the token returned, like one published now. */
uint64_t site_in_flight(site_t *s, const char *origin, uint64_t seq)
{
    uint64_t token = ++s->next_token;
    peer_ctx_t *p = origin[0] ? site_peer_named(s, origin) : NULL;
    if (seq && p)
        g_hash_table_add(s->delivering, delivery_key(p, seq));
    if (seq)
        echo_add(s->echo, NULL, origin, seq, token, p, false);
    return token;
}

/* Echo records wait for the broker to have read our PUBACKs of their echoes, which
 * its answer to a later publish on the same session proves (site_local_acked). What peers
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
bool site_local_still_wanted(void *ud, uint64_t token)
{
    site_t *s = ud;
    if (echo_by_token(s->echo, token))
        return true;
    held_release(s, token); /* dropped by the connection */
    return false;
}

/* A message came back from our broker: the echo of one we published. */
void site_echo_seen(site_t *s, echo_rec_t *r)
{
    if (r->recovered) {
        /* The broker took it before we crashed: it counts as delivered. */
        LOG_DEBUG("site", "recovered delivery of %s/%llu confirmed by its echo", r->origin,
                  (unsigned long long)r->seq);
        delivered(s, site_peer_named(s, r->origin), r->origin, r->seq);
    } else if (!r->acked) {
        delivered(s, r->peer, r->origin, r->seq);
    }
    if (r->seq) {
        /* The in-doubt record goes once the echo's own acknowledgement is written
         * (site_local_acked). Deleted before, a kill -9 would make the broker send the echo
         * again to a daemon that no longer knows it for one: it would go out as a local
         * message. */
        indoubt_ref_t d = {.seq = r->seq, .upto = local_msgs_in(s->local), .key = r->key};
        r->key = NULL;
        g_strlcpy(d.origin, r->origin, sizeof(d.origin));
        g_array_append_val(s->echo_dels, d);
        if (!s->probe_src)
            s->probe_src = loop_timeout(s->ctx, SITE_PROBE_MS, probe_cb, s);
    }
    echo_rec_free(r);
}

/* The broker has read our PUBACKs of the first `upto` messages: the in-doubt records of
 * the echoes among them may go. */
void site_local_acked(void *ud, uint64_t upto)
{
    site_t *s = ud;
    guint n = 0;
    while (n < s->echo_dels->len && g_array_index(s->echo_dels, indoubt_ref_t, n).upto <= upto)
        n++;
    if (!n)
        return;
    site_txn_lazy(s);
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
        site_db(queue_indoubt_del_range(s->q, d->origin, d->seq, last),
                "cannot remove deliveries in doubt");
    }
    for (guint i = 0; i < n; i++)
        free(g_array_index(s->echo_dels, indoubt_ref_t, i).key);
    g_array_remove_range(s->echo_dels, 0, n);
}

/* The connection to the local broker dropped: the PUBACKs of the echoes still listed
 * may never have reached it, and then it sends those echoes again. Until a marker comes
 * back after them they are known as recovered records, as after a crash. */
void site_local_down(void *ud)
{
    site_t *s = ud;
    for (guint i = 0; i < s->echo_dels->len; i++) {
        indoubt_ref_t *d = &g_array_index(s->echo_dels, indoubt_ref_t, i);
        if (!echo_add(s->echo, d->key, d->origin, d->seq, 0, NULL, true)) {
            site_txn_lazy(s); /* cannot wait for it: the peer resends, the window drops it */
            site_db(queue_indoubt_del(s->q, d->origin, d->seq),
                    "cannot remove a delivery in doubt");
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
void site_local_backpressure(site_t *s)
{
    size_t n = local_pending(s->local), bytes = local_pending_bytes(s->local) + s->held_bytes;
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
        LOG_AT(away                      ? LOG_LVL_WARN
               : s->stats.rx_paused == 1 ? LOG_LVL_INFO
                                         : LOG_LVL_DEBUG,
               "site",
               "%zu messages (%zu bytes) from peers wait for the local broker%s: "
               "not taking more from peers until it has taken most of them",
               n, bytes, away ? " (not connected)" : "");
    } else {
        LOG_AT(s->rx_loud || s->stats.rx_paused == 1 ? LOG_LVL_INFO : LOG_LVL_DEBUG, "site",
               "the local broker has caught up (%zu waiting): taking messages from peers again", n);
        s->rx_loud = false;
    }
    for (size_t i = 0; i < s->n_peers; i++)
        link_pause_rx(s->peers[i]->link, s->rx_paused);
}

/* The broker acknowledged a message from a peer (PUBACK/PUBCOMP): acknowledge it to
 * the peer now; its record stays until the echo, which we must still recognise. */
void site_local_delivered(void *ud, uint64_t token)
{
    site_t *s = ud;
    held_release(s, token);
    if (s->rx_paused)
        site_local_backpressure(s);
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

void site_recover_one(void *ud, const char *origin, uint64_t seq, const void *key, size_t key_len)
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
    site_txn(s);
    site_db(queue_indoubt_del(s->q, r->origin, r->seq), "cannot remove a delivery in doubt");
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
    if (site_open_links(s))
        LOG_ERROR("site", "cannot start signalling");
    return G_SOURCE_REMOVE;
}

/* Links may open: those whose peer is met without sealed signalling start now, the others
 * once it connects. */
int site_open_links(site_t *s)
{
    for (size_t i = 0; i < s->n_peers; i++)
        link_start(s->peers[i]->link);
    return s->sig ? signaling_start(s->sig) : 0;
}

/* After a drop of the local connection, the marker is back: every echo the broker sent
 * again has been seen; the records of the others go. */
void site_settle_done(site_t *s)
{
    s->settling = false;
    echo_sweep(s->echo, is_recovered, drop_recovered, s);
    LOG_INFO("site", "local broker back: the echoes it sent again are settled");
}

void site_recover_after(site_t *s, unsigned ms)
{
    loop_cancel(&s->recover_src);
    s->recover_src = loop_timeout(s->ctx, ms, recover_done_cb, s);
}

/* An echo that never came (30 s, with the session that gets echoes connected all that
 * time): the broker acknowledged the message but did not send it back; our subscription
 * does not cover its topic, or an ACL hides it. While that session is away its echoes
 * wait in the broker, and a record dropped then would let its echo out as local. */
static bool is_stale_echo(const echo_rec_t *r, void *ud)
{
    site_t *s = ud;
    int64_t now = bl_now_ms();
    return !r->recovered && r->acked && now - r->t_ms > SITE_ECHO_STALE_MS &&
           local_connected(s->local) && now - s->local_up_ms > SITE_ECHO_STALE_MS;
}

static void drop_stale_echo(echo_rec_t *r, void *ud)
{
    site_t *s = ud;
    if (!s->warned_no_echo)
        LOG_WARN("site",
                 "the local broker did not send back a message we published on %.*s: "
                 "can brokerless subscribe to it?",
                 r->key ? (int)strcspn(r->key, "\x1f") : 0, r->key ? r->key : "");
    s->warned_no_echo = true;
    if (r->seq) {
        site_txn_lazy(s);
        site_db(queue_indoubt_del(s->q, r->origin, r->seq), "cannot remove a delivery in doubt");
    }
    echo_rec_free(r);
}

gboolean site_sweep_cb(gpointer ud)
{
    site_t *s = ud;
    echo_sweep(s->echo, is_stale_echo, drop_stale_echo, s);
    return G_SOURCE_CONTINUE;
}
