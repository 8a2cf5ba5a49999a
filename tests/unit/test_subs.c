/* SPDX-License-Identifier: MIT */
/* Unit tests for subs.c: what a site subscribes locally, and what it drops at a start
 * from the broker session an earlier run left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "subs.h"

static GPtrArray *lines(const char *const *l, size_t n)
{
    GPtrArray *a = g_ptr_array_new_with_free_func(g_free);
    for (size_t i = 0; i < n; i++)
        g_ptr_array_add(a, g_strdup(l[i]));
    return a;
}

static bool has(const GPtrArray *a, const char *s)
{
    for (guint i = 0; i < a->len; i++)
        if (!strcmp(g_ptr_array_index(a, i), s))
            return true;
    return false;
}

/* Rules of two peers: a filter covered by another is not subscribed, equal ones once. */
static void test_local_filters(void **state)
{
    (void)state;
    const char *r1[] = {"sensors/# out 1 home/ site/home/", "cmd/+ in 1", "a/b both 2"};
    const char *r2[] = {"sensors/# out 1 home/ site/home/", "a/# both 1"};
    route_rule_t rules1[3], rules2[2];
    char err[128];
    for (int i = 0; i < 3; i++)
        assert_int_equal(router_rule_parse(r1[i], &rules1[i], err, sizeof(err)), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(router_rule_parse(r2[i], &rules2[i], err, sizeof(err)), 0);
    config_peer_t peers[2] = {{.rules = rules1, .n_rules = 3}, {.rules = rules2, .n_rules = 2}};
    config_t cfg = {.peers = peers, .n_peers = 2};
    GPtrArray *f = subs_local_filters(&cfg);
    assert_int_equal(f->len, 3);
    assert_true(has(f, "home/sensors/#"));
    assert_true(has(f, "cmd/+"));
    assert_true(has(f, "a/#")); /* covers a/b */
    g_ptr_array_unref(f);
    for (int i = 0; i < 3; i++)
        router_rule_clear(&rules1[i]);
    for (int i = 0; i < 2; i++)
        router_rule_clear(&rules2[i]);
}

/* Same subscriptions as last time: nothing to drop, the record stays the same. */
static void test_plan_unchanged(void **state)
{
    (void)state;
    char *a = subs_line("t/#", 2, false), *b = subs_line("brokerless/x/sync", 1, false);
    const char *w[] = {a, b};
    GPtrArray *want = lines(w, 2);
    subs_plan_t p;
    subs_plan("2 0 t/#\n1 0 brokerless/x/sync\n", want, &p);
    assert_int_equal(p.unsubscribe->len, 0);
    assert_string_equal(p.record_now, "2 0 t/#\n1 0 brokerless/x/sync\n");
    assert_string_equal(p.record_both, p.record_now);
    subs_plan_clear(&p);
    g_ptr_array_unref(want);
    g_free(a), g_free(b);
}

/* delivery switched to at-least-once: the filter is dropped and subscribed again with
 * No Local; a rule that went away is dropped; the record keeps both until confirmed. */
static void test_plan_changed(void **state)
{
    (void)state;
    char *a = subs_line("t/#", 2, true);
    const char *w[] = {a};
    GPtrArray *want = lines(w, 1);
    subs_plan_t p;
    subs_plan("2 0 t/#\n2 0 old/+\n", want, &p);
    assert_int_equal(p.unsubscribe->len, 2);
    assert_true(has(p.unsubscribe, "t/#"));
    assert_true(has(p.unsubscribe, "old/+"));
    assert_string_equal(p.record_now, "2 1 t/#\n");
    assert_string_equal(p.record_both, "2 1 t/#\n2 0 t/#\n2 0 old/+\n");
    subs_plan_clear(&p);
    /* A crash before the broker confirmed: the next start drops the stale ones again. */
    subs_plan("2 1 t/#\n2 0 t/#\n2 0 old/+\n", want, &p);
    assert_int_equal(p.unsubscribe->len, 2);
    subs_plan_clear(&p);
    g_ptr_array_unref(want);
    g_free(a);
}

/* No record (first run of this version, a new state dir): every filter is renewed. */
static void test_plan_no_record(void **state)
{
    (void)state;
    char *a = subs_line("t/#", 2, false), *b = subs_line("s", 1, false);
    const char *w[] = {a, b};
    GPtrArray *want = lines(w, 2);
    subs_plan_t p;
    subs_plan(NULL, want, &p);
    assert_int_equal(p.unsubscribe->len, 2);
    assert_true(has(p.unsubscribe, "t/#"));
    assert_true(has(p.unsubscribe, "s"));
    assert_string_equal(p.record_now, "2 0 t/#\n1 0 s\n");
    subs_plan_clear(&p);
    g_ptr_array_unref(want);
    g_free(a), g_free(b);
}

/* Filters may hold spaces, newlines and backslashes: a record line keeps them whole. */
static void test_plan_odd_filters(void **state)
{
    (void)state;
    const char *odd = "a b/new\nline\\x/#";
    char *l = subs_line(odd, 1, false);
    assert_null(strchr(l, '\n'));
    GPtrArray *none = g_ptr_array_new();
    GString *old = g_string_new(l);
    g_string_append(old, "\ngarbage-without-spaces\n\n");
    subs_plan_t p;
    subs_plan(old->str, none, &p);
    assert_int_equal(p.unsubscribe->len, 1);
    assert_string_equal(g_ptr_array_index(p.unsubscribe, 0), odd);
    subs_plan_clear(&p);
    g_string_free(old, TRUE);
    g_ptr_array_unref(none);
    g_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_filters),    cmocka_unit_test(test_plan_unchanged),
        cmocka_unit_test(test_plan_changed),     cmocka_unit_test(test_plan_no_record),
        cmocka_unit_test(test_plan_odd_filters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
