/* SPDX-License-Identifier: MIT */
/* test_local.c - local.c (and mqtt.c under it) against a real mosquitto broker.
 *
 * Each test starts its own `mosquitto -c <tmp conf>` on 127.0.0.1 and a free port, and
 * talks to it with plain libmosquitto v5 clients (the "helpers") whose properties are
 * built and read with libmosquitto directly, not with the code under test. The GLib loop
 * and the helpers are pumped by run_until(), which gives up after a deadline: a test
 * fails, it never hangs. Skipped only when the mosquitto binary is absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>

#include "fixture.h"
#include "local.h"
#include "log.h"

#define DEADLINE_MS 10000

/* ---- the broker ---- */

static char *g_broker_bin;
static char g_dir[256];
static char g_conf[300];
static int g_port;
static GPid g_broker = 0;

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    close(s);
    return ntohs(a.sin_port);
}

static bool port_accepts(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)g_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(s);
    return ok;
}

static void broker_start(void)
{
    char *argv[] = {g_broker_bin, "-c", g_conf, NULL};
    GSpawnFlags fl = G_SPAWN_DO_NOT_REAP_CHILD | G_SPAWN_STDOUT_TO_DEV_NULL;
    if (!getenv("BL_TEST_VERBOSE"))
        fl |= G_SPAWN_STDERR_TO_DEV_NULL;
    assert_true(g_spawn_async(NULL, argv, NULL, fl, NULL, NULL, &g_broker, NULL));
    for (int i = 0; i < 500 && !port_accepts(); i++)
        g_usleep(10000);
    assert_true(port_accepts());
}

static void broker_kill(void)
{
    if (g_broker > 0) {
        kill(g_broker, SIGKILL);
        waitpid(g_broker, NULL, 0);
        g_broker = 0;
    }
}

/* ---- helper clients ---- */

typedef struct rx {
    char *topic;
    uint8_t *payload;
    int len, qos;
    bool retain;
    mosquitto_property *props;
} rx_t;

typedef struct helper {
    struct mosquitto *m;
    bool connected, subscribed;
    int acks;
    GPtrArray *rx; /* rx_t * */
} helper_t;

static helper_t *g_helpers[4];

static void rx_free(gpointer p)
{
    rx_t *r = p;
    free(r->topic);
    free(r->payload);
    mosquitto_property_free_all(&r->props);
    free(r);
}

static void h_on_connect(struct mosquitto *m, void *ud, int rc, int fl, const mosquitto_property *p)
{
    (void)m, (void)fl, (void)p;
    ((helper_t *)ud)->connected = rc == 0;
}

static void h_on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *q,
                           const mosquitto_property *p)
{
    (void)m, (void)mid, (void)n, (void)q, (void)p;
    ((helper_t *)ud)->subscribed = true;
}

static void h_on_publish(struct mosquitto *m, void *ud, int mid, int rc,
                         const mosquitto_property *p)
{
    (void)m, (void)mid, (void)rc, (void)p;
    ((helper_t *)ud)->acks++;
}

static void h_on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *mm,
                         const mosquitto_property *p)
{
    (void)m;
    rx_t *r = calloc(1, sizeof(*r));
    r->topic = strdup(mm->topic);
    r->len = mm->payloadlen;
    r->payload = malloc((size_t)mm->payloadlen + 1);
    memcpy(r->payload, mm->payload, (size_t)mm->payloadlen);
    r->qos = mm->qos;
    r->retain = mm->retain;
    mosquitto_property_copy_all(&r->props, p);
    g_ptr_array_add(((helper_t *)ud)->rx, r);
}

/* Everything the tests wait for. */
typedef struct seen {
    GPtrArray *msgs; /* bl_msg_t *, what local's on_message got */
    GArray *tokens;  /* uint64_t, on_delivered in order */
    int connects, disconnects;
    uint64_t acked_upto; /* on_acked's latest: the broker has our acks of this many */
} seen_t;

static seen_t g_seen;
static local_t *g_local;

static void pump_helpers(void)
{
    for (size_t i = 0; i < BL_ARRAY_LEN(g_helpers); i++)
        if (g_helpers[i])
            mosquitto_loop(g_helpers[i]->m, 0, 1);
}

/* Run the GLib loop and the helpers until cond() or the deadline. */
static bool run_until(fixture_cond_t cond, void *arg)
{
    return fixture_poll_until(NULL, true, pump_helpers, cond, arg, DEADLINE_MS);
}

/* Only the helpers: what local would do meanwhile waits. */
static bool run_helpers_until(fixture_cond_t cond, void *arg)
{
    return fixture_poll_until(NULL, false, pump_helpers, cond, arg, DEADLINE_MS);
}

static void run_for(unsigned ms)
{
    fixture_poll_until(NULL, true, pump_helpers, fixture_never, NULL, ms);
}

static bool h_connected(void *h)
{
    return ((helper_t *)h)->connected;
}

static bool h_subscribed(void *h)
{
    return ((helper_t *)h)->subscribed;
}

typedef struct want {
    helper_t *h; /* NULL: count local's messages */
    guint n;
} want_t;

static bool rx_at_least(void *arg)
{
    want_t *w = arg;
    return (w->h ? w->h->rx->len : g_seen.msgs->len) >= w->n;
}

static bool tokens_at_least(void *arg)
{
    return g_seen.tokens->len >= *(guint *)arg;
}

static bool connects_at_least(void *arg)
{
    return g_seen.connects >= *(int *)arg;
}

static bool disconnects_at_least(void *arg)
{
    return g_seen.disconnects >= *(int *)arg;
}

static bool acks_at_least(void *arg)
{
    want_t *w = arg;
    return (guint)w->h->acks >= w->n;
}

/* The n-th token local reports is `token`, and sub gets its n-th message: returned. */
static const rx_t *expect_nth(helper_t *sub, guint n, uint64_t token)
{
    assert_true(run_until(tokens_at_least, &n));
    assert_int_equal(g_array_index(g_seen.tokens, uint64_t, n - 1), token);
    want_t w = {sub, n};
    assert_true(run_until(rx_at_least, &w));
    return g_ptr_array_index(sub->rx, n - 1);
}

/* A plain v5 client; subscribes `filter` (No Local off, Retain As Published on). */
static helper_t *helper_new(const char *id, const char *filter)
{
    helper_t *h = calloc(1, sizeof(*h));
    h->rx = g_ptr_array_new_with_free_func(rx_free);
    h->m = mosquitto_new(id, true, h);
    mosquitto_int_option(h->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_connect_v5_callback_set(h->m, h_on_connect);
    mosquitto_subscribe_v5_callback_set(h->m, h_on_subscribe);
    mosquitto_publish_v5_callback_set(h->m, h_on_publish);
    mosquitto_message_v5_callback_set(h->m, h_on_message);
    for (size_t i = 0; i < BL_ARRAY_LEN(g_helpers); i++)
        if (!g_helpers[i]) {
            g_helpers[i] = h;
            break;
        }
    assert_int_equal(mosquitto_connect(h->m, "127.0.0.1", g_port, 10), MOSQ_ERR_SUCCESS);
    /* Helpers only: the local client may not move while a helper gets ready. */
    assert_true(run_helpers_until(h_connected, h));
    if (filter) {
        assert_int_equal(
            mosquitto_subscribe_v5(h->m, NULL, filter, 2, MQTT_SUB_OPT_RETAIN_AS_PUBLISHED, NULL),
            0);
        assert_true(run_helpers_until(h_subscribed, h));
    }
    return h;
}

static void helper_free(helper_t *h)
{
    for (size_t i = 0; i < BL_ARRAY_LEN(g_helpers); i++)
        if (g_helpers[i] == h)
            g_helpers[i] = NULL;
    mosquitto_disconnect(h->m);
    mosquitto_destroy(h->m);
    g_ptr_array_free(h->rx, TRUE);
    free(h);
}

/* ---- the client under test ---- */

static bool g_free_in_callback;

static void l_on_message(void *ud, const bl_msg_t *m)
{
    (void)ud;
    g_ptr_array_add(g_seen.msgs, msg_dup(m));
    if (g_free_in_callback) {
        local_free(g_local);
        g_local = NULL;
    }
}

static void l_on_delivered(void *ud, uint64_t token)
{
    (void)ud;
    g_array_append_val(g_seen.tokens, token);
}

static void l_on_connect(void *ud)
{
    (void)ud;
    g_seen.connects++;
}

static void l_on_disconnect(void *ud)
{
    (void)ud;
    g_seen.disconnects++;
}

static void l_on_acked(void *ud, uint64_t upto)
{
    (void)ud;
    g_seen.acked_upto = upto;
}

static bool acked_at_least(void *arg)
{
    return g_seen.acked_upto >= *(uint64_t *)arg;
}

/* A config_t made by hand: config.c is not part of this test. */
static void local_make(void)
{
    config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.local.host = "127.0.0.1";
    cfg.local.port = g_port;
    cfg.local_client_id = "bl-test-local";
    cfg.local_keepalive = 10;
    cfg.delivery = CONFIG_DELIVERY_EXACTLY_ONCE; /* with the injecting connection */
    static const local_events_t ev = {.on_message = l_on_message,
                                      .on_delivered = l_on_delivered,
                                      .on_connect = l_on_connect,
                                      .on_disconnect = l_on_disconnect,
                                      .on_acked = l_on_acked};
    g_local = local_new(NULL, &cfg, &ev, NULL);
    assert_non_null(g_local);
}

static void local_up(const char *filter)
{
    local_make();
    if (filter)
        assert_int_equal(local_subscribe(g_local, filter, 2, true), 0);
    assert_int_equal(local_start(g_local), 0);
    int one = 1;
    assert_true(run_until(connects_at_least, &one));
    assert_true(local_connected(g_local));
}

/* ---- messages with every property ---- */

/* fixture_full_msg's properties, built with libmosquitto. */
static mosquitto_property *full_props(const bl_msg_t *f)
{
    mosquitto_property *p = NULL;
    mosquitto_property_add_byte(&p, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, (uint8_t)f->payload_format);
    mosquitto_property_add_int32(&p, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, f->expiry_s);
    mosquitto_property_add_string(&p, MQTT_PROP_CONTENT_TYPE, f->content_type);
    mosquitto_property_add_string(&p, MQTT_PROP_RESPONSE_TOPIC, f->response_topic);
    mosquitto_property_add_binary(&p, MQTT_PROP_CORRELATION_DATA, f->correlation,
                                  (uint16_t)f->correlation_len);
    for (size_t i = 0; i < f->n_user_props; i++)
        mosquitto_property_add_string_pair(&p, MQTT_PROP_USER_PROPERTY, f->user_props[i].key,
                                           f->user_props[i].value);
    return p;
}

static void simple_msg(bl_msg_t *m, const char *topic, const char *payload, int qos)
{
    msg_init(m);
    assert_int_equal(msg_set_topic(m, topic), 0);
    assert_int_equal(msg_set_payload(m, payload, strlen(payload)), 0);
    m->qos = (uint8_t)qos;
}

/* A simple_msg handed to local by send (local_publish or local_inject) with token. */
static void send_simple(int (*send)(local_t *, const bl_msg_t *, uint64_t), const char *topic,
                        const char *payload, int qos, uint64_t token)
{
    bl_msg_t m;
    simple_msg(&m, topic, payload, qos);
    assert_int_equal(send(g_local, &m, token), 0);
    msg_clear(&m);
}

/* libmosquitto 2.0.11, the helpers' library, crashes copying a user property whose name
 * or value is empty (mosquitto_property_copy_all strdup()s the NULL it keeps for ""):
 * what a helper receives goes without fixture_full_msg's last user property, the empty
 * one. */
static void drop_empty_prop(bl_msg_t *m)
{
    msg_user_prop_t *u = &m->user_props[m->n_user_props - 1];
    assert_string_equal(u->key, "");
    free(u->key);
    free(u->value);
    m->n_user_props--;
}

/* What a plain libmosquitto client read off the wire carries everything of
 * fixture_full_msg but its empty user property (its expiry counted down by at most 10 s). */
static void check_full_rx(const rx_t *r)
{
    bl_msg_t want;
    fixture_full_msg(&want, "-");
    drop_empty_prop(&want);
    uint8_t b = 9;
    uint32_t exp = 0;
    char *s = NULL, *k = NULL, *v = NULL;
    void *bin = NULL;
    uint16_t len = 0;
    assert_int_equal(r->len, want.payload_len);
    assert_memory_equal(r->payload, want.payload, want.payload_len);
    assert_non_null(
        mosquitto_property_read_byte(r->props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, &b, false));
    assert_int_equal(b, want.payload_format);
    assert_non_null(
        mosquitto_property_read_int32(r->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &exp, false));
    assert_in_range(exp, want.expiry_s - 10, want.expiry_s);
    assert_non_null(mosquitto_property_read_string(r->props, MQTT_PROP_CONTENT_TYPE, &s, false));
    assert_string_equal(s, want.content_type);
    free(s);
    assert_non_null(mosquitto_property_read_string(r->props, MQTT_PROP_RESPONSE_TOPIC, &s, false));
    assert_string_equal(s, want.response_topic);
    free(s);
    assert_non_null(
        mosquitto_property_read_binary(r->props, MQTT_PROP_CORRELATION_DATA, &bin, &len, false));
    assert_int_equal(len, want.correlation_len);
    assert_memory_equal(bin, want.correlation, want.correlation_len);
    free(bin);
    const mosquitto_property *p = r->props;
    for (size_t i = 0; i < want.n_user_props; i++) { /* in order, repeats kept */
        p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &k, &v, i > 0);
        assert_non_null(p);
        assert_string_equal(k, want.user_props[i].key);
        assert_string_equal(v, want.user_props[i].value);
        free(k);
        free(v);
    }
    assert_null(mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &k, &v, true));
    msg_clear(&want);
}

static void helper_publish(helper_t *h, const char *topic, const void *payload, int len, int qos,
                           bool retain, mosquitto_property *props)
{
    want_t w = {h, (guint)h->acks + 1};
    assert_int_equal(mosquitto_publish_v5(h->m, NULL, topic, len, payload, qos, retain, props), 0);
    mosquitto_property_free_all(&props);
    if (qos > 0)
        assert_true(run_helpers_until(acks_at_least, &w));
}

/* A helper publishes fixture_full_msg's payload and properties, QoS 1, retained. */
static void helper_publish_full(helper_t *h, const char *topic)
{
    bl_msg_t f;
    fixture_full_msg(&f, topic);
    helper_publish(h, topic, f.payload, (int)f.payload_len, 1, true, full_props(&f));
    msg_clear(&f);
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    (void)state;
    memset(&g_seen, 0, sizeof(g_seen));
    g_seen.msgs = g_ptr_array_new_with_free_func((GDestroyNotify)msg_free);
    g_seen.tokens = g_array_new(FALSE, FALSE, sizeof(uint64_t));
    g_free_in_callback = false;
    if (!g_broker_bin)
        return 0;
    snprintf(g_dir, sizeof(g_dir), "%s/bl-test-local-XXXXXX", g_get_tmp_dir());
    assert_non_null(g_mkdtemp(g_dir));
    snprintf(g_conf, sizeof(g_conf), "%s/mosquitto.conf", g_dir);
    g_port = free_port();
    char conf[256];
    snprintf(conf, sizeof(conf),
             "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"
             "log_dest stderr\n",
             g_port);
    assert_true(g_file_set_contents(g_conf, conf, -1, NULL));
    broker_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    local_free(g_local);
    g_local = NULL;
    for (size_t i = 0; i < BL_ARRAY_LEN(g_helpers); i++)
        if (g_helpers[i])
            helper_free(g_helpers[i]);
    broker_kill();
    if (g_broker_bin) {
        g_unlink(g_conf);
        g_rmdir(g_dir);
    }
    while (g_main_context_iteration(NULL, FALSE))
        ;
    g_ptr_array_free(g_seen.msgs, TRUE);
    g_array_free(g_seen.tokens, TRUE);
    return 0;
}

#define NEED_BROKER()                                                                              \
    do {                                                                                           \
        if (!g_broker_bin)                                                                         \
            skip();                                                                                \
    } while (0)

/* ---- tests ---- */

/* 1. A local client's message reaches on_message with topic, binary payload, QoS,
 *    retain and every MQTT 5 property intact, user properties in order. */
static void test_message_from_local_client_keeps_everything(void **state)
{
    (void)state;
    NEED_BROKER();
    local_up("t1/#");
    helper_t *pub = helper_new("pub1", NULL);
    helper_publish_full(pub, "t1/a");
    want_t w = {NULL, 1};
    assert_true(run_until(rx_at_least, &w));
    const bl_msg_t *m = g_ptr_array_index(g_seen.msgs, 0);
    assert_string_equal(m->topic, "t1/a");
    assert_int_equal(m->qos, 1);
    assert_true(m->retain); /* Retain As Published */
    fixture_check_full(m, 10);
    /* on_acked: once the broker answers a publish of ours made after our PUBACK was
     * written, it has read that PUBACK (site.c deletes an echo's in-doubt record only
     * then). Nothing before such a publish. */
    assert_int_equal(local_msgs_in(g_local), 1);
    for (int i = 0; i < 200 && !g_seen.acked_upto; i++) {
        while (g_main_context_iteration(NULL, FALSE))
            ;
        g_usleep(1000);
    }
    assert_int_equal(g_seen.acked_upto, 0);
    send_simple(local_publish, "t1/later", "after", 1, 7);
    uint64_t one = 1;
    assert_true(run_until(acked_at_least, &one));
}

/* 2. What local publishes is not echoed back to it (No Local), but other subscribers get
 *    it with QoS, retain and properties intact; on_delivered reports each token. */
static void test_no_local_and_delivery(void **state)
{
    (void)state;
    NEED_BROKER();
    helper_t *sub = helper_new("sub2", "t2/#");
    local_up("t2/#");
    bl_msg_t m1, m2;
    fixture_full_msg(&m1, "t2/x");
    drop_empty_prop(&m1);
    m1.qos = 1;
    simple_msg(&m2, "t2/y", "qos two", 2);
    assert_int_equal(local_publish(g_local, &m1, 42), 0);
    assert_int_equal(local_publish(g_local, &m2, 43), 0);
    msg_clear(&m1);
    msg_clear(&m2);

    guint two = 2;
    assert_true(run_until(tokens_at_least, &two));
    assert_int_equal(g_array_index(g_seen.tokens, uint64_t, 0), 42);
    assert_int_equal(g_array_index(g_seen.tokens, uint64_t, 1), 43);
    assert_int_equal(local_pending(g_local), 0);

    want_t w = {sub, 2};
    assert_true(run_until(rx_at_least, &w));
    const rx_t *r1 = g_ptr_array_index(sub->rx, 0), *r2 = g_ptr_array_index(sub->rx, 1);
    assert_string_equal(r1->topic, "t2/x");
    assert_int_equal(r1->qos, 1);
    assert_true(r1->retain);
    check_full_rx(r1);
    assert_string_equal(r2->topic, "t2/y");
    assert_int_equal(r2->qos, 2);
    assert_false(r2->retain);
    assert_int_equal(r2->len, 7);
    assert_memory_equal(r2->payload, "qos two", 7);
    assert_null(r2->props); /* absent stays absent */

    /* A sentinel from someone else arrives; our own two never did. */
    helper_t *pub = helper_new("pub2", NULL);
    helper_publish(pub, "t2/sentinel", "s", 1, 1, false, NULL);
    want_t one = {NULL, 1};
    assert_true(run_until(rx_at_least, &one));
    run_for(200);
    assert_int_equal(g_seen.msgs->len, 1);
    assert_string_equal(((bl_msg_t *)g_ptr_array_index(g_seen.msgs, 0))->topic, "t2/sentinel");
}

/* With exactly-once delivery, what peers send goes over a second, clean-session
 * connection: it is acknowledged with its token, reaches subscribers at its QoS, and
 * comes back on the persistent session even though that session subscribed with No
 * Local (another client published it): that return is the echo site.c relies on. */
static void test_inject(void **state)
{
    (void)state;
    NEED_BROKER();
    helper_t *sub = helper_new("sub5", "t5/#");
    local_up("t5/#");
    send_simple(local_inject, "t5/x", "injected", 2, 77);
    const rx_t *r = expect_nth(sub, 1, 77);
    assert_string_equal(r->topic, "t5/x");
    assert_int_equal(r->qos, 2);
    want_t back = {NULL, 1};
    assert_true(run_until(rx_at_least, &back));
    assert_string_equal(((bl_msg_t *)g_ptr_array_index(g_seen.msgs, 0))->topic, "t5/x");
    assert_int_equal(local_pending(g_local), 0);
}

static void publish_numbered(const char *topic, const char *fmt, int from, int to, int qos,
                             uint64_t token0)
{
    for (int i = from; i < to; i++) {
        char payload[32];
        snprintf(payload, sizeof(payload), fmt, i);
        send_simple(local_publish, topic, payload, qos, token0 + (uint64_t)i);
    }
}

static void expect_numbered(helper_t *sub, const char *fmt, int n, uint64_t token0)
{
    want_t w = {sub, (guint)n};
    assert_true(run_until(rx_at_least, &w));
    guint un = (guint)n;
    assert_true(run_until(tokens_at_least, &un));
    run_for(100);
    assert_int_equal(sub->rx->len, n); /* each exactly once */
    assert_int_equal(g_seen.tokens->len, n);
    for (int i = 0; i < n; i++) {
        char payload[32];
        snprintf(payload, sizeof(payload), fmt, i);
        const rx_t *r = g_ptr_array_index(sub->rx, i);
        assert_int_equal(r->len, strlen(payload));
        assert_memory_equal(r->payload, payload, strlen(payload));
        assert_int_equal(g_array_index(g_seen.tokens, uint64_t, i), token0 + (uint64_t)i);
    }
    assert_int_equal(local_pending(g_local), 0);
}

/* The broker killed: local sees its (first) connection drop. */
static void broker_gone(void)
{
    int one = 1;
    broker_kill();
    assert_true(run_until(disconnects_at_least, &one));
}

/* The broker back, with a new subscriber sub_id to topic: local connects again (its
 * second connection) and the subscriber gets n numbered messages (expect_numbered). */
static helper_t *broker_back(const char *sub_id, const char *topic, const char *fmt, int n,
                             uint64_t token0)
{
    int two = 2;
    broker_start();
    helper_t *sub = helper_new(sub_id, topic);
    assert_true(run_until(connects_at_least, &two));
    expect_numbered(sub, fmt, n, token0);
    return sub;
}

/* 3. The broker dies; what is published meanwhile waits, in order; local reconnects by
 *    itself, delivers it, and its subscription works again. */
static void test_broker_restart(void **state)
{
    (void)state;
    NEED_BROKER();
    local_up("t3/#");
    broker_gone();
    assert_false(local_connected(g_local));
    publish_numbered("t3/q", "m%d", 0, 5, 1, 100);
    assert_int_equal(local_pending(g_local), 5);

    /* The local client does not run until the subscriber is ready. */
    broker_back("sub3", "t3/q", "m%d", 5, 100);

    helper_t *pub = helper_new("pub3", NULL);
    helper_publish(pub, "t3/after", "a", 1, 1, false, NULL);
    want_t w = {NULL, 1};
    assert_true(run_until(rx_at_least, &w));
    assert_string_equal(((bl_msg_t *)g_ptr_array_index(g_seen.msgs, 0))->topic, "t3/after");
}

/* 4. A message retained before local connects is delivered with retain set. */
static void test_retained_before_connect(void **state)
{
    (void)state;
    NEED_BROKER();
    helper_t *pub = helper_new("pub4", NULL);
    helper_publish_full(pub, "t4/r");
    local_up("t4/#");
    want_t w = {NULL, 1};
    assert_true(run_until(rx_at_least, &w));
    const bl_msg_t *m = g_ptr_array_index(g_seen.msgs, 0);
    assert_string_equal(m->topic, "t4/r");
    assert_true(m->retain);
    assert_int_equal(m->qos, 1);
    fixture_check_full(m, 10);
}

/* 5. Publishes written but never acknowledged when the broker crashes are sent again
 *    after the reconnect, ahead of the ones queued later, each delivered once. */
static void test_inflight_survives_broker_crash(void **state)
{
    (void)state;
    NEED_BROKER();
    local_up(NULL);
    kill(g_broker, SIGSTOP); /* the socket still takes our bytes; nothing is acked */
    /* QoS 2 throughout: MQTT orders messages per topic and QoS (4.6), and a broker
     * releases QoS 2 only at PUBREL, so mixed QoS would legitimately reorder. */
    publish_numbered("t5/q", "i%d", 0, 3, 2, 200);
    run_for(300);
    assert_int_equal(g_seen.tokens->len, 0);
    assert_int_equal(local_pending(g_local), 3);
    broker_gone();
    publish_numbered("t5/q", "i%d", 3, 5, 2, 200);
    assert_int_equal(local_pending(g_local), 5);

    helper_t *sub = broker_back("sub5", "t5/q", "i%d", 5, 200);
    for (int i = 0; i < 5; i++)
        assert_int_equal(((rx_t *)g_ptr_array_index(sub->rx, i))->qos, 2);
}

/* 6. Freeing the client from inside its own callback is safe and ends all callbacks. */
static void test_free_inside_callback(void **state)
{
    (void)state;
    NEED_BROKER();
    local_up("t6/#");
    g_free_in_callback = true;
    helper_t *pub = helper_new("pub6", NULL);
    helper_publish(pub, "t6/a", "1", 1, 0, false, NULL);
    helper_publish(pub, "t6/b", "2", 1, 0, false, NULL);
    want_t w = {NULL, 1};
    assert_true(run_until(rx_at_least, &w));
    assert_null(g_local);
    run_for(300);
    assert_int_equal(g_seen.msgs->len, 1);
    assert_int_equal(g_seen.disconnects, 0);
}

/* 7. mqtt.c with clean_start false (not what local uses): the session outlives a
 *    disconnect, so the CONNECT carried a Session Expiry Interval, and the broker keeps
 *    what was published for us meanwhile. */
static void m_on_message(void *ud, const bl_msg_t *m)
{
    (void)ud;
    g_ptr_array_add(g_seen.msgs, msg_dup(m));
}

static void m_on_connect(void *ud)
{
    (void)ud;
    g_seen.connects++;
}

/* A client of the test broker that keeps its session (clean_start false). */
static mqtt_opts_t persistent_opts(const char *name, const char *client_id)
{
    return (mqtt_opts_t){.name = name,
                         .host = "127.0.0.1",
                         .port = g_port,
                         .client_id = client_id,
                         .keepalive = 10,
                         .clean_start = false};
}

static void test_persistent_session(void **state)
{
    (void)state;
    NEED_BROKER();
    mqtt_opts_t o = persistent_opts("persist", "bl-test-persist");
    mqtt_events_t ev = {.on_connect = m_on_connect, .on_message = m_on_message};
    mqtt_t *c = mqtt_new(NULL, &o, &ev, NULL);
    assert_non_null(c);
    assert_int_equal(mqtt_subscribe(c, "t7/#", 1, true, true), 0);
    assert_int_equal(mqtt_start(c), 0);
    int one = 1, two = 2;
    assert_true(run_until(connects_at_least, &one));
    mqtt_free(c); /* a clean DISCONNECT: the session stays */

    helper_t *pub = helper_new("pub7", NULL);
    helper_publish(pub, "t7/missed", "m", 1, 1, false, NULL);

    c = mqtt_new(NULL, &o, &ev, NULL);
    assert_int_equal(mqtt_start(c), 0); /* no mqtt_subscribe: the session has it */
    assert_true(run_until(connects_at_least, &two));
    want_t w = {NULL, 1};
    bool got = run_until(rx_at_least, &w);
    mqtt_free(c);
    assert_true(got);
    assert_string_equal(((bl_msg_t *)g_ptr_array_index(g_seen.msgs, 0))->topic, "t7/missed");
}

/* A message larger than what the client reads ahead (4 MiB) arrives whole, both ways,
 * and the small one after it too (a packet bigger than the read-ahead once stopped the
 * session for good, spinning). */
static void test_big_message(void **state)
{
    (void)state;
    NEED_BROKER();
    local_up("t9/#");
    size_t big = 5u << 20;
    uint8_t *payload = malloc(big);
    for (size_t i = 0; i < big; i++)
        payload[i] = (uint8_t)(i * 7);
    helper_t *pub = helper_new("pub9", NULL);
    helper_publish(pub, "t9/big", payload, (int)big, 1, false, NULL);
    helper_publish(pub, "t9/small", "s", 1, 1, false, NULL);
    want_t two = {NULL, 2};
    assert_true(run_until(rx_at_least, &two));
    const bl_msg_t *m = g_ptr_array_index(g_seen.msgs, 0);
    assert_string_equal(m->topic, "t9/big");
    assert_int_equal(m->payload_len, big);
    assert_memory_equal(m->payload, payload, big);
    assert_string_equal(((bl_msg_t *)g_ptr_array_index(g_seen.msgs, 1))->topic, "t9/small");

    helper_t *sub = helper_new("sub9", "t9/out");
    bl_msg_t out;
    msg_init(&out);
    assert_int_equal(msg_set_topic(&out, "t9/out"), 0);
    assert_int_equal(msg_set_payload(&out, payload, big), 0);
    out.qos = 1;
    assert_int_equal(local_publish(g_local, &out, 9), 0);
    msg_clear(&out);
    want_t w = {sub, 1};
    assert_true(run_until(rx_at_least, &w));
    const rx_t *r = g_ptr_array_index(sub->rx, 0);
    assert_int_equal(r->len, (int)big);
    assert_memory_equal(r->payload, payload, big);
    free(payload);
}

/* ---- the QoS 2 session state handed to a store (mqtt_store_t) ---- */

static GString *g_store; /* the store calls, in order: "reset", "in+7", "out+5:7", ... */

/* The store calls that take a packet id alone, each noted as fmt says. */
#define ST_PID_CALL(name, fmt)                                                                     \
    static void name(void *ud, uint16_t pid)                                                       \
    {                                                                                              \
        (void)ud;                                                                                  \
        g_string_append_printf(g_store, fmt, pid);                                                 \
    }
ST_PID_CALL(st_in_add, "in+%u ")
ST_PID_CALL(st_in_del, "in-%u ")
ST_PID_CALL(st_out_rec, "rec%u ")
ST_PID_CALL(st_out_del, "out-%u ")
static void st_out_add(void *ud, uint64_t token, uint16_t pid, const bl_msg_t *m)
{
    (void)ud;
    assert_non_null(m);
    g_string_append_printf(g_store, "out+%llu:%u ", (unsigned long long)token, pid);
}
static void st_reset(void *ud)
{
    (void)ud;
    g_string_append(g_store, "reset ");
}
static const mqtt_store_t k_store = {.in_add = st_in_add,
                                     .in_del = st_in_del,
                                     .out_add = st_out_add,
                                     .out_rec = st_out_rec,
                                     .out_del = st_out_del,
                                     .reset = st_reset};

static bool store_has(void *arg)
{
    return strstr(g_store->str, arg) != NULL;
}

/* A QoS 2 message from the broker is handed over at its PUBLISH with its packet id
 * recorded, released at the PUBREL; a QoS 2 publish records its id before it leaves,
 * its PUBREC (when it counts as delivered) and its PUBCOMP. A session the broker did
 * not have resets the store; one it kept gets the PUBREL the last run owed. */
static void test_qos2_session_state(void **state)
{
    (void)state;
    NEED_BROKER();
    g_store = g_string_new("");
    mqtt_opts_t o = persistent_opts("persist2", "bl-test-qos2");
    mqtt_events_t ev = {
        .on_connect = m_on_connect, .on_message = m_on_message, .on_published = l_on_delivered};
    mqtt_t *c = mqtt_new(NULL, &o, &ev, NULL);
    mqtt_set_store(c, &k_store, NULL);
    assert_int_equal(mqtt_subscribe(c, "t8/in", 2, true, true), 0);
    assert_int_equal(mqtt_start(c), 0);
    int one = 1, two = 2;
    assert_true(run_until(connects_at_least, &one));
    assert_string_equal(g_store->str, "reset "); /* a new session */

    helper_t *pub = helper_new("pub8", NULL);
    helper_publish(pub, "t8/in", "q2", 2, 2, false, NULL);
    assert_true(run_until(store_has, "in-"));
    assert_int_equal(g_seen.msgs->len, 1);
    unsigned pid_in = 0;
    assert_int_equal(sscanf(g_store->str, "reset in+%u in-", &pid_in), 1);
    char want[64];
    snprintf(want, sizeof want, "reset in+%u in-%u ", pid_in, pid_in);
    assert_string_equal(g_store->str, want);

    helper_t *sub = helper_new("sub8", "t8/out");
    bl_msg_t m;
    simple_msg(&m, "t8/out", "out", 2);
    assert_int_equal(mqtt_publish(c, &m, 5), 0);
    msg_clear(&m);
    assert_true(run_until(store_has, "out-"));
    g_string_erase(g_store, 0, (gssize)strlen(want));
    unsigned pid_out = 0;
    assert_int_equal(sscanf(g_store->str, "out+5:%u", &pid_out), 1);
    snprintf(want, sizeof want, "out+5:%u rec%u out-%u ", pid_out, pid_out, pid_out);
    assert_string_equal(g_store->str, want);
    expect_nth(sub, 1, 5);
    mqtt_free(c);

    /* The next run restores a publish whose PUBREC the last one recorded: it sends the
     * PUBREL at connect; the broker answers PUBCOMP (it may not know the id: 4.3.3). And
     * one whose PUBREC never came: it goes again with its id and DUP, and (the broker
     * not holding that id) reaches the subscriber once, reported with its token. */
    g_string_truncate(g_store, 0);
    c = mqtt_new(NULL, &o, &ev, NULL);
    mqtt_set_store(c, &k_store, NULL);
    mqtt_restore_out(c, 4242, true, NULL, 0);
    simple_msg(&m, "t8/out", "again", 2);
    mqtt_restore_out(c, 4343, false, &m, 77);
    msg_clear(&m);
    assert_int_equal(mqtt_start(c), 0);
    assert_true(run_until(connects_at_least, &two));
    assert_true(run_until(store_has, "out-4242"));
    assert_true(run_until(store_has, "out-4343"));
    assert_string_equal(g_store->str, "out-4242 rec4343 out-4343 "); /* session kept: no reset */
    const rx_t *again = expect_nth(sub, 2, 77);
    assert_int_equal(again->len, 5);
    assert_memory_equal(again->payload, "again", 5);
    run_for(200);
    assert_int_equal(sub->rx->len, 2);
    mqtt_free(c);
    g_string_free(g_store, TRUE);
}

int main(void)
{
    g_broker_bin = g_find_program_in_path("mosquitto");
    const char *fallback[] = {"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"};
    for (size_t i = 0; !g_broker_bin && i < BL_ARRAY_LEN(fallback); i++)
        if (g_file_test(fallback[i], G_FILE_TEST_IS_EXECUTABLE))
            g_broker_bin = g_strdup(fallback[i]);
    if (getenv("BL_TEST_VERBOSE"))
        log_set_level(LOG_LVL_DEBUG);
    mosquitto_lib_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_message_from_local_client_keeps_everything, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_local_and_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retained_before_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inflight_survives_broker_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_inside_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_persistent_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qos2_session_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_message, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mosquitto_lib_cleanup();
    g_free(g_broker_bin);
    return rc;
}
