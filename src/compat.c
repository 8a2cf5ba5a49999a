/* SPDX-License-Identifier: MIT */
/* compat.c - see compat.h: the ESP32 example's signalling and a libnice agent, composed
 * through their callbacks. Failure is reported once, from an idle callback, so the link
 * may free us with nothing of ours on the stack. */
#include "compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "espsig.h"
#include "log.h"
#include "loop.h"

/* A datagram the socket would not take now: the framer keeps it, we ask again soon. */
#define COMPAT_RETRY_SEND_MS 20

typedef struct compat {
    transport_t base;
    GMainContext *ctx;
    char who[96];
    ice_opts_t ice_opts;
    espsig_t *sig;
    ice_t *ice;
    GPtrArray *cands; /* our candidates, until our description is out */
    bool gathered, synced, described, have_remote, open;
    size_t remote_cands;
    GSource *ice_src, *send_src;

    char *fail_why;
    GSource *fail_src;
    transport_events_t ev;
    void *ud;
} compat_t;

static gboolean fail_cb(gpointer p)
{
    compat_t *c = p;
    c->fail_src = NULL;
    c->ev.on_failed(c->ud, c->fail_why);
    return G_SOURCE_REMOVE;
}

static void compat_fail(compat_t *c, const char *why)
{
    if (c->fail_why)
        return;
    c->fail_why = strdup(why ? why : "failed");
    c->open = false;
    loop_cancel(&c->ice_src);
    c->fail_src = loop_idle(c->ctx, G_PRIORITY_DEFAULT, fail_cb, c);
}

static void step(compat_t *c, transport_phase_t phase, const char *what)
{
    if (c->ev.on_step)
        c->ev.on_step(c->ud, phase, what);
}

/* ---- ICE ---- */

static gboolean ice_timeout_cb(gpointer p)
{
    compat_t *c = p;
    c->ice_src = NULL;
    compat_fail(c, "ice: no working path within 90 s of the descriptions");
    return G_SOURCE_REMOVE;
}

/* Both descriptions are out: ICE has COMPAT_ICE_MS, as the board gives it. */
static void maybe_checking(compat_t *c)
{
    if (!c->described || !c->have_remote || c->ice_src || c->open)
        return;
    char what[96];
    snprintf(what, sizeof(what), "esp32: descriptions exchanged, %zu candidates from the board",
             c->remote_cands);
    step(c, TRANSPORT_ICE, what);
    c->ice_src = loop_timeout(c->ctx, COMPAT_ICE_MS, ice_timeout_cb, c);
}

/* Our description, once the handshake is done and every candidate is in. */
static void describe(compat_t *c)
{
    if (!c->synced || !c->gathered || c->described)
        return;
    size_t used = 0;
    char *json = espmsg_desc_build(ice_ufrag(c->ice), ice_pwd(c->ice),
                                   (const char *const *)c->cands->pdata, c->cands->len, &used);
    if (!json) {
        compat_fail(c, "esp32: cannot write our description");
        return;
    }
    if (used < c->cands->len)
        LOG_WARN(c->who,
                 "esp32: %zu of our %u candidates fit the board's message buffer; the rest "
                 "are left out",
                 used, c->cands->len);
    espsig_publish_desc(c->sig, json);
    free(json);
    c->described = true;
    maybe_checking(c);
}

static void ice_cand(void *ud, const char *line)
{
    compat_t *c = ud;
    if (!c->described)
        g_ptr_array_add(c->cands, g_strdup(line));
}

static void ice_gathered(void *ud)
{
    compat_t *c = ud;
    c->gathered = true;
    describe(c);
}

static void ice_state_cb(void *ud, ice_state_t st)
{
    compat_t *c = ud;
    if ((st == ICE_ST_CONNECTED || st == ICE_ST_READY) && !c->open && !c->fail_why) {
        loop_cancel(&c->ice_src);
        c->open = true;
        if (c->ev.on_open)
            c->ev.on_open(c->ud);
    } else if (st == ICE_ST_FAILED) {
        compat_fail(c, c->open ? "ice: path lost (consent expired)" : "ice: no working path");
    }
}

static void ice_recv(void *ud, const uint8_t *buf, size_t len)
{
    compat_t *c = ud;
    if (c->open)
        c->ev.on_frame(c->ud, buf, len);
}

static int start_ice(compat_t *c)
{
    ice_events_t iev = {.on_candidate = ice_cand,
                        .on_gathering_done = ice_gathered,
                        .on_state = ice_state_cb,
                        .on_recv = ice_recv};
    c->ice = ice_new(c->ctx, &c->ice_opts, &iev, c);
    return c->ice ? ice_gather(c->ice) : BL_ENOMEM;
}

/* ---- signalling ---- */

static void sig_synced(void *ud)
{
    compat_t *c = ud;
    c->synced = true;
    step(c, TRANSPORT_SIGNALLING, "esp32: handshake done, gathering");
    if (start_ice(c))
        compat_fail(c, "esp32: cannot start ICE");
}

static void sig_desc(void *ud, const espmsg_desc_t *d)
{
    compat_t *c = ud;
    if (!c->ice || c->fail_why)
        return;
    /* The board writes CRLF; espmsg took the CRs off (libnice's parser splits on LF). */
    if (ice_set_remote_credentials(c->ice, d->ufrag, d->pwd)) {
        compat_fail(c, "esp32: the board's ICE credentials are not usable");
        return;
    }
    for (size_t i = 0; i < d->n_cands; i++)
        c->remote_cands += ice_add_remote_candidate(c->ice, d->cands[i]) == 0;
    /* Every candidate was in it: no trickle, no end-of-candidates line to wait for. */
    ice_remote_gathering_done(c->ice);
    c->have_remote = true;
    maybe_checking(c);
}

static void sig_failed(void *ud, const char *why)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "esp32: %s", why);
    compat_fail(ud, msg);
}

/* ---- transport ops ---- */

static int op_start(transport_t *t)
{
    compat_t *c = (compat_t *)t;
    return espsig_start(c->sig);
}

static gboolean writable_cb(gpointer p)
{
    compat_t *c = p;
    c->send_src = NULL;
    if (c->open && c->ev.on_writable)
        c->ev.on_writable(c->ud);
    return G_SOURCE_REMOVE;
}

static int op_send(transport_t *t, const uint8_t *buf, size_t len)
{
    compat_t *c = (compat_t *)t;
    if (!c->open)
        return BL_ESTATE;
    int rc = ice_send(c->ice, buf, len);
    if (rc == BL_EAGAIN && !c->send_src)
        c->send_src = loop_timeout(c->ctx, COMPAT_RETRY_SEND_MS, writable_cb, c);
    return rc;
}

static const char *op_path_type(const transport_t *t)
{
    const compat_t *c = (const compat_t *)t;
    return ice_path_type(c->ice);
}

static int op_describe(const transport_t *t, char *buf, size_t len)
{
    const compat_t *c = (const compat_t *)t;
    return ice_selected_pair(c->ice, buf, len);
}

static void op_free(transport_t *t)
{
    compat_t *c = (compat_t *)t;
    if (!c)
        return;
    loop_cancel(&c->fail_src);
    loop_cancel(&c->ice_src);
    loop_cancel(&c->send_src);
    espsig_free(c->sig);
    ice_free(c->ice);
    if (c->cands)
        g_ptr_array_free(c->cands, TRUE);
    free(c->fail_why);
    free(c);
}

static const transport_ops_t compat_ops = {
    .name = "esp32-example",
    .start = op_start,
    .send = op_send,
    .path_type = op_path_type,
    .describe = op_describe,
    .free = op_free,
};

transport_t *compat_new(GMainContext *ctx, const compat_opts_t *o, const transport_events_t *ev,
                        void *ud)
{
    compat_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->base.ops = &compat_ops;
    c->ctx = ctx;
    snprintf(c->who, sizeof(c->who), "%s", o->who);
    c->ice_opts = o->ice;
    c->ice_opts.who = c->who;
    c->ice_opts.controlling = false;
    c->ev = *ev;
    c->ud = ud;
    c->cands = g_ptr_array_new_with_free_func(g_free);
    espsig_events_t sev = {.on_synced = sig_synced, .on_desc = sig_desc, .on_failed = sig_failed};
    c->sig = espsig_new(ctx, c->who, o->peer, o->bad_signal, &sev, c);
    if (!c->sig) {
        op_free(&c->base);
        return NULL;
    }
    return &c->base;
}
