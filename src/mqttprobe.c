/* SPDX-License-Identifier: MIT */
/* mqttprobe.c - see mqttprobe.h. */
#include "mqttprobe.h"

#include <stdio.h>
#include <string.h>

#include "loop.h"
#include "mqtt.h"
#include "mqttio.h"
#include "mqttpkt.h"

typedef struct probe {
    const mqttprobe_opts_t *o;
    mqttprobe_result_t *r;
    mqttio_t *io;
    GByteArray *in, *out;
    size_t out_off;
    size_t subacks;
    GSource *timer;
    bool done, ok;
} probe_t;

static void finish(probe_t *p, bool ok, const char *why)
{
    p->done = true;
    p->ok = ok;
    if (why)
        snprintf(p->r->why, sizeof(p->r->why), "%s", why);
}

static void flush(probe_t *p)
{
    while (p->out_off < p->out->len) {
        const char *why = NULL;
        ssize_t n = mqttio_write(p->io, p->out->data + p->out_off, p->out->len - p->out_off, &why);
        if (n == BL_EAGAIN)
            return;
        if (n < 0) {
            finish(p, false, why ? why : "write failed");
            return;
        }
        p->out_off += (size_t)n;
    }
}

static void on_up(void *ud)
{
    probe_t *p = ud;
    mqttpkt_connect_t k = {.client_id = p->o->client_id,
                           .username = p->o->username,
                           .password = p->o->password,
                           .keepalive = 30,
                           .clean_start = p->o->clean_start,
                           .session_expiry = p->o->clean_start ? 0 : MQTT_SESSION_EXPIRY_S};
    if (mqttpkt_connect(p->out, &k)) {
        finish(p, false, "cannot build CONNECT");
        return;
    }
    for (size_t i = 0; i < p->o->n_filters; i++)
        mqttpkt_subscribe(p->out, (uint16_t)(i + 1), p->o->filters[i], 2,
                          MQTTPKT_SUB_NO_LOCAL | MQTTPKT_SUB_RAP);
    flush(p);
}

static void on_packet(probe_t *p, const mqttpkt_t *k)
{
    if (k->type == MQTTPKT_CONNACK) {
        p->r->mqtt5 = true;
        p->r->connack = k->reason;
        if (k->reason >= 0x80) {
            char why[200];
            snprintf(why, sizeof(why), "refused the connection: %s%s%s",
                     mqttpkt_reason_name(k->reason), k->reason_string ? ", " : "",
                     k->reason_string ? k->reason_string : "");
            finish(p, false, why);
        } else if (!p->o->n_filters) {
            finish(p, true, NULL);
        }
    } else if (k->type == MQTTPKT_SUBACK && k->pid >= 1 && k->pid <= p->o->n_filters) {
        p->r->codes[k->pid - 1] = k->n_codes ? k->codes[0] : 0x80;
        if (++p->subacks == p->o->n_filters)
            finish(p, true, NULL);
    }
}

static void on_readable(void *ud)
{
    probe_t *p = ud;
    uint8_t buf[16384];
    const char *why = NULL;
    ssize_t n = 0;
    while (!p->done && (n = mqttio_read(p->io, buf, sizeof(buf), &why)) > 0) {
        g_byte_array_append(p->in, buf, (guint)n);
        size_t used = 0;
        mqttpkt_t k;
        const char *pwhy = NULL;
        while (!p->done && p->in->len) {
            int rc = mqttpkt_parse(p->in->data, p->in->len, 0, &k, &used, &pwhy);
            if (rc) {
                finish(p, false,
                       p->r->mqtt5 ? "sent a malformed packet"
                                   : "does not speak MQTT 5 (its answer to an MQTT 5 CONNECT "
                                     "is not one)");
                return;
            }
            if (!used)
                break;
            on_packet(p, &k);
            mqttpkt_clear(&k);
            g_byte_array_remove_range(p->in, 0, (guint)used);
        }
    }
    if (!p->done && n != BL_EAGAIN)
        finish(p, false,
               p->r->mqtt5 ? "closed the connection"
                           : "closed the connection without a CONNACK (not MQTT 5, or it "
                             "refused us)");
}

static void on_writable(void *ud)
{
    flush(ud);
}

static void on_failed(void *ud, const char *why)
{
    finish(ud, false, why);
}

static gboolean on_timeout(gpointer ud)
{
    probe_t *p = ud;
    p->timer = NULL;
    finish(p, false, "no answer in time");
    return G_SOURCE_REMOVE;
}

int mqttprobe_run(const mqttprobe_opts_t *o, mqttprobe_result_t *r)
{
    memset(r, 0, sizeof(*r));
    probe_t p = {.o = o, .r = r, .in = g_byte_array_new(), .out = g_byte_array_new()};
    if (o->n_filters)
        r->codes = g_malloc0(o->n_filters);
    GMainContext *ctx = g_main_context_new();
    mqttio_opts_t io = {.host = o->host, .port = o->port, .tls = o->tls, .cafile = o->cafile};
    static const mqttio_events_t ev = {.on_up = on_up,
                                       .on_readable = on_readable,
                                       .on_writable = on_writable,
                                       .on_failed = on_failed};
    const char *why = NULL;
    p.io = mqttio_connect(ctx, &io, &ev, &p, &why);
    if (!p.io)
        finish(&p, false, why ? why : "cannot connect");
    p.timer =
        loop_timeout(ctx, (unsigned)(o->timeout_ms > 0 ? o->timeout_ms : 5000), on_timeout, &p);
    while (!p.done)
        g_main_context_iteration(ctx, TRUE);
    loop_cancel(&p.timer);
    mqttio_free(p.io); /* no DISCONNECT: nothing more is said, nothing acknowledged */
    while (g_main_context_iteration(ctx, FALSE))
        ;
    g_main_context_unref(ctx);
    g_byte_array_unref(p.in);
    g_byte_array_unref(p.out);
    return p.ok ? 0 : BL_EIO;
}
