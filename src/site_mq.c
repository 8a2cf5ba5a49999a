/* SPDX-License-Identifier: MIT */
/* site_mq.c - the local broker session's QoS 2 state, kept in the site's database
 * (mqtt.h, mqtt_store_t) so that the session outlives a kill -9 of the daemon.
 *
 * Each record joins the transaction of what it belongs with, and mqtt.c writes the
 * packet that depends on it (PUBREC, PUBLISH, PUBREL, PUBCOMP) only once that commit is
 * done (site_can_write):
 *   - a QoS 2 message from the broker is routed and queued, and its packet id recorded,
 *     in one commit before its PUBREC: after a crash the broker's resend of it is known
 *     and not routed twice; the id goes, committed, before the PUBCOMP (the broker may
 *     reuse it after that);
 *   - a QoS 2 message from a peer gets its packet id recorded, with the peer's origin and
 *     sequence, before its PUBLISH; its PUBREC is recorded with the peer's sequence
 *     marked delivered, before the PUBREL. After a crash, the PUBREL of a received
 *     PUBREC is sent again, and a message whose PUBREC never came goes out with its old
 *     id when the peer sends it again (the broker, holding that id, delivers it once). */
#include "site_int.h"

static void in_add(void *ud, uint16_t pid)
{
    site_t *s = ud;
    /* With at-least-once a resend after a crash may come twice: nothing to record. */
    if (s->cfg->delivery == CONFIG_DELIVERY_AT_LEAST_ONCE)
        return;
    site_txn(s);
    site_db(queue_mq_in_add(s->q, pid), "cannot store a received QoS 2 packet id");
}

static void in_del(void *ud, uint16_t pid)
{
    site_t *s = ud;
    site_txn(s); /* before the PUBCOMP: the broker may reuse the id right after it */
    site_db(queue_mq_in_del(s->q, pid), "cannot remove a received QoS 2 packet id");
}

static void out_add(void *ud, uint64_t token, uint16_t pid, const bl_msg_t *m)
{
    site_t *s = ud;
    echo_rec_t *r = echo_by_token(s->echo, token);
    site_txn(s);
    site_db(queue_mq_out_add(s->q, pid, r ? r->origin : "", r ? r->seq : 0, m),
            "cannot store a QoS 2 publish");
}

static void out_rec(void *ud, uint16_t pid)
{
    site_t *s = ud;
    site_txn(s);
    site_db(queue_mq_out_rec(s->q, pid), "cannot store a QoS 2 publish's PUBREC");
}

/* Lost in a crash, the record makes the next run send the PUBREL again, which the
 * broker answers with a PUBCOMP: harmless, so it waits for the next commit. */
static void out_del(void *ud, uint16_t pid)
{
    site_t *s = ud;
    site_txn_lazy(s);
    site_db(queue_mq_out_del(s->q, pid), "cannot remove a QoS 2 publish's packet id");
}

static void reset(void *ud)
{
    site_t *s = ud;
    site_txn(s);
    site_db(queue_mq_reset(s->q), "cannot forget the local session's packet ids");
}

/* delivery = exactly-once: a QoS 1 message the last run took (recorded with what it
 * did with it, before its PUBACK) and the broker sends again is not routed twice. */
static void in1_add(void *ud, uint16_t pid, const bl_msg_t *m)
{
    site_t *s = ud;
    if (s->cfg->delivery != CONFIG_DELIVERY_EXACTLY_ONCE)
        return;
    char *key = echo_key(m->topic, m->payload, m->payload_len);
    if (!key)
        site_storage_failed("cannot record a QoS 1 packet id (out of memory)");
    site_txn(s);
    site_db(queue_mq_in1_add(s->q, pid, key, strlen(key)), "cannot store a QoS 1 packet id");
    free(key);
}

static bool in1_seen(void *ud, uint16_t pid, const bl_msg_t *m)
{
    site_t *s = ud;
    if (s->cfg->delivery != CONFIG_DELIVERY_EXACTLY_ONCE)
        return false;
    char *key = echo_key(m->topic, m->payload, m->payload_len);
    int rc = key ? queue_mq_in1_seen(s->q, pid, key, strlen(key)) : BL_ENOMEM;
    free(key);
    if (rc < 0)
        site_storage_failed("cannot read a QoS 1 packet id");
    if (rc == 1)
        LOG_DEBUG("site", "the broker sent again a QoS 1 message we took before a restart (%s)",
                  m->topic);
    return rc == 1;
}

static void restore_in(void *ud, uint16_t pid)
{
    site_t *s = ud;
    local_restore_in(s->local, pid);
}

/* A QoS 2 publish of the last run that its broker may hold unreleased goes again at
 * connect, with its packet id; until its PUBREC it is on its way, as any other: a
 * resend by its peer is not published again, and its PUBREC marks it delivered. */
static void restore_out(void *ud, uint16_t pid, const char *origin, uint64_t seq, bool released,
                        const bl_msg_t *m)
{
    site_t *s = ud;
    uint64_t token = 0;
    if (!released) {
        token = site_in_flight(s, origin, seq);
        s->mq_restored++;
    }
    local_restore_out(s->local, pid, released, m, token);
}

int site_mq_start(site_t *s)
{
    static const mqtt_store_t st = {.in_add = in_add,
                                    .in_del = in_del,
                                    .out_add = out_add,
                                    .out_rec = out_rec,
                                    .out_del = out_del,
                                    .reset = reset,
                                    .in1_add = in1_add,
                                    .in1_seen = in1_seen};
    local_set_store(s->local, &st, s);
    int rc = queue_mq_each(s->q, restore_in, restore_out, s);
    if (!rc && s->mq_restored)
        LOG_INFO("site",
                 "%zu QoS 2 messages from peers were on their way to the local broker when we "
                 "stopped: they go again with their packet ids",
                 s->mq_restored);
    return rc;
}
