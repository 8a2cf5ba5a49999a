/* SPDX-License-Identifier: MIT */
/* site_reload.c - a new config applied to the running site (SIGHUP, `brokerless reload`).
 *
 * Only [peer] sections change a running site (confdiff.h; the caller applies
 * log_level). A peer whose link settings are the same (confdiff_same_link: name,
 * fingerprint, mode, profile; an esp32-example peer's broker, role and topic base) keeps
 * its context, its link and whatever is in flight on it, and reads its rules from the new
 * config at once; one that is new gets a link that starts as at startup; one that is gone
 * has its link closed, its queue left in the database (a peer added back later finds it,
 * `peer forget` drops it). A peer whose link settings changed is closed and added anew.
 * The local subscriptions follow the rules: new filters are subscribed, filters no rule
 * wants any more are dropped from the session. Nothing queued is touched, so nothing
 * queued is lost. */
#include "site_int.h"

#include "confdiff.h"

static bool has(const GPtrArray *a, const char *s)
{
    for (guint i = 0; i < a->len; i++)
        if (!strcmp(g_ptr_array_index(a, i), s))
            return true;
    return false;
}

/* Subscribe what the new rules want and drop what they no longer do; the record of
 * the session's subscriptions (subs.h) follows, as at startup. */
static void resubscribe(site_t *s, const config_t *old, const config_t *cfg)
{
    GPtrArray *was = subs_local_filters(old), *now = subs_local_filters(cfg);
    GPtrArray *want = g_ptr_array_new_with_free_func(g_free);
    for (guint i = 0; i < now->len; i++) {
        const char *f = g_ptr_array_index(now, i);
        if (!has(was, f)) {
            LOG_INFO("site", "subscribing %s for the new rules", f);
            local_subscribe(s->local, f, 2, true);
        }
        g_ptr_array_add(want, subs_line(f, 2, true));
    }
    for (guint i = 0; i < was->len; i++) {
        const char *f = g_ptr_array_index(was, i);
        if (!has(now, f)) {
            LOG_INFO("site", "dropping the subscription %s: no rule wants it now", f);
            local_drop_subscription(s->local, f);
        }
    }
    g_ptr_array_add(want, subs_line(s->sync_topic, 1, false));
    size_t cap = 65536;
    char *rec = g_malloc(cap);
    int rc = queue_meta_get(s->q, "local_subs", rec, cap);
    subs_plan_t plan;
    subs_plan(rc ? NULL : rec, want, &plan);
    site_txn(s);
    site_db(queue_meta_set(s->q, "local_subs", plan.record_both),
            "cannot store the local subscriptions");
    if (plan.unsubscribe->len) {
        g_free(s->subs_now);
        s->subs_now = plan.record_now;
        plan.record_now = NULL;
    }
    subs_plan_clear(&plan);
    g_free(rec);
    g_ptr_array_unref(want);
    g_ptr_array_unref(was);
    g_ptr_array_unref(now);
}

static void close_peer(site_t *s, peer_ctx_t *p, const char *why)
{
    size_t queued = queue_depth(s->q, p->cfg->name);
    LOG_INFO(p->cfg->name, "%s: link closed; %zu queued messages for it stay on disk%s", why,
             queued, queued ? " (brokerless peer forget drops them)" : "");
    echo_forget_peer(s->echo, p);
    site_peer_free(p);
}

static peer_ctx_t *old_named(site_t *s, const char *name)
{
    for (size_t j = 0; j < s->n_peers; j++)
        if (s->peers[j] && !strcmp(s->peers[j]->cfg->name, name))
            return s->peers[j];
    return NULL;
}

int site_reload(site_t *s, const config_t *cfg, char *err, size_t errlen)
{
    char what[128];
    if (confdiff_needs_restart(s->cfg, cfg, what, sizeof(what))) {
        snprintf(err, errlen,
                 "%s changed: a reload applies [peer] sections and log_level only; restart "
                 "the daemon to apply it",
                 what);
        return BL_EINVAL;
    }
    peer_ctx_t **np = calloc(cfg->n_peers ? cfg->n_peers : 1, sizeof(*np));
    if (!np || (s->sig && signaling_rebind(s->sig, cfg))) {
        free(np);
        snprintf(err, errlen, "out of memory");
        return BL_ENOMEM;
    }
    const config_t *old = s->cfg;
    s->cfg = cfg; /* before any new link is made: links read the site's config */
    GPtrArray *fresh = g_ptr_array_new();
    size_t added = 0, changed = 0, removed = 0, kept = 0;
    for (size_t i = 0; i < cfg->n_peers; i++) {
        const config_peer_t *pc = &cfg->peers[i];
        peer_ctx_t *p = old_named(s, pc->name);
        if (p && confdiff_same_link(p->cfg, pc)) {
            bool same = confdiff_same_peer(p->cfg, pc);
            if (!same) {
                LOG_INFO(pc->name, "rules changed: they apply from now on, the link stays up");
                site_lane_rules_changed(p);
            }
            changed += !same;
            kept += same;
            p->cfg = pc;
            link_rebind(p->link, cfg, pc);
            for (size_t j = 0; j < s->n_peers; j++)
                if (s->peers[j] == p)
                    s->peers[j] = NULL; /* taken over */
            np[i] = p;
            continue;
        }
        if (p) {
            for (size_t j = 0; j < s->n_peers; j++)
                if (s->peers[j] == p)
                    s->peers[j] = NULL;
            close_peer(s, p, "its link settings changed");
        }
        if ((np[i] = site_peer_new(s, pc)))
            g_ptr_array_add(fresh, np[i]);
        added++;
    }
    for (size_t j = 0; j < s->n_peers; j++) {
        if (!s->peers[j])
            continue;
        char name[BL_SITE_NAME_MAX + 1];
        snprintf(name, sizeof(name), "%s", s->peers[j]->cfg->name);
        close_peer(s, s->peers[j], "removed from the config");
        site_publish_removed(s, name);
        removed++;
    }
    free(s->peers);
    s->peers = np;
    s->n_peers = cfg->n_peers;
    /* A peer whose link could not be made (out of memory) is left out until the next
     * reload rather than leaving a hole every loop over the peers would trip on. */
    size_t n = 0;
    for (size_t i = 0; i < s->n_peers; i++)
        if (np[i])
            np[n++] = np[i];
    s->n_peers = n;
    resubscribe(s, old, cfg);
    for (guint i = 0; i < fresh->len; i++) {
        peer_ctx_t *p = g_ptr_array_index(fresh, i);
        if (!s->recovering)
            link_start(p->link); /* as site_open_links at start */
        /* Signalling made now starts now, or with the links once recovery is over
         * (site_open_links), never twice. */
        if (link_sealed(p->link) && site_signal_need(s, !s->recovering))
            LOG_ERROR("site", "cannot start signalling for %s", p->cfg->name);
        else if (link_sealed(p->link) && signaling_connected(s->sig))
            link_signal_up(p->link); /* begin, as signal_up does at start */
    }
    g_ptr_array_unref(fresh);
    for (size_t i = 0; i < s->n_peers; i++)
        site_publish_peer(s->peers[i]);
    LOG_INFO("site",
             "config reloaded: %zu peers added, %zu removed, %zu with new rules, %zu as "
             "they were",
             added, removed, changed, kept);
    return 0;
}

int site_forget_peer(site_t *s, const char *peer, size_t *dropped)
{
    if (site_peer_named(s, peer))
        return BL_ESTATE;
    *dropped = queue_depth(s->q, peer);
    site_txn(s);
    site_db(queue_ack_range(s->q, peer, 1, UINT64_MAX), "cannot drop a forgotten peer's queue");
    LOG_INFO("site", "forgot peer %s: dropped the %zu messages queued for it", peer, *dropped);
    return 0;
}
