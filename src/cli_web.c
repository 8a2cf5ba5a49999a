/* SPDX-License-Identifier: MIT */
/* cli_web.c - `brokerless web`: serve the browser peer's page (webserve.h) until
 * SIGINT or SIGTERM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib-unix.h>

#include "cli.h"
#include "confscan.h"
#include "log.h"
#include "webserve.h"

#ifndef BL_WEB_DIR
#define BL_WEB_DIR "/usr/share/brokerless/web"
#endif
#define CLI_WEB_DEFAULT_LISTEN "127.0.0.1:8089"

static gboolean cli_web_stop(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

int cli_web(int argc, char **argv)
{
    char *listen = NULL, *dir = NULL;
    gboolean verbose = FALSE;
    GOptionEntry entries[] = {
        {"listen", 'l', 0, G_OPTION_ARG_STRING, &listen,
         "loopback HOST:PORT to serve on (default " CLI_WEB_DEFAULT_LISTEN ")", "HOST:PORT"},
        {"dir", 'd', 0, G_OPTION_ARG_FILENAME, &dir,
         "the page's directory, with node_modules/mqtt from npm (default " BL_WEB_DIR ")", "DIR"},
        {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, "log every request", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL}};
    int rc = cli_parse(
        "- serve the browser peer's page on localhost",
        "Serves the page that lets a browser be a peer of a site (docs/CONFIG.md,\n"
        "\"Browser peers\"): static files from DIR, on a loopback address only, where the\n"
        "browser gives the page WebCrypto. The page loads nothing from elsewhere. Stop\n"
        "it with Ctrl-C.",
        entries, &argc, &argv);
    if (rc)
        return rc;
    char *host = NULL;
    int port = 0;
    const char *why =
        confscan_parse_hostport(listen ? listen : CLI_WEB_DEFAULT_LISTEN, 8089, &host, &port);
    if (why) {
        fprintf(stderr, "brokerless web: --listen \"%s\": %s\n", listen, why);
        g_free(listen);
        g_free(dir);
        return 2;
    }
    if (verbose)
        log_set_level(LOG_LVL_DEBUG);
    char err[512];
    webserve_t *w = NULL;
    if (webserve_new(host, port, dir ? dir : BL_WEB_DIR, &w, err, sizeof(err))) {
        fprintf(stderr, "brokerless web: %s\n", err);
        rc = 1;
    } else {
        bool v6 = strchr(host, ':') != NULL;
        printf("serving http://%s%s%s:%d/ from %s (Ctrl-C stops)\n", v6 ? "[" : "", host,
               v6 ? "]" : "", port, dir ? dir : BL_WEB_DIR);
        fflush(stdout);
        GMainLoop *loop = g_main_loop_new(NULL, FALSE);
        g_unix_signal_add(SIGINT, cli_web_stop, loop);
        g_unix_signal_add(SIGTERM, cli_web_stop, loop);
        g_main_loop_run(loop);
        g_main_loop_unref(loop);
        uint64_t served, refused;
        webserve_counts(w, &served, &refused);
        printf("stopped: %llu requests served, %llu refused\n", (unsigned long long)served,
               (unsigned long long)refused);
        webserve_free(w);
    }
    g_free(host);
    g_free(listen);
    g_free(dir);
    return rc;
}
