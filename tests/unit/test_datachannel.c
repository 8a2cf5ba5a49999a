/* SPDX-License-Identifier: MIT */
/* test_datachannel - DTLS + SCTP + DCEP back to back in one process, no ICE.
 *
 * Two stacks on the default GMainContext exchange datagrams through an in-memory queue
 * drained by an idle source; a seeded PRNG can drop a share of them. Every wait is
 * bounded (RUN_LIMIT_MS) so a broken stack fails the test instead of hanging it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "cert.h"
#include "dcep.h"
#include "dtls.h"
#include "fixture.h"
#include "log.h"
#include "sctp.h"

#define RUN_LIMIT_MS 30000
#define MTU 1200

typedef struct pair pair_t;

typedef struct side {
    pair_t *p;
    struct side *peer;
    const char *name;
    bool client;
    dtls_t *dtls;
    sctp_t *sctp;

    bool dtls_up, dtls_failed, sctp_up, sctp_closed;
    char fail_why[160];
    size_t app_records; /* decrypted DTLS records handed up */
    int chan_opens;
    int stream;
    char label[64];

    /* sending: messages 0..tx_total-1, generated from their number */
    uint32_t tx_seq, tx_total;
    size_t (*size_of)(uint32_t seq);
    int eagain, writable;
    /* receiving */
    uint32_t rx_seq;
    int rx_bad;
    size_t rx_bytes;
    /* free the layer from inside its own callback (robustness tests) */
    uint32_t free_sctp_at; /* 0 = never, else after that many messages */
    bool free_dtls_on_fail;
    size_t max_message;
    int rx_skipped; /* over max_message: expected to be dropped */
} side_t;

typedef struct dgram {
    side_t *to;
    size_t len;
    uint8_t buf[];
} dgram_t;

struct pair {
    GMainContext *ctx;
    cert_t *cert_a, *cert_b;
    side_t a, b; /* a: DTLS client (answerer), b: DTLS server */
    GQueue q;
    GSource *pump;
    GRand *rng;
    unsigned loss_pct;
    size_t max_dgram, dgrams, dropped;
};

/* ---- message generator / checker ---------------------------------------------------- */

/* Empty, tiny, around one SCTP packet (1148 bytes of DATA payload), around the 64 KiB
 * receive buffer (so partial deliveries are reassembled), and the 256 KiB limit. */
static const size_t sizes[] = {0,     1,     1200, 60000, 17,     1148,  1149,  5000,
                               65536, 65537, 2,    100,   100000, 30000, 262144};

static size_t varied_size(uint32_t seq)
{
    return sizes[seq % BL_ARRAY_LEN(sizes)];
}

/* sctp_opts_t's send_buffer and idle_keep_ms of the pairs made next. */
static size_t opt_send_buffer;
static unsigned opt_idle_keep_ms;

static size_t burst_size(uint32_t seq)
{
    (void)seq;
    return 60000;
}

static uint8_t pattern(uint32_t seq, size_t i)
{
    return (uint8_t)(seq * 131u + i * 7u + (i >> 8));
}

static uint8_t *make_msg(uint32_t seq, size_t len)
{
    uint8_t *m = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        m[i] = pattern(seq, i);
    if (len >= 4) {
        m[0] = (uint8_t)(seq >> 24);
        m[1] = (uint8_t)(seq >> 16);
        m[2] = (uint8_t)(seq >> 8);
        m[3] = (uint8_t)seq;
    }
    return m;
}

/* ---- the wire ----------------------------------------------------------------------------- */

static gboolean pump_fire(gpointer ud)
{
    pair_t *p = ud;
    g_source_unref(p->pump);
    p->pump = NULL;
    /* Only what is queued now; what this delivery produces goes in the next round. */
    guint n = g_queue_get_length(&p->q);
    for (guint i = 0; i < n; i++) {
        dgram_t *d = g_queue_pop_head(&p->q);
        if (d->to->dtls)
            dtls_feed(d->to->dtls, d->buf, d->len);
        free(d);
    }
    return G_SOURCE_REMOVE;
}

static int wire_send(void *ud, const uint8_t *buf, size_t len)
{
    side_t *s = ud;
    pair_t *p = s->p;
    p->dgrams++;
    p->max_dgram = BL_MAX(p->max_dgram, len);
    if (p->loss_pct && (unsigned)g_rand_int_range(p->rng, 0, 100) < p->loss_pct) {
        p->dropped++;
        return 0;
    }
    dgram_t *d = malloc(sizeof(*d) + len);
    d->to = s->peer;
    d->len = len;
    memcpy(d->buf, buf, len);
    g_queue_push_tail(&p->q, d);
    if (!p->pump) {
        p->pump = g_idle_source_new();
        g_source_set_callback(p->pump, pump_fire, p, NULL);
        g_source_attach(p->pump, p->ctx);
    }
    return 0;
}

/* ---- SCTP events ---------------------------------------------------------------------------- */

static void pump_tx(side_t *s)
{
    while (s->stream >= 0 && s->tx_seq < s->tx_total) {
        size_t len = s->size_of(s->tx_seq);
        uint8_t *m = make_msg(s->tx_seq, len);
        int rc = sctp_send(s->sctp, (uint16_t)s->stream, m, len);
        free(m);
        if (rc == BL_EAGAIN) {
            s->eagain++;
            return; /* keep the message, retry on on_writable */
        }
        if (rc != 0) {
            fprintf(stderr, "%s: sctp_send(%u, %zu) = %d\n", s->name, s->tx_seq, len, rc);
            s->rx_bad++;
            return;
        }
        s->tx_seq++;
    }
}

static int sctp_out(void *ud, const uint8_t *buf, size_t len)
{
    side_t *s = ud;
    /* Each SCTP packet must fit one DTLS record in one datagram (checked via max_dgram). */
    return dtls_send(s->dtls, buf, len);
}

static void sctp_connected(void *ud)
{
    side_t *s = ud;
    s->sctp_up = true;
    /* No cmocka assert inside callbacks (it would longjmp through GLib): count instead. */
    if (s->client && sctp_open_channel(s->sctp, "brokerless", true, -1) < 0)
        s->rx_bad++;
}

static void chan_open(void *ud, uint16_t stream, const char *label)
{
    side_t *s = ud;
    s->chan_opens++;
    s->stream = stream;
    snprintf(s->label, sizeof(s->label), "%s", label);
    pump_tx(s);
}

static void on_message(void *ud, uint16_t stream, uint32_t ppid, const uint8_t *buf, size_t len)
{
    side_t *s = ud;
    /* Messages over our limit are dropped by sctp.c: expect the next one instead. */
    while (s->peer->size_of(s->rx_seq) > s->max_message) {
        s->rx_seq++;
        s->rx_skipped++;
    }
    size_t want = s->peer->size_of(s->rx_seq);
    uint32_t want_ppid = want ? DCEP_PPID_BINARY : DCEP_PPID_BINARY_EMPTY;
    bool ok = (int)stream == s->stream && ppid == want_ppid && len == want;
    uint8_t *m = ok ? make_msg(s->rx_seq, len) : NULL;
    if (!ok || memcmp(m, buf, len) != 0) {
        if (s->rx_bad++ < 5)
            fprintf(stderr, "%s: message %u wrong: stream %u ppid %u len %zu (want %zu)\n", s->name,
                    s->rx_seq, stream, ppid, len, want);
    }
    free(m);
    s->rx_seq++;
    s->rx_bytes += len;
    if (s->free_sctp_at && s->rx_seq == s->free_sctp_at) {
        sctp_free(s->sctp);
        s->sctp = NULL;
    }
}

static void on_writable(void *ud)
{
    side_t *s = ud;
    s->writable++;
    pump_tx(s);
}

static void sctp_closed(void *ud, const char *why)
{
    side_t *s = ud;
    s->sctp_closed = true;
    snprintf(s->fail_why, sizeof(s->fail_why), "%s", why);
}

/* ---- DTLS events ------------------------------------------------------------------------------
 */

static void dtls_up(void *ud)
{
    side_t *s = ud;
    s->dtls_up = true;
    if (sctp_start(s->sctp) != 0)
        s->rx_bad++;
}

static void dtls_data(void *ud, const uint8_t *buf, size_t len)
{
    side_t *s = ud;
    s->app_records++;
    sctp_feed(s->sctp, buf, len);
}

static void dtls_failed(void *ud, const char *why)
{
    side_t *s = ud;
    s->dtls_failed = true;
    snprintf(s->fail_why, sizeof(s->fail_why), "%s", why);
    if (s->free_dtls_on_fail) {
        dtls_free(s->dtls);
        s->dtls = NULL;
    }
}

/* ---- setup -------------------------------------------------------------------------------------
 */

static void side_init(pair_t *p, side_t *s, side_t *peer, const char *name, bool client,
                      const cert_t *mine, const char *pin, size_t max_message)
{
    static const dtls_events_t dev = {wire_send, dtls_up, dtls_data, dtls_failed};
    static const sctp_events_t sev = {sctp_out,   sctp_connected, chan_open,
                                      on_message, on_writable,    sctp_closed};
    memset(s, 0, sizeof(*s));
    s->p = p;
    s->peer = peer;
    s->name = name;
    s->client = client;
    s->stream = -1;
    s->size_of = varied_size;
    s->max_message = max_message;
    dtls_opts_t dopts = {
        .who = name, .cert = mine, .expected_fp = pin, .client = client, .mtu = MTU};
    s->dtls = dtls_new(p->ctx, &dopts, &dev, s);
    assert_non_null(s->dtls);
    sctp_opts_t sopts = {.who = name,
                         .dtls_client = client,
                         .max_message = max_message,
                         .send_buffer = opt_send_buffer,
                         .idle_keep_ms = opt_idle_keep_ms};
    s->sctp = sctp_new(p->ctx, &sopts, &sev, s);
    assert_non_null(s->sctp);
}

/* `pin_a` is what a (client) expects of b; NULL = the right one. */
static pair_t *pair_new_max(const char *pin_a, const char *pin_b, unsigned loss_pct, size_t max_b)
{
    pair_t *p = calloc(1, sizeof(*p));
    p->ctx = g_main_context_default();
    p->rng = g_rand_new_with_seed(20240607);
    p->loss_pct = loss_pct;
    g_queue_init(&p->q);
    assert_int_equal(cert_generate("site-a", &p->cert_a), 0);
    assert_int_equal(cert_generate("site-b", &p->cert_b), 0);
    side_init(p, &p->a, &p->b, "peer b", true, p->cert_a, pin_a ? pin_a : p->cert_b->fingerprint,
              262144);
    side_init(p, &p->b, &p->a, "peer a", false, p->cert_b, pin_b ? pin_b : p->cert_a->fingerprint,
              max_b);
    return p;
}

static pair_t *pair_new(const char *pin_a, const char *pin_b, unsigned loss_pct)
{
    return pair_new_max(pin_a, pin_b, loss_pct, 262144);
}

static void side_close(side_t *s)
{
    sctp_free(s->sctp);
    s->sctp = NULL;
    dtls_free(s->dtls);
    s->dtls = NULL;
}

static void pair_free(pair_t *p)
{
    side_close(&p->a);
    side_close(&p->b);
    if (p->pump) {
        g_source_destroy(p->pump);
        g_source_unref(p->pump);
    }
    g_queue_clear_full(&p->q, free);
    /* Let anything usrsctp or GLib still has queued run against freed ids. */
    for (int i = 0; i < 20; i++)
        g_main_context_iteration(p->ctx, FALSE);
    sctp_global_finish();
    cert_free(p->cert_a);
    cert_free(p->cert_b);
    g_rand_free(p->rng);
    free(p);
}

typedef bool (*pred_t)(pair_t *p);

typedef struct wait {
    pair_t *p;
    pred_t done;
} wait_t;

static bool wait_done(void *arg)
{
    wait_t *w = arg;
    return w->done(w->p);
}

static bool run_until(pair_t *p, pred_t done, int limit_ms)
{
    wait_t w = {p, done};
    return fixture_run_until(p->ctx, wait_done, &w, (unsigned)limit_ms);
}

static bool both_open(pair_t *p)
{
    return p->a.stream >= 0 && p->b.stream >= 0;
}

static bool all_received(pair_t *p)
{
    return (p->a.rx_seq >= p->b.tx_total && p->b.rx_seq >= p->a.tx_total) || p->a.rx_bad ||
           p->b.rx_bad || p->a.sctp_closed || p->b.sctp_closed;
}

static bool both_failed(pair_t *p)
{
    return p->a.dtls_failed && p->b.dtls_failed;
}

/* ---- tests -------------------------------------------------------------------------------------
 */

static void connect_pair(pair_t *p)
{
    assert_int_equal(dtls_start(p->b.dtls), 0);
    assert_int_equal(dtls_start(p->a.dtls), 0);
    assert_true(run_until(p, both_open, RUN_LIMIT_MS));
    assert_true(dtls_connected(p->a.dtls) && dtls_connected(p->b.dtls));
    /* Each side saw exactly the certificate it pinned. */
    assert_string_equal(dtls_peer_fingerprint(p->a.dtls), p->cert_b->fingerprint);
    assert_string_equal(dtls_peer_fingerprint(p->b.dtls), p->cert_a->fingerprint);
    /* The DTLS client opened "brokerless" on an even stream; the server saw that label. */
    assert_string_equal(p->b.label, "brokerless");
    assert_string_equal(p->a.label, "brokerless");
    assert_int_equal(p->a.stream % 2, 0);
    assert_int_equal(p->a.stream, p->b.stream);
    assert_int_equal(p->a.chan_opens, 1);
    assert_int_equal(p->b.chan_opens, 1);
}

static void exchange(pair_t *p, uint32_t n)
{
    p->a.tx_total = p->b.tx_total = n;
    pump_tx(&p->a);
    pump_tx(&p->b);
    assert_true(run_until(p, all_received, RUN_LIMIT_MS));
    assert_int_equal(p->a.rx_bad, 0);
    assert_int_equal(p->b.rx_bad, 0);
    assert_false(p->a.sctp_closed || p->b.sctp_closed);
    assert_int_equal(p->a.rx_seq, n);
    assert_int_equal(p->b.rx_seq, n);
    assert_int_equal(p->a.tx_seq, n);
    /* Nothing bigger than one datagram ever left a side. */
    assert_true(p->max_dgram <= MTU);
}

static void test_varied_messages(void **state)
{
    (void)state;
    pair_t *p = pair_new(NULL, NULL, 0);
    connect_pair(p);
    exchange(p, 1000);
    fprintf(stderr, "varied: %zu datagrams, largest %zu bytes, %d EAGAIN / %d writable\n",
            p->dgrams, p->max_dgram, p->a.eagain + p->b.eagain, p->a.writable + p->b.writable);

    /* Closing one side reaches the other through close_notify. */
    side_close(&p->a);
    gint64 end = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    while (!p->b.dtls_failed && g_get_monotonic_time() < end)
        g_main_context_iteration(p->ctx, TRUE);
    assert_true(p->b.dtls_failed);
    assert_non_null(strstr(p->b.fail_why, "close_notify"));
    pair_free(p);
}

static void test_loss(void **state)
{
    (void)state;
    pair_t *p = pair_new(NULL, NULL, 10);
    connect_pair(p);
    exchange(p, 150); /* every size 10 times; ~8 s of SCTP loss recovery */
    fprintf(stderr, "10%% loss: %zu datagrams, %zu dropped\n", p->dgrams, p->dropped);
    assert_true(p->dropped > 0);
    pair_free(p);
}

static void check_refused(const char *pin_a, const char *pin_b)
{
    pair_t *p = pair_new(pin_a, pin_b, 0);
    assert_int_equal(dtls_start(p->b.dtls), 0);
    assert_int_equal(dtls_start(p->a.dtls), 0);
    assert_true(run_until(p, both_failed, RUN_LIMIT_MS));
    /* Neither side connected, no record reached SCTP, no association, no channel. */
    assert_false(p->a.dtls_up || p->b.dtls_up);
    assert_int_equal(p->a.app_records + p->b.app_records, 0);
    assert_false(p->a.sctp_up || p->b.sctp_up);
    assert_int_equal(p->a.chan_opens + p->b.chan_opens, 0);
    assert_int_equal(dtls_send(p->a.dtls, (const uint8_t *)"x", 1), BL_ESTATE);
    pair_free(p);
}

static void test_wrong_pin_client(void **state)
{
    (void)state;
    cert_t *other;
    assert_int_equal(cert_generate("impostor", &other), 0);
    check_refused(other->fingerprint, NULL);
    cert_free(other);
}

static void test_wrong_pin_server(void **state)
{
    (void)state;
    cert_t *other;
    assert_int_equal(cert_generate("impostor", &other), 0);
    check_refused(NULL, other->fingerprint);
    cert_free(other);
}

static void test_burst_backpressure(void **state)
{
    (void)state;
    pair_t *p = pair_new(NULL, NULL, 0);
    connect_pair(p);
    p->a.size_of = p->b.size_of = burst_size;
    p->a.tx_total = 300; /* 18 MB one way: far over the send buffer */
    pump_tx(&p->a);
    assert_true(p->a.eagain > 0);
    /* The send buffer really is full, not an error in disguise. */
    assert_true(sctp_buffered(p->a.sctp) > 512u * 1024u);
    assert_true(run_until(p, all_received, RUN_LIMIT_MS));
    assert_int_equal(p->b.rx_bad, 0);
    assert_int_equal(p->b.rx_seq, 300);
    assert_int_equal(p->b.rx_bytes, 300u * 60000u);
    assert_true(p->a.writable > 0);
    fprintf(stderr, "burst: %d EAGAIN, %d on_writable\n", p->a.eagain, p->a.writable);
    pair_free(p);
}

static bool never(pair_t *p)
{
    (void)p;
    return false;
}

/* The window of a new association, 10 packets: what usrsctp counts for one packet. */
static uint32_t packet_bytes(void)
{
    pair_t *p = pair_new(NULL, NULL, 0);
    connect_pair(p);
    sctp_info_t fresh;
    assert_int_equal(sctp_get_info(p->a.sctp, &fresh), 0);
    pair_free(p);
    assert_int_equal(fresh.cwnd % 10, 0);
    return fresh.cwnd / 10;
}

/* A pair made with send_buffer and idle_keep_ms, whose window has grown past 4 times the
 * initial one (2.4 MB each way), idle for 1.3 s; then one more message from a. */
typedef struct idle_case {
    pair_t *p;
    uint32_t packet;    /* what usrsctp counts for a packet in a window */
    sctp_info_t before; /* a's association at the end of the pause */
    uint32_t after;     /* a's window right after that sctp_send, before any SACK */
} idle_case_t;

static void idle_case(idle_case_t *c, size_t send_buffer, unsigned idle_keep_ms)
{
    c->packet = packet_bytes();
    opt_send_buffer = send_buffer;
    opt_idle_keep_ms = idle_keep_ms;
    pair_t *p = c->p = pair_new(NULL, NULL, 0);
    opt_send_buffer = 0;
    opt_idle_keep_ms = 0;
    connect_pair(p);
    p->a.size_of = p->b.size_of = burst_size;
    exchange(p, 40);
    assert_false(run_until(p, never, 1300)); /* idle; the burst's last SACKs arrive */
    assert_int_equal(sctp_get_info(p->a.sctp, &c->before), 0);
    assert_true(c->before.cwnd > 4 * 10 * c->before.mtu);
    p->a.tx_total = 41;
    pump_tx(&p->a);
    assert_int_equal(p->a.tx_seq, 41);
    sctp_info_t now;
    assert_int_equal(sctp_get_info(p->a.sctp, &now), 0);
    assert_int_equal(now.idle_restarts - c->before.idle_restarts, 1);
    c->after = now.cwnd;
    exchange(p, 41); /* everything arrives */
}

/* A send after a second with nothing in flight starts the congestion state afresh, once
 * (sends in a row do not), and keeps the window the association had in use, to the
 * packet: a burst after a pause does not start again from the initial window. usrsctp's
 * settings that this borrows for the moment are back after it: a new association starts
 * at 10 packets. */
static void test_idle_restart(void **state)
{
    (void)state;
    idle_case_t c;
    idle_case(&c, 0, 0);
    assert_int_equal(c.after, c.before.cwnd / c.before.mtu * c.packet);
    fprintf(stderr, "idle restart: cwnd %u B before the pause, %u B after it\n", c.before.cwnd,
            c.after);
    pair_free(c.p);
    assert_int_equal(packet_bytes(), c.packet);
}

/* After a pause long enough for the tick to idle, the retransmission timers of a burst
 * count from now: none expires in the burst's first 50 ms (the first ticks moved
 * usrsctp's clock by the whole pause and expired them there). Only those 50 ms are
 * counted: later, under a slow build, a real timeout may come (RTO is 200 ms); none can
 * in 50 ms, as the clock moves no faster than time. */
static void test_no_timeout_after_pause(void **state)
{
    (void)state;
    pair_t *p = pair_new(NULL, NULL, 0);
    connect_pair(p);
    p->a.size_of = p->b.size_of = burst_size;
    exchange(p, 40);
    assert_false(run_until(p, never, 600)); /* nothing in flight: the tick idles */
    sctp_counters_t c0, c1;
    sctp_get_counters(&c0);
    p->a.tx_total = p->b.tx_total = 80; /* a burst each way, in flight at the first ticks */
    pump_tx(&p->a);
    pump_tx(&p->b);
    assert_false(run_until(p, never, 50));
    sctp_get_counters(&c1);
    assert_int_equal(c1.t3_timeouts - c0.t3_timeouts, 0);
    exchange(p, 80); /* everything arrives */
    pair_free(p);
}

/* A window unused for longer than idle_keep_ms (5 minutes by default) is not kept. */
static void test_idle_window_expires(void **state)
{
    (void)state;
    idle_case_t c;
    idle_case(&c, 0, 500);
    assert_int_equal(c.after, 10 * c.packet);
    pair_free(c.p);
}

/* What counts is when the window was last in use, not the last send: a message now and
 * then after a burst does not keep the burst's window alive. */
static void test_idle_window_sparse_sends(void **state)
{
    (void)state;
    idle_case_t c;
    idle_case(&c, 0, 3000); /* 3 s: > 1.3 s + the burst's drain; < 1.3 s + 2 s */
    assert_int_equal(c.after, c.before.cwnd / c.before.mtu * c.packet); /* kept */
    assert_false(run_until(c.p, never, 2000)); /* over 3.3 s after the burst's last send */
    sctp_info_t mid, now;
    assert_int_equal(sctp_get_info(c.p->a.sctp, &mid), 0);
    c.p->a.tx_total = 42;
    pump_tx(&c.p->a);
    assert_int_equal(sctp_get_info(c.p->a.sctp, &now), 0);
    assert_int_equal(now.idle_restarts - mid.idle_restarts, 1);
    assert_int_equal(now.cwnd, 10 * c.packet);
    exchange(c.p, 42);
    pair_free(c.p);
}

/* A kept window leaves in one burst: it is held to what the datagram socket takes at once
 * (the kernel counts about twice a datagram's bytes). */
static void test_idle_window_held_to_send_buffer(void **state)
{
    (void)state;
    idle_case_t c;
    idle_case(&c, 64 * 1024, 0);
    uint32_t held = 64 * 1024 / (2 * c.before.mtu);
    assert_true(c.before.cwnd / c.before.mtu > held);
    assert_int_equal(c.after, held * c.packet);
    pair_free(c.p);
}

/* A receiver that stops reading (sctp_pause_rx: its local broker is behind) hands up
 * nothing, and its window stops the sender, whose sends are refused; once it reads
 * again, everything arrives, in order, and the association is still up. */
static void test_pause_rx(void **state)
{
    (void)state;
    pair_t *p = pair_new(NULL, NULL, 0);
    connect_pair(p);
    sctp_pause_rx(p->b.sctp, true);
    p->a.size_of = p->b.size_of = burst_size;
    p->a.tx_total = 300; /* 18 MB: far over what the receiver buffers */
    pump_tx(&p->a);
    assert_false(run_until(p, never, 2000)); /* two seconds of a stopped receiver */
    assert_int_equal(p->b.rx_seq, 0);
    assert_true(p->a.eagain > 0);
    assert_true(p->a.tx_seq < 300); /* the sender is held back, not just buffering */
    assert_false(p->a.sctp_closed || p->b.sctp_closed);
    sctp_pause_rx(p->b.sctp, false);
    assert_true(run_until(p, all_received, RUN_LIMIT_MS));
    assert_int_equal(p->b.rx_bad, 0);
    assert_int_equal(p->b.rx_seq, 300);
    assert_int_equal(p->b.rx_bytes, 300u * 60000u);
    fprintf(stderr, "pause: sender held at %d EAGAIN\n", p->a.eagain);
    pair_free(p);
}

static void test_free_inside_callbacks(void **state)
{
    (void)state;
    /* dtls_free from on_failed: the refused handshake must not touch freed memory. */
    cert_t *other;
    assert_int_equal(cert_generate("impostor", &other), 0);
    pair_t *p = pair_new(other->fingerprint, NULL, 0);
    p->a.free_dtls_on_fail = p->b.free_dtls_on_fail = true;
    dtls_start(p->b.dtls);
    dtls_start(p->a.dtls);
    assert_true(run_until(p, both_failed, RUN_LIMIT_MS));
    assert_null(p->a.dtls);
    assert_null(p->b.dtls);
    pair_free(p);
    cert_free(other);

    /* sctp_free from on_message, in the middle of a stream of messages: no more
     * messages are reported and nothing crashes while the peer keeps sending. */
    p = pair_new(NULL, NULL, 0);
    connect_pair(p);
    p->b.free_sctp_at = 5;
    p->a.tx_total = 50;
    pump_tx(&p->a);
    gint64 end = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;
    while (g_get_monotonic_time() < end)
        g_main_context_iteration(p->ctx, TRUE);
    assert_null(p->b.sctp);
    assert_int_equal(p->b.rx_seq, 5);
    assert_int_equal(p->b.rx_bad, 0);
    pair_free(p);
}

/* Messages over the receiver's max_message are dropped, the association lives on. */
static size_t oversize_size(uint32_t seq)
{
    return seq % 3 == 1 ? 150000 : 1000 + seq;
}

static bool b_got(pair_t *p)
{
    return p->b.rx_seq >= 30 || p->b.rx_bad || p->b.sctp_closed;
}

static void test_oversize_dropped(void **state)
{
    (void)state;
    pair_t *p = pair_new_max(NULL, NULL, 0, 100000);
    connect_pair(p);
    p->a.size_of = oversize_size;
    p->a.tx_total = 30; /* 10 of them are 150000 bytes, over b's 100000 */
    pump_tx(&p->a);
    assert_true(run_until(p, b_got, RUN_LIMIT_MS));
    assert_int_equal(p->b.rx_bad, 0);
    assert_false(p->b.sctp_closed);
    assert_int_equal(p->b.rx_seq, 30); /* every message accounted for */
    assert_int_equal(p->b.rx_skipped, 10);
    pair_free(p);
}

static bool both_open_or_failed(pair_t *p)
{
    return both_open(p) || p->a.dtls_failed || p->b.dtls_failed;
}

static void test_handshake_heavy_loss(void **state)
{
    (void)state;
    /* 30% of datagrams lost: DTLS and SCTP retransmissions still get the channel up. */
    pair_t *p = pair_new(NULL, NULL, 30);
    dtls_start(p->b.dtls);
    dtls_start(p->a.dtls);
    assert_true(run_until(p, both_open_or_failed, RUN_LIMIT_MS));
    assert_true(both_open(p));
    fprintf(stderr, "30%% loss: %zu datagrams, %zu dropped\n", p->dgrams, p->dropped);
    pair_free(p);
}

static void test_handshake_timeout(void **state)
{
    (void)state;
    /* Nothing ever arrives: both sides give up after 30 s with on_failed("...timeout..."),
     * having retransmitted in between. */
    pair_t *p = pair_new(NULL, NULL, 100);
    gint64 t0 = g_get_monotonic_time();
    dtls_start(p->b.dtls);
    dtls_start(p->a.dtls);
    assert_true(run_until(p, both_failed, RUN_LIMIT_MS + 5000));
    gint64 took_ms = (g_get_monotonic_time() - t0) / 1000;
    assert_true(took_ms >= 29000 && took_ms <= 32000);
    assert_non_null(strstr(p->a.fail_why, "timeout"));
    assert_non_null(strstr(p->b.fail_why, "timeout"));
    assert_true(p->dgrams > 3); /* the ClientHello went out more than once */
    pair_free(p);
}

static void test_server_started_by_client_hello(void **state)
{
    (void)state;
    /* The client's ICE may be ready first: a ClientHello reaching a server whose
     * dtls_start was not called yet starts it instead of being lost. */
    pair_t *p = pair_new(NULL, NULL, 0);
    assert_int_equal(dtls_start(p->a.dtls), 0);
    assert_true(run_until(p, both_open, RUN_LIMIT_MS));
    assert_int_equal(dtls_start(p->b.dtls), 0); /* late call: harmless */
    exchange(p, 15);
    pair_free(p);
}

static void test_refusals(void **state)
{
    (void)state;
    /* Oversized sends are refused; sends before the channel exists are refused. */
    pair_t *p = pair_new(NULL, NULL, 0);
    uint8_t one = 1;
    assert_int_equal(sctp_send(p->a.sctp, 0, &one, 1), BL_ESTATE);
    assert_int_equal(sctp_open_channel(p->a.sctp, "x", true, -1), BL_ESTATE);
    connect_pair(p);
    uint8_t *big = calloc(1, 262145);
    assert_int_equal(sctp_send(p->a.sctp, (uint16_t)p->a.stream, big, 262145), BL_ETOOBIG);
    free(big);
    assert_int_equal(sctp_send(p->a.sctp, 7, &one, 1), BL_ENOTFOUND);

    /* Forged or corrupt datagrams (an application-data header with junk, a short
     * fragment, random bytes) are discarded by DTLS; the session carries on. */
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    junk[0] = 23;   /* application_data */
    junk[1] = 0xfe; /* DTLS 1.2 */
    junk[2] = 0xfd;
    assert_int_equal(dtls_feed(p->a.dtls, junk, sizeof(junk)), 0);
    assert_int_equal(dtls_feed(p->b.dtls, junk, 5), 0);
    junk[0] = 22; /* handshake */
    assert_int_equal(dtls_feed(p->b.dtls, junk, sizeof(junk)), 0);
    assert_int_equal(sctp_feed(p->a.sctp, junk, sizeof(junk)), 0); /* bad SCTP checksum */
    assert_true(dtls_connected(p->a.dtls) && dtls_connected(p->b.dtls));
    exchange(p, 30);
    pair_free(p);
}

int main(void)
{
    log_set_level(getenv("BL_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_varied_messages),
        cmocka_unit_test(test_loss),
        cmocka_unit_test(test_idle_restart),
        cmocka_unit_test(test_no_timeout_after_pause),
        cmocka_unit_test(test_idle_window_expires),
        cmocka_unit_test(test_idle_window_sparse_sends),
        cmocka_unit_test(test_idle_window_held_to_send_buffer),
        cmocka_unit_test(test_wrong_pin_client),
        cmocka_unit_test(test_wrong_pin_server),
        cmocka_unit_test(test_burst_backpressure),
        cmocka_unit_test(test_pause_rx),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_server_started_by_client_hello),
        cmocka_unit_test(test_oversize_dropped),
        cmocka_unit_test(test_free_inside_callbacks),
        cmocka_unit_test(test_handshake_heavy_loss),
        cmocka_unit_test(test_handshake_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
