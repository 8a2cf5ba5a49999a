/* SPDX-License-Identifier: MIT */
/* fake_link.c - link.h played by the test (fake_link.h). */
#include "fake_link.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct link {
    const config_t *cfg;
    const config_peer_t *peer;
    link_events_t ev;
    void *ud;
    link_state_t state;
    size_t room; /* frames it takes before it is busy */
    bool paused;
    unsigned pause_calls;
    GPtrArray *sent; /* GByteArray * */
    link_stats_t stats;
};

/* The live links, for fake_link(). */
static GPtrArray *g_links;

link_t *fake_link(const char *peer)
{
    for (guint i = 0; g_links && i < g_links->len; i++) {
        link_t *l = g_ptr_array_index(g_links, i);
        if (!strcmp(l->peer->name, peer))
            return l;
    }
    return NULL;
}

link_t *link_new(GMainContext *ctx, const config_t *cfg, const config_peer_t *peer,
                 const cert_t *cert, const link_events_t *ev, void *ud)
{
    (void)ctx, (void)cert;
    link_t *l = calloc(1, sizeof(*l));
    l->cfg = cfg;
    l->peer = peer;
    l->ev = *ev;
    l->ud = ud;
    l->room = SIZE_MAX;
    l->sent = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
    if (!g_links)
        g_links = g_ptr_array_new();
    g_ptr_array_add(g_links, l);
    return l;
}

void link_free(link_t *l)
{
    if (!l)
        return;
    g_ptr_array_remove(g_links, l);
    if (!g_links->len) {
        g_ptr_array_free(g_links, TRUE);
        g_links = NULL;
    }
    g_ptr_array_free(l->sent, TRUE);
    free(l);
}

void link_signal_up(link_t *l)
{
    (void)l;
}

void link_signal_in(link_t *l, const seal_msg_t *m)
{
    (void)l, (void)m;
}

int link_send_frame(link_t *l, const uint8_t *frame, size_t len)
{
    if (l->state != LINK_OPEN)
        return BL_ESTATE;
    g_ptr_array_add(l->sent, g_byte_array_append(g_byte_array_new(), frame, (guint)len));
    l->room -= l->room > 0;
    l->stats.frames_out++;
    l->stats.bytes_out += len;
    return 0;
}

/* A frame encoded (rc: its encoder's result) sent as link_send_frame sends it, then freed. */
static int send_encoded(link_t *l, int rc, uint8_t *f, size_t len)
{
    if (rc)
        return rc;
    rc = link_send_frame(l, f, len);
    free(f);
    return rc;
}

/* The real link encodes in its framing (brokerless frames for these peers): so does
 * this one, and records the frame. */
int link_send_msg(link_t *l, const bl_msg_t *m)
{
    uint8_t *f = NULL;
    size_t len = 0;
    int rc = l->state != LINK_OPEN ? BL_ESTATE : wire_encode_msg(m, &f, &len);
    return send_encoded(l, rc, f, len);
}

int link_send_ack(link_t *l, const uint64_t *seqs, size_t n)
{
    uint8_t *f = NULL;
    size_t len = 0;
    int rc = l->state != LINK_OPEN ? BL_ESTATE : wire_encode_ack(seqs, n, &f, &len);
    return send_encoded(l, rc, f, len);
}

int link_send_hello(link_t *l, const wire_hello_t *h)
{
    uint8_t *f = NULL;
    size_t len = 0;
    int rc = l->state != LINK_OPEN ? BL_ESTATE : wire_encode_hello(h, &f, &len);
    return send_encoded(l, rc, f, len);
}

void link_start(link_t *l)
{
    (void)l;
}

/* Peers of the site tests are brokerless sites. */
bool link_sealed(const link_t *l)
{
    (void)l;
    return true;
}

bool link_leaf(const link_t *l)
{
    (void)l;
    return false;
}

bool link_can_send(const link_t *l)
{
    return l->state == LINK_OPEN && l->room > 0;
}

/* Small frames always fit, and no large message waits in the link: the fake sends what
 * it is given at once. */
bool link_can_send_small(const link_t *l)
{
    return l->state == LINK_OPEN;
}

bool link_topic_held(const link_t *l, const char *topic)
{
    (void)l;
    (void)topic;
    return false;
}

void link_pause_rx(link_t *l, bool pause)
{
    l->paused = pause;
    l->pause_calls++;
}

bool link_is_open(const link_t *l)
{
    return l->state == LINK_OPEN;
}

link_state_t link_state(const link_t *l)
{
    return l->state;
}

const char *link_state_name(link_state_t s)
{
    return s == LINK_OPEN ? "open" : "not open";
}

const char *link_peer_name(const link_t *l)
{
    return l->peer->name;
}

const config_peer_t *link_peer(const link_t *l)
{
    return l->peer;
}

const char *link_path_type(const link_t *l)
{
    (void)l;
    return "none";
}

void link_get_info(const link_t *l, link_info_t *out)
{
    memset(out, 0, sizeof(*out));
    if (l->state == LINK_OPEN)
        snprintf(out->path, sizeof(out->path), "host");
}

/* A reload kept the link: it reads the new config from now on. */
void link_rebind(link_t *l, const config_t *cfg, const config_peer_t *peer)
{
    l->cfg = cfg;
    l->peer = peer;
}

const link_stats_t *link_stats(const link_t *l)
{
    return &l->stats;
}

static void set_state(link_t *l, link_state_t s)
{
    l->state = s;
    if (l->ev.on_state)
        l->ev.on_state(l->ud, l);
}

void fake_link_open(link_t *l)
{
    set_state(l, LINK_OPEN);
    l->ev.on_open(l->ud, l);
}

/* As link.c: on_down while the state still says open, then the new state. */
void fake_link_down(link_t *l)
{
    l->ev.on_down(l->ud, l);
    set_state(l, LINK_FAILED);
}

void fake_link_set_room(link_t *l, size_t room)
{
    l->room = room;
}

void fake_link_drain(link_t *l, size_t room)
{
    l->room = room;
    if (l->state == LINK_OPEN && l->ev.on_writable)
        l->ev.on_writable(l->ud, l);
}

void fake_link_receive(link_t *l, const uint8_t *frame, size_t len)
{
    wire_frame_t f;
    if (wire_decode(frame, len, l->cfg->max_message_size, &f))
        return;
    l->stats.frames_in++;
    l->ev.on_frame(l->ud, l, &f);
    wire_frame_clear(&f);
}

void fake_link_receive_msg(link_t *l, const bl_msg_t *m)
{
    uint8_t *frame = NULL;
    size_t len = 0;
    if (wire_encode_msg(m, &frame, &len) == 0)
        fake_link_receive(l, frame, len);
    free(frame);
}

void fake_link_receive_hello(link_t *l, uint64_t epoch)
{
    wire_hello_t h = {.features = WIRE_FEAT_BATCH, .epoch = epoch};
    snprintf(h.site, sizeof(h.site), "%s", l->peer->name);
    uint8_t *frame = NULL;
    size_t len = 0;
    if (wire_encode_hello(&h, &frame, &len) == 0)
        fake_link_receive(l, frame, len);
    free(frame);
}

size_t fake_link_n_sent(const link_t *l)
{
    return l->sent->len;
}

const GByteArray *fake_link_sent(const link_t *l, size_t i)
{
    return g_ptr_array_index(l->sent, i);
}

bool fake_link_paused(const link_t *l)
{
    return l->paused;
}

unsigned fake_link_pause_calls(const link_t *l)
{
    return l->pause_calls;
}
