/* SPDX-License-Identifier: MIT */
/* Unit tests for router.c: rule parsing, MQTT 5 4.7 matching, remapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "router.h"

static void parse_ok(const char *line, route_rule_t *r)
{
    char err[256] = "";
    int rc = router_rule_parse(line, r, err, sizeof(err));
    if (rc != 0)
        fail_msg("\"%s\" refused: %s", line, err);
}

/* The rule is refused and the reason contains `want`. */
static void parse_bad(const char *line, const char *want)
{
    char err[256] = "";
    route_rule_t r = {0};
    assert_int_equal(router_rule_parse(line, &r, err, sizeof(err)), BL_EINVAL);
    if (!strstr(err, want))
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", line, err, want);
    assert_null(r.pattern);
}

static void test_parse_defaults(void **state)
{
    (void)state;
    route_rule_t r;
    parse_ok("sensors/#", &r);
    assert_string_equal(r.pattern, "sensors/#");
    assert_int_equal(r.dir, ROUTE_BOTH); /* brokerless default, not mosquitto's "out" */
    assert_int_equal(r.qos, 2);
    assert_string_equal(r.local_prefix, "");
    assert_string_equal(r.remote_prefix, "");
    router_rule_clear(&r);
    assert_null(r.pattern);

    parse_ok("  a/+/c   in  ", &r);
    assert_string_equal(r.pattern, "a/+/c");
    assert_int_equal(r.dir, ROUTE_IN);
    assert_int_equal(r.qos, 2);
    router_rule_clear(&r);

    parse_ok("x\tout\t0", &r);
    assert_int_equal(r.dir, ROUTE_OUT);
    assert_int_equal(r.qos, 0);
    router_rule_clear(&r);
}

static void test_parse_prefixes(void **state)
{
    (void)state;
    route_rule_t r;
    parse_ok("# both 1 home/ site/home/", &r);
    assert_int_equal(r.qos, 1);
    assert_string_equal(r.local_prefix, "home/");
    assert_string_equal(r.remote_prefix, "site/home/");
    router_rule_clear(&r);

    parse_ok("t/# in 2 \"\" remote/", &r);
    assert_string_equal(r.local_prefix, "");
    assert_string_equal(r.remote_prefix, "remote/");
    router_rule_clear(&r);

    parse_ok("t out 1 \"l/\" \"\"", &r);
    assert_string_equal(r.local_prefix, "l/");
    assert_string_equal(r.remote_prefix, "");
    router_rule_clear(&r);

    parse_ok("$SYS/# IN 0", &r); /* direction is case-insensitive */
    assert_int_equal(r.dir, ROUTE_IN);
    router_rule_clear(&r);
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const struct {
        const char *line, *want; /* refused, with `want` in the reason */
    } bad[] = {
        {"", "empty rule"},
        {"   ", "empty rule"},
        {"a sideways", "direction \"sideways\" is not in, out or both"},
        {"a in 3", "QoS \"3\" is not 0, 1 or 2"},
        {"a in -1", "QoS \"-1\""},
        {"a in 01", "QoS \"01\""},
        {"a in x", "QoS \"x\""},
        {"a in 1 lp/", "given without a remote prefix"},
        {"a in 1 lp/ rp/ extra", "too many fields"},
        {"a in 1 lp/ rp/ extra", "containing spaces is not supported"},
        {"\"a b\" in", "containing spaces is not supported"},
        {"a in 1 \"x y\" z", "unbalanced quote"},
        {"\"\" in", "pattern \"\" is empty"},
        {"a/#/b", "'#' that is not the whole last level"},
        {"a#", "'#' that is not the whole last level"},
        {"a/b+", "'+' that is not a whole level"},
        {"+a/b", "'+' that is not a whole level"},
        {"# in 1 a/+/ b/", "local prefix \"a/+/\" must not contain '+' or '#'"},
        {"# in 1 a/ b/#", "remote prefix \"b/#\" must not contain '+' or '#'"},
        {"# in 1 home site/", "local prefix \"home\" followed by pattern \"#\""},
        {"+ in 1 a/ b", "remote prefix \"b\" followed by pattern \"+\""},
        {"a\x01"
         "b",
         "control characters"},
        {"\xff", "UTF-8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i].line, bad[i].want);

    char *big = malloc(70000);
    memset(big, 'a', 69999);
    big[69999] = '\0';
    parse_bad(big, "longer than 65535 bytes");
    free(big);

    char err[64];
    route_rule_t r;
    assert_int_equal(router_rule_parse(NULL, &r, err, sizeof(err)), BL_EINVAL);
    /* A tiny error buffer truncates, never overflows. */
    assert_int_equal(router_rule_parse("a sideways", &r, err, 4), BL_EINVAL);
    assert_int_equal(strlen(err), 3);
}

static void test_filter_and_topic_valid(void **state)
{
    (void)state;
    static const struct {
        bool (*valid)(const char *);
        const char *s;
        bool ok;
    } t[] = {
        {router_filter_valid, "#", true},
        {router_filter_valid, "+", true},
        {router_filter_valid, "+/+/#", true},
        {router_filter_valid, "/", true},
        {router_filter_valid, "a//b", true},
        {router_filter_valid, "", false},
        {router_filter_valid, NULL, false},
        {router_filter_valid, "a/#/", false},
        {router_filter_valid, "##", false},
        {router_filter_valid, "a++", false},

        {router_topic_valid, "a/b", true},
        {router_topic_valid, "/", true},
        {router_topic_valid, "$SYS/x", true},
        {router_topic_valid, "caf\xc3\xa9", true},
        {router_topic_valid, "", false},
        {router_topic_valid, "a/+", false},
        {router_topic_valid, "a/#", false},
        {router_topic_valid, "a\x7f", false},
        {router_topic_valid, "\xc0\xaf", false},     /* overlong '/' */
        {router_topic_valid, "\xed\xa0\x80", false}, /* UTF-16 surrogate */
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (t[i].valid(t[i].s) != t[i].ok)
            fail_msg("%s(\"%s\") should be %s",
                     t[i].valid == router_filter_valid ? "router_filter_valid"
                                                       : "router_topic_valid",
                     t[i].s ? t[i].s : "(null)", t[i].ok ? "true" : "false");
}

static void test_matching_table(void **state)
{
    (void)state;
    static const struct {
        const char *filter, *topic;
        bool match;
    } t[] = {
        {"a/b", "a/b", true},
        {"a/b", "a/c", false},
        {"a/b", "a/b/c", false},
        {"a/b/c", "a/b", false},
        {"a/b", "A/b", false}, /* case-sensitive */
        {"#", "a", true},
        {"#", "a/b/c", true},
        {"#", "/", true},
        {"a/#", "a", true}, /* '#' includes the parent level */
        {"a/#", "a/", true},
        {"a/#", "a/b/c", true},
        {"a/#", "ab", false},
        {"a/#", "b/a", false},
        {"a/b/#", "a", false},
        {"+", "a", true},
        {"+", "a/b", false},
        {"+", "/", false},
        {"+/+", "/", true}, /* two empty levels */
        {"/+", "/a", true},
        {"/+", "a", false},
        {"a/+", "a/", true}, /* '+' matches an empty level */
        {"a/+", "a", false},
        {"a/+/c", "a/b/c", true},
        {"a/+/c", "a//c", true},
        {"a/+/c", "a/b/d", false},
        {"+/+/#", "a/b", true},
        {"+/#", "a", true},
        {"a//b", "a//b", true},
        {"a//b", "a/b", false},
        {"#", "$SYS/uptime", false}, /* 4.7.2 */
        {"+/uptime", "$SYS/uptime", false},
        {"+", "$SYS", false},
        {"$SYS/#", "$SYS/uptime", true},
        {"$SYS/+", "$SYS/uptime", true},
        {"a/$x", "a/$x", true},
        {"a/#", "a/$x", true}, /* '$' only matters at the start */
        {"caf\xc3\xa9/+", "caf\xc3\xa9/x", true},
        {"", "a", false},
        {"a", "", false},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (router_topic_matches(t[i].filter, t[i].topic) != t[i].match)
            fail_msg("filter \"%s\" topic \"%s\": expected %s", t[i].filter, t[i].topic,
                     t[i].match ? "match" : "no match");
    }
    assert_false(router_topic_matches(NULL, "a"));
    assert_false(router_topic_matches("a", NULL));
}

static route_rule_t *rules_of(const char *const *lines, size_t n)
{
    route_rule_t *r = calloc(n, sizeof(*r));
    for (size_t i = 0; i < n; i++)
        parse_ok(lines[i], &r[i]);
    return r;
}

static void rules_free(route_rule_t *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        router_rule_clear(&r[i]);
    free(r);
}

/* map (router_map_out or router_map_in, named dir) takes `from` at QoS qin to `to` at
 * qos; to NULL: the rules do not carry it. */
typedef int (*map_fn_t)(const route_rule_t *, size_t, const char *, int, char **, int *);
static void expect_map(const char *dir, map_fn_t map, const route_rule_t *r, size_t n,
                       const char *from, int qin, const char *to, int qos)
{
    char *got = NULL;
    int q = -1;
    int rc = map(r, n, from, qin, &got, &q);
    if (!to) {
        assert_int_equal(rc, 0);
        assert_null(got);
        return;
    }
    if (rc != 1)
        fail_msg("%s \"%s\": rc %d, expected \"%s\"", dir, from, rc, to);
    assert_string_equal(got, to);
    assert_int_equal(q, qos);
    free(got);
}
/* expect_out(r, n, local, qin, wire, qos), expect_in(r, n, wire, qin, local, qos) */
#define expect_out(...) expect_map("out", router_map_out, __VA_ARGS__)
#define expect_in(...) expect_map("in", router_map_in, __VA_ARGS__)

static void test_remap_both_ways(void **state)
{
    (void)state;
    const char *lines[] = {"# both 2 home/ sites/home/"};
    route_rule_t *r = rules_of(lines, 1);
    expect_out(r, 1, "home/temp", 1, "sites/home/temp", 1);
    expect_out(r, 1, "home/a/b/c", 2, "sites/home/a/b/c", 2);
    expect_out(r, 1, "other/temp", 1, NULL, 0);
    expect_out(r, 1, "home", 1, NULL, 0); /* lacks the prefix "home/" */
    expect_in(r, 1, "sites/home/temp", 0, "home/temp", 0);
    expect_in(r, 1, "home/temp", 0, NULL, 0);
    rules_free(r, 1);

    const char *lines2[] = {"temp/+ out 1 \"\" cabin/", "cmd/# in 2 remote/ \"\""};
    r = rules_of(lines2, 2);
    expect_out(r, 2, "temp/kitchen", 2, "cabin/temp/kitchen", 1);
    expect_out(r, 2, "temp/a/b", 2, NULL, 0);
    expect_in(r, 2, "cmd/heat/on", 1, "remote/cmd/heat/on", 1);
    expect_in(r, 2, "cmd", 1, "remote/cmd", 1); /* parent level via '#' */
    rules_free(r, 2);
}

static void test_qos_cap(void **state)
{
    (void)state;
    const char *lines[] = {"q0/# both 0", "q1/# both 1", "q2/# both 2"};
    route_rule_t *r = rules_of(lines, 3);
    for (int q = 0; q <= 2; q++) {
        expect_out(r, 3, "q0/x", q, "q0/x", 0);
        expect_out(r, 3, "q1/x", q, "q1/x", q < 1 ? q : 1);
        expect_out(r, 3, "q2/x", q, "q2/x", q);
        expect_in(r, 3, "q1/x", q, "q1/x", q < 1 ? q : 1);
    }
    char *t = NULL;
    int qos;
    assert_int_equal(router_map_out(r, 3, "q1/x", 3, &t, &qos), BL_EINVAL);
    assert_int_equal(router_map_out(r, 3, "q1/x", -1, &t, &qos), BL_EINVAL);
    assert_null(t);
    rules_free(r, 3);
}

static void test_direction_filtering(void **state)
{
    (void)state;
    const char *lines[] = {"in/# in", "out/# out", "both/# both"};
    route_rule_t *r = rules_of(lines, 3);
    expect_out(r, 3, "in/x", 1, NULL, 0);
    expect_out(r, 3, "out/x", 1, "out/x", 1);
    expect_out(r, 3, "both/x", 1, "both/x", 1);
    expect_in(r, 3, "in/x", 1, "in/x", 1);
    expect_in(r, 3, "out/x", 1, NULL, 0);
    expect_in(r, 3, "both/x", 1, "both/x", 1);

    char *f = router_local_filter(&r[0]);
    assert_null(f); /* nothing to subscribe for an "in" rule */
    f = router_local_filter(&r[1]);
    assert_string_equal(f, "out/#");
    free(f);
    rules_free(r, 3);

    route_rule_t p;
    parse_ok("+/temp both 1 home/ x/", &p);
    f = router_local_filter(&p);
    assert_string_equal(f, "home/+/temp");
    free(f);
    router_rule_clear(&p);
}

static void test_first_rule_wins(void **state)
{
    (void)state;
    const char *lines[] = {"a/secret in", "a/# out 0 \"\" first/", "a/# out 2 \"\" second/"};
    route_rule_t *r = rules_of(lines, 3);
    /* An "in" rule does not shadow out-going messages. */
    expect_out(r, 3, "a/secret", 2, "first/a/secret", 0);
    expect_out(r, 3, "a/b", 2, "first/a/b", 0);
    rules_free(r, 3);
}

static void test_dollar_and_bad_topics(void **state)
{
    (void)state;
    const char *lines[] = {"# both"};
    route_rule_t *r = rules_of(lines, 1);
    /* A peer cannot reach $SYS through a "#" rule, nor we send ours. */
    expect_in(r, 1, "$SYS/broker/uptime", 1, NULL, 0);
    expect_out(r, 1, "$SYS/broker/uptime", 1, NULL, 0);
    char *t = NULL;
    int q;
    assert_int_equal(router_map_in(r, 1, "a/+", 1, &t, &q), BL_EINVAL);
    assert_int_equal(router_map_in(r, 1, "", 1, &t, &q), BL_EINVAL);
    assert_int_equal(router_map_in(r, 1, "a\x01", 1, &t, &q), BL_EINVAL);
    assert_int_equal(router_map_in(r, 1, NULL, 1, &t, &q), BL_EINVAL);
    assert_int_equal(router_map_out(r, 0, "a", 1, &t, &q), 0);
    rules_free(r, 1);

    /* A prefix-only topic would map to "": refused, not published. */
    const char *lines2[] = {"# out 1 home/ \"\""};
    r = rules_of(lines2, 1);
    assert_int_equal(router_map_out(r, 1, "home/", 1, &t, &q), BL_EINVAL);
    assert_null(t);
    expect_out(r, 1, "home/x", 1, "x", 1);
    rules_free(r, 1);
}

/* Issue 12 item 2: with "# in 2 \"\" cabin/" a peer's wire topic "cabin/$CONTROL/x"
 * would become our "$CONTROL/x", published with the daemon's broker rights. A rule maps
 * to a '$' topic only when its local side starts with a literal '$'. */
static void test_dollar_through_prefixes(void **state)
{
    (void)state;
    char *t = NULL;
    int q;
    const char *lines[] = {"# in 2 \"\" cabin/"};
    route_rule_t *r = rules_of(lines, 1);
    assert_int_equal(router_map_in(r, 1, "cabin/$CONTROL/dynamic-security/v1", 1, &t, &q),
                     BL_EPERM);
    assert_int_equal(router_map_in(r, 1, "cabin/$delayed/10/x", 1, &t, &q), BL_EPERM);
    assert_int_equal(router_map_in(r, 1, "cabin/+/x", 1, &t, &q), BL_EINVAL);
    assert_null(t);
    expect_in(r, 1, "cabin/a/$b", 1, "a/$b", 1); /* '$' only matters at the start */
    expect_in(r, 1, "cabin/x", 1, "x", 1);
    rules_free(r, 1);

    /* A later rule whose local side names the '$' tree takes it; the first is passed over. */
    const char *lines2[] = {"+/x in 2 \"\" cabin/", "$SYS/# in 0 \"\" cabin/",
                            "# in 1 $share/ sites/"};
    r = rules_of(lines2, 3);
    expect_in(r, 3, "cabin/$SYS/x", 2, "$SYS/x", 0);
    expect_in(r, 3, "cabin/a/x", 2, "a/x", 2);
    expect_in(r, 3, "sites/a", 2, "$share/a", 1); /* a literal '$' local prefix */
    assert_int_equal(router_map_in(r, 3, "cabin/$other/x", 1, &t, &q), BL_EPERM);
    rules_free(r, 3);

    /* Out-going messages never start at a '$' topic through a wildcard (4.7.2). */
    const char *lines3[] = {"# out 2 \"\" cabin/"};
    r = rules_of(lines3, 1);
    expect_out(r, 1, "$SYS/x", 1, NULL, 0);
    rules_free(r, 1);
}

static void expect_reply(route_rule_t *r, size_t n, route_dir_t dir, const char *rt,
                         const char *want)
{
    char *t = rt ? strdup(rt) : NULL;
    int rc = router_map_reply(r, n, dir, &t);
    if (want) {
        assert_int_equal(rc, 1);
        assert_non_null(t);
        if (strcmp(t, want))
            fail_msg("reply %s (%s) mapped to %s, want %s", rt, dir == ROUTE_IN ? "in" : "out", t,
                     want);
    } else {
        assert_int_equal(rc, 0);
        assert_null(t);
    }
    free(t);
}

/* Issue 12 item 3: a Response Topic crosses through the rules, the reverse way. */
static void test_reply_mapping(void **state)
{
    (void)state;
    /* home's rules for its peer cabin: home's requests go out as cabin's "home/req/...";
     * cabin's replies come in on the wire as "home/reply/..." and are ours as "reply/...". */
    const char *home[] = {"req/# out 2 \"\" home/", "reply/# in 2 \"\" home/"};
    route_rule_t *r = rules_of(home, 2);
    expect_reply(r, 2, ROUTE_OUT, "reply/42", "home/reply/42");
    expect_reply(r, 2, ROUTE_OUT, "secret/x", NULL); /* no reply could ever come back */
    expect_reply(r, 2, ROUTE_OUT, NULL, NULL);
    rules_free(r, 2);

    /* cabin's rules for home: a reply published on "home/reply/..." goes back to home. A
     * response topic the out-rules do not carry back is dropped, so a peer cannot make a
     * responder here publish on any topic it likes. */
    const char *cabin[] = {"home/req/# in", "home/reply/# out"};
    r = rules_of(cabin, 2);
    expect_reply(r, 2, ROUTE_IN, "home/reply/42", "home/reply/42");
    expect_reply(r, 2, ROUTE_IN, "alarm/disarm", NULL);
    expect_reply(r, 2, ROUTE_IN, "home/req/x", NULL); /* an in-only rule carries nothing back */
    rules_free(r, 2);

    /* The '$' rule holds for the local side of a reply too. */
    const char *pre[] = {"# out 2 \"\" cabin/"};
    r = rules_of(pre, 1);
    expect_reply(r, 1, ROUTE_IN, "cabin/$CONTROL/x", NULL);
    expect_reply(r, 1, ROUTE_IN, "cabin/r/1", "r/1");
    rules_free(r, 1);

    /* With no prefixes (topic = # both) a response topic crosses as it is. */
    const char *all[] = {"#"};
    r = rules_of(all, 1);
    expect_reply(r, 1, ROUTE_OUT, "test/reply", "test/reply");
    expect_reply(r, 1, ROUTE_IN, "test/reply", "test/reply");
    expect_reply(r, 1, ROUTE_IN, "$SYS/x", NULL);
    char *t = strdup("x");
    assert_int_equal(router_map_reply(r, 1, ROUTE_BOTH, &t), BL_EINVAL);
    free(t);
    rules_free(r, 1);
}

static void test_filter_covers(void **state)
{
    (void)state;
    static const struct {
        const char *a, *b;
        bool covers;
    } cases[] = {
        {"#", "a/b", true},         {"#", "#", true},        {"a/#", "a", true},
        {"a/#", "a/b/#", true},     {"a/#", "a/+/c", true},  {"a/+", "a/b", true},
        {"a/+", "a/+", true},       {"a/+", "a/#", false},   {"a/+", "a/b/c", false},
        {"a/b", "a/+", false},      {"a/b", "a/b", true},    {"a/b", "a/c", false},
        {"+/b", "a/b", true},       {"#", "$SYS/x", false},  {"+/x", "$SYS/x", false},
        {"$SYS/#", "$SYS/x", true}, {"a/b/#", "a/#", false}, {"a/b", "a/b/c", false},
        {"a/+/#", "a/b", true},     {"a", "a/#", false},     {"+", "a", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (router_filter_covers(cases[i].a, cases[i].b) != cases[i].covers)
            fail_msg("covers(%s, %s) should be %d", cases[i].a, cases[i].b, cases[i].covers);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filter_covers),
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_prefixes),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_filter_and_topic_valid),
        cmocka_unit_test(test_matching_table),
        cmocka_unit_test(test_remap_both_ways),
        cmocka_unit_test(test_qos_cap),
        cmocka_unit_test(test_direction_filtering),
        cmocka_unit_test(test_first_rule_wins),
        cmocka_unit_test(test_dollar_and_bad_topics),
        cmocka_unit_test(test_dollar_through_prefixes),
        cmocka_unit_test(test_reply_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
