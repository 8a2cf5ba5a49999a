/* SPDX-License-Identifier: MIT */
/* libFuzzer target: config_load_data on arbitrary bytes must return 0 or an error with a
 * message, never crash or leak (run under ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    config_t c;
    int rc = config_load_data((const char *)data, size, "fuzz.conf", &c, err, sizeof(err));
    if (rc == 0) {
        /* A config that loads is consistent: every peer has a name, a fingerprint and
         * at least one rule, and can be found by name. */
        for (size_t i = 0; i < c.n_peers; i++) {
            const config_peer_t *p = &c.peers[i];
            if (!p->name || strlen(p->fingerprint) != 95 || p->n_rules == 0 ||
                config_find_peer(&c, p->name) != p)
                abort();
        }
        config_free(&c);
    } else if (strncmp(err, "fuzz.conf", 9) != 0) {
        abort(); /* every error names the file */
    }
    return 0;
}
