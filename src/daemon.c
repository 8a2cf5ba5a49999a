/* SPDX-License-Identifier: MIT */
/* daemon.c - `brokerless run`: one site and what serves it on one GMainContext: the
 * control socket (ctl.h), the metrics endpoint (metrics_http.h), systemd's notifications
 * (notify.h), SIGHUP reloads, a clean stop on SIGINT/SIGTERM, and warnings repeated
 * while a condition lasts (watch.h). */
#include "daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib-unix.h>

#include "cert.h"
#include "confwarn.h"
#include "ctl.h"
#include "ctlproto.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "metrics_http.h"
#include "notify.h"
#include "secfile.h"
#include "site.h"
#include "watch.h"

#define DAEMON_WATCH_S 10           /* how often persisting conditions are looked at */
#define DAEMON_SAY_AFTER_MS 60000   /* a broker away this long is said ... */
#define DAEMON_PEER_AFTER_MS 120000 /* ... a peer not connected this long ... */
#define DAEMON_SAY_EVERY_MS 300000  /* ... and again this often while it lasts */
#define DAEMON_STOP_FLUSH_MS 2000   /* at most this long for the "stopped" status to leave */

typedef struct daemon {
    GMainContext *ctx;
    GMainLoop *loop;
    const char *path;
    int level; /* --log-level, or -1 */
    config_t *cfg;
    cert_t *cert;
    site_t *site;
    ctl_t *ctl;
    metrics_http_t *metrics;
    GSource *watchdog, *watch_src, *stop_src;
    guint sig_ids[3];
    int64_t stop_deadline;
    uint64_t reloads, reloads_refused;
    watch_cond_t w_local, w_signal;
    GHashTable *w_peers; /* name -> watch_cond_t */
} daemon_t;

static void warn_config(const config_t *cfg)
{
    GPtrArray *warnings = g_ptr_array_new_with_free_func(g_free);
    confwarn_list(cfg, warnings);
    for (guint i = 0; i < warnings->len; i++)
        LOG_WARN("config", "%s", (const char *)g_ptr_array_index(warnings, i));
    g_ptr_array_unref(warnings);
    if (!cfg->n_peers)
        LOG_WARN("config", "no peer configured yet: add one with brokerless peer add -c %s LINE",
                 cfg->path);
}

static void apply_level(daemon_t *d)
{
    log_set_site(d->cfg->site_name);
    log_set_level(d->level >= 0 ? (log_level_t)d->level : (log_level_t)d->cfg->log_level);
}

static status_site_t snapshot(daemon_t *d)
{
    status_site_t st;
    site_status(d->site, &st);
    st.reloads = d->reloads;
    st.reloads_refused = d->reloads_refused;
    return st;
}

/* "2 of 3 peers open", for systemd's STATUS. */
static char *summary(daemon_t *d)
{
    status_site_t st = snapshot(d);
    size_t open = 0;
    for (size_t i = 0; i < st.n_peers; i++)
        open += !strcmp(st.peers[i].state, "open");
    char *s = g_strdup_printf("%zu of %zu peers open; local broker %s", open, st.n_peers,
                              st.local_connected ? "connected" : "away");
    status_site_clear(&st);
    return s;
}

static void tell_status(daemon_t *d, bool ready)
{
    char *s = summary(d);
    if (ready)
        notify_ready(s);
    else
        notify_status(s);
    g_free(s);
}

/* ---- reload ---- */

static int reload(daemon_t *d, char *err, size_t errlen)
{
    notify_reloading();
    config_t *nc = g_new0(config_t, 1);
    char e[1024] = "";
    int rc = config_load_file(d->path, nc, e, sizeof(e));
    if (!rc)
        rc = site_reload(d->site, nc, e, sizeof(e));
    if (rc) {
        config_free(nc);
        g_free(nc);
        d->reloads_refused++;
        LOG_WARN("main", "reload refused, the running config stays: %s", e);
        snprintf(err, errlen, "%s", e);
        tell_status(d, true);
        return rc;
    }
    config_free(d->cfg);
    g_free(d->cfg);
    d->cfg = nc;
    apply_level(d);
    warn_config(nc);
    d->reloads++;
    tell_status(d, true);
    return 0;
}

static gboolean on_hup(gpointer ud)
{
    char err[1024];
    LOG_INFO("main", "SIGHUP: reloading %s", ((daemon_t *)ud)->path);
    reload(ud, err, sizeof(err));
    return G_SOURCE_CONTINUE;
}

/* ---- the control socket ---- */

static cJSON *ctl_status(void *ud)
{
    status_site_t st = snapshot(ud);
    cJSON *j = status_json(&st);
    status_site_clear(&st);
    return j;
}

static int ctl_reload(void *ud, char *err, size_t errlen)
{
    return reload(ud, err, errlen);
}

static int ctl_forget(void *ud, const char *peer, cJSON **result, char *err, size_t errlen)
{
    daemon_t *d = ud;
    size_t n = 0;
    if (site_forget_peer(d->site, peer, &n)) {
        snprintf(err, errlen, "%s is in the config: remove it first (brokerless peer remove %s)",
                 peer, peer);
        return BL_ESTATE;
    }
    *result = cJSON_CreateObject();
    cJSON_AddStringToObject(*result, "peer", peer);
    cJSON_AddNumberToObject(*result, "dropped", (double)n);
    return 0;
}

static int ctl_ping(void *ud, const char *peer, uint64_t token, char *err, size_t errlen)
{
    daemon_t *d = ud;
    int rc = site_ping(d->site, peer, token);
    if (rc == BL_ENOTFOUND)
        snprintf(err, errlen, "no peer %s in the config", peer);
    else if (rc == BL_ESTATE)
        snprintf(err, errlen, "the link to %s is not open", peer);
    else if (rc == BL_EVERSION)
        snprintf(err, errlen, "%s runs a brokerless that does not answer pings", peer);
    else if (rc)
        snprintf(err, errlen, "cannot ping %s: %s", peer, bl_strerror(rc));
    return rc;
}

static void on_pong(void *ud, const char *peer, uint64_t token)
{
    ctl_pong(((daemon_t *)ud)->ctl, peer, token);
}

static char *render_metrics(void *ud)
{
    status_site_t st = snapshot(ud);
    char *text = metrics_render(&st);
    status_site_clear(&st);
    return text;
}

/* ---- conditions that last ---- */

static void watch_one(watch_cond_t *c, bool bad, int64_t after, const char *who, const char *what,
                      const char *hint)
{
    int64_t now = g_get_monotonic_time() / 1000, since = c->bad_since;
    switch (watch_step(c, bad, now, after, DAEMON_SAY_EVERY_MS)) {
    case WATCH_SAY:
        LOG_WARN(who, "%s for %lld s%s", what, (long long)(now - c->bad_since) / 1000, hint);
        break;
    case WATCH_OVER:
        LOG_INFO(who, "%s no more, after %lld s", what, (long long)(now - since) / 1000);
        break;
    case WATCH_QUIET:
        break;
    }
}

static gboolean on_watch(gpointer ud)
{
    daemon_t *d = ud;
    status_site_t st = snapshot(d);
    char what[256];
    snprintf(what, sizeof(what), "the local broker %s:%d has been unreachable", d->cfg->local.host,
             d->cfg->local.port);
    watch_one(&d->w_local, !st.local_connected, DAEMON_SAY_AFTER_MS, "local", what,
              ": messages from peers wait in their queues. Is it running, and does it let "
              "our client id in?");
    snprintf(what, sizeof(what), "the signalling broker %s:%d has been unreachable",
             d->cfg->signal.host, d->cfg->signal.port);
    watch_one(&d->w_signal, !st.signal_connected, DAEMON_SAY_AFTER_MS, "signal", what,
              ": links that drop cannot be made again");
    for (size_t i = 0; i < st.n_peers; i++) {
        const status_peer_t *p = &st.peers[i];
        watch_cond_t *c = g_hash_table_lookup(d->w_peers, p->name);
        if (!c) {
            c = g_new0(watch_cond_t, 1);
            g_hash_table_insert(d->w_peers, g_strdup(p->name), c);
        }
        char who[96], hint[400];
        snprintf(who, sizeof(who), "peer %s", p->name);
        snprintf(hint, sizeof(hint),
                 " (state %s%s%s). If it never gets past signalling, the other site is not "
                 "running, or uses another network secret or signalling broker",
                 p->state, p->last_error[0] ? "; last error: " : "", p->last_error);
        watch_one(c, strcmp(p->state, "open") != 0 && st.signal_connected, DAEMON_PEER_AFTER_MS,
                  who, "not connected", hint);
    }
    status_site_clear(&st);
    tell_status(d, false);
    return G_SOURCE_CONTINUE;
}

/* ---- stop ---- */

static gboolean stop_tick(gpointer ud)
{
    daemon_t *d = ud;
    if (site_stop_flushed(d->site) || g_get_monotonic_time() / 1000 > d->stop_deadline) {
        d->stop_src = NULL;
        g_main_loop_quit(d->loop);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static gboolean on_quit(gpointer ud)
{
    daemon_t *d = ud;
    if (d->stop_src) { /* a second signal: now */
        loop_cancel(&d->stop_src);
        g_main_loop_quit(d->loop);
        return G_SOURCE_CONTINUE;
    }
    LOG_INFO("main", "signal received, stopping");
    notify_stopping();
    site_stop(d->site);
    d->stop_deadline = g_get_monotonic_time() / 1000 + DAEMON_STOP_FLUSH_MS;
    d->stop_src = loop_timeout(d->ctx, 20, stop_tick, d);
    return G_SOURCE_CONTINUE;
}

/* ---- start ---- */

/* The identity must be there: only `brokerless init` makes one, so that a mistyped
 * state_dir cannot quietly give the site a new key that no peer has pinned. */
static int load_identity(daemon_t *d)
{
    char key[4096];
    snprintf(key, sizeof(key), "%s/key.pem", d->cfg->state_dir);
    if (access(key, F_OK) != 0 && errno == ENOENT) {
        LOG_ERROR("main",
                  "no identity in %s (no key.pem): create it with: brokerless init --name %s "
                  "--state-dir %s (run never creates one, so that a mistyped state_dir cannot "
                  "give the site a key its peers do not know)",
                  d->cfg->state_dir, d->cfg->site_name, d->cfg->state_dir);
        return BL_ENOTFOUND;
    }
    if (cert_load(d->cfg->state_dir, false, &d->cert)) {
        LOG_ERROR("main", "cannot load the identity in %s", d->cfg->state_dir);
        return BL_EIO;
    }
    return 0;
}

static int serve(daemon_t *d)
{
    char path[128], err[512];
    if (ctlproto_socket_path(d->cfg->state_dir, path, sizeof(path))) {
        LOG_ERROR("main", "[site] state_dir %s is too long for the control socket's path",
                  d->cfg->state_dir);
        return BL_ETOOBIG;
    }
    static const ctl_handlers_t h = {
        .status = ctl_status, .reload = ctl_reload, .forget = ctl_forget, .ping = ctl_ping};
    if (ctl_new(d->ctx, path, &h, d, &d->ctl, err, sizeof(err))) {
        LOG_ERROR("main", "%s", err);
        return BL_EIO;
    }
    if (d->cfg->metrics_host &&
        metrics_http_new(d->cfg->metrics_host, d->cfg->metrics_port, render_metrics, d, &d->metrics,
                         err, sizeof(err))) {
        LOG_ERROR("main", "%s", err);
        return BL_EIO;
    }
    return 0;
}

static void cleanup(daemon_t *d)
{
    loop_cancel(&d->watchdog);
    loop_cancel(&d->watch_src);
    loop_cancel(&d->stop_src);
    for (size_t i = 0; i < BL_ARRAY_LEN(d->sig_ids); i++)
        if (d->sig_ids[i])
            g_source_remove(d->sig_ids[i]);
    metrics_http_free(d->metrics);
    site_free(d->site);
    ctl_free(d->ctl);
    cert_free(d->cert);
    if (d->cfg)
        config_free(d->cfg);
    g_free(d->cfg);
    if (d->w_peers)
        g_hash_table_destroy(d->w_peers);
    if (d->loop)
        g_main_loop_unref(d->loop);
}

int daemon_run(const char *path, int level)
{
    daemon_t d = {.path = path, .level = level, .ctx = g_main_context_default()};
    d.cfg = g_new0(config_t, 1);
    char err[1024];
    if (config_load_file(path, d.cfg, err, sizeof(err))) {
        fprintf(stderr, "brokerless: %s\n", err);
        g_free(d.cfg);
        return 1;
    }
    apply_level(&d);
    warn_config(d.cfg);
    /* Everything the daemon creates is its own (the queue database, the socket), and
     * what already exists is made private again. */
    umask(077);
    secfile_private_dir(d.cfg->state_dir);
    int rc = 1;
    d.loop = g_main_loop_new(d.ctx, FALSE);
    d.w_peers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    if (load_identity(&d) || serve(&d))
        goto out;
    LOG_INFO("main", "brokerless %s starting, fingerprint %s", BL_VERSION, d.cert->fingerprint);
    d.site = site_new(d.ctx, d.cfg, d.cert);
    if (!d.site || site_start(d.site) != 0)
        goto out;
    site_on_pong(d.site, on_pong, &d);
    d.sig_ids[0] = g_unix_signal_add(SIGINT, on_quit, &d);
    d.sig_ids[1] = g_unix_signal_add(SIGTERM, on_quit, &d);
    d.sig_ids[2] = g_unix_signal_add(SIGHUP, on_hup, &d);
    d.watchdog = notify_watchdog_start(d.ctx);
    d.watch_src = loop_attach(d.ctx, g_timeout_source_new_seconds(DAEMON_WATCH_S), on_watch, &d);
    tell_status(&d, true);
    g_main_loop_run(d.loop);
    rc = 0;
out:
    cleanup(&d);
    LOG_INFO("main", "stopped");
    return rc;
}
