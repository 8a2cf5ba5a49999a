/* SPDX-License-Identifier: MIT */
/* Unit tests for echo.c: our own publishes are recognised when they come back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "echo.h"

static void test_key(void **state)
{
    (void)state;
    char *a = echo_key("t/x", (const uint8_t *)"hello", 5);
    char *b = echo_key("t/x", (const uint8_t *)"hello", 5);
    char *c = echo_key("t/x", (const uint8_t *)"hellp", 5);
    char *d = echo_key("t/y", (const uint8_t *)"hello", 5);
    char *e = echo_key("t/x", NULL, 0);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_string_not_equal(a, d);
    assert_non_null(e);
    assert_true(strncmp(a, "t/x\x1f", 4) == 0);
    /* topic, separator, 32 lower-case hex digits of the digest */
    assert_int_equal(strlen(a), 4 + 32);
    assert_int_equal(strspn(a + 4, "0123456789abcdef"), 32);
    free(a), free(b), free(c), free(d), free(e);
}

/* Identical messages in flight at once are matched oldest first. */
static void test_fifo_and_token(void **state)
{
    (void)state;
    echo_t *e = echo_new();
    char *k = echo_key("t", (const uint8_t *)"same", 4);
    echo_add(e, k, "alpha", 1, 11, NULL, false);
    echo_add(e, k, "alpha", 2, 12, NULL, false);
    echo_add(e, k, "bravo", 7, 13, NULL, false);
    assert_int_equal(echo_count(e), 3);
    assert_int_equal(echo_by_token(e, 12)->seq, 2);
    assert_null(echo_by_token(e, 99));
    assert_null(echo_by_token(e, 0));
    echo_rec_t *r = echo_take(e, k);
    assert_int_equal(r->seq, 1);
    assert_null(echo_by_token(e, 11)); /* taken records are gone from the token index */
    echo_rec_free(r);
    r = echo_take(e, k);
    assert_int_equal(r->seq, 2);
    echo_rec_free(r);
    r = echo_take(e, k);
    assert_string_equal(r->origin, "bravo");
    echo_rec_free(r);
    assert_null(echo_take(e, k));
    assert_int_equal(echo_count(e), 0);
    free(k);
    echo_free(e);
}

static bool pick_recovered(const echo_rec_t *r, void *ud)
{
    (void)ud;
    return r->recovered;
}

static void count_done(echo_rec_t *r, void *ud)
{
    (*(int *)ud)++;
    echo_rec_free(r);
}

static void test_sweep(void **state)
{
    (void)state;
    echo_t *e = echo_new();
    echo_add(e,
             "a\x1f"
             "00",
             "alpha", 1, 0, NULL, true);
    echo_add(e,
             "a\x1f"
             "00",
             "alpha", 2, 5, NULL, false);
    echo_add(e,
             "b\x1f"
             "00",
             "alpha", 3, 0, NULL, true);
    int n = 0;
    echo_sweep(e, pick_recovered, count_done, &n);
    assert_int_equal(n, 2);
    assert_int_equal(echo_count(e), 1);
    assert_int_equal(echo_by_token(e, 5)->seq, 2);
    assert_null(echo_take(e, "b\x1f"
                             "00"));
    echo_rec_t *r = echo_take(e, "a\x1f"
                                 "00");
    assert_int_equal(r->seq, 2);
    echo_rec_free(r);
    echo_free(e); /* frees nothing twice (ASan) */
}

/* At-least-once: a record ends at its PUBACK, found by token, whatever its place among
 * identical messages. */
static void test_take_token(void **state)
{
    (void)state;
    echo_t *e = echo_new();
    char *k = echo_key("t", (const uint8_t *)"same", 4);
    echo_add(e, k, "a", 1, 11, NULL, false);
    echo_add(e, k, "a", 2, 12, NULL, false);
    echo_add(e, k, "a", 3, 13, NULL, false);
    echo_rec_t *r = echo_take_token(e, 12);
    assert_non_null(r);
    assert_int_equal(r->seq, 2);
    echo_rec_free(r);
    assert_null(echo_take_token(e, 12));
    assert_null(echo_take_token(e, 99));
    assert_int_equal(echo_count(e), 2);
    r = echo_take(e, k); /* the others keep their order */
    assert_int_equal(r->seq, 1);
    echo_rec_free(r);
    r = echo_take_token(e, 13);
    assert_int_equal(r->seq, 3);
    echo_rec_free(r);
    assert_int_equal(echo_count(e), 0);
    assert_null(echo_take(e, k));
    free(k);
    echo_free(e);
}

/* At-least-once records carry no key: found by token only, never by an echo, and still
 * swept and freed. */
static void test_keyless(void **state)
{
    (void)state;
    echo_t *e = echo_new();
    assert_null(echo_add(e, NULL, "a", 1, 0, NULL, false)); /* neither key nor token */
    assert_non_null(echo_add(e, NULL, "a", 1, 21, NULL, false));
    assert_non_null(echo_add(e, NULL, "a", 2, 22, NULL, true));
    assert_non_null(echo_add(e, NULL, "a", 3, 23, NULL, false));
    char *k = echo_key("t", (const uint8_t *)"x", 1);
    assert_null(echo_take(e, k));
    free(k);
    echo_rec_t *r = echo_take_token(e, 21);
    assert_non_null(r);
    assert_null(r->key);
    assert_int_equal(r->seq, 1);
    echo_rec_free(r);
    int n = 0;
    echo_sweep(e, pick_recovered, count_done, &n);
    assert_int_equal(n, 1);
    assert_null(echo_by_token(e, 22));
    assert_int_equal(echo_count(e), 1);
    echo_free(e); /* record 23 is left: no leak, no double free (ASan) */
}

/* Only records with a key wait for an echo: with none of them, no local message can be
 * one, whatever key-less records (QoS 0, at-least-once) are in flight. */
static void test_waiting(void **state)
{
    (void)state;
    echo_t *e = echo_new();
    assert_false(echo_waiting(e));
    assert_non_null(echo_add(e, NULL, "a", 0, 1, NULL, false));
    assert_false(echo_waiting(e));
    char *k = echo_key("t", (const uint8_t *)"x", 1);
    assert_non_null(echo_add(e, k, "a", 5, 2, NULL, false));
    assert_true(echo_waiting(e));
    echo_rec_free(echo_take(e, k));
    assert_false(echo_waiting(e));
    assert_int_equal(echo_count(e), 1);
    free(k);
    echo_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),     cmocka_unit_test(test_fifo_and_token),
        cmocka_unit_test(test_sweep),   cmocka_unit_test(test_take_token),
        cmocka_unit_test(test_keyless), cmocka_unit_test(test_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
