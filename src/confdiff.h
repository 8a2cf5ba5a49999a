/* SPDX-License-Identifier: MIT */
/* confdiff.h - what a reload changes between the running config and a new one (pure).
 *
 * A reload applies [peer] sections and [site] log_level; everything else is read once at
 * start (connections made with it, the database opened from it), so a change there is
 * named and the reload refused, the running config kept. */
#ifndef BL_CONFDIFF_H
#define BL_CONFDIFF_H

#include "config.h"

/* 0 when only peers and log_level differ; else 1 and "[section] key" of the first key
 * that differs in `what` (a restart is needed to apply it). */
int confdiff_needs_restart(const config_t *a, const config_t *b, char *what, size_t len);
/* The peer's link can stay up: same name, fingerprint and mode. */
bool confdiff_same_link(const config_peer_t *a, const config_peer_t *b);
/* Same rules, QoS 0 queueing and retained caps too: nothing about the peer changed. */
bool confdiff_same_peer(const config_peer_t *a, const config_peer_t *b);

#endif
