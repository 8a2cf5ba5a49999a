/* SPDX-License-Identifier: MIT */
/* test_ctlproto.c - the control socket's requests: every command, and garbage refused
 * with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "ctlproto.h"

static int parse(const char *s, ctl_req_t *r, char *err)
{
    return ctlproto_parse((const uint8_t *)s, strlen(s), r, err, 256);
}

static void test_commands(void **st)
{
    (void)st;
    ctl_req_t r;
    char err[256];
    assert_int_equal(parse("status", &r, err), 0);
    assert_int_equal(r.cmd, CTL_STATUS);
    assert_int_equal(parse("status\r", &r, err), 0);
    assert_int_equal(parse("reload", &r, err), 0);
    assert_int_equal(r.cmd, CTL_RELOAD);
    assert_int_equal(parse("ping cabin-2.b_x", &r, err), 0);
    assert_int_equal(r.cmd, CTL_PING);
    assert_string_equal(r.peer, "cabin-2.b_x");
    assert_int_equal(parse("forget old", &r, err), 0);
    assert_int_equal(r.cmd, CTL_FORGET);
    char *line = ctlproto_request(&r);
    assert_string_equal(line, "forget old\n");
    g_free(line);
}

static void test_garbage(void **st)
{
    (void)st;
    ctl_req_t r;
    char err[256];
    const char *bad[] = {"",         "stat",     "status now", "ping",   "ping ",
                         "ping a/b", "ping a b", "reload x",   "STATUS", "forget ../x"};
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        err[0] = '\0';
        assert_int_equal(parse(bad[i], &r, err), BL_EINVAL);
        assert_true(err[0] != '\0');
    }
    uint8_t bin[] = {'s', 't', 0, 'x'};
    assert_int_equal(ctlproto_parse(bin, sizeof(bin), &r, err, sizeof(err)), BL_EINVAL);
    assert_non_null(strstr(err, "0x00"));
    char big[CTL_MAX_REQUEST + 10];
    memset(big, 'a', sizeof(big));
    assert_int_equal(ctlproto_parse((uint8_t *)big, sizeof(big), &r, err, sizeof(err)), BL_ETOOBIG);
    assert_non_null(strstr(err, "longer than"));
}

static void test_answers(void **st)
{
    (void)st;
    char *e = ctlproto_error("no \"such\" peer");
    assert_string_equal(e, "{\"ok\":false,\"error\":\"no \\\"such\\\" peer\"}\n");
    g_free(e);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rtt_ms", 1.5);
    char *ok = ctlproto_ok(o);
    assert_string_equal(ok, "{\"rtt_ms\":1.5,\"ok\":true}\n");
    g_free(ok);
    char path[128];
    assert_int_equal(ctlproto_socket_path("/var/lib/brokerless", path, sizeof(path)), 0);
    assert_string_equal(path, "/var/lib/brokerless/control.sock");
    char longdir[200];
    memset(longdir, 'd', sizeof(longdir) - 1);
    longdir[sizeof(longdir) - 1] = '\0';
    assert_int_equal(ctlproto_socket_path(longdir, path, sizeof(path)), BL_ETOOBIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_commands),
                                       cmocka_unit_test(test_garbage),
                                       cmocka_unit_test(test_answers)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
