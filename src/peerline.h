/* SPDX-License-Identifier: MIT */
/* peerline.h - pairing in one paste (pure).
 *
 * `brokerless init` prints one line that another site's `brokerless peer add` turns into
 * a [peer] section of its config:
 *
 *   brokerless-peer name=home fingerprint=4F:2A:...:9C signal=mqtts://broker.example:8883
 *
 * name and fingerprint are required, signal (the signalling broker this site uses, which
 * the other must share) is told when init knew it; profile=browser is what the browser
 * peer's page adds to its line (the section then says profile = browser); unknown keys
 * are refused. The config
 * file is edited as text, so comments and order stay as the user wrote them. */
#ifndef BL_PEERLINE_H
#define BL_PEERLINE_H

#include <glib.h>

#include "common.h"

#define PEERLINE_TAG "brokerless-peer"

typedef struct peerline {
    char name[BL_SITE_NAME_MAX + 1];
    char fingerprint[96]; /* normalised, AB:CD:... */
    char signal[256];     /* "" when the line has none */
    bool browser;         /* profile=browser */
} peerline_t;

/* The line for a site (g_free); signal may be NULL. */
char *peerline_format(const char *name, const char *fingerprint, const char *signal);
/* Parse a pasted line (surrounding blanks ignored). 0, or BL_EINVAL with why in err. */
int peerline_parse(const char *line, peerline_t *out, char *err, size_t errlen);
/* The [peer] section for the other site's config (g_free): its fingerprint and the rules
 * given, else a narrow commented start: what `self` publishes under self/ goes out, what
 * the peer publishes under its name/ comes in. */
char *peerline_section(const peerline_t *p, const char *self, const char *const *rules,
                       size_t n_rules);
/* `text` with `section` appended, a blank line between (g_free). */
char *peerline_append(const char *text, const char *section);
/* `text` without the [peer NAME] section (its header, keys and comments up to the comments
 * and blank lines that lead into the next section). NULL when there is no such section. */
char *peerline_remove(const char *text, const char *name);

#endif
