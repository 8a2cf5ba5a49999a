/* SPDX-License-Identifier: MIT */
/* fake_signaling.c - signaling.h played by the test (fake_signaling.h). */
#include "fake_signaling.h"

#include <stdlib.h>

struct signaling {
    signaling_events_t ev;
    void *ud;
    unsigned starts;
    bool connected;
    signaling_stats_t stats;
};

static signaling_t *g_sig;

signaling_t *fake_signaling(void)
{
    return g_sig;
}

signaling_t *signaling_new(GMainContext *ctx, const config_t *cfg, const cert_t *cert,
                           const signaling_events_t *ev, void *ud)
{
    (void)ctx, (void)cfg, (void)cert;
    signaling_t *s = calloc(1, sizeof(*s));
    s->ev = *ev;
    s->ud = ud;
    g_sig = s;
    return s;
}

int signaling_rebind(signaling_t *s, const config_t *cfg)
{
    (void)s, (void)cfg;
    return 0;
}

int signaling_start(signaling_t *s)
{
    s->starts++;
    return 0;
}

int signaling_send(signaling_t *s, const char *to, const char *type, const char *sid,
                   const char *body)
{
    (void)to, (void)type, (void)sid, (void)body;
    s->stats.sent++;
    return s->connected ? 0 : BL_EAGAIN;
}

bool signaling_connected(const signaling_t *s)
{
    return s->connected;
}

const signaling_stats_t *signaling_stats(const signaling_t *s)
{
    return &s->stats;
}

void signaling_free(signaling_t *s)
{
    if (g_sig == s)
        g_sig = NULL;
    free(s);
}

unsigned fake_signaling_starts(const signaling_t *s)
{
    return s->starts;
}

void fake_signaling_connect(signaling_t *s)
{
    s->connected = true;
    s->ev.on_connect(s->ud);
}
