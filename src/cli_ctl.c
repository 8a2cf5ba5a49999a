/* SPDX-License-Identifier: MIT */
/* cli_ctl.c - the commands that ask a running daemon: status, ping, reload. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#include "status.h"

/* -c FILE and whatever else the command takes; loads the config. */
static int prepare(const char *cmd, const char *summary, const GOptionEntry *extra, int *argc,
                   char ***argv, const char *params, config_t *cfg)
{
    char *path = NULL;
    int rc = cli_parse_config(params, summary, extra, &path, argc, argv);
    if (!rc)
        rc = cli_load(cmd, path, cfg);
    g_free(path);
    return rc;
}

/* Ask; 0 with an ok answer, else the message printed and the exit status. */
static int ask(const char *cmd, const config_t *cfg, ctl_cmd_t c, const char *peer, int timeout_ms,
               cJSON **answer)
{
    char err[512];
    if (cli_ask(cfg, c, peer, timeout_ms, answer, err, sizeof(err))) {
        fprintf(stderr, "brokerless %s: %s\n", cmd, err);
        return 1;
    }
    const char *why = cli_refusal(*answer);
    if (why) {
        fprintf(stderr, "brokerless %s: %s\n", cmd, why);
        cJSON_Delete(*answer);
        *answer = NULL;
        return 1;
    }
    return 0;
}

int cli_status(int argc, char **argv)
{
    gboolean json = FALSE;
    GOptionEntry extra[] = {
        {"json", 'j', 0, G_OPTION_ARG_NONE, &json, "the whole status as JSON, for scripts", NULL},
        {NULL, 0, 0, 0, NULL, NULL, NULL}};
    config_t cfg;
    int rc = prepare("status",
                     "Shows the running daemon's links: one row per peer with its state "
                     "and since\nwhen, its path (host, srflx or relay, both "
                     "addresses), round trip, messages\nand bytes each way, queue, "
                     "drops by reason and last error.",
                     extra, &argc, &argv, "- what the running daemon is doing", &cfg);
    if (rc)
        return rc;
    cJSON *a = NULL;
    rc = ask("status", &cfg, CTL_STATUS, NULL, 5000, &a);
    config_free(&cfg);
    if (rc)
        return rc;
    cJSON_DeleteItemFromObjectCaseSensitive(a, "ok");
    char *text = json ? cJSON_Print(a) : status_table(a);
    printf("%s\n", text);
    if (json)
        cJSON_free(text);
    else
        g_free(text);
    cJSON_Delete(a);
    return 0;
}

int cli_ping(int argc, char **argv)
{
    int count = 1;
    GOptionEntry extra[] = {{"count", 'n', 0, G_OPTION_ARG_INT, &count,
                             "this many round trips, one after the other (default 1)", "N"},
                            {NULL, 0, 0, 0, NULL, NULL, NULL}};
    config_t cfg;
    int rc = prepare("ping",
                     "Measures a round trip to PEER over its open data channel (a PING "
                     "frame the\npeer answers), through the same queues as messages.",
                     extra, &argc, &argv, "PEER - a round trip over the peer's link", &cfg);
    if (rc)
        return rc;
    if (argc != 2 || !bl_site_name_valid(argv[1]) || count < 1) {
        fprintf(stderr, "brokerless ping: give one peer name (and -n N >= 1)\n");
        config_free(&cfg);
        return 2;
    }
    for (int i = 0; i < count && !rc; i++) {
        cJSON *a = NULL;
        rc = ask("ping", &cfg, CTL_PING, argv[1], 10000, &a);
        if (rc)
            break;
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(a, "rtt_ms");
        printf("answer from %s: %.3f ms\n", argv[1], cJSON_IsNumber(ms) ? ms->valuedouble : -1.0);
        cJSON_Delete(a);
    }
    config_free(&cfg);
    return rc;
}

int cli_reload(int argc, char **argv)
{
    config_t cfg;
    int rc = prepare("reload",
                     "Asks the running daemon to read its config file again, as SIGHUP "
                     "does. Peers\nadded connect, peers removed are closed (their queue "
                     "stays until `brokerless\npeer forget`), changed rules apply, "
                     "links that did not change stay up. A\nconfig that does not load "
                     "is refused and the daemon keeps the one it runs.",
                     NULL, &argc, &argv, "- read the config again", &cfg);
    if (rc)
        return rc;
    cJSON *a = NULL;
    rc = ask("reload", &cfg, CTL_RELOAD, NULL, 10000, &a);
    if (!rc)
        printf("reloaded %s\n", cfg.path);
    cJSON_Delete(a);
    config_free(&cfg);
    return rc;
}
