/* SPDX-License-Identifier: MIT */
/* router.h - topic rules in mosquitto's bridge vocabulary, pure.
 *
 *   topic PATTERN [in|out|both [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]
 *
 * "out": a local message on LOCAL_PREFIX+T (T matching PATTERN) goes to the peer as
 * REMOTE_PREFIX+T. "in": a peer's message on REMOTE_PREFIX+T is published locally as
 * LOCAL_PREFIX+T. Prefixes may be "" (written as "" in the config). QOS caps the QoS.
 * The topic on the wire is always the remote form; each side applies its own rules.
 * Split horizon: only locally originated messages are ever routed out. */
#ifndef BL_ROUTER_H
#define BL_ROUTER_H

#include "common.h"

typedef enum { ROUTE_IN = 1, ROUTE_OUT = 2, ROUTE_BOTH = 3 } route_dir_t;

typedef struct route_rule {
    char *pattern; /* MQTT filter, may contain + and # */
    route_dir_t dir;
    int qos;             /* cap, 0..2 */
    char *local_prefix;  /* "" when none */
    char *remote_prefix; /* "" when none */
} route_rule_t;

/* Parse the value of a `topic =` line. On error returns BL_EINVAL and writes a
 * human-readable reason into err. */
int router_rule_parse(const char *line, route_rule_t *out, char *err, size_t errlen);
void router_rule_clear(route_rule_t *r);

/* MQTT topic filter matching (MQTT 5 4.7), incl. '$' topics not matched by # or +. */
bool router_topic_matches(const char *filter, const char *topic);
/* Does filter a match every topic that filter b matches? (to subscribe no overlaps) */
bool router_filter_covers(const char *a, const char *b);
/* Is this a valid filter / a valid topic name? */
bool router_filter_valid(const char *filter);
bool router_topic_valid(const char *topic);

/* Local topic -> wire topic under the first matching out/both rule. Returns 1 and sets
 * *wire_topic (malloc) and *qos (min of qos_in and the rule's cap) when routed, 0 when
 * no rule matches, <0 on error. */
int router_map_out(const route_rule_t *rules, size_t n, const char *local_topic, int qos_in,
                   char **wire_topic, int *qos);
/* Wire topic -> local topic under the first matching in/both rule; as above. A rule
 * whose local side (LOCAL_PREFIX, or PATTERN when that is "") does not start with a
 * literal '$' never maps to a topic starting with '$' (MQTT 5 4.7.2: its local filter
 * does not match one); it is passed over, and BL_EPERM returned if nothing else maps. */
int router_map_in(const route_rule_t *rules, size_t n, const char *wire_topic, int qos_in,
                  char **local_topic, int *qos);
/* The Response Topic of a message crossing the link, in place (*topic freed, replaced).
 * ROUTE_OUT (we send): our local name -> the wire name under which the reply comes back,
 * through the in-rules. ROUTE_IN (we receive): the wire name -> our local topic whose
 * messages go back to that peer, through the out-rules, with router_map_in's '$' rule.
 * A topic that does not map becomes NULL (the property is dropped): a peer cannot make
 * a local responder publish outside what the rules carry back. Returns 1 when mapped,
 * 0 when dropped or absent, BL_ENOMEM. */
int router_map_reply(const route_rule_t *rules, size_t n, route_dir_t dir, char **topic);
/* The filter to subscribe on the local broker for an out/both rule: LOCAL_PREFIX+PATTERN
 * (malloc), or NULL for an "in" rule. */
char *router_local_filter(const route_rule_t *r);

#endif
