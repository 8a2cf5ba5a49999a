/* SPDX-License-Identifier: MIT */
/* blpeer.c - a hostile pinned peer, for the lab (issue 12). It is a real site: its
 * identity comes from `brokerless init`, the victim pins it, and it speaks the real
 * protocol through the project's own signalling and link (signaling.c, link.c: ICE,
 * DTLS, SCTP, HELLO). Once the link is open it sends the MSG frames its command line
 * describes, built by hand so that they can break every rule a well-behaved sender
 * keeps (millions of user properties, '$' topics behind a prefix, any Response Topic, a
 * flood of retained topics), and it reports what the victim acknowledges.
 *
 *   blpeer -c SITE.conf ACTION...
 *   ACTION: msg,topic=T[,count=N][,qos=Q][,retain=1][,payload=TEXT][,payload_size=N]
 *               [,rt=RESPONSE_TOPIC][,props=N][,propbytes=N][,origin=SITE][,wait=1]
 *     topic      the wire topic; "%d" in it becomes the message's index (0..N-1)
 *     props      N empty user properties (7 bytes each on the wire)
 *     propbytes  one user property "k" whose value is N bytes
 *     origin     the MSG's origin (default: our own name)
 *     wait=1     send this action only once everything before it is acknowledged
 *
 * The config is a brokerless config with one [peer] (the victim); only [site] name,
 * state_dir, [signal], [ice] and the peer's fingerprint are used. Lines on stdout:
 * "blpeer: link open", "blpeer: sent N messages", "blpeer: acked N" (the total, after
 * every ACK frame). Runs until SIGTERM or SIGINT. Test code: it links the project's core
 * library and is built only under tests/. */
#include <glib-unix.h>
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "cert.h"
#include "config.h"
#include "link.h"
#include "log.h"
#include "signaling.h"
#include "wire.h"

typedef struct action {
    char *topic, *origin;
    size_t count, props, propbytes, payload_size;
    int qos;
    bool retain, wait;
    char *payload, *rt;
} action_t;

typedef struct peer {
    config_t cfg;
    cert_t *cert;
    signaling_t *sig;
    link_t *link;
    GMainLoop *loop;
    action_t *acts;
    size_t n_acts, act, index; /* next message: acts[act], its index-th */
    uint64_t seq, sent, acked;
    bool done_said;
} peer_t;

/* ---- frames ---- */

static uint8_t *put_be(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = n; i > 0; i--, v >>= 8)
        p[i - 1] = (uint8_t)v;
    return p + n;
}

static uint8_t *put(uint8_t *p, const void *src, size_t n)
{
    memcpy(p, src, n);
    return p + n;
}

static char *topic_of(const action_t *a, size_t i)
{
    const char *d = strstr(a->topic, "%d");
    if (!d)
        return g_strdup(a->topic);
    return g_strdup_printf("%.*s%zu%s", (int)(d - a->topic), a->topic, i, d + 2);
}

/* One MSG frame (docs/PROTOCOL.md "MSG"), built without wire.c's checks. */
static uint8_t *msg_frame(peer_t *p, const action_t *a, size_t i, size_t *len)
{
    char *topic = topic_of(a, i);
    const char *origin = a->origin ? a->origin : p->cfg.site_name;
    size_t olen = strlen(origin), tlen = strlen(topic), rtlen = a->rt ? strlen(a->rt) : 0;
    size_t plen =
        (a->rt ? 5 + rtlen : 0) + a->props * 7 + (a->propbytes ? 5 + 2 + 1 + a->propbytes : 0);
    size_t pay = a->payload ? strlen(a->payload) : a->payload_size;
    *len = 4 + 1 + olen + 8 + 2 + tlen + 4 + plen + 4 + pay;
    uint8_t *f = g_malloc(*len), *w = f;
    w = put_be(w, WIRE_VERSION, 1);
    w = put_be(w, WIRE_MSG, 1);
    w = put_be(w, (uint64_t)a->qos | (a->retain ? 0x04 : 0), 1);
    w = put_be(w, 0, 1);
    w = put_be(w, olen, 1);
    w = put(w, origin, olen);
    w = put_be(w, ++p->seq, 8);
    w = put_be(w, tlen, 2);
    w = put(w, topic, tlen);
    w = put_be(w, plen, 4);
    if (a->rt) {
        w = put_be(w, 0x08, 1);
        w = put_be(w, rtlen, 4);
        w = put(w, a->rt, rtlen);
    }
    for (size_t k = 0; k < a->props; k++) {
        static const uint8_t empty[] = {0x26, 0, 0, 0, 2, 0, 0};
        w = put(w, empty, sizeof(empty));
    }
    if (a->propbytes) {
        w = put_be(w, 0x26, 1);
        w = put_be(w, 2 + 1 + a->propbytes, 4);
        w = put_be(w, 1, 2);
        w = put(w, "k", 1);
        memset(w, 'v', a->propbytes);
        w += a->propbytes;
    }
    w = put_be(w, pay, 4);
    if (a->payload)
        put(w, a->payload, pay);
    else
        memset(w, 'p', pay);
    g_free(topic);
    return f;
}

/* Send what the link takes; an action with wait=1 starts only once all is acknowledged. */
static void pump(peer_t *p)
{
    while (p->act < p->n_acts && link_can_send(p->link)) {
        action_t *a = &p->acts[p->act];
        if (a->wait && p->index == 0 && p->acked < p->seq)
            return;
        size_t len;
        uint8_t *f = msg_frame(p, a, p->index, &len);
        int rc = link_send_frame(p->link, f, len);
        g_free(f);
        if (rc) {
            fprintf(stderr, "blpeer: send failed: %s\n", bl_strerror(rc));
            return;
        }
        p->sent++;
        if (++p->index == a->count) {
            p->index = 0;
            p->act++;
        }
    }
    if (p->act == p->n_acts && !p->done_said) {
        p->done_said = true;
        printf("blpeer: sent %llu messages\n", (unsigned long long)p->sent);
    }
}

/* ---- link and signalling events ---- */

static void on_signal(void *ud, link_t *l, const char *type, const char *sid, const char *body)
{
    peer_t *p = ud;
    signaling_send(p->sig, link_peer_name(l), type, sid, body);
}

static void on_open(void *ud, link_t *l)
{
    peer_t *p = ud;
    wire_hello_t h = {.max_message_size = (uint32_t)p->cfg.max_message_size};
    snprintf(h.site, sizeof(h.site), "%s", p->cfg.site_name);
    RAND_bytes((unsigned char *)&h.epoch, sizeof(h.epoch));
    link_send_hello(l, &h);
    printf("blpeer: link open\n");
    /* A new session starts the actions again only if none was sent yet. */
    pump(p);
}

static void on_down(void *ud, link_t *l)
{
    (void)ud;
    (void)l;
    printf("blpeer: link down\n");
}

static void on_frame(void *ud, link_t *l, const wire_frame_t *f)
{
    peer_t *p = ud;
    (void)l;
    if (f->type == WIRE_ACK) {
        p->acked += f->u.ack.n;
        printf("blpeer: acked %llu\n", (unsigned long long)p->acked);
        pump(p);
    }
}

static void on_writable(void *ud, link_t *l)
{
    (void)l;
    pump(ud);
}

static void on_state(void *ud, link_t *l)
{
    (void)ud;
    (void)l;
}

static void signal_up(void *ud)
{
    link_signal_up(((peer_t *)ud)->link);
}

static void signal_in(void *ud, const seal_msg_t *m)
{
    peer_t *p = ud;
    if (!strcmp(m->from, link_peer_name(p->link)))
        link_signal_in(p->link, m);
}

static gboolean on_quit(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_CONTINUE;
}

/* ---- command line ---- */

static int parse_action(const char *arg, action_t *a)
{
    memset(a, 0, sizeof(*a));
    a->count = 1;
    a->qos = 1;
    char **kv = g_strsplit(arg, ",", -1);
    int rc = strcmp(kv[0], "msg") ? -1 : 0;
    for (int i = 1; kv[i] && !rc; i++) {
        char *eq = strchr(kv[i], '=');
        if (!eq) {
            rc = -1;
            break;
        }
        *eq = '\0';
        const char *k = kv[i], *v = eq + 1;
        if (!strcmp(k, "topic"))
            a->topic = g_strdup(v);
        else if (!strcmp(k, "payload"))
            a->payload = g_strdup(v);
        else if (!strcmp(k, "rt"))
            a->rt = g_strdup(v);
        else if (!strcmp(k, "origin"))
            a->origin = g_strdup(v);
        else if (!strcmp(k, "count"))
            a->count = strtoull(v, NULL, 10);
        else if (!strcmp(k, "qos"))
            a->qos = atoi(v);
        else if (!strcmp(k, "retain"))
            a->retain = atoi(v) != 0;
        else if (!strcmp(k, "wait"))
            a->wait = atoi(v) != 0;
        else if (!strcmp(k, "props"))
            a->props = strtoull(v, NULL, 10);
        else if (!strcmp(k, "propbytes"))
            a->propbytes = strtoull(v, NULL, 10);
        else if (!strcmp(k, "payload_size"))
            a->payload_size = strtoull(v, NULL, 10);
        else
            rc = -1;
    }
    g_strfreev(kv);
    if (!a->topic || a->count == 0 || a->qos < 0 || a->qos > 2)
        rc = -1;
    return rc;
}

static void actions_free(action_t *acts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        g_free(acts[i].topic);
        g_free(acts[i].payload);
        g_free(acts[i].rt);
        g_free(acts[i].origin);
    }
    g_free(acts);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 4 || strcmp(argv[1], "-c")) {
        fprintf(stderr, "usage: blpeer -c SITE.conf ACTION...\n");
        return 2;
    }
    peer_t p = {0};
    char err[1024];
    if (config_load_file(argv[2], &p.cfg, err, sizeof(err)) || p.cfg.n_peers != 1) {
        fprintf(stderr, "blpeer: %s\n", p.cfg.n_peers != 1 ? "one [peer] wanted" : err);
        return 1;
    }
    p.n_acts = (size_t)argc - 3;
    p.acts = g_new0(action_t, p.n_acts);
    for (size_t i = 0; i < p.n_acts; i++)
        if (parse_action(argv[3 + i], &p.acts[i])) {
            fprintf(stderr, "blpeer: bad action \"%s\"\n", argv[3 + i]);
            return 2;
        }
    log_set_site(p.cfg.site_name);
    log_set_level(p.cfg.log_level);
    if (cert_load(p.cfg.state_dir, false, &p.cert)) {
        fprintf(stderr, "blpeer: no identity in %s (brokerless init)\n", p.cfg.state_dir);
        return 1;
    }
    GMainContext *ctx = g_main_context_default();
    p.loop = g_main_loop_new(ctx, FALSE);
    link_events_t lev = {.signal_send = on_signal,
                         .on_open = on_open,
                         .on_down = on_down,
                         .on_frame = on_frame,
                         .on_writable = on_writable,
                         .on_state = on_state};
    signaling_events_t sev = {.on_connect = signal_up, .on_message = signal_in};
    p.link = link_new(ctx, &p.cfg, &p.cfg.peers[0], p.cert, &lev, &p);
    p.sig = signaling_new(ctx, &p.cfg, p.cert, &sev, &p);
    if (!p.link || !p.sig || signaling_start(p.sig))
        return 1;
    g_unix_signal_add(SIGINT, on_quit, p.loop);
    g_unix_signal_add(SIGTERM, on_quit, p.loop);
    g_main_loop_run(p.loop);
    link_free(p.link);
    signaling_free(p.sig);
    g_main_loop_unref(p.loop);
    cert_free(p.cert);
    actions_free(p.acts, p.n_acts);
    config_free(&p.cfg);
    return 0;
}
