/* SPDX-License-Identifier: MIT */
/* cli.c - what the commands share: option parsing, loading the config, asking the
 * daemon. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctlclient.h"

static int parse(const char *params, const char *summary, const GOptionEntry *entries,
                 const GOptionEntry *extra, int *argc, char ***argv)
{
    GError *err = NULL;
    GOptionContext *oc = g_option_context_new(params);
    g_option_context_set_summary(oc, summary);
    g_option_context_add_main_entries(oc, entries, NULL);
    if (extra)
        g_option_context_add_main_entries(oc, extra, NULL);
    g_option_context_set_description(oc, CLI_SEE_ALSO);
    bool ok = g_option_context_parse(oc, argc, argv, &err);
    g_option_context_free(oc);
    if (ok)
        return 0;
    fprintf(stderr, "brokerless: %s\n", err->message);
    g_error_free(err);
    return 2;
}

int cli_parse(const char *params, const char *summary, const GOptionEntry *entries, int *argc,
              char ***argv)
{
    return parse(params, summary, entries, NULL, argc, argv);
}

int cli_parse_config(const char *params, const char *summary, const GOptionEntry *extra,
                     char **path, int *argc, char ***argv)
{
    *path = NULL;
    GOptionEntry entries[] = {{"config", 'c', 0, G_OPTION_ARG_FILENAME, path,
                               "the site's config file (default " CLI_DEFAULT_CONFIG ")", "FILE"},
                              {NULL, 0, 0, 0, NULL, NULL, NULL}};
    int rc = parse(params, summary, entries, extra, argc, argv);
    if (!*path)
        *path = g_strdup(CLI_DEFAULT_CONFIG);
    return rc;
}

int cli_load(const char *cmd, const char *path, config_t *cfg)
{
    char err[1024];
    if (config_load_file(path, cfg, err, sizeof(err)) == 0)
        return 0;
    fprintf(stderr, "brokerless %s: %s\n", cmd, err);
    return 1;
}

int cli_ask(const config_t *cfg, ctl_cmd_t cmd, const char *peer, int timeout_ms, cJSON **answer,
            char *err, size_t errlen)
{
    ctl_req_t req = {.cmd = cmd};
    if (peer)
        snprintf(req.peer, sizeof(req.peer), "%s", peer);
    char path[128];
    if (ctlproto_socket_path(cfg->state_dir, path, sizeof(path))) {
        snprintf(err, errlen, "[site] state_dir %s is too long for a control socket path",
                 cfg->state_dir);
        return BL_ETOOBIG;
    }
    return ctlclient_request(path, &req, timeout_ms, answer, err, errlen);
}

const char *cli_refusal(const cJSON *answer)
{
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "ok")))
        return NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(answer, "error");
    return cJSON_IsString(e) ? e->valuestring : "refused";
}

void cli_give_to_dir_owner(const char *dir, const char *const *files, size_t n)
{
    struct stat st;
    if (geteuid() != 0 || stat(dir, &st) != 0 || st.st_uid == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char *p = g_build_filename(dir, files[i], NULL);
        if (chown(p, st.st_uid, st.st_gid) != 0 && errno != ENOENT)
            fprintf(stderr, "brokerless: cannot give %s to uid %u: %s\n", p, (unsigned)st.st_uid,
                    strerror(errno));
        g_free(p);
    }
}
