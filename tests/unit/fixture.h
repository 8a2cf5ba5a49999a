/* SPDX-License-Identifier: MIT */
/* fixture.h - what several unit tests share: the full test message (every field and
 * property set, at values a codec gets wrong), a bounded run of a GMainContext (a test
 * fails at its deadline, it never hangs) and a scratch directory. Asserts with cmocka,
 * so a test file includes <cmocka.h> before this. */
#ifndef BL_TEST_FIXTURE_H
#define BL_TEST_FIXTURE_H

#include <stdbool.h>

#include <glib.h>

#include "log.h"
#include "msg.h"

/* Fill m (msg_init'ed here) on `topic` with everything: QoS 2, retain, dup, origin and a
 * sequence over 32 bits, a payload with NUL and 0xff bytes, payload format 0, expiry
 * 3600 s, content type, response topic, correlation data with NULs, and user properties
 * out of alphabetical order with a repeated key and an empty key and value. A test that
 * needs another QoS or flags sets them afterwards. */
void fixture_full_msg(bl_msg_t *m, const char *topic);
/* m carries the payload and every property fixture_full_msg sets, in order (not the
 * topic, QoS, flags, origin or sequence, which a path may change); its expiry may have
 * counted down by up to expiry_slack seconds. */
void fixture_check_full(const bl_msg_t *m, uint32_t expiry_slack);

/* Each string of the NULL-terminated list `want` occurs in text; the first that does not
 * fails the test, named. FIXTURE_CONTAINS(text, "a", "b") writes the list. */
void fixture_assert_contains(const char *text, const char *const *want);
#define FIXTURE_CONTAINS(text, ...)                                                                \
    fixture_assert_contains((text), (const char *const[]){__VA_ARGS__, NULL})

typedef bool (*fixture_cond_t)(void *arg);
/* Run ctx (NULL: the default context) until cond(arg) holds or ms have passed; returns
 * cond's final value. Blocks in the loop between checks, so cond must change only from
 * the loop's own callbacks. */
bool fixture_run_until(GMainContext *ctx, fixture_cond_t cond, void *arg, unsigned ms);
void fixture_run_for(GMainContext *ctx, unsigned ms);
/* A cond that never holds: a run for the whole time. */
bool fixture_never(void *arg);
/* The same for a test that also drives something outside the loop: between checks,
 * turns of ctx that do not block (none when !loop), poll(), and a 1 ms sleep. */
bool fixture_poll_until(GMainContext *ctx, bool loop, void (*poll)(void), fixture_cond_t cond,
                        void *arg, unsigned ms);

/* What a test run takes from its environment: BL_TEST_DEBUG set logs everything (else
 * from `level` up); BL_TEST_FILTER=test_name runs that test alone. */
void fixture_env(log_level_t level);

struct cert;
/* c's certificate (DER) in base64, as the signalling carries it (g_free). */
char *fixture_cert_b64(const struct cert *c);

/* A new empty directory under the system's temporary one (g_free), and its removal with
 * the files in it (it holds no subdirectories). */
char *fixture_tmpdir(const char *prefix);
void fixture_rmdir(char *dir);

#endif
