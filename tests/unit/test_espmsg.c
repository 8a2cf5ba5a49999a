/* SPDX-License-Identifier: MIT */
/* Unit tests for espmsg.c: the example's handshake and description, as boards write
 * them and as ours must look to a board. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <glib.h>

#include "espmsg.h"

/* As the board prints it: cJSON_Print, tabs, CRLF inside "desc". */
static const char board_desc[] =
    "{\n"
    "\t\"desc\":\t\"a=ice-ufrag:T5bL\\r\\na=ice-pwd:6mr8PB1QH3hkQyK0TSy8ZC\\r\\n"
    "a=ice-options:ice2,trickle\\r\\n\",\n"
    "\t\"cand0\":\t\"a=candidate:1 1 UDP 2122317823 198.19.0.2 62703 typ host\",\n"
    "\t\"cand1\":\t\"a=candidate:2 1 UDP 1686109951 198.18.0.12 62703 typ srflx raddr "
    "0.0.0.0 rport 0\"\n"
    "}";

static int parse(const char *text, espmsg_desc_t *d)
{
    return espmsg_desc_parse((const uint8_t *)text, strlen(text), d, NULL);
}

/* text parses into d (espmsg_desc_clear is the caller's) with these credentials, n
 * candidates and the first one cand0. */
static void parse_expect(const char *text, espmsg_desc_t *d, const char *ufrag, const char *pwd,
                         size_t n, const char *cand0)
{
    assert_int_equal(parse(text, d), 0);
    assert_string_equal(d->ufrag, ufrag);
    assert_string_equal(d->pwd, pwd);
    assert_int_equal(d->n_cands, n);
    assert_string_equal(d->cands[0], cand0);
}

static void test_handshake(void **state)
{
    (void)state;
    espmsg_step_t s;
    assert_int_equal(espmsg_handshake_parse((const uint8_t *)"0", 1, &s), 0);
    assert_int_equal(s, ESPMSG_SYNC0);
    assert_int_equal(espmsg_handshake_parse((const uint8_t *)"2", 1, &s), 0);
    assert_int_equal(s, ESPMSG_SYNC2);
    assert_int_equal(espmsg_handshake_parse((const uint8_t *)"3", 1, &s), BL_EINVAL);
    assert_int_equal(espmsg_handshake_parse((const uint8_t *)"", 0, &s), BL_EINVAL);
    assert_int_equal(espmsg_handshake_parse((const uint8_t *)"00", 2, &s), BL_EINVAL);
}

static void test_board_description(void **state)
{
    (void)state;
    espmsg_desc_t d;
    parse_expect(board_desc, &d, "T5bL", "6mr8PB1QH3hkQyK0TSy8ZC", 2,
                 "a=candidate:1 1 UDP 2122317823 198.19.0.2 62703 typ host");
    assert_int_equal(d.dropped, 0);
    espmsg_desc_clear(&d);
}

/* LF only, candidates out of order and with a gap, extra keys and lines, a candidate
 * without its "a=", a trailing CRLF on one. */
static void test_tolerant(void **state)
{
    (void)state;
    const char *text =
        "{\"extra\": 1, \"cand7\": \"candidate:8 1 UDP 1 198.18.0.12 2 typ relay raddr 1.2.3.4 "
        "rport 5\\r\\n\", \"cand0\": \"a=candidate:1 1 UDP 5 198.19.0.2 1 typ host\", "
        "\"desc\": \"v=0\\na=ice-ufrag:abcd\\na=ice-pwd:0123456789abcdefghijkl  \\n"
        "a=end-of-candidates\", \"candX\": \"a=candidate:9 1 UDP 1 1.1.1.1 1 typ host\"}";
    espmsg_desc_t d;
    parse_expect(text, &d, "abcd", "0123456789abcdefghijkl", 2,
                 "a=candidate:1 1 UDP 5 198.19.0.2 1 typ host");
    assert_string_equal(d.cands[1],
                        "a=candidate:8 1 UDP 1 198.18.0.12 2 typ relay raddr 1.2.3.4 rport 5");
    espmsg_desc_clear(&d);
}

/* More candidates than the board would ever write: the first ten by number are kept. */
static void test_many_candidates(void **state)
{
    (void)state;
    GString *s =
        g_string_new("{\"desc\":\"a=ice-ufrag:abcd\\r\\na=ice-pwd:0123456789abcdefghijkl\"");
    for (int i = 14; i >= 0; i--)
        g_string_append_printf(s, ",\"cand%d\":\"a=candidate:%d 1 UDP 1 198.19.0.2 %d typ host\"",
                               i, i, 1000 + i);
    g_string_append(s, ",\"cand20\": 5}");
    espmsg_desc_t d;
    assert_int_equal(parse(s->str, &d), 0);
    assert_int_equal(d.n_cands, ESPMSG_MAX_CANDS);
    assert_string_equal(d.cands[0], "a=candidate:0 1 UDP 1 198.19.0.2 1000 typ host");
    assert_string_equal(d.cands[9], "a=candidate:9 1 UDP 1 198.19.0.2 1009 typ host");
    assert_int_equal(d.dropped, 6);
    espmsg_desc_clear(&d);
    g_string_free(s, TRUE);
}

static void expect_refused(const char *text)
{
    espmsg_desc_t d;
    const char *why = NULL;
    assert_int_equal(espmsg_desc_parse((const uint8_t *)text, strlen(text), &d, &why), BL_EINVAL);
    assert_non_null(why);
}

static void test_refusals(void **state)
{
    (void)state;
    expect_refused("1x");
    expect_refused("[1,2]");
    expect_refused("{\"desc\": 5}");
    expect_refused("{\"cand0\": \"a=candidate:1 1 UDP 1 198.19.0.2 1 typ host\"}");
    expect_refused("{\"desc\": \"a=ice-ufrag:abcd\\r\\n\"}"); /* no pwd */
    expect_refused("{\"desc\": \"a=ice-ufrag:ab cd\\r\\na=ice-pwd:xxxxxxxxxxxxxxxxxxxxxx\"}");
    expect_refused("{\"desc\": \"a=ice-ufrag:\\r\\na=ice-pwd:xxxxxxxxxxxxxxxxxxxxxx\"}");
    expect_refused("{\"desc\": \"a=ice-ufrag:abcd\\u0000\\na=ice-pwd:xxxxxxxxxxxxxxxxxxxxxx\"}");
    espmsg_desc_t d;
    char *big = calloc(1, ESPMSG_DESC_MAX + 2);
    memset(big, ' ', ESPMSG_DESC_MAX + 1);
    assert_int_equal(espmsg_desc_parse((const uint8_t *)big, ESPMSG_DESC_MAX + 1, &d, NULL),
                     BL_ETOOBIG);
    free(big);
    /* Not NUL-terminated: only len bytes are read. */
    char cut[sizeof(board_desc)];
    memcpy(cut, board_desc, sizeof(cut));
    assert_int_equal(espmsg_desc_parse((const uint8_t *)cut, sizeof(cut) - 2, &d, NULL), BL_EINVAL);
}

/* Ours looks like the board's: cJSON's pretty print, desc first, cand0..N, CRLF lines
 * ending in "a=ice-options:ice2,trickle" (libjuice reads a line only once its LF came). */
static void test_build(void **state)
{
    (void)state;
    const char *cands[] = {"a=candidate:1 1 UDP 2015363327 198.19.0.2 40000 typ host",
                           "a=candidate:2 1 UDP 1679819007 198.18.0.11 40000 typ srflx raddr "
                           "198.19.0.2 rport 40000"};
    size_t used = 0;
    char *s = espmsg_desc_build("abcd", "0123456789abcdefghijkl", cands, 2, &used);
    assert_non_null(s);
    assert_int_equal(used, 2);
    assert_true(strncmp(s, "{\n\t\"desc\":\t\"a=ice-ufrag:abcd\\r\\na=ice-pwd:", 40) == 0);
    assert_non_null(
        strstr(s, "a=ice-options:ice2,trickle\\r\\n\",\n\t\"cand0\":\t\"a=candidate:1 "));
    espmsg_desc_t d;
    assert_int_equal(parse(s, &d), 0);
    assert_int_equal(d.n_cands, 2);
    assert_string_equal(d.cands[1], cands[1]);
    espmsg_desc_clear(&d);
    free(s);
    /* Over the budget: candidates go from the end, the rest stays whole. */
    const char *many[ESPMSG_MAX_CANDS];
    for (int i = 0; i < ESPMSG_MAX_CANDS; i++)
        many[i] = cands[1];
    s = espmsg_desc_build("abcd", "0123456789abcdefghijkl", many, ESPMSG_MAX_CANDS, &used);
    assert_non_null(s);
    assert_true(strlen(s) <= ESPMSG_DESC_BUDGET);
    assert_true(used > 0 && used < ESPMSG_MAX_CANDS);
    free(s);
    assert_null(espmsg_desc_build("ab\ncd", "0123456789abcdefghijkl", NULL, 0, &used));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake), cmocka_unit_test(test_board_description),
        cmocka_unit_test(test_tolerant),  cmocka_unit_test(test_many_candidates),
        cmocka_unit_test(test_refusals),  cmocka_unit_test(test_build),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
