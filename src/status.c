/* SPDX-License-Identifier: MIT */
/* status.c - see status.h. */
#include "status.h"

#include <stdio.h>
#include <string.h>

#include <glib.h>

static const char *const drop_names[STATUS_DROP_N] = {"qos0_not_sent", "queue_full", "expired",
                                                      "not_routed",    "refused",    "bad_origin",
                                                      "retained_cap"};

const char *status_drop_name(status_drop_t d)
{
    return (unsigned)d < STATUS_DROP_N ? drop_names[d] : "?";
}

void status_site_clear(status_site_t *s)
{
    g_free(s->peers);
    memset(s, 0, sizeof(*s));
}

void status_split_pair(const char *pair, char *local, size_t llen, char *remote, size_t rlen)
{
    const char *sep = pair ? strstr(pair, " <-> ") : NULL;
    local[0] = remote[0] = '\0';
    if (!sep)
        return;
    snprintf(local, llen, "%.*s", (int)(sep - pair), pair);
    snprintf(remote, rlen, "%s", sep + 5);
}

static cJSON *drops_json(const uint64_t *drops)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < STATUS_DROP_N; i++)
        cJSON_AddNumberToObject(o, drop_names[i], (double)drops[i]);
    return o;
}

cJSON *status_peer_json(const status_peer_t *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", p->name);
    cJSON_AddStringToObject(o, "state", p->state ? p->state : "");
    cJSON_AddNumberToObject(o, "since", (double)p->since_ms);
    cJSON_AddStringToObject(o, "path", p->path);
    cJSON_AddStringToObject(o, "local", p->local_addr);
    cJSON_AddStringToObject(o, "remote", p->remote_addr);
    cJSON_AddNumberToObject(o, "rtt_ms", p->rtt_ms);
    cJSON_AddNumberToObject(o, "queued", (double)p->queued);
    cJSON_AddNumberToObject(o, "messages_out", (double)p->msgs_out);
    cJSON_AddNumberToObject(o, "messages_in", (double)p->msgs_in);
    cJSON_AddNumberToObject(o, "bytes_out", (double)p->bytes_out);
    cJSON_AddNumberToObject(o, "bytes_in", (double)p->bytes_in);
    cJSON_AddNumberToObject(o, "duplicates", (double)p->duplicates);
    cJSON_AddItemToObject(o, "drops", drops_json(p->drops));
    cJSON_AddNumberToObject(o, "link_opens", (double)p->link_opens);
    cJSON_AddNumberToObject(o, "link_failures", (double)p->link_failures);
    cJSON_AddStringToObject(o, "last_error", p->last_error);
    if (p->insecure)
        cJSON_AddStringToObject(o, "insecure", "plaintext, unauthenticated");
    if (p->browser)
        cJSON_AddStringToObject(o, "profile", "browser");
    return o;
}

cJSON *status_stats_json(const status_site_t *s)
{
    cJSON *o = cJSON_CreateObject();
    const struct {
        const char *k;
        uint64_t v;
    } c[] = {{"local_in", s->local_in},
             {"routed_out", s->routed_out},
             {"remote_in", s->remote_in},
             {"duplicates", s->duplicates},
             {"dropped_qos0", s->drops[STATUS_DROP_QOS0]},
             {"too_big", s->too_big},
             {"queue_full", s->drops[STATUS_DROP_QUEUE_FULL]},
             {"expired", s->drops[STATUS_DROP_EXPIRED]},
             {"not_routed_in", s->drops[STATUS_DROP_NOT_ROUTED]},
             {"refused_in", s->drops[STATUS_DROP_REFUSED]},
             {"bad_origin", s->drops[STATUS_DROP_BAD_ORIGIN]},
             {"rx_paused", s->rx_paused},
             {"retained_refused", s->drops[STATUS_DROP_RETAINED_CAP]},
             {"local_waiting", s->local_waiting}};
    for (size_t i = 0; i < BL_ARRAY_LEN(c); i++)
        cJSON_AddNumberToObject(o, c[i].k, (double)c[i].v);
    return o;
}

cJSON *status_json(const status_site_t *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "site", s->name);
    cJSON_AddStringToObject(o, "version", BL_VERSION);
    cJSON_AddNumberToObject(o, "started", (double)s->started_ms);
    cJSON_AddNumberToObject(o, "now", (double)s->now_ms);
    cJSON_AddStringToObject(o, "local_broker", s->local_connected ? "connected" : "disconnected");
    cJSON_AddStringToObject(o, "signalling", s->signal_connected ? "connected" : "disconnected");
    cJSON *c = status_stats_json(s);
    cJSON_AddNumberToObject(c, "too_big", (double)s->too_big);
    cJSON_AddNumberToObject(c, "retained_replays", (double)s->retained_replays);
    cJSON_AddNumberToObject(c, "reloads", (double)s->reloads);
    cJSON_AddNumberToObject(c, "reloads_refused", (double)s->reloads_refused);
    cJSON_AddItemToObject(c, "drops", drops_json(s->drops));
    cJSON_AddItemToObject(o, "counters", c);
    cJSON *peers = cJSON_AddArrayToObject(o, "peers");
    for (size_t i = 0; i < s->n_peers; i++)
        cJSON_AddItemToArray(peers, status_peer_json(&s->peers[i]));
    return o;
}

/* ---- the table -------------------------------------------------------------------- */

static const char *str_of(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) && v->valuestring[0] ? v->valuestring : NULL;
}

static bool num_of(const cJSON *o, const char *k, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

static void duration(GString *g, double ms)
{
    long long s = ms > 0 ? (long long)(ms / 1000) : 0;
    if (s >= 86400)
        g_string_append_printf(g, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        g_string_append_printf(g, "%lldh%02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        g_string_append_printf(g, "%lldm%02llds", s / 60, s % 60);
    else
        g_string_append_printf(g, "%llds", s);
}

static void bytes(GString *g, double b)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (b >= 1024 && u + 1 < BL_ARRAY_LEN(units)) {
        b /= 1024;
        u++;
    }
    g_string_append_printf(g, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

/* "msgs/bytes" of one direction, "-" for a missing figure. */
static void traffic(GString *g, const cJSON *p, const char *msgs, const char *by)
{
    double m, b;
    if (num_of(p, msgs, &m))
        g_string_append_printf(g, "%.0f", m);
    else
        g_string_append(g, "-");
    g_string_append(g, " / ");
    if (num_of(p, by, &b))
        bytes(g, b);
    else
        g_string_append(g, "-");
}

static void drops_text(GString *g, const cJSON *drops)
{
    bool any = false;
    const cJSON *d;
    cJSON_ArrayForEach(d, drops)
    {
        if (!cJSON_IsNumber(d) || d->valuedouble <= 0 || !d->string)
            continue;
        g_string_append_printf(g, "%s%s %.0f", any ? ", " : "", d->string, d->valuedouble);
        any = true;
    }
    if (!any)
        g_string_append(g, "none");
}

/* One cell per column, padded to the widest. */
#define NCOLS 8
static const char *const headers[NCOLS] = {
    "PEER", "STATE", "PATH", "RTT", "OUT msgs / bytes", "IN msgs / bytes", "QUEUED", "DROPS"};

static void peer_cells(const cJSON *p, double now, GString **cell)
{
    const char *v;
    double n, since;
    g_string_append(cell[0], (v = str_of(p, "name")) ? v : "-");
    g_string_append(cell[1], (v = str_of(p, "state")) ? v : "-");
    if (num_of(p, "since", &since) && since > 0 && now >= since) {
        g_string_append(cell[1], " ");
        duration(cell[1], now - since);
    }
    g_string_append(cell[2], (v = str_of(p, "path")) ? v : "-");
    if ((v = str_of(p, "local")))
        g_string_append_printf(cell[2], " %s <-> %s", v,
                               str_of(p, "remote") ? str_of(p, "remote") : "?");
    if (num_of(p, "rtt_ms", &n) && n > 0)
        g_string_append_printf(cell[3], "%.0f ms", n);
    else
        g_string_append(cell[3], "-");
    traffic(cell[4], p, "messages_out", "bytes_out");
    traffic(cell[5], p, "messages_in", "bytes_in");
    if (num_of(p, "queued", &n))
        g_string_append_printf(cell[6], "%.0f", n);
    else
        g_string_append(cell[6], "-");
    drops_text(cell[7], cJSON_GetObjectItemCaseSensitive(p, "drops"));
}

static void row(GString *out, GString **cell, const size_t *w)
{
    for (int c = 0; c < NCOLS; c++)
        g_string_append_printf(out, c + 1 < NCOLS ? "%-*s  " : "%-*s",
                               (int)(c + 1 < NCOLS ? w[c] : 0), cell[c]->str);
    while (out->len && out->str[out->len - 1] == ' ')
        g_string_truncate(out, out->len - 1);
    g_string_append_c(out, '\n');
}

char *status_table(const cJSON *st)
{
    GString *out = g_string_new(NULL);
    const char *v;
    double now = 0, started;
    num_of(st, "now", &now);
    const char *site = str_of(st, "site"), *ver = str_of(st, "version");
    g_string_append_printf(out, "site %s (brokerless %s)", site ? site : "-", ver ? ver : "-");
    if (num_of(st, "started", &started) && now >= started) {
        g_string_append(out, ", up ");
        duration(out, now - started);
    }
    const char *lb = str_of(st, "local_broker"), *sg = str_of(st, "signalling");
    g_string_append_printf(out, "; local broker %s, signalling %s\n\n", lb ? lb : "-",
                           sg ? sg : "-");
    const cJSON *peers = cJSON_GetObjectItemCaseSensitive(st, "peers");
    int n = cJSON_IsArray(peers) ? cJSON_GetArraySize(peers) : 0;
    /* cells[r][c], row 0 the header */
    GString **cells = g_new0(GString *, (size_t)(n + 1) * NCOLS);
    size_t w[NCOLS] = {0};
    for (int r = 0; r <= n; r++) {
        for (int c = 0; c < NCOLS; c++)
            cells[r * NCOLS + c] = g_string_new(r ? NULL : headers[c]);
        if (r)
            peer_cells(cJSON_GetArrayItem(peers, r - 1), now, &cells[r * NCOLS]);
        for (int c = 0; c < NCOLS; c++)
            w[c] = BL_MAX(w[c], (size_t)g_utf8_strlen(cells[r * NCOLS + c]->str, -1));
    }
    for (int r = 0; r <= n; r++) {
        row(out, &cells[r * NCOLS], w);
        const cJSON *p = r ? cJSON_GetArrayItem(peers, r - 1) : NULL;
        if (p && (v = str_of(p, "last_error")))
            g_string_append_printf(out, "%-*s  last error: %s\n", (int)w[0], "", v);
        if (p && (v = str_of(p, "insecure")))
            g_string_append_printf(out, "%-*s  insecure: %s\n", (int)w[0], "", v);
    }
    for (int i = 0; i < (n + 1) * NCOLS; i++)
        g_string_free(cells[i], TRUE);
    g_free(cells);
    if (!n)
        g_string_append(out, "(no peers)\n");
    return g_string_free(out, FALSE);
}
