/* SPDX-License-Identifier: MIT */
/* rtc.c - the WebRTC data channel transport: ICE -> DTLS -> SCTP/DCEP (transport.h).
 *
 * The layers are wired bottom-up as each comes up: DTLS starts when ICE has a working
 * pair, SCTP when DTLS is connected, and the link is open when our "brokerless"
 * channel is. Any layer's death is reported once, from an idle callback, so the link
 * may free us without a lower layer still on the stack. */
#include "rtc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "dtls.h"
#include "log.h"
#include "loop.h"
#include "sctp.h"
#include "sdp.h"
#include "wire.h"

#define RTC_LABEL "brokerless"
/* Our SCTP message limit: a whole wire chunk plus fragment header room. */
#define RTC_MAX_MESSAGE (WIRE_MAX_CHUNK + 64)

typedef struct rtc {
    transport_t base;
    GMainContext *ctx;
    char who[96];
    bool offerer;
    const cert_t *cert;
    char peer_fp[96];   /* what the DTLS certificate must be (peerid_dtls_fingerprint) */
    char pinned_fp[96]; /* [peer] fingerprint */
    peerid_profile_t profile;
    size_t max_message;
    size_t window;

    ice_t *ice;
    dtls_t *dtls;
    sctp_t *sctp;
    int stream; /* our channel's stream id, -1 until open */
    bool rx_paused;
    bool open;
    bool have_remote;
    GPtrArray *early_cands; /* remote candidates that came before the description */

    char *fail_why;
    GSource *fail_src;

    transport_events_t ev;
    void *ud;
} rtc_t;

static void rtc_fail(rtc_t *r, const char *why);

static void step(rtc_t *r, transport_phase_t phase, const char *what)
{
    if (r->ev.on_step)
        r->ev.on_step(r->ud, phase, what);
}

/* ---- SCTP ---- */

static int sctp_out(void *ud, const uint8_t *buf, size_t len)
{
    rtc_t *r = ud;
    return r->dtls ? dtls_send(r->dtls, buf, len) : BL_ESTATE;
}

static void sctp_up(void *ud)
{
    rtc_t *r = ud;
    step(r, TRANSPORT_SCTP, "sctp: association up");
    /* The offerer opens the channel; the answerer accepts it (RFC 8832 6). */
    if (r->offerer) {
        int sid = sctp_open_channel(r->sctp, RTC_LABEL, true, -1);
        if (sid < 0)
            rtc_fail(r, "cannot open the data channel");
        else
            r->stream = sid;
    }
}

static void sctp_chan_open(void *ud, uint16_t stream, const char *label)
{
    rtc_t *r = ud;
    if (strcmp(label, RTC_LABEL) != 0) {
        LOG_WARN(r->who, "peer opened an unexpected data channel \"%s\" (stream %u), ignored",
                 label, stream);
        return;
    }
    if (r->open)
        return;
    r->stream = stream;
    r->open = true;
    if (r->rx_paused) /* setting up (notifications, DCEP) was never paused */
        sctp_pause_rx(r->sctp, true);
    step(r, TRANSPORT_SCTP, "channel: open");
    if (r->ev.on_open)
        r->ev.on_open(r->ud);
}

static void sctp_msg(void *ud, uint16_t stream, uint32_t ppid, const uint8_t *buf, size_t len)
{
    rtc_t *r = ud;
    (void)ppid;
    if (!r->open || stream != r->stream)
        return;
    r->ev.on_frame(r->ud, buf, len);
}

static void sctp_writable(void *ud)
{
    rtc_t *r = ud;
    if (r->open && r->ev.on_writable)
        r->ev.on_writable(r->ud);
}

static void sctp_closed(void *ud, const char *why)
{
    rtc_fail(ud, why ? why : "sctp association closed");
}

/* ---- DTLS ---- */

static int dtls_out(void *ud, const uint8_t *buf, size_t len)
{
    rtc_t *r = ud;
    return r->ice ? ice_queue(r->ice, buf, len) : BL_ESTATE;
}

static void dtls_up(void *ud)
{
    rtc_t *r = ud;
    step(r, TRANSPORT_SCTP, "dtls: handshake done, peer fingerprint verified");
    sctp_opts_t so = {.who = r->who,
                      .dtls_client = !r->offerer,
                      .max_message = r->max_message,
                      .window = r->window,
                      .send_buffer = ice_send_buffer(r->ice)};
    sctp_events_t sev = {.send = sctp_out,
                         .on_connected = sctp_up,
                         .on_channel_open = sctp_chan_open,
                         .on_message = sctp_msg,
                         .on_writable = sctp_writable,
                         .on_closed = sctp_closed};
    r->sctp = sctp_new(r->ctx, &so, &sev, r);
    if (!r->sctp || sctp_start(r->sctp))
        rtc_fail(r, "cannot start sctp");
}

static void dtls_data(void *ud, const uint8_t *buf, size_t len)
{
    rtc_t *r = ud;
    if (r->sctp)
        sctp_feed(r->sctp, buf, len);
}

static void dtls_failed(void *ud, const char *why)
{
    rtc_t *r = ud;
    char msg[160];
    snprintf(msg, sizeof(msg), "dtls: %s", why ? why : "failed");
    rtc_fail(r, msg);
}

static void start_dtls(rtc_t *r)
{
    dtls_opts_t o = {.who = r->who,
                     .cert = r->cert,
                     .expected_fp = r->peer_fp,
                     .client = !r->offerer,
                     .mtu = 1200};
    dtls_events_t ev = {
        .send = dtls_out, .on_connected = dtls_up, .on_data = dtls_data, .on_failed = dtls_failed};
    r->dtls = dtls_new(r->ctx, &o, &ev, r);
    if (!r->dtls || dtls_start(r->dtls))
        rtc_fail(r, "cannot start dtls");
}

/* ---- ICE ---- */

static void ice_cand(void *ud, const char *line)
{
    rtc_t *r = ud;
    r->ev.signal(r->ud, TRANSPORT_SIG_CAND, line);
}

static void ice_done(void *ud)
{
    rtc_t *r = ud;
    r->ev.signal(r->ud, TRANSPORT_SIG_EOC, NULL);
}

static void ice_state_cb(void *ud, ice_state_t st)
{
    rtc_t *r = ud;
    if (st == ICE_ST_CONNECTED || st == ICE_ST_READY) {
        char what[200], pair[128] = "";
        ice_selected_pair(r->ice, pair, sizeof(pair));
        snprintf(what, sizeof(what), "ice: %s, path %s %s", ice_state_name(st),
                 ice_path_type(r->ice), pair);
        step(r, TRANSPORT_DTLS, what);
        if (!r->dtls)
            start_dtls(r);
    } else if (st == ICE_ST_FAILED) {
        rtc_fail(r, r->dtls ? "ice: path lost (consent expired)" : "ice: no working path");
    }
}

static void ice_recv(void *ud, const uint8_t *buf, size_t len)
{
    rtc_t *r = ud;
    /* RFC 7983 7: 20..63 is DTLS; STUN never reaches us (libnice eats it). */
    if (len > 0 && buf[0] >= 20 && buf[0] <= 63 && r->dtls)
        dtls_feed(r->dtls, buf, len);
}

/* ---- failure ---- */

static gboolean fail_cb(gpointer p)
{
    rtc_t *r = p;
    r->fail_src = NULL;
    if (r->ev.on_failed)
        r->ev.on_failed(r->ud, r->fail_why ? r->fail_why : "failed");
    return G_SOURCE_REMOVE;
}

static void rtc_fail(rtc_t *r, const char *why)
{
    if (r->fail_why)
        return;
    r->fail_why = strdup(why);
    r->open = false;
    r->fail_src = loop_idle(r->ctx, G_PRIORITY_DEFAULT_IDLE, fail_cb, r);
}

/* ---- transport ops ---- */

static void emit_description(rtc_t *r, transport_sig_t type)
{
    char sid[17];
    uint8_t rnd[8];
    RAND_bytes(rnd, sizeof(rnd));
    for (int i = 0; i < 8; i++)
        snprintf(sid + 2 * i, 3, "%02x", rnd[i]);
    /* The numeric SDP session id only has to be unique; use the random bytes. */
    unsigned long long sess = 0;
    for (int i = 0; i < 7; i++)
        sess = (sess << 8) | rnd[i];
    char sessid[24];
    snprintf(sessid, sizeof(sessid), "%llu", sess);
    char *sdp = sdp_build(sessid, ice_ufrag(r->ice), ice_pwd(r->ice), r->cert->fingerprint,
                          r->offerer ? SDP_SETUP_ACTPASS : SDP_SETUP_ACTIVE, r->max_message);
    r->ev.signal(r->ud, type, sdp);
    g_free(sdp);
}

static int op_start(transport_t *t)
{
    rtc_t *r = (rtc_t *)t;
    if (!r->offerer)
        return 0;
    emit_description(r, TRANSPORT_SIG_OFFER);
    step(r, TRANSPORT_SIGNALLING, "ice: gathering, offer sent");
    return ice_gather(r->ice);
}

static void add_remote_cand(rtc_t *r, const char *line)
{
    if (ice_add_remote_candidate(r->ice, line))
        LOG_DEBUG(r->who, "ignored a remote candidate libnice cannot use");
}

static int take_description(rtc_t *r, const char *body)
{
    sdp_desc_t d;
    if (!body || sdp_parse(body, strlen(body), &d)) {
        LOG_WARN(r->who, "peer sent a malformed session description");
        return BL_EINVAL;
    }
    char dtls_fp[96];
    peerid_dtls_fingerprint(r->profile, r->pinned_fp, &d, dtls_fp);
    if (r->profile == PEERID_BROWSER)
        LOG_INFO(r->who, "browser's signed description names DTLS certificate %s", dtls_fp);
    else if (strcmp(d.fingerprint, r->pinned_fp) != 0)
        /* DTLS would refuse it anyway; saying so here makes the log clearer. */
        LOG_WARN(r->who, "peer's description announces fingerprint %s, pinned is %s", d.fingerprint,
                 r->pinned_fp);
    snprintf(r->peer_fp, sizeof(r->peer_fp), "%s", dtls_fp);
    int rc = ice_set_remote_credentials(r->ice, d.ufrag, d.pwd);
    for (size_t i = 0; !rc && i < d.n_candidates; i++)
        add_remote_cand(r, d.candidates[i]);
    sdp_desc_clear(&d);
    if (rc)
        return rc;
    r->have_remote = true;
    for (guint i = 0; i < r->early_cands->len; i++)
        add_remote_cand(r, g_ptr_array_index(r->early_cands, i));
    g_ptr_array_set_size(r->early_cands, 0);
    return 0;
}

static int op_signal_in(transport_t *t, transport_sig_t type, const char *body)
{
    rtc_t *r = (rtc_t *)t;
    if (type == TRANSPORT_SIG_OFFER && !r->offerer && !r->have_remote) {
        int rc = take_description(r, body);
        if (rc)
            return rc;
        emit_description(r, TRANSPORT_SIG_ANSWER);
        step(r, TRANSPORT_ICE, "ice: offer taken, gathering");
        return ice_gather(r->ice);
    }
    if (type == TRANSPORT_SIG_ANSWER && r->offerer && !r->have_remote) {
        int rc = take_description(r, body);
        if (!rc)
            step(r, TRANSPORT_ICE, "ice: answer taken, checking");
        return rc;
    }
    if (type == TRANSPORT_SIG_CAND && body) {
        if (r->have_remote)
            add_remote_cand(r, body);
        else if (r->early_cands->len < 64)
            g_ptr_array_add(r->early_cands, g_strdup(body));
        return 0;
    }
    if (type == TRANSPORT_SIG_EOC) {
        if (r->have_remote)
            ice_remote_gathering_done(r->ice);
        return 0;
    }
    return BL_EINVAL;
}

static int op_send(transport_t *t, const uint8_t *buf, size_t len)
{
    rtc_t *r = (rtc_t *)t;
    if (!r->open)
        return BL_ESTATE;
    return sctp_send(r->sctp, (uint16_t)r->stream, buf, len);
}

static size_t op_backlog(transport_t *t, size_t notify_below)
{
    rtc_t *r = (rtc_t *)t;
    return r->sctp && r->open ? sctp_backlog(r->sctp, notify_below) : 0;
}

static int op_stats(const transport_t *t, transport_stats_t *out)
{
    const rtc_t *r = (const rtc_t *)t;
    sctp_info_t i;
    sctp_counters_t c;
    memset(out, 0, sizeof(*out));
    int rc = r->sctp ? sctp_get_info(r->sctp, &i) : BL_ESTATE;
    if (rc)
        return rc;
    sctp_get_counters(&c);
    *out = (transport_stats_t){.buffered = i.sndbuf_used,
                               .cwnd = i.cwnd,
                               .peer_rwnd = i.peer_rwnd,
                               .srtt_ms = i.srtt_ms,
                               .rto_ms = i.rto_ms,
                               .unacked = i.unacked,
                               .unread = i.pending,
                               .retrans = c.retrans,
                               .fast_retrans = c.fast_retrans,
                               .timeouts = c.t3_timeouts,
                               .delayed_acks = c.sack_timeouts,
                               .burst_limited = c.burst_limited,
                               .packets_out = c.packets_out,
                               .packets_in = c.packets_in};
    ice_send_stats_t d = ice_send_stats(r->ice);
    out->gso_datagrams = d.gso_datagrams;
    out->dropped_datagrams = d.dropped;
    return 0;
}

static const char *op_path_type(const transport_t *t)
{
    const rtc_t *r = (const rtc_t *)t;
    return ice_path_type(r->ice);
}

static int op_describe(const transport_t *t, char *buf, size_t len)
{
    const rtc_t *r = (const rtc_t *)t;
    return ice_selected_pair(r->ice, buf, len);
}

static void op_free(transport_t *t)
{
    rtc_t *r = (rtc_t *)t;
    if (!r)
        return;
    loop_cancel(&r->fail_src);
    /* Top down, so no lower layer calls into a freed upper one. */
    sctp_free(r->sctp);
    dtls_free(r->dtls);
    ice_free(r->ice);
    if (r->early_cands)
        g_ptr_array_free(r->early_cands, TRUE);
    free(r->fail_why);
    free(r);
}

/* Only an open channel is paused: until then the association's notifications and the
 * channel's DCEP open and ack must be read, or the link could never open. */
static void op_pause_rx(transport_t *t, bool pause)
{
    rtc_t *r = (rtc_t *)t;
    r->rx_paused = pause;
    if (r->sctp && r->open)
        sctp_pause_rx(r->sctp, pause);
}

static const transport_ops_t rtc_ops = {
    .name = "webrtc",
    .start = op_start,
    .signal_in = op_signal_in,
    .send = op_send,
    .backlog = op_backlog,
    .pause_rx = op_pause_rx,
    .stats = op_stats,
    .path_type = op_path_type,
    .describe = op_describe,
    .free = op_free,
};

transport_t *rtc_new(GMainContext *ctx, const rtc_opts_t *opts, const transport_events_t *ev,
                     void *ud)
{
    rtc_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->base.ops = &rtc_ops;
    r->ctx = ctx;
    snprintf(r->who, sizeof(r->who), "%s", opts->who);
    r->offerer = opts->offerer;
    r->cert = opts->cert;
    snprintf(r->pinned_fp, sizeof(r->pinned_fp), "%s", opts->peer_fingerprint);
    snprintf(r->peer_fp, sizeof(r->peer_fp), "%s", opts->peer_fingerprint);
    r->profile = opts->profile;
    r->max_message = opts->max_message ? opts->max_message : RTC_MAX_MESSAGE;
    r->window = opts->window;
    r->stream = -1;
    r->ev = *ev;
    r->ud = ud;
    r->early_cands = g_ptr_array_new_with_free_func(g_free);

    ice_opts_t io = opts->ice;
    io.who = r->who;
    io.controlling = opts->offerer;
    io.recv_buffer = opts->window;
    ice_events_t iev = {.on_candidate = ice_cand,
                        .on_gathering_done = ice_done,
                        .on_state = ice_state_cb,
                        .on_recv = ice_recv};
    r->ice = ice_new(ctx, &io, &iev, r);
    if (!r->ice)
        goto error;
    return &r->base;
error:
    op_free(&r->base);
    return NULL;
}
