/* SPDX-License-Identifier: MIT */
/* framer.c - see framer.h: the queues (small frames ahead of large ones and FRAG pieces),
 * BATCH packing, fragmentation and reassembly, and at debug level a trace of the windows. */
#include "framer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"

/* Above this many bytes waiting for the transport the caller is told to hold off. */
#define FRAMER_HIGH_WATER (256 * 1024)
/* A BATCH carries small frames only, up to this many bytes in all: one channel message
 * that SCTP cuts into full packets, instead of a packet (and a DTLS record) per frame. */
#define FRAMER_BATCH_MAX (16 * 1024)
#define FRAMER_SMALL_MAX 2048
/* Large frames and FRAG pieces go to the transport only while less than this waits there
 * unsent: a small frame then waits behind that much and the piece being sent, not behind
 * the window's worth of a 1 MiB message. Enough for SCTP to fill its window between two
 * refills, which come with the SACKs that make room. */
#define FRAMER_BULK_BACKLOG (64 * 1024)
/* Small frames waiting from which framer_can_send_small says no. */
#define FRAMER_EXPRESS_HIGH_WATER (64 * 1024)
/* At debug level, how often an attached framer with traffic logs where its windows stand. */
#define FRAMER_TRACE_MS 250

/* One queued frame. topic: on the last piece of a large message counted in bulk_topics;
 * seq: a MSG's sequence, on its last piece. */
typedef struct entry {
    GBytes *data;
    char *topic;
    uint64_t seq;
    bool batchable; /* a small MSG or ACK frame */
} entry_t;

/* What the trace counts between two lines. */
typedef struct counts {
    uint64_t msgs_out; /* MSG frames with a sequence, i.e. waiting for an ACK */
    uint64_t acked_in; /* sequences in the peer's ACK frames */
    uint64_t acks_out, ack_seqs_out;
    uint64_t frames_out, frames_in;
    transport_stats_t tr;
} counts_t;

struct framer {
    GMainContext *ctx;
    char who[96];
    char peer[BL_SITE_NAME_MAX + 1];
    const framing_t *fr;
    size_t max_message;
    transport_t *tr; /* attached: a session is open */
    bool broken;

    /* express: small frames, sent first and packed in BATCHes; bulk: large frames and
     * FRAG pieces, and small MSG frames on a topic with a large message still in bulk. */
    GQueue express, bulk;
    GHashTable *bulk_topics; /* topic -> its messages in bulk */
    size_t pending_bytes;    /* express and bulk */
    size_t express_bytes;
    bool batch;         /* the peer takes BATCH frames (its HELLO said so) */
    GSource *flush_src; /* sends what this turn of the loop queued, packed */
    uint32_t frag_no;
    wire_reasm_t reasm;

    GArray *delivered;  /* framing without control: sequences handed to the transport */
    GSource *acked_src; /* ... reported as an ACK from here */

    framer_stats_t stats;
    counts_t counts, traced; /* now, and at the last trace line */
    GSource *trace_src;
    framer_events_t ev;
    void *ud;
};

/* ---- delivered without control ---- */

static gboolean acked_cb(gpointer p)
{
    framer_t *f = p;
    f->acked_src = NULL;
    GArray *seqs = f->delivered;
    f->delivered = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    wire_frame_t a = {.type = WIRE_ACK};
    a.u.ack.seqs = (uint64_t *)(void *)seqs->data;
    a.u.ack.n = seqs->len;
    f->ev.on_frame(f->ud, &a);
    g_array_free(seqs, TRUE);
    return G_SOURCE_REMOVE;
}

/* The peer has no acknowledgements: what left (or was refused for good) is done. */
static void done_without_ack(framer_t *f, uint64_t seq)
{
    if (!seq || f->fr->control)
        return;
    g_array_append_val(f->delivered, seq);
    if (!f->acked_src)
        f->acked_src = loop_idle(f->ctx, G_PRIORITY_DEFAULT, acked_cb, f);
}

/* ---- window trace (debug level) ---- */

static void trace_line(framer_t *f)
{
    counts_t *c = &f->counts, *o = &f->traced;
    transport_stats_t *t = &c->tr, *ot = &o->tr;
    if (!f->tr || !f->tr->ops->stats || f->tr->ops->stats(f->tr, t))
        memset(t, 0, sizeof(*t));
    LOG_DEBUG(
        f->who,
        "window: %" G_GUINT64_FORMAT " msgs unacked (+%" G_GUINT64_FORMAT
        " sent, +%" G_GUINT64_FORMAT " acked), link queue %zu B, sctp buffer %zu B "
        "(%u chunks unacked; %u received, unread), cwnd %u B, peer rwnd %u B, srtt %u ms, rto %u "
        "ms; acks out +%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " seqs; rtx +%" G_GUINT64_FORMAT
        " (fast +%" G_GUINT64_FORMAT "), T3 +%" G_GUINT64_FORMAT
        ", delayed SACKs +%" G_GUINT64_FORMAT ", burst-held +%" G_GUINT64_FORMAT
        ", packets +%" G_GUINT64_FORMAT "/+%" G_GUINT64_FORMAT
        " out/in; datagrams +%" G_GUINT64_FORMAT " in segmented sends, +%" G_GUINT64_FORMAT
        " dropped by the socket",
        c->msgs_out - c->acked_in, c->msgs_out - o->msgs_out, c->acked_in - o->acked_in,
        f->pending_bytes, t->buffered, t->unacked, t->unread, t->cwnd, t->peer_rwnd, t->srtt_ms,
        t->rto_ms, c->acks_out - o->acks_out, c->ack_seqs_out - o->ack_seqs_out,
        t->retrans - ot->retrans, t->fast_retrans - ot->fast_retrans, t->timeouts - ot->timeouts,
        t->delayed_acks - ot->delayed_acks, t->burst_limited - ot->burst_limited,
        t->packets_out - ot->packets_out, t->packets_in - ot->packets_in,
        t->gso_datagrams - ot->gso_datagrams, t->dropped_datagrams - ot->dropped_datagrams);
}

static gboolean trace_cb(gpointer p)
{
    framer_t *f = p;
    counts_t *c = &f->counts;
    bool moved = c->frames_out != f->traced.frames_out || c->frames_in != f->traced.frames_in;
    if (!f->tr || (!moved && !f->pending_bytes && !c->tr.buffered)) {
        f->trace_src = NULL; /* quiet: the next frame starts it again */
        return G_SOURCE_REMOVE;
    }
    trace_line(f);
    f->traced = *c;
    return G_SOURCE_CONTINUE;
}

static void trace_start(framer_t *f)
{
    if (f->trace_src || log_get_level() > LOG_LVL_DEBUG || !f->tr)
        return;
    f->trace_src = loop_timeout(f->ctx, FRAMER_TRACE_MS, trace_cb, f);
}

/* ---- the queues ---- */

static void entry_done(framer_t *f, entry_t *e)
{
    if (e->topic) {
        guint n = GPOINTER_TO_UINT(g_hash_table_lookup(f->bulk_topics, e->topic));
        if (n > 1)
            g_hash_table_insert(f->bulk_topics, g_strdup(e->topic), GUINT_TO_POINTER(n - 1));
        else
            g_hash_table_remove(f->bulk_topics, e->topic);
        g_free(e->topic);
    }
    g_bytes_unref(e->data);
    g_free(e);
}

static void clear_pending(framer_t *f)
{
    entry_t *e;
    loop_cancel(&f->flush_src);
    f->batch = false; /* until the next session's HELLO */
    while ((e = g_queue_pop_head(&f->express)))
        entry_done(f, e);
    while ((e = g_queue_pop_head(&f->bulk)))
        entry_done(f, e);
    f->pending_bytes = 0;
    f->express_bytes = 0;
    wire_reasm_clear(&f->reasm);
    wire_reasm_init(&f->reasm, f->max_message + WIRE_MSG_MAX_OVERHEAD);
}

/* The small frames at the head of the queue in one BATCH, or NULL when fewer than two
 * would go in (the head is then sent as it is). *count: how many it holds. */
static uint8_t *pack(framer_t *f, size_t *len, size_t *count)
{
    wire_piece_t pieces[FRAMER_BATCH_MAX / (WIRE_HEADER_LEN + WIRE_BATCH_ENTRY_OVERHEAD)];
    size_t n = 0, total = WIRE_BATCH_HEADER_LEN;
    for (GList *l = f->express.head; l && n < BL_ARRAY_LEN(pieces); l = l->next) {
        entry_t *e = l->data;
        size_t fl;
        const uint8_t *d = g_bytes_get_data(e->data, &fl);
        if (!e->batchable || total + WIRE_BATCH_ENTRY_OVERHEAD + fl > FRAMER_BATCH_MAX)
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
static bool bulk_may_go(framer_t *f)
{
    return !f->tr->ops->backlog ||
           f->tr->ops->backlog(f->tr, FRAMER_BULK_BACKLOG) < FRAMER_BULK_BACKLOG;
}

/* The transport took `count` entries from the head of q (n bytes on the wire). */
static void sent(framer_t *f, GQueue *q, size_t count, size_t n)
{
    for (size_t i = 0; i < count; i++) {
        entry_t *e = g_queue_pop_head(q);
        f->pending_bytes -= g_bytes_get_size(e->data);
        if (q == &f->express)
            f->express_bytes -= g_bytes_get_size(e->data);
        f->stats.frames_out++;
        done_without_ack(f, e->seq);
        entry_done(f, e);
    }
    f->stats.bytes_out += n;
}

/* Hand frames to the transport until it is full: every small frame first, then large ones
 * while the transport has room behind its window. */
static void flush(framer_t *f)
{
    while (f->tr && !f->broken) {
        GQueue *q = f->express.length ? &f->express : &f->bulk;
        entry_t *e = g_queue_peek_head(q);
        if (!e || (q == &f->bulk && !bulk_may_go(f)))
            return;
        size_t n, count = 1;
        const uint8_t *d = g_bytes_get_data(e->data, &n);
        uint8_t *packed = q == &f->express && f->batch ? pack(f, &n, &count) : NULL;
        int rc = f->tr->ops->send(f->tr, packed ? packed : d, n);
        free(packed);
        if (rc == BL_EAGAIN)
            return;
        if (rc) {
            f->broken = true;
            f->ev.on_broken(f->ud, "send failed");
            return;
        }
        sent(f, q, count, n);
    }
}

static gboolean flush_cb(gpointer p)
{
    framer_t *f = p;
    f->flush_src = NULL;
    /* Senders stopped at the high-water mark wait for on_writable. The transport only
     * reports writable after it refused a send; when this deferred flush drains the
     * queue without a refusal, nobody else would tell them (a stall, found with a QoS 0
     * burst: the rest of it sat in memory until the next message came). */
    bool was_full = !framer_can_send(f);
    flush(f);
    if (was_full && framer_can_send(f) && f->ev.on_writable)
        f->ev.on_writable(f->ud);
    return G_SOURCE_REMOVE;
}

/* Queue a frame in bulk, cut in FRAG pieces when it is larger than the transport takes
 * whole; takes topic (counted in bulk_topics until the last piece is sent). */
static int bulk_push(framer_t *f, GBytes *frame, char *topic, uint64_t seq)
{
    size_t len = g_bytes_get_size(frame);
    size_t n = len <= f->fr->max_frame ? 1 : wire_frag_count(len, WIRE_FRAG_CHUNK);
    uint32_t no = n > 1 ? ++f->frag_no : 0;
    entry_t *e = NULL;
    for (size_t i = 0; i < n; i++) {
        uint8_t *piece;
        size_t plen = len;
        int rc = n > 1 ? wire_encode_frag(g_bytes_get_data(frame, NULL), len, WIRE_FRAG_CHUNK, no,
                                          i, &piece, &plen)
                       : 0;
        if (rc) {
            g_free(topic);
            return rc;
        }
        e = g_new0(entry_t, 1);
        e->data = n > 1 ? g_bytes_new_take(piece, plen) : g_bytes_ref(frame);
        g_queue_push_tail(&f->bulk, e);
        f->pending_bytes += plen;
    }
    e->seq = seq;
    if (topic) {
        guint c = GPOINTER_TO_UINT(g_hash_table_lookup(f->bulk_topics, topic));
        g_hash_table_insert(f->bulk_topics, g_strdup(topic), GUINT_TO_POINTER(c + 1));
        e->topic = topic;
    }
    return 0;
}

/* Queue one encoded frame (taken); topic: a MSG's, for the order per topic. */
static int enqueue(framer_t *f, GBytes *frame, const char *topic, uint64_t seq, bool batchable)
{
    size_t len = g_bytes_get_size(frame);
    f->counts.frames_out++;
    trace_start(f);
    bool small = len <= FRAMER_SMALL_MAX;
    /* A small frame's topic matters only if some large message is queued: most of the
     * time no topic is looked at. */
    bool behind = small && topic && g_hash_table_size(f->bulk_topics) &&
                  g_hash_table_contains(f->bulk_topics, topic);
    int rc = 0;
    if (small && !behind) {
        entry_t *e = g_new0(entry_t, 1);
        e->data = frame;
        e->seq = seq;
        e->batchable = batchable;
        g_queue_push_tail(&f->express, e);
        f->pending_bytes += len;
        f->express_bytes += len;
        frame = NULL;
    } else {
        rc = bulk_push(f, frame, topic ? g_strdup(topic) : NULL, seq);
    }
    if (frame)
        g_bytes_unref(frame);
    if (rc)
        return rc;
    if (!f->batch) {
        flush(f);
    } else if (!f->flush_src) {
        /* Right after the callback that is queueing, before other I/O: everything it
         * queues leaves together. */
        f->flush_src = loop_idle(f->ctx, G_PRIORITY_HIGH, flush_cb, f);
    }
    return 0;
}

static int sendable(const framer_t *f)
{
    return !f->tr || f->broken ? BL_ESTATE : 0;
}

int framer_send_msg(framer_t *f, const bl_msg_t *m)
{
    int rc = sendable(f);
    if (rc)
        return rc;
    uint8_t *buf;
    size_t len;
    rc = f->fr->encode_msg(m, &buf, &len);
    if (rc == BL_ETOOBIG && !f->fr->fragments) {
        /* Never truncated: the peer would publish a message that was never sent. */
        uint64_t n = ++f->stats.too_big;
        LOG_AT((n & (n - 1)) == 0 ? LOG_LVL_WARN : LOG_LVL_DEBUG, f->who,
               "refused a message on %s (%zu bytes of payload): as one frame it is over the "
               "%zu bytes the peer takes (%llu refused so far)",
               m->topic, m->payload_len, f->fr->max_frame, (unsigned long long)n);
        done_without_ack(f, m->seq);
        return 0;
    }
    if (rc)
        return rc;
    f->counts.msgs_out += m->seq != 0;
    return enqueue(f, g_bytes_new_take(buf, len), m->topic, m->seq, len <= FRAMER_SMALL_MAX);
}

int framer_send_ack(framer_t *f, const uint64_t *seqs, size_t n)
{
    int rc = sendable(f);
    if (rc || !f->fr->encode_ack)
        return rc;
    uint8_t *buf;
    size_t len;
    if ((rc = f->fr->encode_ack(seqs, n, &buf, &len)))
        return rc;
    f->counts.acks_out++;
    f->counts.ack_seqs_out += n;
    return enqueue(f, g_bytes_new_take(buf, len), NULL, 0, len <= FRAMER_SMALL_MAX);
}

int framer_send_hello(framer_t *f, const wire_hello_t *h)
{
    int rc = sendable(f);
    if (rc || !f->fr->encode_hello)
        return rc;
    uint8_t *buf;
    size_t len;
    if ((rc = f->fr->encode_hello(h, &buf, &len)))
        return rc;
    return enqueue(f, g_bytes_new_take(buf, len), NULL, 0, false);
}

int framer_send_frame(framer_t *f, const uint8_t *frame, size_t len)
{
    int rc = sendable(f);
    if (rc)
        return rc;
    bool batchable = f->fr->batches && len >= WIRE_HEADER_LEN && len <= FRAMER_SMALL_MAX &&
                     (frame[1] == WIRE_MSG || frame[1] == WIRE_ACK);
    return enqueue(f, g_bytes_new(frame, len), NULL, 0, batchable);
}

/* ---- in ---- */

/* At WARN the 1st, 2nd, 4th... time: a peer sending junk costs a few lines. */
static void bad_frame(framer_t *f, size_t len, const char *what, const char *why, int rc)
{
    uint64_t n = ++f->stats.bad_frames;
    LOG_AT((n & (n - 1)) == 0 ? LOG_LVL_WARN : LOG_LVL_DEBUG, f->who,
           "dropped a %s of %zu bytes from the peer: %s (%llu so far)", what, len,
           why ? why : bl_strerror(rc), (unsigned long long)n);
}

static void deliver(framer_t *f, const uint8_t *buf, size_t len);

static void deliver_frag(framer_t *f, wire_frame_t *fr, size_t len)
{
    uint8_t *whole;
    size_t whole_len;
    int rc = wire_reasm_feed(&f->reasm, &fr->u.frag, &whole, &whole_len);
    wire_frame_clear(fr);
    if (rc < 0) {
        bad_frame(f, len, "fragmented frame", f->reasm.why, rc);
    } else if (rc == 1) {
        deliver(f, whole, whole_len);
        free(whole);
    }
}

static void deliver(framer_t *f, const uint8_t *buf, size_t len)
{
    wire_frame_t fr;
    int rc = f->fr->decode(buf, len, f->max_message, &fr);
    if (rc) {
        bad_frame(f, len, "bad frame", fr.why, rc);
        return;
    }
    if (fr.type == WIRE_BATCH) {
        /* Checked whole by the decoder: only MSG and ACK frames inside, no recursion. */
        const uint8_t *in;
        size_t il;
        while (f->tr && wire_batch_next(&fr.u.batch, &in, &il) == 1)
            deliver(f, in, il);
        wire_frame_clear(&fr);
        return;
    }
    if (fr.type == WIRE_FRAG) {
        deliver_frag(f, &fr, len);
        return;
    }
    if (fr.type == WIRE_ACK)
        f->counts.acked_in += fr.u.ack.n;
    else if (fr.type == WIRE_HELLO && f->fr->batches)
        f->batch = (fr.u.hello.features & WIRE_FEAT_BATCH) != 0;
    else if (fr.type == WIRE_MSG && !f->fr->control && !fr.u.msg->origin)
        fr.u.msg->origin = strdup(f->peer); /* it cannot say; it is the peer's own */
    if (fr.type != WIRE_MSG || fr.u.msg->origin)
        f->ev.on_frame(f->ud, &fr);
    wire_frame_clear(&fr);
}

void framer_feed(framer_t *f, const uint8_t *buf, size_t len)
{
    f->stats.frames_in++;
    f->stats.bytes_in += len;
    f->counts.frames_in++;
    trace_start(f);
    deliver(f, buf, len);
}

void framer_writable(framer_t *f)
{
    flush(f);
    /* While large frames back it up, the caller may still have small ones to send. */
    if ((framer_can_send(f) || framer_can_send_small(f)) && f->ev.on_writable)
        f->ev.on_writable(f->ud);
}

/* ---- lifecycle ---- */

bool framer_can_send(const framer_t *f)
{
    return f->tr && !f->broken && f->pending_bytes < FRAMER_HIGH_WATER;
}

bool framer_can_send_small(const framer_t *f)
{
    return f->tr && !f->broken && f->express_bytes < FRAMER_EXPRESS_HIGH_WATER;
}

bool framer_topic_held(const framer_t *f, const char *topic)
{
    return g_hash_table_size(f->bulk_topics) && g_hash_table_contains(f->bulk_topics, topic);
}

const framer_stats_t *framer_stats(const framer_t *f)
{
    return &f->stats;
}

void framer_attach(framer_t *f, transport_t *tr)
{
    clear_pending(f);
    f->tr = tr;
    f->broken = false;
}

void framer_detach(framer_t *f)
{
    loop_cancel(&f->trace_src);
    clear_pending(f);
    f->tr = NULL;
}

framer_t *framer_new(GMainContext *ctx, const char *who, const char *peer, const framing_t *fr,
                     size_t max_message, const framer_events_t *ev, void *ud)
{
    framer_t *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->ctx = ctx;
    snprintf(f->who, sizeof(f->who), "%s", who);
    snprintf(f->peer, sizeof(f->peer), "%s", peer);
    f->fr = fr;
    f->max_message = max_message;
    f->ev = *ev;
    f->ud = ud;
    g_queue_init(&f->express);
    g_queue_init(&f->bulk);
    f->bulk_topics = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    f->delivered = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    wire_reasm_init(&f->reasm, max_message + WIRE_MSG_MAX_OVERHEAD);
    return f;
}

void framer_free(framer_t *f)
{
    if (!f)
        return;
    framer_detach(f);
    loop_cancel(&f->acked_src);
    wire_reasm_clear(&f->reasm);
    g_hash_table_destroy(f->bulk_topics);
    g_array_free(f->delivered, TRUE);
    free(f);
}
