/* SPDX-License-Identifier: MIT */
/* site_ack.c - the acknowledgements a site owes its peers, gathered: an ACK is owed once
 * the message it acknowledges is durable here (its commit), and leaves in frames of up to
 * SITE_ACK_BATCH sequences, spaced so that they do not cost more packets than the
 * messages themselves (site_flush_acks says how). */
#include "site_int.h"

void site_ack_add(peer_ctx_t *p, uint64_t seq)
{
    g_array_append_val(p->acks, seq);
    site_schedule_commit(p->site);
}

/* Send the committed acks in frames of SITE_ACK_BATCH; all of them, or only full frames. */
static void send_acks(peer_ctx_t *p, bool all)
{
    while (p->acks_ready->len && (all || p->acks_ready->len >= SITE_ACK_BATCH)) {
        size_t n = BL_MIN(p->acks_ready->len, SITE_ACK_BATCH);
        guint had = p->acks_ready->len;
        if (link_is_open(p->link) &&
            link_send_ack(p->link, (uint64_t *)(void *)p->acks_ready->data, n) == 0)
            p->ack_sent_us = g_get_monotonic_time();
        if (p->acks_ready->len != had)
            return; /* the send failed and took the link down, which dropped them all */
        g_array_remove_range(p->acks_ready, 0, (guint)n);
    }
}

static void ack_timer_stop(peer_ctx_t *p)
{
    loop_cancel(&p->ack_src);
}

static gboolean ack_timer_cb(gpointer ud)
{
    peer_ctx_t *p = ud;
    p->ack_src = NULL;
    send_acks(p, true);
    return G_SOURCE_REMOVE;
}

/* After a commit: the acks it made durable may go. An ack only lets the peer drop the
 * message from its queue, nothing waits on it, so they leave together. Sent after every
 * commit (every few messages under load), each took an SCTP packet, a DTLS record and a
 * UDP datagram, and an SCTP SACK coming back: more packets than the messages themselves
 * needed. Now a full frame leaves at once; the rest with a commit at least
 * SITE_ACK_SPACING_US after the last ACK frame, or SITE_ACK_LATE_MS after this commit if
 * no such commit comes. Not with a commit that has just handed messages to our broker
 * (`publishing`): their writes would then wait behind the ACK's trip down the stack. */
void site_flush_acks(peer_ctx_t *p, bool publishing)
{
    if (p->acks->len) {
        g_array_append_vals(p->acks_ready, p->acks->data, p->acks->len);
        g_array_set_size(p->acks, 0);
    }
    send_acks(p, false);
    if (!p->acks_ready->len)
        return;
    if (!publishing && g_get_monotonic_time() - p->ack_sent_us >= SITE_ACK_SPACING_US) {
        send_acks(p, true);
        ack_timer_stop(p);
        return;
    }
    if (!p->ack_src) {
        p->ack_src = loop_timeout(p->site->ctx, SITE_ACK_LATE_MS, ack_timer_cb, p);
    }
}

/* Acks not sent yet are dropped: the peer sends those messages again, and they are
 * acknowledged as duplicates. */
void site_drop_acks(peer_ctx_t *p)
{
    g_array_set_size(p->acks, 0);
    g_array_set_size(p->acks_ready, 0);
    ack_timer_stop(p);
}
