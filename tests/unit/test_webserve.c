/* SPDX-License-Identifier: MIT */
/* test_webserve.c - what `brokerless web` serves (webserve.h): the request path to file
 * mapping refuses everything outside the page's files, and content types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "webserve.h"

static void ok(const char *url, const char *want)
{
    char out[600];
    assert_int_equal(webserve_path(url, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

static void refused(const char *url)
{
    char out[600];
    assert_int_equal(webserve_path(url, out, sizeof(out)), BL_EINVAL);
}

static void test_paths(void **state)
{
    (void)state;
    ok("/", "index.html");
    ok("/index.html", "index.html");
    ok("/app.js", "app.js");
    ok("/lib/wire.js", "lib/wire.js");
    ok("/node_modules/mqtt/dist/mqtt.min.js", "node_modules/mqtt/dist/mqtt.min.js");
    refused("");
    refused("index.html");
    refused("/../etc/passwd");
    refused("/lib/../../x");
    refused("/./index.html");
    refused("/.git/config");
    refused("/lib/.hidden");
    refused("//index.html");
    refused("/lib/");
    refused("/lib//wire.js");
    refused("/a%2f..");
    refused("/a b");
    refused("/node_modules/puppeteer-core/package.json");
    refused("/node_modules/mqtt/package.json");
    refused("/node_modules/mqtt/dist/../../x");
    refused("/package.json\\x");
    char big[700];
    big[0] = '/';
    memset(big + 1, 'a', sizeof(big) - 2);
    big[sizeof(big) - 1] = '\0';
    refused(big);
    char small[8];
    assert_int_equal(webserve_path("/index.html", small, sizeof(small)), BL_EINVAL);
    assert_int_equal(webserve_path(NULL, small, sizeof(small)), BL_EINVAL);
}

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(webserve_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(webserve_type("a/app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(webserve_type("x.css"), "text/css; charset=utf-8");
    assert_string_equal(webserve_type("s.png"), "image/png");
    assert_string_equal(webserve_type("README"), "application/octet-stream");
    assert_string_equal(webserve_type("a.html.bak"), "application/octet-stream");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_paths), cmocka_unit_test(test_types)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
