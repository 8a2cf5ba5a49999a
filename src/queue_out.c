/* SPDX-License-Identifier: MIT */
/* queue_out.c - the origin sequence and the outbound queue of each peer (queue.h; queue_int.h says
 * where the rest is). */
#include "queue_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- origin sequence ---- */

static int load_seq(queue_t *q)
{
    if (q->seq_loaded)
        return 0;
    sqlite3_stmt *s = queue_stmt(q, S_SEQ_GET);
    int src = sqlite3_step(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return queue_db_fail(q, src, "reading the origin sequence");
    q->last_seq = src == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    q->seq_loaded = true;
    return 0;
}

int queue_last_seq(queue_t *q, uint64_t *seq)
{
    if (!q || !seq)
        return BL_EINVAL;
    int rc = load_seq(q);
    if (rc == 0)
        *seq = q->last_seq;
    return rc;
}

int queue_next_seq(queue_t *q, uint64_t *seq)
{
    FAULT(q, "next_seq");
    if (!q || !seq)
        return BL_EINVAL;
    int rc = load_seq(q);
    if (rc)
        return rc;
    if (!queue_seq_ok(q->last_seq + 1))
        return BL_ETOOBIG;
    if (q->depth > 0) { /* stored by the commit that makes the message durable */
        q->seq_dirty = true;
        *seq = ++q->last_seq;
        return 0;
    }
    sqlite3_stmt *s = queue_stmt(q, S_SEQ_SET);
    sqlite3_bind_int64(s, 1, (int64_t)(q->last_seq + 1));
    rc = queue_run(q, s, "storing the origin sequence");
    if (rc) {
        q->seq_loaded = false;
        return rc;
    }
    *seq = ++q->last_seq;
    return 0;
}

/* ---- outbound queues ---- */

static peer_ent_t *peer_get(queue_t *q, const char *peer)
{
    for (size_t i = 0; i < q->n_peers; i++)
        if (strcmp(q->peers[i].name, peer) == 0)
            return &q->peers[i];
    peer_ent_t *np = queue_grow(q->peers, q->n_peers, &q->cap_peers, sizeof(*np));
    if (!np)
        return NULL;
    q->peers = np;
    /* First use since open (or since a rollback): count what the file holds. */
    sqlite3_stmt *s = queue_stmt(q, S_COUNT);
    queue_bind_name(s, 1, peer);
    int src = sqlite3_step(s);
    int64_t count = src == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (count < 0) {
        queue_db_fail(q, src, "counting a peer's queue");
        return NULL;
    }
    peer_ent_t *e = &q->peers[q->n_peers++];
    snprintf(e->name, sizeof(e->name), "%s", peer);
    e->count = (size_t)count;
    return e;
}

int queue_push(queue_t *q, const char *peer, const bl_msg_t *m, int64_t enq_ms, size_t max_messages)
{
    FAULT(q, "push");
    if (!q || !bl_site_name_valid(peer) || !m || !queue_seq_ok(m->seq))
        return BL_EINVAL;
    peer_ent_t *e = peer_get(q, peer);
    if (!e)
        return BL_EIO;
    if (max_messages && e->count >= max_messages)
        return BL_ETOOBIG;
    sqlite3_stmt *s = queue_stmt(q, S_PUSH);
    int rc = queue_bind_frame(s, 4, m);
    if (rc)
        return rc;
    queue_bind_name(s, 1, peer);
    sqlite3_bind_int64(s, 2, (int64_t)m->seq);
    sqlite3_bind_int64(s, 3, enq_ms);
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (src == SQLITE_CONSTRAINT) {
        LOG_WARN(WHO, "peer %s: seq %" PRIu64 " is already queued", peer, m->seq);
        return BL_EINVAL;
    }
    if (src != SQLITE_DONE)
        return queue_db_fail(q, src, "queueing a message");
    e->count++;
    return 0;
}

/* Narrow [first, last] to the sequences a row can hold (seq_ok); false if none is left. */
bool queue_seq_range(uint64_t *first, uint64_t *last)
{
    if (*first == 0)
        *first = 1;
    if (*last > (uint64_t)INT64_MAX)
        *last = (uint64_t)INT64_MAX;
    return *first <= *last;
}

int queue_ack_range(queue_t *q, const char *peer, uint64_t first, uint64_t last)
{
    FAULT(q, "ack");
    if (!q || !bl_site_name_valid(peer) || first > last)
        return BL_EINVAL;
    if (!queue_seq_range(&first, &last))
        return 0; /* no sequence that can be queued: nothing to remove */
    peer_ent_t *e = peer_get(q, peer);
    if (!e)
        return BL_EIO;
    sqlite3_stmt *s = queue_stmt(q, S_ACK);
    queue_bind_name(s, 1, peer);
    sqlite3_bind_int64(s, 2, (int64_t)first);
    sqlite3_bind_int64(s, 3, (int64_t)last);
    int rc = queue_run(q, s, "removing acknowledged messages");
    if (rc == 0) {
        size_t gone = (size_t)sqlite3_changes(q->db);
        e->count = e->count > gone ? e->count - gone : 0;
    }
    return rc;
}

int queue_ack(queue_t *q, const char *peer, uint64_t seq)
{
    return queue_ack_range(q, peer, seq, seq);
}

size_t queue_depth(queue_t *q, const char *peer)
{
    if (!q || !bl_site_name_valid(peer))
        return 0;
    peer_ent_t *e = peer_get(q, peer);
    return e ? e->count : 0;
}

void queue_msgs_free(bl_msg_t **msgs, int64_t *enq_ms, size_t n)
{
    for (size_t i = 0; msgs && i < n; i++)
        msg_free(msgs[i]);
    free(msgs);
    free(enq_ms);
}

/* Which rows a peek takes: seq in (after, upto], rows of at most max_row bytes
 * (0: any; S_PEEK_SMALL). */
typedef struct {
    uint64_t upto;
    size_t max_row;
} peek_filter_t;

/* One LIMITed page of rows. Rows that do not decode are logged and collected in bad[]
 * so the caller can delete them once the statement is reset. */
static int peek_page(queue_t *q, const char *peer, const peek_filter_t *f, uint64_t *after,
                     size_t limit, queue_list_t *o, uint64_t *bad, size_t *n_bad, size_t *rows)
{
    sqlite3_stmt *s = queue_stmt(q, f->max_row ? S_PEEK_SMALL : S_PEEK);
    queue_bind_name(s, 1, peer);
    sqlite3_bind_int64(s, 2, (int64_t)*after);
    sqlite3_bind_int64(s, 3, (int64_t)BL_MIN(limit, (size_t)INT64_MAX));
    if (f->max_row) {
        sqlite3_bind_int64(s, 4, (int64_t)BL_MIN(f->upto, (uint64_t)INT64_MAX));
        sqlite3_bind_int64(s, 5, (int64_t)BL_MIN(f->max_row, (size_t)INT64_MAX));
    }
    int src = SQLITE_DONE, rc = 0;
    *rows = 0;
    while (rc == 0 && (src = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(s, 0);
        int64_t enq_ms = sqlite3_column_int64(s, 1);
        const void *blob = sqlite3_column_blob(s, 2);
        size_t len = (size_t)sqlite3_column_bytes(s, 2);
        bl_msg_t *m = NULL;
        (*rows)++;
        *after = seq;
        rc = queue_frame_decode(blob, len, &m);
        if (rc == 0 && m->seq != seq)
            rc = BL_EINVAL;
        if (rc == 0) {
            if ((rc = queue_list_add(o, m, enq_ms)))
                msg_free(m);
        } else if (rc != BL_ENOMEM) {
            LOG_ERROR(WHO, "peer %s: queued seq %" PRIu64 " is corrupt (%s, %zu bytes): dropped",
                      peer, seq, bl_strerror(rc), len);
            msg_free(m);
            bad[(*n_bad)++] = seq;
            rc = 0;
            if (*n_bad == 16) /* delete these before reading on */
                break;
        }
    }
    if (rc == 0 && src != SQLITE_ROW && src != SQLITE_DONE)
        rc = queue_db_fail(q, src, "reading a peer's queue");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc;
}

static int peek(queue_t *q, const char *peer, const peek_filter_t *f, uint64_t after_seq,
                size_t max, bl_msg_t ***msgs, int64_t **enq_ms, size_t *n)
{
    if (!q || !bl_site_name_valid(peer) || !msgs || !enq_ms || !n)
        return BL_EINVAL;
    *msgs = NULL;
    *enq_ms = NULL;
    *n = 0;
    queue_list_t o = {0};
    int rc = 0;
    /* A corrupt row does not count against `max`: read on until max are found or the
     * queue ends, in pages of at most what is still wanted. */
    while (rc == 0 && o.n < max) {
        uint64_t bad[16];
        size_t n_bad = 0, rows, want = max - o.n;
        rc = peek_page(q, peer, f, &after_seq, want, &o, bad, &n_bad, &rows);
        for (size_t i = 0; rc == 0 && i < n_bad; i++)
            rc = queue_ack(q, peer, bad[i]);
        if (rows == 0 || (n_bad == 0 && rows < want))
            break;
    }
    if (rc) {
        queue_msgs_free(o.msgs, o.enq, o.n);
        return rc;
    }
    *msgs = o.msgs;
    *enq_ms = o.enq;
    *n = o.n;
    return 0;
}

int queue_peek(queue_t *q, const char *peer, uint64_t after_seq, size_t max, bl_msg_t ***msgs,
               int64_t **enq_ms, size_t *n)
{
    const peek_filter_t all = {.upto = UINT64_MAX, .max_row = 0};
    return peek(q, peer, &all, after_seq, max, msgs, enq_ms, n);
}

int queue_peek_small(queue_t *q, const char *peer, uint64_t after_seq, uint64_t upto_seq,
                     size_t max_row, size_t max, bl_msg_t ***msgs, int64_t **enq_ms, size_t *n)
{
    if (!max_row)
        return BL_EINVAL;
    const peek_filter_t small = {.upto = upto_seq, .max_row = max_row};
    return peek(q, peer, &small, after_seq, max, msgs, enq_ms, n);
}

size_t queue_row_size(const bl_msg_t *m)
{
    return queue_frame_size(m);
}
