/* blload - MQTT v5 load tool for bench/run (not part of the daemon, never in CTest).
 *
 *   blload pub -h HOST -p PORT -t TOPIC -n N -q QOS -s SIZE [-r RATE]
 *   blload sub -h HOST -p PORT -t TOPIC -n N -q QOS [-T TIMEOUT_S]
 *
 * Every payload starts with a 16-byte header: the sequence number and the send time
 * (CLOCK_REALTIME, ns), both big-endian u64; the rest is filler. Network namespaces
 * share CLOCK_REALTIME, so a subscriber in another namespace can compute latency.
 *
 * pub publishes N messages as fast as the broker takes them (QoS 0: the output queue is
 * drained before the next publish, so memory stays flat; QoS 1/2: at most WINDOW
 * messages wait for their PUBACK/PUBCOMP), or RATE messages per second with -r.
 * sub counts messages until N arrived or nothing came for TIMEOUT_S seconds (also
 * before the first one), or on SIGINT/SIGTERM. It writes "blload: subscribed" to stderr
 * once the SUBACK is in, so a script can start the publisher only then.
 * Both print one line of JSON on stdout.
 *
 * Build: cc -O2 -o blload bench/blload.c $(pkg-config --cflags --libs libmosquitto)
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HDR_LEN 16
#define WINDOW 1000 /* in-flight QoS 1/2 publishes */

typedef struct {
    const char *mode, *host, *topic;
    int port, qos, size;
    long n;
    double rate, timeout_s;
} opts_t;

typedef struct {
    /* pub */
    long acked;
    /* sub */
    bool subscribed;
    long received, unique, dups, ooo, foreign;
    int64_t max_seq;
    uint8_t *seen; /* bitmap of sequence numbers */
    size_t seen_bytes;
    double *lat_ms;
    size_t lat_len, lat_cap;
    int64_t first_rx_ns, last_rx_ns;
    int64_t first_seq;
    /* both */
    bool connected, failed;
} state_t;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static int64_t now_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags,
                       const mosquitto_property *props)
{
    state_t *st = ud;
    (void)m, (void)flags, (void)props;
    if (rc != 0) {
        fprintf(stderr, "blload: connect refused: %s\n", mosquitto_reason_string(rc));
        st->failed = true;
        return;
    }
    st->connected = true;
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int reason,
                       const mosquitto_property *props)
{
    state_t *st = ud;
    (void)m, (void)mid, (void)props;
    if (reason >= 0x80)
        fprintf(stderr, "blload: publish refused: %s\n", mosquitto_reason_string(reason));
    st->acked++;
}

static void on_subscribe(struct mosquitto *m, void *ud, int mid, int n, const int *granted,
                         const mosquitto_property *props)
{
    state_t *st = ud;
    (void)m, (void)mid, (void)props;
    if (n < 1 || granted[0] >= 0x80) {
        fprintf(stderr, "blload: subscription refused\n");
        st->failed = true;
        return;
    }
    st->subscribed = true;
    fprintf(stderr, "blload: subscribed\n");
}

/* Mark seq in the bitmap; returns true when it was already there. */
static bool seen_mark(state_t *st, uint64_t seq)
{
    size_t byte = (size_t)(seq / 8);
    if (seq > (1ULL << 32))
        return false; /* absurd: do not grow the map for it */
    if (byte >= st->seen_bytes) {
        size_t nb = st->seen_bytes ? st->seen_bytes : 4096;
        while (nb <= byte)
            nb *= 2;
        uint8_t *p = realloc(st->seen, nb);
        if (!p) {
            fprintf(stderr, "blload: out of memory\n");
            exit(2);
        }
        memset(p + st->seen_bytes, 0, nb - st->seen_bytes);
        st->seen = p;
        st->seen_bytes = nb;
    }
    uint8_t bit = (uint8_t)(1u << (seq % 8));
    bool was = st->seen[byte] & bit;
    st->seen[byte] |= bit;
    return was;
}

static void lat_push(state_t *st, double ms)
{
    if (st->lat_len == st->lat_cap) {
        size_t nc = st->lat_cap ? st->lat_cap * 2 : 65536;
        double *p = realloc(st->lat_ms, nc * sizeof *p);
        if (!p) {
            fprintf(stderr, "blload: out of memory\n");
            exit(2);
        }
        st->lat_ms = p;
        st->lat_cap = nc;
    }
    st->lat_ms[st->lat_len++] = ms;
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
    state_t *st = ud;
    (void)m, (void)props;
    int64_t now = now_ns(CLOCK_REALTIME);
    if (msg->payloadlen < HDR_LEN) {
        st->foreign++;
        return;
    }
    uint64_t seq = get_u64(msg->payload);
    int64_t sent = (int64_t)get_u64((const uint8_t *)msg->payload + 8);
    st->received++;
    if (st->received == 1) {
        st->first_rx_ns = now;
        st->first_seq = (int64_t)seq;
    }
    st->last_rx_ns = now;
    if (seen_mark(st, seq)) {
        st->dups++;
        return;
    }
    st->unique++;
    if ((int64_t)seq < st->max_seq)
        st->ooo++;
    else
        st->max_seq = (int64_t)seq;
    lat_push(st, (double)(now - sent) / 1e6);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void usage(void)
{
    fprintf(stderr, "usage: blload pub -h HOST -p PORT -t TOPIC -n N -q QOS -s SIZE [-r RATE]\n"
                    "       blload sub -h HOST -p PORT -t TOPIC -n N -q QOS [-T TIMEOUT_S]\n");
    exit(2);
}

static void parse(int argc, char **argv, opts_t *o)
{
    if (argc < 2)
        usage();
    *o = (opts_t){.mode = argv[1],
                  .host = "127.0.0.1",
                  .port = 1883,
                  .topic = "bench/load",
                  .n = 1000,
                  .size = 64,
                  .timeout_s = 10};
    if (strcmp(o->mode, "pub") != 0 && strcmp(o->mode, "sub") != 0)
        usage();
    int c;
    optind = 2;
    while ((c = getopt(argc, argv, "h:p:t:n:q:s:r:T:")) != -1) {
        switch (c) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            o->port = atoi(optarg);
            break;
        case 't':
            o->topic = optarg;
            break;
        case 'n':
            o->n = atol(optarg);
            break;
        case 'q':
            o->qos = atoi(optarg);
            break;
        case 's':
            o->size = atoi(optarg);
            break;
        case 'r':
            o->rate = atof(optarg);
            break;
        case 'T':
            o->timeout_s = atof(optarg);
            break;
        default:
            usage();
        }
    }
    if (o->n < 1 || o->qos < 0 || o->qos > 2 || o->port < 1 || o->port > 65535 ||
        o->size < HDR_LEN || o->size > 16 * 1024 * 1024 || o->rate < 0 || o->timeout_s <= 0) {
        fprintf(stderr, "blload: bad arguments (n >= 1, qos 0..2, size %d..16M)\n", HDR_LEN);
        exit(2);
    }
}

/* Connect with MQTT v5 and run the loop until the CONNACK is in. */
static struct mosquitto *connect_v5(const opts_t *o, state_t *st)
{
    char id[64];
    snprintf(id, sizeof id, "blload-%s-%ld", o->mode, (long)getpid());
    struct mosquitto *m = mosquitto_new(id, true, st);
    if (!m)
        return NULL;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_int_option(m, MOSQ_OPT_RECEIVE_MAXIMUM, 65535);
    mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 65535);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_v5_callback_set(m, on_connect);
    mosquitto_publish_v5_callback_set(m, on_publish);
    mosquitto_subscribe_v5_callback_set(m, on_subscribe);
    mosquitto_message_v5_callback_set(m, on_message);
    int rc = mosquitto_connect(m, o->host, o->port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "blload: connect %s:%d: %s\n", o->host, o->port,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        mosquitto_destroy(m);
        return NULL;
    }
    int64_t deadline = now_ns(CLOCK_MONOTONIC) + 10 * 1000000000LL;
    while (!st->connected && !st->failed && !g_stop && now_ns(CLOCK_MONOTONIC) < deadline)
        if (mosquitto_loop(m, 100, 1) != MOSQ_ERR_SUCCESS)
            break;
    if (!st->connected) {
        fprintf(stderr, "blload: no CONNACK from %s:%d\n", o->host, o->port);
        mosquitto_destroy(m);
        return NULL;
    }
    return m;
}

/* One loop step; a lost connection ends the run (the counts so far are still printed). */
static bool step(struct mosquitto *m, int timeout_ms)
{
    int rc = mosquitto_loop(m, timeout_ms, 1);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "blload: connection lost: %s\n", mosquitto_strerror(rc));
        return false;
    }
    return true;
}

static int run_pub(const opts_t *o, struct mosquitto *m, state_t *st)
{
    uint8_t *buf = malloc((size_t)o->size);
    if (!buf)
        return 2;
    memset(buf, 'x', (size_t)o->size);
    int64_t t0 = now_ns(CLOCK_MONOTONIC);
    long sent = 0;
    bool ok = true;
    for (long i = 0; i < o->n && ok && !g_stop; i++) {
        if (o->rate > 0) { /* paced: wait for this message's slot */
            int64_t due = t0 + (int64_t)((double)i * 1e9 / o->rate);
            while (ok && !g_stop && now_ns(CLOCK_MONOTONIC) < due)
                ok = step(m, (int)((due - now_ns(CLOCK_MONOTONIC)) / 1000000));
        }
        if (o->qos == 0) { /* drain: never let the output queue grow */
            while (ok && !g_stop && mosquitto_want_write(m))
                ok = step(m, 100);
        } else {
            while (ok && !g_stop && sent - st->acked >= WINDOW)
                ok = step(m, 100);
        }
        if (!ok || g_stop)
            break;
        put_u64(buf, (uint64_t)i);
        put_u64(buf + 8, (uint64_t)now_ns(CLOCK_REALTIME));
        int rc = mosquitto_publish_v5(m, NULL, o->topic, o->size, buf, o->qos, false, NULL);
        if (rc != MOSQ_ERR_SUCCESS) {
            fprintf(stderr, "blload: publish: %s\n", mosquitto_strerror(rc));
            break;
        }
        sent++;
        if (sent % 256 == 0) /* read PUBACKs/PINGRESPs now and then */
            ok = step(m, 0);
    }
    /* Finish: every QoS 0 byte written, every QoS 1/2 message acknowledged. */
    int64_t deadline = now_ns(CLOCK_MONOTONIC) + 30 * 1000000000LL;
    while (ok && !g_stop && now_ns(CLOCK_MONOTONIC) < deadline &&
           (o->qos == 0 ? mosquitto_want_write(m) : st->acked < sent))
        ok = step(m, 100);
    double dur = (double)(now_ns(CLOCK_MONOTONIC) - t0) / 1e9;
    printf("{\"mode\":\"pub\",\"qos\":%d,\"size\":%d,\"sent\":%ld,\"acked\":%ld,"
           "\"duration_s\":%.3f,\"rate\":%.0f}\n",
           o->qos, o->size, sent, o->qos ? st->acked : sent, dur, dur > 0 ? sent / dur : 0);
    mosquitto_disconnect(m);
    free(buf);
    return sent == o->n ? 0 : 1;
}

static int run_sub(const opts_t *o, struct mosquitto *m, state_t *st)
{
    int rc = mosquitto_subscribe_v5(m, NULL, o->topic, o->qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "blload: subscribe: %s\n", mosquitto_strerror(rc));
        return 2;
    }
    int64_t idle_ns = (int64_t)(o->timeout_s * 1e9), last = now_ns(CLOCK_MONOTONIC);
    long seen = 0;
    bool ok = true;
    while (ok && !g_stop && !st->failed && st->unique < o->n) {
        ok = step(m, 100);
        int64_t now = now_ns(CLOCK_MONOTONIC);
        if (st->received != seen) {
            seen = st->received;
            last = now;
        } else if (now - last > idle_ns) {
            break;
        }
    }
    qsort(st->lat_ms, st->lat_len, sizeof *st->lat_ms, cmp_double);
    double dur = (double)(st->last_rx_ns - st->first_rx_ns) / 1e9;
    printf("{\"mode\":\"sub\",\"qos\":%d,\"expected\":%ld,\"received\":%ld,\"unique\":%ld,"
           "\"duplicates\":%ld,\"out_of_order\":%ld,\"missing\":%ld,\"foreign\":%ld,"
           "\"duration_s\":%.3f,\"rate\":%.0f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,"
           "\"lat_max_ms\":%.3f,\"first_rx_ns\":%lld,\"first_seq\":%lld}\n",
           o->qos, o->n, st->received, st->unique, st->dups, st->ooo, o->n - st->unique,
           st->foreign, dur, dur > 0 ? (double)(st->unique - 1) / dur : 0,
           pct(st->lat_ms, st->lat_len, 0.50), pct(st->lat_ms, st->lat_len, 0.99),
           pct(st->lat_ms, st->lat_len, 1.0), (long long)st->first_rx_ns,
           (long long)(st->received ? st->first_seq : -1));
    mosquitto_disconnect(m);
    return st->unique == o->n ? 0 : 1;
}

int main(int argc, char **argv)
{
    opts_t o;
    state_t st = {.max_seq = -1};
    parse(argc, argv, &o);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stderr, NULL, _IONBF, 0);
    mosquitto_lib_init();
    struct mosquitto *m = connect_v5(&o, &st);
    int rc = 2;
    if (m) {
        rc = strcmp(o.mode, "pub") == 0 ? run_pub(&o, m, &st) : run_sub(&o, m, &st);
        mosquitto_destroy(m);
    }
    mosquitto_lib_cleanup();
    free(st.seen);
    free(st.lat_ms);
    return rc;
}
