/* SPDX-License-Identifier: MIT */
/* cli.h - the commands of the command line, one function each (main.c dispatches), and
 * what they share (cli.c). Each takes argc/argv from its own name on and returns the
 * process' exit status: 0 done, 1 failed, 2 usage error. */
#ifndef BL_CLI_H
#define BL_CLI_H

#include <cjson/cJSON.h>
#include <glib.h>

#include "config.h"
#include "ctlproto.h"

#define CLI_DEFAULT_CONFIG "/etc/brokerless/brokerless.conf"
#define CLI_DEFAULT_STATE_DIR "/var/lib/brokerless"
#define CLI_SEE_ALSO "See brokerless(8) and brokerless.conf(5) (man brokerless)."

/* cli_site.c */
int cli_init(int argc, char **argv);
int cli_secret(int argc, char **argv);
int cli_run(int argc, char **argv);
/* cli_check.c */
int cli_check(int argc, char **argv);
/* cli_peer.c */
int cli_peer(int argc, char **argv);
/* cli_ctl.c */
int cli_status(int argc, char **argv);
int cli_ping(int argc, char **argv);
int cli_reload(int argc, char **argv);

/* cli_web.c */
int cli_web(int argc, char **argv);

/* cli.c: parse the command's options, entries (NULL-terminated), with params and summary
 * for its --help: 0, or 2 after printing the error. */
int cli_parse(const char *params, const char *summary, const GOptionEntry *entries, int *argc,
              char ***argv);
/* The same with -c FILE first, then extra (NULL or NULL-terminated): *path is the config
 * file, CLI_DEFAULT_CONFIG when not given (g_free). */
int cli_parse_config(const char *params, const char *summary, const GOptionEntry *extra,
                     char **path, int *argc, char ***argv);
/* Load the config at path into cfg (0), or print "brokerless CMD: the error" (1). */
int cli_load(const char *cmd, const char *path, config_t *cfg);
/* One request to the daemon of cfg, cmd (about peer, or NULL): 0 with its answer (ok or
 * not), else the error in err (BL_ENOTFOUND when no daemon runs). */
int cli_ask(const config_t *cfg, ctl_cmd_t cmd, const char *peer, int timeout_ms, cJSON **answer,
            char *err, size_t errlen);
/* Run as root in a state directory that belongs to another user (the package's
 * "brokerless", as whom the daemon runs), the files named that root made or touched
 * there are given to that user. */
void cli_give_to_dir_owner(const char *dir, const char *const *files, size_t n);
/* The daemon's "error" of a refused answer (borrowed from it), or NULL when ok. */
const char *cli_refusal(const cJSON *answer);

#endif
