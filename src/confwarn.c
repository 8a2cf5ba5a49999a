/* SPDX-License-Identifier: MIT */
#include "confwarn.h"

#include <string.h>

#include "secret.h"

static bool loopback(const char *host)
{
    return !g_ascii_strcasecmp(host, "localhost") || !strncmp(host, "127.", 4) ||
           !strcmp(host, "::1");
}

void confwarn_list(const config_t *c, GPtrArray *out)
{
    if (c->local.password && !c->local.tls && !loopback(c->local.host))
        g_ptr_array_add(out, g_strdup_printf("[local] password goes to %s:%d without TLS: anyone "
                                             "on the path can read it (set tls = true)",
                                             c->local.host, c->local.port));
    if (c->signal.password && !c->signal.tls && !loopback(c->signal.host))
        g_ptr_array_add(out, g_strdup_printf("[signal] password goes to %s:%d without TLS: "
                                             "anyone on the path can read it (use mqtts://)",
                                             c->signal.host, c->signal.port));
    for (size_t i = 0; i < c->n_peers; i++) {
        const config_peer_t *p = &c->peers[i];
        if (p->insecure)
            g_ptr_array_add(
                out, g_strdup_printf(
                         "[peer %s] insecure: mode = %s has no encryption and no "
                         "authentication. What crosses this link can be read and forged on "
                         "the way; the board's addresses and ICE credentials are readable on "
                         "%s:%d (topics %s1 and %s2), where anyone can also answer in its "
                         "place",
                         p->name, p->mode, p->esp_broker.host, p->esp_broker.port,
                         p->esp_sync_topic, p->esp_sync_topic));
    }
    unsigned bits = secret_estimate_bits(c->network_secret);
    if (c->network_secret && bits < SECRET_GOOD_BITS)
        g_ptr_array_add(
            out, g_strdup_printf("[signal] the network secret has about %u bits of entropy by a "
                                 "rough estimate, under %d: whoever sees the signalling "
                                 "broker's traffic can search for it offline. Make one with "
                                 "`brokerless secret` and give every site the new one",
                                 bits, SECRET_GOOD_BITS));
}
