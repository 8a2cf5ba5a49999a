/* SPDX-License-Identifier: MIT */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

void msg_init(bl_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    m->payload_format = -1;
}

bl_msg_t *msg_new(void)
{
    bl_msg_t *m = malloc(sizeof(*m));
    if (m)
        msg_init(m);
    return m;
}

void msg_clear(bl_msg_t *m)
{
    if (!m)
        return;
    free(m->origin);
    free(m->topic);
    free(m->payload);
    free(m->content_type);
    free(m->response_topic);
    free(m->correlation);
    for (size_t i = 0; i < m->n_user_props; i++) {
        free(m->user_props[i].key);
        free(m->user_props[i].value);
    }
    free(m->user_props);
    msg_init(m);
}

void msg_free(bl_msg_t *m)
{
    msg_clear(m);
    free(m);
}

static int dup_bytes(uint8_t **dst, const uint8_t *src, size_t len)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = malloc(len ? len : 1);
    if (!*dst)
        return BL_ENOMEM;
    if (len)
        memcpy(*dst, src, len);
    return 0;
}

static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : BL_ENOMEM;
}

bl_msg_t *msg_dup(const bl_msg_t *m)
{
    bl_msg_t *d = msg_new();
    if (!d)
        return NULL;
    *d = *m;
    d->origin = d->topic = d->content_type = d->response_topic = NULL;
    d->payload = d->correlation = NULL;
    d->user_props = NULL;
    d->n_user_props = 0;
    if (dup_str(&d->origin, m->origin) || dup_str(&d->topic, m->topic) ||
        dup_bytes(&d->payload, m->payload, m->payload_len) ||
        dup_str(&d->content_type, m->content_type) ||
        dup_str(&d->response_topic, m->response_topic) ||
        dup_bytes(&d->correlation, m->correlation, m->correlation_len))
        goto error;
    for (size_t i = 0; i < m->n_user_props; i++)
        if (msg_add_user_prop(d, m->user_props[i].key, m->user_props[i].value))
            goto error;
    return d;
error:
    msg_free(d);
    return NULL;
}

int msg_set_topic(bl_msg_t *m, const char *topic)
{
    char *t = strdup(topic);
    if (!t)
        return BL_ENOMEM;
    free(m->topic);
    m->topic = t;
    return 0;
}

int msg_set_payload(bl_msg_t *m, const void *data, size_t len)
{
    uint8_t *p = NULL;
    if (len) {
        p = malloc(len);
        if (!p)
            return BL_ENOMEM;
        memcpy(p, data, len);
    }
    free(m->payload);
    m->payload = p;
    m->payload_len = len;
    return 0;
}

int msg_add_user_prop(bl_msg_t *m, const char *key, const char *value)
{
    msg_user_prop_t *np = realloc(m->user_props, (m->n_user_props + 1) * sizeof(*np));
    if (!np)
        return BL_ENOMEM;
    m->user_props = np;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return BL_ENOMEM;
    }
    np[m->n_user_props].key = k;
    np[m->n_user_props].value = v;
    m->n_user_props++;
    return 0;
}

static size_t str_size(const char *s)
{
    return s ? strlen(s) + 1 : 0;
}

size_t msg_size(const bl_msg_t *m)
{
    if (!m)
        return 0;
    size_t n = str_size(m->topic) + m->payload_len + str_size(m->content_type) +
               str_size(m->response_topic) + m->correlation_len;
    for (size_t i = 0; i < m->n_user_props; i++)
        n += str_size(m->user_props[i].key) + str_size(m->user_props[i].value) +
             sizeof(msg_user_prop_t);
    return n;
}

static bool str_eq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool bytes_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    if (al != bl)
        return false;
    return al == 0 || memcmp(a, b, al) == 0;
}

bool msg_equal(const bl_msg_t *a, const bl_msg_t *b)
{
    if (!str_eq(a->topic, b->topic) || a->qos != b->qos || a->retain != b->retain ||
        !bytes_eq(a->payload, a->payload_len, b->payload, b->payload_len) ||
        a->payload_format != b->payload_format || a->has_expiry != b->has_expiry ||
        (a->has_expiry && a->expiry_s != b->expiry_s) ||
        !str_eq(a->content_type, b->content_type) ||
        !str_eq(a->response_topic, b->response_topic) ||
        (a->correlation == NULL) != (b->correlation == NULL) ||
        !bytes_eq(a->correlation, a->correlation_len, b->correlation, b->correlation_len) ||
        a->n_user_props != b->n_user_props)
        return false;
    for (size_t i = 0; i < a->n_user_props; i++)
        if (!str_eq(a->user_props[i].key, b->user_props[i].key) ||
            !str_eq(a->user_props[i].value, b->user_props[i].value))
            return false;
    return true;
}

bl_msg_t *msg_routed_copy(const bl_msg_t *m, char *topic, int qos)
{
    bl_msg_t *c = msg_dup(m);
    if (!c) {
        free(topic);
        return NULL;
    }
    free(c->topic);
    c->topic = topic;
    c->qos = (uint8_t)qos;
    return c;
}
