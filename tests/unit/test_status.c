/* SPDX-License-Identifier: MIT */
/* test_status.c - the status model rendered: JSON (control socket, status topics), the
 * table of `brokerless status`, and the Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "fixture.h"
#include "metrics.h"
#include "status.h"

static void sample(status_site_t *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "home");
    s->started_ms = 1000000;
    s->now_ms = 1000000 + 3725000; /* 1h02m05s later */
    s->local_connected = true;
    s->local_in = 42;
    s->n_peers = 2;
    s->peers = g_new0(status_peer_t, 2);
    status_peer_t *p = &s->peers[0];
    snprintf(p->name, sizeof(p->name), "cabin");
    p->state = "open";
    p->since_ms = s->now_ms - 65000;
    snprintf(p->path, sizeof(p->path), "srflx");
    status_split_pair("198.19.0.2:5000 <-> 198.18.0.12:40001", p->local_addr, sizeof(p->local_addr),
                      p->remote_addr, sizeof(p->remote_addr));
    p->rtt_ms = 12;
    p->msgs_out = 1203;
    p->bytes_out = 3 * 1024 * 1024;
    p->msgs_in = 99;
    p->bytes_in = 2048;
    p->queued = 7;
    p->drops[STATUS_DROP_QUEUE_FULL] = 3;
    p->link_opens = 2;
    p->link_failures = 1;
    snprintf(p->last_error, sizeof(p->last_error), "consent \"lost\"");
    p = &s->peers[1];
    snprintf(p->name, sizeof(p->name), "office");
    p->state = "signalling";
}

static void test_split_pair(void **st)
{
    (void)st;
    char a[64], b[64];
    status_split_pair("1.2.3.4:5 <-> [::1]:6", a, sizeof(a), b, sizeof(b));
    assert_string_equal(a, "1.2.3.4:5");
    assert_string_equal(b, "[::1]:6");
    status_split_pair("", a, sizeof(a), b, sizeof(b));
    assert_string_equal(a, "");
    assert_string_equal(b, "");
}

static void test_json(void **st)
{
    (void)st;
    status_site_t s;
    sample(&s);
    cJSON *j = status_json(&s);
    char *text = cJSON_PrintUnformatted(j);
    FIXTURE_CONTAINS(text, "\"site\":\"home\"",
                     "\"local\":\"198.19.0.2:5000\",\"remote\":\"198.18.0.12:40001\"",
                     "\"queue_full\":3", "\"last_error\":\"consent \\\"lost\\\"\"");
    cJSON_free(text);
    char *table = status_table(j);
    FIXTURE_CONTAINS(table, "site home (brokerless ", "up 1h02m", "cabin", "open 1m05s",
                     "srflx 198.19.0.2:5000 <-> 198.18.0.12:40001", "12 ms", "1203 / 3.0 MiB",
                     "queue_full 3", "last error: consent \"lost\"", "office");
    g_free(table);
    cJSON_Delete(j);
    /* a peer topic keeps the keys it always had */
    cJSON *pj = status_peer_json(&s.peers[0]);
    text = cJSON_PrintUnformatted(pj);
    FIXTURE_CONTAINS(text, "\"state\":\"open\"", "\"path\":\"srflx\"", "\"queued\":7");
    cJSON_free(text);
    cJSON_Delete(pj);
    status_site_clear(&s);
    /* an answer with fields missing still renders */
    cJSON *thin = cJSON_Parse("{\"peers\":[{\"name\":\"x\"}]}");
    table = status_table(thin);
    assert_non_null(strstr(table, "x"));
    g_free(table);
    cJSON_Delete(thin);
}

static void test_metrics(void **st)
{
    (void)st;
    status_site_t s;
    sample(&s);
    char *m = metrics_render(&s);
    FIXTURE_CONTAINS(
        m, "# TYPE brokerless_peer_messages_sent_total counter\n",
        "brokerless_peer_messages_sent_total{peer=\"cabin\"} 1203\n",
        "brokerless_peer_rtt_seconds{peer=\"cabin\"} 0.012000\n",
        "brokerless_peer_up{peer=\"office\"} 0\n",
        "brokerless_peer_state{peer=\"office\",state=\"signalling\"} 1\n",
        "brokerless_peer_path{peer=\"cabin\",path=\"srflx\"} 1\n",
        "brokerless_peer_dropped_messages_total{peer=\"cabin\",reason=\"queue_full\"} 3\n",
        "brokerless_local_messages_total 42\n");
    /* every line is a comment or "name{labels} value" */
    char **lines = g_strsplit(m, "\n", -1);
    for (char **l = lines; *l && **l; l++)
        assert_true(**l == '#' || g_regex_match_simple(
                                      "^[a-z_]+(\\{[a-z_]+=\"[^\"]*\"(,[a-z_]+=\"[^\"]*\")*\\})? "
                                      "-?[0-9.]+$",
                                      *l, 0, 0));
    g_strfreev(lines);
    g_free(m);
    status_site_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_split_pair),
                                       cmocka_unit_test(test_json), cmocka_unit_test(test_metrics)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
