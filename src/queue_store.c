/* SPDX-License-Identifier: MIT */
/* queue_store.c - the small stores: retained messages, meta values, deliveries in doubt, the local
 * session's packet ids (queue.h; queue_int.h says where the rest is). */
#include "queue_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- retained store ---- */

static ret_use_t *ret_use_of(queue_t *q, const char *origin)
{
    for (size_t i = 0; i < q->n_ret_use; i++)
        if (!strcmp(q->ret_use[i].name, origin))
            return &q->ret_use[i];
    ret_use_t *n = realloc(q->ret_use, (q->n_ret_use + 1) * sizeof(*n));
    if (!n)
        return NULL;
    q->ret_use = n;
    n = &q->ret_use[q->n_ret_use++];
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", origin);
    return n;
}

/* Count every stored entry by its origin, once (and again after a rollback). */
static int ret_use_load(queue_t *q)
{
    if (q->ret_loaded)
        return 0;
    q->n_ret_use = 0;
    sqlite3_stmt *s = queue_stmt(q, S_RET_ALL);
    int src, rc = 0;
    char origin[BL_SITE_NAME_MAX + 1];
    while (rc == 0 && (src = sqlite3_step(s)) == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        queue_frame_origin(sqlite3_column_blob(s, 1), len, origin);
        ret_use_t *u = ret_use_of(q, origin);
        if (!u)
            rc = BL_ENOMEM;
        else
            u->topics++, u->bytes += len;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = queue_db_fail(q, src, "reading the retained store");
    sqlite3_reset(s);
    q->ret_loaded = rc == 0;
    return rc;
}

/* The stored entry of topic: its origin and length (*len 0 when there is none). */
static int ret_old(queue_t *q, const char *topic, char origin[BL_SITE_NAME_MAX + 1], size_t *len)
{
    sqlite3_stmt *s = queue_stmt(q, S_RET_GET);
    queue_bind_name(s, 1, topic);
    int src = sqlite3_step(s), rc = 0;
    *len = 0;
    if (src == SQLITE_ROW) {
        *len = (size_t)sqlite3_column_bytes(s, 0);
        queue_frame_origin(sqlite3_column_blob(s, 0), *len, origin);
    } else if (src != SQLITE_DONE) {
        rc = queue_db_fail(q, src, "reading a retained message");
    }
    sqlite3_reset(s);
    return rc;
}

int queue_retained_usage(queue_t *q, const char *origin, size_t *topics, size_t *bytes)
{
    int rc = q && origin ? ret_use_load(q) : BL_EINVAL;
    ret_use_t *u = rc ? NULL : ret_use_of(q, origin);
    if (!rc && !u)
        rc = BL_ENOMEM;
    *topics = u ? u->topics : 0;
    *bytes = u ? u->bytes : 0;
    return rc;
}

int queue_retained_put_max(queue_t *q, const bl_msg_t *m, size_t max_topics, size_t max_bytes)
{
    FAULT(q, "retained_put");
    if (!q || !m || !m->topic)
        return BL_EINVAL;
    uint8_t *frame;
    size_t len, old_len;
    char old[BL_SITE_NAME_MAX + 1];
    const char *origin = m->origin ? m->origin : "";
    int rc = queue_frame_encode(m, &frame, &len);
    if (!rc)
        rc = ret_use_load(q);
    if (!rc)
        rc = ret_old(q, m->topic, old, &old_len);
    /* Both entries made first: making one may move the array. */
    if (!rc && (!ret_use_of(q, origin) || (old_len && !ret_use_of(q, old))))
        rc = BL_ENOMEM;
    if (rc) {
        free(frame);
        return rc;
    }
    ret_use_t *u = ret_use_of(q, origin), *o = old_len ? ret_use_of(q, old) : NULL;
    /* What the origin would hold with m in place of the topic's entry. Only growth is
     * refused: a store over a cap lowered since may still replace its entries. */
    bool same = old_len && u == o;
    size_t topics = u->topics + !same, bytes = u->bytes - (same ? old_len : 0) + len;
    if ((max_topics && topics > max_topics && topics > u->topics) ||
        (max_bytes && bytes > max_bytes && bytes > u->bytes)) {
        free(frame);
        return BL_ETOOBIG;
    }
    /* An empty payload is stored like any other: the tombstone lets a site that was
     * offline learn of the clear later (MQTT 5 section 3.3.1.3). */
    sqlite3_stmt *s = queue_stmt(q, S_RET_PUT);
    queue_bind_name(s, 1, m->topic);
    sqlite3_bind_blob(s, 2, frame, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, bl_wall_ms());
    rc = queue_run(q, s, "storing a retained message");
    sqlite3_clear_bindings(s);
    free(frame);
    if (rc)
        return rc;
    if (old_len) {
        o->topics--;
        o->bytes -= BL_MIN(o->bytes, old_len);
    }
    u->topics++;
    u->bytes += len;
    return 0;
}

int queue_retained_put(queue_t *q, const bl_msg_t *m)
{
    return queue_retained_put_max(q, m, 0, 0);
}

int queue_retained_all(queue_t *q, bl_msg_t ***msgs, size_t *n)
{
    if (!q || !msgs || !n)
        return BL_EINVAL;
    *msgs = NULL;
    *n = 0;
    queue_list_t o = {0};
    sqlite3_stmt *s = queue_stmt(q, S_RET_ALL);
    int src, rc = 0;
    while (rc == 0 && (src = sqlite3_step(s)) == SQLITE_ROW) {
        const char *topic = (const char *)sqlite3_column_text(s, 0);
        bl_msg_t *m = NULL;
        rc = queue_frame_decode(sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1), &m);
        if (rc == 0 && (!topic || strcmp(topic, m->topic) != 0))
            rc = BL_EINVAL;
        if (rc == 0) {
            if ((rc = queue_list_add(&o, m, 0)))
                msg_free(m);
        } else if (rc != BL_ENOMEM) {
            LOG_ERROR(WHO, "retained topic %s is corrupt (%s): skipped", topic ? topic : "?",
                      bl_strerror(rc));
            msg_free(m);
            rc = 0;
        }
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = queue_db_fail(q, src, "reading the retained store");
    sqlite3_reset(s);
    free(o.enq);
    if (rc) {
        queue_msgs_free(o.msgs, NULL, o.n);
        return rc;
    }
    *msgs = o.msgs;
    *n = o.n;
    return 0;
}

/* ---- meta values and origin epochs ---- */

int queue_meta_get(queue_t *q, const char *key, char *buf, size_t len)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL);
    if (src != SQLITE_OK)
        return queue_db_fail(q, src, "reading a meta value");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    src = sqlite3_step(s);
    int rc = BL_ENOTFOUND;
    if (src == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(s, 0);
        if ((size_t)sqlite3_column_bytes(s, 0) >= len) {
            rc = BL_ETOOBIG; /* never a silently cut value */
        } else {
            snprintf(buf, len, "%s", v ? (const char *)v : "");
            rc = 0;
        }
    } else if (src != SQLITE_DONE) {
        rc = queue_db_fail(q, src, "reading a meta value");
    }
    sqlite3_finalize(s);
    return rc;
}

int queue_meta_set(queue_t *q, const char *key, const char *value)
{
    FAULT(q, "meta_set");
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db,
                                 "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) "
                                 "DO UPDATE SET value = excluded.value",
                                 -1, &s, NULL);
    if (src != SQLITE_OK)
        return queue_db_fail(q, src, "storing a meta value");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_TRANSIENT);
    src = sqlite3_step(s);
    sqlite3_finalize(s);
    return src == SQLITE_DONE ? 0 : queue_db_fail(q, src, "storing a meta value");
}

int queue_retained_get(queue_t *q, const char *topic, bl_msg_t **out)
{
    *out = NULL;
    sqlite3_stmt *s = queue_stmt(q, S_RET_GET);
    queue_bind_name(s, 1, topic);
    int src = sqlite3_step(s);
    int rc = BL_ENOTFOUND;
    if (src == SQLITE_ROW)
        rc = queue_frame_decode(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), out);
    else if (src != SQLITE_DONE)
        rc = queue_db_fail(q, src, "reading a retained message");
    sqlite3_reset(s);
    return rc;
}

/* ---- in-doubt deliveries ---- */

int queue_indoubt_add(queue_t *q, const char *origin, uint64_t seq, const void *key, size_t key_len)
{
    FAULT(q, "indoubt_add");
    sqlite3_stmt *s = queue_stmt(q, S_INDOUBT_ADD);
    queue_bind_name(s, 1, origin);
    sqlite3_bind_int64(s, 2, (int64_t)seq);
    if (key)
        sqlite3_bind_blob(s, 3, key, (int)key_len, SQLITE_STATIC);
    int rc = queue_run(q, s, "storing an in-doubt delivery");
    sqlite3_clear_bindings(s);
    return rc;
}

int queue_indoubt_del_range(queue_t *q, const char *origin, uint64_t first, uint64_t last)
{
    if (!q || !bl_site_name_valid(origin) || first > last)
        return BL_EINVAL;
    if (!queue_seq_range(&first, &last))
        return 0; /* no sequence a record can have: nothing to remove */
    sqlite3_stmt *s = queue_stmt(q, S_INDOUBT_DEL);
    queue_bind_name(s, 1, origin);
    sqlite3_bind_int64(s, 2, (int64_t)first);
    sqlite3_bind_int64(s, 3, (int64_t)last);
    return queue_run(q, s, "removing in-doubt deliveries");
}

int queue_indoubt_del(queue_t *q, const char *origin, uint64_t seq)
{
    return queue_indoubt_del_range(q, origin, seq, seq);
}

int queue_indoubt_each(queue_t *q, queue_indoubt_cb cb, void *ud)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db, "SELECT origin, seq, key FROM indoubt", -1, &s, NULL);
    if (src != SQLITE_OK)
        return queue_db_fail(q, src, "reading in-doubt deliveries");
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        const char *origin = (const char *)sqlite3_column_text(s, 0);
        if (origin)
            cb(ud, origin, (uint64_t)sqlite3_column_int64(s, 1), sqlite3_column_blob(s, 2),
               (size_t)sqlite3_column_bytes(s, 2));
    }
    sqlite3_finalize(s);
    return src == SQLITE_DONE ? 0 : queue_db_fail(q, src, "reading in-doubt deliveries");
}

/* ---- the local broker session's QoS 2 state ---- */

static int mq_pid(queue_t *q, int id, uint16_t pid, const char *what)
{
    if (!q || !pid)
        return BL_EINVAL;
    sqlite3_stmt *s = queue_stmt(q, id);
    sqlite3_bind_int(s, 1, pid);
    return queue_run(q, s, what);
}

int queue_mq_in_add(queue_t *q, uint16_t pid)
{
    FAULT(q, "mq_in_add");
    return mq_pid(q, S_MQIN_ADD, pid, "storing a received QoS 2 packet id");
}

int queue_mq_in_del(queue_t *q, uint16_t pid)
{
    FAULT(q, "mq_in_del");
    return mq_pid(q, S_MQIN_DEL, pid, "removing a received QoS 2 packet id");
}

int queue_mq_out_add(queue_t *q, uint16_t pid, const char *origin, uint64_t seq, const bl_msg_t *m)
{
    FAULT(q, "mq_out_add");
    if (!q || !pid || !m || (seq && !queue_seq_ok(seq)))
        return BL_EINVAL;
    sqlite3_stmt *s = queue_stmt(q, S_MQOUT_ADD);
    int rc = queue_bind_frame(s, 4, m);
    if (rc)
        return rc;
    sqlite3_bind_int(s, 1, pid);
    queue_bind_name(s, 2, origin ? origin : "");
    sqlite3_bind_int64(s, 3, (int64_t)seq);
    rc = queue_run(q, s, "storing a QoS 2 publish");
    sqlite3_clear_bindings(s);
    return rc;
}

int queue_mq_out_rec(queue_t *q, uint16_t pid)
{
    FAULT(q, "mq_out_rec");
    return mq_pid(q, S_MQOUT_REC, pid, "storing a QoS 2 publish's PUBREC");
}

int queue_mq_out_del(queue_t *q, uint16_t pid)
{
    return mq_pid(q, S_MQOUT_DEL, pid, "removing a QoS 2 publish's packet id");
}

int queue_mq_reset(queue_t *q)
{
    int src = sqlite3_exec(q->db, "DELETE FROM mqin; DELETE FROM mqout; DELETE FROM mqin1", NULL,
                           NULL, NULL);
    return src == SQLITE_OK ? 0
                            : queue_db_fail(q, src, "forgetting the local session's packet ids");
}

int queue_mq_each(queue_t *q, queue_mq_in_cb in, queue_mq_out_cb out, void *ud)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db, "SELECT pid FROM mqin", -1, &s, NULL);
    if (src == SQLITE_OK)
        while ((src = sqlite3_step(s)) == SQLITE_ROW)
            in(ud, (uint16_t)sqlite3_column_int(s, 0));
    sqlite3_finalize(s);
    if (src != SQLITE_DONE)
        return queue_db_fail(q, src, "reading the local session's packet ids");
    src = sqlite3_prepare_v2(q->db, "SELECT pid, origin, seq, released, frame FROM mqout", -1, &s,
                             NULL);
    while (src == SQLITE_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        src = SQLITE_OK;
        const char *origin = (const char *)sqlite3_column_text(s, 1);
        uint16_t pid = (uint16_t)sqlite3_column_int(s, 0);
        bool released = sqlite3_column_int(s, 3) != 0;
        bl_msg_t *m = NULL;
        if (queue_frame_decode(sqlite3_column_blob(s, 4), (size_t)sqlite3_column_bytes(s, 4), &m) &&
            !released) {
            /* It cannot go again: the broker keeps its id until the session expires. */
            LOG_ERROR(WHO, "a stored QoS 2 publish (packet id %u) is corrupt: left out", pid);
            continue;
        }
        out(ud, pid, origin ? origin : "", (uint64_t)sqlite3_column_int64(s, 2), released, m);
        msg_free(m);
    }
    sqlite3_finalize(s);
    return src == SQLITE_DONE ? 0 : queue_db_fail(q, src, "reading the local session's packet ids");
}

/* QoS 1 packet ids taken from the broker (exactly-once): a resend of one of them can
 * only be among the last QUEUE_MQIN1_WINDOW, since the broker has at most our Receive
 * Maximum unacknowledged and gives an id anew only after its PUBACK. */
#define QUEUE_MQIN1_WINDOW 4096

static int in1_counter(queue_t *q)
{
    if (q->in1_n >= 0)
        return 0;
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db, "SELECT COALESCE(MAX(n), 0) FROM mqin1", -1, &s, NULL);
    if (src == SQLITE_OK && (src = sqlite3_step(s)) == SQLITE_ROW)
        q->in1_n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return q->in1_n >= 0 ? 0 : queue_db_fail(q, src, "reading the QoS 1 packet ids");
}

/* The statement id with pid bound, once the arguments are checked and the counter known. */
static int in1_stmt(queue_t *q, int id, uint16_t pid, const void *key, sqlite3_stmt **s)
{
    if (!q || !pid || !key)
        return BL_EINVAL;
    int rc = in1_counter(q);
    if (rc)
        return rc;
    *s = queue_stmt(q, id);
    sqlite3_bind_int(*s, 1, pid);
    return 0;
}

int queue_mq_in1_add(queue_t *q, uint16_t pid, const void *key, size_t key_len)
{
    FAULT(q, "mq_in1_add");
    sqlite3_stmt *s;
    int rc = in1_stmt(q, S_MQIN1_ADD, pid, key, &s);
    if (rc)
        return rc;
    sqlite3_bind_blob(s, 2, key, (int)key_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, ++q->in1_n);
    rc = queue_run(q, s, "storing a QoS 1 packet id");
    sqlite3_clear_bindings(s);
    if (!rc && q->in1_n % 1024 == 0) {
        s = queue_stmt(q, S_MQIN1_PRUNE);
        sqlite3_bind_int64(s, 1, q->in1_n - QUEUE_MQIN1_WINDOW);
        rc = queue_run(q, s, "pruning the QoS 1 packet ids");
    }
    return rc;
}

int queue_mq_in1_seen(queue_t *q, uint16_t pid, const void *key, size_t key_len)
{
    sqlite3_stmt *s;
    int rc = in1_stmt(q, S_MQIN1_GET, pid, key, &s);
    if (rc)
        return rc;
    int src = sqlite3_step(s);
    int seen = 0;
    if (src == SQLITE_ROW)
        seen = sqlite3_column_int64(s, 1) > q->in1_n - QUEUE_MQIN1_WINDOW &&
               (size_t)sqlite3_column_bytes(s, 0) == key_len &&
               !memcmp(sqlite3_column_blob(s, 0), key, key_len);
    sqlite3_reset(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return queue_db_fail(q, src, "reading a QoS 1 packet id");
    return seen;
}
