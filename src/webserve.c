/* SPDX-License-Identifier: MIT */
/* webserve.c - see webserve.h. */
#include "webserve.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libsoup/soup.h>

#include "log.h"

#define WEBSERVE_MAX_FILE (8 * 1024 * 1024)
#define WEBSERVE_MAX_PATH 512
#define WEBSERVE_BUNDLE_DIR "node_modules/mqtt/dist/"
/* The page's own files and the signalling broker's WebSocket; nothing from elsewhere. */
#define WEBSERVE_CSP                                                                               \
    "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "                      \
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

struct webserve {
    SoupServer *srv;
    char *dir; /* realpath */
    uint64_t served, refused;
};

static bool webserve_segment_ok(const char *s, size_t n)
{
    if (n == 0 || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!g_ascii_isalnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

int webserve_path(const char *url_path, char *out, size_t outlen)
{
    if (!url_path || url_path[0] != '/' || !out || outlen == 0)
        return BL_EINVAL;
    const char *p = url_path + 1;
    if (!*p)
        p = "index.html";
    size_t len = strlen(p);
    if (len >= outlen || len > WEBSERVE_MAX_PATH)
        return BL_EINVAL;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (!webserve_segment_ok(s, n))
            return BL_EINVAL; /* also an empty segment: "//", a trailing "/" */
        s += n + (e ? 1 : 0);
        if (e && !*s)
            return BL_EINVAL;
    }
    if (!strncmp(p, "node_modules/", 13) &&
        strncmp(p, WEBSERVE_BUNDLE_DIR, strlen(WEBSERVE_BUNDLE_DIR)))
        return BL_EINVAL;
    memcpy(out, p, len + 1);
    return 0;
}

const char *webserve_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".png", "image/png"},
        {".svg", "image/svg+xml"},
        {".json", "application/json"},
        {".ico", "image/x-icon"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < BL_ARRAY_LEN(types); i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

static void webserve_refuse(webserve_t *w, SoupServerMessage *msg, guint status, const char *what,
                            const char *path)
{
    w->refused++;
    bool pow2 = (w->refused & (w->refused - 1)) == 0;
    LOG_AT(pow2 ? LOG_LVL_WARN : LOG_LVL_DEBUG, "web", "refused %s %.200s: %s (%llu so far)",
           soup_server_message_get_method(msg), path, what, (unsigned long long)w->refused);
    soup_server_message_set_status(msg, status, NULL);
    char *body = g_strdup_printf("%s\n", what);
    soup_server_message_set_response(msg, "text/plain; charset=utf-8", SOUP_MEMORY_TAKE, body,
                                     strlen(body));
}

static void webserve_on_request(SoupServer *srv, SoupServerMessage *msg, const char *path,
                                GHashTable *q, gpointer ud)
{
    (void)srv;
    (void)q;
    webserve_t *w = ud;
    const char *method = soup_server_message_get_method(msg);
    char rel[WEBSERVE_MAX_PATH + 1];
    if (method != SOUP_METHOD_GET && method != SOUP_METHOD_HEAD) {
        webserve_refuse(w, msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "only GET and HEAD", path);
        return;
    }
    if (webserve_path(path, rel, sizeof(rel))) {
        webserve_refuse(w, msg, SOUP_STATUS_NOT_FOUND, "not served", path);
        return;
    }
    char *full = g_build_filename(w->dir, rel, NULL);
    char *real = realpath(full, NULL);
    g_free(full);
    struct stat st;
    size_t dlen = strlen(w->dir);
    if (!real || strncmp(real, w->dir, dlen) != 0 || real[dlen] != '/' || stat(real, &st) ||
        !S_ISREG(st.st_mode) || st.st_size > WEBSERVE_MAX_FILE) {
        free(real);
        webserve_refuse(w, msg, SOUP_STATUS_NOT_FOUND, "no such file", path);
        return;
    }
    gchar *data = NULL;
    gsize len = 0;
    GError *e = NULL;
    if (!g_file_get_contents(real, &data, &len, &e)) {
        LOG_WARN("web", "cannot read %s: %s", real, e->message);
        g_error_free(e);
        free(real);
        webserve_refuse(w, msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, "cannot read it", path);
        return;
    }
    free(real);
    SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
    soup_message_headers_replace(h, "Content-Security-Policy", WEBSERVE_CSP);
    soup_message_headers_replace(h, "X-Content-Type-Options", "nosniff");
    soup_message_headers_replace(h, "Cache-Control", "no-cache");
    soup_message_headers_replace(h, "Referrer-Policy", "no-referrer");
    soup_server_message_set_status(msg, SOUP_STATUS_OK, NULL);
    soup_server_message_set_response(msg, webserve_type(rel), SOUP_MEMORY_TAKE, data, len);
    w->served++;
    LOG_DEBUG("web", "%s %s (%zu bytes)", method, path, (size_t)len);
}

static bool webserve_loopback(GInetAddress *a)
{
    return g_inet_address_get_is_loopback(a);
}

int webserve_new(const char *host, int port, const char *dir, webserve_t **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    GInetAddress *ia = g_inet_address_new_from_string(host);
    if (!ia) {
        snprintf(err, errlen, "--listen: \"%s\" is not an IP address", host);
        return BL_EINVAL;
    }
    bool lo = webserve_loopback(ia);
    g_object_unref(ia);
    if (!lo) {
        snprintf(err, errlen,
                 "--listen: %s is not a loopback address; the page needs one (a browser gives "
                 "WebCrypto only to a page from localhost or https)",
                 host);
        return BL_EINVAL;
    }
    char *real = realpath(dir, NULL);
    char *index = real ? g_build_filename(real, "index.html", NULL) : NULL;
    bool has_index = index && g_file_test(index, G_FILE_TEST_IS_REGULAR);
    g_free(index);
    if (!has_index) {
        snprintf(err, errlen, "--dir: %s has no index.html (%s)", dir,
                 real ? "not the page's directory" : strerror(errno));
        free(real);
        return BL_ENOTFOUND;
    }
    webserve_t *w = g_new0(webserve_t, 1);
    w->dir = real;
    w->srv = soup_server_new("server-header", "brokerless", NULL);
    soup_server_add_handler(w->srv, NULL, webserve_on_request, w, NULL);
    GSocketAddress *addr = g_inet_socket_address_new_from_string(host, (guint)port);
    GError *e = NULL;
    bool ok = soup_server_listen(w->srv, addr, 0, &e);
    g_object_unref(addr);
    if (!ok) {
        snprintf(err, errlen, "--listen: cannot listen on %s:%d: %s", host, port, e->message);
        g_error_free(e);
        webserve_free(w);
        return BL_EIO;
    }
    *out = w;
    return 0;
}

void webserve_counts(const webserve_t *w, uint64_t *served, uint64_t *refused)
{
    *served = w->served;
    *refused = w->refused;
}

void webserve_free(webserve_t *w)
{
    if (!w)
        return;
    if (w->srv) {
        soup_server_disconnect(w->srv);
        g_object_unref(w->srv);
    }
    free(w->dir);
    g_free(w);
}
