/* SPDX-License-Identifier: MIT */
/* daemon.h - `brokerless run`: the site with its control socket, metrics endpoint,
 * systemd notifications, reloads and clean stop (daemon.c). */
#ifndef BL_DAEMON_H
#define BL_DAEMON_H

/* Run the site of the config file at path until SIGINT or SIGTERM. level: a log_level_t
 * that overrides the config's, or -1. Returns the exit status: 0 after a signal, 1 when
 * it cannot start (config, identity, another daemon on the state directory, database). */
int daemon_run(const char *path, int level);

#endif
