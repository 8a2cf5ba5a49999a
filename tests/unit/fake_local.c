/* SPDX-License-Identifier: MIT */
/* fake_local.c - local.h played by the test (fake_local.h). Like local.c, with
 * delivery = exactly-once what local_inject publishes goes over another connection than
 * the persistent session, so it keeps no packet id in the site's store. */
#include "fake_local.h"

#include <stdlib.h>
#include <string.h>

struct local {
    local_events_t ev;
    void *ud;
    bool inject_apart; /* delivery = exactly-once: injects take the clean-session connection */
    bool started, connected;
    uint64_t msgs_in;
    GPtrArray *pubs; /* fake_pub_t * */
    GPtrArray *subs; /* char * */
    const mqtt_store_t *st;
    void *st_ud;
    uint16_t next_pid;
    size_t pending, pending_bytes; /* publishes not taken yet, their payload bytes */
};

static local_t *g_local;

local_t *fake_local(void)
{
    return g_local;
}

static void pub_free(gpointer p)
{
    fake_pub_t *fp = p;
    msg_free(fp->msg);
    free(fp);
}

local_t *local_new(GMainContext *ctx, const config_t *cfg, const local_events_t *ev, void *ud)
{
    (void)ctx;
    local_t *l = calloc(1, sizeof(*l));
    l->ev = *ev;
    l->ud = ud;
    l->inject_apart = cfg->delivery == CONFIG_DELIVERY_EXACTLY_ONCE;
    l->pubs = g_ptr_array_new_with_free_func(pub_free);
    l->subs = g_ptr_array_new_with_free_func(g_free);
    g_local = l;
    return l;
}

int local_start(local_t *l)
{
    l->started = true;
    return 0;
}

int local_subscribe(local_t *l, const char *filter, int qos, bool no_local)
{
    (void)qos, (void)no_local;
    g_ptr_array_add(l->subs, g_strdup(filter));
    return 0;
}

/* A reload's dropped filter leaves the subscriptions the site holds. */
int local_drop_subscription(local_t *l, const char *filter)
{
    for (guint i = 0; i < l->subs->len; i++)
        if (!strcmp(g_ptr_array_index(l->subs, i), filter)) {
            g_ptr_array_remove_index(l->subs, i);
            break;
        }
    return 0;
}

int local_unsubscribe(local_t *l, const char *filter)
{
    (void)l, (void)filter;
    return 0;
}

void local_set_store(local_t *l, const mqtt_store_t *st, void *ud)
{
    l->st = st;
    l->st_ud = ud;
}

void local_restore_in(local_t *l, uint16_t pid)
{
    (void)l, (void)pid;
}

static fake_pub_t *add_pub(local_t *l, const bl_msg_t *m, uint64_t token)
{
    fake_pub_t *fp = calloc(1, sizeof(*fp));
    fp->msg = msg_dup(m);
    fp->token = token;
    fp->done = token == 0;
    if (!fp->done) {
        l->pending++;
        l->pending_bytes += m->payload_len;
    }
    g_ptr_array_add(l->pubs, fp);
    return fp;
}

void local_restore_out(local_t *l, uint16_t pid, bool released, const bl_msg_t *m, uint64_t token)
{
    if (released || !m)
        return; /* only the PUBREL goes again */
    fake_pub_t *fp = add_pub(l, m, token);
    fp->restored = true;
    fp->pid = pid;
}

/* On the persistent session, a QoS 2 publish is recorded with its packet id before it
 * leaves (mqtt.h, mqtt_store_t): here at once. */
static int publish(local_t *l, const bl_msg_t *m, uint64_t token, bool injected)
{
    fake_pub_t *fp = add_pub(l, m, token);
    fp->injected = injected;
    if (m->qos == 2 && l->st && !(injected && l->inject_apart)) {
        fp->pid = ++l->next_pid;
        l->st->out_add(l->st_ud, token, fp->pid, m);
    }
    return 0;
}

int local_publish(local_t *l, const bl_msg_t *m, uint64_t token)
{
    return publish(l, m, token, false);
}

int local_inject(local_t *l, const bl_msg_t *m, uint64_t token)
{
    return publish(l, m, token, true);
}

/* The codec's checks are mqtt.c's (tested in test_mqttpkt): every message passes here. */
int local_check_publish(const bl_msg_t *m)
{
    return m && m->topic ? 0 : BL_EINVAL;
}

uint64_t local_msgs_in(const local_t *l)
{
    return l ? l->msgs_in : 0;
}

bool local_connected(const local_t *l)
{
    return l && l->connected;
}

size_t local_pending(const local_t *l)
{
    return l ? l->pending : 0;
}

size_t local_pending_bytes(const local_t *l)
{
    return l ? l->pending_bytes : 0;
}

void local_free(local_t *l)
{
    if (!l)
        return;
    if (g_local == l)
        g_local = NULL;
    g_ptr_array_free(l->pubs, TRUE);
    g_ptr_array_free(l->subs, TRUE);
    free(l);
}

void fake_local_connect(local_t *l)
{
    l->connected = true;
    l->ev.on_connect(l->ud);
}

void fake_local_disconnect(local_t *l)
{
    l->connected = false;
    l->ev.on_disconnect(l->ud);
}

void fake_local_message(local_t *l, const bl_msg_t *m)
{
    l->msgs_in++;
    l->ev.on_message(l->ud, m);
}

void fake_local_take(local_t *l, size_t i)
{
    fake_pub_t *fp = g_ptr_array_index(l->pubs, i);
    if (fp->done)
        return;
    fp->done = true;
    l->pending--;
    l->pending_bytes -= fp->msg->payload_len;
    if (fp->pid)
        l->st->out_rec(l->st_ud, fp->pid);
    l->ev.on_delivered(l->ud, fp->token);
}

void fake_local_acked(local_t *l, uint64_t upto)
{
    l->ev.on_acked(l->ud, upto);
}

size_t fake_local_n_pubs(const local_t *l)
{
    return l->pubs->len;
}

const fake_pub_t *fake_local_pub(const local_t *l, size_t i)
{
    return g_ptr_array_index(l->pubs, i);
}

long fake_local_find(const local_t *l, const char *topic, size_t from)
{
    for (guint i = (guint)from; i < l->pubs->len; i++)
        if (!strcmp(((fake_pub_t *)g_ptr_array_index(l->pubs, i))->msg->topic, topic))
            return (long)i;
    return -1;
}

const GPtrArray *fake_local_subs(const local_t *l)
{
    return l->subs;
}
