/* SPDX-License-Identifier: MIT */
/* site.c - a site's lifecycle, what waits for each commit, link and signalling events,
 * what the local broker sends (a local client's message, an echo or a marker) and the
 * status topics (site_int.h says where the rest is). */
#include "site_int.h"

#include <openssl/rand.h>

static void on_local_unsubscribed(void *ud);

/* What waits for a commit (site_txn.c calls it after each): messages from peers go
 * to our broker only now that what they depend on is durable (their in-doubt records,
 * their packet ids), frames go to peers only now that their sequences are, and acks
 * only now that the dedupe marks are. */
static void after_commit(site_t *s)
{
    /* Messages from peers go to our broker only now that their in-doubt records are
     * durable: after a crash we can tell whether the broker had them (their echo). */
    bool publishing = s->to_publish->len > 0;
    for (guint i = 0; i < s->to_publish->len; i++) {
        pending_pub_t *pp = &g_array_index(s->to_publish, pending_pub_t, i);
        int rc = site_plain_qos0(pp->msg) ? local_publish(s->local, pp->msg, pp->token)
                                          : local_inject(s->local, pp->msg, pp->token);
        if (rc) /* checked in site_remote_message: out of memory */
            site_unpublished(s, pp->token, pp->msg->topic, rc);
        msg_free(pp->msg);
    }
    g_array_set_size(s->to_publish, 0);
    site_local_backpressure(s);
    for (size_t i = 0; i < s->n_peers; i++) {
        peer_ctx_t *p = s->peers[i];
        site_flush_acks(p, publishing);
        if (p->dirty) {
            p->dirty = false;
            site_pump(p);
        }
        if (p->sync_pending && link_is_open(p->link)) {
            p->sync_pending = false;
            site_sync_retained(p);
        }
    }
}

static peer_ctx_t *peer_of(site_t *s, link_t *l)
{
    for (size_t i = 0; i < s->n_peers; i++)
        if (s->peers[i]->link == l)
            return s->peers[i];
    return NULL;
}

static void on_link_signal(void *ud, link_t *l, const char *type, const char *sid, const char *body)
{
    site_t *s = ud;
    if (signaling_send(s->sig, link_peer_name(l), type, sid, body))
        LOG_WARN(link_peer_name(l), "cannot send a %s over signalling", type);
}

static void on_link_open(void *ud, link_t *l)
{
    site_t *s = ud;
    peer_ctx_t *p = peer_of(s, l);
    wire_hello_t h = {.features = WIRE_FEAT_BATCH | WIRE_FEAT_PING,
                      .max_message_size = (uint32_t)s->cfg->max_message_size,
                      .epoch = s->epoch};
    snprintf(h.site, sizeof(h.site), "%s", s->cfg->site_name);
    link_send_hello(l, &h);
    /* Resend everything not yet acknowledged, in order, then our retained state; with a
     * transaction open the resend waits for its commit, and the sync with it. */
    p->cursor = 0;
    site_lane_reset(p);
    if (s->txn_open) {
        p->dirty = true;
        p->sync_pending = true;
        site_schedule_commit(s);
        return;
    }
    site_pump(p);
    site_sync_retained(p);
}

static void on_link_down(void *ud, link_t *l)
{
    site_t *s = ud;
    peer_ctx_t *p = peer_of(s, l);
    site_drop_acks(p);
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
    site_txn(s);
    if (rc == 0) {
        LOG_WARN(p->who,
                 "peer's state was re-created (epoch %s, was %s): forgetting "
                 "which of its messages we saw",
                 now, have);
        site_db(queue_seen_reset(s->q, p->cfg->name), "cannot forget a peer's old sequences");
        site_drop_acks(p); /* sequences of the old epoch: they would delete new messages */
    }
    site_db(queue_meta_set(s->q, key, now), "cannot store a peer's epoch");
}

/* A PING is answered at once; an answer goes to whoever asked (site_ping). */
static void ping_frame(peer_ctx_t *p, uint64_t token, bool reply)
{
    site_t *s = p->site;
    if (reply) {
        if (s->on_pong)
            s->on_pong(s->pong_ud, p->cfg->name, token);
        return;
    }
    uint8_t *frame;
    size_t len;
    if (wire_encode_ping(token, true, &frame, &len) == 0) {
        link_send_frame(p->link, frame, len);
        free(frame);
    }
}

static void on_link_frame(void *ud, link_t *l, const wire_frame_t *f)
{
    site_t *s = ud;
    peer_ctx_t *p = peer_of(s, l);
    switch (f->type) {
    case WIRE_MSG: {
        const bl_msg_t *c = site_remote_message(p, f->u.msg);
        if (c)
            site_out_transit(s, p, c);
        break;
    }
    case WIRE_ACK:
        site_txn_lazy(s);
        /* Acks come mostly as runs of consecutive sequences: one delete per run. */
        for (size_t i = 0, j; i < f->u.ack.n; i = j) {
            for (j = i + 1; j < f->u.ack.n && f->u.ack.seqs[j - 1] < UINT64_MAX &&
                            f->u.ack.seqs[j] == f->u.ack.seqs[j - 1] + 1;
                 j++)
                ;
            site_db(queue_ack_range(s->q, p->cfg->name, f->u.ack.seqs[i], f->u.ack.seqs[j - 1]),
                    "cannot remove acknowledged messages from the queue");
            site_lane_acked(p, f->u.ack.seqs[i], f->u.ack.seqs[j - 1]);
        }
        break;
    case WIRE_HELLO:
        if (strcmp(f->u.hello.site, p->cfg->name) != 0)
            LOG_WARN(p->who, "peer calls itself \"%s\"; check the [peer] name", f->u.hello.site);
        check_epoch(p, f->u.hello.epoch);
        p->features = f->u.hello.features;
        break;
    case WIRE_PING:
        ping_frame(p, f->u.ping.token, f->u.ping.reply);
        break;
    default:
        break;
    }
}

int site_ping(site_t *s, const char *peer, uint64_t token)
{
    peer_ctx_t *p = site_peer_named(s, peer);
    if (!p)
        return BL_ENOTFOUND;
    if (!link_is_open(p->link))
        return BL_ESTATE;
    if (!(p->features & WIRE_FEAT_PING))
        return BL_EVERSION;
    uint8_t *frame;
    size_t len;
    int rc = wire_encode_ping(token, false, &frame, &len);
    if (rc)
        return rc;
    rc = link_send_frame(p->link, frame, len);
    free(frame);
    return rc;
}

void site_on_pong(site_t *s, void (*cb)(void *ud, const char *peer, uint64_t token), void *ud)
{
    s->on_pong = cb;
    s->pong_ud = ud;
}

static void on_link_writable(void *ud, link_t *l)
{
    site_pump(peer_of(ud, l));
}

static void on_link_state(void *ud, link_t *l)
{
    site_publish_peer(peer_of(ud, l));
}

static void signal_up(void *ud)
{
    site_t *s = ud;
    for (size_t i = 0; i < s->n_peers; i++)
        link_signal_up(s->peers[i]->link);
}

static void signal_message(void *ud, const seal_msg_t *m)
{
    peer_ctx_t *p = site_peer_named(ud, m->from);
    if (p)
        link_signal_in(p->link, m);
}

int site_signal_need(site_t *s, bool start)
{
    if (s->sig)
        return 0;
    signaling_events_t sev = {.on_connect = signal_up, .on_message = signal_message};
    if (!(s->sig = signaling_new(s->ctx, s->cfg, s->cert, &sev, s)))
        return BL_ENOMEM;
    return start ? signaling_start(s->sig) : 0;
}

/* What the local broker sends us: our recovery marker, the echo of a message we
 * published for a peer (exactly-once), or a local client's message. */
static void on_local_message(void *ud, const bl_msg_t *m)
{
    site_t *s = ud;
    if (!strcmp(m->topic, s->sync_topic)) {
        bool marker = m->payload_len == strlen(s->sync_marker) &&
                      !memcmp(m->payload, s->sync_marker, m->payload_len);
        if (marker && s->recovering)
            site_recover_after(s, 0);
        else if (marker && s->settling)
            site_settle_done(s);
        return;
    }
    if (echo_waiting(s->echo)) {
        char *key = echo_key(m->topic, m->payload, m->payload_len);
        echo_rec_t *r = key ? echo_take(s->echo, key) : NULL;
        free(key);
        if (r) {
            site_echo_seen(s, r); /* split horizon: what came from a peer never goes out */
            return;
        }
    }
    site_out_local(s, m);
}

static void on_local_up(void *ud)
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
    site_publish_online(s);
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

peer_ctx_t *site_peer_new(site_t *s, const config_peer_t *cfg)
{
    static const link_events_t kev = {.signal_send = on_link_signal,
                                      .on_open = on_link_open,
                                      .on_down = on_link_down,
                                      .on_frame = on_link_frame,
                                      .on_writable = on_link_writable,
                                      .on_state = on_link_state};
    peer_ctx_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->site = s;
    p->cfg = cfg;
    snprintf(p->who, sizeof p->who, "peer %s", cfg->name);
    p->acks = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    p->acks_ready = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    g_queue_init(&p->q0);
    site_lane_init(p);
    p->link = link_new(s->ctx, s->cfg, cfg, s->cert, &kev, s);
    if (!p->link) {
        site_peer_free(p);
        return NULL;
    }
    return p;
}

void site_peer_free(peer_ctx_t *p)
{
    if (!p)
        return;
    link_free(p->link);
    site_drop_acks(p);
    g_array_free(p->acks, TRUE);
    g_array_free(p->acks_ready, TRUE);
    g_queue_clear_full(&p->q0, (GDestroyNotify)msg_free);
    site_lane_free(p);
    free(p);
}

site_t *site_new(GMainContext *ctx, const config_t *cfg, const cert_t *cert)
{
    site_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->ctx = ctx;
    s->cfg = cfg;
    s->started_wall_ms = bl_wall_ms();
    s->after_commit = after_commit;
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
    if (queue_indoubt_each(s->q, site_recover_one, s))
        goto error;
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
    local_events_t lev = {.on_message = on_local_message,
                          .on_delivered = site_local_delivered,
                          .on_connect = on_local_up,
                          .on_acked = site_local_acked,
                          .on_disconnect = site_local_down,
                          .on_unsubscribed = on_local_unsubscribed,
                          .still_wanted = site_local_still_wanted,
                          .can_write = site_can_write};
    s->local = local_new(ctx, cfg, &lev, s);
    if (!s->local)
        goto error;

    bool sealed = false;
    s->peers = calloc(cfg->n_peers ? cfg->n_peers : 1, sizeof(*s->peers));
    if (!s->peers)
        goto error;
    for (size_t i = 0; i < cfg->n_peers; i++) {
        if (!(s->peers[i] = site_peer_new(s, &cfg->peers[i])))
            goto error;
        s->n_peers++;
        sealed |= link_sealed(s->peers[i]->link);
    }
    /* The sealed signalling only when a peer is met through it (or none is configured
     * yet: the peers `brokerless peer add` will bring are). */
    if ((sealed || !cfg->n_peers) && site_signal_need(s, false))
        goto error;
    /* After the peers: a QoS 2 publish of the last run is tied to its peer again. */
    if (site_mq_start(s))
        goto error;
    return s;
error:
    site_free(s);
    return NULL;
}

/* Once the stale subscriptions are gone, the session holds just what this run wants. */
static void on_local_unsubscribed(void *ud)
{
    site_t *s = ud;
    if (!s->subs_now)
        return;
    site_txn(s);
    site_db(queue_meta_set(s->q, "local_subs", s->subs_now),
            "cannot store the local subscriptions");
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
    site_txn(s);
    site_db(queue_meta_set(s->q, "local_subs", plan.record_both),
            "cannot store the local subscriptions");
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
    s->stats_src =
        loop_attach(s->ctx, g_timeout_source_new_seconds(SITE_STATUS_S), site_status_cb, s);
    s->sweep_src = loop_attach(s->ctx, g_timeout_source_new_seconds(5), site_sweep_cb, s);
    int rc = local_start(s->local);
    if (rc)
        return rc;
    if (s->recovering) {
        site_recover_after(s, 30000); /* at the latest, even if the broker stays away */
        return 0;
    }
    return site_open_links(s);
}

void site_stop(site_t *s)
{
    site_publish_stopped(s);
    s->stopping = true; /* no more status: it would say the links are still there */
}

bool site_stop_flushed(const site_t *s)
{
    return !local_connected(s->local) || local_pending(s->local) == 0;
}

const site_stats_t *site_stats(const site_t *s)
{
    return &s->stats;
}

void site_free(site_t *s)
{
    if (!s)
        return;
    /* Commit first: freeing the local session writes the acknowledgements it still
     * holds, which may depend on this transaction; if it cannot be, stop as a crash
     * would, without them. */
    if (s->q && s->txn_open) {
        if (queue_commit(s->q))
            site_storage_failed("cannot commit the queue database at exit");
        s->txn_open = false;
    }
    loop_cancel(&s->stats_src);
    loop_cancel(&s->commit_src);
    loop_cancel(&s->lazy_src);
    loop_cancel(&s->probe_src);
    for (size_t i = 0; i < s->n_peers; i++)
        site_peer_free(s->peers[i]);
    free(s->peers);
    signaling_free(s->sig);
    local_free(s->local);
    if (s->q) {
        if (s->txn_open && queue_commit(s->q))
            site_storage_failed("cannot commit the queue database at exit");
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
    loop_cancel(&s->recover_src);
    loop_cancel(&s->sweep_src);
    echo_free(s->echo);
    g_hash_table_destroy(s->delivering);
    if (s->held)
        g_hash_table_destroy(s->held);
    free(s);
}
