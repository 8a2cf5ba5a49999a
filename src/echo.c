/* SPDX-License-Identifier: MIT */
#include "echo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <openssl/evp.h>

struct echo {
    GHashTable *by_key;   /* key -> GQueue of echo_rec_t* (owned) */
    GHashTable *by_token; /* token -> echo_rec_t* (borrowed) */
    size_t n;
};

static void keyq_free(gpointer q)
{
    g_queue_free_full(q, (GDestroyNotify)echo_rec_free);
}

echo_t *echo_new(void)
{
    echo_t *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->by_key = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, keyq_free);
    e->by_token = g_hash_table_new(g_int64_hash, g_int64_equal);
    return e;
}

void echo_free(echo_t *e)
{
    if (!e)
        return;
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, e->by_token);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (!((echo_rec_t *)v)->key) /* owned by no queue of by_key */
            echo_rec_free(v);
    g_hash_table_destroy(e->by_token);
    g_hash_table_destroy(e->by_key);
    free(e);
}

void echo_forget_peer(echo_t *e, const void *peer)
{
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, e->by_key);
    while (g_hash_table_iter_next(&it, &k, &v))
        for (GList *l = ((GQueue *)v)->head; l; l = l->next)
            if (((echo_rec_t *)l->data)->peer == peer)
                ((echo_rec_t *)l->data)->peer = NULL;
    g_hash_table_iter_init(&it, e->by_token);
    while (g_hash_table_iter_next(&it, &k, &v))
        if (((echo_rec_t *)v)->peer == peer)
            ((echo_rec_t *)v)->peer = NULL;
}

void echo_rec_free(echo_rec_t *r)
{
    if (!r)
        return;
    free(r->key);
    free(r);
}

/* One SHA-256 implementation and context for the whole process, fetched once: the
 * implicit fetch behind EVP_sha256() and a context per call cost more than hashing a
 * small payload. The daemon is single-threaded (the GLib main loop). */
static EVP_MD_CTX *digest_ctx(void)
{
    static EVP_MD *md;
    static EVP_MD_CTX *ctx;
    if (!md && !(md = EVP_MD_fetch(NULL, "SHA256", NULL)))
        return NULL;
    if (!ctx && !(ctx = EVP_MD_CTX_new()))
        return NULL;
    return EVP_DigestInit_ex2(ctx, md, NULL) ? ctx : NULL;
}

char *echo_key(const char *topic, const uint8_t *payload, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_MD_CTX *ctx = digest_ctx();
    if (!ctx || !EVP_DigestUpdate(ctx, payload ? payload : (const uint8_t *)"", len) ||
        !EVP_DigestFinal_ex(ctx, md, &n) || n < 16)
        return NULL;
    size_t tl = strlen(topic);
    char *k = malloc(tl + 1 + 32 + 1);
    if (!k)
        return NULL;
    memcpy(k, topic, tl);
    k[tl] = '\x1f';
    static const char hex[] = "0123456789abcdef"; /* per message: no printf */
    for (int i = 0; i < 16; i++) {
        k[tl + 1 + 2 * i] = hex[md[i] >> 4];
        k[tl + 2 + 2 * i] = hex[md[i] & 15];
    }
    k[tl + 1 + 32] = '\0';
    return k;
}

echo_rec_t *echo_add(echo_t *e, const char *key, const char *origin, uint64_t seq, uint64_t token,
                     void *peer, bool recovered)
{
    if (!key && !token)
        return NULL; /* could never be found */
    echo_rec_t *r = calloc(1, sizeof(*r));
    if (!r || (key && !(r->key = strdup(key)))) {
        free(r);
        return NULL;
    }
    g_strlcpy(r->origin, origin ? origin : "", sizeof(r->origin));
    r->seq = seq;
    r->token = token;
    r->peer = peer;
    r->recovered = recovered;
    r->t_ms = bl_now_ms();
    if (key) {
        GQueue *q = g_hash_table_lookup(e->by_key, key);
        if (!q) {
            q = g_queue_new();
            g_hash_table_insert(e->by_key, g_strdup(key), q);
        }
        g_queue_push_tail(q, r);
    }
    if (token)
        g_hash_table_insert(e->by_token, &r->token, r);
    e->n++;
    return r;
}

static void unlink_rec(echo_t *e, echo_rec_t *r)
{
    if (r->token)
        g_hash_table_remove(e->by_token, &r->token);
    e->n--;
}

echo_rec_t *echo_take(echo_t *e, const char *key)
{
    GQueue *q = g_hash_table_lookup(e->by_key, key);
    if (!q)
        return NULL;
    echo_rec_t *r = g_queue_pop_head(q);
    if (g_queue_is_empty(q))
        g_hash_table_remove(e->by_key, key);
    if (r)
        unlink_rec(e, r);
    return r;
}

echo_rec_t *echo_by_token(echo_t *e, uint64_t token)
{
    return token ? g_hash_table_lookup(e->by_token, &token) : NULL;
}

echo_rec_t *echo_take_token(echo_t *e, uint64_t token)
{
    echo_rec_t *r = echo_by_token(e, token);
    if (!r)
        return NULL;
    GQueue *q = r->key ? g_hash_table_lookup(e->by_key, r->key) : NULL;
    if (q) {
        g_queue_remove(q, r);
        if (g_queue_is_empty(q))
            g_hash_table_remove(e->by_key, r->key);
    }
    unlink_rec(e, r);
    return r;
}

void echo_sweep(echo_t *e, bool (*pred)(const echo_rec_t *r, void *ud),
                void (*done)(echo_rec_t *r, void *ud), void *ud)
{
    GHashTableIter it;
    gpointer k, v;
    g_hash_table_iter_init(&it, e->by_key);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        GQueue *q = v;
        for (GList *l = q->head; l;) {
            GList *next = l->next;
            echo_rec_t *r = l->data;
            if (pred(r, ud)) {
                g_queue_delete_link(q, l);
                unlink_rec(e, r);
                done(r, ud);
            }
            l = next;
        }
        if (g_queue_is_empty(q))
            g_hash_table_iter_remove(&it);
    }
    /* Records without a key are only in by_token. */
    GSList *found = NULL;
    g_hash_table_iter_init(&it, e->by_token);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        echo_rec_t *r = v;
        if (!r->key && pred(r, ud)) {
            g_hash_table_iter_remove(&it);
            e->n--;
            found = g_slist_prepend(found, r);
        }
    }
    for (GSList *l = found; l; l = l->next)
        done(l->data, ud);
    g_slist_free(found);
}

size_t echo_count(const echo_t *e)
{
    return e->n;
}

bool echo_waiting(const echo_t *e)
{
    return g_hash_table_size(e->by_key) > 0;
}
