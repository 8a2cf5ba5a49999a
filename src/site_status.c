/* SPDX-License-Identifier: MIT */
/* site_status.c - what the site says about itself: the status model (status.h) for the
 * control socket and the metrics, and the retained status topics on the local broker:
 *
 *   brokerless/<site>/status        online | offline (our Last Will: the broker says it
 *                                   when the daemon dies) | stopped (a clean stop)
 *   brokerless/<site>/peers/<peer>  status_peer_json(), at every change of state, every
 *                                   SITE_STATUS_S seconds, and "stopped" at a clean stop
 *   brokerless/<site>/stats         the site's counters, every SITE_STATUS_S seconds */
#include "site_int.h"

#include <cjson/cJSON.h>

static void publish(site_t *s, const char *sub, const char *text)
{
    /* $SYS is reserved to the broker (mosquitto drops client publishes there), so the
     * status tree lives under brokerless/<site>/. */
    char topic[256];
    snprintf(topic, sizeof(topic), "brokerless/%s/%s", s->cfg->site_name, sub);
    bl_msg_t m;
    msg_init(&m);
    m.topic = topic;
    m.payload = (uint8_t *)text;
    m.payload_len = strlen(text);
    m.retain = true;
    local_publish(s->local, &m, 0);
}

static void publish_json(site_t *s, const char *sub, cJSON *j)
{
    char *text = cJSON_PrintUnformatted(j);
    if (text)
        publish(s, sub, text);
    cJSON_free(text);
    cJSON_Delete(j);
}

static void peer_status(peer_ctx_t *p, status_peer_t *o)
{
    const link_t *l = p->link;
    const link_stats_t *ls = link_stats(l);
    link_info_t li;
    link_get_info(l, &li);
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "%s", p->cfg->name);
    o->state = link_state_name(link_state(l));
    o->since_ms = li.since_ms;
    snprintf(o->path, sizeof(o->path), "%s", li.path);
    status_split_pair(li.pair, o->local_addr, sizeof(o->local_addr), o->remote_addr,
                      sizeof(o->remote_addr));
    o->rtt_ms = li.rtt_ms;
    snprintf(o->last_error, sizeof(o->last_error), "%s", li.last_error);
    o->insecure = p->cfg->insecure;
    o->browser = p->cfg->browser;
    o->msgs_out = p->msgs_sent;
    o->msgs_in = p->stats.remote_in;
    o->bytes_out = ls->bytes_out;
    o->bytes_in = ls->bytes_in;
    o->queued = queue_depth(p->site->q, p->cfg->name);
    o->duplicates = p->stats.duplicates;
    o->link_opens = ls->opens;
    o->link_failures = ls->failures;
    const site_stats_t *st = &p->stats;
    const uint64_t d[STATUS_DROP_N] = {[STATUS_DROP_QOS0] = st->dropped_qos0,
                                       [STATUS_DROP_QUEUE_FULL] = st->queue_full,
                                       [STATUS_DROP_EXPIRED] = st->expired,
                                       [STATUS_DROP_NOT_ROUTED] = st->not_routed_in,
                                       [STATUS_DROP_REFUSED] = st->refused_in,
                                       [STATUS_DROP_BAD_ORIGIN] = st->bad_origin,
                                       [STATUS_DROP_RETAINED_CAP] = st->retained_refused};
    memcpy(o->drops, d, sizeof(d));
}

void site_status(site_t *s, status_site_t *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "%s", s->cfg->site_name);
    o->started_ms = s->started_wall_ms;
    o->now_ms = bl_wall_ms();
    o->local_connected = local_connected(s->local);
    o->signal_connected = s->sig && signaling_connected(s->sig);
    const site_stats_t *st = &s->stats;
    o->local_in = st->local_in;
    o->routed_out = st->routed_out;
    o->remote_in = st->remote_in;
    o->duplicates = st->duplicates;
    o->too_big = st->too_big;
    o->retained_replays = st->retained_replays;
    o->rx_paused = st->rx_paused;
    o->local_waiting = local_pending(s->local);
    o->n_peers = s->n_peers;
    o->peers = g_new0(status_peer_t, s->n_peers ? s->n_peers : 1);
    for (size_t i = 0; i < s->n_peers; i++) {
        peer_status(s->peers[i], &o->peers[i]);
        for (int d = 0; d < STATUS_DROP_N; d++)
            o->drops[d] += o->peers[i].drops[d];
    }
}

void site_publish_peer(peer_ctx_t *p)
{
    if (!p || p->site->stopping)
        return;
    status_peer_t ps;
    peer_status(p, &ps);
    char sub[128];
    snprintf(sub, sizeof(sub), "peers/%s", p->cfg->name);
    publish_json(p->site, sub, status_peer_json(&ps));
}

gboolean site_status_cb(gpointer ud)
{
    site_t *s = ud;
    if (s->stopping)
        return G_SOURCE_CONTINUE;
    status_site_t st;
    site_status(s, &st);
    publish_json(s, "stats", status_stats_json(&st));
    status_site_clear(&st);
    for (size_t i = 0; i < s->n_peers; i++)
        site_publish_peer(s->peers[i]);
    return G_SOURCE_CONTINUE;
}

void site_publish_online(site_t *s)
{
    publish(s, "status", "online");
    for (size_t i = 0; i < s->n_peers; i++)
        site_publish_peer(s->peers[i]);
}

/* A clean stop: nothing of this site is live any more. */
void site_publish_stopped(site_t *s)
{
    publish(s, "status", "stopped");
    for (size_t i = 0; i < s->n_peers; i++) {
        status_peer_t ps;
        peer_status(s->peers[i], &ps);
        ps.state = "stopped";
        ps.path[0] = ps.local_addr[0] = ps.remote_addr[0] = '\0';
        ps.rtt_ms = 0;
        ps.since_ms = bl_wall_ms();
        char sub[128];
        snprintf(sub, sizeof(sub), "peers/%s", ps.name);
        publish_json(s, sub, status_peer_json(&ps));
    }
}

/* A peer no longer configured: its topic goes (an empty retained message clears it). */
void site_publish_removed(site_t *s, const char *peer)
{
    char sub[128];
    snprintf(sub, sizeof(sub), "peers/%s", peer);
    publish(s, sub, "");
}
