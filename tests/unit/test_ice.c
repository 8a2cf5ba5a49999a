/* SPDX-License-Identifier: MIT */
/* test_ice.c - two ICE sessions in one process on 127.0.0.1, signalling in memory:
 * connect and exchange datagrams, restart and exchange again, refuse a wrong password,
 * connect quickly even when a higher-priority remote candidate never answers, report a
 * vanished peer within RFC 7675's 30 s and ride out a shorter blackout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib-unix.h>

#include "fixture.h"
#include "ice.h"
#include "udpgso.h"
#include "log.h"

typedef struct peer {
    const char *name;
    ice_t *ice;
    struct peer *other;
    bool queue;     /* hold our candidates in `out` instead of trickling at once */
    GPtrArray *out; /* candidate lines held back */
    bool gathered;
    bool gathered_fwd; /* end-of-candidates already forwarded */
    ice_state_t st;
    int n_connected; /* CONNECTED or READY reports */
    int n_failed;
    int n_changes;
    ice_state_t last_reported;
    bool repeated; /* on_state reported the same state twice in a row */
    GByteArray *rx;
    int n_rx;
    GPtrArray *rx_all; /* every datagram (GBytes), when set */
    int want_rx;       /* for got_all */
    int64_t connected_at;
    bool restart_on_fail; /* call ice_restart from inside on_state(FAILED) */
    int send_rc_at_fail;  /* what ice_send said inside on_state(FAILED) */
} peer_t;

static const char *const loopback[] = {"127.0.0.1", NULL};
static GMainContext *ctx;

static void on_candidate(void *ud, const char *line)
{
    peer_t *p = ud;
    assert_true(g_str_has_prefix(line, "a=candidate:"));
    if (p->queue)
        g_ptr_array_add(p->out, g_strdup(line));
    else
        assert_int_equal(ice_add_remote_candidate(p->other->ice, line), 0);
}

static void on_gathering_done(void *ud)
{
    peer_t *p = ud;
    p->gathered = true;
    if (!p->queue) {
        ice_remote_gathering_done(p->other->ice);
        p->gathered_fwd = true;
    }
}

static void on_state(void *ud, ice_state_t st)
{
    peer_t *p = ud;
    if (p->n_changes > 0 && st == p->last_reported)
        p->repeated = true;
    p->n_changes++;
    p->last_reported = st;
    p->st = st;
    if ((st == ICE_ST_CONNECTED || st == ICE_ST_READY) && !p->connected_at)
        p->connected_at = bl_now_ms();
    if (st == ICE_ST_CONNECTED || st == ICE_ST_READY)
        p->n_connected++;
    if (st == ICE_ST_FAILED)
        p->n_failed++;
    if (st == ICE_ST_FAILED) {
        uint8_t x = 1;
        p->send_rc_at_fail = ice_send(p->ice, &x, 1);
    }
    if (st == ICE_ST_FAILED && p->restart_on_fail) {
        p->restart_on_fail = false;
        p->gathered = p->gathered_fwd = false;
        assert_int_equal(ice_restart(p->ice), 0);
    }
}

static void on_recv(void *ud, const uint8_t *buf, size_t len)
{
    peer_t *p = ud;
    g_byte_array_set_size(p->rx, 0);
    g_byte_array_append(p->rx, buf, (guint)len);
    p->n_rx++;
    if (p->rx_all)
        g_ptr_array_add(p->rx_all, g_bytes_new(buf, len));
}

static const ice_events_t events = {on_candidate, on_gathering_done, on_state, on_recv};

static void peer_init(peer_t *p, const char *name, bool controlling, peer_t *other)
{
    memset(p, 0, sizeof(*p));
    p->name = name;
    p->other = other;
    p->out = g_ptr_array_new_with_free_func(g_free);
    p->rx = g_byte_array_new();
    ice_opts_t o = {.who = name,
                    .controlling = controlling,
                    .send_host_candidates = true,
                    .local_addrs = loopback};
    p->ice = ice_new(ctx, &o, &events, p);
    assert_non_null(p->ice);
    assert_true(strlen(ice_ufrag(p->ice)) >= 4);
    assert_true(strlen(ice_pwd(p->ice)) >= 22);
    assert_int_equal(ice_state(p->ice), ICE_ST_NEW);
}

static void peer_clear(peer_t *p)
{
    ice_free(p->ice);
    g_ptr_array_free(p->out, TRUE);
    g_byte_array_free(p->rx, TRUE);
}

static void peer_reset_counts(peer_t *p)
{
    p->gathered = p->gathered_fwd = false;
    p->n_connected = p->n_failed = p->n_rx = 0;
    p->connected_at = 0;
}

/* Deliver what `p` held back to its peer. */
static void flush(peer_t *p)
{
    for (guint i = 0; i < p->out->len; i++)
        assert_int_equal(ice_add_remote_candidate(p->other->ice, p->out->pdata[i]), 0);
    g_ptr_array_set_size(p->out, 0);
    if (p->gathered && !p->gathered_fwd) {
        ice_remote_gathering_done(p->other->ice);
        p->gathered_fwd = true;
    }
}

typedef struct wait {
    bool (*cond)(peer_t *, peer_t *);
    peer_t *a, *b;
} wait_t;

static bool wait_cond(void *arg)
{
    wait_t *w = arg;
    return w->cond(w->a, w->b);
}

/* Run the context until cond(a, b) or the deadline; returns cond's final value. */
static bool run_until(bool (*cond)(peer_t *, peer_t *), peer_t *a, peer_t *b, guint ms)
{
    wait_t w = {cond, a, b};
    return fixture_run_until(ctx, wait_cond, &w, ms);
}

static bool both_connected(peer_t *a, peer_t *b)
{
    return a->n_connected > 0 && b->n_connected > 0;
}

static bool both_received(peer_t *a, peer_t *b)
{
    return a->n_rx > 0 && b->n_rx > 0;
}

static bool a_failed(peer_t *a, peer_t *b)
{
    (void)b;
    return a->n_failed > 0;
}

static bool never(peer_t *a, peer_t *b)
{
    (void)a;
    (void)b;
    return false;
}

static void exchange_credentials(peer_t *a, peer_t *b)
{
    assert_int_equal(ice_set_remote_credentials(a->ice, ice_ufrag(b->ice), ice_pwd(b->ice)), 0);
    assert_int_equal(ice_set_remote_credentials(b->ice, ice_ufrag(a->ice), ice_pwd(a->ice)), 0);
}

/* A (controlling) and B, each the other's peer. */
static void peers_init(peer_t *a, peer_t *b)
{
    peer_init(a, "peer A", true, b);
    peer_init(b, "peer B", false, a);
}

static void peers_clear(peer_t *a, peer_t *b)
{
    peer_clear(a);
    peer_clear(b);
}

static void gather_both(peer_t *a, peer_t *b)
{
    assert_int_equal(ice_gather(a->ice), 0);
    assert_int_equal(ice_gather(b->ice), 0);
}

/* A and B made, each holding back its candidates when queue_a / queue_b (flush() lets
 * them go), and gathering. */
static void peers_start(peer_t *a, peer_t *b, bool queue_a, bool queue_b)
{
    peers_init(a, b);
    a->queue = queue_a;
    b->queue = queue_b;
    gather_both(a, b);
}

/* Each side given the other's credentials: both connect within 5 s. */
static void connect_both(peer_t *a, peer_t *b)
{
    exchange_credentials(a, b);
    assert_true(run_until(both_connected, a, b, 5000));
}

static void send_both_ways(peer_t *a, peer_t *b, const char *tag)
{
    char ma[64], mb[64];
    snprintf(ma, sizeof(ma), "%s: from A", tag);
    int n = snprintf(mb, sizeof(mb) - 8, "%s: from B\r\n\x01", tag);
    memcpy(mb + n, "\0tail", 5); /* binary: an embedded NUL must survive */
    size_t la = strlen(ma), lb = (size_t)n + 5;
    a->n_rx = b->n_rx = 0;
    assert_int_equal(ice_send(a->ice, (const uint8_t *)ma, la), 0);
    assert_int_equal(ice_send(b->ice, (const uint8_t *)mb, lb), 0);
    assert_true(run_until(both_received, a, b, 3000));
    assert_int_equal(b->rx->len, la);
    assert_memory_equal(b->rx->data, ma, la);
    assert_int_equal(a->rx->len, lb);
    assert_memory_equal(a->rx->data, mb, lb);
}

static void assert_host_path(peer_t *p)
{
    char pair[128];
    assert_string_equal(ice_local_type(p->ice), "host");
    assert_string_equal(ice_remote_type(p->ice), "host");
    assert_string_equal(ice_path_type(p->ice), "host");
    assert_int_equal(ice_selected_pair(p->ice, pair, sizeof(pair)), 0);
    assert_true(g_str_has_prefix(pair, "127.0.0.1:"));
    assert_non_null(strstr(pair, " <-> 127.0.0.1:"));
    assert_int_equal(ice_selected_pair(p->ice, pair, 8), BL_ETOOBIG);
}

static int setup(void **state)
{
    (void)state;
    ctx = g_main_context_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    /* Let deferred unrefs and stream removals run before the context goes. */
    while (g_main_context_iteration(ctx, FALSE))
        ;
    g_main_context_unref(ctx);
    return 0;
}

/* Connect, exchange datagrams, restart both sides, exchange again. Candidates reach
 * the other side before its credentials (buffered by ice.c). */
static void test_connect_send_restart(void **state)
{
    (void)state;
    peer_t a, b;
    peers_init(&a, &b);
    uint8_t x = 1;
    assert_int_equal(ice_send(a.ice, &x, 1), BL_EAGAIN); /* not connected yet */
    assert_int_equal(ice_add_remote_candidate(a.ice, "a=candidate:garbage"), BL_EINVAL);
    assert_int_equal(ice_add_remote_candidate(a.ice, "candidate:1 1 UDP 1 host.local 9 typ host"),
                     BL_EINVAL);
    assert_int_equal(ice_add_remote_candidate(a.ice, "1 1 TCP 1 127.0.0.1 9 typ host"),
                     BL_EINVAL); /* TCP without tcptype */
    assert_int_equal(ice_set_remote_credentials(a.ice, "", "x"), BL_EINVAL);

    gather_both(&a, &b);
    assert_int_equal(ice_gather(a.ice), BL_ESTATE);
    connect_both(&a, &b);
    assert_host_path(&a);
    assert_host_path(&b);
    send_both_ways(&a, &b, "first");
    assert_false(a.repeated || b.repeated);

    /* Restart: new credentials, candidates held back until both sides restarted. */
    char old_ufrag[300];
    g_strlcpy(old_ufrag, ice_ufrag(a.ice), sizeof(old_ufrag));
    a.queue = b.queue = true;
    peer_reset_counts(&a);
    peer_reset_counts(&b);
    assert_int_equal(ice_restart(a.ice), 0);
    assert_int_equal(ice_restart(b.ice), 0);
    assert_string_not_equal(old_ufrag, ice_ufrag(a.ice));
    assert_true(ice_state(a.ice) == ICE_ST_NEW || ice_state(a.ice) == ICE_ST_GATHERING);
    assert_int_equal(ice_send(a.ice, &x, 1), BL_EAGAIN);
    exchange_credentials(&a, &b);
    /* Give gathering a moment, then trickle everything across. */
    run_until(never, &a, &b, 100);
    assert_true(a.out->len > 0 && b.out->len > 0);
    flush(&a);
    flush(&b);
    assert_true(run_until(both_connected, &a, &b, 5000));
    assert_host_path(&a);
    send_both_ways(&a, &b, "after restart");
    /* Nothing may fail in a healthy session; run a little longer to see it stay up. */
    run_until(never, &a, &b, 500);
    assert_int_equal(a.n_failed + b.n_failed, 0);
    peers_clear(&a, &b);
}

/* A side given the wrong remote password can never authenticate its checks
 * (RFC 8445 7.2.2 / RFC 5389 10.1.2): it must never connect, and must report FAILED
 * within a bounded time rather than hang. Then recovery as the link layer does it: A
 * restarts from inside its FAILED callback (the old stream goes from an idle source),
 * B restarts, the right credentials are exchanged and the session comes up. */
static void test_wrong_password_fails_then_restart(void **state)
{
    (void)state;
    peer_t a, b;
    peers_start(&a, &b, false, false);
    assert_int_equal(
        ice_set_remote_credentials(a.ice, ice_ufrag(b.ice), "wrongwrongwrongwrongwrong"), 0);
    assert_int_equal(ice_set_remote_credentials(b.ice, ice_ufrag(a.ice), ice_pwd(a.ice)), 0);
    run_until(never, &a, &b, 50); /* first candidates trickled; later ones held back */
    a.queue = b.queue = true;
    a.restart_on_fail = true;
    int64_t t0 = bl_now_ms();
    assert_true(run_until(a_failed, &a, &b, 12000));
    int64_t took = bl_now_ms() - t0;
    print_message("wrong password: A failed after %lld ms, B state %s\n", (long long)took,
                  ice_state_name(ice_state(b.ice)));
    assert_int_equal(a.n_connected, 0);
    assert_int_equal(a.send_rc_at_fail, BL_EIO);
    assert_false(a.restart_on_fail); /* restarted inside the callback */
    assert_true(ice_state(a.ice) == ICE_ST_GATHERING || ice_state(a.ice) == ICE_ST_CONNECTING);
    assert_string_equal(ice_path_type(a.ice), "");
    assert_int_equal(ice_selected_pair(a.ice, (char[8]){0}, 8), BL_ENOTFOUND);

    assert_int_equal(ice_restart(b.ice), 0);
    b.gathered_fwd = false;
    exchange_credentials(&a, &b);
    run_until(never, &a, &b, 100);
    flush(&a);
    flush(&b);
    assert_true(run_until(both_connected, &a, &b, 5000));
    send_both_ways(&a, &b, "recovered");
    peers_clear(&a, &b);
}

/* Nomination choice (see ice.c): a higher-priority remote candidate that never answers
 * (a UDP socket nobody reads) must not delay the first usable path. The real candidate
 * is announced as srflx so that libnice's "host-host pair is good enough" shortcut
 * does not apply, as across a NAT. */
static int blackhole_port(int *fd)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sin);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(*fd >= 0);
    assert_int_equal(bind(*fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&sin, &sl), 0);
    return ntohs(sin.sin_port);
}

static void test_connects_fast_despite_dead_candidate(void **state)
{
    (void)state;
    peer_t a, b;
    int fd;
    int port = blackhole_port(&fd);
    peers_start(&a, &b, false, true);
    run_until(never, &a, &b, 50);
    assert_true(b.out->len == 1);

    char dead[128], fake[256], addr[64];
    unsigned rport;
    snprintf(dead, sizeof(dead), "a=candidate:99 1 UDP 2130706431 127.0.0.1 %d typ host", port);
    assert_int_equal(
        sscanf(b.out->pdata[0], "a=candidate:%*s 1 UDP %*u %63s %u typ host", addr, &rport), 2);
    snprintf(fake, sizeof(fake),
             "a=candidate:98 1 UDP 1694498815 %s %u typ srflx raddr 10.0.0.1 rport %u", addr, rport,
             rport);
    g_ptr_array_set_size(b.out, 0);
    assert_int_equal(ice_add_remote_candidate(a.ice, dead), 0);
    assert_int_equal(ice_add_remote_candidate(a.ice, fake), 0);
    flush(&b);

    int64_t t0 = bl_now_ms();
    connect_both(&a, &b);
    int64_t took = a.connected_at - t0;
    print_message("connected after %lld ms with a dead higher-priority candidate\n",
                  (long long)took);
    assert_true(took < 1000);
    assert_string_equal(ice_remote_type(a.ice), "srflx");
    assert_string_equal(ice_path_type(a.ice), "srflx");
    send_both_ways(&a, &b, "fast");
    close(fd);
    peers_clear(&a, &b);
}

/* The peer vanishes after connecting: consent freshness (RFC 7675 5.1) must turn the
 * session FAILED, reported through on_state, and sends must then fail. Not at libnice's
 * first 10 s lapse (ice.c re-arms it once, for lossy paths) but on the second: 14-26 s
 * after the last answered check, within RFC 7675's 30 s. */
static void test_consent_lost_reports_failed(void **state)
{
    (void)state;
    peer_t a, b;
    peers_start(&a, &b, false, false);
    connect_both(&a, &b);
    send_both_ways(&a, &b, "before");
    ice_free(b.ice);
    b.ice = NULL;
    int64_t t0 = bl_now_ms();
    assert_true(run_until(a_failed, &a, &b, 30000));
    int64_t took = bl_now_ms() - t0;
    print_message("consent lost: FAILED after %lld ms\n", (long long)took);
    assert_true(took >= 14000 && took <= 27000);
    assert_int_equal(a.last_reported, ICE_ST_FAILED);
    uint8_t x = 1;
    assert_int_equal(ice_send(a.ice, &x, 1), BL_EIO);
    peers_clear(&a, &b);
}

/* A lossy path (RFC 7675 5.1 wants 30 s without a response before consent expires; libnice
 * 0.1.21 gives up after 10 s): A and B talk through a UDP relay in this process that drops
 * everything for 10.5 s, starting right after A's consent check was answered. A misses its
 * checks for over 10 s (libnice's consent lapses) yet must stay up, and data must flow
 * again afterwards. */
typedef struct {
    int fa, fb;              /* A talks to fa (as if B), B talks to fb (as if A) */
    struct sockaddr_in a, b; /* the real A and B */
    bool arm;                /* start the blackout after the next B->A response */
    int64_t drop_from, drop_until;
    int n_dropped;
} relay_t;

static int relay_socket(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

static int relay_port(int fd)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    return ntohs(sin.sin_port);
}

static gboolean relay_io(gint fd, GIOCondition cond, gpointer data)
{
    relay_t *r = data;
    (void)cond;
    uint8_t buf[2048];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) {
        int64_t now = bl_now_ms();
        bool to_a = fd == r->fb;
        if (now >= r->drop_from && now < r->drop_until) {
            r->n_dropped++;
            continue;
        }
        const struct sockaddr_in *dst = to_a ? &r->a : &r->b;
        sendto(to_a ? r->fa : r->fb, buf, (size_t)n, 0, (const struct sockaddr *)dst, sizeof(*dst));
        if (to_a && r->arm && n >= 2 && buf[0] == 0x01 && buf[1] == 0x01) { /* STUN success */
            r->arm = false;
            r->drop_from = now;
            r->drop_until = now + 10500;
        }
    }
    return G_SOURCE_CONTINUE;
}

static GSource *relay_watch(relay_t *r, int fd)
{
    GSource *src = g_unix_fd_source_new(fd, G_IO_IN);
    g_source_set_callback(src, (GSourceFunc)(void (*)(void))relay_io, r, NULL);
    g_source_attach(src, ctx);
    return src;
}

/* The host candidate `p` gathered, as an address; `p`'s queue is emptied. */
static void host_address(peer_t *p, struct sockaddr_in *sin)
{
    char addr[64];
    unsigned port;
    assert_true(p->out->len >= 1);
    assert_int_equal(
        sscanf(p->out->pdata[0], "a=candidate:%*s 1 UDP %*u %63s %u typ host", addr, &port), 2);
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
    g_ptr_array_set_size(p->out, 0);
}

static void test_consent_survives_short_blackout(void **state)
{
    (void)state;
    peer_t a, b;
    relay_t r = {.fa = relay_socket(), .fb = relay_socket(), .drop_until = 0};
    GSource *wa = relay_watch(&r, r.fa), *wb = relay_watch(&r, r.fb);
    peers_start(&a, &b, true, true);
    run_until(never, &a, &b, 50);
    host_address(&a, &r.a);
    host_address(&b, &r.b);
    /* Each side only learns the relay's address (as srflx, as across a NAT). */
    char cand[160];
    snprintf(cand, sizeof(cand),
             "a=candidate:97 1 UDP 1694498815 127.0.0.1 %d typ srflx raddr 10.0.0.1 rport 9",
             relay_port(r.fa));
    assert_int_equal(ice_add_remote_candidate(a.ice, cand), 0);
    snprintf(cand, sizeof(cand),
             "a=candidate:96 1 UDP 1694498815 127.0.0.1 %d typ srflx raddr 10.0.0.2 rport 9",
             relay_port(r.fb));
    assert_int_equal(ice_add_remote_candidate(b.ice, cand), 0);
    ice_remote_gathering_done(a.ice);
    ice_remote_gathering_done(b.ice);
    connect_both(&a, &b);
    send_both_ways(&a, &b, "via relay");
    run_until(never, &a, &b, 3000); /* checks settled: what A gets now answers its consent */
    r.arm = true;
    run_until(never, &a, &b, 7000);
    assert_false(r.arm); /* the blackout began */
    /* libnice's lapse comes at +10 s; a false failure would come by +26 s. */
    run_until(a_failed, &a, &b, 27000 - (guint)(bl_now_ms() - r.drop_from));
    print_message("blackout: %d datagrams dropped; A %s\n", r.n_dropped,
                  ice_state_name(ice_state(a.ice)));
    assert_true(r.n_dropped > 0);
    assert_int_equal(a.n_failed, 0);
    assert_true(ice_state(a.ice) == ICE_ST_READY || ice_state(a.ice) == ICE_ST_CONNECTED);
    uint8_t x = 7;
    b.n_rx = 0;
    assert_int_equal(ice_send(a.ice, &x, 1), 0);
    assert_true(run_until(both_received, &b, &b, 3000));
    g_source_destroy(wa);
    g_source_unref(wa);
    g_source_destroy(wb);
    g_source_unref(wb);
    close(r.fa);
    close(r.fb);
    peers_clear(&a, &b);
}

/* ice_free from inside a callback, in every state, never calls back afterwards. */
static void free_in_callback_state(void *ud, ice_state_t st)
{
    peer_t *p = ud;
    on_state(ud, st);
    if (st == ICE_ST_CONNECTED || st == ICE_ST_READY) {
        ice_free(p->ice);
        p->ice = NULL;
    }
}

static void test_free_inside_callback(void **state)
{
    (void)state;
    peer_t a, b;
    peers_init(&a, &b);
    /* Swap A's events for ones that free A as soon as it connects. */
    ice_free(a.ice);
    static const ice_events_t ev = {on_candidate, on_gathering_done, free_in_callback_state,
                                    on_recv};
    ice_opts_t o = {.who = "peer A",
                    .controlling = true,
                    .send_host_candidates = true,
                    .local_addrs = loopback};
    a.ice = ice_new(ctx, &o, &ev, &a);
    assert_non_null(a.ice);
    gather_both(&a, &b);
    connect_both(&a, &b);
    assert_null(a.ice);
    int changes = a.n_changes;
    run_until(never, &a, &b, 300);
    assert_int_equal(a.n_changes, changes); /* nothing after the free */
    peers_clear(&a, &b);

    /* Free in every early state without running the loop. */
    ice_opts_t o2 = {.who = "peer C", .local_addrs = loopback};
    ice_t *c = ice_new(ctx, &o2, NULL, NULL);
    ice_free(c);
    c = ice_new(ctx, &o2, NULL, NULL);
    assert_int_equal(ice_gather(c), 0);
    ice_free(c);
    ice_free(NULL);
    static const char *const bad[] = {"not an address", NULL};
    o2.local_addrs = bad;
    assert_null(ice_new(ctx, &o2, NULL, NULL));
}

/* send_host_candidates = false keeps host candidates to ourselves (only srflx/relay
 * would be trickled); bad server options are refused at construction. */
static int n_cands;
static bool gathered;
static void count_candidate(void *ud, const char *line)
{
    (void)ud;
    (void)line;
    n_cands++;
}
static void note_gathered(void *ud)
{
    (void)ud;
    gathered = true;
}
static bool is_gathered(peer_t *a, peer_t *b)
{
    (void)a;
    (void)b;
    return gathered;
}

static void test_host_candidates_withheld(void **state)
{
    (void)state;
    static const ice_events_t ev = {count_candidate, note_gathered, NULL, NULL};
    ice_opts_t o = {.who = "peer D", .send_host_candidates = false, .local_addrs = loopback};
    ice_t *d = ice_new(ctx, &o, &ev, NULL);
    assert_non_null(d);
    assert_int_equal(ice_gather(d), 0);
    assert_true(run_until(is_gathered, NULL, NULL, 2000));
    assert_int_equal(n_cands, 0);
    ice_free(d);

    o.send_host_candidates = true;
    gathered = false;
    d = ice_new(ctx, &o, &ev, NULL);
    assert_int_equal(ice_gather(d), 0);
    assert_true(run_until(is_gathered, NULL, NULL, 2000));
    assert_int_equal(n_cands, 1); /* one UDP host candidate on 127.0.0.1, no TCP */
    ice_free(d);

    o.stun_host = "127.0.0.1";
    o.stun_port = 0;
    assert_null(ice_new(ctx, &o, &ev, NULL));
    o.stun_host = NULL;
    o.turn_host = "127.0.0.1";
    o.turn_port = 70000;
    assert_null(ice_new(ctx, &o, &ev, NULL));
}

static bool got_all(peer_t *a, peer_t *b)
{
    (void)a;
    return b->n_rx >= b->want_rx;
}

static bool a_got_one(peer_t *a, peer_t *b)
{
    (void)b;
    return a->n_rx >= 1;
}

/* Whether this kernel takes segmented UDP sends (a socket of our own, asked). */
static bool kernel_gso(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    bool ok = udpgso_supported(fd);
    close(fd);
    return ok;
}

/* The UDP socket of this process bound to the local port of p's selected pair. */
static int pair_socket(peer_t *p)
{
    char pair[128];
    assert_int_equal(ice_selected_pair(p->ice, pair, sizeof(pair)), 0);
    const char *colon = strchr(pair, ':');
    assert_non_null(colon);
    int port = atoi(colon + 1);
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in a;
        socklen_t l = sizeof(a);
        int type = 0;
        socklen_t tl = sizeof(type);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_DGRAM &&
            getsockname(fd, (struct sockaddr *)&a, &l) == 0 && a.sin_family == AF_INET &&
            ntohs(a.sin_port) == port)
            return fd;
    }
    fail_msg("no socket on port %d", port);
    return -1;
}

/* n datagrams from A to B, queued in one turn (1,200 bytes each but the one at index
 * `short_at`, 77): B gets n datagrams, in order, each intact. */
static void queue_and_check(peer_t *a, peer_t *b, int n, int short_at)
{
    b->n_rx = 0;
    b->want_rx = n;
    b->rx_all = g_ptr_array_new_with_free_func((GDestroyNotify)g_bytes_unref);
    uint64_t before = ice_send_stats(a->ice).datagrams;
    uint8_t d[1200];
    for (int i = 0; i < n; i++) {
        size_t len = i == short_at ? 77 : sizeof(d);
        memset(d, i + 1, len);
        d[0] = (uint8_t)i;
        assert_int_equal(ice_queue(a->ice, d, len), 0);
    }
    /* Nothing left before the turn was over, but a full queue. */
    assert_int_equal(ice_send_stats(a->ice).datagrams - before, n >= 64 ? 64 : 0);
    assert_true(run_until(got_all, a, b, 3000));
    g_main_context_iteration(ctx, FALSE);
    assert_int_equal(b->n_rx, n);
    for (guint i = 0; i < (guint)n; i++) {
        gsize len;
        const uint8_t *p = g_bytes_get_data(g_ptr_array_index(b->rx_all, i), &len);
        assert_int_equal(len, (int)i == short_at ? 77 : 1200);
        assert_int_equal(p[0], i);
        for (gsize k = 1; k < len; k++)
            assert_int_equal(p[k], (uint8_t)(i + 1));
    }
    g_ptr_array_free(b->rx_all, TRUE);
    b->rx_all = NULL;
}

/* ice_queue: 70 datagrams queued in one turn (30 of 1,200 bytes, one of 77, 39 of 1,200:
 * more than one queue, runs cut by the short one) arrive as 70 datagrams, in order,
 * each intact; on this direct path in three segmented sends, the last of them after
 * the turn (then 6 more in a fourth). A path that refuses segmented sends gets the same datagrams
 * one by one, and is not asked again. What is queued when the session is freed is still sent
 * (DTLS's close_notify is the last datagram of a session). */
static void test_queue_batches(void **state)
{
    (void)state;
    peer_t a, b;
    peers_start(&a, &b, false, false);
    connect_both(&a, &b);
    bool gso = kernel_gso();
    queue_and_check(&a, &b, 70, 30);
    ice_send_stats_t st = ice_send_stats(a.ice);
    assert_int_equal(st.datagrams, 70);
    assert_int_equal(st.dropped, 0);
    /* Segmented: the first 31 (30 and the short one that ends their run) and 33 when
     * the queue was full, the last 6 when the turn was over. */
    assert_int_equal(st.gso_sends, gso ? 3 : 0);
    assert_int_equal(st.gso_datagrams, gso ? 70 : 0);
    queue_and_check(&a, &b, 6, -1);
    st = ice_send_stats(a.ice);
    assert_int_equal(st.datagrams, 76);
    assert_int_equal(st.gso_sends, gso ? 4 : 0);

    /* A socket without UDP checksums cannot segment (the kernel says EINVAL): the run
     * goes through libnice (one sendmmsg), and so does the rest. */
    int one = 1, fd = pair_socket(&a);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)), 0);
    queue_and_check(&a, &b, 40, 20);
    /* The socket would segment again, but this pair is not asked again. */
    int zero = 0;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &zero, sizeof(zero)), 0);
    queue_and_check(&a, &b, 10, -1);
    st = ice_send_stats(a.ice);
    assert_int_equal(st.datagrams, 126);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.gso_sends, gso ? 4 : 0); /* none since */

    /* Queued, then freed before the turn is over: sent all the same. */
    a.n_rx = 0;
    uint8_t d[100];
    memset(d, 0x5a, sizeof(d));
    assert_int_equal(ice_queue(b.ice, d, 100), 0);
    ice_free(b.ice);
    b.ice = ice_new(ctx, &(ice_opts_t){.who = "peer B", .local_addrs = loopback}, &events, &b);
    assert_non_null(b.ice);
    assert_true(run_until(a_got_one, &a, &b, 3000));
    assert_int_equal(a.rx->len, 100);
    assert_int_equal(a.rx->data[99], 0x5a);
    peers_clear(&a, &b);
}

/* A daemon without CAP_NET_ADMIN (the packaged service) gets the kernel's caps, 208 KiB
 * by default: it says which sysctl to raise, and to what; nothing when it got enough. */
static void test_buffer_advice(void **state)
{
    (void)state;
    char buf[512] = "";
    size_t capped = 2 * 212992; /* what getsockopt reports under the default caps */
    assert_int_equal(ice_buffer_advice(4194304, capped, 1048576, capped, buf, sizeof(buf)), 1);
    FIXTURE_CONTAINS(buf, "receive 208 of 4096 KiB", "send 208 of 1024 KiB",
                     "sysctl -w net.core.rmem_max=4194304 net.core.wmem_max=1048576",
                     "/etc/sysctl.d/");
    assert_int_equal(ice_buffer_advice(4194304, capped, 1048576, 2 * 1048576, buf, sizeof(buf)), 1);
    FIXTURE_CONTAINS(buf, "sysctl -w net.core.rmem_max=4194304 (");
    assert_null(strstr(buf, "wmem_max="));
    strcpy(buf, "untouched");
    assert_int_equal(ice_buffer_advice(4194304, 0, 1048576, 0, buf, sizeof(buf)), 0);
    assert_int_equal(
        ice_buffer_advice(4194304, 2 * 4194304, 1048576, 2 * 1048576, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "untouched");
}

int main(void)
{
    fixture_env(LOG_LVL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_send_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_password_fails_then_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connects_fast_despite_dead_candidate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_candidates_withheld, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consent_lost_reports_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consent_survives_short_blackout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_batches, setup, teardown),
        cmocka_unit_test(test_buffer_advice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
