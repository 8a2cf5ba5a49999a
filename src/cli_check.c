/* SPDX-License-Identifier: MIT */
/* cli_check.c - `brokerless check`: is this config and identity ready to run (like
 * nginx -t), and with --net, does the network let it work (netcheck.h). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cert.h"
#include "confwarn.h"
#include "netcheck.h"

/* The identity, without creating one: 0 and its fingerprint printed, else 1. */
static int check_identity(const config_t *c)
{
    char *key = g_build_filename(c->state_dir, "key.pem", NULL);
    bool missing = access(key, F_OK) != 0 && errno == ENOENT;
    g_free(key);
    if (missing) {
        printf("FAIL identity: none in %s: brokerless init --name %s --state-dir %s\n",
               c->state_dir, c->site_name, c->state_dir);
        return 1;
    }
    cert_t *cert = NULL;
    if (cert_load(c->state_dir, false, &cert)) {
        printf("FAIL identity: %s/key.pem and cert.pem do not load (the error is above)\n",
               c->state_dir);
        return 1;
    }
    printf("ok   identity: fingerprint %s\n", cert->fingerprint);
    cert_free(cert);
    return 0;
}

int cli_check(int argc, char **argv)
{
    char *conf = NULL;
    gboolean net = FALSE;
    GOptionEntry extra[] = {{"net", 0, 0, G_OPTION_ARG_NONE, &net,
                             "also check the network: brokers, their ACLs, NAT mapping, TURN",
                             NULL},
                            {NULL, 0, 0, 0, NULL, NULL, NULL}};
    int rc = cli_parse_config(
        "- check a config without running it",
        "Loads the config and the identity as run would, and says what is wrong,\n"
        "without starting anything (like nginx -t). With --net it goes on, like\n"
        "tailscale netcheck: is the local broker reachable and MQTT 5, does it let both\n"
        "client ids in and grant the subscriptions, is the signalling broker reachable,\n"
        "what mapping the NAT gives (STUN), does a TURN allocation with the configured\n"
        "credentials succeed. Exit status 0 when everything checked is fine, else 1.",
        extra, &conf, &argc, &argv);
    config_t c;
    if (!rc && (rc = cli_load("check", conf, &c)) == 0) {
        printf("ok   config: %s, site %s, %zu peers\n", conf, c.site_name, c.n_peers);
        GPtrArray *w = g_ptr_array_new_with_free_func(g_free);
        confwarn_list(&c, w);
        for (guint i = 0; i < w->len; i++)
            printf("warn config: %s\n", (const char *)g_ptr_array_index(w, i));
        g_ptr_array_unref(w);
        rc = check_identity(&c);
        if (net && netcheck_run(&c))
            rc = 1;
        config_free(&c);
    }
    g_free(conf);
    return rc;
}
