/* bldelay - a WAN delay for the namespace lab on kernels without sch_netem.
 *
 *   bldelay --queue N --delay-ms D [--jitter-ms J] [--loss-pct P] [--seed S] [--segment]
 *
 * Binds netfilter queue N (in the network namespace it runs in) and, for every packet
 * an iptables NFQUEUE rule sends there: with probability P% drops it (NF_DROP) at once,
 * otherwise holds it and lets it go on (NF_ACCEPT, payload unchanged) D ms later, give
 * or take a uniform jitter of up to J ms. With --segment the kernel cuts segmented
 * sends (GSO: TCP super-packets, UDP_SEGMENT runs) into their datagrams before queueing,
 * so the loss is drawn per datagram, as on a real link.
 *
 * Order: packets leave in the order they came (FIFO per queue). netem without a
 * reorder option keeps order only without jitter; here a packet's due time is clamped
 * to be no earlier than its predecessor's, so jitter only ever adds delay and never
 * reorders. That keeps one FIFO (a ring of packet ids) enough, and lets one batch
 * verdict release every due packet at once (the kernel's queue is in id order too).
 *
 * It never sees payload (NFQNL_COPY_META): only the packet id is needed. Until it has
 * bound the queue, and after it has gone, the kernel drops what the rule queues (no
 * --queue-bypass in the lab's rule): a missing delay shows as a dead link, not as a
 * silently undelayed one. It prints "bldelay: queue N ready" once bound, and its
 * counters on SIGTERM/SIGINT, after it has accepted every packet still held.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libnetfilter_queue/libnetfilter_queue.h>

/* As many packets as the kernel may hold for us; also the ring's size. At 20 ms and
 * 30,000 packets/s about 600 are held, so this is ample. */
#define BLD_QUEUE_MAXLEN 65536u
/* Kernel socket buffer for queued-packet messages: a burst must not overflow it
 * (each message is ~100 bytes with COPY_META, plus skb overhead). */
#define BLD_RCVBUF (8 * 1024 * 1024)
/* Messages read per wakeup before due packets are released again. */
#define BLD_READ_BURST 256

struct bld_held {
    uint32_t id;
    int64_t due_ns;
};

struct bld {
    struct nfq_handle *h;
    struct nfq_q_handle *qh;
    struct bld_held *ring;
    size_t head, len;
    uint16_t queue;
    int64_t delay_ns, jitter_ns, last_due_ns;
    double loss; /* probability, 0..1 */
    int segment; /* --segment: the kernel cuts segmented sends before we see them */
    uint64_t rng;
    uint64_t seen, delayed, dropped, early, enobufs, verdict_errors, no_header, bad_messages;
};

static int64_t bld_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* splitmix64: small, seedable, good enough for loss and jitter draws. */
static double bld_rand_unit(struct bld *d)
{
    uint64_t z = (d->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

static void bld_verdict(struct bld *d, uint32_t id, uint32_t verdict)
{
    if (nfq_set_verdict(d->qh, id, verdict, 0, NULL) < 0) {
        d->verdict_errors++;
        fprintf(stderr, "bldelay: verdict for packet %" PRIu32 ": %s\n", id, strerror(errno));
    }
}

/* Accept the n oldest held packets with one batch verdict (every queued id up to the
 * last one; all older ids were either released before or dropped at once). */
static void bld_release(struct bld *d, size_t n)
{
    if (n == 0)
        return;
    uint32_t last = d->ring[(d->head + n - 1) % BLD_QUEUE_MAXLEN].id;
    if (nfq_set_verdict_batch(d->qh, last, NF_ACCEPT) < 0) {
        d->verdict_errors++;
        fprintf(stderr, "bldelay: batch verdict up to packet %" PRIu32 ": %s\n", last,
                strerror(errno));
    }
    d->head = (d->head + n) % BLD_QUEUE_MAXLEN;
    d->len -= n;
    d->delayed += n;
}

static void bld_release_due(struct bld *d, int64_t now)
{
    size_t n = 0;
    while (n < d->len && d->ring[(d->head + n) % BLD_QUEUE_MAXLEN].due_ns <= now)
        n++;
    bld_release(d, n);
}

static int bld_on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa,
                         void *arg)
{
    (void)qh;
    (void)msg;
    struct bld *d = arg;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
    if (ph == NULL) { /* no id: nothing to give a verdict on; the kernel keeps it */
        d->no_header++;
        fprintf(stderr, "bldelay: queued message without a packet header\n");
        return 0;
    }
    uint32_t id = ntohl(ph->packet_id);
    d->seen++;
    if (d->loss > 0 && bld_rand_unit(d) < d->loss) {
        bld_verdict(d, id, NF_DROP);
        d->dropped++;
        return 0;
    }
    if (d->len == BLD_QUEUE_MAXLEN) { /* cannot happen with the kernel's maxlen; stay FIFO */
        d->early++;
        bld_release(d, 1);
    }
    int64_t due = bld_now_ns() + d->delay_ns;
    if (d->jitter_ns > 0)
        due += (int64_t)((2 * bld_rand_unit(d) - 1) * (double)d->jitter_ns);
    if (due < d->last_due_ns) /* keep FIFO order: jitter never reorders */
        due = d->last_due_ns;
    d->last_due_ns = due;
    d->ring[(d->head + d->len) % BLD_QUEUE_MAXLEN] = (struct bld_held){id, due};
    d->len++;
    return 0;
}

/* Read what the kernel queued, up to a burst; returns how many messages were read, or
 * -1 on a fatal socket error. */
static int bld_read(struct bld *d, int fd)
{
    static _Alignas(16) char buf[65536];
    int got = 0;
    for (int i = 0; i < BLD_READ_BURST; i++) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            got++;
            if (nfq_handle_packet(d->h, buf, (int)n) < 0 && d->bad_messages++ == 0)
                fprintf(stderr, "bldelay: a message the library could not handle: %s\n",
                        strerror(errno));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return got;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == ENOBUFS) { /* the socket overflowed: the kernel dropped some */
            if (d->enobufs++ == 0)
                fprintf(stderr, "bldelay: receive buffer overflowed (ENOBUFS): packets lost\n");
            continue;
        }
        fprintf(stderr, "bldelay: recv: %s\n", n == 0 ? "socket closed" : strerror(errno));
        return -1;
    }
    return got;
}

/* The kernel's own counters for our queue (queue_dropped: queue full; user_dropped:
 * our socket was full), from /proc/net/netfilter/nfnetlink_queue of this namespace. */
static void bld_print_kernel_stats(uint16_t queue)
{
    FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "r");
    if (f == NULL) {
        fprintf(stderr, "bldelay: /proc/net/netfilter/nfnetlink_queue: %s\n", strerror(errno));
        return;
    }
    unsigned q, pid, total, mode, range, qdrop, udrop, lastid;
    while (fscanf(f, "%u %u %u %u %u %u %u %u %*[^\n]", &q, &pid, &total, &mode, &range, &qdrop,
                  &udrop, &lastid) == 8) {
        if (q == queue)
            fprintf(stderr,
                    "bldelay: kernel queue %u: waiting %u queue_dropped %u user_dropped %u\n", q,
                    total, qdrop, udrop);
    }
    fclose(f);
}

static int bld_parse_num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        fprintf(stderr, "bldelay: --%s '%s': want a number in %g..%g\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static void bld_usage(void)
{
    fprintf(stderr, "usage: bldelay --queue N --delay-ms D [--jitter-ms J] [--loss-pct P]"
                    " [--seed S] [--segment]\n"
                    "  holds each packet of netfilter queue N for D ms (+-J, order kept),\n"
                    "  drops P %% of them (--segment: of the datagrams, the kernel cutting\n"
                    "  segmented sends first); SIGTERM/SIGINT releases the held ones and exits\n");
}

static int bld_parse_args(int argc, char **argv, struct bld *d)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'q'},     {"delay-ms", required_argument, NULL, 'd'},
        {"jitter-ms", required_argument, NULL, 'j'}, {"loss-pct", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 's'},      {"help", no_argument, NULL, 'h'},
        {"segment", no_argument, NULL, 'g'},         {NULL, 0, NULL, 0}};
    double queue = -1, delay = -1, jitter = 0, loss = 0, seed = -1;
    /* The numeric options, as opts lists them: each one's range and its variable. */
    static const char num_opts[] = "qdjls";
    const struct {
        double lo, hi;
        double *out;
    } num[] = {{0, 65535, &queue},
               {0, 60000, &delay},
               {0, 60000, &jitter},
               {0, 100, &loss},
               {0, 4294967295.0, &seed}};
    int c;
    while ((c = getopt_long(argc, argv, "q:d:j:l:s:hg", opts, NULL)) != -1) {
        if (c == 'h') {
            bld_usage();
            exit(0);
        }
        if (c == 'g') {
            d->segment = 1;
            continue;
        }
        const char *k = c ? strchr(num_opts, c) : NULL;
        if (!k)
            return -1;
        size_t i = (size_t)(k - num_opts);
        if (bld_parse_num(opts[i].name, optarg, num[i].lo, num[i].hi, num[i].out) < 0)
            return -1;
    }
    if (optind != argc || queue < 0 || delay < 0 || queue != (double)(uint16_t)queue) {
        bld_usage();
        return -1;
    }
    if (jitter > delay) {
        fprintf(stderr, "bldelay: --jitter-ms %g is larger than --delay-ms %g\n", jitter, delay);
        return -1;
    }
    d->queue = (uint16_t)queue;
    d->delay_ns = (int64_t)(delay * 1e6);
    d->jitter_ns = (int64_t)(jitter * 1e6);
    d->loss = loss / 100;
    d->rng = seed >= 0 ? (uint64_t)seed : (uint64_t)bld_now_ns() ^ (uint64_t)getpid() << 32;
    return 0;
}

/* Bind the queue: metadata only, a long queue, a big socket buffer. */
static int bld_open(struct bld *d)
{
    d->h = nfq_open();
    if (d->h == NULL) {
        fprintf(stderr, "bldelay: nfq_open: %s (no nfnetlink_queue, or not root?)\n",
                strerror(errno));
        return -1;
    }
    d->qh = nfq_create_queue(d->h, d->queue, bld_on_packet, d);
    if (d->qh == NULL) {
        fprintf(stderr, "bldelay: bind queue %u: %s (another program has it?)\n", d->queue,
                strerror(errno));
        return -1;
    }
    if (nfq_set_mode(d->qh, NFQNL_COPY_META, 0) < 0) {
        fprintf(stderr, "bldelay: copy mode META: %s\n", strerror(errno));
        return -1;
    }
    if (nfq_set_queue_maxlen(d->qh, BLD_QUEUE_MAXLEN) < 0) {
        fprintf(stderr, "bldelay: queue maxlen %u: %s\n", BLD_QUEUE_MAXLEN, strerror(errno));
        return -1;
    }
    /* GSO packets as they are (no segmenting just to show them to us): we never look at
     * the payload. Older kernels refuse the flag; then they segment, which is correct.
     * With --segment the flag stays off, so the kernel cuts a segmented send (a TCP
     * super-packet, a UDP_SEGMENT run) into the datagrams a real link would carry before
     * queueing them, each with its own id: the loss draw is then per datagram, as on a
     * real path, and not one draw for a whole run of up to 64 datagrams. */
    if (!d->segment && nfq_set_queue_flags(d->qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0)
        fprintf(stderr, "bldelay: queue flag GSO: %s (continuing without)\n", strerror(errno));
    int fd = nfq_fd(d->h), size = BLD_RCVBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) {
        fprintf(stderr, "bldelay: SO_RCVBUFFORCE %d: %s\n", size, strerror(errno));
        return -1;
    }
    return 0;
}

static void bld_close(struct bld *d)
{
    if (d->qh != NULL && nfq_destroy_queue(d->qh) < 0)
        fprintf(stderr, "bldelay: unbind queue %u: %s\n", d->queue, strerror(errno));
    if (d->h != NULL && nfq_close(d->h) < 0)
        fprintf(stderr, "bldelay: close: %s\n", strerror(errno));
    free(d->ring);
}

/* Wait for packets, a signal or the head's due time; release what is due. Returns 0
 * on a stop signal, -1 on an error. */
static int bld_loop(struct bld *d, int sfd)
{
    struct pollfd pfd[2] = {{.fd = nfq_fd(d->h), .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
    for (;;) {
        struct timespec ts, *tsp = NULL;
        if (d->len > 0) {
            int64_t wait = d->ring[d->head].due_ns - bld_now_ns();
            if (wait < 0)
                wait = 0;
            ts = (struct timespec){.tv_sec = wait / 1000000000, .tv_nsec = wait % 1000000000};
            tsp = &ts;
        }
        int n = ppoll(pfd, 2, tsp, NULL);
        if (n < 0 && errno != EINTR) {
            fprintf(stderr, "bldelay: ppoll: %s\n", strerror(errno));
            return -1;
        }
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) != (ssize_t)sizeof si) {
                fprintf(stderr, "bldelay: read signalfd: %s\n", strerror(errno));
                return -1;
            }
            /* What the kernel queued before the rule went is still ours to let go:
             * unread, it would be dropped when the queue is unbound. Bounded, in case
             * the rule is still there and traffic keeps coming. */
            for (int i = 0; i < 64 && bld_read(d, pfd[0].fd) > 0; i++)
                ;
            fprintf(stderr, "bldelay: signal %u, releasing %zu held packets\n", si.ssi_signo,
                    d->len);
            return 0;
        }
        if (n > 0 && pfd[0].revents != 0 && bld_read(d, pfd[0].fd) < 0)
            return -1;
        bld_release_due(d, bld_now_ns());
    }
}

int main(int argc, char **argv)
{
    struct bld d = {0};
    if (bld_parse_args(argc, argv, &d) < 0)
        return 2;
    d.ring = calloc(BLD_QUEUE_MAXLEN, sizeof *d.ring);
    if (d.ring == NULL) {
        fprintf(stderr, "bldelay: out of memory\n");
        return 1;
    }
    /* Signals arrive through a descriptor, so the loop sees them between packets and
     * never inside a verdict. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    int sfd = -1;
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
        fprintf(stderr, "bldelay: signals: %s\n", strerror(errno));
        free(d.ring);
        return 1;
    }
    int rc = 1;
    if (bld_open(&d) == 0) {
        fprintf(stderr, "bldelay: queue %u ready: delay %.3f ms jitter %.3f ms loss %.2f %%%s\n",
                d.queue, (double)d.delay_ns / 1e6, (double)d.jitter_ns / 1e6, d.loss * 100,
                d.segment ? " per datagram (segmented sends cut)" : "");
        rc = bld_loop(&d, sfd) == 0 ? 0 : 1;
        bld_release(&d, d.len); /* whatever happened, nothing stays held */
        fprintf(stderr,
                "bldelay: queue %u: seen %" PRIu64 " delayed %" PRIu64 " dropped %" PRIu64
                " released_early %" PRIu64 " enobufs %" PRIu64 " verdict_errors %" PRIu64
                " no_header %" PRIu64 " bad_messages %" PRIu64 "\n",
                d.queue, d.seen, d.delayed, d.dropped, d.early, d.enobufs, d.verdict_errors,
                d.no_header, d.bad_messages);
        bld_print_kernel_stats(d.queue);
    }
    bld_close(&d);
    close(sfd);
    return rc;
}
