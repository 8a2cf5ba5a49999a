/* SPDX-License-Identifier: MIT */
/* fixture.c - shared test fixtures (fixture.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <glib/gstdio.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>

#include "cert.h"
#include "fixture.h"

static const uint8_t k_payload[] = {0x00, 0x01, 0xfe, 0xff, 0x00};
static const uint8_t k_corr[] = {0x00, 0xab, 0x00};
/* Out of order, a repeated key (order and repeats must survive), an empty key and value. */
static const char *const k_props[][2] = {{"zeta", "1"}, {"alpha", "2"}, {"zeta", "3"}, {"", ""}};

void fixture_full_msg(bl_msg_t *m, const char *topic)
{
    msg_init(m);
    m->origin = strdup("site-a");
    m->seq = 0x123456789aULL;
    assert_int_equal(msg_set_topic(m, topic), 0);
    assert_int_equal(msg_set_payload(m, k_payload, sizeof(k_payload)), 0);
    m->qos = 2;
    m->retain = true;
    m->dup = true;
    m->payload_format = 0;
    m->has_expiry = true;
    m->expiry_s = 3600;
    m->content_type = strdup("application/octet-stream");
    m->response_topic = strdup("reply/here");
    m->correlation = malloc(sizeof(k_corr));
    memcpy(m->correlation, k_corr, sizeof(k_corr));
    m->correlation_len = sizeof(k_corr);
    for (size_t i = 0; i < G_N_ELEMENTS(k_props); i++)
        assert_int_equal(msg_add_user_prop(m, k_props[i][0], k_props[i][1]), 0);
}

void fixture_check_full(const bl_msg_t *m, uint32_t expiry_slack)
{
    assert_int_equal(m->payload_len, sizeof(k_payload));
    assert_memory_equal(m->payload, k_payload, sizeof(k_payload));
    assert_int_equal(m->payload_format, 0);
    assert_true(m->has_expiry);
    assert_in_range(m->expiry_s, 3600 - expiry_slack, 3600);
    assert_string_equal(m->content_type, "application/octet-stream");
    assert_string_equal(m->response_topic, "reply/here");
    assert_int_equal(m->correlation_len, sizeof(k_corr));
    assert_memory_equal(m->correlation, k_corr, sizeof(k_corr));
    assert_int_equal(m->n_user_props, G_N_ELEMENTS(k_props));
    for (size_t i = 0; i < G_N_ELEMENTS(k_props); i++) {
        assert_string_equal(m->user_props[i].key, k_props[i][0]);
        assert_string_equal(m->user_props[i].value, k_props[i][1]);
    }
}

void fixture_assert_contains(const char *text, const char *const *want)
{
    for (; *want; want++)
        if (!strstr(text, *want))
            fail_msg("\"%s\" not in:\n%s", *want, text);
}

static gboolean on_deadline(gpointer flag)
{
    *(bool *)flag = true;
    return G_SOURCE_REMOVE;
}

bool fixture_run_until(GMainContext *ctx, fixture_cond_t cond, void *arg, unsigned ms)
{
    bool expired = false;
    GSource *t = g_timeout_source_new(ms);
    g_source_set_callback(t, on_deadline, &expired, NULL);
    g_source_attach(t, ctx);
    while (!cond(arg) && !expired)
        g_main_context_iteration(ctx, TRUE);
    g_source_destroy(t);
    g_source_unref(t);
    return cond(arg);
}

bool fixture_never(void *arg)
{
    (void)arg;
    return false;
}

void fixture_run_for(GMainContext *ctx, unsigned ms)
{
    fixture_run_until(ctx, fixture_never, NULL, ms);
}

bool fixture_poll_until(GMainContext *ctx, bool loop, void (*poll)(void), fixture_cond_t cond,
                        void *arg, unsigned ms)
{
    int64_t end = g_get_monotonic_time() + (int64_t)ms * 1000;
    while (!cond(arg)) {
        if (g_get_monotonic_time() > end)
            return false;
        while (loop && g_main_context_iteration(ctx, FALSE))
            ;
        if (poll)
            poll();
        g_usleep(1000);
    }
    return true;
}

void fixture_env(log_level_t level)
{
    log_set_level(getenv("BL_TEST_DEBUG") ? LOG_LVL_DEBUG : level);
    if (getenv("BL_TEST_FILTER"))
        cmocka_set_test_filter(getenv("BL_TEST_FILTER"));
}

char *fixture_tmpdir(const char *prefix)
{
    char *tmpl = g_strdup_printf("%s-XXXXXX", prefix);
    char *dir = g_dir_make_tmp(tmpl, NULL);
    g_free(tmpl);
    assert_non_null(dir);
    return dir;
}

void fixture_rmdir(char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;
    while (d && (name = g_dir_read_name(d))) {
        char *p = g_build_filename(dir, name, NULL);
        g_remove(p);
        g_free(p);
    }
    if (d)
        g_dir_close(d);
    g_rmdir(dir);
    g_free(dir);
}

char *fixture_cert_b64(const struct cert *c)
{
    unsigned char *der = NULL;
    int n = i2d_X509(c->x509, &der);
    assert_true(n > 0);
    char *b = g_base64_encode(der, (gsize)n);
    OPENSSL_free(der);
    return b;
}
