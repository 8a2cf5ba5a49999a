/* SPDX-License-Identifier: MIT */
/* cli_site.c - the site's own commands: init (the identity and the pairing line), secret
 * (a network secret), run (the daemon). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cert.h"
#include "daemon.h"
#include "log.h"
#include "peerline.h"
#include "secfile.h"
#include "secret.h"

/* --name, --state-dir and the signalling URL: from the options, else from -c FILE. */
static int init_settings(char **name, char **dir, char **signal, const char *conf)
{
    if (!conf)
        return 0;
    config_t c;
    if (cli_load("init", conf, &c))
        return 1;
    int rc = 0;
    if (*name && strcmp(*name, c.site_name) != 0) {
        fprintf(stderr, "brokerless init: --name %s, but %s names the site %s\n", *name, conf,
                c.site_name);
        rc = 2;
    }
    if (*dir && strcmp(*dir, c.state_dir) != 0) {
        fprintf(stderr, "brokerless init: --state-dir %s, but %s says state_dir = %s\n", *dir, conf,
                c.state_dir);
        rc = 2;
    }
    if (!rc) {
        g_free(*name);
        g_free(*dir);
        *name = g_strdup(c.site_name);
        *dir = g_strdup(c.state_dir);
        *signal = config_signal_url(&c);
    }
    config_free(&c);
    return rc;
}

int cli_init(int argc, char **argv)
{
    char *name = NULL, *dir = NULL, *conf = NULL, *signal = NULL;
    GOptionEntry entries[] = {
        {"name", 'n', 0, G_OPTION_ARG_STRING, &name, "this site's name ([site] name)", "NAME"},
        {"state-dir", 'd', 0, G_OPTION_ARG_FILENAME, &dir,
         "where the identity and queue live (default " CLI_DEFAULT_STATE_DIR ")", "DIR"},
        {"config", 'c', 0, G_OPTION_ARG_FILENAME, &conf,
         "take the name, state_dir and signalling broker from this config", "FILE"},
        {NULL, 0, 0, 0, NULL, NULL, NULL}};
    int rc = cli_parse(
        "- create this site's identity",
        "Creates DIR (mode 0700) with key.pem and cert.pem, an ECDSA P-256 identity whose\n"
        "SHA-256 fingerprint the other sites pin, and prints the pairing line that\n"
        "`brokerless peer add` takes at the other site (and the [peer] section it\n"
        "writes). Running it again keeps the existing identity and prints the same.\n"
        "Only init creates an identity: run refuses to start without one.",
        entries, &argc, &argv);
    if (!rc)
        rc = init_settings(&name, &dir, &signal, conf);
    if (!rc && (!name || !bl_site_name_valid(name))) {
        fprintf(stderr, "brokerless init: --name (or -c FILE) is required: 1-64 characters of "
                        "A-Z a-z 0-9 . _ -\n");
        rc = 2;
    }
    cert_t *cert = NULL;
    const char *d = dir ? dir : CLI_DEFAULT_STATE_DIR;
    if (!rc) {
        umask(077);
        secfile_private_dir(d);
        if (cert_load(d, true, &cert)) {
            fprintf(stderr, "brokerless init: cannot create the identity in %s\n", d);
            rc = 1;
        }
    }
    if (!rc) {
        static const char *const files[] = {"key.pem", "cert.pem"};
        cli_give_to_dir_owner(d, files, BL_ARRAY_LEN(files));
        char *line = peerline_format(name, cert->fingerprint, signal);
        peerline_t pl;
        char err[256];
        peerline_parse(line, &pl, err, sizeof(err));
        char *section = peerline_section(&pl, "OTHER-SITE", NULL, 0);
        printf("# site %s, identity in %s\n"
               "# fingerprint %s\n"
               "# At every other site, pair with this one in one paste:\n"
               "#   brokerless peer add -c CONFIG '%s'\n"
               "%s\n"
               "# which writes this section into that site's config (OTHER-SITE is its name):\n"
               "%s",
               name, d, cert->fingerprint, line, line, section);
        g_free(section);
        g_free(line);
    }
    cert_free(cert);
    g_free(name);
    g_free(dir);
    g_free(conf);
    g_free(signal);
    return rc;
}

int cli_secret(int argc, char **argv)
{
    char *file = NULL;
    GOptionEntry entries[] = {{"output", 'o', 0, G_OPTION_ARG_FILENAME, &file,
                               "write it to FILE (mode 0600, never over an existing file) "
                               "instead of printing it",
                               "FILE"},
                              {NULL, 0, 0, 0, NULL, NULL, NULL}};
    int rc =
        cli_parse("- make a new network secret",
                  "Draws 256 random bits and writes them as 43 characters of base64url: the\n"
                  "[signal] secret every site of a network shares. A secret that is guessable can\n"
                  "be searched for offline by whoever sees the signalling broker's traffic.\n"
                  "Copy it to every site over a channel you trust, e.g. as secret_file.",
                  entries, &argc, &argv);
    if (rc)
        return rc;
    char secret[SECRET_NEW_LEN + 2];
    if (secret_generate(secret, sizeof(secret))) {
        fprintf(stderr, "brokerless secret: no random bytes\n");
        g_free(file);
        return 1;
    }
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

int cli_run(int argc, char **argv)
{
    char *path = NULL, *level = NULL;
    GOptionEntry extra[] = {{"log-level", 'l', 0, G_OPTION_ARG_STRING, &level,
                             "debug, info, warn or error (overrides [site] log_level)", "LEVEL"},
                            {NULL, 0, 0, 0, NULL, NULL, NULL}};
    int rc = cli_parse_config(
        "- run this site",
        "Connects to the local broker and the signalling broker, opens a link to every\n"
        "[peer] and keeps the brokers in sync until SIGINT or SIGTERM. SIGHUP (or\n"
        "`brokerless reload`) reads the config again. Logs go to stderr, one line per\n"
        "event (to journald with their priority under systemd); status is published\n"
        "retained under brokerless/<site>/ on the local broker, and `brokerless status`\n"
        "asks the daemon over its control socket (state_dir/control.sock).\n"
        "\n"
        "Exit status: 0 after SIGINT/SIGTERM, 1 when it cannot start (config,\n"
        "identity, another daemon on the state directory, database), 2 for a usage\n"
        "error, 3 when the queue database failed a write (disk full or failing): it\n"
        "then stops at once, as a crash would, so that nothing unstored is\n"
        "acknowledged. Start it again once the disk is fixed.",
        extra, &path, &argc, &argv);
    int lvl = -1;
    if (!rc && level && (lvl = log_level_parse(level)) < 0) {
        fprintf(stderr, "brokerless run: unknown log level \"%s\"\n", level);
        rc = 2;
    }
    if (!rc && argc > 1) {
        fprintf(stderr, "brokerless run: unexpected argument \"%s\"\n", argv[1]);
        rc = 2;
    }
    if (!rc)
        rc = daemon_run(path, lvl);
    g_free(path);
    g_free(level);
    return rc;
}
