/* SPDX-License-Identifier: MIT */
/* mqtt.c - an MQTT v5 client session on a GLib main context (mqtt.h).
 *
 * Why our own session rather than libmosquitto's: a QoS 2 message from the broker must
 * be stored by us before our PUBREC leaves, and the packet identifier of a QoS 2
 * publish must be stored before the PUBLISH leaves, or a kill -9 loses or duplicates
 * messages. libmosquitto 2.0 hands a received QoS 2 message over only at the PUBREL,
 * after it has sent the PUBREC itself, and it chooses packet identifiers itself, in
 * memory; Eclipse Paho C sends the PUBREC right after its callback and keeps no MQTT 5
 * receive state on disk (docs/PROTOCOL.md, "The local session"). The packets are in
 * mqttpkt.c (pure, fuzzed), the socket in mqttio.c; this file is the session: packet
 * identifiers, what is in flight, resends, keep-alive and reconnects.
 *
 * Publishes: a FIFO of message copies feeds at most MQTT_INFLIGHT_MAX (or the broker's
 * Receive Maximum) publishes in flight, each remembered by packet identifier until the
 * broker acknowledges it. Nothing is written from inside a callback or the parse of a
 * packet: bytes collect in one output buffer and leave once the layer above has
 * committed (can_write), in one write() per turn of the loop. */
#include "mqtt.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "log.h"
#include "mqttio.h"
#include "mqttpkt.h"

#define MQTT_INFLIGHT_MAX 1000u /* publishes in flight, unacknowledged */
#define MQTT_RECEIVE_MAX 1000u  /* what we let the broker have in flight to us */
#define MQTT_BACKOFF_MIN_MS 500u
#define MQTT_BACKOFF_MAX_MS 30000u
#define MQTT_SESSION_EXPIRY_S 86400u /* one day, for clean_start false */
#define MQTT_CONNECT_TIMEOUT_MS 10000
#define MQTT_READ_CHUNK 65536u
#define MQTT_IN_HIGH (4u << 20)  /* unparsed input past which we stop reading */
#define MQTT_OUT_HIGH (1u << 20) /* unwritten output past which publishes wait */
#define MQTT_PARSE_BATCH 512     /* packets per turn of the loop: one commit above */

typedef enum { ST_IDLE, ST_CONNECTING, ST_CONNACK, ST_CONNECTED, ST_WAITING } mqtt_state_t;
typedef enum { PUB_SENT = 1, PUB_RELEASED } pub_state_t;

typedef struct pub {
    bl_msg_t *m; /* NULL: an identifier of the last run waiting for mqtt_publish_as, or
                  * one whose PUBREL is all that is left */
    uint64_t token;
    int64_t queued_ms; /* when mqtt_publish() took it, for the message expiry */
    uint16_t pid;
    uint8_t qos;   /* as sent */
    uint8_t state; /* pub_state_t once in flight */
    uint64_t no;   /* c->pubs_out when sent (acks_delivered) */
    bool resend;   /* was in flight when a clean_start connection dropped */
    bool reported; /* on_published already called (QoS 2 at its PUBREC) */
    bool durable;  /* its identifier is in the store */
} pub_t;

typedef struct sub {
    char *filter;
    int qos;
    int options;
    uint16_t pid; /* its SUBSCRIBE or UNSUBSCRIBE in flight, 0 when none */
} sub_t;

struct mqtt {
    GMainContext *ctx;
    mqtt_opts_t o; /* strings owned */
    mqtt_events_t ev;
    void *ud;
    mqtt_store_t st;
    void *st_ud;
    bool has_store;

    mqtt_state_t state;
    unsigned backoff_ms;
    unsigned failures; /* consecutive failed attempts, to log the first one loudly */
    mqttio_t *io;
    GSource *timer, *retry, *kick;
    GByteArray *in, *out;
    size_t in_off, out_off;                              /* parsed / written so far */
    bool in_full;                                        /* reading stopped at MQTT_IN_HIGH */
    int64_t attempt_ms, last_rx_ms, last_tx_ms, ping_ms; /* ping_ms 0: none out */

    /* What the broker said in its CONNACK. */
    unsigned keepalive;
    uint16_t srv_receive_max;
    uint32_t srv_max_packet;
    uint8_t srv_max_qos;
    bool srv_retain;
    bool warned_qos, warned_retain;

    /* Which of our acknowledgements the broker has read (on_acks_delivered): messages
     * handed up so far, publishes sent so far, and the state of the newest drained
     * output waiting for a broker reply to a later publish. */
    uint64_t msgs_in, pubs_out;
    bool mark;
    uint64_t mark_msgs, mark_pubs;

    GQueue fifo;          /* pub_t *, not yet sent */
    size_t pending_bytes; /* payload bytes of fifo + inflight */
    GQueue inflight;      /* pub_t *, in send order */
    GHashTable *by_pid;   /* pid -> GList link in inflight */
    uint16_t next_pid;
    GPtrArray *subs;   /* sub_t * */
    GPtrArray *unsubs; /* sub_t *: filters to drop from a resumed session, before subs */
    uint8_t in2[8192]; /* QoS 2 packet identifiers received, not yet released */

    int busy;   /* depth of our own functions on the stack */
    bool freed; /* mqtt_free() was called while busy */
};

static void mqtt_destroy(mqtt_t *c);
static void conn_lost(mqtt_t *c, const char *why);
static void attempt(mqtt_t *c);
static void kick(mqtt_t *c);
static void arm_timer(mqtt_t *c);

/* ---------------------------------------------------------------- small helpers */

static void pub_release(mqtt_t *c, pub_t *p)
{
    if (!p)
        return;
    if (p->m) {
        c->pending_bytes -= BL_MIN(c->pending_bytes, p->m->payload_len);
        msg_free(p->m);
    }
    free(p);
}

static void sub_free(gpointer p)
{
    sub_t *s = p;
    free(s->filter);
    free(s);
}

static void source_drop(GSource **s)
{
    if (*s) {
        g_source_destroy(*s);
        g_source_unref(*s);
        *s = NULL;
    }
}

static void enter(mqtt_t *c)
{
    c->busy++;
}

/* Returns false when the client was freed and must not be touched any more. */
static bool leave(mqtt_t *c)
{
    if (--c->busy == 0 && c->freed) {
        mqtt_destroy(c);
        return false;
    }
    return true;
}

static bool in2_has(const mqtt_t *c, uint16_t pid)
{
    return c->in2[pid >> 3] & (1u << (pid & 7));
}

static void in2_set(mqtt_t *c, uint16_t pid, bool on)
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
    if (c->ev.on_published && !c->freed)
        c->ev.on_published(c->ud, token);
}

/* A free packet identifier for a publish, subscribe or unsubscribe, or 0 (2.2.1). */
static uint16_t pid_alloc(mqtt_t *c)
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

static void inflight_add(mqtt_t *c, pub_t *p)
{
    g_queue_push_tail(&c->inflight, p);
    g_hash_table_insert(c->by_pid, GUINT_TO_POINTER(p->pid), g_queue_peek_tail_link(&c->inflight));
}

static pub_t *inflight_find(mqtt_t *c, uint16_t pid)
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

/* ---------------------------------------------------------------- output */

/* Write what the output buffer holds, unless the layer above still has to commit what
 * it depends on: then on a later turn (kick), after the commit. */
static void write_out(mqtt_t *c)
{
    if (!c->io || c->freed || c->out_off >= c->out->len)
        return;
    if (c->ev.can_write && !c->ev.can_write(c->ud)) {
        kick(c);
        return;
    }
    while (c->out_off < c->out->len) {
        const char *why = NULL;
        ssize_t n = mqttio_write(c->io, c->out->data + c->out_off, c->out->len - c->out_off, &why);
        if (n == BL_EAGAIN)
            return; /* on_writable */
        if (n < 0) {
            conn_lost(c, why);
            return;
        }
        c->out_off += (size_t)n;
        c->last_tx_ms = bl_now_ms();
    }
    g_byte_array_set_size(c->out, 0);
    c->out_off = 0;
    /* Every acknowledgement of the messages handed up so far is now in the kernel.
     * That is not yet the broker's (a kill -9 with unread input resets the connection
     * and drops unsent data), so it is confirmed by the broker's answer to a later
     * publish. A mark with no publish after it yet is moved forward; one with publishes
     * after it is kept, so that the answer to one of them can confirm it. */
    if (!c->mark || c->mark_pubs == c->pubs_out) {
        c->mark = true;
        c->mark_msgs = c->msgs_in;
        c->mark_pubs = c->pubs_out;
    }
}

static size_t out_pending(const mqtt_t *c)
{
    return c->out->len - c->out_off;
}

/* The broker answered publish number `no`: the mark before it is confirmed. */
static void answered(mqtt_t *c, uint64_t no)
{
    if (c->mark && no > c->mark_pubs) {
        c->mark = false;
        if (c->ev.on_acks_delivered && !c->freed)
            c->ev.on_acks_delivered(c->ud, c->mark_msgs);
    }
}

/* ---------------------------------------------------------------- connection */

static void schedule_retry(mqtt_t *c, unsigned delay_ms);

/* Publishes in flight go back to the head of the FIFO, in order, to be published as new
 * ones: the broker has no session that knows their identifiers. */
static void requeue_inflight(mqtt_t *c, bool resend)
{
    GQueue keep = G_QUEUE_INIT;
    while (!g_queue_is_empty(&c->inflight)) {
        pub_t *p = g_queue_pop_tail(&c->inflight);
        if (!p->m || (p->reported && !resend)) {
            /* an identifier of the last run, or a QoS 2 publish the broker had taken
             * (PUBREC) in the session it lost */
            pub_release(c, p);
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

/* The connection attempt failed or the connection was lost. */
static void conn_lost(mqtt_t *c, const char *why)
{
    if (c->state != ST_CONNECTING && c->state != ST_CONNACK && c->state != ST_CONNECTED)
        return;
    bool was_up = c->state == ST_CONNECTED;
    c->state = ST_WAITING;
    c->mark = false; /* what was written on this connection may never have been read */
    mqttio_free(c->io);
    c->io = NULL;
    source_drop(&c->timer);
    g_byte_array_set_size(c->in, 0);
    g_byte_array_set_size(c->out, 0);
    c->in_off = c->out_off = 0;
    c->in_full = false;
    for (guint i = 0; i < c->subs->len; i++)
        ((sub_t *)g_ptr_array_index(c->subs, i))->pid = 0;
    for (guint i = 0; i < c->unsubs->len; i++)
        ((sub_t *)g_ptr_array_index(c->unsubs, i))->pid = 0;
    if (c->o.clean_start) {
        /* The next session starts empty (3.1.2.4): what was unacknowledged is published
         * again, ahead of everything queued after it, in its original order. */
        requeue_inflight(c, true);
        memset(c->in2, 0, sizeof c->in2);
    }
    unsigned delay = c->backoff_ms;
    c->backoff_ms = BL_MIN(c->backoff_ms * 2, MQTT_BACKOFF_MAX_MS);
    if (!why)
        why = "closed by the broker";
    if (was_up)
        LOG_WARN(c->o.name, "connection lost (%s), retrying in %.1f s", why, delay / 1000.0);
    else if (c->failures++ == 0)
        LOG_WARN(c->o.name, "cannot connect to %s:%d (%s), retrying in %.1f s", c->o.host,
                 c->o.port, why, delay / 1000.0);
    else
        LOG_DEBUG(c->o.name, "cannot connect to %s:%d (%s), retrying in %.1f s", c->o.host,
                  c->o.port, why, delay / 1000.0);
    schedule_retry(c, delay);
    if (was_up && c->ev.on_disconnect && !c->freed)
        c->ev.on_disconnect(c->ud, BL_EIO);
}

/* The broker broke the protocol: say why, close, reconnect. */
static void protocol_error(mqtt_t *c, uint8_t reason, const char *why)
{
    LOG_WARN(c->o.name, "the broker sent a packet we cannot take (%s): disconnecting", why);
    /* The DISCONNECT alone: acknowledgements waiting in the buffer may depend on a
     * commit still to come, and the broker sends those messages again anyway. */
    GByteArray *bye = g_byte_array_new();
    if (mqttpkt_disconnect(bye, reason) == 0 && c->io) {
        const char *e;
        (void)mqttio_write(c->io, bye->data, bye->len, &e);
    }
    g_byte_array_free(bye, TRUE);
    char buf[160];
    snprintf(buf, sizeof buf, "protocol error: %s", why);
    conn_lost(c, buf);
}

static void send_subscriptions(mqtt_t *c)
{
    /* Unsubscribes first: the broker handles a connection's packets in order, so a
     * filter dropped here and subscribed again below gets its new options. */
    for (guint i = 0; i < c->unsubs->len; i++) {
        sub_t *u = g_ptr_array_index(c->unsubs, i);
        if (!u->pid && (u->pid = pid_alloc(c)) != 0)
            mqttpkt_unsubscribe(c->out, u->pid, u->filter);
    }
    for (guint i = 0; i < c->subs->len; i++) {
        sub_t *s = g_ptr_array_index(c->subs, i);
        if (!s->pid && (s->pid = pid_alloc(c)) != 0)
            mqttpkt_subscribe(c->out, s->pid, s->filter, (uint8_t)s->qos, (uint8_t)s->options);
    }
}

/* A persistent session the broker kept: everything unacknowledged goes again with its
 * identifier, in order, before anything new (4.4). */
static void resume_session(mqtt_t *c)
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
static void session_gone(mqtt_t *c)
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
    requeue_inflight(c, false);
    if (c->has_store && c->st.reset)
        c->st.reset(c->st_ud);
}

static void on_connack(mqtt_t *c, const mqttpkt_t *k)
{
    if (k->reason >= 0x80) {
        char buf[200];
        snprintf(buf, sizeof buf, "refused: %s%s%s", mqttpkt_reason_name(k->reason),
                 k->reason_string ? ", " : "", k->reason_string ? k->reason_string : "");
        LOG_WARN(c->o.name, "broker %s", buf);
        conn_lost(c, buf);
        return;
    }
    c->state = ST_CONNECTED;
    c->backoff_ms = MQTT_BACKOFF_MIN_MS;
    c->failures = 0;
    c->srv_receive_max = k->receive_max;
    c->srv_max_packet = k->max_packet_size;
    c->srv_max_qos = k->max_qos;
    c->srv_retain = k->retain_available;
    if (k->server_keepalive >= 0)
        c->keepalive = (unsigned)k->server_keepalive; /* 3.2.2.3.14 */
    LOG_INFO(c->o.name, "connected to %s:%d", c->o.host, c->o.port);
    if (!c->o.clean_start) {
        if (k->session_present)
            resume_session(c);
        else
            session_gone(c);
    }
    send_subscriptions(c);
    arm_timer(c);
    if (c->ev.on_connect && !c->freed)
        c->ev.on_connect(c->ud);
}

/* ---------------------------------------------------------------- packets in */

static void hand_up(mqtt_t *c, bl_msg_t *m)
{
    c->msgs_in++;
    m->dup = false;
    if (c->ev.on_message && !c->freed)
        c->ev.on_message(c->ud, m);
}

static void on_publish(mqtt_t *c, mqttpkt_t *k)
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
            in2_set(c, k->pid, true);
            if (persistent_store(c) && c->st.in_add)
                c->st.in_add(c->st_ud, k->pid);
            hand_up(c, m);
        }
        mqttpkt_ack(c->out, MQTTPKT_PUBREC, k->pid, 0);
        return;
    }
}

static void on_pubrel(mqtt_t *c, uint16_t pid)
{
    if (in2_has(c, pid)) {
        in2_set(c, pid, false);
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

static void on_puback(mqtt_t *c, const mqttpkt_t *k)
{
    pub_t *p = inflight_find(c, k->pid);
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
    pub_release(c, p);
    report(c, token);
}

static void on_pubrec(mqtt_t *c, const mqttpkt_t *k)
{
    pub_t *p = inflight_find(c, k->pid);
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
        pub_release(c, p);
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

static void on_pubcomp(mqtt_t *c, const mqttpkt_t *k)
{
    pub_t *p = inflight_find(c, k->pid);
    if (!p || p->state != PUB_RELEASED) {
        LOG_DEBUG(c->o.name, "PUBCOMP for packet %u, which waits for none", k->pid);
        return;
    }
    inflight_remove(c, p);
    if (p->durable && c->st.out_del)
        c->st.out_del(c->st_ud, p->pid);
    bool was_reported = p->reported;
    uint64_t token = p->token;
    pub_release(c, p);
    if (!was_reported)
        report(c, token);
}

static void on_suback(mqtt_t *c, const mqttpkt_t *k)
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

static void on_unsuback(mqtt_t *c, const mqttpkt_t *k)
{
    for (guint i = 0; i < c->unsubs->len; i++) {
        sub_t *u = g_ptr_array_index(c->unsubs, i);
        if (u->pid != k->pid)
            continue;
        LOG_INFO(c->o.name, "unsubscribed %s (renewed, or left in our session by an earlier run)",
                 u->filter);
        g_ptr_array_remove_index(c->unsubs, i);
        if (c->unsubs->len == 0 && c->ev.on_unsubscribed && !c->freed)
            c->ev.on_unsubscribed(c->ud);
        return;
    }
}

static void on_packet(mqtt_t *c, mqttpkt_t *k)
{
    c->ping_ms = 0; /* anything from the broker shows it is there */
    if (c->state == ST_CONNACK) {
        if (k->type == MQTTPKT_CONNACK)
            on_connack(c, k);
        else
            protocol_error(c, 0x82, "a packet before CONNACK");
        return;
    }
    switch (k->type) {
    case MQTTPKT_PUBLISH:
        on_publish(c, k);
        break;
    case MQTTPKT_PUBACK:
        on_puback(c, k);
        break;
    case MQTTPKT_PUBREC:
        on_pubrec(c, k);
        break;
    case MQTTPKT_PUBREL:
        on_pubrel(c, k->pid);
        break;
    case MQTTPKT_PUBCOMP:
        on_pubcomp(c, k);
        break;
    case MQTTPKT_SUBACK:
        on_suback(c, k);
        break;
    case MQTTPKT_UNSUBACK:
        on_unsuback(c, k);
        break;
    case MQTTPKT_PINGRESP:
        break;
    case MQTTPKT_DISCONNECT: {
        char buf[200];
        snprintf(buf, sizeof buf, "the broker disconnected us: %s%s%s",
                 mqttpkt_reason_name(k->reason), k->reason_string ? ", " : "",
                 k->reason_string ? k->reason_string : "");
        conn_lost(c, buf);
        break;
    }
    default:
        protocol_error(c, 0x82, "a second CONNACK");
        break;
    }
}

static bool reading(const mqtt_t *c)
{
    return !c->freed && c->io && (c->state == ST_CONNACK || c->state == ST_CONNECTED);
}

/* Parse up to MQTT_PARSE_BATCH packets of what was read; a rest waits for the next
 * turn (kick), after the layer above has committed this batch. */
static void parse_in(mqtt_t *c)
{
    for (int n = 0; n < MQTT_PARSE_BATCH && reading(c) && c->in_off < c->in->len; n++) {
        mqttpkt_t k;
        size_t used = 0;
        const char *why = NULL;
        int rc = mqttpkt_parse(c->in->data + c->in_off, c->in->len - c->in_off,
                               c->o.max_packet_size, &k, &used, &why);
        if (rc == BL_ETOOBIG) {
            protocol_error(c, 0x95, why);
            return;
        }
        if (rc) {
            protocol_error(c, 0x81, why ? why : bl_strerror(rc));
            return;
        }
        if (!used)
            break;
        c->in_off += used;
        on_packet(c, &k);
        mqttpkt_clear(&k);
    }
    if (!reading(c))
        return;
    if (c->in_off == c->in->len) {
        g_byte_array_set_size(c->in, 0);
        c->in_off = 0;
    } else if (c->in_off > MQTT_IN_HIGH / 2) {
        g_byte_array_remove_range(c->in, 0, (guint)c->in_off);
        c->in_off = 0;
    }
}

/* Read what the socket has, up to MQTT_IN_HIGH unparsed. */
static void read_in(mqtt_t *c)
{
    c->in_full = false;
    while (reading(c)) {
        if (c->in->len - c->in_off >= MQTT_IN_HIGH) {
            c->in_full = true;
            return;
        }
        guint had = c->in->len;
        g_byte_array_set_size(c->in, had + MQTT_READ_CHUNK);
        const char *why = NULL;
        ssize_t n = mqttio_read(c->io, c->in->data + had, MQTT_READ_CHUNK, &why);
        g_byte_array_set_size(c->in, had + (guint)(n > 0 ? n : 0));
        if (n == BL_EAGAIN)
            return;
        if (n <= 0) {
            conn_lost(c, n == 0 ? NULL : why);
            return;
        }
        c->last_rx_ms = bl_now_ms();
    }
}

/* ---------------------------------------------------------------- publishing */

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
    if (m.qos && !(pid = pid_alloc(c)))
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
    inflight_add(c, p);
    if (m.qos == 2 && persistent_store(c) && c->st.out_add) {
        p->durable = true;
        c->st.out_add(c->st_ud, p->token, pid); /* committed before can_write lets it out */
    }
    return 0;
}

static unsigned inflight_max(const mqtt_t *c)
{
    return BL_MIN(MQTT_INFLIGHT_MAX, (unsigned)c->srv_receive_max);
}

/* Move publishes from the FIFO into the output while the window and the buffer have
 * room. */
static void flush(mqtt_t *c)
{
    while (!c->freed && c->state == ST_CONNECTED && !g_queue_is_empty(&c->fifo) &&
           out_pending(c) < MQTT_OUT_HIGH) {
        pub_t *p = g_queue_peek_head(&c->fifo);
        if (p->m->qos && g_queue_get_length(&c->inflight) >= inflight_max(c))
            break;
        g_queue_pop_head(&c->fifo);
        if (p->resend && c->ev.still_wanted && !c->ev.still_wanted(c->ud, p->token)) {
            pub_release(c, p);
            continue;
        }
        int rc = publish_one(c, p);
        if (rc == BL_EAGAIN) {
            g_queue_push_head(&c->fifo, p);
            break;
        }
        if (rc == 1) { /* done with it: QoS 0 in the buffer, or dropped for good */
            uint64_t token = p->token;
            pub_release(c, p);
            report(c, token);
        }
    }
}

/* ---------------------------------------------------------------- the loop */

/* After reading or any change: send what can go, and come back for what is left. */
static void pump(mqtt_t *c)
{
    flush(c);
    write_out(c);
    if (reading(c) && (c->in_full || c->in_off < c->in->len))
        kick(c); /* unparsed packets, or a stopped read: next turn */
}

static gboolean kick_cb(gpointer ud)
{
    mqtt_t *c = ud;
    g_source_unref(c->kick);
    c->kick = NULL;
    enter(c);
    if (reading(c)) {
        parse_in(c);
        if (c->in_full)
            read_in(c);
        parse_in(c);
    }
    pump(c);
    leave(c);
    return G_SOURCE_REMOVE;
}

static void kick(mqtt_t *c)
{
    if (c->kick || c->freed)
        return;
    c->kick = g_idle_source_new();
    /* Default priority, not idle: under load some socket is always ready, and an idle
     * source would wait behind all of them. The layer above commits at a higher
     * priority, so a kick that waits for can_write runs after that commit. */
    g_source_set_priority(c->kick, G_PRIORITY_DEFAULT);
    g_source_set_callback(c->kick, kick_cb, c, NULL);
    g_source_attach(c->kick, c->ctx);
}

static void io_up(void *ud)
{
    mqtt_t *c = ud;
    enter(c);
    c->state = ST_CONNACK;
    char idbuf[40];
    const char *id = c->o.client_id;
    if (c->o.fresh_client_id) {
        /* Unpredictable, so that nobody who sees our topics can take the id over. */
        uint8_t rnd[12];
        if (RAND_bytes(rnd, sizeof rnd) != 1)
            g_random_set_seed((guint32)bl_now_ms());
        size_t n = (size_t)snprintf(idbuf, sizeof idbuf, "bl-");
        for (size_t i = 0; i < sizeof rnd; i++)
            n += (size_t)snprintf(idbuf + n, sizeof idbuf - n, "%02x", rnd[i]);
        id = idbuf;
    }
    mqttpkt_connect_t k = {
        .client_id = id ? id : "",
        .username = c->o.username,
        .password = c->o.password,
        .keepalive = (uint16_t)BL_MIN((unsigned)c->o.keepalive, UINT16_MAX),
        .clean_start = c->o.clean_start,
        .session_expiry = c->o.clean_start ? 0 : MQTT_SESSION_EXPIRY_S,
        .receive_max = MQTT_RECEIVE_MAX,
        .max_packet_size = c->o.max_packet_size,
        .will = c->o.will,
    };
    c->keepalive = k.keepalive;
    c->last_rx_ms = c->last_tx_ms = bl_now_ms();
    c->ping_ms = 0;
    if (mqttpkt_connect(c->out, &k)) {
        LOG_ERROR(c->o.name, "cannot build CONNECT (client id, user name or Will too long?)");
        conn_lost(c, "cannot build CONNECT");
    } else {
        /* CONNECT depends on nothing stored: past can_write. */
        const char *why = NULL;
        ssize_t n = mqttio_write(c->io, c->out->data, c->out->len, &why);
        if (n < 0 && n != BL_EAGAIN)
            conn_lost(c, why);
        else if (n > 0)
            c->out_off = (size_t)n;
    }
    leave(c);
}

static void io_readable(void *ud)
{
    mqtt_t *c = ud;
    enter(c);
    read_in(c);
    parse_in(c);
    pump(c);
    leave(c);
}

static void io_writable(void *ud)
{
    mqtt_t *c = ud;
    enter(c);
    pump(c);
    leave(c);
}

static void io_failed(void *ud, const char *why)
{
    mqtt_t *c = ud;
    enter(c);
    conn_lost(c, why);
    leave(c);
}

static void attempt(mqtt_t *c)
{
    c->state = ST_CONNECTING;
    c->attempt_ms = bl_now_ms();
    mqttio_opts_t o = {
        .host = c->o.host, .port = c->o.port, .tls = c->o.tls, .cafile = c->o.cafile};
    static const mqttio_events_t ev = {.on_up = io_up,
                                       .on_readable = io_readable,
                                       .on_writable = io_writable,
                                       .on_failed = io_failed};
    const char *why = NULL;
    c->io = mqttio_connect(c->ctx, &o, &ev, c, &why);
    if (!c->io) {
        conn_lost(c, why);
        return;
    }
    arm_timer(c);
}

static gboolean retry_cb(gpointer ud)
{
    mqtt_t *c = ud;
    g_source_unref(c->retry);
    c->retry = NULL;
    enter(c);
    attempt(c);
    leave(c);
    return G_SOURCE_REMOVE;
}

static void schedule_retry(mqtt_t *c, unsigned delay_ms)
{
    source_drop(&c->retry);
    c->retry = g_timeout_source_new(delay_ms);
    g_source_set_callback(c->retry, retry_cb, c, NULL);
    g_source_attach(c->retry, c->ctx);
}

/* One timer for the connect deadline and the keep-alive (3.1.2.10): a PINGREQ when we
 * have sent nothing, or heard nothing, for a keep-alive period, and the connection
 * given up when a PINGREQ has no answer within another. It wakes at the next deadline
 * only; traffic moves the deadlines without touching the timer. */
static int64_t next_deadline(const mqtt_t *c)
{
    if (c->state == ST_CONNECTING || c->state == ST_CONNACK)
        return c->attempt_ms + MQTT_CONNECT_TIMEOUT_MS;
    if (c->state != ST_CONNECTED || !c->keepalive)
        return -1;
    int64_t ka = (int64_t)c->keepalive * 1000;
    if (c->ping_ms)
        return c->ping_ms + ka;
    return BL_MIN(c->last_tx_ms, c->last_rx_ms) + ka;
}

static gboolean timer_cb(gpointer ud)
{
    mqtt_t *c = ud;
    g_source_unref(c->timer);
    c->timer = NULL;
    enter(c);
    int64_t now = bl_now_ms(), due = next_deadline(c);
    if (due >= 0 && now >= due) {
        if (c->state != ST_CONNECTED)
            conn_lost(c, "timed out");
        else if (c->ping_ms)
            conn_lost(c, "the broker does not answer (keep-alive)");
        else {
            mqttpkt_pingreq(c->out);
            c->ping_ms = now;
            write_out(c);
        }
    }
    if (!c->freed && c->io)
        arm_timer(c);
    leave(c);
    return G_SOURCE_REMOVE;
}

static void arm_timer(mqtt_t *c)
{
    source_drop(&c->timer);
    int64_t due = next_deadline(c);
    if (due < 0)
        return;
    int64_t wait = due - bl_now_ms();
    c->timer = g_timeout_source_new((guint)BL_MAX(wait, 0));
    g_source_set_callback(c->timer, timer_cb, c, NULL);
    g_source_attach(c->timer, c->ctx);
}

/* ---------------------------------------------------------------- public API */

mqtt_t *mqtt_new(GMainContext *ctx, const mqtt_opts_t *opts, const mqtt_events_t *ev, void *ud)
{
    static gsize once;
    if (g_once_init_enter(&once)) {
        /* A TLS write to a broker that died under us would raise SIGPIPE (OpenSSL writes
         * with write(2)). Leave any handler the program set alone. */
        struct sigaction sa;
        if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
            signal(SIGPIPE, SIG_IGN);
        g_once_init_leave(&once, 1);
    }
    if (!opts || !opts->host || !opts->name)
        return NULL;
    mqtt_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    c->o = *opts;
    c->o.name = c->o.host = c->o.client_id = NULL;
    c->o.username = c->o.password = c->o.cafile = NULL;
    c->o.will = NULL;
    if (ev)
        c->ev = *ev;
    c->ud = ud;
    c->backoff_ms = MQTT_BACKOFF_MIN_MS;
    c->srv_receive_max = UINT16_MAX;
    c->srv_max_qos = 2;
    c->srv_retain = true;
    c->in = g_byte_array_new();
    c->out = g_byte_array_new();
    g_queue_init(&c->fifo);
    g_queue_init(&c->inflight);
    c->by_pid = g_hash_table_new(NULL, NULL);
    c->subs = g_ptr_array_new_with_free_func(sub_free);
    c->unsubs = g_ptr_array_new_with_free_func(sub_free);
    if (!(c->o.name = strdup(opts->name)) || !(c->o.host = strdup(opts->host)) ||
        (opts->client_id && !(c->o.client_id = strdup(opts->client_id))) ||
        (opts->username && !(c->o.username = strdup(opts->username))) ||
        (opts->password && !(c->o.password = strdup(opts->password))) ||
        (opts->cafile && !(c->o.cafile = strdup(opts->cafile))) ||
        (opts->will && !(c->o.will = msg_dup(opts->will))))
        goto error;
    /* A persistent session needs a stable client id (3.1.3.1). */
    if (!c->o.clean_start && (!c->o.client_id || c->o.fresh_client_id))
        goto error;
    if (!c->o.fresh_client_id && !c->o.client_id)
        goto error;
    return c;
error:
    mqtt_destroy(c);
    return NULL;
}

void mqtt_set_store(mqtt_t *c, const mqtt_store_t *st, void *ud)
{
    if (!c || !st || c->o.clean_start)
        return;
    c->st = *st;
    c->st_ud = ud;
    c->has_store = true;
}

void mqtt_restore_in(mqtt_t *c, uint16_t pid)
{
    if (c && pid)
        in2_set(c, pid, true);
}

void mqtt_restore_out(mqtt_t *c, uint16_t pid, bool released)
{
    if (!c || !pid || inflight_find(c, pid))
        return;
    pub_t *p = calloc(1, sizeof(*p));
    if (!p)
        return;
    p->pid = pid;
    p->qos = 2;
    p->state = released ? PUB_RELEASED : PUB_SENT;
    p->durable = true;
    p->reported = true; /* the last run reported it, or will be given it again */
    inflight_add(c, p);
}

int mqtt_start(mqtt_t *c)
{
    if (!c || c->state != ST_IDLE)
        return BL_ESTATE;
    enter(c);
    attempt(c);
    return leave(c) ? 0 : BL_ESTATE;
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
    if (c->state == ST_CONNECTED && (s->pid = pid_alloc(c)) != 0) {
        mqttpkt_subscribe(c->out, s->pid, s->filter, (uint8_t)qos, (uint8_t)options);
        kick(c);
    }
    return 0;
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
    if (c->state == ST_CONNECTED && (u->pid = pid_alloc(c)) != 0) {
        mqttpkt_unsubscribe(c->out, u->pid, u->filter);
        kick(c);
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

static pub_t *pub_new(mqtt_t *c, const bl_msg_t *m, uint64_t token)
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

int mqtt_publish(mqtt_t *c, const bl_msg_t *m, uint64_t token)
{
    /* Refuse now what could never be sent, rather than after it has been queued. */
    int rc = c ? mqtt_check_publish(m) : BL_EINVAL;
    if (rc)
        return rc;
    pub_t *p = pub_new(c, m, token);
    if (!p)
        return BL_ENOMEM;
    g_queue_push_tail(&c->fifo, p);
    kick(c);
    return 0;
}

int mqtt_publish_as(mqtt_t *c, const bl_msg_t *m, uint64_t token, uint16_t pid)
{
    pub_t *p = c ? inflight_find(c, pid) : NULL;
    if (!p || p->m || p->state != PUB_SENT)
        return BL_ENOTFOUND;
    if (mqtt_check_publish(m) || m->qos != 2)
        return BL_EINVAL;
    pub_t *n = pub_new(c, m, token);
    if (!n)
        return BL_ENOMEM;
    p->m = n->m;
    p->token = token;
    p->queued_ms = n->queued_ms;
    p->reported = false;
    p->no = ++c->pubs_out;
    free(n);
    if (c->state == ST_CONNECTED) {
        mqttpkt_publish(c->out, p->m, pid, true);
        kick(c);
    }
    return 0;
}

bool mqtt_connected(const mqtt_t *c)
{
    return c && c->state == ST_CONNECTED;
}

size_t mqtt_pending(const mqtt_t *c)
{
    return c ? c->fifo.length + c->inflight.length : 0;
}

size_t mqtt_pending_bytes(const mqtt_t *c)
{
    return c ? c->pending_bytes : 0;
}

static void mqtt_destroy(mqtt_t *c)
{
    if (c->io && c->state == ST_CONNECTED) {
        /* A clean goodbye: the Will is not published (3.14.4). Whatever else waits in
         * the buffer goes too, ahead of it; what depends on an uncommitted write does
         * not wait here (the layer above commits before it frees us). */
        mqttpkt_disconnect(c->out, 0);
        const char *why;
        (void)mqttio_write(c->io, c->out->data + c->out_off, out_pending(c), &why);
    }
    mqttio_free(c->io);
    source_drop(&c->timer);
    source_drop(&c->retry);
    source_drop(&c->kick);
    pub_t *p;
    while ((p = g_queue_pop_head(&c->fifo)))
        pub_release(c, p);
    while ((p = g_queue_pop_head(&c->inflight)))
        pub_release(c, p);
    if (c->by_pid)
        g_hash_table_destroy(c->by_pid);
    if (c->subs)
        g_ptr_array_free(c->subs, TRUE);
    if (c->unsubs)
        g_ptr_array_free(c->unsubs, TRUE);
    if (c->in)
        g_byte_array_free(c->in, TRUE);
    if (c->out)
        g_byte_array_free(c->out, TRUE);
    free((char *)c->o.name);
    free((char *)c->o.host);
    free((char *)c->o.client_id);
    free((char *)c->o.username);
    free((char *)c->o.password);
    free((char *)c->o.cafile);
    msg_free((bl_msg_t *)c->o.will);
    g_main_context_unref(c->ctx);
    free(c);
}

void mqtt_free(mqtt_t *c)
{
    if (!c || c->freed)
        return;
    c->freed = true;
    memset(&c->ev, 0, sizeof(c->ev));
    if (c->busy == 0)
        mqtt_destroy(c);
}
