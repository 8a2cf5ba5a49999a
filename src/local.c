/* SPDX-License-Identifier: MIT */
/* local.c - the site's attachment to its local broker, a thin layer over mqtt.c.
 *
 * The session is persistent (clean_start false, session expiry one day, client id
 * fixed by [local] client_id): while the daemon is down or restarting, the broker keeps
 * what local clients publish for us (up to its max_queued_messages: set it generously,
 * e.g. 0 = no limit in mosquitto) and hands it over when we come back, so a restart of
 * the daemon loses nothing. Its QoS 2 state is in the site's database (mqtt_store_t),
 * so the session outlives the process too. The cost: a filter dropped from the config
 * stays subscribed in the broker's session until it expires or is renewed (subs.h).
 *
 * With delivery = exactly-once, what peers send at QoS 1 or 2 (or retained) is
 * published over a second connection ("<client_id>-in") with a clean session, so that
 * the persistent session, whose No Local hides only its own publishes, gets it back:
 * the echo, the broker's word that it took the message (site_in.c). Otherwise
 * everything goes over the persistent session. */
#include "local.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

struct local {
    mqtt_t *mqtt;   /* persistent: subscriptions, echoes, markers, status */
    mqtt_t *inject; /* clean session for what peers send, or NULL (at-least-once) */
    char *inject_id;
    local_events_t ev;
    void *ud;
};

static void on_connect(void *ud)
{
    local_t *l = ud;
    if (l->ev.on_connect)
        l->ev.on_connect(l->ud);
}

static void on_disconnect(void *ud, int rc)
{
    (void)rc; /* mqtt.c has logged the reason */
    local_t *l = ud;
    if (l->ev.on_disconnect)
        l->ev.on_disconnect(l->ud);
}

static void on_message(void *ud, const bl_msg_t *m)
{
    local_t *l = ud;
    if (l->ev.on_message)
        l->ev.on_message(l->ud, m);
}

static void on_published(void *ud, uint64_t token)
{
    local_t *l = ud;
    if (l->ev.on_delivered)
        l->ev.on_delivered(l->ud, token);
}

static void on_acks_delivered(void *ud, uint64_t upto)
{
    local_t *l = ud;
    if (l->ev.on_acked)
        l->ev.on_acked(l->ud, upto);
}

uint64_t local_msgs_in(const local_t *l)
{
    return l ? mqtt_msgs_in(l->mqtt) : 0;
}

static bool still_wanted(void *ud, uint64_t token)
{
    local_t *l = ud;
    return !l->ev.still_wanted || l->ev.still_wanted(l->ud, token);
}

static bool can_write(void *ud)
{
    local_t *l = ud;
    return !l->ev.can_write || l->ev.can_write(l->ud);
}

static void on_unsubscribed(void *ud)
{
    local_t *l = ud;
    if (l->ev.on_unsubscribed)
        l->ev.on_unsubscribed(l->ud);
}

local_t *local_new(GMainContext *ctx, const config_t *cfg, const local_events_t *ev, void *ud)
{
    if (!cfg || !cfg->local.host)
        return NULL;
    local_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    if (ev)
        l->ev = *ev;
    l->ud = ud;
    char *will_topic = g_strdup_printf("brokerless/%s/status", cfg->site_name);
    bl_msg_t will;
    msg_init(&will);
    will.topic = will_topic;
    will.payload = (uint8_t *)"offline";
    will.payload_len = strlen("offline");
    will.qos = 1;
    will.retain = true;
    mqtt_opts_t o = {
        .name = "local",
        .client_id = cfg->local_client_id,
        .keepalive = cfg->local_keepalive > 0 ? cfg->local_keepalive : 30,
        .clean_start = false,
        .will = &will,
        /* No Maximum Packet Size: a message over max_message_size is refused and
         * counted by the site, not dropped unseen by the broker. */
    };
    mqtt_opts_set_broker(&o, &cfg->local);
    static const mqtt_events_t mev = {.on_connect = on_connect,
                                      .on_disconnect = on_disconnect,
                                      .on_message = on_message,
                                      .on_published = on_published,
                                      .on_acks_delivered = on_acks_delivered,
                                      .on_unsubscribed = on_unsubscribed,
                                      .can_write = can_write};
    l->mqtt = mqtt_new(ctx, &o, &mev, l);
    g_free(will_topic); /* mqtt_new copied the Will */
    o.will = NULL;      /* the injecting connection has none */
    if (!l->mqtt)
        goto error;
    if (cfg->delivery == CONFIG_DELIVERY_EXACTLY_ONCE) {
        static const mqtt_events_t iev = {
            .on_published = on_published, .still_wanted = still_wanted, .can_write = can_write};
        l->inject_id = g_strconcat(cfg->local_client_id, "-in", NULL);
        o.name = "local-in";
        o.client_id = l->inject_id;
        o.clean_start = true;
        l->inject = mqtt_new(ctx, &o, &iev, l);
        if (!l->inject)
            goto error;
    }
    return l;
error:
    local_free(l);
    return NULL;
}

int local_start(local_t *l)
{
    if (!l)
        return BL_EINVAL;
    int rc = mqtt_start(l->mqtt);
    if (!rc && l->inject)
        rc = mqtt_start(l->inject);
    return rc;
}

/* No Local (MQTT 5 3.8.3.1): what we inject for peers never comes back to us (split
 * horizon). Retain As Published: a retained message keeps its flag, so the remote broker
 * retains it too. The broker downgrades each message to min(its QoS, this QoS). */
int local_subscribe(local_t *l, const char *filter, int qos, bool no_local)
{
    if (!l)
        return BL_EINVAL;
    int rc = mqtt_subscribe(l->mqtt, filter, qos, no_local, true);
    if (rc)
        LOG_WARN("local", "cannot subscribe %s: %s", filter ? filter : "(null)", bl_strerror(rc));
    return rc;
}

int local_drop_subscription(local_t *l, const char *filter)
{
    if (!l)
        return BL_EINVAL;
    mqtt_subscription_forget(l->mqtt, filter);
    return local_unsubscribe(l, filter);
}

int local_unsubscribe(local_t *l, const char *filter)
{
    if (!l)
        return BL_EINVAL;
    int rc = mqtt_unsubscribe(l->mqtt, filter);
    if (rc)
        LOG_WARN("local", "cannot unsubscribe %s: %s", filter ? filter : "(null)", bl_strerror(rc));
    return rc;
}

int local_publish(local_t *l, const bl_msg_t *m, uint64_t token)
{
    return l ? mqtt_publish(l->mqtt, m, token) : BL_EINVAL;
}

int local_inject(local_t *l, const bl_msg_t *m, uint64_t token)
{
    return l ? mqtt_publish(l->inject ? l->inject : l->mqtt, m, token) : BL_EINVAL;
}

void local_set_store(local_t *l, const mqtt_store_t *st, void *ud)
{
    if (l)
        mqtt_set_store(l->mqtt, st, ud);
}

void local_restore_in(local_t *l, uint16_t pid)
{
    if (l)
        mqtt_restore_in(l->mqtt, pid);
}

void local_restore_out(local_t *l, uint16_t pid, bool released, const bl_msg_t *m, uint64_t token)
{
    if (l)
        mqtt_restore_out(l->mqtt, pid, released, m, token);
}

int local_check_publish(const bl_msg_t *m)
{
    return mqtt_check_publish(m);
}

bool local_connected(const local_t *l)
{
    return l && mqtt_connected(l->mqtt);
}

size_t local_pending(const local_t *l)
{
    return l ? mqtt_pending(l->mqtt) + (l->inject ? mqtt_pending(l->inject) : 0) : 0;
}

size_t local_pending_bytes(const local_t *l)
{
    return l ? mqtt_pending_bytes(l->mqtt) + (l->inject ? mqtt_pending_bytes(l->inject) : 0) : 0;
}

void local_free(local_t *l)
{
    if (!l)
        return;
    mqtt_free(l->inject);
    mqtt_free(l->mqtt);
    g_free(l->inject_id);
    free(l);
}
