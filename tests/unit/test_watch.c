/* SPDX-License-Identifier: MIT */
/* test_watch.c - a condition that lasts is said after a while, then again every so often,
 * and its end once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "watch.h"

static void test_cadence(void **st)
{
    (void)st;
    watch_cond_t c = {0};
    const int64_t after = 60000, every = 300000;
    assert_int_equal(watch_step(&c, false, 1000, after, every), WATCH_QUIET);
    assert_int_equal(watch_step(&c, true, 2000, after, every), WATCH_QUIET);
    assert_int_equal(watch_step(&c, true, 61999, after, every), WATCH_QUIET);
    assert_int_equal(watch_step(&c, true, 62000, after, every), WATCH_SAY);
    assert_int_equal(c.bad_since, 2000);
    assert_int_equal(watch_step(&c, true, 72000, after, every), WATCH_QUIET);
    assert_int_equal(watch_step(&c, true, 361999, after, every), WATCH_QUIET);
    assert_int_equal(watch_step(&c, true, 362000, after, every), WATCH_SAY);
    assert_int_equal(watch_step(&c, false, 370000, after, every), WATCH_OVER);
    assert_int_equal(watch_step(&c, false, 380000, after, every), WATCH_QUIET);
}

static void test_short_spell_silent(void **st)
{
    (void)st;
    watch_cond_t c = {0};
    assert_int_equal(watch_step(&c, true, 1000, 60000, 300000), WATCH_QUIET);
    assert_int_equal(watch_step(&c, false, 30000, 60000, 300000), WATCH_QUIET);
    /* a new spell counts from its own start */
    assert_int_equal(watch_step(&c, true, 40000, 60000, 300000), WATCH_QUIET);
    assert_int_equal(watch_step(&c, true, 99999, 60000, 300000), WATCH_QUIET);
    assert_int_equal(watch_step(&c, true, 100000, 60000, 300000), WATCH_SAY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cadence),
                                       cmocka_unit_test(test_short_spell_silent)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
