/* SPDX-License-Identifier: MIT */
/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <glib.h>

/* Link states as link.h names them, for the one-hot state series. */
static const char *const states[] = {"waiting", "signalling", "ice",    "dtls",
                                     "sctp",    "open",       "failed", "removed"};
static const char *const paths[] = {"host", "srflx", "prflx", "relay"};

/* Integers as integers (counters stay exact up to 2^53), the rest to microseconds. */
static void num(GString *g, double v)
{
    if (v == (double)(long long)v && v < 9007199254740992.0 && v > -9007199254740992.0)
        g_string_append_printf(g, "%lld\n", (long long)v);
    else
        g_string_append_printf(g, "%.6f\n", v);
}

static void head(GString *g, const char *name, const char *type, const char *help)
{
    g_string_append_printf(g, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value as the format wants it: backslash, quote and newline escaped. */
static void label(GString *g, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            g_string_append_c(g, '\\');
        if (*v == '\n')
            g_string_append(g, "\\n");
        else
            g_string_append_c(g, *v);
    }
}

static void peer_line(GString *g, const char *name, const status_peer_t *p, const char *extra_k,
                      const char *extra_v, double v)
{
    g_string_append_printf(g, "%s{peer=\"", name);
    label(g, p->name);
    if (extra_k) {
        g_string_append_printf(g, "\",%s=\"", extra_k);
        label(g, extra_v);
    }
    g_string_append(g, "\"} ");
    num(g, v);
}

typedef double (*peer_value_fn)(const status_peer_t *p);

static double v_up(const status_peer_t *p)
{
    return p->state && !strcmp(p->state, "open");
}
static double v_rtt(const status_peer_t *p)
{
    return p->rtt_ms / 1000.0;
}
static double v_since(const status_peer_t *p)
{
    return p->since_ms / 1000.0;
}

/* A peer's series: its value computed by fn, or else the uint64_t at offset u64. */
static const struct {
    const char *name, *type, *help;
    peer_value_fn fn;
    size_t u64;
} peer_series[] = {
    {"brokerless_peer_up", "gauge", "1 while the link to the peer is open.", v_up, 0},
    {"brokerless_peer_state_change_time_seconds", "gauge",
     "When the link last changed state (Unix time).", v_since, 0},
    {"brokerless_peer_rtt_seconds", "gauge",
     "Smoothed round trip of the open link (0 when unknown).", v_rtt, 0},
    {"brokerless_peer_queue_messages", "gauge",
     "Messages in the durable queue for the peer, not yet acknowledged.", NULL,
     offsetof(status_peer_t, queued)},
    {"brokerless_peer_messages_sent_total", "counter",
     "Messages sent to the peer (resends after a reconnect included).", NULL,
     offsetof(status_peer_t, msgs_out)},
    {"brokerless_peer_messages_received_total", "counter",
     "Messages from the peer delivered to the local broker.", NULL,
     offsetof(status_peer_t, msgs_in)},
    {"brokerless_peer_bytes_sent_total", "counter", "Bytes of frames sent on the link.", NULL,
     offsetof(status_peer_t, bytes_out)},
    {"brokerless_peer_bytes_received_total", "counter", "Bytes of frames received on the link.",
     NULL, offsetof(status_peer_t, bytes_in)},
    {"brokerless_peer_duplicate_messages_total", "counter",
     "Resends from the peer recognised as delivered and only acknowledged.", NULL,
     offsetof(status_peer_t, duplicates)},
    {"brokerless_peer_link_opens_total", "counter", "Times the link to the peer opened.", NULL,
     offsetof(status_peer_t, link_opens)},
    {"brokerless_peer_link_failures_total", "counter",
     "Connection attempts that failed and open links that went down (each restarts the "
     "link).",
     NULL, offsetof(status_peer_t, link_failures)},
};

static double peer_value(size_t k, const status_peer_t *p)
{
    if (peer_series[k].fn)
        return peer_series[k].fn(p);
    return (double)*(const uint64_t *)((const char *)p + peer_series[k].u64);
}

static void peers(GString *g, const status_site_t *s)
{
    for (size_t k = 0; k < BL_ARRAY_LEN(peer_series); k++) {
        head(g, peer_series[k].name, peer_series[k].type, peer_series[k].help);
        for (size_t i = 0; i < s->n_peers; i++)
            peer_line(g, peer_series[k].name, &s->peers[i], NULL, NULL,
                      peer_value(k, &s->peers[i]));
    }
    head(g, "brokerless_peer_state", "gauge", "The link's state: 1 for the current one.");
    for (size_t i = 0; i < s->n_peers; i++)
        for (size_t k = 0; k < BL_ARRAY_LEN(states); k++)
            peer_line(g, "brokerless_peer_state", &s->peers[i], "state", states[k],
                      s->peers[i].state && !strcmp(s->peers[i].state, states[k]));
    head(g, "brokerless_peer_path", "gauge",
         "The open link's path type (ICE candidate type): 1 for the one in use.");
    for (size_t i = 0; i < s->n_peers; i++)
        for (size_t k = 0; k < BL_ARRAY_LEN(paths); k++)
            peer_line(g, "brokerless_peer_path", &s->peers[i], "path", paths[k],
                      !strcmp(s->peers[i].path, paths[k]));
    head(g, "brokerless_peer_dropped_messages_total", "counter",
         "Messages for or from the peer that were not carried, by reason.");
    for (size_t i = 0; i < s->n_peers; i++)
        for (int d = 0; d < STATUS_DROP_N; d++)
            peer_line(g, "brokerless_peer_dropped_messages_total", &s->peers[i], "reason",
                      status_drop_name(d), (double)s->peers[i].drops[d]);
}

static void site_value(GString *g, const char *name, const char *type, const char *help, double v)
{
    head(g, name, type, help);
    g_string_append_printf(g, "%s ", name);
    num(g, v);
}

char *metrics_render(const status_site_t *s)
{
    GString *g = g_string_new(NULL);
    head(g, "brokerless_info", "gauge", "Always 1: the site and the version, as labels.");
    g_string_append(g, "brokerless_info{site=\"");
    label(g, s->name);
    g_string_append(g, "\",version=\"" BL_VERSION "\"} 1\n");
    site_value(g, "brokerless_start_time_seconds", "gauge", "When the daemon started (Unix time).",
               s->started_ms / 1000.0);
    site_value(g, "brokerless_local_broker_up", "gauge",
               "1 while the session with the local broker is connected.", s->local_connected);
    site_value(g, "brokerless_signalling_up", "gauge",
               "1 while the signalling broker is connected.", s->signal_connected);
    site_value(g, "brokerless_local_messages_total", "counter",
               "Messages taken from the local broker.", (double)s->local_in);
    site_value(g, "brokerless_routed_messages_total", "counter",
               "Copies of local messages routed to peers.", (double)s->routed_out);
    site_value(g, "brokerless_too_big_messages_total", "counter",
               "Local messages over max_message_size, not routed.", (double)s->too_big);
    site_value(g, "brokerless_local_waiting_messages", "gauge",
               "Messages from peers the local broker has not acknowledged yet.",
               (double)s->local_waiting);
    site_value(g, "brokerless_rx_pauses_total", "counter",
               "Times the links stopped reading because the local broker was behind.",
               (double)s->rx_paused);
    head(g, "brokerless_reloads_total", "counter", "Config reloads, applied or refused.");
    g_string_append_printf(g, "brokerless_reloads_total{result=\"applied\"} %llu\n",
                           (unsigned long long)s->reloads);
    g_string_append_printf(g, "brokerless_reloads_total{result=\"refused\"} %llu\n",
                           (unsigned long long)s->reloads_refused);
    peers(g, s);
    return g_string_free(g, FALSE);
}
