/* SPDX-License-Identifier: MIT */
/* transport.c - the kinds of peer, keyed by [peer] mode: the one place that knows which
 * transport, framing and timing each mode has. */
#include "transport.h"

#include <string.h>

#include "compat.h"
#include "rtc.h"

/* [ice] as ice.c takes it. */
static ice_opts_t ice_opts_of(const config_t *c)
{
    /* TURN's allocation already yields our server-reflexive address, and libnice drops
     * the STUN answer when STUN and TURN share host and port (gathering then stalls
     * ~2 s): skip a STUN server that is the TURN server. */
    bool stun_is_turn = c->stun_host && c->turn_host && !strcmp(c->stun_host, c->turn_host) &&
                        c->stun_port == c->turn_port;
    return (ice_opts_t){.stun_host = stun_is_turn ? NULL : c->stun_host,
                        .stun_port = c->stun_port,
                        .turn_host = c->turn_host,
                        .turn_port = c->turn_port,
                        .turn_username = c->turn_username,
                        .turn_password = c->turn_password,
                        .tcp = c->ice_tcp,
                        .force_relay = c->force_relay,
                        .send_host_candidates = c->send_host_candidates};
}

static transport_t *webrtc_create(GMainContext *ctx, const transport_args_t *a,
                                  const transport_events_t *ev, void *ud)
{
    rtc_opts_t o = {
        .who = a->who,
        .offerer = a->offerer,
        .cert = a->cert,
        .peer_fingerprint = a->peer->fingerprint,
        .profile = a->peer->browser ? PEERID_BROWSER : PEERID_SITE,
        .ice = ice_opts_of(a->cfg),
        .window = a->cfg->link_window,
    };
    return rtc_new(ctx, &o, ev, ud);
}

static transport_t *esp32_create(GMainContext *ctx, const transport_args_t *a,
                                 const transport_events_t *ev, void *ud)
{
    compat_opts_t o = {
        .who = a->who, .peer = a->peer, .ice = ice_opts_of(a->cfg), .bad_signal = a->bad_signal};
    o.ice.recv_buffer = a->cfg->link_window;
    return compat_new(ctx, &o, ev, ud);
}

static const transport_kind_t kinds[] = {
    {
        .mode = "webrtc",
        .framing = &framing_wire,
        .sealed = true,
        .connect_timeout_ms = 20000,
        .retry_min_ms = 1000,
        .retry_max_ms = 30000,
        .create = webrtc_create,
    },
    {
        /* The board paces each attempt itself (a handshake a second for 60 s, then 10 s
         * for the descriptions and 90 s for ICE: espsig.h, compat.h), and reboots on any
         * failure: the next attempt starts a second later. */
        .mode = "esp32-example",
        .framing = &framing_esp,
        .sealed = false,
        .connect_timeout_ms = 0,
        .retry_min_ms = 1000,
        .retry_max_ms = 1000,
        .create = esp32_create,
    },
};

const transport_kind_t *transport_kind(const char *mode)
{
    for (size_t i = 0; mode && i < BL_ARRAY_LEN(kinds); i++)
        if (!strcmp(kinds[i].mode, mode))
            return &kinds[i];
    return NULL;
}
