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
 * mqttpkt.c (pure, fuzzed), the socket in mqttio.c, what is in flight in mqtt_flow.c;
 * this file is the connection and the loop: connect, CONNACK and what it says about
 * the session, subscriptions, reading and parsing, writing, keep-alive, reconnects.
 *
 * Publishes: a FIFO of message copies feeds at most MQTT_INFLIGHT_MAX (or the broker's
 * Receive Maximum) publishes in flight, each remembered by packet identifier until the
 * broker acknowledges it. Nothing is written from inside a callback or the parse of a
 * packet: bytes collect in one output buffer and leave once the layer above has
 * committed (can_write), in one write() per turn of the loop.
 *
 * Over 600 lines: connect, reconnect, keep-alive and the read loop share one connection's
 * state and each other's error paths; the parts that stand alone (packets, socket,
 * in-flight window) are already their own files. */
#include "mqtt_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "config.h"
#include "log.h"

/* Entry points enter c->guard and leave it with loop_leave_destroy(..., mqtt_destroy, c). */
static void mqtt_destroy(void *obj);
static void conn_lost(mqtt_t *c, const char *why);
static void attempt(mqtt_t *c);
static void kick(mqtt_t *c);
static void arm_timer(mqtt_t *c);

/* ---------------------------------------------------------------- output */

/* Write what the output buffer holds, unless the layer above still has to commit what
 * it depends on: then on a later turn (kick), after the commit. */
static void write_out(mqtt_t *c)
{
    if (!c->io || c->guard.freed || c->out_off >= c->out->len)
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

/* ---------------------------------------------------------------- connection */

static void schedule_retry(mqtt_t *c, unsigned delay_ms);

/* The connection attempt failed or the connection was lost. */
static void conn_lost(mqtt_t *c, const char *why)
{
    /* why may live in the stream freed below (mqttio's error text). */
    char why_copy[256];
    if (why) {
        snprintf(why_copy, sizeof why_copy, "%s", why);
        why = why_copy;
    }
    if (c->state != ST_CONNECTING && c->state != ST_CONNACK && c->state != ST_CONNECTED)
        return;
    bool was_up = c->state == ST_CONNECTED;
    c->state = ST_WAITING;
    c->mark = false; /* what was written on this connection may never have been read */
    mqttio_free(c->io);
    c->io = NULL;
    loop_cancel(&c->timer);
    g_byte_array_set_size(c->in, 0);
    g_byte_array_set_size(c->out, 0);
    c->in_off = c->out_off = 0;
    c->in_full = c->in_more = false;
    for (guint i = 0; i < c->subs->len; i++)
        ((sub_t *)g_ptr_array_index(c->subs, i))->pid = 0;
    for (guint i = 0; i < c->unsubs->len; i++)
        ((sub_t *)g_ptr_array_index(c->unsubs, i))->pid = 0;
    if (c->o.clean_start) {
        /* The next session starts empty (3.1.2.4): what was unacknowledged is published
         * again, ahead of everything queued after it, in its original order. */
        mqtt_flow_requeue(c, true);
        memset(c->in2, 0, sizeof c->in2);
    }
    unsigned delay = c->backoff_ms;
    c->backoff_ms = BL_MIN(c->backoff_ms * 2, MQTT_BACKOFF_MAX_MS);
    if (!why)
        why = "closed by the broker";
    log_level_t loud = c->o.quiet ? LOG_LVL_DEBUG : LOG_LVL_WARN;
    if (was_up)
        LOG_AT(loud, c->o.name, "connection lost (%s), retrying in %.1f s", why, delay / 1000.0);
    else if (c->failures++ == 0)
        LOG_AT(loud, c->o.name, "cannot connect to %s:%d (%s), retrying in %.1f s", c->o.host,
               c->o.port, why, delay / 1000.0);
    else
        LOG_DEBUG(c->o.name, "cannot connect to %s:%d (%s), retrying in %.1f s", c->o.host,
                  c->o.port, why, delay / 1000.0);
    schedule_retry(c, delay);
    if (was_up && c->ev.on_disconnect && !c->guard.freed)
        c->ev.on_disconnect(c->ud, BL_EIO);
}

/* The broker broke the protocol: say why, close, reconnect. */
static void protocol_error(mqtt_t *c, uint8_t reason, const char *why)
{
    LOG_WARN(c->o.name, "the broker sent a packet we cannot take (%s): disconnecting", why);
    /* The DISCONNECT alone: acknowledgements waiting in the buffer may depend on a
     * commit still to come, and the broker sends those messages again anyway. */
    GByteArray *bye = g_byte_array_new();
    /* ... and only on a packet boundary: after a partial write, the DISCONNECT's bytes
     * would end the packet in the middle (and could make an acknowledgement of it). */
    if (c->out_off == 0 && mqttpkt_disconnect(bye, reason) == 0 && c->io) {
        const char *e;
        (void)mqttio_write(c->io, bye->data, bye->len, &e);
    }
    g_byte_array_free(bye, TRUE);
    char buf[160];
    snprintf(buf, sizeof buf, "protocol error: %s", why);
    conn_lost(c, buf);
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
    LOG_AT(c->o.quiet ? LOG_LVL_DEBUG : LOG_LVL_INFO, c->o.name, "connected to %s:%d", c->o.host,
           c->o.port);
    if (!c->o.clean_start) {
        if (k->session_present)
            mqtt_flow_resume(c);
        else
            mqtt_flow_session_gone(c);
    }
    mqtt_flow_subscribe_all(c);
    arm_timer(c);
    if (c->ev.on_connect && !c->guard.freed)
        c->ev.on_connect(c->ud);
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
        mqtt_flow_on_publish(c, k);
        break;
    case MQTTPKT_PUBACK:
        mqtt_flow_on_puback(c, k);
        break;
    case MQTTPKT_PUBREC:
        mqtt_flow_on_pubrec(c, k);
        break;
    case MQTTPKT_PUBREL:
        mqtt_flow_on_pubrel(c, k->pid);
        break;
    case MQTTPKT_PUBCOMP:
        mqtt_flow_on_pubcomp(c, k);
        break;
    case MQTTPKT_SUBACK:
        mqtt_flow_on_suback(c, k);
        break;
    case MQTTPKT_UNSUBACK:
        mqtt_flow_on_unsuback(c, k);
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
    return !c->guard.freed && c->io && (c->state == ST_CONNACK || c->state == ST_CONNECTED);
}

/* Parse up to MQTT_PARSE_BATCH packets of what was read; a rest waits for the next
 * turn (kick), after the layer above has committed this batch. */
static void parse_in(mqtt_t *c)
{
    c->in_more = false;
    for (int n = 0; reading(c) && c->in_off < c->in->len; n++) {
        if (n == MQTT_PARSE_BATCH) {
            c->in_more = true; /* the rest on the next turn */
            break;
        }
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

/* Read what the socket has, up to MQTT_IN_HIGH unparsed, unless that is only part of
 * one packet: then on until the packet is whole (its size is checked by the parser). */
static void read_in(mqtt_t *c)
{
    c->in_full = false;
    while (reading(c)) {
        size_t have = c->in->len - c->in_off;
        if (have >= MQTT_IN_HIGH) {
            size_t first = mqttpkt_peek_size(c->in->data + c->in_off, have);
            if (first && first <= have) {
                c->in_full = true;
                return;
            }
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

/* ---------------------------------------------------------------- the loop */

/* After reading or any change: send what can go, and come back for what is left. */
static void pump(mqtt_t *c)
{
    mqtt_flow_flush(c);
    write_out(c);
    if (reading(c) && (c->in_full || c->in_more))
        kick(c); /* packets left unparsed, or a stopped read: next turn */
}

static gboolean kick_cb(gpointer ud)
{
    mqtt_t *c = ud;
    c->kick = NULL;
    loop_enter(&c->guard);
    if (reading(c)) {
        parse_in(c);
        if (c->in_full)
            read_in(c);
        parse_in(c);
    }
    pump(c);
    loop_leave_destroy(&c->guard, mqtt_destroy, c);
    return G_SOURCE_REMOVE;
}

static void kick(mqtt_t *c)
{
    if (c->kick || c->guard.freed)
        return;
    /* Default priority, not idle: under load some socket is always ready, and an idle
     * source would wait behind all of them. The layer above commits at a higher
     * priority, so a kick that waits for can_write runs after that commit. */
    c->kick = loop_idle(c->ctx, G_PRIORITY_DEFAULT, kick_cb, c);
}

static void io_up(void *ud)
{
    mqtt_t *c = ud;
    loop_enter(&c->guard);
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
    loop_leave_destroy(&c->guard, mqtt_destroy, c);
}

static void io_readable(void *ud)
{
    mqtt_t *c = ud;
    loop_enter(&c->guard);
    read_in(c);
    parse_in(c);
    pump(c);
    loop_leave_destroy(&c->guard, mqtt_destroy, c);
}

static void io_writable(void *ud)
{
    mqtt_t *c = ud;
    loop_enter(&c->guard);
    pump(c);
    loop_leave_destroy(&c->guard, mqtt_destroy, c);
}

static void io_failed(void *ud, const char *why)
{
    mqtt_t *c = ud;
    loop_enter(&c->guard);
    conn_lost(c, why);
    loop_leave_destroy(&c->guard, mqtt_destroy, c);
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
    c->retry = NULL;
    loop_enter(&c->guard);
    attempt(c);
    loop_leave_destroy(&c->guard, mqtt_destroy, c);
    return G_SOURCE_REMOVE;
}

static void schedule_retry(mqtt_t *c, unsigned delay_ms)
{
    loop_cancel(&c->retry);
    c->retry = loop_timeout(c->ctx, delay_ms, retry_cb, c);
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
    c->timer = NULL;
    loop_enter(&c->guard);
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
    if (!c->guard.freed && c->io)
        arm_timer(c);
    loop_leave_destroy(&c->guard, mqtt_destroy, c);
    return G_SOURCE_REMOVE;
}

static void arm_timer(mqtt_t *c)
{
    loop_cancel(&c->timer);
    int64_t due = next_deadline(c);
    if (due < 0)
        return;
    int64_t wait = due - bl_now_ms();
    c->timer = loop_timeout(c->ctx, (unsigned)BL_MAX(wait, 0), timer_cb, c);
}

/* ---------------------------------------------------------------- public API */

void mqtt_opts_set_broker(mqtt_opts_t *o, const config_broker_t *b)
{
    o->host = b->host;
    o->port = b->port;
    o->tls = b->tls;
    o->cafile = b->cafile;
    o->username = b->username;
    o->password = b->password;
}

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
    c->wake = kick;
    c->srv_receive_max = UINT16_MAX;
    c->srv_max_qos = 2;
    c->srv_retain = true;
    c->in = g_byte_array_new();
    c->out = g_byte_array_new();
    g_queue_init(&c->fifo);
    g_queue_init(&c->inflight);
    c->by_pid = g_hash_table_new(NULL, NULL);
    c->subs = g_ptr_array_new_with_free_func(mqtt_flow_sub_free);
    c->unsubs = g_ptr_array_new_with_free_func(mqtt_flow_sub_free);
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

int mqtt_start(mqtt_t *c)
{
    if (!c || c->state != ST_IDLE)
        return BL_ESTATE;
    loop_enter(&c->guard);
    attempt(c);
    return loop_leave_destroy(&c->guard, mqtt_destroy, c) ? BL_ESTATE : 0;
}

bool mqtt_connected(const mqtt_t *c)
{
    return c && c->state == ST_CONNECTED;
}

static void mqtt_destroy(void *obj)
{
    mqtt_t *c = obj;
    if (c->io && c->state == ST_CONNECTED) {
        /* A clean goodbye: the Will is not published (3.14.4). Whatever else waits in
         * the buffer goes too, ahead of it; what depends on an uncommitted write does
         * not wait here (the layer above commits before it frees us). */
        mqttpkt_disconnect(c->out, 0);
        const char *why;
        (void)mqttio_write(c->io, c->out->data + c->out_off, mqtt_flow_out_pending(c), &why);
    }
    mqttio_free(c->io);
    loop_cancel(&c->timer);
    loop_cancel(&c->retry);
    loop_cancel(&c->kick);
    pub_t *p;
    while ((p = g_queue_pop_head(&c->fifo)))
        mqtt_flow_release(c, p);
    while ((p = g_queue_pop_head(&c->inflight)))
        mqtt_flow_release(c, p);
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
    if (!c || c->guard.freed)
        return;
    memset(&c->ev, 0, sizeof(c->ev));
    if (loop_free(&c->guard))
        mqtt_destroy(c);
}
