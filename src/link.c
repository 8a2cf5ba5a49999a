/* SPDX-License-Identifier: MIT */
/* link.c - see link.h: one peer's session state machine. Its transports come from the
 * peer's kind (transport.h), its frames go through its framer (framer.h); sealed
 * signalling is one handler per message type. Just over 600 lines: the handlers start,
 * answer and end sessions, and share the machine's every field; apart they would need a
 * header of internals for no reader's gain. */
#include "link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "framer.h"
#include "log.h"
#include "loop.h"
#include "transport.h"

#define LINK_RESTART_SPACING_MS 300

struct link {
    GMainContext *ctx;
    const config_t *cfg;
    const config_peer_t *peer;
    const cert_t *cert;
    const transport_kind_t *kind;
    char who[96];
    bool offerer; /* sealed kinds */

    link_state_t state;
    bool started;          /* link_start: the site is ready for links */
    bool signal_up;        /* the sealed signalling is connected */
    int64_t state_wall_ms; /* when it changed (link_get_info) */
    char last_error[160];
    transport_t *tr;
    char sid[33];
    int64_t t_attempt, t_step, t_last_offer;
    bool offer_for_restart; /* the last offer answered a restart request */
    int64_t peer_ts;        /* newest sender timestamp of a message from the peer we acted on */
    unsigned backoff_ms;
    GSource *retry_src, *timeout_src, *broken_src;
    bool rx_paused; /* link_pause_rx: also for transports made later */

    framer_t *fr;
    link_stats_t *stats; /* a view refreshed by link_stats() */
    uint64_t opens, failures, bad_signal;
    unsigned tries; /* attempts since the link was last open */
    link_events_t ev;
    void *ud;
};

static const char *const state_names[] = {"waiting", "signalling", "ice",   "dtls",
                                          "sctp",    "open",       "failed"};

const char *link_state_name(link_state_t s)
{
    return (unsigned)s < BL_ARRAY_LEN(state_names) ? state_names[s] : "?";
}

static void set_state(link_t *l, link_state_t s)
{
    if (l->state == s)
        return;
    l->state = s;
    l->state_wall_ms = bl_wall_ms();
    if (l->ev.on_state)
        l->ev.on_state(l->ud, l);
}

/* May an attempt begin: a sealed kind needs its signalling, the other the site's go. */
static bool may_start(const link_t *l)
{
    return l->kind->sealed ? l->signal_up : l->started;
}

/* Tear the current attempt down; the transport is never on the stack here (it reports
 * failure from an idle callback, the framer's broken send is deferred too). */
static void drop_session(link_t *l)
{
    bool was_open = l->state == LINK_OPEN;
    loop_cancel(&l->timeout_src);
    loop_cancel(&l->broken_src);
    framer_detach(l->fr);
    if (l->tr) {
        l->tr->ops->free(l->tr);
        l->tr = NULL;
    }
    l->sid[0] = '\0';
    if (was_open && l->ev.on_down)
        l->ev.on_down(l->ud, l);
}

static void start_session(link_t *l);

static gboolean retry_cb(gpointer p)
{
    link_t *l = p;
    l->retry_src = NULL;
    start_session(l);
    return G_SOURCE_REMOVE;
}

/* A restart request came too soon after our offer: offer again unless an answer has
 * arrived in the meantime. */
static gboolean recheck_cb(gpointer p)
{
    link_t *l = p;
    l->retry_src = NULL;
    if (l->state == LINK_SIGNALLING || l->state == LINK_WAITING || l->state == LINK_FAILED) {
        LOG_INFO(l->who, "peer asked for a new session and our offer got no answer: offering "
                         "again");
        start_session(l);
        l->offer_for_restart = true;
    }
    return G_SOURCE_REMOVE;
}

/* One line per failed attempt: what failed, where, and what comes next. A peer that never
 * answered is not news worth a warning; a session that broke is. */
static void log_failure(link_t *l, link_state_t was, const char *why, const char *next)
{
    if (was == LINK_OPEN)
        LOG_WARN(l->who, "link down: %s; %s", why, next);
    else
        LOG_AT(was > LINK_SIGNALLING ? LOG_LVL_WARN : LOG_LVL_INFO, l->who,
               "connection attempt failed in %s after %lld ms: %s; %s", link_state_name(was),
               (long long)(bl_now_ms() - l->t_attempt), why, next);
}

static void session_failed(link_t *l, const char *reason)
{
    link_state_t was = l->state;
    l->failures++;
    char sid[33], why[200];
    snprintf(sid, sizeof(sid), "%s", l->sid);
    snprintf(why, sizeof(why), "%s", reason); /* it may be the transport's, freed below */
    snprintf(l->last_error, sizeof(l->last_error), "%.159s", why);
    drop_session(l);
    if (!may_start(l)) {
        log_failure(l, was, why, "waiting for signalling");
        set_state(l, LINK_WAITING);
        return;
    }
    if (l->kind->sealed && !l->offerer) {
        /* Ask the offerer for a fresh session; it may not have noticed yet. */
        log_failure(l, was, why, "asking the peer for a new session");
        set_state(l, LINK_WAITING);
        if (sid[0])
            l->ev.signal_send(l->ud, l, "restart", sid, NULL);
        return;
    }
    char next[48];
    snprintf(next, sizeof(next), "retrying in %.1f s", l->backoff_ms / 1000.0);
    log_failure(l, was, why, next);
    set_state(l, LINK_FAILED);
    loop_cancel(&l->retry_src);
    l->retry_src = loop_timeout(l->ctx, l->backoff_ms, retry_cb, l);
    l->backoff_ms = BL_MIN(l->backoff_ms * 2, l->kind->retry_max_ms);
}

static gboolean timeout_cb(gpointer p)
{
    link_t *l = p;
    l->timeout_src = NULL;
    char why[80];
    snprintf(why, sizeof(why), "no channel after %u s", l->kind->connect_timeout_ms / 1000);
    session_failed(l, why);
    return G_SOURCE_REMOVE;
}

/* ---- transport events ---- */

static const char *const sig_names[] = {"offer", "answer", "cand", "eoc"};

static void tr_signal(void *ud, transport_sig_t type, const char *body)
{
    link_t *l = ud;
    l->ev.signal_send(l->ud, l, sig_names[type], l->sid, body);
}

static void tr_step(void *ud, transport_phase_t phase, const char *what)
{
    link_t *l = ud;
    int64_t now = bl_now_ms();
    LOG_INFO(l->who, "%s (+%lld ms, %lld ms since start)", what, (long long)(now - l->t_step),
             (long long)(now - l->t_attempt));
    l->t_step = now;
    /* Only forward: ICE may report "ready" after the channel is already open
     * (nomination completes later than the first working pair). */
    link_state_t s = LINK_SIGNALLING + (link_state_t)phase;
    if (l->state < s && l->state < LINK_OPEN)
        set_state(l, s);
}

static void tr_open(void *ud)
{
    link_t *l = ud;
    char pair[128] = "";
    l->tr->ops->describe(l->tr, pair, sizeof(pair));
    loop_cancel(&l->timeout_src);
    l->backoff_ms = l->kind->retry_min_ms;
    l->opens++;
    l->tries = 0;
    framer_attach(l->fr, l->tr);
    LOG_INFO(l->who, "link open via %s path (%s) in %lld ms", l->tr->ops->path_type(l->tr), pair,
             (long long)(bl_now_ms() - l->t_attempt));
    set_state(l, LINK_OPEN);
    if (l->ev.on_open)
        l->ev.on_open(l->ud, l);
}

static void tr_failed(void *ud, const char *why)
{
    session_failed(ud, why);
}

static void tr_frame(void *ud, const uint8_t *buf, size_t len)
{
    link_t *l = ud;
    if (l->state == LINK_OPEN)
        framer_feed(l->fr, buf, len);
}

static void tr_writable(void *ud)
{
    link_t *l = ud;
    if (l->state == LINK_OPEN)
        framer_writable(l->fr);
}

/* ---- framer events ---- */

static void fr_frame(void *ud, const wire_frame_t *f)
{
    link_t *l = ud;
    l->ev.on_frame(l->ud, l, f);
}

static void fr_writable(void *ud)
{
    link_t *l = ud;
    if (l->ev.on_writable)
        l->ev.on_writable(l->ud, l);
}

static gboolean broken_cb(gpointer p)
{
    link_t *l = p;
    l->broken_src = NULL;
    session_failed(l, "the transport refused a frame");
    return G_SOURCE_REMOVE;
}

/* The framer may be inside a call from the transport: fail from an idle callback. */
static void fr_broken(void *ud, const char *why)
{
    link_t *l = ud;
    (void)why;
    if (!l->broken_src)
        l->broken_src = loop_idle(l->ctx, G_PRIORITY_DEFAULT, broken_cb, l);
}

/* ---- sessions ---- */

static void new_sid(char out[33])
{
    uint8_t rnd[8];
    RAND_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

static int new_transport(link_t *l, bool offerer)
{
    transport_args_t a = {.who = l->who,
                          .offerer = offerer,
                          .cfg = l->cfg,
                          .peer = l->peer,
                          .cert = l->cert,
                          .bad_signal = &l->bad_signal};
    transport_events_t ev = {.signal = tr_signal,
                             .on_step = tr_step,
                             .on_open = tr_open,
                             .on_failed = tr_failed,
                             .on_frame = tr_frame,
                             .on_writable = tr_writable};
    l->tr = l->kind->create(l->ctx, &a, &ev, l);
    if (!l->tr)
        return BL_ENOMEM;
    if (l->rx_paused && l->tr->ops->pause_rx)
        l->tr->ops->pause_rx(l->tr, true);
    l->t_attempt = l->t_step = bl_now_ms();
    if (l->kind->connect_timeout_ms)
        l->timeout_src = loop_timeout(l->ctx, l->kind->connect_timeout_ms, timeout_cb, l);
    set_state(l, LINK_SIGNALLING);
    return 0;
}

/* A new attempt that we begin: a sealed offerer's offer, or any attempt of a kind that
 * finds its peer itself. */
static void start_session(link_t *l)
{
    drop_session(l);
    loop_cancel(&l->retry_src);
    if (!may_start(l)) {
        set_state(l, LINK_WAITING);
        return;
    }
    if (l->kind->sealed) {
        new_sid(l->sid);
        l->t_last_offer = bl_now_ms();
        l->offer_for_restart = false;
        LOG_INFO(l->who, "offering session %s", l->sid);
    } else {
        /* One line per attempt is the one saying how it ended. */
        LOG_AT(l->tries ? LOG_LVL_DEBUG : LOG_LVL_INFO, l->who, "looking for the peer (%s)",
               l->kind->mode);
    }
    l->tries++;
    if (new_transport(l, true) || l->tr->ops->start(l->tr))
        session_failed(l, "cannot start the transport");
}

void link_start(link_t *l)
{
    l->started = true;
    if (!l->kind->sealed && !l->tr && !l->retry_src)
        start_session(l);
}

void link_signal_up(link_t *l)
{
    if (!l->kind->sealed)
        return;
    l->signal_up = true;
    if (l->state == LINK_OPEN)
        return;
    if (l->offerer) {
        if (l->state == LINK_WAITING || l->state == LINK_FAILED)
            start_session(l);
    } else {
        LOG_INFO(l->who, "asking the peer for a session");
        l->ev.signal_send(l->ud, l, "restart", "00", NULL);
    }
}

/* ---- sealed signalling: one handler per message type ---- */

/* "restart": the answerer asks for a new session. Honoured unless a session is already
 * past the offer/answer exchange. A request right after our offer most often means the
 * peer subscribed just after the offer went out (both sites started together): offer
 * again at once. It may also have crossed an offer the peer is about to answer; offering
 * again then only costs the peer a second answer. Only one such offer per spacing: a
 * request soon after one, or one that finds the link already open, is looked at again
 * when the spacing has passed, and answered with an offer if no answer came (nothing, if
 * the link is open then). */
static void on_restart(link_t *l, const seal_msg_t *m)
{
    (void)m;
    if (!l->offerer)
        return;
    if (l->state >= LINK_ICE && l->state < LINK_OPEN)
        return;
    int64_t since = bl_now_ms() - l->t_last_offer;
    if (since < LINK_RESTART_SPACING_MS && (l->offer_for_restart || l->state == LINK_OPEN)) {
        loop_cancel(&l->retry_src);
        l->retry_src =
            loop_timeout(l->ctx, (unsigned)(LINK_RESTART_SPACING_MS - since), recheck_cb, l);
        return;
    }
    if (since < LINK_RESTART_SPACING_MS)
        LOG_INFO(l->who, "peer asks for a session just after our offer (it may have "
                         "subscribed too late for it): offering again");
    else
        LOG_INFO(l->who, "peer asks for a new session");
    l->backoff_ms = l->kind->retry_min_ms;
    start_session(l);
    l->offer_for_restart = true;
}

/* "offer": the answerer drops what it had and answers with a new transport. */
static void on_offer(link_t *l, const seal_msg_t *m)
{
    if (l->offerer) {
        LOG_WARN(l->who,
                 "peer sent an offer but we are the offerer (site names \"%s\" < "
                 "\"%s\"): is the peer configured with another name for us?",
                 l->cfg->site_name, l->peer->name);
        return;
    }
    if (!strcmp(m->sid, l->sid))
        return; /* a repeat of the session we are in */
    if (l->tr)
        LOG_INFO(l->who, "peer started a new session %s, dropping %s", m->sid, l->sid);
    drop_session(l);
    snprintf(l->sid, sizeof(l->sid), "%s", m->sid);
    LOG_INFO(l->who, "answering session %s", l->sid);
    if (new_transport(l, false) || l->tr->ops->signal_in(l->tr, TRANSPORT_SIG_OFFER, m->body))
        session_failed(l, "cannot answer the offer");
}

static void to_transport(link_t *l, transport_sig_t type, const seal_msg_t *m)
{
    if (l->tr->ops->signal_in(l->tr, type, m->body) == BL_EINVAL)
        LOG_DEBUG(l->who, "transport refused a %s message", m->type);
}

static void on_answer(link_t *l, const seal_msg_t *m)
{
    to_transport(l, TRANSPORT_SIG_ANSWER, m);
}

static void on_cand(link_t *l, const seal_msg_t *m)
{
    to_transport(l, TRANSPORT_SIG_CAND, m);
}

static void on_eoc(link_t *l, const seal_msg_t *m)
{
    to_transport(l, TRANSPORT_SIG_EOC, m);
}

static void on_bye(link_t *l, const seal_msg_t *m)
{
    (void)m;
    session_failed(l, "peer closed the session");
}

typedef struct handler {
    const char *type;
    void (*fn)(link_t *l, const seal_msg_t *m);
    /* Changes the session: refused when older than one we acted on. Otherwise the
     * message belongs to the session we are in and is dropped when it does not. */
    bool changes;
} handler_t;

static const handler_t handlers[] = {
    {"restart", on_restart, true}, {"offer", on_offer, true}, {"answer", on_answer, false},
    {"cand", on_cand, false},      {"eoc", on_eoc, false},    {"bye", on_bye, false},
};

void link_signal_in(link_t *l, const seal_msg_t *m)
{
    const handler_t *h = NULL;
    for (size_t i = 0; i < BL_ARRAY_LEN(handlers) && !h; i++)
        if (!strcmp(m->type, handlers[i].type))
            h = &handlers[i];
    if (!h || !l->kind->sealed) {
        LOG_DEBUG(l->who, "ignored a %s message", m->type);
        return;
    }
    /* A session-changing message older than one we already acted on is a late delivery
     * (or a capture replayed to a site that never saw it): acting on it would tear down
     * a newer session. Timestamps are the peer's own clock, so only compared with each
     * other. */
    if (h->changes && m->ts_ms < l->peer_ts) {
        LOG_DEBUG(l->who, "ignored a late %s (session %s)", m->type, m->sid);
        return;
    }
    bool ours = l->tr && !strcmp(m->sid, l->sid);
    if (h->changes || ours)
        l->peer_ts = BL_MAX(l->peer_ts, m->ts_ms);
    if (!h->changes && !ours) {
        LOG_DEBUG(l->who, "ignored %s for session %s (current: %s)", m->type, m->sid,
                  l->sid[0] ? l->sid : "none");
        return;
    }
    h->fn(l, m);
}

/* ---- frames ---- */

int link_send_msg(link_t *l, const bl_msg_t *m)
{
    return framer_send_msg(l->fr, m);
}

int link_send_ack(link_t *l, const uint64_t *seqs, size_t n)
{
    return framer_send_ack(l->fr, seqs, n);
}

int link_send_hello(link_t *l, const wire_hello_t *h)
{
    return framer_send_hello(l->fr, h);
}

int link_send_frame(link_t *l, const uint8_t *frame, size_t len)
{
    return framer_send_frame(l->fr, frame, len);
}

bool link_can_send(const link_t *l)
{
    return framer_can_send(l->fr);
}

bool link_can_send_small(const link_t *l)
{
    return framer_can_send_small(l->fr);
}

bool link_topic_held(const link_t *l, const char *topic)
{
    return framer_topic_held(l->fr, topic);
}

void link_pause_rx(link_t *l, bool pause)
{
    if (!l || l->rx_paused == pause)
        return;
    l->rx_paused = pause;
    if (l->tr && l->tr->ops->pause_rx)
        l->tr->ops->pause_rx(l->tr, pause);
}

/* ---- queries ---- */

bool link_sealed(const link_t *l)
{
    return l->kind->sealed;
}

bool link_leaf(const link_t *l)
{
    return !l->kind->framing->control;
}

bool link_is_open(const link_t *l)
{
    return l->state == LINK_OPEN;
}

link_state_t link_state(const link_t *l)
{
    return l->state;
}

const char *link_peer_name(const link_t *l)
{
    return l->peer->name;
}

const config_peer_t *link_peer(const link_t *l)
{
    return l->peer;
}

const char *link_path_type(const link_t *l)
{
    return l->tr && l->state == LINK_OPEN ? l->tr->ops->path_type(l->tr) : "";
}

const link_stats_t *link_stats(const link_t *l)
{
    const framer_stats_t *f = framer_stats(l->fr);
    *l->stats = (link_stats_t){.frames_out = f->frames_out,
                               .frames_in = f->frames_in,
                               .bytes_out = f->bytes_out,
                               .bytes_in = f->bytes_in,
                               .bad_frames = f->bad_frames,
                               .too_big = f->too_big,
                               .bad_signal = l->bad_signal,
                               .opens = l->opens,
                               .failures = l->failures};
    return l->stats;
}

void link_get_info(const link_t *l, link_info_t *out)
{
    memset(out, 0, sizeof(*out));
    out->since_ms = l->state_wall_ms;
    snprintf(out->last_error, sizeof(out->last_error), "%s", l->last_error);
    if (!l->tr || l->state != LINK_OPEN)
        return;
    snprintf(out->path, sizeof(out->path), "%s", l->tr->ops->path_type(l->tr));
    if (l->tr->ops->describe(l->tr, out->pair, sizeof(out->pair)))
        out->pair[0] = '\0';
    transport_stats_t st;
    if (l->tr->ops->stats && l->tr->ops->stats(l->tr, &st) == 0)
        out->rtt_ms = st.srtt_ms;
}

void link_rebind(link_t *l, const config_t *cfg, const config_peer_t *peer)
{
    l->cfg = cfg;
    l->peer = peer;
}

link_t *link_new(GMainContext *ctx, const config_t *cfg, const config_peer_t *peer,
                 const cert_t *cert, const link_events_t *ev, void *ud)
{
    const transport_kind_t *kind = transport_kind(peer->mode);
    if (!kind) {
        LOG_ERROR(peer->name, "no transport for mode %s", peer->mode);
        return NULL;
    }
    link_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->ctx = ctx;
    l->cfg = cfg;
    l->peer = peer;
    l->cert = cert;
    l->kind = kind;
    l->ev = *ev;
    l->ud = ud;
    snprintf(l->who, sizeof(l->who), "peer %s", peer->name);
    /* docs/PROTOCOL.md: the side with the smaller site name offers and controls ICE; a site
     * always offers to a browser (docs/PROTOCOL.md "Browser peers"). */
    l->offerer = peer->browser || strcmp(cfg->site_name, peer->name) < 0;
    l->backoff_ms = kind->retry_min_ms;
    l->state_wall_ms = bl_wall_ms();
    framer_events_t fev = {
        .on_frame = fr_frame, .on_writable = fr_writable, .on_broken = fr_broken};
    l->fr = framer_new(ctx, l->who, peer->name, kind->framing, cfg->max_message_size, &fev, l);
    l->stats = calloc(1, sizeof(*l->stats));
    if (!l->fr || !l->stats) {
        link_free(l);
        return NULL;
    }
    if (kind->sealed)
        LOG_INFO(l->who, "configured, we are the %s", l->offerer ? "offerer" : "answerer");
    else
        LOG_INFO(l->who, "configured, mode %s", kind->mode);
    return l;
}

void link_free(link_t *l)
{
    if (!l)
        return;
    loop_cancel(&l->retry_src);
    l->ev.on_down = NULL;
    l->ev.on_state = NULL;
    if (l->fr)
        drop_session(l);
    framer_free(l->fr);
    free(l->stats);
    free(l);
}
