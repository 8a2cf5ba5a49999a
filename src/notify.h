/* SPDX-License-Identifier: MIT */
/* notify.h - telling systemd how the daemon is (sd_notify, libsystemd): READY once the
 * site runs, a STATUS line ("2 of 3 peers open"), RELOADING then READY around a reload,
 * STOPPING, and WATCHDOG pings from the main loop at half the unit's WatchdogSec, so a
 * loop that stalls gets the daemon restarted. Outside systemd (no NOTIFY_SOCKET) every
 * call does nothing. */
#ifndef BL_NOTIFY_H
#define BL_NOTIFY_H

#include <glib.h>

void notify_ready(const char *status);
void notify_status(const char *status);
void notify_reloading(void);
void notify_stopping(void);
/* The watchdog's pings on ctx when the unit asks for them (the source, loop_cancel it
 * at exit), else NULL. */
GSource *notify_watchdog_start(GMainContext *ctx);

#endif
