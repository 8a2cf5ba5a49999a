/* SPDX-License-Identifier: MIT */
/* test_udpgso.c - which queued datagrams share one segmented send, the queue's limits,
 * and a real segmented send on 127.0.0.1 arriving as the datagrams it was made of. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "udpgso.h"

static void test_run(void **state)
{
    (void)state;
    const size_t same[] = {1200, 1200, 1200, 1200};
    assert_int_equal(udpgso_run(same, 4, 64, 65000), 4);
    assert_int_equal(udpgso_run(same, 0, 64, 65000), 0);
    /* A shorter one ends the run and belongs to it; a longer one starts the next. */
    const size_t shorter[] = {1200, 1200, 80, 1200};
    assert_int_equal(udpgso_run(shorter, 4, 64, 65000), 3);
    const size_t longer[] = {80, 1200, 1200};
    assert_int_equal(udpgso_run(longer, 3, 64, 65000), 1);
    assert_int_equal(udpgso_run(longer + 1, 2, 64, 65000), 2);
    /* The segment and byte limits. */
    assert_int_equal(udpgso_run(same, 4, 3, 65000), 3);
    assert_int_equal(udpgso_run(same, 4, 64, 3000), 2);
    assert_int_equal(udpgso_run(same, 4, 64, 1000), 1); /* alone even when too big */
    size_t many[100];
    for (size_t i = 0; i < 100; i++)
        many[i] = 1000;
    assert_int_equal(udpgso_run(many, 100, UDPGSO_QUEUE_MAX, UDPGSO_MAX_BYTES), 64);
    assert_int_equal(udpgso_run(many, 100, 100, UDPGSO_MAX_BYTES), 65);
}

static void test_queue(void **state)
{
    (void)state;
    udpgso_queue_t q = {0};
    uint8_t d[1500];
    memset(d, 7, sizeof(d));
    assert_int_equal(udpgso_queue_add(&q, d, 0), BL_EINVAL);
    assert_int_equal(udpgso_queue_add(&q, NULL, 10), BL_EINVAL);
    assert_int_equal(udpgso_queue_add(&q, d, UDPGSO_MAX_BYTES + 1), BL_EINVAL);
    for (size_t i = 0; i < UDPGSO_QUEUE_MAX; i++) {
        assert_false(udpgso_queue_full(&q));
        d[0] = (uint8_t)i;
        assert_int_equal(udpgso_queue_add(&q, d, 1000 + i), 0);
    }
    assert_true(udpgso_queue_full(&q));
    assert_int_equal(udpgso_queue_add(&q, d, 10), BL_ETOOBIG);
    /* Back to back, in order. */
    size_t off = 0;
    for (size_t i = 0; i < q.n; i++) {
        assert_int_equal(q.len[i], 1000 + i);
        assert_int_equal(q.buf[off], (uint8_t)i);
        off += q.len[i];
    }
    assert_int_equal(q.used, off);
    udpgso_queue_clear(&q);
    assert_int_equal(q.n, 0);
    assert_int_equal(udpgso_queue_add(&q, d, 10), 0);
    udpgso_queue_free(&q);
    assert_null(q.buf);
}

static int bound_socket(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof(*a)), 0);
    socklen_t l = sizeof(*a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)a, &l), 0);
    struct timeval tv = {.tv_sec = 5};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    return fd;
}

/* 20 datagrams of 1,100 bytes and one of 300 in one send: the receiver reads 21
 * datagrams of those sizes, in order, each with its own content. */
static void test_segmented_send(void **state)
{
    (void)state;
    struct sockaddr_in sa, ra;
    int s = bound_socket(&sa), r = bound_socket(&ra);
    uint8_t buf[20 * 1100 + 300];
    for (size_t i = 0; i < 21; i++)
        memset(buf + i * 1100, (int)(i + 1), i < 20 ? 1100 : 300);
    if (!udpgso_supported(s)) {
        close(s);
        close(r);
        skip(); /* a kernel without UDP_SEGMENT: ice.c sends through libnice */
    }
    assert_int_equal(udpgso_send(s, (struct sockaddr *)&ra, sizeof(ra), buf, sizeof(buf), 1100), 0);
    for (size_t i = 0; i < 21; i++) {
        uint8_t in[2000];
        ssize_t n = recv(r, in, sizeof(in), 0);
        assert_int_equal(n, i < 20 ? 1100 : 300);
        for (ssize_t k = 0; k < n; k++)
            assert_int_equal(in[k], (uint8_t)(i + 1));
    }
    /* And a plain one (seg 0). */
    assert_int_equal(udpgso_send(s, (struct sockaddr *)&ra, sizeof(ra), buf, 500, 0), 0);
    uint8_t in[2000];
    assert_int_equal(recv(r, in, sizeof(in), 0), 500);
    close(s);
    close(r);
}

int main(void)
{
    fixture_env(LOG_LVL_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run),
        cmocka_unit_test(test_queue),
        cmocka_unit_test(test_segmented_send),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
