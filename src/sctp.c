/* SPDX-License-Identifier: MIT */
/* sctp.c - SCTP over DTLS with usrsctp (AF_CONN) and WebRTC data channels (RFC 8831,
 * DCEP RFC 8832), all on one GMainContext.
 *
 * usrsctp runs without threads: its timers are driven by a GLib source, every 10 ms while
 * an association may have a timer running and every 5 s otherwise (SCTP_TICK_MS). Each sctp_t is
 * registered with usrsctp under a small integer id, never a pointer; usrsctp's callbacks look the
 * id up and ignore ids that are gone, so a packet or upcall after sctp_free is harmless.
 *
 * usrsctp calls back from deep inside itself (conn_output, the socket upcall). Those
 * callbacks only send a packet or schedule `work`, an idle source; all reading and every
 * sctp_events_t callback happen there, outside usrsctp. Re-entrancy: entry points enter
 * the guard (loop.h), and sctp_free from inside a callback defers the final free.
 *
 * Over 600 lines: usrsctp's socket API wants its process-wide setup, the per-socket
 * options that fit a WAN, DCEP on the wire, reassembly, timers and window figures kept
 * together around one association; the pure part (DCEP messages) is in dcep.c. */
#include "sctp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <usrsctp.h>

#include "dcep.h"
#include "log.h"
#include "loop.h"

#define SCTP_PORT 5000
#define SCTP_COMMON_HEADER 12 /* ports, verification tag, checksum at offset 8 */
/* An SCTP packet must fit in one DTLS record in one 1200-byte datagram: DTLS adds 13
 * bytes of header and at most 24 of AEAD (dtls.c allows AEAD suites only), leaving
 * 1163. usrsctp adds the 12-byte common header on top of spp_pathmtu for AF_CONN, so
 * packets are at most 1150 + 12 = 1162 bytes. test_datachannel checks the bound. */
#define SCTP_PATH_MTU 1150
/* usrsctp runs no timer of its own here (usrsctp_init_nothreads): we call it every
 * SCTP_TICK_MS while some association may have a timer running, i.e. while data waits
 * for an acknowledgement, one is being set up, or a packet went either way less than
 * SCTP_BUSY_MS ago (a delayed SACK is due within SCTP_SACK_DELAY_MS of the packet it
 * answers). Otherwise every SCTP_IDLE_TICK_MS only: what an idle association still times
 * is its heartbeat (every 30 s), which may then leave a few seconds late. Heartbeats stay
 * on although ICE consent checks watch the path too: after usrsctp gave a path up (a peer
 * that answered nothing for a while, t34), a heartbeat is what makes it use the path
 * again; without one, the rest of the send queue never left. */
#define SCTP_TICK_MS 10
#define SCTP_BUSY_MS 50
#define SCTP_IDLE_TICK_MS 5000
/* A tick that comes late because the loop was busy elsewhere (a long commit, a burst from
 * the broker) must not fire SCTP's timers as if the peer had been silent all that time:
 * its SACKs may be waiting, unread, in the UDP socket, and a spurious retransmission
 * timeout cuts the congestion window to one packet. Lateness counts only up to this
 * much; the timers run on the loop's time, which stands still while the loop is stuck. */
#define SCTP_LATE_CREDIT_MS 10
#define SCTP_STREAMS 1024
#define SCTP_DEFAULT_MAX_MESSAGE 262144
#define SCTP_DEFAULT_WINDOW (1024 * 1024)
/* The receiver acknowledges every second packet at once (RFC 9260 6.2), a lone one after
 * this delay. usrsctp's 200 ms default equals our minimum retransmission timeout: over a
 * WAN a lone packet (the last of a burst, an ACK frame) was then acknowledged after the
 * sender's timer had already fired, and each such spurious timeout cut the congestion
 * window to one packet (docs/BENCH.md, WAN round). 20 ms, like libdatachannel. */
#define SCTP_SACK_DELAY_MS 20
/* The initial window and the most packets one send or SACK lets go at once: 10, as
 * TCP's initial window (RFC 6928). */
#define SCTP_INITIAL_CWND_PACKETS 10
/* After this long without a send, the congestion state restarts; a window unused this
 * long is not kept (restart_after_idle). */
#define SCTP_IDLE_RESTART_US (1000 * 1000)
#define SCTP_IDLE_KEEP_US (5 * 60 * G_GINT64_CONSTANT(1000000))
/* usrsctp counts the chunks an association holds, each way, and refuses to send or drops
 * what arrives past sctp_max_chunks_on_queue (default 512, ~580 KiB of full packets: the
 * real window at 150 ms was that, not the buffers). Raised so that a whole window of
 * chunks this small or larger fits. */
#define SCTP_WINDOW_CHUNK 256

/* Not in usrsctp.h but part of its socket API (netinet/sctp.h, sctp_uio.h): bytes
 * queued for sending on the association. */
#ifndef SCTP_GET_SNDBUF_USE
#define SCTP_GET_SNDBUF_USE 0x00001101
#endif
/* ...and the association's congestion control module (netinet/sctp.h): setting it, even
 * to the one it has, starts its congestion state afresh (restart_after_idle). */
#ifndef SCTP_PLUGGABLE_CC
#define SCTP_PLUGGABLE_CC 0x00001202
#endif
struct bl_sctp_sockstat {
    sctp_assoc_t ss_assoc_id;
    uint32_t ss_total_sndbuf;
    uint32_t ss_total_recv_buf;
};

typedef enum { ST_NEW, ST_CONNECTING, ST_CONNECTED, ST_CLOSED } sctp_state_t;

typedef struct chan {
    uint16_t sid;
    bool open;        /* ours: ACK received; theirs: OPEN accepted */
    bool ack_pending; /* theirs: our ACK did not fit in the send buffer yet */
    uint8_t type;     /* DCEP channel_type */
    uint32_t reliability;
    char *label;
} chan_t;

struct sctp {
    GMainContext *ctx;
    char who[80];
    bool dtls_client;
    size_t max_message;
    sctp_events_t ev;
    void *ud;

    uintptr_t id;
    struct socket *sock;
    sctp_state_t state;
    uint16_t out_streams, in_streams;
    uint16_t next_sid;
    GHashTable *chans; /* sid -> chan_t */
    GSource *work;
    bool rx_paused; /* sctp_pause_rx: leave data in usrsctp's receive buffer */
    bool want_writable;
    size_t backlog_below; /* sctp_backlog: on_writable once the backlog is under this */
    size_t sndbuf;
    gint64 sent_us;       /* the last sctp_send */
    gint64 used_us;       /* when at least half the window was last in use */
    gint64 idle_keep_us;  /* opts.idle_keep_ms */
    size_t send_buffer;   /* opts.send_buffer */
    uint64_t idle_resets; /* restart_after_idle */

    uint8_t *rbuf; /* one usrsctp_recvv, max_message bytes */
    /* Reassembly of a message delivered in pieces (no MSG_EOR). */
    bool asm_active, asm_drop;
    uint16_t asm_sid;
    uint32_t asm_ppid;
    uint8_t *asm_buf;
    size_t asm_len, asm_cap;
    uint64_t dropped_oversize;

    loop_guard_t guard; /* entry points on the stack; sctp_free while inside waits */
};

static struct {
    bool init;
    GMainContext *ctx;
    GSource *timer;
    gint64 last_us;    /* usrsctp's clock has been told of time up to here */
    gint64 ready_us;   /* the tick is due then */
    gint64 active_us;  /* last packet in or out */
    bool fast;         /* ticking every SCTP_TICK_MS */
    bool stale;        /* the tick went idle since usrsctp's clock was last moved */
    GHashTable *by_id; /* id -> sctp_t */
    uintptr_t next_id;
    uint64_t packets_out, packets_in; /* usrsctp does not count AF_CONN packets */
} g;

static void destroy(void *obj);
static void tick_activity(void);
static void schedule_work(sctp_t *s);

/* ---- process-wide usrsctp ---------------------------------------------------------------- */

static sctp_t *lookup(void *addr)
{
    if (!g.by_id)
        return NULL;
    sctp_t *s = g_hash_table_lookup(g.by_id, addr);
    return s && !s->guard.freed ? s : NULL;
}

/* usrsctp wants a packet sent: hand it to DTLS. A lost packet is retransmitted by
 * SCTP, so failures are not reported back. */
static int conn_output(void *addr, void *buf, size_t len, uint8_t tos, uint8_t set_df)
{
    (void)tos;
    (void)set_df;
    sctp_t *s = lookup(addr);
    g.packets_out++;
    tick_activity();
    if (!s || !s->ev.send || len < SCTP_COMMON_HEADER)
        return 0;
    /* Checksums are "offloaded" (sctp_global_init): usrsctp leaves the field 0, and the
     * peer may check it (RFC 9260 6.8), so it is filled in here. */
    uint8_t *p = buf;
    memset(p + 8, 0, 4);
    uint32_t crc = usrsctp_crc32c(p, len); /* already in network byte order */
    memcpy(p + 8, &crc, 4);
    s->ev.send(s->ud, buf, len);
    return 0;
}

static void upcall(struct socket *so, void *arg, int flags)
{
    (void)so;
    (void)flags;
    sctp_t *s = lookup(arg);
    if (s)
        schedule_work(s);
}

static void tick_arm(gint64 now, bool fast)
{
    g.fast = fast;
    g.stale = g.stale || !fast;
    g.ready_us = now + (fast ? SCTP_TICK_MS : SCTP_IDLE_TICK_MS) * 1000LL;
    g_source_set_ready_time(g.timer, g.ready_us);
}

/* A packet went in or out: usrsctp may have started a timer. */
static void tick_activity(void)
{
    g.active_us = g_get_monotonic_time();
    if (g.timer && !g.fast)
        tick_arm(g.active_us, true);
}

static bool note_window_use(sctp_t *s, gint64 now);

/* Tell usrsctp's clock that up to `cap` ms of the time since it was last moved passed. */
static void clock_advance(gint64 now, gint64 cap)
{
    gint64 ms = (now - g.last_us) / 1000;
    g.stale = false;
    if (ms <= 0)
        return;
    g.last_us += ms * 1000; /* keep the remainder for the next time */
    usrsctp_handle_timers((uint32_t)BL_MIN(ms, cap));
}

/* First thing at every entry that hands usrsctp something (data, a packet, a connect, a
 * read that may open the window, a stream reset): when the tick went idle since the
 * clock was last moved, usrsctp's clock stood still, up to SCTP_IDLE_TICK_MS, and a timer
 * started now would count from then (sctp_callout.c: c_time = ticks + to_ticks) and fire
 * at the next tick, which moves the clock by the whole pause. The first burst after a
 * pause had its retransmission timer expire at once: the RTO doubled, an error counted
 * against the path, and chunks older than the smoothed round trip (a few ms on a LAN)
 * were resent with the window cut to one packet. So the clock is brought to now first.
 * Only after idling: nothing was in flight then, so no timer runs that a SACK still
 * unread could stop (the case SCTP_LATE_CREDIT_MS guards while busy). Never from inside
 * usrsctp (conn_output, upcall). */
static void clock_catch_up(void)
{
    if (g.timer && g.stale)
        clock_advance(g_get_monotonic_time(), G_MAXINT64);
}

static gboolean tick(gpointer unused)
{
    (void)unused;
    gint64 now = g_get_monotonic_time();
    clock_advance(now, (g.ready_us - g.last_us) / 1000 + SCTP_LATE_CREDIT_MS);
    if (!g.timer) /* a callback of usrsctp may have freed the last association */
        return G_SOURCE_CONTINUE;
    /* Busy (see SCTP_TICK_MS) while some association may have a timer running: a packet
     * lately, one being set up, or data buffered. */
    bool busy = now - g.active_us < SCTP_BUSY_MS * 1000LL;
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, g.by_id);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        sctp_t *s = v;
        if (note_window_use(s, now) || s->state == ST_CONNECTING)
            busy = true;
    }
    tick_arm(now, busy);
    return G_SOURCE_CONTINUE;
}

static gboolean tick_dispatch(GSource *src, GSourceFunc cb, gpointer ud)
{
    (void)src;
    return cb(ud);
}

static GSourceFuncs tick_funcs = {.dispatch = tick_dispatch};

static void timer_update(void)
{
    guint live = g.by_id ? g_hash_table_size(g.by_id) : 0;
    if (live && !g.timer) {
        g.last_us = g_get_monotonic_time();
        g.timer = g_source_new(&tick_funcs, sizeof(GSource));
        g_source_set_callback(g.timer, tick, NULL, NULL);
        tick_arm(g.last_us, true);
        g_source_attach(g.timer, g.ctx);
    } else if (!live && g.timer) {
        g_source_destroy(g.timer);
        g_source_unref(g.timer);
        g.timer = NULL;
    }
}

int sctp_global_init(GMainContext *ctx)
{
    if (g.init)
        return 0;
    g.ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    g.by_id = g_hash_table_new(g_direct_hash, g_direct_equal);
    if (g.next_id == 0)
        g.next_id = 1; /* 0 would be a NULL sconn_addr */
    usrsctp_init_nothreads(0, conn_output, NULL);
    /* Browsers and libdatachannel turn ECN off on data channels; there is no IP header
     * underneath to carry it anyway. */
    usrsctp_sysctl_set_sctp_ecn_enable(0);
    /* Every SCTP packet travels inside a DTLS record whose AEAD tag already covers each
     * byte (RFC 8261): checking the CRC32c of what comes in again costs a pass over the
     * data and proves nothing more. Outgoing packets still carry it (conn_output). */
    usrsctp_enable_crc32c_offload();
    usrsctp_sysctl_set_sctp_pr_enable(1); /* RFC 8831 6.1: partial reliability */
    /* RFC 4960 6.1's burst rule, as usrsctp applies it by default, sets cwnd to the data
     * in flight plus 4 packets whenever the sender has less than that to send: a sender
     * that feeds SCTP in turns of the loop kept losing its window, and every burst after
     * a pause started again from 4 packets. Off, usrsctp caps each send at max_burst
     * packets (below) without touching cwnd. */
    usrsctp_sysctl_set_sctp_use_cwnd_based_maxburst(0);
    /* 10 packets, as TCP (RFC 6928). usrsctp caps the initial window at max_burst
     * packets (4 by default), so that goes to 10 too: a send call, or a SACK, lets at
     * most 10 packets go at once. */
    usrsctp_sysctl_set_sctp_initial_cwnd(SCTP_INITIAL_CWND_PACKETS);
    usrsctp_sysctl_set_sctp_max_burst_default(SCTP_INITIAL_CWND_PACKETS);
    g.init = true;
    return 0;
}

void sctp_global_finish(void)
{
    if (!g.init || (g.by_id && g_hash_table_size(g.by_id)))
        return;
    /* Closed associations may still hold timers; let usrsctp run them down. */
    int i = 0;
    for (; i < 300 && usrsctp_finish() != 0; i++) {
        usrsctp_handle_timers(SCTP_TICK_MS);
        g_usleep(1000);
    }
    if (i == 300) {
        LOG_WARN("sctp", "usrsctp_finish: endpoints still open, usrsctp stays initialised");
        return;
    }
    LOG_DEBUG("sctp", "usrsctp finished after %d rounds", i);
    timer_update();
    g_hash_table_destroy(g.by_id);
    g.by_id = NULL;
    g_main_context_unref(g.ctx);
    uintptr_t next_id = g.next_id; /* ids stay unique for the life of the process */
    uint64_t out = g.packets_out, in = g.packets_in;
    memset(&g, 0, sizeof(g));
    g.next_id = next_id;
    g.packets_out = out;
    g.packets_in = in;
}

/* ---- events ---------------------------------------------------------------------------- */

static void closed(sctp_t *s, const char *why)
{
    if (s->state == ST_CLOSED || s->guard.freed)
        return;
    s->state = ST_CLOSED;
    LOG_WARN(s->who, "sctp: association closed: %s", why);
    if (s->ev.on_closed)
        s->ev.on_closed(s->ud, why);
}

/* ---- sending ---------------------------------------------------------------------------- */

static int send_raw(sctp_t *s, const chan_t *c, uint32_t ppid, const void *buf, size_t len,
                    bool control)
{
    struct sctp_sendv_spa spa;
    memset(&spa, 0, sizeof(spa));
    spa.sendv_flags = SCTP_SEND_SNDINFO_VALID;
    spa.sendv_sndinfo.snd_sid = c->sid;
    spa.sendv_sndinfo.snd_ppid = htonl(ppid);
    spa.sendv_sndinfo.snd_flags = SCTP_EOR;
    /* RFC 8832 6: DCEP messages are always ordered and reliable. */
    uint8_t base = c->type & (uint8_t)~DCEP_UNORDERED_BIT;
    if (!control && (c->type & DCEP_UNORDERED_BIT))
        spa.sendv_sndinfo.snd_flags |= SCTP_UNORDERED;
    if (!control && base != DCEP_RELIABLE) {
        spa.sendv_flags |= SCTP_SEND_PRINFO_VALID;
        spa.sendv_prinfo.pr_policy =
            base == DCEP_PARTIAL_RELIABLE_REXMIT ? SCTP_PR_SCTP_RTX : SCTP_PR_SCTP_TTL;
        spa.sendv_prinfo.pr_value = c->reliability;
    }
    ssize_t n =
        usrsctp_sendv(s->sock, buf, len, NULL, 0, &spa, (socklen_t)sizeof(spa), SCTP_SENDV_SPA, 0);
    if (n >= 0)
        return 0;
    if (errno == EWOULDBLOCK || errno == EAGAIN || errno == ENOBUFS) {
        s->want_writable = true;
        return BL_EAGAIN;
    }
    if (errno == EMSGSIZE)
        return BL_ETOOBIG;
    LOG_WARN(s->who, "sctp: send on stream %u failed: %s", c->sid, strerror(errno));
    return BL_EIO;
}

/* RFC 8831 6.7: a channel is closed by resetting its outgoing stream. */
static void reset_stream(sctp_t *s, uint16_t sid)
{
    clock_catch_up();
    size_t n = sizeof(struct sctp_reset_streams) + sizeof(uint16_t);
    struct sctp_reset_streams *srs = g_malloc0(n);
    srs->srs_flags = SCTP_STREAM_RESET_OUTGOING;
    srs->srs_number_streams = 1;
    srs->srs_stream_list[0] = sid;
    if (usrsctp_setsockopt(s->sock, IPPROTO_SCTP, SCTP_RESET_STREAMS, srs, (socklen_t)n) < 0)
        LOG_DEBUG(s->who, "sctp: reset of stream %u failed: %s", sid, strerror(errno));
    g_free(srs);
}

static void chan_free(gpointer p)
{
    chan_t *c = p;
    g_free(c->label);
    g_free(c);
}

static chan_t *chan_add(sctp_t *s, uint16_t sid, uint8_t type, uint32_t rel, const char *label)
{
    chan_t *c = g_new0(chan_t, 1);
    c->sid = sid;
    c->type = type;
    c->reliability = rel;
    c->label = g_strdup(label ? label : "");
    g_hash_table_insert(s->chans, GUINT_TO_POINTER(sid), c);
    return c;
}

/* ---- DCEP (RFC 8832) -------------------------------------------------------------------- */

static bool peer_parity(const sctp_t *s, uint16_t sid)
{
    /* RFC 8832 6: the DTLS client opens even streams, the server odd ones. */
    return (sid & 1) == (s->dtls_client ? 1 : 0);
}

static void send_ack(sctp_t *s, chan_t *c)
{
    uint8_t ack[1];
    size_t n = dcep_build_ack(ack);
    c->ack_pending = send_raw(s, c, DCEP_PPID, ack, n, true) == BL_EAGAIN;
}

static void dcep_open_in(sctp_t *s, uint16_t sid, const dcep_open_t *o)
{
    if (!peer_parity(s, sid) || g_hash_table_contains(s->chans, GUINT_TO_POINTER(sid)) ||
        sid >= s->out_streams) {
        /* RFC 8832 6: refuse by resetting the stream, never ACK. */
        LOG_WARN(s->who,
                 "sctp: refusing DATA_CHANNEL_OPEN \"%s\" on stream %u (in use, wrong "
                 "parity or out of range)",
                 o->label, sid);
        reset_stream(s, sid);
        return;
    }
    chan_t *c = chan_add(s, sid, o->channel_type, o->reliability, o->label);
    c->open = true;
    send_ack(s, c);
    LOG_INFO(s->who, "sctp: peer opened channel \"%s\" on stream %u (type 0x%02x)", c->label, sid,
             c->type);
    if (s->ev.on_channel_open)
        s->ev.on_channel_open(s->ud, sid, c->label);
}

static void dcep_in(sctp_t *s, uint16_t sid, const uint8_t *buf, size_t len)
{
    dcep_open_t o;
    int rc = dcep_parse(buf, len, &o);
    if (rc == DCEP_MSG_OPEN) {
        dcep_open_in(s, sid, &o);
        dcep_open_clear(&o);
    } else if (rc == DCEP_MSG_ACK) {
        chan_t *c = g_hash_table_lookup(s->chans, GUINT_TO_POINTER(sid));
        if (!c || c->open) {
            LOG_DEBUG(s->who, "sctp: unexpected DATA_CHANNEL_ACK on stream %u", sid);
            return;
        }
        c->open = true;
        LOG_INFO(s->who, "sctp: channel \"%s\" open on stream %u", c->label, sid);
        if (s->ev.on_channel_open)
            s->ev.on_channel_open(s->ud, sid, c->label);
    } else {
        LOG_WARN(s->who, "sctp: bad DCEP message on stream %u (%zu bytes): %s", sid, len,
                 bl_strerror(rc));
    }
}

/* ---- receiving -------------------------------------------------------------------------- */

static void deliver(sctp_t *s, uint16_t sid, uint32_t ppid, const uint8_t *buf, size_t len)
{
    if (ppid == DCEP_PPID) {
        dcep_in(s, sid, buf, len);
        return;
    }
    chan_t *c = g_hash_table_lookup(s->chans, GUINT_TO_POINTER(sid));
    if (!c || !c->open) {
        LOG_DEBUG(s->who, "sctp: %zu bytes on stream %u without an open channel, dropped", len,
                  sid);
        return;
    }
    switch (ppid) {
    case DCEP_PPID_STRING_EMPTY:
    case DCEP_PPID_BINARY_EMPTY:
        len = 0; /* RFC 8831 6.6: the one byte sent for an empty message is not data */
        /* fall through */
    case DCEP_PPID_STRING:
    case DCEP_PPID_BINARY:
        if (s->ev.on_message)
            s->ev.on_message(s->ud, sid, ppid, len ? buf : (const uint8_t *)"", len);
        break;
    default:
        LOG_DEBUG(s->who, "sctp: message with unsupported PPID %u on stream %u dropped", ppid, sid);
    }
}

static void asm_reset(sctp_t *s)
{
    s->asm_active = s->asm_drop = false;
    s->asm_len = 0;
}

/* One piece of a message; `eor` marks its end. Pieces come in order and, without
 * I-DATA (RFC 8260, not enabled), one message at a time. */
static void data_in(sctp_t *s, uint16_t sid, uint32_t ppid, const uint8_t *p, size_t n, bool eor)
{
    if (!s->asm_active && eor) {
        if (n > s->max_message) {
            s->dropped_oversize++;
            LOG_WARN(s->who, "sctp: dropped a %zu-byte message on stream %u: over the %zu limit", n,
                     sid, s->max_message);
            return;
        }
        deliver(s, sid, ppid, p, n);
        return;
    }
    if (s->asm_active && (s->asm_sid != sid || s->asm_ppid != ppid)) {
        LOG_WARN(s->who, "sctp: partial message on stream %u interrupted, dropped", s->asm_sid);
        asm_reset(s);
    }
    if (!s->asm_active) {
        s->asm_active = true;
        s->asm_sid = sid;
        s->asm_ppid = ppid;
    }
    if (!s->asm_drop && s->asm_len + n > s->max_message) {
        s->asm_drop = true;
        s->dropped_oversize++;
        LOG_WARN(s->who, "sctp: dropping a message on stream %u: over the %zu-byte limit", sid,
                 s->max_message);
    }
    if (!s->asm_drop && n) {
        if (s->asm_len + n > s->asm_cap) {
            size_t cap = BL_MAX(s->asm_cap * 2, s->asm_len + n);
            s->asm_buf = g_realloc(s->asm_buf, BL_MIN(cap, s->max_message));
            s->asm_cap = BL_MIN(cap, s->max_message);
        }
        memcpy(s->asm_buf + s->asm_len, p, n);
        s->asm_len += n;
    }
    if (eor) {
        bool drop = s->asm_drop;
        size_t len = s->asm_len;
        asm_reset(s);
        if (!drop)
            deliver(s, sid, ppid, s->asm_buf, len);
    }
}

/* RFC 8831 6.7: the peer reset its outgoing stream, i.e. closed the channel (or refused
 * ours). Close our side too. The one channel this daemon uses is the link itself, so
 * its loss is reported as the association closing. */
static void stream_reset_in(sctp_t *s, const struct sctp_stream_reset_event *e, size_t len)
{
    if (!(e->strreset_flags & SCTP_STREAM_RESET_INCOMING_SSN) ||
        (e->strreset_flags & (SCTP_STREAM_RESET_DENIED | SCTP_STREAM_RESET_FAILED)))
        return;
    size_t n = (len - sizeof(*e)) / sizeof(uint16_t);
    for (size_t i = 0; i < n && !s->guard.freed; i++) {
        uint16_t sid = e->strreset_stream_list[i];
        chan_t *c = g_hash_table_lookup(s->chans, GUINT_TO_POINTER(sid));
        if (!c)
            continue;
        char why[160];
        snprintf(why, sizeof(why), "peer closed channel \"%s\" (stream %u)", c->label, sid);
        reset_stream(s, sid);
        g_hash_table_remove(s->chans, GUINT_TO_POINTER(sid));
        closed(s, why);
    }
}

static void assoc_change(sctp_t *s, const struct sctp_assoc_change *ac)
{
    switch (ac->sac_state) {
    case SCTP_COMM_UP:
        if (s->state != ST_CONNECTING)
            return;
        s->state = ST_CONNECTED;
        s->out_streams = ac->sac_outbound_streams;
        s->in_streams = ac->sac_inbound_streams;
        LOG_INFO(s->who, "sctp: association up (%u/%u streams)", s->out_streams, s->in_streams);
        if (s->ev.on_connected)
            s->ev.on_connected(s->ud);
        break;
    case SCTP_COMM_LOST:
        closed(s, "association lost (peer abort or timeout)");
        break;
    case SCTP_RESTART:
        closed(s, "peer restarted the association");
        break;
    case SCTP_SHUTDOWN_COMP:
        closed(s, "association shut down");
        break;
    case SCTP_CANT_STR_ASSOC:
        closed(s, "could not establish the association");
        break;
    default:
        break;
    }
}

static void notification_in(sctp_t *s, const uint8_t *buf, size_t len)
{
    const union sctp_notification *n = (const void *)buf;
    if (len < sizeof(n->sn_header) || n->sn_header.sn_length > len)
        return;
    switch (n->sn_header.sn_type) {
    case SCTP_ASSOC_CHANGE:
        if (len >= sizeof(n->sn_assoc_change))
            assoc_change(s, &n->sn_assoc_change);
        break;
    case SCTP_STREAM_RESET_EVENT:
        if (len >= sizeof(n->sn_strreset_event))
            stream_reset_in(s, &n->sn_strreset_event, n->sn_header.sn_length);
        break;
    case SCTP_SENDER_DRY_EVENT:
        break; /* check_writable runs after every batch */
    case SCTP_SEND_FAILED_EVENT:
        if (len >= sizeof(n->sn_send_failed_event))
            LOG_DEBUG(s->who, "sctp: message on stream %u abandoned",
                      n->sn_send_failed_event.ssfe_info.snd_sid);
        break;
    default:
        break;
    }
}

/* One usrsctp_recvv; false when nothing more is to be read now. */
static bool read_one(sctp_t *s)
{
    struct sctp_rcvinfo rcv;
    socklen_t infolen = sizeof(rcv);
    unsigned int infotype = 0;
    int flags = 0;
    struct sockaddr_conn from;
    socklen_t fromlen = sizeof(from);
    memset(&rcv, 0, sizeof(rcv));
    ssize_t n = usrsctp_recvv(s->sock, s->rbuf, s->max_message, (struct sockaddr *)&from, &fromlen,
                              &rcv, &infolen, &infotype, &flags);
    if (n < 0) {
        if (errno != EWOULDBLOCK && errno != EAGAIN && s->state != ST_NEW)
            closed(s, strerror(errno));
        return false;
    }
    if (n == 0 && !(flags & MSG_NOTIFICATION)) {
        if (s->state == ST_CONNECTED)
            closed(s, "association closed by peer");
        return false;
    }
    if (flags & MSG_NOTIFICATION)
        notification_in(s, s->rbuf, (size_t)n);
    else if (infotype == SCTP_RECVV_RCVINFO)
        data_in(s, rcv.rcv_sid, ntohl(rcv.rcv_ppid), s->rbuf, (size_t)n, flags & MSG_EOR);
    return true;
}

static void check_writable(sctp_t *s)
{
    if ((!s->want_writable && !s->backlog_below) || s->state != ST_CONNECTED || s->guard.freed)
        return;
    bool ready = false;
    if (s->want_writable) {
        /* Retry ACKs first: they are part of opening a channel. */
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, s->chans);
        while (g_hash_table_iter_next(&it, &k, &v))
            if (((chan_t *)v)->ack_pending)
                send_ack(s, v);
        ready = sctp_buffered(s) <= s->sndbuf / 2;
    }
    /* Upcalls come after every packet in (usrsctp calls it when the socket is writable or
     * readable), so a SACK that let the backlog out is seen here. */
    if (!ready && s->backlog_below && sctp_backlog(s, 0) < s->backlog_below)
        ready = true;
    if (ready) {
        s->want_writable = false;
        s->backlog_below = 0;
        if (s->ev.on_writable)
            s->ev.on_writable(s->ud);
    }
}

static gboolean work_fire(gpointer p)
{
    sctp_t *s = p;
    loop_enter(&s->guard);
    g_source_unref(s->work);
    s->work = NULL;
    clock_catch_up();
    /* Bounded so one busy association cannot starve the rest of the loop. */
    for (int i = 0;
         i < 256 && !s->guard.freed && s->state != ST_CLOSED && !s->rx_paused && read_one(s); i++)
        ;
    if (!s->guard.freed && s->state != ST_CLOSED && !s->rx_paused &&
        (usrsctp_get_events(s->sock) & SCTP_EVENT_READ))
        schedule_work(s);
    check_writable(s);
    loop_leave_destroy(&s->guard, destroy, s);
    return G_SOURCE_REMOVE;
}

static void schedule_work(sctp_t *s)
{
    if (s->work || s->guard.freed)
        return;
    s->work = g_idle_source_new();
    /* Default, not idle, priority: a source that stays ready at default priority (a
     * socket of a freed libnice agent nobody reads, ~1.5 s per teardown) would starve
     * an idle one and hold back every SCTP event, e.g. the association coming up. */
    g_source_set_priority(s->work, G_PRIORITY_DEFAULT);
    g_source_set_callback(s->work, work_fire, s, NULL);
    g_source_attach(s->work, s->ctx);
}

void sctp_pause_rx(sctp_t *s, bool pause)
{
    if (!s || s->rx_paused == pause)
        return;
    s->rx_paused = pause;
    if (!pause)
        schedule_work(s); /* what waited in the buffer */
}

/* ---- setup ------------------------------------------------------------------------------ */

static int setopt(sctp_t *s, int level, int name, const void *val, socklen_t len, const char *what)
{
    if (usrsctp_setsockopt(s->sock, level, name, val, len) == 0)
        return 0;
    LOG_ERROR(s->who, "sctp: setsockopt %s: %s", what, strerror(errno));
    return BL_EIO;
}

static int configure(sctp_t *s)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* close = ABORT, no lingering */
    struct sctp_assoc_value reset = {.assoc_id = SCTP_FUTURE_ASSOC,
                                     .assoc_value = SCTP_ENABLE_RESET_STREAM_REQ};
    struct sctp_initmsg init = {.sinit_num_ostreams = SCTP_STREAMS,
                                .sinit_max_instreams = SCTP_STREAMS};
    /* RFC 4960's 1 s minimum RTO makes every lost tail packet cost a second; like TCP on
     * Linux (and libdatachannel) use 200 ms, start at 1 s (RFC 6298 2.1), cap at 10 s so
     * a path that comes back is used again soon. */
    struct sctp_rtoinfo rto = {.srto_assoc_id = SCTP_FUTURE_ASSOC,
                               .srto_initial = 1000,
                               .srto_max = 10000,
                               .srto_min = 200};
    struct sctp_paddrparams pp;
    int one = 1;
    int buf = (int)s->sndbuf;
    memset(&pp, 0, sizeof(pp));
    pp.spp_assoc_id = SCTP_FUTURE_ASSOC;
    pp.spp_flags = SPP_PMTUD_DISABLE;
    pp.spp_pathmtu = SCTP_PATH_MTU;
    int rc = usrsctp_set_non_blocking(s->sock, 1) ? BL_EIO : 0;
    rc = rc ? rc : setopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg), "SO_LINGER");
    rc = rc ? rc : setopt(s, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf), "SO_SNDBUF");
    rc = rc ? rc : setopt(s, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf), "SO_RCVBUF");
    rc = rc ? rc
            : setopt(s, IPPROTO_SCTP, SCTP_ENABLE_STREAM_RESET, &reset, sizeof(reset),
                     "SCTP_ENABLE_STREAM_RESET");
    rc = rc ? rc : setopt(s, IPPROTO_SCTP, SCTP_NODELAY, &one, sizeof(one), "SCTP_NODELAY");
    rc = rc ? rc : setopt(s, IPPROTO_SCTP, SCTP_RECVRCVINFO, &one, sizeof(one), "RECVRCVINFO");
    rc = rc ? rc : setopt(s, IPPROTO_SCTP, SCTP_INITMSG, &init, sizeof(init), "SCTP_INITMSG");
    rc = rc ? rc : setopt(s, IPPROTO_SCTP, SCTP_RTOINFO, &rto, sizeof(rto), "SCTP_RTOINFO");
    rc = rc ? rc : setopt(s, IPPROTO_SCTP, SCTP_PEER_ADDR_PARAMS, &pp, sizeof(pp), "PMTU");
    struct sctp_sack_info sack = {
        .sack_assoc_id = SCTP_FUTURE_ASSOC, .sack_delay = SCTP_SACK_DELAY_MS, .sack_freq = 2};
    rc = rc ? rc : setopt(s, IPPROTO_SCTP, SCTP_DELAYED_SACK, &sack, sizeof(sack), "DELAYED_SACK");
    /* A message we accept is handed up whole (the read buffer holds max_message), never
     * in parts that other messages or notifications could come between (RFC 6458
     * 8.1.20: level 0). Only a message over the limit, which is dropped, is read in parts. */
    int zero = 0;
    uint32_t pd_point = (uint32_t)s->max_message;
    rc = rc ? rc
            : setopt(s, IPPROTO_SCTP, SCTP_FRAGMENT_INTERLEAVE, &zero, sizeof(zero),
                     "FRAGMENT_INTERLEAVE");
    rc = rc ? rc
            : setopt(s, IPPROTO_SCTP, SCTP_PARTIAL_DELIVERY_POINT, &pd_point, sizeof(pd_point),
                     "PARTIAL_DELIVERY_POINT");
    static const uint16_t events[] = {SCTP_ASSOC_CHANGE, SCTP_SENDER_DRY_EVENT,
                                      SCTP_STREAM_RESET_EVENT, SCTP_SEND_FAILED_EVENT};
    for (size_t i = 0; rc == 0 && i < BL_ARRAY_LEN(events); i++) {
        struct sctp_event ev = {.se_assoc_id = SCTP_FUTURE_ASSOC, .se_type = events[i], .se_on = 1};
        rc = setopt(s, IPPROTO_SCTP, SCTP_EVENT, &ev, sizeof(ev), "SCTP_EVENT");
    }
    return rc;
}

static struct sockaddr_conn conn_addr(const sctp_t *s)
{
    struct sockaddr_conn a;
    memset(&a, 0, sizeof(a));
    a.sconn_family = AF_CONN;
    a.sconn_port = htons(SCTP_PORT);
    a.sconn_addr = (void *)s->id;
    return a;
}

sctp_t *sctp_new(GMainContext *ctx, const sctp_opts_t *opts, const sctp_events_t *ev, void *ud)
{
    if (!opts || !ev || !ev->send || sctp_global_init(ctx))
        return NULL;
    if (ctx && ctx != g.ctx) {
        /* usrsctp is process-wide and its timer runs on the first context. */
        LOG_ERROR(opts->who ? opts->who : "sctp", "sctp: all associations must share one "
                                                  "GMainContext");
        return NULL;
    }
    sctp_t *s = g_new0(sctp_t, 1);
    s->ctx = g_main_context_ref(g.ctx);
    snprintf(s->who, sizeof(s->who), "%s", opts->who ? opts->who : "sctp");
    s->dtls_client = opts->dtls_client;
    s->send_buffer = opts->send_buffer;
    s->idle_keep_us =
        opts->idle_keep_ms ? opts->idle_keep_ms * G_GINT64_CONSTANT(1000) : SCTP_IDLE_KEEP_US;
    s->max_message = opts->max_message ? opts->max_message : SCTP_DEFAULT_MAX_MESSAGE;
    s->sndbuf = BL_MAX(opts->window ? opts->window : SCTP_DEFAULT_WINDOW, 2 * s->max_message);
    if (s->sndbuf > INT_MAX / 2)
        s->sndbuf = INT_MAX / 2;
    uint32_t chunks = (uint32_t)(s->sndbuf / SCTP_WINDOW_CHUNK);
    if (usrsctp_sysctl_get_sctp_max_chunks_on_queue() < chunks)
        usrsctp_sysctl_set_sctp_max_chunks_on_queue(chunks); /* process-wide: never lowered */
    s->ev = *ev;
    s->ud = ud;
    s->next_sid = s->dtls_client ? 0 : 1;
    s->chans = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, chan_free);
    s->rbuf = g_malloc(s->max_message); /* a whole message in one read */
    s->id = g.next_id++; /* never reused: a late callback cannot reach a newer object */
    g_hash_table_insert(g.by_id, (void *)s->id, s);
    timer_update();
    usrsctp_register_address((void *)s->id);
    /* The socket is created with the process-wide default buffers, and some of what
     * usrsctp derives from them at that moment (the partial delivery point) SO_RCVBUF does
     * not update: start it with the buffers it will have. */
    usrsctp_sysctl_set_sctp_sendspace((uint32_t)s->sndbuf);
    usrsctp_sysctl_set_sctp_recvspace((uint32_t)s->sndbuf);
    s->sock = usrsctp_socket(AF_CONN, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
    if (!s->sock) {
        LOG_ERROR(s->who, "sctp: usrsctp_socket: %s", strerror(errno));
        goto error;
    }
    usrsctp_set_upcall(s->sock, upcall, (void *)s->id);
    if (configure(s))
        goto error;
    struct sockaddr_conn a = conn_addr(s);
    if (usrsctp_bind(s->sock, (struct sockaddr *)&a, sizeof(a)) < 0) {
        LOG_ERROR(s->who, "sctp: bind: %s", strerror(errno));
        goto error;
    }
    return s;
error:
    sctp_free(s);
    return NULL;
}

static int start_locked(sctp_t *s)
{
    struct sockaddr_conn a = conn_addr(s);
    clock_catch_up();
    s->state = ST_CONNECTING;
    /* Both ends connect (RFC 8841 / RFC 8831 6.2): SCTP resolves the INIT collision. */
    if (usrsctp_connect(s->sock, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        closed(s, strerror(errno));
        return BL_EIO;
    }
    return 0;
}

int sctp_start(sctp_t *s)
{
    if (!s || s->guard.freed)
        return BL_EINVAL;
    if (s->state != ST_NEW)
        return s->state == ST_CLOSED ? BL_ESTATE : 0;
    loop_enter(&s->guard);
    int rc = start_locked(s);
    loop_leave_destroy(&s->guard, destroy, s);
    return rc;
}

int sctp_feed(sctp_t *s, const uint8_t *buf, size_t len)
{
    if (!s || s->guard.freed || !buf || len == 0)
        return BL_EINVAL;
    if (s->state == ST_CLOSED)
        return BL_ESTATE;
    loop_enter(&s->guard);
    clock_catch_up(); /* before start_locked's INIT timer, too */
    /* A packet can only come through a connected DTLS: if the peer's INIT beats our
     * caller's sctp_start, connecting now turns it into a normal INIT collision instead
     * of an ABORT from a socket that is neither listening nor connecting. */
    int rc = s->state == ST_NEW ? start_locked(s) : 0;
    if (rc == 0 && !s->guard.freed) {
        g.packets_in++;
        tick_activity();
        usrsctp_conninput((void *)s->id, buf, len, 0);
    }
    loop_leave_destroy(&s->guard, destroy, s);
    return rc;
}

static uint16_t alloc_sid(sctp_t *s)
{
    uint16_t limit = BL_MIN(s->out_streams, s->in_streams);
    for (uint32_t sid = s->next_sid; sid < limit; sid += 2)
        if (!g_hash_table_contains(s->chans, GUINT_TO_POINTER(sid))) {
            s->next_sid = (uint16_t)(sid + 2);
            return (uint16_t)sid;
        }
    return UINT16_MAX;
}

int sctp_open_channel(sctp_t *s, const char *label, bool ordered, int max_rtx)
{
    if (!s || s->guard.freed || !label)
        return BL_EINVAL;
    if (s->state != ST_CONNECTED)
        return BL_ESTATE;
    uint16_t sid = alloc_sid(s);
    if (sid == UINT16_MAX)
        return BL_ETOOBIG;
    dcep_open_t o = {
        .channel_type = (uint8_t)((max_rtx >= 0 ? DCEP_PARTIAL_RELIABLE_REXMIT : DCEP_RELIABLE) |
                                  (ordered ? 0 : DCEP_UNORDERED_BIT)),
        .reliability = max_rtx >= 0 ? (uint32_t)max_rtx : 0,
        .label = (char *)label,
        .protocol = "",
    };
    uint8_t *msg;
    size_t len;
    int rc = dcep_build_open(&o, &msg, &len);
    if (rc)
        return rc;
    loop_enter(&s->guard);
    clock_catch_up();
    chan_t *c = chan_add(s, sid, o.channel_type, o.reliability, label);
    rc = send_raw(s, c, DCEP_PPID, msg, len, true);
    if (rc)
        g_hash_table_remove(s->chans, GUINT_TO_POINTER(sid));
    else
        LOG_DEBUG(s->who, "sctp: opening channel \"%s\" on stream %u", label, sid);
    free(msg);
    loop_leave_destroy(&s->guard, destroy, s);
    return rc ? rc : sid;
}

/* Congestion state after an idle association. usrsctp keeps the slow-start threshold
 * that the last loss left (RFC 4960 7.2.3) for as long as the association lives, and
 * from there adds one packet per round trip: after a lossy minute, a burst across 150 ms
 * took tens of seconds to regain its window (docs/BENCH.md, round 9). A burst that comes
 * after SCTP_IDLE_RESTART_US with nothing in flight starts with the threshold at the
 * peer's receive window, as a new association does, so it is in slow start until its
 * first loss. usrsctp does that when an association's congestion control module is set,
 * to the one it has; it also sets the window to the initial one, capped at the
 * association's max_burst, both of which this sets for that moment only.
 *
 * The window itself is kept if it was last in use (at least half of it buffered, as the
 * tick sees it) less than idle_keep_us ago (5 minutes: RFC 7661's non-validated period); then it
 * goes back to the initial window. Without that, a site sending in bursts a minute apart across 150
 * ms paid seven round trips of slow start at every burst (round 9). A kept window leaves in one
 * burst, with nothing to pace it: it is held to what the datagram socket below takes at once
 * (send_buffer; the kernel counts about twice the bytes of a datagram this size), since what that
 * socket refuses is lost. */
static int set_max_burst(sctp_t *s, sctp_assoc_t id, uint32_t packets)
{
    struct sctp_assoc_value av = {.assoc_id = id, .assoc_value = packets};
    return usrsctp_setsockopt(s->sock, IPPROTO_SCTP, SCTP_MAX_BURST, &av, sizeof(av));
}

/* From the tick (every SCTP_TICK_MS while data is buffered): is the window in use? A
 * burst handed over in one turn of the loop is seen here whole. Returns whether anything
 * is buffered. */
static bool note_window_use(sctp_t *s, gint64 now)
{
    size_t buffered = sctp_buffered(s);
    if (!buffered)
        return false;
    struct sctp_status st;
    socklen_t len = sizeof(st);
    memset(&st, 0, sizeof(st));
    if (usrsctp_getsockopt(s->sock, IPPROTO_SCTP, SCTP_STATUS, &st, &len) == 0 &&
        buffered * 2 >= st.sstat_primary.spinfo_cwnd)
        s->used_us = now;
    return true;
}

/* The window a restart after idle gives, in packets. */
static uint32_t kept_window(const sctp_t *s, gint64 now, uint32_t cwnd, uint32_t mtu)
{
    /* usrsctp counts a window of N packets as N * mtu bytes (0.9.5) or N * (mtu - 12)
     * (later): cwnd / mtu packets never give more than cwnd. */
    uint32_t packets = cwnd / mtu;
    if (!s->used_us || now - s->used_us >= s->idle_keep_us)
        return SCTP_INITIAL_CWND_PACKETS;
    if (s->send_buffer)
        packets = BL_MIN(packets, (uint32_t)BL_MIN(s->send_buffer / (2 * mtu), UINT32_MAX));
    return BL_MAX(packets, SCTP_INITIAL_CWND_PACKETS);
}

static void restart_after_idle(sctp_t *s, gint64 now)
{
    struct sctp_status st;
    socklen_t len = sizeof(st);
    memset(&st, 0, sizeof(st));
    /* Nothing in flight or waiting to be sent; and the peer's window, which becomes the
     * threshold, above the window we have (a peer that stopped reading, its window near
     * 0, would leave the threshold there). */
    if (usrsctp_getsockopt(s->sock, IPPROTO_SCTP, SCTP_STATUS, &st, &len) < 0 ||
        st.sstat_unackdata || sctp_buffered(s) || st.sstat_rwnd <= st.sstat_primary.spinfo_cwnd)
        return;
    uint32_t cwnd = st.sstat_primary.spinfo_cwnd;
    uint32_t mtu = st.sstat_primary.spinfo_mtu > 2 * SCTP_COMMON_HEADER
                       ? st.sstat_primary.spinfo_mtu
                       : SCTP_PATH_MTU;
    uint32_t packets = kept_window(s, now, cwnd, mtu);
    struct sctp_assoc_value av = {.assoc_id = st.sstat_assoc_id};
    len = sizeof(av);
    if (usrsctp_getsockopt(s->sock, IPPROTO_SCTP, SCTP_PLUGGABLE_CC, &av, &len) < 0 ||
        set_max_burst(s, st.sstat_assoc_id, packets) < 0)
        return;
    /* usrsctp_init_nothreads: nothing else runs in usrsctp while this holds the value. */
    usrsctp_sysctl_set_sctp_initial_cwnd(packets);
    int rc = usrsctp_setsockopt(s->sock, IPPROTO_SCTP, SCTP_PLUGGABLE_CC, &av, sizeof(av));
    usrsctp_sysctl_set_sctp_initial_cwnd(SCTP_INITIAL_CWND_PACKETS);
    set_max_burst(s, st.sstat_assoc_id, SCTP_INITIAL_CWND_PACKETS);
    if (rc < 0)
        return;
    s->idle_resets++;
    LOG_DEBUG(s->who,
              "sctp: idle %" G_GINT64_FORMAT " ms, cwnd %u B: threshold at %u B, window %u packets",
              (now - s->sent_us) / 1000, cwnd, st.sstat_rwnd, packets);
}

int sctp_send(sctp_t *s, uint16_t stream, const uint8_t *buf, size_t len)
{
    if (!s || s->guard.freed || (!buf && len))
        return BL_EINVAL;
    if (s->state != ST_CONNECTED)
        return BL_ESTATE;
    chan_t *c = g_hash_table_lookup(s->chans, GUINT_TO_POINTER(stream));
    if (!c || !c->open)
        return BL_ENOTFOUND;
    if (len > s->max_message)
        return BL_ETOOBIG;
    if (c->ack_pending) {
        /* Data must not overtake our DATA_CHANNEL_ACK (RFC 8832 6). */
        s->want_writable = true;
        return BL_EAGAIN;
    }
    static const uint8_t zero = 0;
    clock_catch_up();
    gint64 now = g_get_monotonic_time();
    if (s->sent_us && now - s->sent_us > SCTP_IDLE_RESTART_US)
        restart_after_idle(s, now);
    s->sent_us = now;
    loop_enter(&s->guard);
    /* RFC 8831 6.6: an empty message is one zero byte with the "empty" PPID. */
    int rc = s->guard.freed ? BL_ESTATE
             : len          ? send_raw(s, c, DCEP_PPID_BINARY, buf, len, false)
                            : send_raw(s, c, DCEP_PPID_BINARY_EMPTY, &zero, 1, false);
    loop_leave_destroy(&s->guard, destroy, s);
    return rc;
}

size_t sctp_buffered(const sctp_t *s)
{
    if (!s || s->guard.freed || !s->sock || s->state != ST_CONNECTED)
        return 0;
    struct bl_sctp_sockstat ss = {.ss_assoc_id = SCTP_FUTURE_ASSOC};
    socklen_t len = sizeof(ss);
    if (usrsctp_getsockopt(s->sock, IPPROTO_SCTP, SCTP_GET_SNDBUF_USE, &ss, &len) < 0)
        return 0;
    return ss.ss_total_sndbuf;
}

size_t sctp_backlog(sctp_t *s, size_t notify_below)
{
    if (!s || s->guard.freed || !s->sock || s->state != ST_CONNECTED)
        return 0;
    struct sctp_status st;
    socklen_t len = sizeof(st);
    memset(&st, 0, sizeof(st));
    if (usrsctp_getsockopt(s->sock, IPPROTO_SCTP, SCTP_STATUS, &st, &len) < 0)
        return 0;
    /* The send buffer holds what is in flight and what waits behind it; usrsctp tells
     * how many chunks are in flight, each at most a fragmentation point long. */
    size_t queued = sctp_buffered(s);
    size_t flight = (size_t)st.sstat_unackdata * st.sstat_fragmentation_point;
    size_t backlog = queued > flight ? queued - flight : 0;
    if (notify_below && backlog >= notify_below)
        s->backlog_below = notify_below;
    return backlog;
}

int sctp_get_info(const sctp_t *s, sctp_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!s || s->guard.freed || !s->sock || s->state != ST_CONNECTED)
        return BL_ESTATE;
    struct sctp_status st;
    socklen_t len = sizeof(st);
    memset(&st, 0, sizeof(st));
    if (usrsctp_getsockopt(s->sock, IPPROTO_SCTP, SCTP_STATUS, &st, &len) < 0)
        return BL_EIO;
    out->cwnd = st.sstat_primary.spinfo_cwnd;
    out->peer_rwnd = st.sstat_rwnd;
    out->srtt_ms = st.sstat_primary.spinfo_srtt;
    out->rto_ms = st.sstat_primary.spinfo_rto;
    out->mtu = st.sstat_primary.spinfo_mtu;
    out->unacked = st.sstat_unackdata;
    out->pending = st.sstat_penddata;
    out->sndbuf_used = sctp_buffered(s);
    out->idle_restarts = s->idle_resets;
    return 0;
}

void sctp_get_counters(sctp_counters_t *out)
{
    struct sctpstat st;
    memset(out, 0, sizeof(*out));
    if (!g.init)
        return;
    usrsctp_get_stat(&st);
    out->data_out = st.sctps_senddata;
    out->data_in = st.sctps_recvdata;
    out->retrans = st.sctps_sendretransdata;
    out->fast_retrans = st.sctps_sendfastretrans;
    out->t3_timeouts = st.sctps_timodata;
    out->dup_in = st.sctps_recvdupdata;
    out->sacks_out = st.sctps_sendsacks;
    out->sacks_in = st.sctps_recvsacks;
    out->packets_out = g.packets_out;
    out->packets_in = g.packets_in;
    out->sack_timeouts = st.sctps_timosack;
    out->burst_limited = st.sctps_maxburstqueued;
}

static void destroy(void *obj)
{
    sctp_t *s = obj;
    if (s->chans)
        g_hash_table_destroy(s->chans);
    g_free(s->rbuf);
    g_free(s->asm_buf);
    if (s->ctx)
        g_main_context_unref(s->ctx);
    g_free(s);
}

void sctp_free(sctp_t *s)
{
    if (!s || s->guard.freed)
        return;
    if (s->dropped_oversize)
        LOG_INFO(s->who, "sctp: %" G_GUINT64_FORMAT " oversized messages were dropped",
                 s->dropped_oversize);
    /* From here usrsctp's callbacks for this id find nothing: the ABORT that close sends
     * (SO_LINGER 0) is dropped too, so nothing reaches ev->send after this call. */
    bool now = loop_free(&s->guard);
    g_hash_table_remove(g.by_id, (void *)s->id);
    if (s->work) {
        g_source_destroy(s->work);
        g_source_unref(s->work);
        s->work = NULL;
    }
    if (s->sock) {
        /* The upcall stays installed (usrsctp would call a NULL one); its id no longer
         * resolves. */
        usrsctp_close(s->sock);
        s->sock = NULL;
    }
    usrsctp_deregister_address((void *)s->id);
    tick_activity(); /* the closed socket's teardown runs on timers */
    timer_update();
    if (now)
        destroy(s);
}
