/* SPDX-License-Identifier: MIT */
/* link.c - see link.h: one peer's session state machine and its frame pipe (two send
 * queues, small frames ahead of large ones and FRAG pieces, BATCH packing, reassembly)
 * and, at debug level, a trace of the windows. Over 600 lines because the pipe lives
 * and dies with the session (every drop clears it); it is the part to split off into a
 * module of its own if the link grows further. */
#include "link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "log.h"
#include "rtc.h"

#define LINK_CONNECT_TIMEOUT_MS 20000
#define LINK_BACKOFF_MIN_MS 1000
#define LINK_BACKOFF_MAX_MS 30000
#define LINK_RESTART_SPACING_MS 300
/* Above this many bytes waiting for the transport the caller is told to hold off. */
#define LINK_HIGH_WATER (256 * 1024)
/* A BATCH carries small frames only, up to this many bytes in all: one channel message
 * that SCTP cuts into full packets, instead of a packet (and a DTLS record) per frame. */
#define LINK_BATCH_MAX (16 * 1024)
#define LINK_BATCH_FRAME_MAX 2048
/* Small frames (at most LINK_BATCH_FRAME_MAX) go ahead of large ones and FRAG pieces:
 * the link keeps them in two queues, and hands the transport large ones only while less
 * than this waits there unsent (a small frame then waits behind that much and the piece
 * being sent, not behind the window's worth of a 1 MiB message). Enough for SCTP to fill
 * its window between two refills, which come with the SACKs that make room. */
#define LINK_BULK_BACKLOG (64 * 1024)
/* At debug level, how often an open link with traffic logs where its windows stand. */
#define LINK_TRACE_MS 250

/* What link_trace counts between two lines. */
typedef struct link_counts {
    uint64_t msgs_out; /* MSG frames with a sequence, i.e. waiting for an ACK */
    uint64_t acked_in; /* sequences in the peer's ACK frames */
    uint64_t acks_out, ack_seqs_out;
    uint64_t frames_out, frames_in;
    transport_stats_t tr;
} link_counts_t;

struct link {
    GMainContext *ctx;
    const config_t *cfg;
    const config_peer_t *peer;
    const cert_t *cert;
    char who[96];
    bool offerer;

    link_state_t state;
    int64_t state_wall_ms; /* when it changed (link_get_info) */
    char last_error[160];
    bool signal_up;
    transport_t *tr;
    char sid[33];
    int64_t t_attempt, t_step, t_last_offer;
    bool offer_for_restart; /* the last offer answered a restart request */
    int64_t peer_ts;        /* newest sender timestamp of a message from the peer we acted on */
    unsigned backoff_ms;
    GSource *retry_src, *timeout_src;

    /* Frames waiting for the transport, pending_bytes in all. express: small frames
     * (GBytes), sent first and packed in BATCHes; bulk: large frames and FRAG pieces
     * (bulk_t), and small MSG frames on a topic with a large message still in bulk, which
     * must not overtake it (MQTT keeps order per topic). */
    GQueue express, bulk;
    GHashTable *bulk_topics; /* topic -> its messages in bulk */
    size_t pending_bytes;
    bool batch;         /* the peer takes BATCH frames (its HELLO said so) */
    bool rx_paused;     /* link_pause_rx: also for transports made later */
    GSource *flush_src; /* sends what this turn of the loop queued, packed */
    uint32_t frag_no;
    wire_reasm_t reasm;

    link_stats_t stats;
    link_counts_t counts, traced; /* now, and at the last trace line */
    GSource *trace_src;
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

static GSource *timer(link_t *l, unsigned ms, GSourceFunc fn)
{
    GSource *src = g_timeout_source_new(ms);
    g_source_set_callback(src, fn, l, NULL);
    g_source_attach(src, l->ctx);
    g_source_unref(src);
    return src;
}

static void cancel(GSource **src)
{
    if (*src) {
        g_source_destroy(*src);
        *src = NULL;
    }
}

/* One entry of the bulk queue; `topic` on the last piece of a message counted in
 * bulk_topics. */
typedef struct bulk {
    GBytes *data;
    char *topic;
} bulk_t;

static void bulk_done(link_t *l, bulk_t *e)
{
    if (e->topic) {
        guint n = GPOINTER_TO_UINT(g_hash_table_lookup(l->bulk_topics, e->topic));
        if (n > 1)
            g_hash_table_insert(l->bulk_topics, g_strdup(e->topic), GUINT_TO_POINTER(n - 1));
        else
            g_hash_table_remove(l->bulk_topics, e->topic);
        g_free(e->topic);
    }
    g_bytes_unref(e->data);
    g_free(e);
}

static void clear_pending(link_t *l)
{
    GBytes *b;
    bulk_t *e;
    cancel(&l->flush_src);
    l->batch = false; /* until the next session's HELLO */
    while ((b = g_queue_pop_head(&l->express)))
        g_bytes_unref(b);
    while ((e = g_queue_pop_head(&l->bulk)))
        bulk_done(l, e);
    l->pending_bytes = 0;
    wire_reasm_clear(&l->reasm);
    wire_reasm_init(&l->reasm, l->cfg->max_message_size + WIRE_MSG_MAX_OVERHEAD);
}

/* Tear the current attempt down; the transport is never on the stack here (rtc reports
 * failure from an idle callback). */
static void drop_session(link_t *l)
{
    bool was_open = l->state == LINK_OPEN;
    cancel(&l->timeout_src);
    cancel(&l->trace_src);
    if (l->tr) {
        l->tr->ops->free(l->tr);
        l->tr = NULL;
    }
    clear_pending(l);
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

static void session_failed(link_t *l, const char *why)
{
    link_state_t was = l->state;
    l->stats.failures++;
    snprintf(l->last_error, sizeof(l->last_error), "%s", why);
    if (was == LINK_OPEN)
        LOG_WARN(l->who, "link down: %s", why);
    else
        LOG_WARN(l->who, "connection attempt failed in %s after %lld ms: %s", link_state_name(was),
                 (long long)(bl_now_ms() - l->t_attempt), why);
    char sid[33];
    snprintf(sid, sizeof(sid), "%s", l->sid);
    drop_session(l);
    if (!l->signal_up) {
        set_state(l, LINK_WAITING);
        return;
    }
    if (l->offerer) {
        set_state(l, LINK_FAILED);
        LOG_INFO(l->who, "retrying in %.1f s", l->backoff_ms / 1000.0);
        cancel(&l->retry_src);
        l->retry_src = timer(l, l->backoff_ms, retry_cb);
        l->backoff_ms = BL_MIN(l->backoff_ms * 2, LINK_BACKOFF_MAX_MS);
    } else {
        /* Ask the offerer for a fresh session; it may not have noticed yet. */
        set_state(l, LINK_WAITING);
        if (sid[0])
            l->ev.signal_send(l->ud, l, "restart", sid, NULL);
    }
}

static gboolean timeout_cb(gpointer p)
{
    link_t *l = p;
    l->timeout_src = NULL;
    char why[80];
    snprintf(why, sizeof(why), "no channel after %d s", LINK_CONNECT_TIMEOUT_MS / 1000);
    session_failed(l, why);
    return G_SOURCE_REMOVE;
}

/* ---- transport events ---- */

static void tr_signal(void *ud, const char *type, const char *body)
{
    link_t *l = ud;
    l->ev.signal_send(l->ud, l, type, l->sid, body);
}

static void tr_step(void *ud, const char *layer, const char *what)
{
    link_t *l = ud;
    int64_t now = bl_now_ms();
    LOG_INFO(l->who, "%s: %s (+%lld ms, %lld ms since start)", layer, what,
             (long long)(now - l->t_step), (long long)(now - l->t_attempt));
    l->t_step = now;
    /* Steps only move the state forward: ICE may report "ready" after the channel is
     * already open (nomination completes later than the first working pair). */
    if (!strcmp(layer, "ice") && strncmp(what, "gathering", 9) != 0 && l->state < LINK_DTLS)
        set_state(l, LINK_DTLS);
    else if (!strcmp(layer, "dtls") && l->state < LINK_SCTP)
        set_state(l, LINK_SCTP);
}

static void tr_open(void *ud)
{
    link_t *l = ud;
    char pair[128] = "";
    l->tr->ops->describe(l->tr, pair, sizeof(pair));
    cancel(&l->timeout_src);
    l->backoff_ms = LINK_BACKOFF_MIN_MS;
    l->stats.opens++;
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

/* ---- window trace (debug level) ---- */

static void trace_line(link_t *l)
{
    link_counts_t *c = &l->counts, *o = &l->traced;
    transport_stats_t *t = &c->tr, *ot = &o->tr;
    if (!l->tr || !l->tr->ops->stats || l->tr->ops->stats(l->tr, t))
        memset(t, 0, sizeof(*t));
    LOG_DEBUG(
        l->who,
        "window: %" G_GUINT64_FORMAT " msgs unacked (+%" G_GUINT64_FORMAT
        " sent, +%" G_GUINT64_FORMAT " acked), link queue %zu B, sctp buffer %zu B "
        "(%u chunks unacked, %u unsent), cwnd %u B, peer rwnd %u B, srtt %u ms, rto %u "
        "ms; acks out +%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " seqs; rtx +%" G_GUINT64_FORMAT
        " (fast +%" G_GUINT64_FORMAT "), T3 +%" G_GUINT64_FORMAT
        ", delayed SACKs +%" G_GUINT64_FORMAT ", burst-held +%" G_GUINT64_FORMAT
        ", packets +%" G_GUINT64_FORMAT "/+%" G_GUINT64_FORMAT " out/in",
        c->msgs_out - c->acked_in, c->msgs_out - o->msgs_out, c->acked_in - o->acked_in,
        l->pending_bytes, t->buffered, t->unacked, t->unsent, t->cwnd, t->peer_rwnd, t->srtt_ms,
        t->rto_ms, c->acks_out - o->acks_out, c->ack_seqs_out - o->ack_seqs_out,
        t->retrans - ot->retrans, t->fast_retrans - ot->fast_retrans, t->timeouts - ot->timeouts,
        t->delayed_acks - ot->delayed_acks, t->burst_limited - ot->burst_limited,
        t->packets_out - ot->packets_out, t->packets_in - ot->packets_in);
}

static gboolean trace_cb(gpointer p)
{
    link_t *l = p;
    link_counts_t *c = &l->counts;
    bool moved = c->frames_out != l->traced.frames_out || c->frames_in != l->traced.frames_in;
    if (l->state != LINK_OPEN || (!moved && !l->pending_bytes && !c->tr.buffered)) {
        l->trace_src = NULL; /* quiet: the next frame starts it again */
        return G_SOURCE_REMOVE;
    }
    trace_line(l);
    l->traced = *c;
    return G_SOURCE_CONTINUE;
}

static void trace_start(link_t *l)
{
    if (l->trace_src || log_get_level() > LOG_LVL_DEBUG || l->state != LINK_OPEN)
        return;
    l->trace_src = g_timeout_source_new(LINK_TRACE_MS);
    g_source_set_callback(l->trace_src, trace_cb, l, NULL);
    g_source_attach(l->trace_src, l->ctx);
    g_source_unref(l->trace_src);
}

/* Counts for the trace: frames that wait for an ACK, and ACKs, in either direction. */
static void trace_count(link_t *l, const uint8_t *f, size_t len, bool out)
{
    if (len < WIRE_HEADER_LEN)
        return;
    link_counts_t *c = &l->counts;
    if (f[1] == WIRE_ACK && len >= 6) {
        uint64_t n = ((uint64_t)f[4] << 8) | f[5];
        if (out) {
            c->acks_out++;
            c->ack_seqs_out += n;
        } else {
            c->acked_in += n;
        }
    } else if (f[1] == WIRE_MSG && out && len > 5 && len >= 13u + f[4]) {
        const uint8_t *q = f + 5 + f[4];
        uint64_t seq = 0;
        for (int i = 0; i < 8; i++)
            seq = (seq << 8) | q[i];
        c->msgs_out += seq != 0;
    }
}

static void deliver(link_t *l, const uint8_t *buf, size_t len)
{
    wire_frame_t f;
    int rc = wire_decode(buf, len, l->cfg->max_message_size, &f);
    if (rc) {
        l->stats.bad_frames++;
        LOG_WARN(l->who, "dropped a bad frame of %zu bytes from the peer: %s (%llu so far)", len,
                 f.why ? f.why : bl_strerror(rc), (unsigned long long)l->stats.bad_frames);
        return;
    }
    if (f.type == WIRE_BATCH) {
        /* Checked whole by the decoder: only MSG and ACK frames inside, no recursion. */
        const uint8_t *in;
        size_t il;
        while (l->state == LINK_OPEN && wire_batch_next(&f.u.batch, &in, &il) == 1)
            deliver(l, in, il);
        wire_frame_clear(&f);
        return;
    }
    if (f.type == WIRE_FRAG) {
        uint8_t *whole;
        size_t whole_len;
        rc = wire_reasm_feed(&l->reasm, &f.u.frag, &whole, &whole_len);
        wire_frame_clear(&f);
        if (rc < 0) {
            l->stats.bad_frames++;
            LOG_WARN(l->who, "dropped a fragmented frame from the peer: %s",
                     l->reasm.why ? l->reasm.why : bl_strerror(rc));
        } else if (rc == 1) {
            deliver(l, whole, whole_len);
            free(whole);
        }
        return;
    }
    trace_count(l, buf, len, false);
    l->ev.on_frame(l->ud, l, &f);
    wire_frame_clear(&f);
}

static void tr_frame(void *ud, const uint8_t *buf, size_t len)
{
    link_t *l = ud;
    l->stats.frames_in++;
    l->stats.bytes_in += len;
    l->counts.frames_in++;
    trace_start(l);
    deliver(l, buf, len);
}

static bool batchable(GBytes *b)
{
    size_t n;
    const uint8_t *d = g_bytes_get_data(b, &n);
    return n >= WIRE_HEADER_LEN && n <= LINK_BATCH_FRAME_MAX &&
           (d[1] == WIRE_MSG || d[1] == WIRE_ACK);
}

/* The small frames at the head of the queue in one BATCH, or NULL when fewer than two
 * would go in (the head is then sent as it is). *count: how many it holds. */
static uint8_t *pack(link_t *l, size_t *len, size_t *count)
{
    wire_piece_t pieces[LINK_BATCH_MAX / (WIRE_HEADER_LEN + WIRE_BATCH_ENTRY_OVERHEAD)];
    size_t n = 0, total = WIRE_BATCH_HEADER_LEN;
    for (GList *e = l->express.head; e && n < BL_ARRAY_LEN(pieces) && batchable(e->data);
         e = e->next) {
        size_t fl;
        const uint8_t *d = g_bytes_get_data(e->data, &fl);
        if (total + WIRE_BATCH_ENTRY_OVERHEAD + fl > LINK_BATCH_MAX)
            break;
        pieces[n++] = (wire_piece_t){d, fl};
        total += WIRE_BATCH_ENTRY_OVERHEAD + fl;
    }
    uint8_t *out;
    if (n < 2 || wire_encode_batch(pieces, n, &out, len) != 0)
        return NULL;
    *count = n;
    return out;
}

/* The next bulk entry may go: little enough waits unsent in the transport. Otherwise the
 * transport calls on_writable when it has let enough out. */
static bool bulk_may_go(link_t *l)
{
    return !l->tr->ops->backlog ||
           l->tr->ops->backlog(l->tr, LINK_BULK_BACKLOG) < LINK_BULK_BACKLOG;
}

/* Hand frames to the transport until it is full: every small frame first, then large ones
 * while the transport has room behind its window. */
static void flush(link_t *l)
{
    while (l->tr) {
        GBytes *b = g_queue_peek_head(&l->express);
        bulk_t *e = b ? NULL : g_queue_peek_head(&l->bulk);
        if (!b && (!e || !bulk_may_go(l)))
            return;
        size_t n, count = 1;
        const uint8_t *d = g_bytes_get_data(b ? b : e->data, &n);
        uint8_t *packed = b && l->batch ? pack(l, &n, &count) : NULL;
        int rc = l->tr->ops->send(l->tr, packed ? packed : d, n);
        free(packed);
        if (rc == BL_EAGAIN)
            return;
        if (rc) {
            session_failed(l, "send failed");
            return;
        }
        for (size_t i = 0; i < count; i++) {
            size_t fl;
            if (b) {
                b = g_queue_pop_head(&l->express);
                g_bytes_get_data(b, &fl);
                g_bytes_unref(b);
            } else {
                e = g_queue_pop_head(&l->bulk);
                g_bytes_get_data(e->data, &fl);
                bulk_done(l, e);
            }
            l->pending_bytes -= fl;
            l->stats.frames_out++;
        }
        l->stats.bytes_out += n;
    }
}

static gboolean flush_cb(gpointer p)
{
    link_t *l = p;
    l->flush_src = NULL;
    /* Senders stopped at the high-water mark wait for on_writable. The transport only
     * reports writable after it refused a send; when this deferred flush drains the
     * queue without a refusal, nobody else would tell them (a stall, found with a QoS 0
     * burst: the rest of it sat in memory until the next message came). */
    bool was_full = !link_can_send(l);
    flush(l);
    if (was_full && link_can_send(l) && l->ev.on_writable)
        l->ev.on_writable(l->ud, l);
    return G_SOURCE_REMOVE;
}

static void tr_writable(void *ud)
{
    link_t *l = ud;
    flush(l);
    if (link_can_send(l) && l->ev.on_writable)
        l->ev.on_writable(l->ud, l);
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
    const config_t *c = l->cfg;
    /* TURN's allocation already yields our server-reflexive address, and libnice drops
     * the STUN answer when STUN and TURN share host and port (gathering then stalls
     * ~2 s): skip a STUN server that is the TURN server. */
    bool stun_is_turn = c->stun_host && c->turn_host && !strcmp(c->stun_host, c->turn_host) &&
                        c->stun_port == c->turn_port;
    rtc_opts_t o = {
        .who = l->who,
        .offerer = offerer,
        .cert = l->cert,
        .peer_fingerprint = l->peer->fingerprint,
        .ice = {.stun_host = stun_is_turn ? NULL : c->stun_host,
                .stun_port = c->stun_port,
                .turn_host = c->turn_host,
                .turn_port = c->turn_port,
                .turn_username = c->turn_username,
                .turn_password = c->turn_password,
                .tcp = c->ice_tcp,
                .force_relay = c->force_relay,
                .send_host_candidates = c->send_host_candidates},
        .window = c->link_window,
    };
    transport_events_t ev = {.signal = tr_signal,
                             .on_step = tr_step,
                             .on_open = tr_open,
                             .on_failed = tr_failed,
                             .on_frame = tr_frame,
                             .on_writable = tr_writable};
    l->tr = rtc_new(l->ctx, &o, &ev, l);
    if (l->tr && l->rx_paused && l->tr->ops->pause_rx)
        l->tr->ops->pause_rx(l->tr, true);
    if (!l->tr)
        return BL_ENOMEM;
    l->t_attempt = l->t_step = bl_now_ms();
    l->timeout_src = timer(l, LINK_CONNECT_TIMEOUT_MS, timeout_cb);
    set_state(l, LINK_SIGNALLING);
    return 0;
}

static void start_session(link_t *l)
{
    drop_session(l);
    cancel(&l->retry_src);
    if (!l->signal_up) {
        set_state(l, LINK_WAITING);
        return;
    }
    new_sid(l->sid);
    l->t_last_offer = bl_now_ms();
    l->offer_for_restart = false;
    LOG_INFO(l->who, "offering session %s", l->sid);
    if (new_transport(l, true) || l->tr->ops->start(l->tr))
        session_failed(l, "cannot start the transport");
}

void link_signal_up(link_t *l)
{
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

static void answer_offer(link_t *l, const seal_msg_t *m)
{
    if (!strcmp(m->sid, l->sid))
        return; /* a repeat of the session we are in */
    if (l->tr)
        LOG_INFO(l->who, "peer started a new session %s, dropping %s", m->sid, l->sid);
    drop_session(l);
    snprintf(l->sid, sizeof(l->sid), "%s", m->sid);
    LOG_INFO(l->who, "answering session %s", l->sid);
    if (new_transport(l, false) || l->tr->ops->signal_in(l->tr, "offer", m->body))
        session_failed(l, "cannot answer the offer");
    else
        set_state(l, LINK_ICE);
}

void link_signal_in(link_t *l, const seal_msg_t *m)
{
    /* A session-changing message older than one we already acted on is a late
     * delivery (or a capture replayed to a site that never saw it): acting on it would
     * tear down a newer session. Timestamps are the peer's own clock, so only compared
     * with each other. */
    bool changes = !strcmp(m->type, "restart") || !strcmp(m->type, "offer");
    if (changes && m->ts_ms < l->peer_ts) {
        LOG_DEBUG(l->who, "ignored a late %s (session %s)", m->type, m->sid);
        return;
    }
    if (changes || (l->tr && !strcmp(m->sid, l->sid)))
        l->peer_ts = BL_MAX(l->peer_ts, m->ts_ms);
    if (!strcmp(m->type, "restart")) {
        if (!l->offerer)
            return;
        /* Honour it unless a session is already past the offer/answer exchange. A
         * request right after our offer most often means the peer subscribed just after
         * the offer went out (both sites started together): offer again at once. It may
         * also have crossed an offer the peer is about to answer; offering again then
         * only costs the peer a second answer. Only one such offer per spacing: a
         * request soon after one, or one that finds the link already open, is looked
         * at again when the spacing has passed, and answered with an offer if no answer
         * came (nothing, if the link is open then). */
        bool progressing = l->state >= LINK_ICE && l->state < LINK_OPEN;
        if (progressing)
            return;
        int64_t since = bl_now_ms() - l->t_last_offer;
        if (since < LINK_RESTART_SPACING_MS && (l->offer_for_restart || l->state == LINK_OPEN)) {
            cancel(&l->retry_src);
            l->retry_src = timer(l, (unsigned)(LINK_RESTART_SPACING_MS - since), recheck_cb);
            return;
        }
        if (since < LINK_RESTART_SPACING_MS)
            LOG_INFO(l->who, "peer asks for a session just after our offer (it may have "
                             "subscribed too late for it): offering again");
        else
            LOG_INFO(l->who, "peer asks for a new session");
        l->backoff_ms = LINK_BACKOFF_MIN_MS;
        start_session(l);
        l->offer_for_restart = true;
        return;
    }
    if (!strcmp(m->type, "offer")) {
        if (l->offerer) {
            LOG_WARN(l->who,
                     "peer sent an offer but we are the offerer (site names \"%s\" < "
                     "\"%s\"): is the peer configured with another name for us?",
                     l->cfg->site_name, l->peer->name);
            return;
        }
        answer_offer(l, m);
        return;
    }
    if (!l->tr || strcmp(m->sid, l->sid) != 0) {
        LOG_DEBUG(l->who, "ignored %s for session %s (current: %s)", m->type, m->sid,
                  l->sid[0] ? l->sid : "none");
        return;
    }
    if (!strcmp(m->type, "bye")) {
        session_failed(l, "peer closed the session");
        return;
    }
    if (!strcmp(m->type, "answer"))
        set_state(l, LINK_ICE);
    if (l->tr->ops->signal_in(l->tr, m->type, m->body) == BL_EINVAL)
        LOG_DEBUG(l->who, "transport refused a %s message", m->type);
}

/* The topic of a MSG frame (a copy), NULL for other frames. */
static char *msg_topic(const uint8_t *f, size_t len)
{
    if (len < WIRE_HEADER_LEN + 1 || f[1] != WIRE_MSG)
        return NULL;
    size_t at = (size_t)WIRE_HEADER_LEN + 1 + f[4] + 8; /* origin_len, origin, seq */
    if (len < at + 2)
        return NULL;
    size_t n = ((size_t)f[at] << 8) | f[at + 1];
    return len < at + 2 + n ? NULL : g_strndup((const char *)f + at + 2, n);
}

/* Queue a frame in bulk, cut in FRAG pieces when it is larger than the channel takes;
 * takes topic (counted in bulk_topics until the last piece is sent). */
static int bulk_push(link_t *l, const uint8_t *frame, size_t len, char *topic)
{
    size_t n = len <= WIRE_MAX_CHUNK ? 1 : wire_frag_count(len, WIRE_FRAG_CHUNK);
    uint32_t no = n > 1 ? ++l->frag_no : 0;
    bulk_t *e = NULL;
    for (size_t i = 0; i < n; i++) {
        uint8_t *piece;
        size_t plen = len;
        int rc = n > 1 ? wire_encode_frag(frame, len, WIRE_FRAG_CHUNK, no, i, &piece, &plen) : 0;
        if (rc) {
            g_free(topic);
            return rc;
        }
        e = g_new0(bulk_t, 1);
        e->data = n > 1 ? g_bytes_new_take(piece, plen) : g_bytes_new(frame, len);
        g_queue_push_tail(&l->bulk, e);
        l->pending_bytes += plen;
    }
    if (topic) {
        guint c = GPOINTER_TO_UINT(g_hash_table_lookup(l->bulk_topics, topic));
        g_hash_table_insert(l->bulk_topics, g_strdup(topic), GUINT_TO_POINTER(c + 1));
        e->topic = topic;
    }
    return 0;
}

int link_send_frame(link_t *l, const uint8_t *frame, size_t len)
{
    if (l->state != LINK_OPEN)
        return BL_ESTATE;
    l->counts.frames_out++;
    trace_count(l, frame, len, true);
    trace_start(l);
    bool small = len <= LINK_BATCH_FRAME_MAX;
    /* A small frame's topic matters only if some large message is queued: most of the
     * time no topic is looked at. */
    char *topic = !small || g_hash_table_size(l->bulk_topics) ? msg_topic(frame, len) : NULL;
    if (small && !(topic && g_hash_table_contains(l->bulk_topics, topic))) {
        g_free(topic);
        g_queue_push_tail(&l->express, g_bytes_new(frame, len));
        l->pending_bytes += len;
    } else {
        int rc = bulk_push(l, frame, len, topic);
        if (rc)
            return rc;
    }
    if (!l->batch) {
        flush(l);
    } else if (!l->flush_src) {
        /* Right after the callback that is queueing, before other I/O: everything it
         * queues leaves together. */
        l->flush_src = g_idle_source_new();
        g_source_set_priority(l->flush_src, G_PRIORITY_HIGH);
        g_source_set_callback(l->flush_src, flush_cb, l, NULL);
        g_source_attach(l->flush_src, l->ctx);
        g_source_unref(l->flush_src);
    }
    return 0;
}

void link_set_peer_features(link_t *l, uint32_t features)
{
    l->batch = (features & WIRE_FEAT_BATCH) != 0;
}

bool link_can_send(const link_t *l)
{
    return l->state == LINK_OPEN && l->pending_bytes < LINK_HIGH_WATER;
}

void link_pause_rx(link_t *l, bool pause)
{
    if (!l || l->rx_paused == pause)
        return;
    l->rx_paused = pause;
    if (l->tr && l->tr->ops->pause_rx)
        l->tr->ops->pause_rx(l->tr, pause);
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
    return &l->stats;
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
    link_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->ctx = ctx;
    l->cfg = cfg;
    l->peer = peer;
    l->cert = cert;
    l->ev = *ev;
    l->ud = ud;
    snprintf(l->who, sizeof(l->who), "peer %s", peer->name);
    /* DESIGN.md: the side with the smaller site name offers and controls ICE. */
    l->offerer = strcmp(cfg->site_name, peer->name) < 0;
    l->backoff_ms = LINK_BACKOFF_MIN_MS;
    l->state_wall_ms = bl_wall_ms();
    g_queue_init(&l->express);
    g_queue_init(&l->bulk);
    l->bulk_topics = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    wire_reasm_init(&l->reasm, cfg->max_message_size + WIRE_MSG_MAX_OVERHEAD);
    LOG_INFO(l->who, "configured, we are the %s", l->offerer ? "offerer" : "answerer");
    return l;
}

void link_free(link_t *l)
{
    if (!l)
        return;
    cancel(&l->retry_src);
    l->ev.on_down = NULL;
    l->ev.on_state = NULL;
    drop_session(l);
    wire_reasm_clear(&l->reasm);
    g_hash_table_destroy(l->bulk_topics);
    free(l);
}
