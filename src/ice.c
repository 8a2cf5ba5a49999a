/* SPDX-License-Identifier: MIT */
/* ice.c - one ICE session (RFC 8445) on libnice 0.1.21: one stream, one component.
 *
 * Threading: everything runs on the caller's GMainContext; libnice emits its signals
 * and delivers datagrams there.
 *
 * Re-entrancy: a callback may call any ice_* function, including ice_free on its own
 * session. libnice forbids dropping the last agent reference inside one of its own
 * signal emissions or receive callbacks, so while a callback of ours is running
 * ice_free only disconnects every handler (nothing is called back after ice_free
 * returns) and the teardown happens when the outermost handler returns; the agent
 * reference itself is then dropped from an idle source on the context.
 *
 * Over 600 lines: libnice's signal handlers, candidate gathering, the socket buffers and
 * the queued sends (ice_queue: the selected pair's socket, libnice's send as fallback)
 * all work on one agent under the re-entrancy rule above; apart they would each need it
 * restated. The pure parts are sdp.c (SDP candidate lines) and udpgso.c (which queued
 * datagrams share one segmented send). */
#include "ice.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <nice/agent.h>

#include "log.h"
#include "loop.h"
#include "udpgso.h"

#define ICE_COMPONENT 1
#define ICE_STREAM_NAME "application"
/* The largest datagram we hand to libnice (UDP payload; ours are ~1200 bytes). */
#define ICE_MAX_DATAGRAM 65507
#define ICE_MIN_RCVBUF (4 * 1024 * 1024)
#define ICE_SNDBUF (1024 * 1024)

struct ice {
    NiceAgent *agent;
    GMainContext *ctx;
    guint stream_id;
    char *who;
    ice_opts_t opts;    /* string fields point into the owned copies below */
    size_t send_buffer; /* the smallest SO_SNDBUF of our sockets (ice_grow_buffers) */
    char *stun_ip, *turn_ip, *turn_user, *turn_pass;
    ice_events_t ev;
    void *ud;

    ice_state_t state;
    char *ufrag, *pwd;
    bool gather_called;     /* ice_gather ran for the current stream */
    bool have_remote_creds; /* remote candidates are buffered until then */
    bool remote_eoc;
    GPtrArray *pending; /* NiceCandidate * parsed before the credentials came */

    char local_type[8], remote_type[8];
    char pair[2 * (INET6_ADDRSTRLEN + 8) + 8];

    int depth; /* > 0 while one of our libnice handlers runs */
    bool dead; /* ice_free was called during a handler */

    /* Consent lapses (see ice_consent_lapsed): when libnice's 10 s consent timer ran out
     * and we re-armed it; 0 = no lapse outstanding. */
    gint64 lapse_us;
    bool rearming; /* inside our nice_agent_set_selected_pair: its signals are ours */

    /* ice_queue: datagrams of this turn of the loop, sent by send_queued (udpgso.h). */
    udpgso_queue_t outq;
    GSource *outq_src;
    bool gso_off;    /* this pair takes no segmented sends: all through libnice */
    bool gso_probed; /* the socket of the selected pair was asked (udpgso_supported) */
    bool sending;    /* inside send_queued */
    ice_send_stats_t sent;
};

static void ice_destroy(ice_t *ice);
static void send_queued(ice_t *ice);

/* ---- helpers ---- */

static const char *ice_cand_type(NiceCandidateType t)
{
    switch (t) {
    case NICE_CANDIDATE_TYPE_HOST:
        return "host";
    case NICE_CANDIDATE_TYPE_SERVER_REFLEXIVE:
        return "srflx";
    case NICE_CANDIDATE_TYPE_PEER_REFLEXIVE:
        return "prflx";
    case NICE_CANDIDATE_TYPE_RELAYED:
        return "relay";
    default:
        return "";
    }
}

/* A host name or literal to a numeric IPv4/IPv6 string (blocking getaddrinfo; config
 * time only, and literals do not touch the network). */
static char *ice_resolve(const char *who, const char *host)
{
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;
    char buf[INET6_ADDRSTRLEN];
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        LOG_WARN(who, "cannot resolve %s: %s", host, gai_strerror(rc));
        return NULL;
    }
    rc = getnameinfo(res->ai_addr, res->ai_addrlen, buf, sizeof(buf), NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(res);
    return rc == 0 ? g_strdup(buf) : NULL;
}

static int ice_add_local(ice_t *ice, const char *ip)
{
    NiceAddress a;
    if (!nice_address_set_from_string(&a, ip)) {
        LOG_WARN(ice->who, "bad local address %s", ip);
        return BL_EINVAL;
    }
    if (!nice_agent_add_local_address(ice->agent, &a))
        return BL_EIO;
    LOG_DEBUG(ice->who, "local address %s", ip);
    return 0;
}

/* Host candidates come only from addresses we chose: IPv4 on interfaces that are up,
 * not loopback and not link-local (169.254/16). libnice's own enumeration would add
 * IPv6 link-local addresses, which are often derived from the MAC address and so leak
 * it to the peer and the signalling path. Loopback is used only when nothing else
 * exists (a host with no network still gets a working, if local-only, agent). */
static int ice_add_local_addresses(ice_t *ice, const char *const *explicit_addrs)
{
    int n = 0;
    if (explicit_addrs) {
        for (; explicit_addrs[n]; n++)
            if (ice_add_local(ice, explicit_addrs[n]))
                return BL_EINVAL;
        return n ? 0 : BL_EINVAL;
    }
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) != 0)
        return BL_EIO;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP) ||
            (i->ifa_flags & IFF_LOOPBACK))
            continue;
        const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;
        uint32_t h = ntohl(sin->sin_addr.s_addr);
        char ip[INET_ADDRSTRLEN];
        if ((h >> 16) == 0xA9FE || (h >> 24) == 127 ||
            !inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)))
            continue;
        if (ice_add_local(ice, ip) == 0)
            n++;
    }
    freeifaddrs(ifa);
    if (n == 0) {
        LOG_WARN(ice->who, "no usable IPv4 interface address; using loopback only");
        return ice_add_local(ice, "127.0.0.1");
    }
    return 0;
}

static void ice_clear_pending(ice_t *ice)
{
    if (ice->pending)
        g_ptr_array_set_size(ice->pending, 0);
}

/* ---- libnice signal handlers (each wrapped in enter/leave, see the file comment) ---- */

/* ICE has a path the peer consents to (RFC 7675): sends may go. */
static bool ice_up(const ice_t *ice)
{
    return ice->state == ICE_ST_CONNECTED || ice->state == ICE_ST_READY;
}

static void ice_enter(ice_t *ice)
{
    ice->depth++;
}

static void ice_leave(ice_t *ice)
{
    if (--ice->depth == 0 && ice->dead)
        ice_destroy(ice);
}

static void ice_set_state(ice_t *ice, ice_state_t st)
{
    if (st == ice->state)
        return;
    /* FAILED is final for a session (ice.h): later libnice transitions on the same
     * stream (a late check answered) would confuse the link layer; it restarts. */
    if (ice->state == ICE_ST_FAILED) {
        LOG_DEBUG(ice->who, "ignoring ICE state %s after failure", ice_state_name(st));
        return;
    }
    LOG_INFO(ice->who, "ICE %s -> %s", ice_state_name(ice->state), ice_state_name(st));
    ice->state = st;
    if (ice->ev.on_state)
        ice->ev.on_state(ice->ud, st);
}

static void ice_record_pair(ice_t *ice, NiceCandidate *l, NiceCandidate *r)
{
    char la[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN];
    nice_address_to_string(&l->addr, la);
    nice_address_to_string(&r->addr, ra);
    g_strlcpy(ice->local_type, ice_cand_type(l->type), sizeof(ice->local_type));
    g_strlcpy(ice->remote_type, ice_cand_type(r->type), sizeof(ice->remote_type));
    snprintf(ice->pair, sizeof(ice->pair), "%s:%u <-> %s:%u", la, nice_address_get_port(&l->addr),
             ra, nice_address_get_port(&r->addr));
}

static void ice_refresh_pair(ice_t *ice)
{
    NiceCandidate *l = NULL, *r = NULL;
    if (nice_agent_get_selected_pair(ice->agent, ice->stream_id, ICE_COMPONENT, &l, &r) && l && r)
        ice_record_pair(ice, l, r);
}

/* Consent freshness (RFC 7675) as libnice 0.1.21 implements it, and why we stretch it.
 *
 * libnice (agent/conncheck.c, priv_conn_keepalive_tick_unlocked) sends one Binding request
 * on the selected pair every 5 s +-20%, at least 4 s apart (NICE_AGENT_TIMER_CONSENT_DEFAULT,
 * _MIN_CONSENT_INTERVAL in agent-priv.h), as a bare send with no STUN retransmission timer (so
 * "stun-max-retransmissions", "stun-initial-timeout" and "stun-reliable-timeout" do not apply;
 * "keepalive-conncheck" is implied; "idle-timeout" is about the check list). Any response
 * resets a timer (priv_conn_remote_consent_tick_agent_locked) that revokes consent, moving
 * the component to FAILED, after NICE_AGENT_TIMER_CONSENT_TIMEOUT = 10 s: not RFC 7675 5.1's
 * 30 s, and no property changes it. With checks 4-6 s apart, one lost request or response
 * is fatal whenever the next check falls more than 10 s after the last answered one (about
 * half the time): at 5% loss each way (9.75% per round trip) a lapse every ~100 s per side
 * (simulated); the NAT lab dropped the link every 10-40 s.
 *
 * So one lapse is not a failure. We re-arm libnice with nice_agent_set_selected_pair on the
 * same pair (consent back, READY again, a fresh 10 s timer from its next check 0-6 s later;
 * it also empties the check list) and declare the path lost only on a second lapse within
 * ICE_LAPSE_WINDOW_MS with no sign of life in between. Signs of life: the second lapse comes
 * later than that (a response must have reset the timer), or libnice gets to READY again by
 * itself (the peer's next consent check hits the emptied check list, and the triggered check
 * we answer with, a real STUN transaction with retransmissions, succeeded). A dead path is
 * thus declared 20-26 s after its last response (10 s, re-arm, 0-6 s, 10 s): 14-26 s after
 * it died, within RFC 7675's 30 s. A false failure needs a lapse, then no answer to the
 * next 1-2 checks and none of the peer's 2-3 checks arriving: ~2e-4 of lapses at 5% loss,
 * over 100 h apart per side (simulated; 420 s in the lab: 6 lapses, no failure). Side
 * effect: libnice's later consent checks carry PRIORITY 0 (set_selected_pair does not
 * keep the pair's STUN priority); libnice peers accept that (seen in test_ice). */
#define ICE_LIBNICE_CONSENT_MS 10000 /* NICE_AGENT_TIMER_CONSENT_TIMEOUT */
#define ICE_LAPSE_WINDOW_MS (ICE_LIBNICE_CONSENT_MS + 6000 + 500) /* + max check gap, slack */

/* Re-select the current pair so that libnice grants consent again. False if it did not
 * come back as the same pair (then the path is given up). */
static bool ice_rearm_consent(ice_t *ice)
{
    NiceCandidate *l = NULL, *r = NULL;
    if (!nice_agent_get_selected_pair(ice->agent, ice->stream_id, ICE_COMPONENT, &l, &r) || !l ||
        !r)
        return false;
    char lf[NICE_CANDIDATE_MAX_FOUNDATION], rf[NICE_CANDIDATE_MAX_FOUNDATION];
    NiceAddress la = l->addr, ra = r->addr;
    g_strlcpy(lf, l->foundation, sizeof(lf));
    g_strlcpy(rf, r->foundation, sizeof(rf));
    ice->rearming = true; /* its CONNECTING/CONNECTED/READY and selected-pair signals */
    gboolean ok = nice_agent_set_selected_pair(ice->agent, ice->stream_id, ICE_COMPONENT, lf, rf);
    ice->rearming = false;
    l = r = NULL;
    return ok && nice_agent_get_selected_pair(ice->agent, ice->stream_id, ICE_COMPONENT, &l, &r) &&
           l && r && nice_address_equal(&l->addr, &la) && nice_address_equal(&r->addr, &ra) &&
           nice_agent_get_component_state(ice->agent, ice->stream_id, ICE_COMPONENT) ==
               NICE_COMPONENT_STATE_READY;
}

/* libnice revoked consent on a working path. True when we re-armed it and the path stays
 * up; false when it is lost (see the comment above for the numbers). */
static bool ice_consent_lapsed(ice_t *ice)
{
    gint64 now = g_get_monotonic_time();
    if (ice->lapse_us && now - ice->lapse_us <= ICE_LAPSE_WINDOW_MS * 1000LL) {
        LOG_WARN(ice->who, "ICE path lost (consent expired: no response for ~%lld s, RFC 7675 5.1)",
                 (long long)((now - ice->lapse_us) / 1000000 + ICE_LIBNICE_CONSENT_MS / 1000));
        return false;
    }
    if (!ice_rearm_consent(ice)) {
        LOG_WARN(ice->who, "ICE path lost (consent expired, RFC 7675 5.1; could not re-arm)");
        return false;
    }
    ice->lapse_us = now;
    LOG_INFO(ice->who, "no consent response for %d s (lossy path?); checking once more",
             ICE_LIBNICE_CONSENT_MS / 1000);
    return true;
}

static void on_state_changed(NiceAgent *agent, guint stream_id, guint component_id, guint state,
                             gpointer data)
{
    ice_t *ice = data;
    (void)agent;
    if (stream_id != ice->stream_id || component_id != ICE_COMPONENT)
        return;
    ice_state_t st;
    switch (state) {
    case NICE_COMPONENT_STATE_DISCONNECTED:
        st = ICE_ST_NEW;
        break;
    case NICE_COMPONENT_STATE_GATHERING:
        st = ICE_ST_GATHERING;
        break;
    case NICE_COMPONENT_STATE_CONNECTING:
        st = ICE_ST_CONNECTING;
        break;
    case NICE_COMPONENT_STATE_CONNECTED:
        st = ICE_ST_CONNECTED;
        break;
    case NICE_COMPONENT_STATE_READY:
        st = ICE_ST_READY;
        break;
    case NICE_COMPONENT_STATE_FAILED:
        st = ICE_ST_FAILED;
        break;
    default:
        return;
    }
    /* libnice restarts at DISCONNECTED only through a restart, which we announce. */
    if ((st == ICE_ST_NEW && ice->state != ICE_ST_NEW) || ice->rearming)
        return;
    bool up = ice_up(ice);
    if (up && ice->lapse_us && st != ICE_ST_FAILED) {
        /* After a re-arm: libnice only moves on through a new check pair that works. */
        if (st == ICE_ST_READY) {
            LOG_DEBUG(ice->who, "consent: a check got through again");
            ice->lapse_us = 0;
        }
        return;
    }
    ice_enter(ice);
    if (up && st == ICE_ST_FAILED && ice_consent_lapsed(ice)) {
        ice_leave(ice);
        return;
    }
    if (st == ICE_ST_CONNECTED || st == ICE_ST_READY)
        ice_refresh_pair(ice);
    ice_set_state(ice, st);
    ice_leave(ice);
}

static void on_selected_pair(NiceAgent *agent, guint stream_id, guint component_id,
                             NiceCandidate *l, NiceCandidate *r, gpointer data)
{
    ice_t *ice = data;
    (void)agent;
    if (stream_id != ice->stream_id || component_id != ICE_COMPONENT || !l || !r || ice->rearming)
        return;
    ice_record_pair(ice, l, r);
    ice->gso_off = ice->gso_probed = false; /* a new pair, maybe a new socket: ask again */
    LOG_INFO(ice->who, "ICE selected %s -> %s: %s", ice->local_type, ice->remote_type, ice->pair);
}

static void on_new_candidate(NiceAgent *agent, NiceCandidate *c, gpointer data)
{
    ice_t *ice = data;
    if (c->stream_id != ice->stream_id || c->component_id != ICE_COMPONENT)
        return;
    if (c->type == NICE_CANDIDATE_TYPE_HOST && !ice->opts.send_host_candidates)
        return;
    gchar *line = nice_agent_generate_local_candidate_sdp(agent, c);
    if (!line)
        return;
    LOG_DEBUG(ice->who, "local candidate %s", line);
    ice_enter(ice);
    if (ice->ev.on_candidate)
        ice->ev.on_candidate(ice->ud, line);
    g_free(line);
    ice_leave(ice);
}

static void on_gathering_done(NiceAgent *agent, guint stream_id, gpointer data)
{
    ice_t *ice = data;
    (void)agent;
    if (stream_id != ice->stream_id)
        return;
    LOG_DEBUG(ice->who, "ICE gathering done");
    ice_enter(ice);
    if (ice->ev.on_gathering_done)
        ice->ev.on_gathering_done(ice->ud);
    ice_leave(ice);
}

static void on_recv(NiceAgent *agent, guint stream_id, guint component_id, guint len, gchar *buf,
                    gpointer data)
{
    ice_t *ice = data;
    (void)agent;
    if (stream_id != ice->stream_id || component_id != ICE_COMPONENT || ice->dead)
        return;
    ice_enter(ice);
    if (ice->ev.on_recv)
        ice->ev.on_recv(ice->ud, (const uint8_t *)buf, len);
    ice_leave(ice);
}

/* ---- construction ---- */

/* A fresh stream: new credentials (RFC 8445 9: a restart changes ufrag and pwd) and no
 * remote state. Used by ice_new and ice_restart. */
static int ice_open_stream(ice_t *ice)
{
    ice->stream_id = nice_agent_add_stream(ice->agent, 1);
    if (!ice->stream_id)
        return BL_EIO;
    /* nice_agent_parse_remote_sdp needs a name; also shows in libnice's debug output. */
    nice_agent_set_stream_name(ice->agent, ice->stream_id, ICE_STREAM_NAME);
    if (ice->turn_ip) {
        nice_agent_set_relay_info(ice->agent, ice->stream_id, ICE_COMPONENT, ice->turn_ip,
                                  (guint)ice->opts.turn_port, ice->turn_user, ice->turn_pass,
                                  NICE_RELAY_TYPE_TURN_UDP);
        /* TURN over TCP to the server helps where outbound UDP is blocked; only worth
         * it when the site asked for TCP at all. */
        if (ice->opts.tcp)
            nice_agent_set_relay_info(ice->agent, ice->stream_id, ICE_COMPONENT, ice->turn_ip,
                                      (guint)ice->opts.turn_port, ice->turn_user, ice->turn_pass,
                                      NICE_RELAY_TYPE_TURN_TCP);
    }
    g_free(ice->ufrag);
    g_free(ice->pwd);
    ice->ufrag = ice->pwd = NULL;
    if (!nice_agent_get_local_credentials(ice->agent, ice->stream_id, &ice->ufrag, &ice->pwd))
        return BL_EIO;
    if (!nice_agent_attach_recv(ice->agent, ice->stream_id, ICE_COMPONENT, ice->ctx, on_recv, ice))
        return BL_EIO;
    ice->gather_called = ice->have_remote_creds = ice->remote_eoc = false;
    ice->lapse_us = 0;
    ice->local_type[0] = ice->remote_type[0] = ice->pair[0] = '\0';
    ice_clear_pending(ice);
    return 0;
}

/* A STUN or TURN server (what) given as host and port: its address in *ip. None given is
 * no error (*ip stays NULL). */
static int resolve_server(ice_t *ice, const char *what, const char *host, int port, char **ip)
{
    if (!host || !*host)
        return 0;
    if (port <= 0 || port > 65535) {
        LOG_ERROR(ice->who, "bad %s port %d", what, port);
        return BL_EINVAL;
    }
    *ip = ice_resolve(ice->who, host);
    return *ip ? 0 : BL_EINVAL;
}

static int ice_copy_opts(ice_t *ice, const ice_opts_t *o)
{
    ice->opts = *o;
    ice->who = g_strdup(o->who ? o->who : "ice");
    ice->opts.who = ice->who;
    ice->opts.local_addrs = NULL; /* only used during ice_new */
    if (resolve_server(ice, "STUN", o->stun_host, o->stun_port, &ice->stun_ip) ||
        resolve_server(ice, "TURN", o->turn_host, o->turn_port, &ice->turn_ip))
        return BL_EINVAL;
    if (ice->turn_ip) {
        ice->turn_user = g_strdup(o->turn_username ? o->turn_username : "");
        ice->turn_pass = g_strdup(o->turn_password ? o->turn_password : "");
    }
    ice->opts.stun_host = ice->stun_ip;
    ice->opts.turn_host = ice->turn_ip;
    ice->opts.turn_username = ice->turn_user;
    ice->opts.turn_password = ice->turn_pass;
    return 0;
}

/* Nomination (RFC 8445 8.1.1; RFC 5245 8.1.1.2 for aggressive): libnice reports
 * CONNECTED only once a pair is nominated. With regular nomination the controlling
 * agent nominates after its stopping criterion, so one higher-priority pair that never
 * answers (the peer's private address, which lands in our own LAN behind a NAT) holds
 * the session for ~2 s: measured 2053 ms with a black-holed candidate in test_ice (41 ms
 * with aggressive nomination), ~2.05 s in the NAT lab (WEBRTC-NOTES). With aggressive nomination
 * every check carries USE-CANDIDATE, the first pair that works is selected (~50 ms) and libnice
 * moves the selection to a better pair if one succeeds later. The product target is a first message
 * within 1 s on a direct path, so we nominate aggressively. The controlled side follows whatever
 * the controlling side does, so a regular-nominating peer (a browser) interoperates either way. */
static NiceAgentOption ice_agent_options(void)
{
    return NICE_AGENT_OPTION_ICE_TRICKLE | NICE_AGENT_OPTION_CONSENT_FRESHNESS;
}

ice_t *ice_new(GMainContext *ctx, const ice_opts_t *opts, const ice_events_t *ev, void *ud)
{
    if (!opts)
        return NULL;
    ice_t *ice = g_new0(ice_t, 1);
    ice->ctx = ctx ? g_main_context_ref(ctx) : g_main_context_ref_thread_default();
    ice->ev = ev ? *ev : (ice_events_t){0};
    ice->ud = ud;
    ice->state = ICE_ST_NEW;
    ice->pending = g_ptr_array_new_with_free_func((GDestroyNotify)nice_candidate_free);
    if (ice_copy_opts(ice, opts))
        goto error;
    ice->agent = nice_agent_new_full(ice->ctx, NICE_COMPATIBILITY_RFC5245, ice_agent_options());
    if (!ice->agent)
        goto error;
    g_object_set(ice->agent, "controlling-mode", (gboolean)opts->controlling, "upnp", FALSE,
                 "ice-udp", TRUE, "ice-tcp", (gboolean)opts->tcp, "force-relay",
                 (gboolean)opts->force_relay, NULL);
    if (ice->stun_ip)
        g_object_set(ice->agent, "stun-server", ice->stun_ip, "stun-server-port",
                     (guint)opts->stun_port, NULL);
    if (ice_add_local_addresses(ice, opts->local_addrs))
        goto error;
    g_signal_connect(ice->agent, "component-state-changed", G_CALLBACK(on_state_changed), ice);
    g_signal_connect(ice->agent, "new-selected-pair-full", G_CALLBACK(on_selected_pair), ice);
    g_signal_connect(ice->agent, "new-candidate-full", G_CALLBACK(on_new_candidate), ice);
    g_signal_connect(ice->agent, "candidate-gathering-done", G_CALLBACK(on_gathering_done), ice);
    if (ice_open_stream(ice))
        goto error;
    return ice;
error:
    LOG_ERROR(ice->who ? ice->who : "ice", "cannot set up the ICE agent");
    ice_destroy(ice);
    return NULL;
}

/* ---- socket buffers ---- */

int ice_buffer_advice(size_t want_rcv, size_t got_rcv, size_t want_snd, size_t got_snd, char *buf,
                      size_t len)
{
    /* 0: not known (no socket answered), nothing to say */
    bool rcv_short = got_rcv && got_rcv / 2 < want_rcv,
         snd_short = got_snd && got_snd / 2 < want_snd;
    if (!rcv_short && !snd_short)
        return 0;
    char rmem[64] = "", wmem[64] = "";
    if (rcv_short)
        snprintf(rmem, sizeof(rmem), " net.core.rmem_max=%zu", want_rcv);
    if (snd_short)
        snprintf(wmem, sizeof(wmem), " net.core.wmem_max=%zu", want_snd);
    snprintf(buf, len,
             "UDP socket buffers are smaller than asked (receive %zu of %zu KiB, send %zu of %zu "
             "KiB): without CAP_NET_ADMIN the kernel caps them at net.core.rmem_max and "
             "wmem_max, and a burst past them is dropped and sent again, slowly. Raise the "
             "caps: sysctl -w%s%s (and in a file in /etc/sysctl.d/ to keep them)",
             got_rcv / 2 / 1024, want_rcv / 1024, got_snd / 2 / 1024, want_snd / 1024, rmem, wmem);
    return 1;
}

/* The smallest of what getsockopt reports for opt over socks. */
static size_t buffer_got(GPtrArray *socks, int opt)
{
    size_t least = 0;
    for (guint i = 0; i < socks->len; i++) {
        int fd = g_socket_get_fd(g_ptr_array_index(socks, i)), got = 0;
        socklen_t len = sizeof(got);
        if (fd >= 0 && getsockopt(fd, SOL_SOCKET, opt, &got, &len) == 0 && got > 0 &&
            (!least || (size_t)got < least))
            least = (size_t)got;
    }
    return least;
}

/* libnice's UDP sockets keep the kernel's default buffers (~200 KiB). SCTP sends a
 * window's worth of datagrams at once; when our single thread is busy for a moment a
 * default receive buffer overflows, the datagrams are dropped (RcvbufErrors), and SCTP
 * waits out retransmission timeouts: measured in the lab, 21 drops turned a 100k-message
 * transfer from seconds into 40 s. At least 4 MiB, and what the peer may have in flight
 * (opts.recv_buffer: the link's window; the kernel's skb overhead roughly takes the
 * doubling it applies to the value). SO_RCVBUFFORCE goes past net.core.rmem_max when we
 * may (root); otherwise the kernel caps SO_RCVBUF. */
static void ice_grow_buffers(ice_t *ice)
{
    static bool warned; /* once per process: the caps are the system's */
    GPtrArray *socks = nice_agent_get_sockets(ice->agent, ice->stream_id, ICE_COMPONENT);
    if (!socks)
        return;
    size_t want = BL_MAX(ice->opts.recv_buffer, (size_t)ICE_MIN_RCVBUF);
    int rcv = (int)BL_MIN(want, (size_t)INT_MAX / 2), snd = ICE_SNDBUF;
    for (guint i = 0; i < socks->len; i++) {
        int fd = g_socket_get_fd(g_ptr_array_index(socks, i));
        if (fd < 0)
            continue;
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) != 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)) != 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
    }
    ice->send_buffer = buffer_got(socks, SO_SNDBUF);
    char advice[512];
    if (socks->len && !warned &&
        ice_buffer_advice((size_t)rcv, buffer_got(socks, SO_RCVBUF), (size_t)snd, ice->send_buffer,
                          advice, sizeof(advice))) {
        warned = true;
        LOG_WARN(ice->who, "%s", advice);
    }
    g_ptr_array_unref(socks);
}

/* ---- public calls ---- */

int ice_gather(ice_t *ice)
{
    if (!ice || ice->dead)
        return BL_EINVAL;
    if (ice->gather_called)
        return BL_ESTATE;
    if (!nice_agent_gather_candidates(ice->agent, ice->stream_id)) {
        LOG_ERROR(ice->who, "ICE gathering failed to start (no usable local address?)");
        return BL_EIO;
    }
    ice_grow_buffers(ice);
    ice->gather_called = true;
    return 0;
}

size_t ice_send_buffer(const ice_t *ice)
{
    return ice ? ice->send_buffer : 0;
}

const char *ice_ufrag(const ice_t *ice)
{
    return ice && ice->ufrag ? ice->ufrag : "";
}

const char *ice_pwd(const ice_t *ice)
{
    return ice && ice->pwd ? ice->pwd : "";
}

/* RFC 8839 5.4: ice-char = ALPHA / DIGIT / "+" / "/"; ufrag 4..256, pwd 22..256. We
 * accept any visible ASCII within 1..256 so odd peers still work, but nothing that could
 * break a signalling line. */
static bool ice_cred_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 256)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* Hand over candidates buffered before the credentials, then a buffered end-of-cands. */
static void ice_flush_pending(ice_t *ice)
{
    GSList *list = NULL;
    for (guint i = ice->pending->len; i > 0; i--)
        list = g_slist_prepend(list, g_ptr_array_index(ice->pending, i - 1));
    if (list &&
        nice_agent_set_remote_candidates(ice->agent, ice->stream_id, ICE_COMPONENT, list) < 0)
        LOG_WARN(ice->who, "libnice refused %u buffered remote candidates", ice->pending->len);
    g_slist_free(list);
    ice_clear_pending(ice);
    if (ice->remote_eoc)
        nice_agent_peer_candidate_gathering_done(ice->agent, ice->stream_id);
}

int ice_set_remote_credentials(ice_t *ice, const char *ufrag, const char *pwd)
{
    if (!ice || ice->dead || !ice_cred_valid(ufrag) || !ice_cred_valid(pwd))
        return BL_EINVAL;
    if (!nice_agent_set_remote_credentials(ice->agent, ice->stream_id, ufrag, pwd))
        return BL_EIO;
    /* Candidates are held back until now: libnice gives up on a check it cannot sign
     * (no remote password yet) instead of waiting. */
    ice->have_remote_creds = true;
    ice_flush_pending(ice);
    return 0;
}

/* Normalise to the "a=candidate:..." form libnice's parser wants, and check the fields
 * its parser dereferences unchecked (RFC 8839 5.1: foundation component transport
 * priority address port "typ" type ...; TCP candidates need "tcptype"). */
static char *ice_normalise_candidate(const char *line)
{
    if (!line || strlen(line) > 1024)
        return NULL;
    if (g_str_has_prefix(line, "a="))
        line += 2;
    if (g_str_has_prefix(line, "candidate:"))
        line += 10;
    char *s = g_strdup_printf("a=candidate:%s", line);
    g_strstrip(s + 12); /* trailing CR/LF from CRLF SDP, stray blanks */
    gchar **tok = g_strsplit(s + 12, " ", 0);
    guint n = g_strv_length(tok);
    bool ok = n >= 8 && !strcmp(tok[1], "1") && !strcmp(tok[6], "typ") && *tok[4];
    if (ok && g_ascii_strcasecmp(tok[2], "UDP") != 0) {
        ok = false;
        for (guint i = 8; i + 1 < n; i++)
            if (!strcmp(tok[i], "tcptype"))
                ok = true;
    }
    g_strfreev(tok);
    if (!ok) {
        g_free(s);
        return NULL;
    }
    return s;
}

int ice_add_remote_candidate(ice_t *ice, const char *line)
{
    if (!ice || ice->dead)
        return BL_EINVAL;
    char *sdp = ice_normalise_candidate(line);
    NiceCandidate *c =
        sdp ? nice_agent_parse_remote_candidate_sdp(ice->agent, ice->stream_id, sdp) : NULL;
    if (!c) {
        /* e.g. an mDNS ".local" address from a browser: not resolvable here. */
        LOG_WARN(ice->who, "ignoring unusable remote candidate \"%.80s\"", line ? line : "");
        g_free(sdp);
        return BL_EINVAL;
    }
    LOG_DEBUG(ice->who, "remote candidate %s", sdp);
    g_free(sdp);
    if (!ice->have_remote_creds) {
        if (ice->pending->len >= 64) {
            nice_candidate_free(c);
            return BL_ETOOBIG;
        }
        g_ptr_array_add(ice->pending, c);
        return 0;
    }
    GSList one = {.data = c, .next = NULL};
    int n = nice_agent_set_remote_candidates(ice->agent, ice->stream_id, ICE_COMPONENT, &one);
    nice_candidate_free(c);
    return n < 0 ? BL_EIO : 0;
}

void ice_remote_gathering_done(ice_t *ice)
{
    if (!ice || ice->dead)
        return;
    ice->remote_eoc = true;
    /* With trickle, libnice declares FAILED only after this (RFC 8838 8). */
    if (ice->have_remote_creds)
        nice_agent_peer_candidate_gathering_done(ice->agent, ice->stream_id);
}

/* Whether a datagram of len bytes (at most max) can be sent now: 0 or why not. */
static int sendable(const ice_t *ice, const uint8_t *buf, size_t len, size_t max)
{
    if (!ice || ice->dead || (!buf && len))
        return BL_EINVAL;
    if (len == 0 || len > max)
        return len ? BL_ETOOBIG : BL_EINVAL;
    if (ice->state == ICE_ST_FAILED)
        return BL_EIO;
    if (!ice_up(ice))
        return BL_EAGAIN;
    return 0;
}

int ice_send(ice_t *ice, const uint8_t *buf, size_t len)
{
    int rc = sendable(ice, buf, len, ICE_MAX_DATAGRAM);
    if (rc)
        return rc;
    /* Inside enter/leave: a libnice call may emit a signal whose handler frees us. */
    ice_enter(ice);
    if (ice->outq.n) /* what ice_queue holds goes first */
        send_queued(ice);
    rc = BL_EINVAL;
    if (!ice->dead) {
        GOutputVector vec = {.buffer = buf, .size = len};
        NiceOutputMessage msg = {.buffers = &vec, .n_buffers = 1};
        GError *err = NULL;
        gint n = nice_agent_send_messages_nonblocking(ice->agent, ice->stream_id, ICE_COMPONENT,
                                                      &msg, 1, NULL, &err);
        rc = n == 1 ? 0 : BL_EAGAIN;
        if (n != 1 && err && !g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
            LOG_DEBUG(ice->who, "ICE send failed: %s", err->message);
            rc = BL_EIO;
        }
        g_clear_error(&err);
    }
    ice_leave(ice); /* frees ice when a callback freed it */
    return rc;
}

/* ---- queued sends (ice_queue) ---- */

/* The socket and peer address of the selected pair when it is a direct UDP path (host,
 * server- or peer-reflexive on our side) whose socket takes segmented sends: the path
 * udpgso_send may use. It is what libnice itself sends on for such a pair (the local
 * candidate's socket, the remote candidate's address); a relayed pair goes through
 * libnice, which wraps each datagram for the TURN server. Sending needs consent (RFC
 * 7675), which ice->state mirrors: libnice reports FAILED when it lapses. */
static bool direct_path(ice_t *ice, int *fd, struct sockaddr_storage *to, socklen_t *tolen)
{
    NiceCandidate *l = NULL, *r = NULL;
    if (ice->gso_off ||
        !nice_agent_get_selected_pair(ice->agent, ice->stream_id, ICE_COMPONENT, &l, &r) || !l ||
        !r || l->type == NICE_CANDIDATE_TYPE_RELAYED ||
        l->transport != NICE_CANDIDATE_TRANSPORT_UDP)
        return false;
    memset(to, 0, sizeof(*to));
    nice_address_copy_to_sockaddr(&r->addr, (struct sockaddr *)to);
    *tolen = to->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    GSocket *gs = nice_agent_get_selected_socket(ice->agent, ice->stream_id, ICE_COMPONENT);
    if (!gs)
        return false;
    *fd = g_socket_get_fd(gs);
    g_object_unref(gs); /* the agent keeps its own reference while the pair is selected */
    if (*fd < 0 || (to->ss_family != AF_INET && to->ss_family != AF_INET6))
        return false;
    if (!ice->gso_probed) { /* once per selected pair: a kernel before 4.18 says no */
        ice->gso_probed = true;
        ice->gso_off = !udpgso_supported(*fd);
    }
    return !ice->gso_off;
}

/* Through libnice, in one call (one sendmmsg on UDP), the n queued datagrams from index
 * i, which start at byte off; what it did not take is counted as dropped. Returns how
 * many it took. */
static size_t send_via_agent(ice_t *ice, size_t i, size_t off, size_t n)
{
    const udpgso_queue_t *q = &ice->outq;
    GOutputVector vec[UDPGSO_QUEUE_MAX];
    NiceOutputMessage msg[UDPGSO_QUEUE_MAX];
    for (size_t k = 0; k < n; k++) {
        vec[k] = (GOutputVector){.buffer = q->buf + off, .size = q->len[i + k]};
        msg[k] = (NiceOutputMessage){.buffers = &vec[k], .n_buffers = 1};
        off += q->len[i + k];
    }
    GError *err = NULL;
    gint sent = nice_agent_send_messages_nonblocking(ice->agent, ice->stream_id, ICE_COMPONENT, msg,
                                                     (guint)n, NULL, &err);
    if (err && !g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
        LOG_DEBUG(ice->who, "ICE send failed: %s", err->message);
    g_clear_error(&err);
    size_t took = sent > 0 ? (size_t)sent : 0;
    ice->sent.datagrams += took;
    ice->sent.dropped += n - took;
    return took;
}

/* Send what ice_queue collected, in order. Wrapped in enter/leave: a libnice call may emit
 * a signal whose handler frees us (then the agent lives on until we leave, and what is
 * left is still sent: close_notify is often the last datagram of a session). */
static void send_queued(ice_t *ice)
{
    udpgso_queue_t *q = &ice->outq;
    if (ice->sending) /* from inside our own send: the outer loop sends it */
        return;
    loop_cancel(&ice->outq_src);
    if (q->n == 0)
        return;
    ice->sending = true;
    ice_enter(ice);
    int fd = -1;
    struct sockaddr_storage to;
    socklen_t tolen = 0;
    bool direct = ice_up(ice) && direct_path(ice, &fd, &to, &tolen);
    size_t i = 0, off = 0;
    while (i < q->n) {
        if (!ice_up(ice)) {
            ice->sent.dropped += q->n - i; /* no path, or no consent: RFC 7675 says stop */
            break;
        }
        size_t k = direct ? udpgso_run(q->len + i, q->n - i, UDPGSO_QUEUE_MAX, UDPGSO_MAX_BYTES)
                          : q->n - i;
        size_t bytes = 0;
        for (size_t j = i; j < i + k; j++)
            bytes += q->len[j];
        int rc = 0;
        if (direct)
            rc = udpgso_send(fd, (struct sockaddr *)&to, tolen, q->buf + off, bytes,
                             k > 1 ? q->len[i] : 0);
        if (direct && rc && rc != -EAGAIN && rc != -EWOULDBLOCK && k > 1) {
            /* Refused as one send (a path MTU below the segment size, a filter on packet
             * length, IPsec): datagram by datagram, and so from now on on this pair. */
            if (send_via_agent(ice, i, off, k) == k) {
                LOG_INFO(ice->who,
                         "the path refused a segmented UDP send (%s): the datagrams go "
                         "one by one from now on",
                         g_strerror(-rc));
                ice->gso_off = true;
                direct = false;
            }
        } else if (!direct) {
            send_via_agent(ice, i, off, k);
        } else if (rc == -EAGAIN || rc == -EWOULDBLOCK) {
            ice->sent.dropped += q->n - i; /* the socket is full: as a full router queue */
            break;
        } else if (rc) {
            LOG_DEBUG(ice->who, "ICE send failed: %s", g_strerror(-rc));
            ice->sent.dropped += k;
        } else {
            ice->sent.datagrams += k;
            ice->sent.gso_sends += k > 1;
            ice->sent.gso_datagrams += k > 1 ? k : 0;
        }
        i += k;
        off += bytes;
    }
    udpgso_queue_clear(q);
    ice->sending = false;
    ice_leave(ice); /* may free ice */
}

static gboolean send_queued_cb(gpointer data)
{
    ice_t *ice = data;
    ice->outq_src = NULL;
    send_queued(ice);
    return G_SOURCE_REMOVE;
}

int ice_queue(ice_t *ice, const uint8_t *buf, size_t len)
{
    int rc = sendable(ice, buf, len, UDPGSO_MAX_BYTES);
    if (rc)
        return rc;
    rc = udpgso_queue_add(&ice->outq, buf, len);
    if (rc == BL_ETOOBIG) { /* full while send_queued runs: this one is lost, as on a wire */
        ice->sent.dropped++;
        return 0;
    }
    if (rc)
        return rc;
    if (udpgso_queue_full(&ice->outq))
        send_queued(ice);
    else if (!ice->outq_src)
        /* When the callback that is sending has returned, before anything else: ahead
         * of the site's commit (G_PRIORITY_HIGH) too, as nothing queued here waits for
         * one (what depends on a commit is only produced after it, site_txn.c). */
        ice->outq_src = loop_idle(ice->ctx, G_PRIORITY_HIGH - 1, send_queued_cb, ice);
    return 0;
}

ice_send_stats_t ice_send_stats(const ice_t *ice)
{
    return ice ? ice->sent : (ice_send_stats_t){0};
}

/* Installed instead of no callback when we let go of a stream: libnice only reads a
 * socket that has a receiver, and an unread readable socket keeps its GSource ready,
 * i.e. the main loop spins at default priority and starves lower-priority sources, and
 * libnice never sees the TURN server's answer to the deallocation close_async sent (it
 * retransmits and gives up after ~1.5 s). Reading and dropping avoids both. */
static void ice_discard_recv(NiceAgent *agent, guint stream_id, guint component_id, guint len,
                             gchar *buf, gpointer data)
{
    (void)agent;
    (void)stream_id;
    (void)component_id;
    (void)len;
    (void)buf;
    (void)data;
}

typedef struct {
    NiceAgent *agent;
    guint stream_id;
} ice_stream_ref_t;

static gboolean ice_remove_stream_later(gpointer data)
{
    ice_stream_ref_t *r = data;
    nice_agent_remove_stream(r->agent, r->stream_id);
    g_object_unref(r->agent);
    g_free(r);
    return G_SOURCE_REMOVE;
}

/* Run fn once the current dispatch is over. High priority: a libnice socket whose receive
 * callback was detached stays readable and would starve a default-priority idle. */
static void ice_defer(ice_t *ice, GSourceFunc fn, gpointer data)
{
    loop_idle(ice->ctx, G_PRIORITY_HIGH, fn, data);
}

/* RFC 8445 9: new credentials, new candidates. nice_agent_restart_stream keeps the old
 * local candidates, which are useless after a WAN change or a lost TURN allocation
 * (WEBRTC-NOTES), so a restart is a new stream on the same agent, gathered afresh. The
 * old stream goes at once, or from an idle source when we are inside a libnice handler
 * (removing the stream a receive callback is running for is not safe). */
int ice_restart(ice_t *ice)
{
    if (!ice || ice->dead)
        return BL_EINVAL;
    guint old = ice->stream_id;
    /* Datagrams of the old session must not reach the new path. Inside send_queued,
     * its loop drops and counts them when it sees the state below. */
    if (!ice->sending) {
        ice->sent.dropped += ice->outq.n;
        udpgso_queue_clear(&ice->outq);
    }
    loop_cancel(&ice->outq_src);
    ice->gso_off = ice->gso_probed = false;
    nice_agent_attach_recv(ice->agent, old, ICE_COMPONENT, ice->ctx, ice_discard_recv, NULL);
    if (ice->depth > 0) {
        ice_stream_ref_t *r = g_new(ice_stream_ref_t, 1);
        r->agent = g_object_ref(ice->agent);
        r->stream_id = old;
        ice_defer(ice, ice_remove_stream_later, r);
    } else {
        nice_agent_remove_stream(ice->agent, old);
    }
    /* Role conflicts may have flipped libnice's role; a restart starts from ours. */
    g_object_set(ice->agent, "controlling-mode", (gboolean)ice->opts.controlling, NULL);
    int rc = ice_open_stream(ice);
    if (rc) {
        LOG_ERROR(ice->who, "ICE restart failed");
        ice->stream_id = 0;
        ice_set_state(ice, ICE_ST_FAILED);
        return rc;
    }
    LOG_INFO(ice->who, "ICE restart");
    ice->state = ICE_ST_NEW; /* a new session: FAILED no longer sticks */
    return ice_gather(ice);
}

ice_state_t ice_state(const ice_t *ice)
{
    return ice ? ice->state : ICE_ST_FAILED;
}

const char *ice_state_name(ice_state_t st)
{
    static const char *const names[] = {"new",       "gathering", "connecting",
                                        "connected", "ready",     "failed"};
    return (unsigned)st < BL_ARRAY_LEN(names) ? names[st] : "invalid";
}

const char *ice_local_type(const ice_t *ice)
{
    return ice ? ice->local_type : "";
}

const char *ice_remote_type(const ice_t *ice)
{
    return ice ? ice->remote_type : "";
}

static int ice_type_rank(const char *t)
{
    static const char *const order[] = {"host", "srflx", "prflx", "relay"};
    for (size_t i = 0; i < BL_ARRAY_LEN(order); i++)
        if (!strcmp(t, order[i]))
            return (int)i;
    return -1;
}

const char *ice_path_type(const ice_t *ice)
{
    if (!ice || !ice->local_type[0] || !ice->remote_type[0])
        return "";
    /* relay ranks last, so the worse end also covers "either end is a relay". */
    return ice_type_rank(ice->local_type) >= ice_type_rank(ice->remote_type) ? ice->local_type
                                                                             : ice->remote_type;
}

int ice_selected_pair(const ice_t *ice, char *buf, size_t len)
{
    if (!ice || !buf || !len)
        return BL_EINVAL;
    if (!ice->pair[0])
        return BL_ENOTFOUND;
    if (g_strlcpy(buf, ice->pair, len) >= len)
        return BL_ETOOBIG;
    return 0;
}

static gboolean ice_unref_later(gpointer agent)
{
    g_object_unref(agent);
    return G_SOURCE_REMOVE;
}

/* The real teardown; from ice_free, a failed ice_new, or the outermost handler after
 * ice_free was called inside it (then the agent is dropped from an idle source). */
static void ice_destroy(ice_t *ice)
{
    if (ice->agent) {
        g_signal_handlers_disconnect_by_data(ice->agent, ice);
        if (ice->stream_id)
            nice_agent_attach_recv(ice->agent, ice->stream_id, ICE_COMPONENT, ice->ctx,
                                   ice_discard_recv, NULL);
        /* Release TURN allocations (refresh with lifetime 0, RFC 8656 7); the pending
         * task keeps the agent alive until the context has run it. */
        if (ice->turn_ip)
            nice_agent_close_async(ice->agent, NULL, NULL);
        if (ice->dead)
            ice_defer(ice, ice_unref_later, ice->agent);
        else
            g_object_unref(ice->agent);
    }
    if (ice->pending)
        g_ptr_array_free(ice->pending, TRUE);
    loop_cancel(&ice->outq_src);
    udpgso_queue_free(&ice->outq);
    g_main_context_unref(ice->ctx);
    g_free(ice->ufrag);
    if (ice->pwd)
        memset(ice->pwd, 0, strlen(ice->pwd));
    g_free(ice->pwd);
    g_free(ice->who);
    g_free(ice->stun_ip);
    g_free(ice->turn_ip);
    g_free(ice->turn_user);
    if (ice->turn_pass)
        memset(ice->turn_pass, 0, strlen(ice->turn_pass));
    g_free(ice->turn_pass);
    g_free(ice);
}

void ice_free(ice_t *ice)
{
    if (!ice || ice->dead)
        return;
    /* From here on nothing is called back, whatever happens next. */
    g_signal_handlers_disconnect_by_data(ice->agent, ice);
    if (ice->stream_id)
        nice_agent_attach_recv(ice->agent, ice->stream_id, ICE_COMPONENT, ice->ctx,
                               ice_discard_recv, NULL);
    send_queued(ice); /* DTLS's close_notify, queued as the session was torn down */
    ice->dead = true;
    if (ice->depth == 0) {
        ice->dead = false; /* not inside a handler: the agent can go right away */
        ice_destroy(ice);
    }
}
