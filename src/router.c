/* SPDX-License-Identifier: MIT */
/* router.c - topic rules (mosquitto bridge vocabulary), MQTT filter matching and the
 * local <-> wire topic remapping. Pure: no I/O, no globals. */
#include "router.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "mqttpkt.h"

/* MQTT 5 1.5.4: a UTF-8 string is at most 65535 bytes. */
#define TOPIC_MAX 65535u
#define MAX_TOKENS 5

bool router_filter_valid(const char *filter)
{
    return filter && mqttpkt_filter_problem(filter) == NULL;
}

bool router_topic_valid(const char *topic)
{
    return mqttpkt_topic_valid(topic);
}

/* Level-by-level match of filter f against topic t, both possibly empty strings (an
 * empty string is one empty level). No '$' rule here; the callers apply it. */
static bool match_levels(const char *f, const char *t)
{
    for (;;) {
        /* 4.7.1.2: "#" matches this level and all below it, even none. */
        if (f[0] == '#' && f[1] == '\0')
            return true;
        size_t fl = strcspn(f, "/"), tl = strcspn(t, "/");
        bool plus = fl == 1 && f[0] == '+';
        if (!plus && (fl != tl || memcmp(f, t, fl) != 0))
            return false;
        f += fl;
        t += tl;
        if (*f == '\0' && *t == '\0')
            return true;
        /* "sport/#" matches "sport": the topic ends where the filter has "/#" left. */
        if (*t == '\0')
            return strcmp(f, "/#") == 0;
        if (*f == '\0')
            return false;
        f++;
        t++;
    }
}

/* 4.7.2: a filter starting with a wildcard does not match a topic starting with '$'. */
static bool dollar_excluded(const char *filter, const char *topic)
{
    return topic[0] == '$' && (filter[0] == '#' || filter[0] == '+');
}

bool router_topic_matches(const char *filter, const char *topic)
{
    if (!filter || !topic || !*filter || !*topic)
        return false;
    if (dollar_excluded(filter, topic))
        return false;
    return match_levels(filter, topic);
}

void router_rule_clear(route_rule_t *r)
{
    if (!r)
        return;
    free(r->pattern);
    free(r->local_prefix);
    free(r->remote_prefix);
    memset(r, 0, sizeof(*r));
}

static int set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return BL_EINVAL;
}

/* Split on blanks into at most MAX_TOKENS tokens, copied into buf. A token written as
 * "" stands for the empty string; "x" loses its quotes. Returns the count or <0. */
static int tokenize(const char *line, char *buf, char *tok[MAX_TOKENS], char *err, size_t errlen)
{
    int n = 0;
    const char *p = line;
    char *w = buf;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            return n;
        if (n == MAX_TOKENS)
            return set_err(err, errlen,
                           "too many fields (PATTERN [in|out|both [QOS [LOCAL_PREFIX "
                           "REMOTE_PREFIX]]]); a pattern or prefix containing spaces is not "
                           "supported");
        size_t len = strcspn(p, " \t");
        const char *s = p;
        p += len;
        bool open = s[0] == '"', close = len >= 2 && s[len - 1] == '"';
        if (open != close)
            return set_err(err, errlen,
                           "unbalanced quote in \"%.*s\"; a pattern or prefix containing spaces "
                           "is not supported",
                           (int)BL_MIN(len, 200), s);
        if (open) {
            s++;
            len -= 2;
        }
        memcpy(w, s, len);
        w[len] = '\0';
        tok[n++] = w;
        w += len + 1;
    }
}

static const char *prefix_problem(const char *p)
{
    if (strpbrk(p, "+#"))
        return "must not contain '+' or '#'";
    if (strlen(p) > TOPIC_MAX)
        return "is longer than 65535 bytes";
    if (*p && !mqttpkt_utf8_valid(p, strlen(p)))
        return "is not valid UTF-8 or contains control characters";
    return NULL;
}

/* Reject prefix+pattern that is no longer a filter, e.g. "a" + "#" = "a#". */
static int check_joined(const char *which, const char *prefix, const char *pattern, char *err,
                        size_t errlen)
{
    char *joined = g_strconcat(prefix, pattern, NULL);
    const char *why = mqttpkt_filter_problem(joined);
    int rc = 0;
    if (why)
        rc = set_err(err, errlen,
                     "%s prefix \"%.200s\" followed by pattern \"%.200s\" %s (end the prefix "
                     "with '/')",
                     which, prefix, pattern, why);
    g_free(joined);
    return rc;
}

static int parse_fields(char *tok[], int n, route_rule_t *r, char *err, size_t errlen)
{
    const char *why = mqttpkt_filter_problem(tok[0]);
    if (why)
        return set_err(err, errlen, "pattern \"%.200s\" %s", tok[0], why);
    r->dir = ROUTE_BOTH;
    if (n >= 2) {
        if (g_ascii_strcasecmp(tok[1], "in") == 0)
            r->dir = ROUTE_IN;
        else if (g_ascii_strcasecmp(tok[1], "out") == 0)
            r->dir = ROUTE_OUT;
        else if (g_ascii_strcasecmp(tok[1], "both") == 0)
            r->dir = ROUTE_BOTH;
        else
            return set_err(err, errlen, "direction \"%.200s\" is not in, out or both", tok[1]);
    }
    r->qos = 2;
    if (n >= 3) {
        if (strlen(tok[2]) != 1 || tok[2][0] < '0' || tok[2][0] > '2')
            return set_err(err, errlen, "QoS \"%.200s\" is not 0, 1 or 2", tok[2]);
        r->qos = tok[2][0] - '0';
    }
    if (n == 4)
        return set_err(err, errlen,
                       "local prefix \"%.200s\" given without a remote prefix (give both; "
                       "write \"\" for an empty one)",
                       tok[3]);
    for (int i = 3; i < n; i++) {
        const char *which = i == 3 ? "local" : "remote";
        if ((why = prefix_problem(tok[i])))
            return set_err(err, errlen, "%s prefix \"%.200s\" %s", which, tok[i], why);
        if (check_joined(which, tok[i], tok[0], err, errlen))
            return BL_EINVAL;
    }
    return 0;
}

int router_rule_parse(const char *line, route_rule_t *out, char *err, size_t errlen)
{
    if (!line || !out)
        return set_err(err, errlen, "no rule given");
    char *buf = malloc(strlen(line) + MAX_TOKENS + 1);
    if (!buf)
        return set_err(err, errlen, "out of memory");
    char *tok[MAX_TOKENS] = {0};
    route_rule_t r = {0};
    int n = tokenize(line, buf, tok, err, errlen);
    int rc = n;
    if (n == 0)
        rc = set_err(err, errlen,
                     "empty rule; expected PATTERN [in|out|both [QOS "
                     "[LOCAL_PREFIX REMOTE_PREFIX]]]");
    else if (n > 0)
        rc = parse_fields(tok, n, &r, err, errlen);
    if (rc == 0) {
        r.pattern = strdup(tok[0]);
        r.local_prefix = strdup(n == 5 ? tok[3] : "");
        r.remote_prefix = strdup(n == 5 ? tok[4] : "");
        if (!r.pattern || !r.local_prefix || !r.remote_prefix)
            rc = set_err(err, errlen, "out of memory");
    }
    free(buf);
    if (rc < 0) {
        router_rule_clear(&r);
        return rc;
    }
    *out = r;
    return 0;
}

/* Does `topic` = from_prefix + rest with rest matching the rule's pattern? Returns rest. */
static const char *rule_rest(const route_rule_t *r, const char *from_prefix, const char *topic)
{
    size_t pl = strlen(from_prefix);
    if (strncmp(topic, from_prefix, pl) != 0)
        return NULL;
    const char *rest = topic + pl;
    /* With a prefix the filter starts with a literal, so the '$' rule cannot apply. */
    if (pl == 0 && dollar_excluded(r->pattern, topic))
        return NULL;
    return match_levels(r->pattern, rest) ? rest : NULL;
}

/* May a rule publish `local` on our broker? A wildcard never reaches a '$' topic (MQTT 5
 * 4.7.2): with "# in 2 \"\" cabin/" the wire topic "cabin/$CONTROL/x" would otherwise
 * become "$CONTROL/x", published with the daemon's rights. Only a rule whose local side
 * starts with a literal '$' (its local prefix, or its pattern when that prefix is empty)
 * maps to a '$' topic. */
static bool dollar_allowed(const route_rule_t *r, const char *local)
{
    if (local[0] != '$')
        return true;
    return r->local_prefix[0] == '$' || (r->local_prefix[0] == '\0' && r->pattern[0] == '$');
}

/* Map `topic` under the first rule of direction `want` (in or out) whose `from` side
 * matches it: its local prefix + pattern when `from_local`, else its remote ones. When
 * not `from_local` the result is a local topic, which the '$' rule above must allow, or
 * the rule is passed over. */
static int map(const route_rule_t *rules, size_t n, route_dir_t want, bool from_local,
               const char *topic, int qos_in, char **mapped, int *qos)
{
    if (!rules && n)
        return BL_EINVAL;
    if (!router_topic_valid(topic) || qos_in < 0 || qos_in > 2 || !mapped || !qos)
        return BL_EINVAL;
    bool dollar = false;
    for (size_t i = 0; i < n; i++) {
        const route_rule_t *r = &rules[i];
        if (!(r->dir & want))
            continue;
        const char *from = from_local ? r->local_prefix : r->remote_prefix;
        const char *to = from_local ? r->remote_prefix : r->local_prefix;
        const char *rest = rule_rest(r, from, topic);
        if (!rest)
            continue;
        /* First match wins: a mapped topic that is not a valid topic (e.g. empty) is
         * an error, not a reason to try the next rule. */
        char *t = g_strconcat(to, rest, NULL);
        bool ok = router_topic_valid(t);
        if (ok && !from_local && !dollar_allowed(r, t)) {
            g_free(t);
            dollar = true;
            continue;
        }
        char *copy = ok ? strdup(t) : NULL;
        g_free(t);
        if (!ok)
            return BL_EINVAL;
        if (!copy)
            return BL_ENOMEM;
        *mapped = copy;
        *qos = BL_MIN(qos_in, r->qos);
        return 1;
    }
    return dollar ? BL_EPERM : 0;
}

int router_map_out(const route_rule_t *rules, size_t n, const char *local_topic, int qos_in,
                   char **wire_topic, int *qos)
{
    return map(rules, n, ROUTE_OUT, true, local_topic, qos_in, wire_topic, qos);
}

int router_map_in(const route_rule_t *rules, size_t n, const char *wire_topic, int qos_in,
                  char **local_topic, int *qos)
{
    return map(rules, n, ROUTE_IN, false, wire_topic, qos_in, local_topic, qos);
}

/* A reply to our message comes back over the in-rules, so its wire name is the one an
 * in-rule maps to it; a reply the peer publishes leaves it over the peer's out-rules, so
 * at the receiver the wire name maps back through an out-rule. */
int router_map_reply(const route_rule_t *rules, size_t n, route_dir_t dir, char **topic)
{
    if (!topic || (dir != ROUTE_IN && dir != ROUTE_OUT))
        return BL_EINVAL;
    if (!*topic)
        return 0;
    char *mapped = NULL;
    int qos = 0;
    int rc = dir == ROUTE_OUT ? map(rules, n, ROUTE_IN, true, *topic, 0, &mapped, &qos)
                              : map(rules, n, ROUTE_OUT, false, *topic, 0, &mapped, &qos);
    if (rc == BL_ENOMEM)
        return rc;
    free(*topic);
    *topic = rc == 1 ? mapped : NULL;
    return rc == 1 ? 1 : 0;
}

char *router_local_filter(const route_rule_t *r)
{
    if (!r || !(r->dir & ROUTE_OUT) || !r->pattern)
        return NULL;
    const char *lp = r->local_prefix ? r->local_prefix : "";
    size_t a = strlen(lp), b = strlen(r->pattern);
    char *f = malloc(a + b + 1);
    if (!f)
        return NULL;
    memcpy(f, lp, a);
    memcpy(f + a, r->pattern, b + 1);
    return f;
}

/* Does `a` match every topic `b` matches? Level by level: a '#' in a covers the rest,
 * a '+' in a covers any single level of b (a literal or '+'), a literal only itself.
 * A leading wildcard never covers a '$' topic (MQTT 5 4.7.2). */
bool router_filter_covers(const char *a, const char *b)
{
    if (b[0] == '$' && (a[0] == '+' || a[0] == '#'))
        return false;
    const char *pa = a, *pb = b;
    for (;;) {
        size_t la = strcspn(pa, "/"), lb = strcspn(pb, "/");
        if (la == 1 && pa[0] == '#')
            return true;
        bool plus_a = la == 1 && pa[0] == '+';
        bool wild_b = lb == 1 && (pb[0] == '+' || pb[0] == '#');
        if (wild_b && !plus_a)
            return false;
        if (pb[0] == '#' && lb == 1)
            return false; /* only '#' covers '#' */
        if (!plus_a && (la != lb || memcmp(pa, pb, la) != 0))
            return false;
        bool end_a = pa[la] == '\0', end_b = pb[lb] == '\0';
        if (end_b)
            return end_a || strcmp(pa + la, "/#") == 0;
        if (end_a)
            return false;
        pa += la + 1;
        pb += lb + 1;
    }
}
