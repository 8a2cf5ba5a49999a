/* SPDX-License-Identifier: MIT */
/* queue_seen.c - the inbound dedupe window of each origin (queue.h; queue_int.h says where the rest
 * is). */
#include "queue_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- inbound dedupe ----
 *
 * Per origin: a floor (every seq <= floor counts as seen) plus one row per seen seq
 * above it. The floor advances over contiguous rows, and never trails the highest seen
 * seq by more than QUEUE_SEEN_WINDOW, so an origin costs at most that many rows however
 * many sequences this site never receives (docs/QUEUE.md explains why that is safe). */

static int origin_load(queue_t *q, const char *origin, origin_ent_t *e)
{
    sqlite3_stmt *s = queue_stmt(q, S_FLOOR_GET);
    queue_bind_name(s, 1, origin);
    int src = sqlite3_step(s);
    e->floor = src == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return queue_db_fail(q, src, "reading a dedupe floor");
    s = queue_stmt(q, S_SEEN_MAX);
    queue_bind_name(s, 1, origin);
    src = sqlite3_step(s);
    uint64_t max = src == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (src != SQLITE_ROW)
        return queue_db_fail(q, src, "reading the dedupe window");
    e->max = BL_MAX(e->floor, max);
    return 0;
}

static int origin_get(queue_t *q, const char *origin, origin_ent_t **out)
{
    for (size_t i = 0; i < q->n_origins; i++)
        if (strcmp(q->origins[i].name, origin) == 0) {
            *out = &q->origins[i];
            return 0;
        }
    origin_ent_t *no = queue_grow(q->origins, q->n_origins, &q->cap_origins, sizeof(*no));
    if (!no)
        return BL_ENOMEM;
    q->origins = no;
    origin_ent_t *e = &q->origins[q->n_origins];
    snprintf(e->name, sizeof(e->name), "%s", origin);
    e->floor_dirty = false;
    int rc = origin_load(q, origin, e);
    if (rc)
        return rc;
    q->n_origins++;
    *out = e;
    return 0;
}

/* Move the floor up to `floor`, then over the rows contiguous with it; drop the rows
 * the floor now covers. */
static int floor_advance(queue_t *q, origin_ent_t *e, uint64_t floor)
{
    sqlite3_stmt *s = queue_stmt(q, S_SEEN_AFTER);
    queue_bind_name(s, 1, e->name);
    sqlite3_bind_int64(s, 2, (int64_t)floor);
    int src;
    while ((src = sqlite3_step(s)) == SQLITE_ROW &&
           (uint64_t)sqlite3_column_int64(s, 0) == floor + 1)
        floor++;
    sqlite3_reset(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return queue_db_fail(q, src, "reading the dedupe window");
    s = queue_stmt(q, S_SEEN_PRUNE);
    queue_bind_name(s, 1, e->name);
    sqlite3_bind_int64(s, 2, (int64_t)floor);
    int rc = queue_run(q, s, "pruning the dedupe window");
    if (rc)
        return rc;
    e->floor = floor;
    e->floor_dirty = true;
    return 0;
}

static int mark(queue_t *q, origin_ent_t *e, uint64_t seq)
{
    if (seq <= e->floor)
        return 0;
    uint64_t floor = e->floor;
    if (seq == floor + 1) {
        if (e->max <= floor) {
            /* In order with no rows above the floor: nothing to read or prune, only
             * the floor moves (stored at commit). */
            e->floor = e->max = seq;
            e->floor_dirty = true;
            return 0;
        }
        floor = seq; /* no row for it; the floor then moves over the rows above */
    } else {
        sqlite3_stmt *s = queue_stmt(q, S_SEEN_ADD);
        queue_bind_name(s, 1, e->name);
        sqlite3_bind_int64(s, 2, (int64_t)seq);
        int rc = queue_run(q, s, "storing a seen sequence");
        if (rc)
            return rc;
    }
    e->max = BL_MAX(e->max, seq);
    if (e->max - floor > QUEUE_SEEN_WINDOW)
        floor = e->max - QUEUE_SEEN_WINDOW;
    return floor == e->floor ? 0 : floor_advance(q, e, floor);
}

int queue_mark_seen(queue_t *q, const char *origin, uint64_t seq)
{
    FAULT(q, "mark_seen");
    if (!q || !bl_site_name_valid(origin) || !queue_seq_ok(seq))
        return BL_EINVAL;
    int rc = queue_begin(q);
    if (rc)
        return rc;
    origin_ent_t *e;
    if ((rc = origin_get(q, origin, &e)) == 0)
        rc = mark(q, e, seq);
    return queue_end_internal(q, rc);
}

int queue_seen(queue_t *q, const char *origin, uint64_t seq)
{
    if (!q || !bl_site_name_valid(origin) || !queue_seq_ok(seq))
        return BL_EINVAL;
    origin_ent_t *e;
    int rc = origin_get(q, origin, &e);
    if (rc)
        return rc;
    if (seq <= e->floor)
        return 1;
    if (seq > e->max)
        return 0;
    sqlite3_stmt *s = queue_stmt(q, S_SEEN_GET);
    queue_bind_name(s, 1, origin);
    sqlite3_bind_int64(s, 2, (int64_t)seq);
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return queue_db_fail(q, src, "looking up a seen sequence");
    return src == SQLITE_ROW;
}

int queue_seen_reset(queue_t *q, const char *origin)
{
    if (!q || !bl_site_name_valid(origin))
        return BL_EINVAL;
    int rc = queue_begin(q);
    if (rc)
        return rc;
    origin_ent_t *e;
    if ((rc = origin_get(q, origin, &e)) == 0) {
        sqlite3_stmt *s = queue_stmt(q, S_SEEN_PRUNE);
        queue_bind_name(s, 1, origin);
        sqlite3_bind_int64(s, 2, INT64_MAX);
        rc = queue_run(q, s, "clearing a dedupe window");
        if (!rc) {
            s = queue_stmt(q, S_FLOOR_SET);
            queue_bind_name(s, 1, origin);
            sqlite3_bind_int64(s, 2, 0);
            rc = queue_run(q, s, "clearing a dedupe floor");
        }
        if (!rc) {
            e->floor = e->max = 0;
            e->floor_dirty = false;
        }
    }
    return queue_end_internal(q, rc);
}
