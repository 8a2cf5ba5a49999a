/* SPDX-License-Identifier: MIT */
#include "espmsg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int espmsg_handshake_parse(const uint8_t *buf, size_t len, espmsg_step_t *out)
{
    if (!buf || len != 1 || buf[0] < '0' || buf[0] > '2')
        return BL_EINVAL;
    *out = (espmsg_step_t)(buf[0] - '0');
    return 0;
}

/* RFC 8839 5.4 allows ALPHA / DIGIT / "+" / "/"; any visible ASCII is taken so that odd
 * peers still work, but nothing that could split a line. */
static bool cred_ok(const char *s, size_t n)
{
    if (n < 1 || n > ESPMSG_CRED_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* A candidate line with its "a=" (libjuice wants it), without a trailing CR or LF; NULL
 * when it is not one we could hand to an ICE agent. */
static char *cand_line(const char *v)
{
    size_t n = strlen(v);
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    const char *body = !strncmp(v, "a=candidate:", 12) ? v + 12
                       : !strncmp(v, "candidate:", 10) ? v + 10
                                                       : NULL;
    if (!body || body >= v + n || n > ESPMSG_CAND_MAX)
        return NULL;
    for (const char *p = body; p < v + n; p++)
        if (*p < ' ' || *p > '~')
            return NULL;
    size_t bl = (size_t)(v + n - body);
    char *out = malloc(12 + bl + 1);
    if (!out)
        return NULL;
    memcpy(out, "a=candidate:", 12);
    memcpy(out + 12, body, bl);
    out[12 + bl] = '\0';
    return out;
}

/* The value after `key` on one line of "desc" into out; false if it is not usable. */
static bool cred_line(const char *line, size_t n, const char *key, char *out)
{
    size_t kl = strlen(key);
    if (n < kl || memcmp(line, key, kl) != 0)
        return false;
    line += kl;
    n -= kl;
    while (n && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    if (!cred_ok(line, n))
        return false;
    memcpy(out, line, n);
    out[n] = '\0';
    return true;
}

typedef struct numbered {
    unsigned long no;
    char *line;
} numbered_t;

static int by_no(const void *a, const void *b)
{
    const numbered_t *x = a, *y = b;
    return x->no < y->no ? -1 : x->no > y->no;
}

/* Keep a candidate (taken) numbered `no`; the first ESPMSG_MAX_CANDS by number stay. */
static void keep(numbered_t *all, size_t *n, size_t cap, unsigned long no, char *line)
{
    if (*n < cap)
        all[(*n)++] = (numbered_t){no, line};
    else
        free(line);
}

/* "desc": the credentials, and candidates written inline (libjuice adds them when it has
 * gathered before describing; the example does not, but a board may). */
static void parse_desc_lines(const char *s, espmsg_desc_t *d, numbered_t *all, size_t *n,
                             size_t cap, size_t *offered)
{
    while (*s) {
        size_t len = strcspn(s, "\n");
        size_t l = len;
        if (l && s[l - 1] == '\r')
            l--;
        if (!d->ufrag[0] && cred_line(s, l, "a=ice-ufrag:", d->ufrag)) {
        } else if (!d->pwd[0] && cred_line(s, l, "a=ice-pwd:", d->pwd)) {
        } else if (l > 12 && !strncmp(s, "a=candidate:", 12)) {
            (*offered)++;
            char *tmp = strndup(s, l);
            char *c = tmp ? cand_line(tmp) : NULL;
            free(tmp);
            if (c)
                keep(all, n, cap, 0, c);
        }
        s += len + (s[len] == '\n');
    }
}

/* "cand<N>" with N decimal, at most 9 digits; -1 otherwise. */
static long cand_no(const char *key)
{
    if (!key || strncmp(key, "cand", 4) != 0)
        return -1;
    size_t d = strspn(key + 4, "0123456789");
    if (d == 0 || d > 9 || key[4 + d])
        return -1;
    return strtol(key + 4, NULL, 10);
}

int espmsg_desc_parse(const uint8_t *buf, size_t len, espmsg_desc_t *out, const char **why)
{
    const char *w = NULL;
    if (!buf || !out)
        return BL_EINVAL;
    if (len > ESPMSG_DESC_MAX) {
        if (why)
            *why = "a description over 8192 bytes";
        return BL_ETOOBIG;
    }
    espmsg_desc_t d;
    memset(&d, 0, sizeof(d));
    /* Up to twice the limit while reading, so that numbers in any order sort right. */
    numbered_t all[4 * ESPMSG_MAX_CANDS];
    size_t n = 0, seen = 0;
    cJSON *root = cJSON_ParseWithLength((const char *)buf, len);
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(root, "desc");
    if (!cJSON_IsObject(root))
        w = "not a JSON object";
    else if (!cJSON_IsString(desc))
        w = "no \"desc\" string";
    else
        parse_desc_lines(desc->valuestring, &d, all, &n, BL_ARRAY_LEN(all), &seen);
    if (!w && (!d.ufrag[0] || !d.pwd[0]))
        w = "\"desc\" has no usable a=ice-ufrag and a=ice-pwd lines";
    const cJSON *item, *scan = w ? NULL : root;
    cJSON_ArrayForEach(item, scan)
    {
        long no = cand_no(item->string);
        if (no < 0)
            continue;
        seen++;
        char *c = cJSON_IsString(item) ? cand_line(item->valuestring) : NULL;
        if (c)
            keep(all, &n, BL_ARRAY_LEN(all), (unsigned long)no + 1, c);
    }
    cJSON_Delete(root);
    qsort(all, n, sizeof(all[0]), by_no);
    for (size_t i = 0; i < n; i++) {
        if (!w && d.n_cands < ESPMSG_MAX_CANDS)
            d.cands[d.n_cands++] = all[i].line;
        else
            free(all[i].line);
    }
    if (w) {
        if (why)
            *why = w;
        return BL_EINVAL;
    }
    d.dropped = seen > d.n_cands ? seen - d.n_cands : 0;
    *out = d;
    return 0;
}

void espmsg_desc_clear(espmsg_desc_t *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_cands; i++)
        free(d->cands[i]);
    memset(d, 0, sizeof(*d));
}

static char *build(const char *ufrag, const char *pwd, const char *const *cands, size_t n)
{
    char desc[2 * ESPMSG_CRED_MAX + 80];
    snprintf(desc, sizeof(desc), "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=ice-options:ice2,trickle\r\n",
             ufrag, pwd);
    cJSON *o = cJSON_CreateObject();
    bool ok = o && cJSON_AddStringToObject(o, "desc", desc);
    for (size_t i = 0; ok && i < n; i++) {
        char key[32];
        snprintf(key, sizeof(key), "cand%u", (unsigned)i);
        ok = cJSON_AddStringToObject(o, key, cands[i]) != NULL;
    }
    char *text = ok ? cJSON_Print(o) : NULL;
    cJSON_Delete(o);
    char *out = text ? strdup(text) : NULL;
    cJSON_free(text);
    return out;
}

char *espmsg_desc_build(const char *ufrag, const char *pwd, const char *const *cands, size_t n,
                        size_t *used)
{
    if (!ufrag || !pwd || !cred_ok(ufrag, strlen(ufrag)) || !cred_ok(pwd, strlen(pwd)) ||
        (n && !cands))
        return NULL;
    for (n = BL_MIN(n, (size_t)ESPMSG_MAX_CANDS);; n--) {
        char *s = build(ufrag, pwd, cands, n);
        if (s && strlen(s) <= ESPMSG_DESC_BUDGET) {
            if (used)
                *used = n;
            return s;
        }
        free(s);
        if (!n)
            return NULL;
    }
}
