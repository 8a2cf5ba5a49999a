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
        /* A config that loads is consistent: every peer has a name and at least one
         * rule, and can be found by name; a webrtc peer has a fingerprint (and the site
         * a secret), an esp32-example peer none but insecure, a role, a broker and a
         * topic base. */
        for (size_t i = 0; i < c.n_peers; i++) {
            const config_peer_t *p = &c.peers[i];
            bool esp = !strcmp(p->mode, "esp32-example");
            bool ok = esp ? !p->fingerprint && p->insecure &&
                                (p->esp_role == 1 || p->esp_role == 2) && p->esp_broker.host &&
                                p->esp_sync_topic
                          : p->fingerprint && strlen(p->fingerprint) == 95 && c.network_secret &&
                                c.signal.host && !p->insecure;
            if (!p->name || !ok || p->n_rules == 0 || config_find_peer(&c, p->name) != p)
                abort();
        }
        config_free(&c);
    } else if (strncmp(err, "fuzz.conf", 9) != 0) {
        abort(); /* every error names the file */
    }
    return 0;
}
