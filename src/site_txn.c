/* SPDX-License-Identifier: MIT */
/* site_txn.c - the site's commit machinery: one transaction per turn of the loop, the
 * failure policy, and the gate that keeps what depends on a write from leaving first.
 * Below site.c, site_in.c, site_out.c and site_mq.c, which write through it; what waits
 * for a commit is site.c's after_commit (a hook, so nothing here calls upward). */
#include "site_int.h"

/* One transaction per main-loop dispatch:
 *
 * Writes open a transaction lazily; a high-priority idle commits it right after the
 * callback that wrote, before any other I/O is dispatched. Only after the commit do we
 * send frames (a sequence must be durable before a peer can see it) and acks (a dedupe
 * mark must be durable before the peer forgets the message). */

/* The database lost a write that an acknowledgement will rely on (a failed commit, a
 * transaction that cannot begin, a message that cannot be queued). Going on would
 * acknowledge what is not stored: stop as a crash would (no exit handlers, no last
 * writes). The database is consistent, and the local broker and the peers send again
 * what was not acknowledged (docs/QUEUE.md, Durability). */
_Noreturn void site_storage_failed(const char *what)
{
    LOG_ERROR("site",
              "%s (disk full or failing?): stopping now, as after a crash; nothing "
              "unstored was acknowledged. Restart once the disk is fixed.",
              what);
    _exit(SITE_EXIT_STORAGE);
}

/* A write to the database failed: the same as a failed commit (queue.h). */
void site_db(int rc, const char *what)
{
    if (rc)
        site_storage_failed(what);
}

static gboolean commit_cb(gpointer ud)
{
    site_t *s = ud;
    s->commit_src = NULL;
    loop_cancel(&s->lazy_src);
    if (s->txn_open) {
        s->txn_open = false;
        /* What this commit held (queued messages whose PUBACK is waiting, seen marks
         * whose ACK is waiting, packet ids, sequences) would be gone. */
        if (queue_commit(s->q))
            site_storage_failed("cannot commit the queue database");
    }
    s->after_commit(s);
    return G_SOURCE_REMOVE;
}

void site_schedule_commit(site_t *s)
{
    if (s->commit_src)
        return;
    s->commit_src = loop_idle(s->ctx, G_PRIORITY_HIGH, commit_cb, s);
}

static void txn_begin(site_t *s)
{
    if (s->txn_open)
        return;
    if (queue_begin(s->q))
        site_storage_failed("cannot begin a transaction in the queue database");
    s->txn_open = true;
}

void site_txn(site_t *s)
{
    txn_begin(s);
    site_schedule_commit(s);
}

static gboolean lazy_commit_cb(gpointer ud)
{
    site_t *s = ud;
    s->lazy_src = NULL;
    if (!s->commit_src)
        site_schedule_commit(s);
    return G_SOURCE_REMOVE;
}

/* For writes that nothing waits on and that a crash may lose: a peer's ACK deleting a
 * message (lost, the message is sent again and the peer's dedupe window drops it) or
 * an echo closing an in-doubt record (lost, the recovery finds no echo and drops the
 * record; the delivery itself was committed at the PUBACK). They ride with the next
 * commit, or at the latest SITE_LAZY_COMMIT_MS later: under load that halves the
 * commits of a sending site. */
void site_txn_lazy(site_t *s)
{
    txn_begin(s);
    if (!s->commit_src && !s->lazy_src)
        s->lazy_src = loop_timeout(s->ctx, SITE_LAZY_COMMIT_MS, lazy_commit_cb, s);
}

bool site_can_write(void *ud)
{
    site_t *s = ud;
    return !(s->txn_open && s->commit_src);
}
