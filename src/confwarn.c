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
    if (c->local_password && !c->local_tls && !loopback(c->local_host))
        g_ptr_array_add(out, g_strdup_printf("[local] password goes to %s:%d without TLS: anyone "
                                             "on the path can read it (set tls = true)",
                                             c->local_host, c->local_port));
    if (c->signal_password && !c->signal_tls && !loopback(c->signal_host))
        g_ptr_array_add(out, g_strdup_printf("[signal] password goes to %s:%d without TLS: "
                                             "anyone on the path can read it (use mqtts://)",
                                             c->signal_host, c->signal_port));
    unsigned bits = secret_estimate_bits(c->network_secret);
    if (c->network_secret && bits < SECRET_GOOD_BITS)
        g_ptr_array_add(
            out, g_strdup_printf("[signal] the network secret has about %u bits of entropy by a "
                                 "rough estimate, under %d: whoever sees the signalling "
                                 "broker's traffic can search for it offline. Make one with "
                                 "`brokerless secret` and give every site the new one",
                                 bits, SECRET_GOOD_BITS));
}
