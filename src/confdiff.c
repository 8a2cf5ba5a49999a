/* SPDX-License-Identifier: MIT */
/* confdiff.c - see confdiff.h. */
#include "confdiff.h"

#include <stdio.h>
#include <string.h>

static bool str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int confdiff_needs_restart(const config_t *a, const config_t *b, char *what, size_t len)
{
    const struct {
        const char *name;
        const char *a, *b;
    } strs[] = {
        {"[site] name", a->site_name, b->site_name},
        {"[site] state_dir", a->state_dir, b->state_dir},
        {"[local] host", a->local.host, b->local.host},
        {"[local] username", a->local.username, b->local.username},
        {"[local] password", a->local.password, b->local.password},
        {"[local] cafile", a->local.cafile, b->local.cafile},
        {"[local] client_id", a->local_client_id, b->local_client_id},
        {"[signal] url", a->signal.host, b->signal.host},
        {"[signal] username", a->signal.username, b->signal.username},
        {"[signal] password", a->signal.password, b->signal.password},
        {"[signal] cafile", a->signal.cafile, b->signal.cafile},
        {"[signal] secret", a->network_secret, b->network_secret},
        {"[ice] stun", a->stun_host, b->stun_host},
        {"[ice] turn", a->turn_host, b->turn_host},
        {"[ice] turn_username", a->turn_username, b->turn_username},
        {"[ice] turn_password", a->turn_password, b->turn_password},
        {"[metrics] listen", a->metrics_host, b->metrics_host},
    };
    const struct {
        const char *name;
        long long a, b;
    } nums[] = {
        {"[site] max_message_size", (long long)a->max_message_size, (long long)b->max_message_size},
        {"[site] queue_max_messages", (long long)a->queue_max_messages,
         (long long)b->queue_max_messages},
        {"[site] link_window", (long long)a->link_window, (long long)b->link_window},
        {"[site] delivery", a->delivery, b->delivery},
        {"[local] port", a->local.port, b->local.port},
        {"[local] tls", a->local.tls, b->local.tls},
        {"[local] keepalive", a->local_keepalive, b->local_keepalive},
        {"[signal] url", a->signal.port, b->signal.port},
        {"[signal] url", a->signal.tls, b->signal.tls},
        {"[ice] stun", a->stun_port, b->stun_port},
        {"[ice] turn", a->turn_port, b->turn_port},
        {"[ice] tcp", a->ice_tcp, b->ice_tcp},
        {"[ice] force_relay", a->force_relay, b->force_relay},
        {"[ice] send_host_candidates", a->send_host_candidates, b->send_host_candidates},
        {"[metrics] listen", a->metrics_port, b->metrics_port},
    };
    for (size_t i = 0; i < BL_ARRAY_LEN(strs); i++)
        if (!str_eq(strs[i].a, strs[i].b)) {
            snprintf(what, len, "%s", strs[i].name);
            return 1;
        }
    for (size_t i = 0; i < BL_ARRAY_LEN(nums); i++)
        if (nums[i].a != nums[i].b) {
            snprintf(what, len, "%s", nums[i].name);
            return 1;
        }
    if (len)
        what[0] = '\0';
    return 0;
}

static bool broker_eq(const config_broker_t *a, const config_broker_t *b)
{
    return str_eq(a->host, b->host) && a->port == b->port && a->tls == b->tls &&
           str_eq(a->username, b->username) && str_eq(a->password, b->password) &&
           str_eq(a->cafile, b->cafile);
}

bool confdiff_same_link(const config_peer_t *a, const config_peer_t *b)
{
    return str_eq(a->name, b->name) && str_eq(a->fingerprint, b->fingerprint) &&
           str_eq(a->mode, b->mode) && a->browser == b->browser && a->insecure == b->insecure &&
           a->esp_role == b->esp_role && broker_eq(&a->esp_broker, &b->esp_broker) &&
           str_eq(a->esp_sync_topic, b->esp_sync_topic);
}

static bool rule_eq(const route_rule_t *a, const route_rule_t *b)
{
    return str_eq(a->pattern, b->pattern) && a->dir == b->dir && a->qos == b->qos &&
           str_eq(a->local_prefix, b->local_prefix) && str_eq(a->remote_prefix, b->remote_prefix);
}

bool confdiff_same_peer(const config_peer_t *a, const config_peer_t *b)
{
    if (!confdiff_same_link(a, b) || a->queue_qos0 != b->queue_qos0 ||
        a->retained_max_topics != b->retained_max_topics ||
        a->retained_max_bytes != b->retained_max_bytes || a->n_rules != b->n_rules)
        return false;
    for (size_t i = 0; i < a->n_rules; i++)
        if (!rule_eq(&a->rules[i], &b->rules[i]))
            return false;
    return true;
}
