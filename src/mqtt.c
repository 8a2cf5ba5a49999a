/* SPDX-License-Identifier: MIT */
/* mqtt.c - libmosquitto 2.0 MQTT v5 client on a GLib main context, no threads.
 *
 * Publishes: our own FIFO of message copies feeds at most MQTT_INFLIGHT_MAX publishes to
 * libmosquitto; each one in flight is remembered by packet id (mid) until the broker
 * acknowledges it. What happens to the in-flight ones when the connection drops depends
 * on clean_start, and is kept consistent with what the broker does:
 *
 *  - clean_start true: the broker forgets everything at reconnect, so client state for
 *    the old packet ids is meaningless (MQTT 5 3.1.2.4). libmosquitto 2.0.11 would still
 *    retransmit its old in-flight messages after the next CONNACK (message__retry_check),
 *    which would send them twice once we re-publish them, and a PUBREL for a QoS 2
 *    message the dead broker never released would be answered "packet identifier not
 *    found" and the message lost. So every connection attempt gets a fresh libmosquitto
 *    handle, and every unacknowledged publish goes back to the front of our FIFO, in
 *    order, to be published again: at-least-once, never lost.
 *  - clean_start false: one handle for the life of the client; libmosquitto resends
 *    unacknowledged PUBLISH/PUBREL with their original packet ids (MQTT 5 4.4), so the
 *    mid -> token map survives reconnects and nothing is re-queued here.
 *
 * Nothing is sent from inside a libmosquitto callback: the FIFO is flushed from the loop
 * after mosquitto_loop_read() returns, so after a CONNACK libmosquitto's own resends (if
 * any) go out before newer messages. mqtt_free() from inside a callback only marks the
 * client; it is destroyed when the outermost loop function unwinds. */
#include "mqtt.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <string.h>

#include <mqtt_protocol.h>

#include "log.h"

#define MQTT_INFLIGHT_MAX 1000u /* publishes handed to libmosquitto, unacknowledged */
#define MQTT_BACKOFF_MIN_MS 500u
#define MQTT_BACKOFF_MAX_MS 30000u
#define MQTT_SESSION_EXPIRY_S 86400u /* one day, for clean_start false */
#define MQTT_MISC_INTERVAL_MS 1000u  /* keepalive bookkeeping (mosquitto_loop_misc) */

typedef enum { ST_IDLE, ST_CONNECTING, ST_CONNECTED, ST_WAITING } mqtt_state_t;

typedef struct pub {
    bl_msg_t *m;
    uint64_t token;
    int64_t queued_ms; /* when mqtt_publish() took it, for the message expiry */
    int mid;
    uint64_t no; /* c->pubs_out when handed to libmosquitto (acks_delivered) */
    bool resend; /* was in flight when a clean_start connection dropped */
} pub_t;

typedef struct sub {
    char *filter;
    int qos;
    int options; /* MQTT_SUB_OPT_* */
    int mid;     /* unsubscribes: the UNSUBSCRIBE in flight, 0 when not sent yet */
} sub_t;

typedef struct io_source {
    GSource src;
    mqtt_t *c;
    gpointer tag;
    GIOCondition events; /* what the socket is watched for now */
} io_source_t;

struct mqtt {
    GMainContext *ctx;
    mqtt_opts_t o; /* strings owned */
    mqtt_events_t ev;
    void *ud;

    struct mosquitto *mosq;
    bool mosq_used; /* connect called on this handle at least once */
    mqtt_state_t state;
    unsigned backoff_ms;
    unsigned failures; /* consecutive failed attempts, to log the first one loudly */

    io_source_t *io;
    GSource *misc, *retry, *kick;
    bool got_message; /* a message arrived since the last socket dispatch: its ack waits */
    unsigned rx_events; /* callbacks libmosquitto made from reads: a packet was complete */
    /* Which of our acknowledgements the broker has read (on_acks_delivered): messages
     * handed up so far, publishes handed to libmosquitto so far, and the state of the
     * newest drained queue waiting for a broker reply to a later publish. */
    uint64_t msgs_in, pubs_out;
    bool mark;
    uint64_t mark_msgs, mark_pubs;

    GQueue fifo;        /* pub_t *, not yet handed to libmosquitto */
    size_t pending_bytes; /* payload bytes of fifo + inflight */
    unsigned q0_unwritten; /* QoS 0 handed to libmosquitto since its queue was last empty */
    GQueue inflight;    /* pub_t *, in send order */
    GHashTable *by_mid; /* mid -> GList link in inflight */
    GPtrArray *subs;    /* sub_t * */
    GPtrArray *unsubs;  /* sub_t *: filters to drop from a resumed session, before subs */

    int busy;   /* depth of our own loop functions on the stack */
    bool freed; /* mqtt_free() was called while busy */
};

static void mqtt_destroy(mqtt_t *c);
static void mqtt_attempt(mqtt_t *c);
static void kick(mqtt_t *c);

/* ---- small helpers ---- */

/* A publish leaves our hands (done, dropped, or with the handle): freed, and no longer
 * counted in pending_bytes. */
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

static const char *mqtt_errstr(int rc)
{
    return rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc);
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

/* ---- socket watch ---- */

static gboolean io_dispatch(GSource *src, GSourceFunc cb, gpointer ud);
static GSourceFuncs io_funcs = {NULL, NULL, io_dispatch, NULL, NULL, NULL};

static void io_update(mqtt_t *c)
{
    if (!c->io || !c->mosq)
        return;
    GIOCondition want = G_IO_IN | G_IO_HUP | G_IO_ERR;
    if (mosquitto_want_write(c->mosq))
        want |= G_IO_OUT;
    /* Every modification wakes the context up (an eventfd write and one more turn of
     * the loop), even when nothing changed. */
    if (want != c->io->events) {
        c->io->events = want;
        g_source_modify_unix_fd(&c->io->src, c->io->tag, want);
    }
}

static void io_remove(mqtt_t *c)
{
    if (c->io) {
        GSource *s = &c->io->src;
        c->io = NULL;
        g_source_destroy(s);
        g_source_unref(s);
    }
}

static int io_add(mqtt_t *c)
{
    int fd = mosquitto_socket(c->mosq);
    if (fd < 0)
        return BL_EIO;
    io_source_t *io = (io_source_t *)g_source_new(&io_funcs, sizeof(*io));
    io->c = c;
    io->events = G_IO_IN | G_IO_HUP | G_IO_ERR;
    io->tag = g_source_add_unix_fd(&io->src, fd, io->events);
    /* GLib blocks a source that cannot recurse while it is dispatched: it takes the fd
     * out of the context's poll set and puts it back afterwards, and each of the two
     * wakes the context up. We never run the loop from inside a dispatch. */
    g_source_set_can_recurse(&io->src, TRUE);
    g_source_attach(&io->src, c->ctx);
    c->io = io;
    io_update(c);
    return 0;
}

/* ---- connection state ---- */

static void schedule_retry(mqtt_t *c, unsigned delay_ms);

/* The connection attempt failed or the connection was lost. Idempotent: libmosquitto
 * reports a loss both through on_disconnect and the return code of the loop call. */
static void conn_lost(mqtt_t *c, int rc)
{
    c->q0_unwritten = 0; /* a new connection starts with an empty queue */
    if (c->state != ST_CONNECTING && c->state != ST_CONNECTED)
        return;
    bool was_up = c->state == ST_CONNECTED;
    c->state = ST_WAITING;
    c->mark = false; /* what was written on this connection may never have been read */
    io_remove(c);
    if (c->o.clean_start) {
        /* The next handle starts empty: what was unacknowledged is published again,
         * ahead of everything queued after it, in its original order. */
        while (!g_queue_is_empty(&c->inflight)) {
            pub_t *p = g_queue_pop_tail(&c->inflight);
            p->mid = 0;
            p->resend = true;
            g_queue_push_head(&c->fifo, p);
        }
        g_hash_table_remove_all(c->by_mid);
    }
    unsigned delay = c->backoff_ms;
    c->backoff_ms = BL_MIN(c->backoff_ms * 2, MQTT_BACKOFF_MAX_MS);
    const char *why = rc ? mqtt_errstr(rc) : "closed by the broker";
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
        c->ev.on_disconnect(c->ud, rc);
}

static void send_unsubscribe(mqtt_t *c, sub_t *u);

static void on_connect_cb(struct mosquitto *m, void *ud, int rc, int flags,
                          const mosquitto_property *props)
{
    mqtt_t *c = ud;
    (void)m, (void)flags, (void)props;
    c->rx_events++;
    if (c->freed || c->state != ST_CONNECTING)
        return;
    if (rc != 0) {
        /* The loop call returns MOSQ_ERR_CONN_REFUSED right after this: conn_lost. */
        LOG_WARN(c->o.name, "broker refused the connection: %s", mosquitto_reason_string(rc));
        return;
    }
    c->state = ST_CONNECTED;
    c->backoff_ms = MQTT_BACKOFF_MIN_MS;
    c->failures = 0;
    LOG_INFO(c->o.name, "connected to %s:%d", c->o.host, c->o.port);
    /* Unsubscribes first: the broker handles a connection's packets in order, so a
     * filter dropped here and subscribed again below gets its new options. */
    for (guint i = 0; i < c->unsubs->len; i++)
        send_unsubscribe(c, g_ptr_array_index(c->unsubs, i));
    for (guint i = 0; i < c->subs->len; i++) {
        sub_t *s = g_ptr_array_index(c->subs, i);
        int src = mosquitto_subscribe_v5(c->mosq, NULL, s->filter, s->qos, s->options, NULL);
        if (src)
            LOG_WARN(c->o.name, "subscribe %s failed: %s", s->filter, mqtt_errstr(src));
    }
    if (c->ev.on_connect)
        c->ev.on_connect(c->ud);
}

static void on_disconnect_cb(struct mosquitto *m, void *ud, int rc, const mosquitto_property *props)
{
    (void)m, (void)props;
    mqtt_t *c = ud;
    if (!c->freed)
        conn_lost(c, rc);
}

static void send_unsubscribe(mqtt_t *c, sub_t *u)
{
    int rc = mosquitto_unsubscribe_v5(c->mosq, &u->mid, u->filter, NULL);
    if (rc)
        LOG_WARN(c->o.name, "unsubscribe %s failed: %s", u->filter, mqtt_errstr(rc));
}

static void on_unsubscribe_cb(struct mosquitto *m, void *ud, int mid, const mosquitto_property *props)
{
    (void)m, (void)props;
    mqtt_t *c = ud;
    c->rx_events++;
    for (guint i = 0; i < c->unsubs->len; i++) {
        sub_t *u = g_ptr_array_index(c->unsubs, i);
        if (u->mid == mid) {
            LOG_INFO(c->o.name, "unsubscribed %s (renewed, or left in our session by an "
                                "earlier run)", u->filter);
            g_ptr_array_remove_index(c->unsubs, i);
            if (c->unsubs->len == 0 && c->ev.on_unsubscribed && !c->freed)
                c->ev.on_unsubscribed(c->ud);
            return;
        }
    }
}

static void on_subscribe_cb(struct mosquitto *m, void *ud, int mid, int n, const int *granted,
                            const mosquitto_property *props)
{
    (void)m, (void)mid, (void)props;
    mqtt_t *c = ud;
    c->rx_events++;
    for (int i = 0; i < n; i++)
        if (granted[i] >= 0x80)
            LOG_WARN(c->o.name, "broker refused a subscription: %s",
                     mosquitto_reason_string(granted[i]));
}

static void on_message_cb(struct mosquitto *m, void *ud, const struct mosquitto_message *mm,
                          const mosquitto_property *props)
{
    (void)m;
    mqtt_t *c = ud;
    c->got_message = true; /* its acknowledgement must wait for the commit */
    c->rx_events++;
    c->msgs_in++;
    if (c->freed || !c->ev.on_message)
        return;
    bl_msg_t msg;
    msg_init(&msg);
    int rc = msg_set_topic(&msg, mm->topic ? mm->topic : "");
    if (!rc)
        rc = msg_set_payload(&msg, mm->payload, mm->payloadlen > 0 ? (size_t)mm->payloadlen : 0);
    if (!rc)
        rc = mqtt_props_to_msg(props, &msg);
    msg.qos = (uint8_t)mm->qos;
    msg.retain = mm->retain;
    if (rc)
        LOG_ERROR(c->o.name, "dropping a message on %s: %s", mm->topic, bl_strerror(rc));
    else
        c->ev.on_message(c->ud, &msg);
    msg_clear(&msg);
}

static void on_publish_cb(struct mosquitto *m, void *ud, int mid, int reason,
                          const mosquitto_property *props)
{
    (void)m, (void)props;
    mqtt_t *c = ud;
    c->rx_events++;
    GList *link = g_hash_table_lookup(c->by_mid, GINT_TO_POINTER(mid));
    if (!link)
        return; /* a QoS 0 write, already reported */
    pub_t *p = link->data;
    g_hash_table_remove(c->by_mid, GINT_TO_POINTER(mid));
    g_queue_delete_link(&c->inflight, link);
    if (c->mark && p->no > c->mark_pubs) {
        /* The broker answered a publish written after the queue had drained: it has
         * read everything before it, our acknowledgements included (one TCP stream,
         * handled in order). */
        c->mark = false;
        if (c->ev.on_acks_delivered && !c->freed)
            c->ev.on_acks_delivered(c->ud, c->mark_msgs);
    }
    /* A refusal (reason >= 0x80, e.g. not authorized) is final: retrying cannot help, and
     * keeping it would wedge the queue above. It is reported as done, loudly. */
    if (reason >= 0x80)
        LOG_WARN(c->o.name, "broker refused a publish on %s: %s", p->m->topic,
                 mosquitto_reason_string(reason));
    uint64_t token = p->token;
    pub_release(c, p);
    if (!c->freed && c->ev.on_published)
        c->ev.on_published(c->ud, token);
}

/* ---- libmosquitto handle ---- */

/* libmosquitto 2.0 has no asynchronous connect that takes CONNECT properties, but
 * mosquitto_connect_bind_v5() stores them before it validates the port: called with port
 * -1 it keeps them and returns MOSQ_ERR_INVAL without touching the network, and every
 * later (re)connect sends them. Session Expiry Interval (MQTT 5 3.1.2.11.2) makes the
 * broker keep a clean_start=false session across disconnects. */
static int set_session_expiry(mqtt_t *c)
{
    mosquitto_property *props = NULL;
    if (mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                                     MQTT_SESSION_EXPIRY_S))
        return BL_ENOMEM;
    int rc = mosquitto_connect_bind_v5(c->mosq, c->o.host, -1, c->o.keepalive, NULL, props);
    mosquitto_property_free_all(&props);
    return rc == MOSQ_ERR_INVAL ? 0 : BL_EIO;
}

static int handle_new(mqtt_t *c)
{
    if (c->mosq)
        mosquitto_destroy(c->mosq);
    c->mosq_used = false;
    c->mosq = mosquitto_new(c->o.client_id, c->o.clean_start, c);
    if (!c->mosq)
        return BL_ENOMEM;
    /* "threaded": libmosquitto then only queues packets and we write them from the
     * loop (io_dispatch), so an acknowledgement of a message never leaves before the
     * message is safe with us. No thread is started. */
    mosquitto_threaded_set(c->mosq, true);
    /* Let the broker have many messages in flight to us (MQTT 5 Receive Maximum;
     * libmosquitto's default is 20): our acknowledgements wait for a commit, so a small
     * window would cost a round trip through the loop every 20 messages. */
    mosquitto_int_option(c->mosq, MOSQ_OPT_RECEIVE_MAXIMUM, 1000);
    /* We write acknowledgements and publishes in bursts of small packets: without
     * TCP_NODELAY, Nagle's algorithm holds each burst's tail until the broker's
     * (delayed) ACK, a stall of up to 40 ms per round trip. */
    mosquitto_int_option(c->mosq, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_int_option(c->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(c->mosq, on_connect_cb);
    mosquitto_disconnect_v5_callback_set(c->mosq, on_disconnect_cb);
    mosquitto_message_v5_callback_set(c->mosq, on_message_cb);
    mosquitto_publish_v5_callback_set(c->mosq, on_publish_cb);
    mosquitto_subscribe_v5_callback_set(c->mosq, on_subscribe_cb);
    mosquitto_unsubscribe_v5_callback_set(c->mosq, on_unsubscribe_cb);
    int rc = 0;
    if (c->o.username && mosquitto_username_pw_set(c->mosq, c->o.username, c->o.password))
        rc = BL_ENOMEM;
    if (!rc && c->o.tls) {
        if (c->o.cafile)
            rc = mosquitto_tls_set(c->mosq, c->o.cafile, NULL, NULL, NULL, NULL);
        else
            rc = mosquitto_int_option(c->mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1);
        if (rc)
            LOG_ERROR(c->o.name, "TLS setup failed (cafile %s): %s",
                      c->o.cafile ? c->o.cafile : "system store", mqtt_errstr(rc));
        rc = rc ? BL_EINVAL : 0;
    }
    if (!rc && !c->o.clean_start)
        rc = set_session_expiry(c);
    return rc;
}

static void mqtt_attempt(mqtt_t *c)
{
    c->state = ST_CONNECTING;
    int rc = 0;
    if (c->o.clean_start || !c->mosq)
        rc = handle_new(c);
    if (rc) {
        conn_lost(c, MOSQ_ERR_NOMEM);
        return;
    }
    /* The TCP connect is non-blocking; name resolution (getaddrinfo) is not, so a host
     * name costs one blocking lookup per attempt. */
    if (!c->mosq_used)
        rc = mosquitto_connect_bind_async(c->mosq, c->o.host, c->o.port, c->o.keepalive, NULL);
    else
        rc = mosquitto_reconnect_async(c->mosq);
    c->mosq_used = true;
    if (rc == MOSQ_ERR_SUCCESS)
        rc = io_add(c) ? MOSQ_ERR_NO_CONN : 0;
    if (rc)
        conn_lost(c, rc);
}

static gboolean retry_cb(gpointer ud)
{
    mqtt_t *c = ud;
    g_source_unref(c->retry);
    c->retry = NULL;
    enter(c);
    mqtt_attempt(c);
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

/* ---- publishing ---- */

/* Hand one message to libmosquitto. Returns 0 when it was sent or dropped for good (and
 * reported), BL_EAGAIN when it must stay at the head of the FIFO. */
static int publish_one(mqtt_t *c, pub_t *p)
{
    bl_msg_t m = *p->m; /* shallow: only the expiry changes */
    if (m.has_expiry) {
        /* MQTT 5 3.3.2.3.3: the interval counts down while we hold the message. */
        int64_t waited_s = (bl_now_ms() - p->queued_ms) / 1000;
        if (waited_s >= (int64_t)m.expiry_s) {
            LOG_DEBUG(c->o.name, "message on %s expired while queued", m.topic);
            return 1;
        }
        m.expiry_s -= (uint32_t)waited_s;
    }
    mosquitto_property *props = NULL;
    int rc = mqtt_props_from_msg(&m, &props);
    if (rc) {
        mosquitto_property_free_all(&props);
        return rc == BL_ENOMEM ? BL_EAGAIN : 1;
    }
    int mid = 0;
    rc = mosquitto_publish_v5(c->mosq, &mid, m.topic, (int)m.payload_len, m.payload, m.qos,
                              m.retain, props);
    mosquitto_property_free_all(&props);
    switch (rc) {
    case MOSQ_ERR_SUCCESS:
        break;
    case MOSQ_ERR_NOMEM:
    case MOSQ_ERR_NO_CONN:
        return BL_EAGAIN; /* refused before libmosquitto took it */
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_NOT_SUPPORTED:
    case MOSQ_ERR_QOS_NOT_SUPPORTED:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_OVERSIZE_PACKET:
    case MOSQ_ERR_DUPLICATE_PROPERTY:
    case MOSQ_ERR_PROTOCOL:
        LOG_WARN(c->o.name, "cannot publish on %s: %s; dropped", m.topic, mqtt_errstr(rc));
        return 1;
    default:
        /* The socket write failed after libmosquitto queued the message: it is in
         * flight, and the loop will notice the dead connection. */
        if (m.qos == 0)
            return BL_EAGAIN;
        break;
    }
    if (m.qos == 0) {
        c->q0_unwritten++; /* only what libmosquitto holds: not the expired or refused */
        return 1;
    }
    p->mid = mid;
    p->no = ++c->pubs_out;
    g_queue_push_tail(&c->inflight, p);
    g_hash_table_insert(c->by_mid, GINT_TO_POINTER(mid), g_queue_peek_tail_link(&c->inflight));
    return 0;
}

/* Feed the FIFO to libmosquitto while connected and the window has room. */
static void flush(mqtt_t *c)
{
    while (!c->freed && c->state == ST_CONNECTED && !g_queue_is_empty(&c->fifo) &&
           g_queue_get_length(&c->inflight) < MQTT_INFLIGHT_MAX) {
        /* QoS 0 is done for us once handed over, but libmosquitto holds it until the
         * socket takes it: with a broker that reads slowly, handing over all would only
         * move the pile out of sight (and out of local_pending's count). */
        if (((pub_t *)g_queue_peek_head(&c->fifo))->m->qos == 0 &&
            c->q0_unwritten >= MQTT_INFLIGHT_MAX)
            break;
        pub_t *p = g_queue_pop_head(&c->fifo);
        if (p->resend && c->ev.still_wanted && !c->ev.still_wanted(c->ud, p->token)) {
            pub_release(c, p);
            continue;
        }
        int rc = publish_one(c, p);
        if (rc == BL_EAGAIN) {
            g_queue_push_head(&c->fifo, p);
            break;
        }
        if (rc == 1) { /* done with it: QoS 0 written, or dropped for good */
            uint64_t token = p->token;
            pub_release(c, p);
            if (c->ev.on_published && !c->freed)
                c->ev.on_published(c->ud, token);
        }
    }
}

/* Write everything libmosquitto has queued. It writes one packet per write(); with
 * TCP_NODELAY each would be its own segment, and on a flood each segment costs both
 * sides a full trip through the stack. Corked, one batch leaves as a few large segments
 * when the cork comes off (tcp(7)). */
static int write_queued(mqtt_t *c)
{
    int fd = mosquitto_socket(c->mosq), on = 1, off = 0;
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
    int rc = mosquitto_loop_write(c->mosq, 1);
    if (!rc && c->mosq && !mosquitto_want_write(c->mosq) && c->q0_unwritten) {
        c->q0_unwritten = 0;
        if (!g_queue_is_empty(&c->fifo))
            kick(c); /* flush stopped at the QoS 0 mark: go on */
    }
    fd = mosquitto_socket(c->mosq);
    if (fd >= 0)
        (void)setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
    /* libmosquitto queues the acknowledgement of a message right after on_message
     * returns and never writes inside a read (threaded mode): an empty queue now means
     * every message handed up so far has its acknowledgement in the kernel. That is not
     * yet the broker's (a kill -9 with unread input resets the connection and drops
     * unsent data), so it is confirmed by the broker's answer to a later publish. */
    /* A mark with no publish after it yet is moved forward; one with publishes after it
     * is kept, so that the answer to one of them can confirm it. */
    if (!rc && c->mosq && (!c->mark || c->mark_pubs == c->pubs_out) &&
        !mosquitto_want_write(c->mosq)) {
        c->mark = true;
        c->mark_msgs = c->msgs_in;
        c->mark_pubs = c->pubs_out;
    }
    return rc;
}

/* Write what is queued right away. Only when no message arrived since the last
 * write-first dispatch (got_message): then no acknowledgement waiting for the layer
 * above's commit can be in libmosquitto's queue. */
static void write_now(mqtt_t *c)
{
    if (c->state == ST_CONNECTED && c->mosq && !c->freed && mosquitto_want_write(c->mosq)) {
        int rc = write_queued(c);
        if (rc)
            conn_lost(c, rc);
    }
}

static gboolean kick_cb(gpointer ud)
{
    mqtt_t *c = ud;
    g_source_unref(c->kick);
    c->kick = NULL;
    enter(c);
    flush(c);
    if (!c->got_message)
        write_now(c);
    io_update(c);
    leave(c);
    return G_SOURCE_REMOVE;
}

static void kick(mqtt_t *c)
{
    if (c->kick || c->state != ST_CONNECTED)
        return;
    c->kick = g_idle_source_new();
    /* Default priority, not idle: under load some socket is always ready, and an idle
     * source would wait behind all of them while publishes pile up. */
    g_source_set_priority(c->kick, G_PRIORITY_DEFAULT);
    g_source_set_callback(c->kick, kick_cb, c, NULL);
    g_source_attach(c->kick, c->ctx);
}

/* ---- loop ---- */

static gboolean io_dispatch(GSource *src, GSourceFunc cb, gpointer ud)
{
    (void)cb, (void)ud;
    io_source_t *io = (io_source_t *)src;
    mqtt_t *c = io->c;
    GIOCondition rev = g_source_query_unix_fd(src, io->tag);
    enter(c);
    /* Write first, read second: what reading makes libmosquitto queue (PUBACK, PUBREC,
     * PUBCOMP for what the broker sent us) goes out on a later turn of the loop, after
     * the layer above has committed what those packets acknowledge. With
     * mosquitto_threaded_set() libmosquitto never writes from inside a read. */
    if (c->io == io && (rev & G_IO_OUT) && !c->freed) {
        int rc = write_queued(c);
        if (rc)
            conn_lost(c, rc);
    }
    c->got_message = false;
    if (c->io == io && !c->freed && (rev & (G_IO_IN | G_IO_HUP | G_IO_ERR))) {
        /* libmosquitto reads one packet per call. Read every packet already in the
         * socket buffer in this one dispatch, so the layer above sees a burst as one
         * batch (one database commit) rather than one main-loop turn per message. */
        unsigned seen = c->rx_events;
        int rc = mosquitto_loop_read(c->mosq, 1);
        for (int i = 0; !rc && !c->freed && c->mosq && i < 512; i++) {
            /* A read that completed a packet made a callback: there may be more, read
             * again. Otherwise (EAGAIN, a partial packet, or one with no callback such
             * as PINGRESP) ask the socket; a syscall per packet would cost more. */
            if (c->rx_events == seen) {
                int avail = 0, fd = mosquitto_socket(c->mosq);
                if (fd < 0 || ioctl(fd, FIONREAD, &avail) != 0 || avail <= 0)
                    break;
            }
            seen = c->rx_events;
            rc = mosquitto_loop_read(c->mosq, 1);
        }
        if (!rc && (rev & (G_IO_HUP | G_IO_ERR)))
            rc = MOSQ_ERR_CONN_LOST; /* never spin on a dead socket */
        if (rc)
            conn_lost(c, rc);
    }
    flush(c);
    if (!c->got_message)
        write_now(c); /* publishes and PUBRELs need not wait */
    io_update(c);
    leave(c);
    return G_SOURCE_CONTINUE;
}

static gboolean misc_cb(gpointer ud)
{
    mqtt_t *c = ud;
    enter(c);
    if (c->state == ST_CONNECTING || c->state == ST_CONNECTED) {
        /* Sends PINGREQ, and closes a connection (or a connect attempt) that has been
         * silent for a keepalive period. */
        int rc = mosquitto_loop_misc(c->mosq);
        if (rc || mosquitto_socket(c->mosq) < 0)
            conn_lost(c, rc ? rc : MOSQ_ERR_CONN_LOST);
    }
    flush(c);
    if (!c->got_message)
        write_now(c);
    io_update(c);
    leave(c);
    return G_SOURCE_CONTINUE;
}

/* ---- MQTT 5 properties <-> bl_msg_t (pure) ---- */

static int to_bl(int rc)
{
    switch (rc) {
    case MOSQ_ERR_SUCCESS:
        return 0;
    case MOSQ_ERR_NOMEM:
        return BL_ENOMEM;
    default:
        return BL_EINVAL;
    }
}

/* PUBLISH properties in the order MQTT 5 3.3.2.3 lists them; user properties keep
 * theirs (3.3.2.3.7: the order must be kept). */
int mqtt_props_from_msg(const bl_msg_t *m, mosquitto_property **props)
{
    if (!m || !props)
        return BL_EINVAL;
    *props = NULL;
    int rc = 0;
    if (m->payload_format > 1 || m->payload_format < -1)
        return BL_EINVAL;
    if (m->payload_format >= 0)
        rc = mosquitto_property_add_byte(props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR,
                                         (uint8_t)m->payload_format);
    if (!rc && m->has_expiry)
        rc = mosquitto_property_add_int32(props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, m->expiry_s);
    if (!rc && m->content_type)
        rc = strlen(m->content_type) > UINT16_MAX
                 ? MOSQ_ERR_INVAL
                 : mosquitto_property_add_string(props, MQTT_PROP_CONTENT_TYPE, m->content_type);
    if (!rc && m->response_topic)
        rc =
            strlen(m->response_topic) > UINT16_MAX || mosquitto_pub_topic_check(m->response_topic)
                ? MOSQ_ERR_INVAL
                : mosquitto_property_add_string(props, MQTT_PROP_RESPONSE_TOPIC, m->response_topic);
    if (!rc && m->correlation)
        rc = m->correlation_len > UINT16_MAX
                 ? MOSQ_ERR_INVAL
                 : mosquitto_property_add_binary(props, MQTT_PROP_CORRELATION_DATA, m->correlation,
                                                 (uint16_t)m->correlation_len);
    for (size_t i = 0; !rc && i < m->n_user_props; i++) {
        const msg_user_prop_t *u = &m->user_props[i];
        /* libmosquitto 2.0.11 checks the value's UTF-8 with length 0, i.e. not at all. */
        if (!u->key || !u->value || strlen(u->key) > UINT16_MAX || strlen(u->value) > UINT16_MAX ||
            mosquitto_validate_utf8(u->value, (int)strlen(u->value)))
            rc = MOSQ_ERR_INVAL;
        else
            rc = mosquitto_property_add_string_pair(props, MQTT_PROP_USER_PROPERTY, u->key,
                                                    u->value);
    }
    if (rc) {
        mosquitto_property_free_all(props);
        return to_bl(rc);
    }
    return 0;
}

/* One property into m. The read_* functions return the first property with the
 * identifier starting at the one given, i.e. p itself; NULL here means no memory. */
static int prop_to_msg(const mosquitto_property *p, bl_msg_t *m)
{
    uint8_t b;
    uint32_t u32;
    uint16_t len;
    char *s = NULL, *v = NULL;
    void *bin = NULL;
    switch (mosquitto_property_identifier(p)) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:
        mosquitto_property_read_byte(p, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, &b, false);
        m->payload_format = b ? 1 : 0;
        return 0;
    case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL:
        mosquitto_property_read_int32(p, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &u32, false);
        m->has_expiry = true;
        m->expiry_s = u32;
        return 0;
    case MQTT_PROP_CONTENT_TYPE:
        if (!mosquitto_property_read_string(p, MQTT_PROP_CONTENT_TYPE, &s, false))
            return BL_ENOMEM;
        free(m->content_type);
        m->content_type = s;
        return 0;
    case MQTT_PROP_RESPONSE_TOPIC:
        if (!mosquitto_property_read_string(p, MQTT_PROP_RESPONSE_TOPIC, &s, false))
            return BL_ENOMEM;
        free(m->response_topic);
        m->response_topic = s;
        return 0;
    case MQTT_PROP_CORRELATION_DATA:
        if (!mosquitto_property_read_binary(p, MQTT_PROP_CORRELATION_DATA, &bin, &len, false))
            return BL_ENOMEM;
        free(m->correlation);
        m->correlation = bin; /* non-NULL even when empty: present */
        m->correlation_len = len;
        return 0;
    case MQTT_PROP_USER_PROPERTY: {
        if (!mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &s, &v, false))
            return BL_ENOMEM;
        int rc = msg_add_user_prop(m, s, v);
        free(s);
        free(v);
        return rc;
    }
    default:
        return 0; /* topic alias, subscription identifiers: hop-by-hop, not carried */
    }
}

int mqtt_props_to_msg(const mosquitto_property *props, bl_msg_t *m)
{
    if (!m)
        return BL_EINVAL;
    for (const mosquitto_property *p = props; p; p = mosquitto_property_next(p)) {
        int rc = prop_to_msg(p, m);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- public API ---- */

mqtt_t *mqtt_new(GMainContext *ctx, const mqtt_opts_t *opts, const mqtt_events_t *ev, void *ud)
{
    static gsize lib_once;
    if (g_once_init_enter(&lib_once)) {
        mosquitto_lib_init();
        /* libmosquitto 2.0 writes with write(2), not send(MSG_NOSIGNAL): a broker that
         * dies under us would kill the process with SIGPIPE. Leave any handler alone. */
        struct sigaction sa;
        if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
            signal(SIGPIPE, SIG_IGN);
        g_once_init_leave(&lib_once, 1);
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
    if (ev)
        c->ev = *ev;
    c->ud = ud;
    c->backoff_ms = MQTT_BACKOFF_MIN_MS;
    g_queue_init(&c->fifo);
    g_queue_init(&c->inflight);
    c->by_mid = g_hash_table_new(NULL, NULL);
    c->subs = g_ptr_array_new_with_free_func(sub_free);
    c->unsubs = g_ptr_array_new_with_free_func(sub_free);
    if (!(c->o.name = strdup(opts->name)) || !(c->o.host = strdup(opts->host)) ||
        (opts->client_id && !(c->o.client_id = strdup(opts->client_id))) ||
        (opts->username && !(c->o.username = strdup(opts->username))) ||
        (opts->password && !(c->o.password = strdup(opts->password))) ||
        (opts->cafile && !(c->o.cafile = strdup(opts->cafile))))
        goto error;
    /* A persistent session needs a stable client id (MQTT 5 3.1.3.1). */
    if (!c->o.clean_start && !c->o.client_id)
        goto error;
    return c;
error:
    mqtt_destroy(c);
    return NULL;
}

int mqtt_start(mqtt_t *c)
{
    if (!c || c->state != ST_IDLE)
        return BL_ESTATE;
    c->misc = g_timeout_source_new(MQTT_MISC_INTERVAL_MS);
    g_source_set_callback(c->misc, misc_cb, c, NULL);
    g_source_attach(c->misc, c->ctx);
    enter(c);
    mqtt_attempt(c);
    return leave(c) ? 0 : BL_ESTATE;
}

int mqtt_subscribe(mqtt_t *c, const char *filter, int qos, bool no_local, bool rap)
{
    if (!c || !filter || qos < 0 || qos > 2 || mosquitto_sub_topic_check(filter) ||
        mosquitto_validate_utf8(filter, (int)strlen(filter)))
        return BL_EINVAL;
    int options =
        (no_local ? MQTT_SUB_OPT_NO_LOCAL : 0) | (rap ? MQTT_SUB_OPT_RETAIN_AS_PUBLISHED : 0);
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
    if (c->state == ST_CONNECTED) {
        int rc = mosquitto_subscribe_v5(c->mosq, NULL, filter, qos, options, NULL);
        if (rc)
            LOG_WARN(c->o.name, "subscribe %s failed: %s", filter, mqtt_errstr(rc));
        io_update(c);
    }
    return 0;
}

uint64_t mqtt_msgs_in(const mqtt_t *c)
{
    return c ? c->msgs_in : 0;
}

int mqtt_unsubscribe(mqtt_t *c, const char *filter)
{
    if (!c || !filter || mosquitto_sub_topic_check(filter))
        return BL_EINVAL;
    sub_t *u = calloc(1, sizeof(*u));
    if (!u || !(u->filter = strdup(filter))) {
        free(u);
        return BL_ENOMEM;
    }
    g_ptr_array_add(c->unsubs, u);
    if (c->state == ST_CONNECTED) {
        send_unsubscribe(c, u);
        io_update(c);
    }
    return 0;
}

int mqtt_check_publish(const bl_msg_t *m)
{
    if (!m || !m->topic || !m->topic[0] || m->qos > 2 || m->payload_len > MQTT_MAX_PAYLOAD ||
        mosquitto_pub_topic_check(m->topic) ||
        mosquitto_validate_utf8(m->topic, (int)strlen(m->topic)))
        return BL_EINVAL;
    mosquitto_property *props = NULL;
    int rc = mqtt_props_from_msg(m, &props);
    mosquitto_property_free_all(&props);
    return rc;
}

int mqtt_publish(mqtt_t *c, const bl_msg_t *m, uint64_t token)
{
    /* Refuse now what could never be sent, rather than after it has been queued. */
    int rc = c ? mqtt_check_publish(m) : BL_EINVAL;
    if (rc)
        return rc;
    pub_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->m = msg_dup(m))) {
        free(p);
        return BL_ENOMEM;
    }
    p->token = token;
    p->queued_ms = bl_now_ms();
    g_queue_push_tail(&c->fifo, p);
    c->pending_bytes += p->m->payload_len;
    kick(c);
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
    io_remove(c);
    source_drop(&c->misc);
    source_drop(&c->retry);
    source_drop(&c->kick);
    if (c->mosq) {
        if (c->state == ST_CONNECTED)
            mosquitto_disconnect_v5(c->mosq, 0, NULL); /* written at once: not in a callback */
        mosquitto_destroy(c->mosq);
    }
    pub_t *p;
    while ((p = g_queue_pop_head(&c->fifo)))
        pub_release(c, p);
    while ((p = g_queue_pop_head(&c->inflight)))
        pub_release(c, p);
    if (c->by_mid)
        g_hash_table_destroy(c->by_mid);
    if (c->subs)
        g_ptr_array_free(c->subs, TRUE);
    if (c->unsubs)
        g_ptr_array_free(c->unsubs, TRUE);
    free((char *)c->o.name);
    free((char *)c->o.host);
    free((char *)c->o.client_id);
    free((char *)c->o.username);
    free((char *)c->o.password);
    free((char *)c->o.cafile);
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
