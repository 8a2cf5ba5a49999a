/* SPDX-License-Identifier: MIT */
/* main.c - the command line: parse, load, hand off. No logic lives here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <glib-unix.h>
#include <glib.h>

#include "cert.h"
#include "config.h"
#include "confwarn.h"
#include "log.h"
#include "secfile.h"
#include "secret.h"
#include "site.h"

#define DEFAULT_STATE_DIR "/var/lib/brokerless"

static const char *const usage_text =
    "usage: brokerless COMMAND [OPTIONS]\n"
    "\n"
    "Keeps the MQTT brokers of several sites in sync over direct, encrypted\n"
    "peer-to-peer links (ICE + DTLS + SCTP data channel).\n"
    "\n"
    "commands:\n"
    "  init      create the state directory and this site's identity, and print\n"
    "            the [peer] section the other sites paste into their config\n"
    "  run       run this site (see docs/CONFIG.md for the file)\n"
    "  secret    make a new network secret (256 random bits) for [signal]\n"
    "  version   print the version\n"
    "  help      this text\n"
    "\n"
    "'brokerless COMMAND --help' describes each command's options.\n";

static int parse(GOptionContext *oc, int *argc, char ***argv)
{
    GError *err = NULL;
    if (!g_option_context_parse(oc, argc, argv, &err)) {
        fprintf(stderr, "brokerless: %s\n", err->message);
        g_error_free(err);
        return 2;
    }
    return 0;
}

static int cmd_init(int argc, char **argv)
{
    char *name = NULL, *dir = NULL;
    GOptionEntry entries[] = {
        {"name", 'n', 0, G_OPTION_ARG_STRING, &name, "this site's name ([site] name)", "NAME"},
        {"state-dir", 'd', 0, G_OPTION_ARG_FILENAME, &dir,
         "where the identity and queue live (default " DEFAULT_STATE_DIR ")", "DIR"},
        {NULL, 0, 0, 0, NULL, NULL, NULL}};
    GOptionContext *oc = g_option_context_new("- create this site's identity");
    g_option_context_set_summary(
        oc, "Creates DIR (mode 0700) with key.pem and cert.pem, an ECDSA P-256 identity whose\n"
            "SHA-256 fingerprint the other sites pin. Running it again keeps the existing\n"
            "identity and prints the same lines.");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = parse(oc, &argc, &argv);
    g_option_context_free(oc);
    if (rc)
        return rc;
    if (!name || !bl_site_name_valid(name)) {
        fprintf(stderr, "brokerless init: --name is required: 1-64 characters of "
                        "A-Z a-z 0-9 . _ -\n");
        return 2;
    }
    cert_t *cert;
    const char *d = dir ? dir : DEFAULT_STATE_DIR;
    umask(077);
    secfile_private_dir(d);
    if (cert_load(d, true, &cert)) {
        fprintf(stderr, "brokerless init: cannot create the identity in %s\n", d);
        return 1;
    }
    printf("# site %s, identity in %s\n"
           "# fingerprint %s\n"
           "# Paste this into the config of every other site:\n"
           "[peer %s]\n"
           "fingerprint = %s\n"
           "topic = # both 2\n",
           name, d, cert->fingerprint, name, cert->fingerprint);
    cert_free(cert);
    g_free(name);
    g_free(dir);
    return 0;
}

static int cmd_secret(int argc, char **argv)
{
    char *file = NULL;
    GOptionEntry entries[] = {{"output", 'o', 0, G_OPTION_ARG_FILENAME, &file,
                               "write it to FILE (mode 0600, never over an existing file) "
                               "instead of printing it",
                               "FILE"},
                              {NULL, 0, 0, 0, NULL, NULL, NULL}};
    GOptionContext *oc = g_option_context_new("- make a new network secret");
    g_option_context_set_summary(
        oc, "Draws 256 random bits and writes them as 43 characters of base64url: the\n"
            "[signal] secret every site of a network shares. A secret that is guessable can\n"
            "be searched for offline by whoever sees the signalling broker's traffic.\n"
            "Copy it to every site over a channel you trust, e.g. as secret_file.");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = parse(oc, &argc, &argv);
    g_option_context_free(oc);
    if (rc)
        return rc;
    char secret[SECRET_NEW_LEN + 2];
    if (secret_generate(secret, sizeof(secret))) {
        fprintf(stderr, "brokerless secret: no random bytes\n");
        g_free(file);
        return 1;
    }
    rc = 0;
    if (!file) {
        printf("%s\n", secret);
    } else {
        size_t n = strlen(secret);
        secret[n] = '\n';
        if (secfile_write_new(file, secret, n + 1, 0600)) {
            fprintf(stderr, "brokerless secret: cannot create %s: %s\n", file,
                    errno == EEXIST ? "it exists (remove it first to replace it)"
                                    : strerror(errno));
            rc = 1;
        } else {
            printf("wrote %s: give every site a copy, and in [signal]: secret_file = %s\n", file,
                   file);
        }
    }
    explicit_bzero(secret, sizeof(secret));
    g_free(file);
    return rc;
}

static gboolean on_quit(gpointer loop)
{
    LOG_INFO("main", "signal received, stopping");
    g_main_loop_quit(loop);
    return G_SOURCE_CONTINUE;
}

static int cmd_run(int argc, char **argv)
{
    char *path = NULL, *level = NULL;
    GOptionEntry entries[] = {
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &path, "the site's config file", "FILE"},
        {"log-level", 'l', 0, G_OPTION_ARG_STRING, &level,
         "debug, info, warn or error (overrides [site] log_level)", "LEVEL"},
        {NULL, 0, 0, 0, NULL, NULL, NULL}};
    GOptionContext *oc = g_option_context_new("- run this site");
    g_option_context_set_summary(
        oc, "Connects to the local broker and the signalling broker, opens a link to every\n"
            "[peer] and keeps the brokers in sync until SIGINT or SIGTERM. Logs go to\n"
            "stderr, one line per event; status is published retained under\n"
            "brokerless/<site>/ on the local broker.\n"
            "\n"
            "Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot start (config,\n"
            "identity, database), 2 for a usage error, 3 when the queue database\n"
            "failed a write (disk full or failing): it then stops at once, as a crash\n"
            "would, so that nothing unstored is acknowledged. Start it again once the\n"
            "disk is fixed.");
    g_option_context_add_main_entries(oc, entries, NULL);
    int rc = parse(oc, &argc, &argv);
    g_option_context_free(oc);
    if (rc)
        return rc;
    if (!path) {
        fprintf(stderr, "brokerless run: -c FILE is required\n");
        return 2;
    }
    config_t cfg;
    char err[1024];
    if (config_load_file(path, &cfg, err, sizeof(err))) {
        fprintf(stderr, "brokerless: %s\n", err);
        return 1;
    }
    log_set_site(cfg.site_name);
    log_set_level(cfg.log_level);
    if (level) {
        int l = log_level_parse(level);
        if (l < 0) {
            fprintf(stderr, "brokerless run: unknown log level \"%s\"\n", level);
            config_free(&cfg);
            return 2;
        }
        log_set_level(l);
    }
    GPtrArray *warnings = g_ptr_array_new_with_free_func(g_free);
    confwarn_list(&cfg, warnings);
    for (guint i = 0; i < warnings->len; i++)
        LOG_WARN("config", "%s", (const char *)g_ptr_array_index(warnings, i));
    g_ptr_array_unref(warnings);
    /* Everything the daemon creates is its own (the queue database, the identity), and
     * what already exists is made private again. */
    umask(077);
    secfile_private_dir(cfg.state_dir);
    cert_t *cert = NULL;
    if (cert_load(cfg.state_dir, true, &cert)) {
        LOG_ERROR("main", "cannot load or create the identity in %s", cfg.state_dir);
        config_free(&cfg);
        return 1;
    }
    LOG_INFO("main", "brokerless %s starting, fingerprint %s", BL_VERSION, cert->fingerprint);

    GMainContext *ctx = g_main_context_default();
    GMainLoop *loop = g_main_loop_new(ctx, FALSE);
    site_t *site = site_new(ctx, &cfg, cert);
    rc = 1;
    if (site && site_start(site) == 0) {
        g_unix_signal_add(SIGINT, on_quit, loop);
        g_unix_signal_add(SIGTERM, on_quit, loop);
        g_main_loop_run(loop);
        rc = 0;
    }
    site_free(site);
    g_main_loop_unref(loop);
    cert_free(cert);
    config_free(&cfg);
    g_free(path);
    g_free(level);
    LOG_INFO("main", "stopped");
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "help";
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("brokerless %s\n", BL_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "init"))
        return cmd_init(argc - 1, argv + 1);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "secret"))
        return cmd_secret(argc - 1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage_text, stdout);
        return 0;
    }
    fprintf(stderr, "brokerless: unknown command \"%s\"\n\n%s", cmd, usage_text);
    return 2;
}
