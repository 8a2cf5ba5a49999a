/* SPDX-License-Identifier: MIT */
/* fake_signaling.h - signaling.h without a broker, for test_site: it records whether the
 * site started signalling (links open only after it) and lets the test connect it. */
#ifndef BL_FAKE_SIGNALING_H
#define BL_FAKE_SIGNALING_H

#include "signaling.h"

/* The site's signaling_t, NULL before site_new and after site_free. */
signaling_t *fake_signaling(void);
/* How many times the site called signaling_start. */
unsigned fake_signaling_starts(const signaling_t *s);
/* The signalling broker accepts us (on_connect: the site tells its links). */
void fake_signaling_connect(signaling_t *s);

#endif
