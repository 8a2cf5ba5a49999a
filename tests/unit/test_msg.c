/* SPDX-License-Identifier: MIT */
/* test_msg.c - msg_size: what a message waiting for a broker holds, counted by the
 * backpressure of messages from peers (site_in.c), properties included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "msg.h"

static void test_size_counts_everything(void **state)
{
    (void)state;
    bl_msg_t *m = msg_new();
    assert_int_equal(msg_size(m), 0);
    assert_int_equal(msg_size(NULL), 0);
    assert_int_equal(msg_set_topic(m, "a/b"), 0);
    assert_int_equal(msg_size(m), 4);
    assert_int_equal(msg_set_payload(m, "12345", 5), 0);
    assert_int_equal(msg_size(m), 9);
    m->content_type = strdup("ct");
    m->response_topic = strdup("r");
    m->correlation = malloc(7);
    m->correlation_len = 7;
    assert_int_equal(msg_size(m), 9 + 3 + 2 + 7);

    /* 100 user properties of 1000 bytes each: about 100 kB beyond a 5-byte payload. */
    char big[1001];
    memset(big, 'v', 1000);
    big[1000] = '\0';
    for (int i = 0; i < 100; i++)
        assert_int_equal(msg_add_user_prop(m, "k", big), 0);
    size_t n = msg_size(m);
    assert_true(n >= 21 + 100 * (2 + 1001));
    assert_true(n <= 21 + 100 * (2 + 1001 + sizeof(msg_user_prop_t)));
    bl_msg_t *d = msg_dup(m);
    assert_int_equal(msg_size(d), n);
    msg_free(d);
    msg_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_counts_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
