/* SPDX-License-Identifier: MIT */
/* test_site.c - the site alone, in one process: the real site, queue, router, echo and
 * wire code against fakes of its local broker session (fake_local.c), its links
 * (fake_link.c) and signalling (fake_signaling.c), linked in place of local.c, link.c and
 * signaling.c. The test plays the broker and the peers and runs the GLib context by hand;
 * every wait has a deadline, and what is asserted are counts and contents, never times.
 *
 * Site "alpha" has two peers, bravo and charlie, each with `topic = #`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fake_link.h"
#include "fake_local.h"
#include "fake_signaling.h"
#include "fixture.h"
#include "log.h"
#include "site.h"
#include "wire.h"

#define DEADLINE_MS 5000
#define PEER_EPOCH 0x5eed
/* The limits docs/ARCHITECTURE.md states (src/site_int.h sets them): the marks of the
 * backpressure, the QoS 0 messages for a busy link that wait in memory, and the
 * sequences in one ACK frame. Spelled out here, so that a change there fails here. */
#define LOCAL_HIGH_MSGS 10000
#define LOCAL_HIGH_BYTES ((size_t)64 << 20)
#define Q0_MAX 8192
#define ACK_BATCH 512

typedef struct fx {
    GMainContext *ctx;
    char *dir;
    config_t cfg;
    site_t *site;
    local_t *local;
    link_t *bravo, *charlie;
} fx_t;

static const char *const k_delivery[] = {"qos", "exactly-once", "at-least-once"};

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    fx->ctx = g_main_context_new();
    fx->dir = fixture_tmpdir("bl-site");
    *state = fx;
    return 0;
}

static void site_close(fx_t *fx)
{
    site_free(fx->site);
    fx->site = NULL;
    config_free(&fx->cfg);
    memset(&fx->cfg, 0, sizeof(fx->cfg));
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    site_close(fx);
    /* Let what the site left on the context (nothing should be) go with it. */
    while (g_main_context_iteration(fx->ctx, FALSE))
        ;
    g_main_context_unref(fx->ctx);
    fixture_rmdir(fx->dir);
    free(fx);
    return 0;
}

static void load_config(fx_t *fx, config_delivery_t delivery)
{
    char *text = g_strdup_printf(
        "[site]\nname = alpha\nstate_dir = %s\ndelivery = %s\n"
        "[signal]\nurl = mqtt://127.0.0.1:1883\nsecret = 0123456789abcdef0123456789abcdef\n"
        "[peer bravo]\nfingerprint = %s\ntopic = #\n"
        "[peer charlie]\nfingerprint = %s\ntopic = #\n",
        fx->dir, k_delivery[delivery],
        "B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:"
        "B0:B0:B0:B0",
        "C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:C0:"
        "C0:C0:C0:C0");
    char err[256] = "";
    int rc = config_load_data(text, strlen(text), "site.conf", &fx->cfg, err, sizeof(err));
    g_free(text);
    if (rc)
        fail_msg("%s", err);
}

static bool idle(void *ctx)
{
    return !g_main_context_pending(ctx);
}

/* Run the context until nothing is ready: the commit (a high-priority idle) and what
 * follows it have run; timers not yet due wait. */
static bool settle(fx_t *fx)
{
    return fixture_run_until(fx->ctx, idle, fx->ctx, DEADLINE_MS);
}

/* The site on fx->cfg (loaded already), started, its local broker connected. No cmocka
 * assertion here: a crash test's child runs it too. */
static bool site_open(fx_t *fx)
{
    fx->site = site_new(fx->ctx, &fx->cfg, NULL);
    if (!fx->site || site_start(fx->site))
        return false;
    fx->local = fake_local();
    fx->bravo = fake_link("bravo");
    fx->charlie = fake_link("charlie");
    fake_local_connect(fx->local);
    return settle(fx);
}

static void site_up(fx_t *fx, config_delivery_t delivery)
{
    load_config(fx, delivery);
    assert_true(site_open(fx));
    assert_int_equal(fake_signaling_starts(fake_signaling()), 1);
}

/* The link to a peer opens and the peer says hello. */
static bool peer_up(fx_t *fx, link_t *l)
{
    fake_link_open(l);
    fake_link_receive_hello(l, PEER_EPOCH);
    return settle(fx);
}

/* Message `seq` of peer bravo, on its topic from/bravo. */
static bl_msg_t *bravo_msg(uint64_t seq, int qos)
{
    bl_msg_t *m = msg_new();
    m->origin = strdup("bravo");
    m->seq = seq;
    m->qos = (uint8_t)qos;
    char payload[32];
    int n = snprintf(payload, sizeof(payload), "bravo %llu", (unsigned long long)seq);
    if (msg_set_topic(m, "from/bravo") || msg_set_payload(m, payload, (size_t)n))
        abort();
    return m;
}

/* Bravo sends its messages first..last, in one turn of the loop. */
static void bravo_sends(fx_t *fx, uint64_t first, uint64_t last, int qos)
{
    for (uint64_t seq = first; seq <= last; seq++) {
        bl_msg_t *m = bravo_msg(seq, qos);
        fake_link_receive_msg(fx->bravo, m);
        msg_free(m);
    }
}

static uint64_t seq_of_payload(const bl_msg_t *m)
{
    char text[32];
    snprintf(text, sizeof(text), "%.*s", (int)m->payload_len, (const char *)m->payload);
    return strtoull(text + strlen("bravo "), NULL, 10);
}

static bool is_bravos(const fake_pub_t *p)
{
    return !strcmp(p->msg->topic, "from/bravo");
}

/* How many publishes carry bravo's messages (not status or markers), and the i-th. */
static size_t n_bravo_pubs(fx_t *fx)
{
    size_t n = 0;
    for (size_t i = 0; i < fake_local_n_pubs(fx->local); i++)
        n += is_bravos(fake_local_pub(fx->local, i));
    return n;
}

static const fake_pub_t *bravo_pub(fx_t *fx, size_t nth)
{
    for (size_t i = 0, n = 0; i < fake_local_n_pubs(fx->local); i++) {
        const fake_pub_t *p = fake_local_pub(fx->local, i);
        if (is_bravos(p) && n++ == nth)
            return p;
    }
    fail_msg("no publish %zu of bravo's messages", nth);
    return NULL;
}

/* What a run waits for: at least n of something. */
typedef struct want {
    fx_t *fx;
    size_t n;
} want_t;

/* Bravo's messages have been published at least w->n times. */
static bool pubs_at_least(void *arg)
{
    want_t *w = arg;
    return n_bravo_pubs(w->fx) >= w->n;
}

/* The broker takes every publish of bravo's messages (PUBACK, or PUBREC for QoS 2). */
static void take_all(fx_t *fx)
{
    for (size_t i = 0; i < fake_local_n_pubs(fx->local); i++)
        if (is_bravos(fake_local_pub(fx->local, i)))
            fake_local_take(fx->local, i);
}

/* What the site has sent to a peer, decoded. */
typedef struct sent {
    size_t ack_frames;
    GArray *acks;    /* uint64_t, every ACK frame's sequences in order */
    GPtrArray *msgs; /* bl_msg_t *, every MSG */
} sent_t;

static void sent_read(link_t *l, sent_t *s)
{
    s->ack_frames = 0;
    s->acks = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    s->msgs = g_ptr_array_new_with_free_func((GDestroyNotify)msg_free);
    for (size_t i = 0; i < fake_link_n_sent(l); i++) {
        const GByteArray *b = fake_link_sent(l, i);
        wire_frame_t f;
        assert_int_equal(wire_decode(b->data, b->len, BL_MAX_MESSAGE_DEFAULT, &f), 0);
        if (f.type == WIRE_ACK) {
            s->ack_frames++;
            g_array_append_vals(s->acks, f.u.ack.seqs, (guint)f.u.ack.n);
        } else if (f.type == WIRE_MSG) {
            g_ptr_array_add(s->msgs, f.u.msg);
            f.u.msg = NULL;
        }
        wire_frame_clear(&f);
    }
}

static void sent_clear(sent_t *s)
{
    g_array_free(s->acks, TRUE);
    g_ptr_array_free(s->msgs, TRUE);
}

/* The acknowledged sequences are exactly first..last, each once, in order. */
static void assert_acks(const sent_t *s, uint64_t first, uint64_t last)
{
    assert_int_equal(s->acks->len, last - first + 1);
    for (guint i = 0; i < s->acks->len; i++)
        assert_int_equal(g_array_index(s->acks, uint64_t, i), first + i);
}

/* Bravo has been acknowledged at least w->n sequences. */
static bool acks_at_least(void *arg)
{
    want_t *w = arg;
    sent_t s;
    sent_read(w->fx->bravo, &s);
    bool ok = s.acks->len >= w->n;
    sent_clear(&s);
    return ok;
}

/* The broker takes bravo's messages; then bravo has been acknowledged 1..last, each
 * once, in order. */
static void take_all_then_acks(fx_t *fx, uint64_t last)
{
    take_all(fx);
    want_t w = {fx, last};
    assert_true(fixture_run_until(fx->ctx, acks_at_least, &w, DEADLINE_MS));
    sent_t s;
    sent_read(fx->bravo, &s);
    assert_acks(&s, 1, last);
    sent_clear(&s);
}

/* ---- exactly-once across a crash ------------------------------------------------ */

/* In a child process: the site takes bravo's messages 1..n at `qos`, records and hands
 * them to its broker, and is killed (kill -9: no site_free, no last commit) once the
 * broker has them all and nothing is left to commit. No cmocka in the child: a failure
 * is its exit status 1. Then the site starts again on the same state directory. */
static void restart_after_crash(fx_t *fx, config_delivery_t delivery, uint64_t n, int qos)
{
    load_config(fx, delivery);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fx->ctx = g_main_context_new(); /* its own: not one whose wakeup fd the parent shares */
        if (!site_open(fx) || !peer_up(fx, fx->bravo))
            _exit(1);
        bravo_sends(fx, 1, n, qos);
        want_t w = {fx, n};
        if (!fixture_run_until(fx->ctx, pubs_at_least, &w, DEADLINE_MS) || !settle(fx))
            _exit(1);
        if (n_bravo_pubs(fx) != n)
            _exit(1);
        kill(getpid(), SIGKILL);
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_true(site_open(fx));
}

/* Exactly-once (docs/PROTOCOL.md, "Exactly-once: the echo"): the last run handed bravo's
 * messages 1..6 to the broker and was killed before any PUBACK. The broker had taken
 * 1..3: their echoes come back after the restart, before the marker the site publishes.
 * Bravo sends all six again; only 4..6 are published again, and all six are
 * acknowledged to bravo. */
static void test_exactly_once_across_a_crash(void **state)
{
    fx_t *fx = *state;
    restart_after_crash(fx, CONFIG_DELIVERY_EXACTLY_ONCE, 6, 1);
    /* Recovering: no links before the echoes are in. */
    assert_int_equal(fake_signaling_starts(fake_signaling()), 0);
    long marker = fake_local_find(fx->local, "brokerless/alpha/sync", 0);
    assert_true(marker >= 0);
    assert_int_equal(fake_local_pub(fx->local, (size_t)marker)->msg->qos, 1);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        bl_msg_t *echo = bravo_msg(seq, 1);
        free(echo->origin); /* as the broker hands it back: no origin, no sequence */
        echo->origin = NULL;
        echo->seq = 0;
        fake_local_message(fx->local, echo);
        msg_free(echo);
    }
    bl_msg_t *back = msg_dup(fake_local_pub(fx->local, (size_t)marker)->msg);
    fake_local_message(fx->local, back);
    msg_free(back);
    assert_true(settle(fx));
    assert_int_equal(fake_signaling_starts(fake_signaling()), 1);
    assert_int_equal(site_stats(fx->site)->local_in, 0); /* no echo passed for local */

    assert_true(peer_up(fx, fx->bravo));
    bravo_sends(fx, 1, 6, 1);
    assert_true(settle(fx));
    assert_int_equal(n_bravo_pubs(fx), 3);
    for (size_t i = 0; i < 3; i++) {
        const fake_pub_t *p = bravo_pub(fx, i);
        assert_true(p->injected);
        assert_int_equal(seq_of_payload(p->msg), 4 + i);
    }
    assert_int_equal(site_stats(fx->site)->duplicates, 3);

    take_all_then_acks(fx, 6);
    assert_int_equal(site_stats(fx->site)->remote_in, 6);
}

/* ---- ACK gathering -------------------------------------------------------------- */

/* The broker acknowledges 1000 of bravo's messages in one turn: their ACKs leave in
 * full frames (512 sequences), not one frame each. One message alone is acknowledged
 * too, in a frame of its own, at the latest when the ACK timer fires. */
static void test_acks_gathered(void **state)
{
    fx_t *fx = *state;
    site_up(fx, CONFIG_DELIVERY_QOS);
    assert_true(peer_up(fx, fx->bravo));
    const size_t n = 1000;
    bravo_sends(fx, 1, n, 1);
    want_t w = {fx, n};
    assert_true(fixture_run_until(fx->ctx, pubs_at_least, &w, DEADLINE_MS));
    take_all(fx);
    want_t wa = {fx, n};
    assert_true(fixture_run_until(fx->ctx, acks_at_least, &wa, DEADLINE_MS));
    sent_t s;
    sent_read(fx->bravo, &s);
    assert_int_equal(s.ack_frames, (n + ACK_BATCH - 1) / ACK_BATCH);
    assert_acks(&s, 1, n);
    sent_clear(&s);

    /* A lone ACK leaves too: here one made by the same commit that hands bravo's next
     * message to the broker, which does not wait behind it; only the timer sends it. */
    bravo_sends(fx, n + 1, n + 1, 1);
    w.n = n + 1;
    assert_true(fixture_run_until(fx->ctx, pubs_at_least, &w, DEADLINE_MS));
    take_all(fx);
    bravo_sends(fx, n + 2, n + 2, 1);
    w.n = n + 2;
    assert_true(fixture_run_until(fx->ctx, pubs_at_least, &w, DEADLINE_MS));
    sent_read(fx->bravo, &s); /* that commit has published n + 2: the ACK has waited */
    assert_int_equal(s.ack_frames, (n + ACK_BATCH - 1) / ACK_BATCH);
    sent_clear(&s);
    wa.n = n + 1;
    assert_true(fixture_run_until(fx->ctx, acks_at_least, &wa, DEADLINE_MS));
    sent_read(fx->bravo, &s);
    assert_int_equal(s.ack_frames, (n + ACK_BATCH - 1) / ACK_BATCH + 1);
    assert_acks(&s, 1, n + 1);
    sent_clear(&s);
}

/* ---- backpressure --------------------------------------------------------------- */

/* While the broker takes nothing, the 10,000th message waiting for it stops every
 * link's reading; they read again once a quarter of the mark is left. */
static void test_backpressure_by_count(void **state)
{
    fx_t *fx = *state;
    site_up(fx, CONFIG_DELIVERY_QOS);
    assert_true(peer_up(fx, fx->bravo));
    assert_true(peer_up(fx, fx->charlie));
    bravo_sends(fx, 1, LOCAL_HIGH_MSGS - 1, 1);
    assert_true(settle(fx));
    assert_int_equal(n_bravo_pubs(fx), LOCAL_HIGH_MSGS - 1);
    assert_int_equal(fake_link_pause_calls(fx->bravo), 0);
    assert_int_equal(fake_link_pause_calls(fx->charlie), 0);

    bravo_sends(fx, LOCAL_HIGH_MSGS, LOCAL_HIGH_MSGS, 1);
    assert_true(settle(fx));
    assert_true(fake_link_paused(fx->bravo));
    assert_true(fake_link_paused(fx->charlie));
    assert_int_equal(site_stats(fx->site)->rx_paused, 1);

    /* The broker takes them one by one: the links stay stopped down to 2,501 waiting. */
    size_t taken = 0;
    for (size_t i = 0; i < fake_local_n_pubs(fx->local); i++) {
        if (!is_bravos(fake_local_pub(fx->local, i)))
            continue;
        fake_local_take(fx->local, i);
        if (++taken == LOCAL_HIGH_MSGS - LOCAL_HIGH_MSGS / 4 - 1) {
            assert_true(fake_link_paused(fx->bravo));
            assert_int_equal(fake_link_pause_calls(fx->bravo), 1);
        }
        if (taken == LOCAL_HIGH_MSGS - LOCAL_HIGH_MSGS / 4)
            break;
    }
    assert_false(fake_link_paused(fx->bravo));
    assert_false(fake_link_paused(fx->charlie));
    assert_int_equal(fake_link_pause_calls(fx->bravo), 2);
    assert_int_equal(fake_link_pause_calls(fx->charlie), 2);
}

/* The same by bytes: 64 messages of 1 MiB waiting stop the links. */
static void test_backpressure_by_bytes(void **state)
{
    fx_t *fx = *state;
    site_up(fx, CONFIG_DELIVERY_QOS);
    assert_true(peer_up(fx, fx->bravo));
    const size_t size = 1u << 20, n = LOCAL_HIGH_BYTES / size;
    uint8_t *payload = calloc(1, size);
    for (size_t seq = 1; seq <= n; seq++) {
        bl_msg_t *m = bravo_msg(seq, 1);
        payload[0] = (uint8_t)seq; /* each its own */
        assert_int_equal(msg_set_payload(m, payload, size), 0);
        fake_link_receive_msg(fx->bravo, m);
        msg_free(m);
        assert_true(settle(fx));
        assert_int_equal(fake_link_paused(fx->bravo), seq == n);
    }
    free(payload);
    assert_int_equal(site_stats(fx->site)->rx_paused, 1);
}

/* ---- the QoS 0 spill ------------------------------------------------------------ */

/* A message from a local client, as the broker hands it to the site. */
static void local_msg(fx_t *fx, const char *topic, const char *payload, int qos)
{
    bl_msg_t m;
    msg_init(&m);
    m.qos = (uint8_t)qos;
    assert_int_equal(msg_set_topic(&m, topic), 0);
    assert_int_equal(msg_set_payload(&m, payload, strlen(payload)), 0);
    fake_local_message(fx->local, &m);
    msg_clear(&m);
}

/* A local client publishes n QoS 0 messages on t/burst in one turn of the loop, their
 * payloads "0", "1", ... */
static void local_burst(fx_t *fx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char payload[24];
        snprintf(payload, sizeof(payload), "%zu", i);
        local_msg(fx, "t/burst", payload, 0);
    }
}

/* A burst of QoS 0 from a local client while bravo's link is open but busy: 8192 wait in
 * memory, the rest in the durable queue (numbered), and all reach bravo in order once
 * its link carries them. Charlie's link is down: its copies are dropped and counted. */
static void test_qos0_burst_spills_to_the_queue(void **state)
{
    fx_t *fx = *state;
    site_up(fx, CONFIG_DELIVERY_QOS);
    assert_true(peer_up(fx, fx->bravo));
    fake_link_set_room(fx->bravo, 0); /* busy */
    const size_t n = Q0_MAX + 808;
    local_burst(fx, n);
    assert_true(settle(fx));
    assert_int_equal(site_stats(fx->site)->dropped_qos0, n); /* charlie's */
    sent_t s;
    sent_read(fx->bravo, &s);
    assert_int_equal(s.msgs->len, 0);
    sent_clear(&s);

    /* The link carries 500 frames at a time. */
    for (int round = 0; round < 100 && fake_link_n_sent(fx->bravo) < n + 1; round++) {
        fake_link_drain(fx->bravo, 500);
        assert_true(settle(fx));
    }
    sent_read(fx->bravo, &s);
    assert_int_equal(s.msgs->len, n);
    uint64_t last_seq = 0;
    for (guint i = 0; i < s.msgs->len; i++) {
        const bl_msg_t *m = g_ptr_array_index(s.msgs, i);
        char want[16];
        snprintf(want, sizeof(want), "%u", i);
        assert_int_equal(m->payload_len, strlen(want));
        assert_memory_equal(m->payload, want, m->payload_len);
        assert_int_equal(m->qos, 0);
        if (i < Q0_MAX) {
            assert_int_equal(m->seq, 0); /* from memory */
        } else {
            assert_true(m->seq > last_seq); /* from the queue, numbered in order */
            last_seq = m->seq;
        }
    }
    sent_clear(&s);
    assert_int_equal(site_stats(fx->site)->dropped_qos0, n);

    /* Once the link has room after the queue's last message, QoS 0 takes memory again,
     * and what waits there when the link goes down is dropped and counted. */
    fake_link_drain(fx->bravo, 1);
    assert_true(settle(fx));
    assert_int_equal(fake_link_n_sent(fx->bravo), n + 1);
    fake_link_set_room(fx->bravo, 0);
    local_burst(fx, 10);
    assert_true(settle(fx));
    fake_link_down(fx->bravo);
    assert_int_equal(site_stats(fx->site)->dropped_qos0, n + 2 * 10);
}

/* ---- the small-message lane ------------------------------------------------------ */

/* A local client publishes 4,000 bytes at QoS 1: a message too large for the lane. */
static void local_big(fx_t *fx, const char *topic)
{
    char big[4001];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    local_msg(fx, topic, big, 1);
}

/* The messages bravo was sent, from the first-th on, are `want`: "topic=payload" in
 * order, a payload over 8 bytes as "L<length>", "*" after one with the dup mark. */
static void assert_sent(fx_t *fx, size_t first, const char *want)
{
    sent_t s;
    sent_read(fx->bravo, &s);
    GString *got = g_string_new("");
    for (guint i = (guint)first; i < s.msgs->len; i++) {
        const bl_msg_t *m = g_ptr_array_index(s.msgs, i);
        g_string_append_printf(got, "%s%s=", got->len ? " " : "", m->topic);
        if (m->payload_len > 8)
            g_string_append_printf(got, "L%zu", m->payload_len);
        else
            g_string_append_len(got, (const char *)m->payload, (gssize)m->payload_len);
        if (m->dup)
            g_string_append_c(got, '*');
    }
    sent_clear(&s);
    assert_string_equal(got->str, want);
    g_string_free(got, TRUE);
}

/* What the site publishes comes to bravo as `now`, `overtook` of it sent by the lane;
 * once the link has room, the rest as `rest`. */
static void expect_now_then_rest(fx_t *fx, const char *now, uint64_t overtook, const char *rest)
{
    assert_true(settle(fx));
    assert_sent(fx, 0, now);
    assert_int_equal(site_stats(fx->site)->overtook, overtook);
    size_t n_now = 1;
    for (const char *c = now; (c = strchr(c, ' ')); c++)
        n_now++;
    fake_link_drain(fx->bravo, 100);
    assert_true(settle(fx));
    assert_sent(fx, n_now, rest);
}

/* A local client publishes two large messages on big/a, then small ones on small/b and
 * big/a, while bravo's link takes one frame and is then backed up: the small messages on
 * small/b overtake the second large message, the one on big/a stays behind it (order
 * per topic), and once the link has room everything else goes, each message once. */
static void test_small_messages_overtake_large(void **state)
{
    fx_t *fx = *state;
    site_up(fx, CONFIG_DELIVERY_QOS);
    assert_true(peer_up(fx, fx->bravo));
    size_t hello = fake_link_n_sent(fx->bravo);
    fake_link_set_room(fx->bravo, 1);
    local_big(fx, "big/a");
    local_big(fx, "big/a");
    local_msg(fx, "small/b", "s1", 1);
    local_msg(fx, "big/a", "s2", 1);
    local_msg(fx, "small/b", "s3", 1);
    /* Then the rest in order. The dup mark says the peer may have it: what the lane
     * overtook carries it too (its sequence is below one already sent). */
    expect_now_then_rest(fx, "big/a=L4000 small/b=s1 small/b=s3", 2, "big/a=L4000* big/a=s2*");
    assert_int_equal(fake_link_n_sent(fx->bravo), hello + 5);

    /* Nothing was acknowledged: the next session sends all of it again, in order, each
     * with the dup mark, the lane idle as the link keeps up. */
    fake_link_down(fx->bravo);
    assert_true(peer_up(fx, fx->bravo));
    assert_sent(fx, 5, "big/a=L4000* big/a=L4000* small/b=s1* big/a=s2* small/b=s3*");
    assert_int_equal(site_stats(fx->site)->overtook, 2);
}

/* QoS 0 waiting in memory for a busy link is older than a QoS 0 message in the queue
 * (here a retained one, queued because bravo has a backlog): the lane sends memory
 * first, so the two on `sensor` keep their order. */
static void test_lane_sends_memory_first(void **state)
{
    fx_t *fx = *state;
    site_up(fx, CONFIG_DELIVERY_QOS);
    assert_true(peer_up(fx, fx->bravo));
    fake_link_set_room(fx->bravo, 1);
    local_big(fx, "big/a");
    local_big(fx, "big/a");
    assert_true(settle(fx));         /* the first went, the link is busy */
    local_msg(fx, "sensor", "a", 0); /* in memory */
    bl_msg_t m;
    msg_init(&m);
    m.retain = true;
    assert_int_equal(msg_set_topic(&m, "sensor"), 0);
    assert_int_equal(msg_set_payload(&m, "b", 1), 0);
    fake_local_message(fx->local, &m); /* QoS 0, retained, behind the backlog: queued */
    msg_clear(&m);
    expect_now_then_rest(fx, "big/a=L4000 sensor=a sensor=b", 1, "big/a=L4000*");
}

/* Messages queued before the site started are unknown to the lane: after a restart it
 * waits until the cursor has passed them. Here a small message on big/a would otherwise
 * overtake the last run's large one on big/a, seen only as a large one on big/c. */
static void test_lane_waits_for_the_last_runs_queue(void **state)
{
    fx_t *fx = *state;
    site_up(fx, CONFIG_DELIVERY_QOS);
    local_big(fx, "big/a"); /* bravo's link is down: all of it waits */
    local_big(fx, "big/a");
    local_msg(fx, "small/b", "s1", 1);
    assert_true(settle(fx));
    site_close(fx);
    load_config(fx, CONFIG_DELIVERY_QOS);
    assert_true(site_open(fx));
    fake_link_set_room(fx->bravo, 2); /* the HELLO and one message */
    assert_true(peer_up(fx, fx->bravo));
    local_big(fx, "big/c");
    local_msg(fx, "big/a", "s2", 1);
    expect_now_then_rest(fx, "big/a=L4000", 0, "big/a=L4000 small/b=s1 big/c=L4000 big/a=s2");
}

/* ---- QoS 2 with delivery = qos -------------------------------------------------- */

/* Bravo's QoS 2 message goes over the persistent session with a packet id recorded
 * first; until its PUBREC a resend is not published again; the PUBREC marks it
 * delivered and acknowledges it to bravo; a resend after that is a duplicate. */
static void test_qos2_delivered_at_pubrec(void **state)
{
    fx_t *fx = *state;
    site_up(fx, CONFIG_DELIVERY_QOS);
    assert_true(peer_up(fx, fx->bravo));
    bravo_sends(fx, 1, 1, 2);
    assert_true(settle(fx));
    bravo_sends(fx, 1, 1, 2); /* the peer's resend, before the PUBREC */
    assert_true(settle(fx));
    assert_int_equal(n_bravo_pubs(fx), 1);
    const fake_pub_t *p = bravo_pub(fx, 0);
    assert_int_equal(p->msg->qos, 2);
    assert_true(p->pid != 0);
    sent_t s;
    sent_read(fx->bravo, &s);
    assert_int_equal(s.acks->len, 0);
    sent_clear(&s);

    take_all(fx);
    want_t w = {fx, 1};
    assert_true(fixture_run_until(fx->ctx, acks_at_least, &w, DEADLINE_MS));
    bravo_sends(fx, 1, 1, 2);
    w.n = 2;
    assert_true(fixture_run_until(fx->ctx, acks_at_least, &w, DEADLINE_MS));
    sent_read(fx->bravo, &s);
    assert_int_equal(s.acks->len, 2);
    assert_int_equal(g_array_index(s.acks, uint64_t, 1), 1);
    sent_clear(&s);
    assert_int_equal(site_stats(fx->site)->duplicates, 1);
    assert_int_equal(site_stats(fx->site)->remote_in, 1);
    assert_int_equal(n_bravo_pubs(fx), 1);
}

/* The last run published bravo's QoS 2 message and was killed before its PUBREC: this
 * run publishes it again with the same packet id, does not publish bravo's resend, and
 * acknowledges it at the PUBREC. */
static void test_qos2_across_a_crash(void **state)
{
    fx_t *fx = *state;
    restart_after_crash(fx, CONFIG_DELIVERY_QOS, 1, 2);
    assert_int_equal(fake_signaling_starts(fake_signaling()), 1);
    assert_int_equal(n_bravo_pubs(fx), 1);
    const fake_pub_t *p = bravo_pub(fx, 0);
    assert_true(p->restored);
    assert_int_equal(p->pid, 1);
    assert_int_equal(seq_of_payload(p->msg), 1);

    assert_true(peer_up(fx, fx->bravo));
    bravo_sends(fx, 1, 1, 2);
    assert_true(settle(fx));
    assert_int_equal(n_bravo_pubs(fx), 1);

    take_all_then_acks(fx, 1);
    assert_int_equal(site_stats(fx->site)->remote_in, 1);
}

/* ---- reload ---------------------------------------------------------------------- */

static bool has_sub(fx_t *fx, const char *filter)
{
    const GPtrArray *subs = fake_local_subs(fx->local);
    for (guint i = 0; i < subs->len; i++)
        if (!strcmp(g_ptr_array_index(subs, i), filter))
            return true;
    return false;
}

/* A reload keeps bravo's open link (its rules change to a/#), closes charlie's while
 * what is queued for it stays until it is forgotten, adds delta, and the local
 * subscriptions follow the rules; a change a reload cannot apply is refused. */
static void test_reload(void **state)
{
    fx_t *fx = *state;
    site_up(fx, CONFIG_DELIVERY_QOS);
    assert_true(peer_up(fx, fx->bravo));
    local_msg(fx, "z/1", "x", 1); /* for bravo (sent) and charlie (down: queued) */
    assert_true(settle(fx));
    assert_int_equal(fake_link_n_sent(fx->bravo), 2); /* HELLO, MSG */

    char *text = g_strdup_printf(
        "[site]\nname = alpha\nstate_dir = %s\n"
        "[signal]\nurl = mqtt://127.0.0.1:1883\nsecret = 0123456789abcdef0123456789abcdef\n"
        "[peer bravo]\nfingerprint = %s\ntopic = a/#\n"
        "[peer delta]\nfingerprint = %s\ntopic = d/#\n",
        fx->dir,
        "B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:B0:"
        "B0:B0:B0:B0",
        "D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:D0:"
        "D0:D0:D0:D0");
    config_t *c2 = g_new0(config_t, 1);
    char err[512] = "";
    assert_int_equal(config_load_data(text, strlen(text), "site.conf", c2, err, sizeof(err)), 0);
    assert_int_equal(site_reload(fx->site, c2, err, sizeof(err)), 0);
    assert_true(settle(fx));
    assert_ptr_equal(fake_link("bravo"), fx->bravo); /* the same link, still open */
    assert_true(link_is_open(fx->bravo));
    assert_null(fake_link("charlie"));
    assert_non_null(fake_link("delta"));
    assert_true(has_sub(fx, "a/#") && has_sub(fx, "d/#"));
    assert_false(has_sub(fx, "#"));

    local_msg(fx, "a/1", "x", 1); /* bravo's new rule takes it */
    local_msg(fx, "z/2", "x", 1); /* no rule of bravo's any more */
    assert_true(settle(fx));
    sent_t s;
    sent_read(fx->bravo, &s);
    assert_int_equal(s.msgs->len, 2);
    assert_string_equal(((bl_msg_t *)g_ptr_array_index(s.msgs, 1))->topic, "a/1");
    sent_clear(&s);

    size_t dropped = 0;
    assert_int_equal(site_forget_peer(fx->site, "bravo", &dropped), BL_ESTATE);
    assert_int_equal(site_forget_peer(fx->site, "charlie", &dropped), 0);
    assert_int_equal(dropped, 1); /* z/1, queued while its link was down */
    assert_true(settle(fx));
    assert_int_equal(site_forget_peer(fx->site, "charlie", &dropped), 0);
    assert_int_equal(dropped, 0);

    /* delivery is read once at start: a reload that changes it is refused, named. */
    char *t3 = g_strconcat(text, "", NULL);
    char *at = strstr(t3, "[signal]");
    char *t4 = g_strdup_printf("%.*sdelivery = exactly-once\n%s", (int)(at - t3), t3, at);
    config_t c3;
    assert_int_equal(config_load_data(t4, strlen(t4), "site.conf", &c3, err, sizeof(err)), 0);
    assert_int_equal(site_reload(fx->site, &c3, err, sizeof(err)), BL_EINVAL);
    assert_non_null(strstr(err, "[site] delivery changed"));
    config_free(&c3);
    g_free(t4);
    g_free(t3);
    g_free(text);

    site_close(fx);
    config_free(c2);
    g_free(c2);
}

int main(void)
{
    fixture_env(LOG_LVL_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_exactly_once_across_a_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acks_gathered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_by_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure_by_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos0_burst_spills_to_the_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_messages_overtake_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lane_sends_memory_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lane_waits_for_the_last_runs_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos2_delivered_at_pubrec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos2_across_a_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
