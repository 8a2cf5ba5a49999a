/* SPDX-License-Identifier: MIT */
/* queue_int.h - what the files of the durable store share; not for other modules.
 *
 *   queue.c        the database: open, schema, statements, transactions (with what the
 *                  caches below hold back until the commit), the log's flushing
 *   queue_out.c    the origin sequence and the outbound queue of each peer
 *   queue_seen.c   the inbound dedupe window of each origin
 *   queue_store.c  the small stores: retained messages, meta values, deliveries in
 *                  doubt, the local session's packet ids
 *   queue_frame.c  the row form of a message (pure)
 *
 * queue.c is below the others: they call it, it calls none of them. */
#ifndef BL_QUEUE_INT_H
#define BL_QUEUE_INT_H

#include "queue.h"

#include <sqlite3.h>

#include "log.h"
#include "queue_frame.h"
#include "walsync.h"

#define WHO "queue"
#define FRAME_VERSION 1

enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SEQ_GET,
    S_SEQ_SET,
    S_PUSH,
    S_PEEK,
    S_PEEK_SMALL,
    S_ACK,
    S_COUNT,
    S_SEEN_GET,
    S_SEEN_ADD,
    S_SEEN_AFTER,
    S_SEEN_PRUNE,
    S_SEEN_MAX,
    S_FLOOR_GET,
    S_FLOOR_SET,
    S_RET_PUT,
    S_RET_ALL,
    S_INDOUBT_ADD,
    S_INDOUBT_DEL,
    S_RET_GET,
    S_MQIN_ADD,
    S_MQIN_DEL,
    S_MQOUT_ADD,
    S_MQOUT_REC,
    S_MQOUT_DEL,
    S_MQIN1_ADD,
    S_MQIN1_GET,
    S_MQIN1_PRUNE,
    S_COUNT_STMTS
};

/* Small in-memory caches; a site has a handful of peers, so linear search is fine. */
typedef struct {
    char name[BL_SITE_NAME_MAX + 1];
    size_t count;
} peer_ent_t;

/* What the retained store holds per origin (queue_retained_put_max's caps). */
typedef struct {
    char name[BL_SITE_NAME_MAX + 1];
    size_t topics, bytes;
} ret_use_t;

typedef struct {
    char name[BL_SITE_NAME_MAX + 1];
    uint64_t floor;   /* every seq <= floor counts as seen */
    uint64_t max;     /* highest seq seen (>= floor) */
    bool floor_dirty; /* floor moved in the open transaction: written at its commit */
} origin_ent_t;

struct queue {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT_STMTS];
    int depth; /* queue_begin nesting */
    bool seq_loaded;
    bool seq_dirty; /* last_seq moved in the open transaction: written at its commit */
    uint64_t last_seq;
    peer_ent_t *peers;
    size_t n_peers, cap_peers;
    origin_ent_t *origins;
    size_t n_origins, cap_origins;
    bool poisoned;      /* the open transaction lost a write it needs: its commit must fail */
    int64_t in1_n;      /* number of the last QoS 1 message recorded in mqin1, -1 unknown */
    walsync_t *ws;      /* flushes the log between checkpoints (walsync.h) */
    ret_use_t *ret_use; /* retained entries and bytes per origin, loaded at first use */
    size_t n_ret_use;
    bool ret_loaded;
    bool wal; /* journal_mode is WAL (else there is no log to flush) */
};

/* Messages read back (peeks, the retained store), with their enqueue times. */
typedef struct {
    bl_msg_t **msgs;
    int64_t *enq;
    size_t n, cap;
} queue_list_t;

/* queue.c */
int queue_list_add(queue_list_t *o, bl_msg_t *m, int64_t enq_ms);
int queue_db_fail(queue_t *q, int src, const char *what);
sqlite3_stmt *queue_stmt(queue_t *q, int id);
int queue_run(queue_t *q, sqlite3_stmt *s, const char *what);
void queue_bind_name(sqlite3_stmt *s, int i, const char *name);
/* m in its row form bound as the blob at i, freed when the binding is cleared. */
int queue_bind_frame(sqlite3_stmt *s, int i, const bl_msg_t *m);
/* arr (of *cap elements of size) with room for more than n: arr itself, or a larger copy
 * and *cap raised; NULL (arr untouched) when out of memory. */
void *queue_grow(void *arr, size_t n, size_t *cap, size_t size);
bool queue_seq_ok(uint64_t seq);
void queue_cache_reset(queue_t *q);
int queue_end_internal(queue_t *q, int rc);

/* queue_out.c */
bool queue_seq_range(uint64_t *first, uint64_t *last);

#ifdef BL_FAULTS
/* Test builds only: BL_FAULT=NAME[:N] makes the N-th (default first) call of the write
 * NAME fail as a full disk would, so that a test can show what the daemon does with a
 * lost write at each place an acknowledgement relies on (tests/lab/t26). */
bool queue_fault(const char *name);
#define FAULT(q, name)                                                                             \
    do {                                                                                           \
        if (queue_fault(name))                                                                     \
            return queue_db_fail(q, SQLITE_FULL, "injected fault in " name);                       \
    } while (0)
#else
#define FAULT(q, name) (void)0
#endif

#endif
