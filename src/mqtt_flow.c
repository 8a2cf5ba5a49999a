/* SPDX-License-Identifier: MIT */
/* mqtt_flow.c - the packets in flight of an MQTT session, both ways (mqtt_int.h): the
 * publish FIFO and the window of publishes in flight by packet id, what each
 * acknowledgement from the broker ends, the QoS 2 state handed to the store, and what a
 * resumed or lost session does with all of it. No I/O: packets go into the output
 * buffer, which mqtt.c writes. */
#include "mqtt_int.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

void mqtt_flow_release(mqtt_t *c, pub_t *p)
{
    if (!p)
        return;
    if (p->m) {
        c->pending_bytes -= BL_MIN(c->pending_bytes, p->m->payload_len);
        msg_free(p->m);
    }
    free(p);
}

static bool in2_has(const mqtt_t *c, uint16_t pid)
{
    return c->in2[pid >> 3] & (1u << (pid & 7));
}

void mqtt_flow_in2_set(mqtt_t *c, uint16_t pid, bool on)
{
    if (on)
        c->in2[pid >> 3] |= (uint8_t)(1u << (pid & 7));
    else
        c->in2[pid >> 3] &= (uint8_t) ~(1u << (pid & 7));
}

static bool persistent_store(const mqtt_t *c)
{
    return c->has_store && !c->o.clean_start;
}

static void report(mqtt_t *c, uint64_t token)
{
    if (c->ev.on_published && !c->guard.freed)
        c->ev.on_published(c->ud, token);
}

/* A free packet identifier for a publish, subscribe or unsubscribe, or 0 (2.2.1). */
uint16_t mqtt_flow_pid(mqtt_t *c)
{
    for (unsigned i = 0; i < UINT16_MAX; i++) {
        c->next_pid = (uint16_t)(c->next_pid + 1);
        if (!c->next_pid)
            c->next_pid = 1;
        uint16_t pid = c->next_pid;
        if (g_hash_table_contains(c->by_pid, GUINT_TO_POINTER(pid)))
            continue;
        bool used = false;
        for (guint j = 0; j < c->subs->len && !used; j++)
            used = ((sub_t *)g_ptr_array_index(c->subs, j))->pid == pid;
        for (guint j = 0; j < c->unsubs->len && !used; j++)
            used = ((sub_t *)g_ptr_array_index(c->unsubs, j))->pid == pid;
        if (!used)
            return pid;
    }
    return 0;
}

void mqtt_flow_track(mqtt_t *c, pub_t *p)
{
    g_queue_push_tail(&c->inflight, p);
    g_hash_table_insert(c->by_pid, GUINT_TO_POINTER(p->pid), g_queue_peek_tail_link(&c->inflight));
}

pub_t *mqtt_flow_find(mqtt_t *c, uint16_t pid)
{
    GList *l = g_hash_table_lookup(c->by_pid, GUINT_TO_POINTER(pid));
    return l ? l->data : NULL;
}

static void inflight_remove(mqtt_t *c, pub_t *p)
{
    GList *l = g_hash_table_lookup(c->by_pid, GUINT_TO_POINTER(p->pid));
    g_hash_table_remove(c->by_pid, GUINT_TO_POINTER(p->pid));
    if (l)
        g_queue_delete_link(&c->inflight, l);
}

size_t mqtt_flow_out_pending(const mqtt_t *c)
{
    return c->out->len - c->out_off;
}

/* The broker answered publish number `no`: the mark before it is confirmed. */
static void answered(mqtt_t *c, uint64_t no)
{
    if (c->mark && no > c->mark_pubs) {
        c->mark = false;
        if (c->ev.on_acks_delivered && !c->guard.freed)
            c->ev.on_acks_delivered(c->ud, c->mark_msgs);
    }
}

/* Publishes in flight go back to the head of the FIFO, in order, to be published as new
 * ones: the broker has no session that knows their identifiers. */
void mqtt_flow_requeue(mqtt_t *c, bool resend)
{
    GQueue keep = G_QUEUE_INIT;
    while (!g_queue_is_empty(&c->inflight)) {
        pub_t *p = g_queue_pop_tail(&c->inflight);
        if (!p->m || (p->reported && !resend)) {
            /* an identifier of the last run, or a QoS 2 publish the broker had taken
             * (PUBREC) in the session it lost */
            mqtt_flow_release(c, p);
            continue;
        }
        p->pid = 0;
        p->state = 0;
        p->durable = false;
        p->resend = resend;
        g_queue_push_head(&keep, p);
    }
    g_hash_table_remove_all(c->by_pid);
    while (!g_queue_is_empty(&keep))
        g_queue_push_head(&c->fifo, g_queue_pop_tail(&keep));
}

/* A persistent session the broker kept: everything unacknowledged goes again with its
 * identifier, in order, before anything new (4.4). */
void mqtt_flow_resume(mqtt_t *c)
{
    for (GList *l = c->inflight.head; l; l = l->next) {
        pub_t *p = l->data;
        if (p->state == PUB_RELEASED)
            mqttpkt_ack(c->out, MQTTPKT_PUBREL, p->pid, 0);
        else if (p->m) {
            bl_msg_t m = *p->m;
            m.qos = p->qos;
            mqttpkt_publish(c->out, &m, p->pid, true);
        }
    }
}

/* The broker has no session for us: identifiers recorded in either direction mean
 * nothing now. */
void mqtt_flow_session_gone(mqtt_t *c)
{
    size_t lost = 0;
    for (GList *l = c->inflight.head; l; l = l->next)
        lost += ((pub_t *)l->data)->state == PUB_RELEASED;
    if (lost)
        LOG_WARN(c->o.name,
                 "the broker lost our session: %zu QoS 2 messages it had taken (PUBREC) "
                 "may not reach its subscribers",
                 lost);
    memset(c->in2, 0, sizeof c->in2);
    mqtt_flow_requeue(c, false);
    if (c->has_store && c->st.reset)
        c->st.reset(c->st_ud);
}

static void hand_up(mqtt_t *c, bl_msg_t *m)
{
    c->msgs_in++;
    m->dup = false;
    if (c->ev.on_message && !c->guard.freed)
        c->ev.on_message(c->ud, m);
}

void mqtt_flow_on_publish(mqtt_t *c, mqttpkt_t *k)
{
    bl_msg_t *m = &k->msg;
    switch (m->qos) {
    case 0:
        hand_up(c, m);
        return;
    case 1:
        /* A resend after our restart of one the last run took: its PUBACK was lost. */
        if (!(m->dup && persistent_store(c) && c->st.in1_seen &&
              c->st.in1_seen(c->st_ud, k->pid, m))) {
            if (persistent_store(c) && c->st.in1_add)
                c->st.in1_add(c->st_ud, k->pid, m);
            hand_up(c, m);
        }
        mqttpkt_ack(c->out, MQTTPKT_PUBACK, k->pid, 0);
        return;
    default:
        /* 4.3.3, method B: the identifier is ours until the PUBREL; a PUBLISH with it
         * before then is a resend of what we already have. */
        if (!in2_has(c, k->pid)) {
            mqtt_flow_in2_set(c, k->pid, true);
            if (persistent_store(c) && c->st.in_add)
                c->st.in_add(c->st_ud, k->pid);
            hand_up(c, m);
        }
        mqttpkt_ack(c->out, MQTTPKT_PUBREC, k->pid, 0);
        return;
    }
}

void mqtt_flow_on_pubrel(mqtt_t *c, uint16_t pid)
{
    if (in2_has(c, pid)) {
        mqtt_flow_in2_set(c, pid, false);
        if (persistent_store(c) && c->st.in_del)
            c->st.in_del(c->st_ud, pid);
    }
    /* Also for an identifier we do not know (4.3.3: a PUBREL sent again). */
    mqttpkt_ack(c->out, MQTTPKT_PUBCOMP, pid, 0);
}

static void refused(mqtt_t *c, const pub_t *p, uint8_t reason)
{
    LOG_WARN(c->o.name, "broker refused a publish on %s: %s", p->m ? p->m->topic : "?",
             mqttpkt_reason_name(reason));
}

void mqtt_flow_on_puback(mqtt_t *c, const mqttpkt_t *k)
{
    pub_t *p = mqtt_flow_find(c, k->pid);
    if (!p || p->qos != 1) {
        LOG_DEBUG(c->o.name, "PUBACK for packet %u, which waits for none", k->pid);
        return;
    }
    inflight_remove(c, p);
    answered(c, p->no);
    /* A refusal (reason >= 0x80, e.g. not authorized) is final: retrying cannot help,
     * and keeping it would wedge the queue above. It is reported as done, loudly. */
    if (k->reason >= 0x80)
        refused(c, p, k->reason);
    uint64_t token = p->token;
    mqtt_flow_release(c, p);
    report(c, token);
}

void mqtt_flow_on_pubrec(mqtt_t *c, const mqttpkt_t *k)
{
    pub_t *p = mqtt_flow_find(c, k->pid);
    if (!p || p->qos != 2) {
        LOG_DEBUG(c->o.name, "PUBREC for packet %u, which waits for none", k->pid);
        mqttpkt_ack(c->out, MQTTPKT_PUBREL, k->pid, 0x92); /* 3.6.2.1 */
        return;
    }
    if (p->state == PUB_RELEASED) { /* a PUBREC again: our PUBREL may be lost */
        mqttpkt_ack(c->out, MQTTPKT_PUBREL, p->pid, 0);
        return;
    }
    answered(c, p->no);
    if (k->reason >= 0x80) { /* 4.3.3: the exchange ends here */
        refused(c, p, k->reason);
        inflight_remove(c, p);
        if (p->durable && c->st.out_del)
            c->st.out_del(c->st_ud, p->pid);
        uint64_t token = p->token;
        mqtt_flow_release(c, p);
        report(c, token);
        return;
    }
    p->state = PUB_RELEASED;
    if (p->durable && c->st.out_rec)
        c->st.out_rec(c->st_ud, p->pid);
    mqttpkt_ack(c->out, MQTTPKT_PUBREL, p->pid, 0);
    if (p->durable) {
        /* The broker owns it and we owe only the PUBREL, which the store keeps across a
         * crash: the message is delivered. */
        p->reported = true;
        report(c, p->token);
    }
}

void mqtt_flow_on_pubcomp(mqtt_t *c, const mqttpkt_t *k)
{
    pub_t *p = mqtt_flow_find(c, k->pid);
    if (!p || p->state != PUB_RELEASED) {
        LOG_DEBUG(c->o.name, "PUBCOMP for packet %u, which waits for none", k->pid);
        return;
    }
    inflight_remove(c, p);
    if (p->durable && c->st.out_del)
        c->st.out_del(c->st_ud, p->pid);
    bool was_reported = p->reported;
    uint64_t token = p->token;
    mqtt_flow_release(c, p);
    if (!was_reported)
        report(c, token);
}

/* Send one message from the FIFO. Returns 0 when it left (or was dropped for good and
 * reported), BL_EAGAIN when it must stay at the head of the FIFO. */
static int publish_one(mqtt_t *c, pub_t *p)
{
    bl_msg_t m = *p->m; /* shallow: only the expiry, QoS and retain change */
    if (m.has_expiry) {
        /* 3.3.2.3.3: the interval counts down while we hold the message. */
        int64_t waited_s = (bl_now_ms() - p->queued_ms) / 1000;
        if (waited_s >= (int64_t)m.expiry_s) {
            LOG_DEBUG(c->o.name, "message on %s expired while queued", m.topic);
            return 1;
        }
        m.expiry_s -= (uint32_t)waited_s;
    }
    if (m.qos > c->srv_max_qos) { /* 3.2.2.3.4 */
        if (!c->warned_qos)
            LOG_WARN(c->o.name, "the broker takes QoS %u at most: publishing QoS %u as %u",
                     c->srv_max_qos, m.qos, c->srv_max_qos);
        c->warned_qos = true;
        m.qos = c->srv_max_qos;
    }
    if (m.retain && !c->srv_retain) { /* 3.2.2.3.5 */
        if (!c->warned_retain)
            LOG_WARN(c->o.name, "the broker does not retain messages: publishing without retain");
        c->warned_retain = true;
        m.retain = false;
    }
    if (c->srv_max_packet && mqttpkt_publish_size(&m) > c->srv_max_packet) {
        LOG_WARN(c->o.name,
                 "cannot publish on %s: %zu bytes is over the broker's maximum "
                 "packet size %u; dropped",
                 m.topic, mqttpkt_publish_size(&m), c->srv_max_packet);
        return 1;
    }
    uint16_t pid = 0;
    if (m.qos && !(pid = mqtt_flow_pid(c)))
        return BL_EAGAIN;
    if (mqttpkt_publish(c->out, &m, pid, false)) {
        LOG_WARN(c->o.name, "cannot publish on %s: not a valid MQTT message; dropped", m.topic);
        return 1;
    }
    if (!m.qos)
        return 1;
    p->pid = pid;
    p->qos = m.qos;
    p->state = PUB_SENT;
    p->no = ++c->pubs_out;
    mqtt_flow_track(c, p);
    if (m.qos == 2 && persistent_store(c) && c->st.out_add) {
        p->durable = true;
        c->st.out_add(c->st_ud, p->token, pid, &m); /* committed before can_write lets it out */
    }
    return 0;
}

static unsigned inflight_max(const mqtt_t *c)
{
    return BL_MIN(MQTT_INFLIGHT_MAX, (unsigned)c->srv_receive_max);
}

/* Move publishes from the FIFO into the output while the window and the buffer have
 * room. */
void mqtt_flow_flush(mqtt_t *c)
{
    while (!c->guard.freed && c->state == ST_CONNECTED && !g_queue_is_empty(&c->fifo) &&
           mqtt_flow_out_pending(c) < MQTT_OUT_HIGH) {
        pub_t *p = g_queue_peek_head(&c->fifo);
        if (p->m->qos && g_queue_get_length(&c->inflight) >= inflight_max(c))
            break;
        g_queue_pop_head(&c->fifo);
        if (p->resend && c->ev.still_wanted && !c->ev.still_wanted(c->ud, p->token)) {
            mqtt_flow_release(c, p);
            continue;
        }
        int rc = publish_one(c, p);
        if (rc == BL_EAGAIN) {
            g_queue_push_head(&c->fifo, p);
            break;
        }
        if (rc == 1) { /* done with it: QoS 0 in the buffer, or dropped for good */
            uint64_t token = p->token;
            mqtt_flow_release(c, p);
            report(c, token);
        }
    }
}

pub_t *mqtt_flow_pub_new(mqtt_t *c, const bl_msg_t *m, uint64_t token)
{
    pub_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->m = msg_dup(m))) {
        free(p);
        return NULL;
    }
    p->token = token;
    p->queued_ms = bl_now_ms();
    c->pending_bytes += p->m->payload_len;
    return p;
}

/* ---------------------------------------------------------------- subscriptions */

/* ---------------------------------------------------------------- small helpers */

void mqtt_flow_sub_free(gpointer p)
{
    sub_t *s = p;
    free(s->filter);
    free(s);
}

void mqtt_flow_subscribe_all(mqtt_t *c)
{
    /* Unsubscribes first: the broker handles a connection's packets in order, so a
     * filter dropped here and subscribed again below gets its new options. */
    for (guint i = 0; i < c->unsubs->len; i++) {
        sub_t *u = g_ptr_array_index(c->unsubs, i);
        if (!u->pid && (u->pid = mqtt_flow_pid(c)) != 0)
            mqttpkt_unsubscribe(c->out, u->pid, u->filter);
    }
    for (guint i = 0; i < c->subs->len; i++) {
        sub_t *s = g_ptr_array_index(c->subs, i);
        if (!s->pid && (s->pid = mqtt_flow_pid(c)) != 0)
            mqttpkt_subscribe(c->out, s->pid, s->filter, (uint8_t)s->qos, (uint8_t)s->options);
    }
}

/* ---------------------------------------------------------------- packets in */

void mqtt_flow_on_suback(mqtt_t *c, const mqttpkt_t *k)
{
    for (guint i = 0; i < c->subs->len; i++) {
        sub_t *s = g_ptr_array_index(c->subs, i);
        if (s->pid != k->pid)
            continue;
        s->pid = 0;
        if (k->n_codes && k->codes[0] >= 0x80)
            LOG_WARN(c->o.name, "broker refused the subscription %s: %s", s->filter,
                     mqttpkt_reason_name(k->codes[0]));
        return;
    }
}

void mqtt_flow_on_unsuback(mqtt_t *c, const mqttpkt_t *k)
{
    for (guint i = 0; i < c->unsubs->len; i++) {
        sub_t *u = g_ptr_array_index(c->unsubs, i);
        if (u->pid != k->pid)
            continue;
        LOG_INFO(c->o.name, "unsubscribed %s (renewed, or left in our session by an earlier run)",
                 u->filter);
        g_ptr_array_remove_index(c->unsubs, i);
        if (c->unsubs->len == 0 && c->ev.on_unsubscribed && !c->guard.freed)
            c->ev.on_unsubscribed(c->ud);
        return;
    }
}

void mqtt_restore_in(mqtt_t *c, uint16_t pid)
{
    if (c && pid)
        mqtt_flow_in2_set(c, pid, true);
}

void mqtt_restore_out(mqtt_t *c, uint16_t pid, bool released, const bl_msg_t *m, uint64_t token)
{
    if (!c || !pid || mqtt_flow_find(c, pid) || (!released && !m))
        return;
    pub_t *p = m ? mqtt_flow_pub_new(c, m, token) : calloc(1, sizeof(*p));
    if (!p)
        return;
    p->token = token;
    p->pid = pid;
    p->qos = 2;
    p->state = released ? PUB_RELEASED : PUB_SENT;
    p->durable = true;
    p->reported = released; /* the last run reported it at its PUBREC */
    p->no = ++c->pubs_out;
    mqtt_flow_track(c, p);
}

int mqtt_subscribe(mqtt_t *c, const char *filter, int qos, bool no_local, bool rap)
{
    if (!c || !mqttpkt_filter_valid(filter) || qos < 0 || qos > 2)
        return BL_EINVAL;
    int options = (no_local ? MQTTPKT_SUB_NO_LOCAL : 0) | (rap ? MQTTPKT_SUB_RAP : 0);
    sub_t *s = NULL;
    for (guint i = 0; i < c->subs->len && !s; i++)
        if (!strcmp(((sub_t *)g_ptr_array_index(c->subs, i))->filter, filter))
            s = g_ptr_array_index(c->subs, i);
    if (!s) {
        if (!(s = calloc(1, sizeof(*s))) || !(s->filter = strdup(filter))) {
            free(s);
            return BL_ENOMEM;
        }
        g_ptr_array_add(c->subs, s);
    }
    s->qos = qos;
    s->options = options;
    if (c->state == ST_CONNECTED && (s->pid = mqtt_flow_pid(c)) != 0) {
        mqttpkt_subscribe(c->out, s->pid, s->filter, (uint8_t)qos, (uint8_t)options);
        c->wake(c);
    }
    return 0;
}

void mqtt_subscription_forget(mqtt_t *c, const char *filter)
{
    for (guint i = 0; c && filter && i < c->subs->len; i++) {
        sub_t *s = g_ptr_array_index(c->subs, i);
        if (!strcmp(s->filter, filter)) {
            g_ptr_array_remove_index(c->subs, i); /* the array's free function frees s */
            return;
        }
    }
}

int mqtt_unsubscribe(mqtt_t *c, const char *filter)
{
    if (!c || !mqttpkt_filter_valid(filter))
        return BL_EINVAL;
    sub_t *u = calloc(1, sizeof(*u));
    if (!u || !(u->filter = strdup(filter))) {
        free(u);
        return BL_ENOMEM;
    }
    g_ptr_array_add(c->unsubs, u);
    if (c->state == ST_CONNECTED && (u->pid = mqtt_flow_pid(c)) != 0) {
        mqttpkt_unsubscribe(c->out, u->pid, u->filter);
        c->wake(c);
    }
    return 0;
}

uint64_t mqtt_msgs_in(const mqtt_t *c)
{
    return c ? c->msgs_in : 0;
}

int mqtt_check_publish(const bl_msg_t *m)
{
    return mqttpkt_check_publish(m);
}

int mqtt_publish(mqtt_t *c, const bl_msg_t *m, uint64_t token)
{
    /* Refuse now what could never be sent, rather than after it has been queued. */
    int rc = c ? mqtt_check_publish(m) : BL_EINVAL;
    if (rc)
        return rc;
    pub_t *p = mqtt_flow_pub_new(c, m, token);
    if (!p)
        return BL_ENOMEM;
    g_queue_push_tail(&c->fifo, p);
    c->wake(c);
    return 0;
}

size_t mqtt_pending(const mqtt_t *c)
{
    return c ? c->fifo.length + c->inflight.length : 0;
}

size_t mqtt_pending_bytes(const mqtt_t *c)
{
    return c ? c->pending_bytes : 0;
}
