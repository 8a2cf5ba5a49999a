/* SPDX-License-Identifier: MIT */
/* netcheck.c - see netcheck.h. */
#include "netcheck.h"

#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctlclient.h"
#include "mqttprobe.h"
#include "stunprobe.h"
#include "subs.h"

#define PROBE_MS 5000

static int say(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int say(bool ok, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%-4s %s: ", ok ? "ok" : "FAIL", what);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    return ok ? 0 : 1;
}

static char *probe_id(const char *base)
{
    uint8_t r[4];
    RAND_bytes(r, sizeof(r));
    return g_strdup_printf("%s-netcheck-%02x%02x%02x%02x", base, r[0], r[1], r[2], r[3]);
}

/* Is the daemon of this config running, and is its local session up? */
static int daemon_local(const config_t *c, bool *connected)
{
    char path[128], err[256];
    if (ctlproto_socket_path(c->state_dir, path, sizeof(path)))
        return BL_ENOTFOUND;
    ctl_req_t req = {.cmd = CTL_STATUS};
    cJSON *a = NULL;
    int rc = ctlclient_request(path, &req, 3000, &a, err, sizeof(err));
    const cJSON *lb = a ? cJSON_GetObjectItemCaseSensitive(a, "local_broker") : NULL;
    *connected = cJSON_IsString(lb) && !strcmp(lb->valuestring, "connected");
    cJSON_Delete(a);
    return rc;
}

/* A probe of broker b with the address and credentials the daemon uses. */
static mqttprobe_opts_t broker_probe(const config_broker_t *b, const char *client_id,
                                     bool clean_start)
{
    return (mqttprobe_opts_t){.host = b->host,
                              .port = b->port,
                              .tls = b->tls,
                              .cafile = b->cafile,
                              .client_id = client_id,
                              .username = b->username,
                              .password = b->password,
                              .clean_start = clean_start,
                              .timeout_ms = PROBE_MS};
}

static int local_acl(const config_t *c)
{
    GPtrArray *f = subs_local_filters(c);
    char *sync = g_strdup_printf("brokerless/%s/sync", c->site_name);
    g_ptr_array_add(f, sync);
    char *id = probe_id(c->local_client_id);
    mqttprobe_opts_t o = broker_probe(&c->local, id, true);
    o.filters = (const char *const *)f->pdata;
    o.n_filters = f->len;
    mqttprobe_result_t r;
    char what[300];
    snprintf(what, sizeof(what), "local broker %s:%d", c->local.host, c->local.port);
    int bad = 0;
    if (mqttprobe_run(&o, &r)) {
        bad = say(false, what, "%s", r.why);
    } else {
        say(true, what, "reachable, MQTT 5, lets user %s in",
            c->local.username ? c->local.username : "(anonymous)");
        for (guint i = 0; i < f->len; i++) {
            const char *fl = g_ptr_array_index(f, i);
            if (r.codes[i] >= 0x80)
                bad |= say(false, what, "refuses the subscription %s (reason 0x%02x): its ACL", fl,
                           r.codes[i]);
            else if (r.codes[i] < 2)
                printf("warn %s: grants %s only at QoS %u: messages on it lose their QoS 2\n", what,
                       fl, r.codes[i]);
        }
        if (!bad)
            say(true, what, "grants the %u subscriptions the rules need", f->len);
    }
    g_free(r.codes);
    g_free(id);
    g_ptr_array_unref(f);
    return bad;
}

/* The client ids the daemon uses: with the daemon running, its own connection says;
 * else a connection with each (never acknowledging what the session holds). */
static int local_ids(const config_t *c)
{
    bool connected = false;
    char what[300];
    snprintf(what, sizeof(what), "local broker, client id %s", c->local_client_id);
    if (daemon_local(c, &connected) == 0)
        return say(connected, what, "%s",
                   connected ? "the running daemon's session is connected"
                             : "the running daemon's session is not "
                               "connected (its log says why)");
    char *in = g_strconcat(c->local_client_id, "-in", NULL);
    const char *ids[] = {c->local_client_id, in};
    size_t n = c->delivery == CONFIG_DELIVERY_EXACTLY_ONCE ? 2 : 1;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        /* "-in" is a clean session (local.c) */
        mqttprobe_opts_t o = broker_probe(&c->local, ids[i], i == 1);
        mqttprobe_result_t r;
        snprintf(what, sizeof(what), "local broker, client id %s", ids[i]);
        if (mqttprobe_run(&o, &r))
            bad |= say(false, what, "%s", r.why);
        else
            say(true, what, "let in%s",
                i == 0 ? " (its session resumed, nothing taken from it)" : "");
        g_free(r.codes);
    }
    g_free(in);
    return bad;
}

static int signalling(const config_t *c)
{
    char *id = probe_id("brokerless");
    mqttprobe_opts_t o = broker_probe(&c->signal, id, true);
    mqttprobe_result_t r;
    char what[300];
    char *url = config_signal_url(c);
    snprintf(what, sizeof(what), "signalling broker %s", url);
    g_free(url);
    int bad = mqttprobe_run(&o, &r) ? say(false, what, "%s", r.why)
                                    : say(true, what, "reachable, MQTT 5, lets a client in");
    g_free(r.codes);
    g_free(id);
    return bad;
}

typedef struct server {
    char name[300];
    struct sockaddr_storage a;
    socklen_t len;
} server_t;

static void add_server(GArray *s, const char *host, int port)
{
    server_t v = {0};
    snprintf(v.name, sizeof(v.name), "%s:%d", host, port);
    for (guint i = 0; i < s->len; i++)
        if (!strcmp(g_array_index(s, server_t, i).name, v.name))
            return;
    if (stunprobe_resolve(host, port, &v.a, &v.len) == 0)
        g_array_append_val(s, v);
    else
        printf("warn NAT mapping: %s does not resolve\n", v.name);
}

/* The mapping seen from one socket toward every server (RFC 5780 4.3 in spirit). */
static int nat(const config_t *c)
{
    GArray *s = g_array_new(FALSE, TRUE, sizeof(server_t));
    if (c->stun_host)
        add_server(s, c->stun_host, c->stun_port);
    if (c->turn_host)
        add_server(s, c->turn_host, c->turn_port);
    if (!s->len) {
        g_array_free(s, TRUE);
        printf("warn NAT mapping: no stun or turn server in [ice]: only host addresses, links "
               "work on one network only\n");
        return 0;
    }
    int fd = socket(g_array_index(s, server_t, 0).a.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    GString *seen = g_string_new(NULL);
    char first[STUNPROBE_ADDR_LEN] = "";
    bool differ = false;
    int answered = 0, bad = 0;
    for (guint i = 0; fd >= 0 && i < s->len; i++) {
        server_t *v = &g_array_index(s, server_t, i);
        char mapped[STUNPROBE_ADDR_LEN], other[STUNPROBE_ADDR_LEN];
        if (stunprobe_bind(fd, (struct sockaddr *)&v->a, v->len, mapped, other)) {
            printf("warn NAT mapping: no STUN answer from %s (UDP blocked? then links need TURN "
                   "over TCP: [ice] tcp = true)\n",
                   v->name);
            continue;
        }
        g_string_append_printf(seen, "%s%s toward %s", answered ? ", " : "", mapped, v->name);
        if (!answered++)
            snprintf(first, sizeof(first), "%s", mapped);
        else if (strcmp(first, mapped) != 0)
            differ = true;
        if (other[0] && s->len < 4) { /* the server's other address (RFC 5780) */
            server_t o = {0};
            snprintf(o.name, sizeof(o.name), "%s", other);
            char host[STUNPROBE_ADDR_LEN];
            int port = 0;
            if (sscanf(other, "%63[^:]:%d", host, &port) == 2 &&
                stunprobe_resolve(host, port, &o.a, &o.len) == 0)
                g_array_append_val(s, o);
        }
    }
    if (fd >= 0)
        close(fd);
    if (answered == 0)
        bad = say(false, "NAT mapping", "no STUN server answered");
    else if (answered == 1)
        printf("warn NAT mapping: only one server answered (%s): the mapping cannot be told; a "
               "second STUN server (or one with an OTHER-ADDRESS) would tell it\n",
               seen->str);
    else if (!differ)
        say(true, "NAT mapping",
            "endpoint-independent (one public address for every server: %s): direct links "
            "can be punched",
            seen->str);
    else
        bad = say(c->turn_host != NULL, "NAT mapping",
                  "symmetric (a new public port for every server: %s): direct links fail, links "
                  "go through TURN%s",
                  seen->str, c->turn_host ? "" : ", and no turn server is configured");
    g_string_free(seen, TRUE);
    g_array_free(s, TRUE);
    return bad;
}

static int turn(const config_t *c)
{
    if (!c->turn_host)
        return 0;
    char what[300], relayed[STUNPROBE_ADDR_LEN];
    snprintf(what, sizeof(what), "TURN %s:%d", c->turn_host, c->turn_port);
    struct sockaddr_storage a;
    socklen_t len;
    int code = 0;
    if (stunprobe_resolve(c->turn_host, c->turn_port, &a, &len))
        return say(false, what, "does not resolve");
    int rc = stunprobe_turn((struct sockaddr *)&a, len, c->turn_username, c->turn_password, relayed,
                            &code);
    if (rc == 0)
        return say(true, what, "allocation for user %s succeeded (relayed address %s)",
                   c->turn_username, relayed);
    if (rc == BL_EAUTH)
        return say(false, what, "refused an allocation for user %s: error %d%s", c->turn_username,
                   code, code == 401 ? " (wrong user name or password)" : "");
    return say(false, what, "no answer over UDP (blocked? [ice] tcp = true tries TURN over TCP)");
}

int netcheck_run(const config_t *c)
{
    int bad = local_acl(c);
    bad |= local_ids(c);
    bad |= signalling(c);
    bad |= nat(c);
    bad |= turn(c);
    return bad;
}
