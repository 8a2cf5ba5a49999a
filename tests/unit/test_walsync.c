/* SPDX-License-Identifier: MIT */
/* Unit tests for walsync.c: a log file that changes is flushed by the helper thread once
 * kicked, one that does not is left alone, and a file that appears later is picked up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "fixture.h"
#include "walsync.h"

#define TICK_MS 20

/* Wait (up to 5 s) for the flush count to pass `than`. */
static unsigned wait_more(walsync_t *w, unsigned than)
{
    for (int i = 0; i < 250 && walsync_flushes(w) <= than; i++)
        g_usleep(20000);
    return walsync_flushes(w);
}

static void append(const char *path, const char *text)
{
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void test_flushes_what_changes(void **state)
{
    (void)state;
    char *dir = fixture_tmpdir("bl-walsync");
    char *path = g_build_filename(dir, "queue.db-wal", NULL);

    walsync_t *w = walsync_start(path, TICK_MS);
    assert_non_null(w);
    walsync_kick(w);
    g_usleep(5 * TICK_MS * 1000);
    assert_int_equal(walsync_flushes(w), 0); /* no file yet: nothing to do, no error */

    append(path, "first frames");
    walsync_kick(w);
    unsigned n = wait_more(w, 0);
    assert_true(n >= 1);

    /* unchanged for many intervals, even when kicked: not flushed again */
    walsync_kick(w);
    g_usleep(10 * TICK_MS * 1000);
    n = walsync_flushes(w);
    g_usleep(10 * TICK_MS * 1000);
    assert_int_equal(walsync_flushes(w), n);

    append(path, "more frames");
    walsync_kick(w);
    assert_true(wait_more(w, n) > n);

    walsync_stop(w);
    g_free(path);
    fixture_rmdir(dir);
}

static void test_no_path(void **state)
{
    (void)state;
    assert_null(walsync_start(NULL, TICK_MS));
    assert_null(walsync_start("/nonexistent/x-wal", 0));
    walsync_stop(NULL);
    walsync_kick(NULL);
    assert_int_equal(walsync_flushes(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flushes_what_changes),
        cmocka_unit_test(test_no_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
