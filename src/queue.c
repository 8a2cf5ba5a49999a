/* SPDX-License-Identifier: MIT */
/* queue.c - the durable store's database (queue_int.h says where the rest is): SQLite in
 * WAL mode, its schema and statements, transactions that store what the caches held
 * back (the origin sequence, the dedupe floors) at their commit and fail whole when any
 * write in them failed, and the log's flushing. docs/QUEUE.md has the schema, why each
 * key exists and what "durable" means here. */
#include "queue_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 5000
#define QUEUE_WAL_PAGES 4000
#define QUEUE_WALSYNC_MS 100 /* the log is flushed this often by a helper thread */
#define BL_STR_(x) #x
#define BL_STR(x) BL_STR_(x)

#ifdef BL_FAULTS
/* Test builds only: BL_FAULT=NAME[:N] makes the N-th (default first) call of the write
 * NAME fail as a full disk would, so that a test can show what the daemon does with a
 * lost write at each place an acknowledgement relies on (tests/lab/t26). */
bool queue_fault(const char *name)
{
    static const char *want;
    static long at = 1, calls;
    static bool parsed;
    if (!parsed) {
        parsed = true;
        want = getenv("BL_FAULT");
        const char *colon = want ? strchr(want, ':') : NULL;
        if (colon)
            at = strtol(colon + 1, NULL, 10);
        if (want)
            LOG_WARN(WHO, "test fault injection armed: write %s fails at call %ld", want, at);
    }
    size_t n = want ? strcspn(want, ":") : 0;
    return n && strlen(name) == n && !strncmp(want, name, n) && ++calls == at;
}
#endif

static const char *const stmt_sql[S_COUNT_STMTS] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SEQ_GET] = "SELECT value FROM meta WHERE key = 'last_seq'",
    [S_SEQ_SET] = "INSERT INTO meta(key, value) VALUES('last_seq', ?1) "
                  "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [S_PUSH] = "INSERT INTO outq(peer, seq, enq_ms, frame) VALUES(?1, ?2, ?3, ?4)",
    [S_PEEK] = "SELECT seq, enq_ms, frame FROM outq WHERE peer = ?1 AND seq > ?2 "
               "ORDER BY seq LIMIT ?3",
    [S_PEEK_SMALL] = "SELECT seq, enq_ms, frame FROM outq WHERE peer = ?1 AND seq > ?2 "
                     "AND seq <= ?4 AND length(frame) <= ?5 ORDER BY seq LIMIT ?3",
    [S_ACK] = "DELETE FROM outq WHERE peer = ?1 AND seq BETWEEN ?2 AND ?3",
    [S_COUNT] = "SELECT COUNT(*) FROM outq WHERE peer = ?1",
    [S_SEEN_GET] = "SELECT 1 FROM seen WHERE origin = ?1 AND seq = ?2",
    [S_SEEN_ADD] = "INSERT OR IGNORE INTO seen(origin, seq) VALUES(?1, ?2)",
    [S_SEEN_AFTER] = "SELECT seq FROM seen WHERE origin = ?1 AND seq > ?2 ORDER BY seq",
    [S_SEEN_PRUNE] = "DELETE FROM seen WHERE origin = ?1 AND seq <= ?2",
    [S_SEEN_MAX] = "SELECT MAX(seq) FROM seen WHERE origin = ?1",
    [S_FLOOR_GET] = "SELECT floor FROM seen_floor WHERE origin = ?1",
    [S_FLOOR_SET] = "INSERT INTO seen_floor(origin, floor) VALUES(?1, ?2) "
                    "ON CONFLICT(origin) DO UPDATE SET floor = excluded.floor",
    [S_RET_PUT] = "INSERT INTO retained(topic, frame, updated_ms) VALUES(?1, ?2, ?3) "
                  "ON CONFLICT(topic) DO UPDATE SET frame = excluded.frame, "
                  "updated_ms = excluded.updated_ms",
    [S_RET_ALL] = "SELECT topic, frame FROM retained ORDER BY topic",
    [S_INDOUBT_ADD] = "INSERT OR REPLACE INTO indoubt(origin, seq, key) VALUES(?1, ?2, ?3)",
    [S_INDOUBT_DEL] = "DELETE FROM indoubt WHERE origin = ?1 AND seq BETWEEN ?2 AND ?3",
    [S_RET_GET] = "SELECT frame FROM retained WHERE topic = ?1",
    [S_MQIN_ADD] = "INSERT OR IGNORE INTO mqin(pid) VALUES(?1)",
    [S_MQIN_DEL] = "DELETE FROM mqin WHERE pid = ?1",
    [S_MQOUT_ADD] = "INSERT OR REPLACE INTO mqout(pid, origin, seq, released, frame) "
                    "VALUES(?1, ?2, ?3, 0, ?4)",
    [S_MQOUT_REC] = "UPDATE mqout SET released = 1 WHERE pid = ?1",
    [S_MQOUT_DEL] = "DELETE FROM mqout WHERE pid = ?1",
    [S_MQIN1_ADD] = "INSERT OR REPLACE INTO mqin1(pid, key, n) VALUES(?1, ?2, ?3)",
    [S_MQIN1_GET] = "SELECT key, n FROM mqin1 WHERE pid = ?1",
    [S_MQIN1_PRUNE] = "DELETE FROM mqin1 WHERE n <= ?1",
};

/* Primary keys are the only indexes: each is the exact access path of one call
 * (docs/QUEUE.md). WITHOUT ROWID stores the rows in the key's b-tree itself. */
static const char schema_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE outq(peer TEXT NOT NULL, seq INTEGER NOT NULL, enq_ms INTEGER NOT NULL,"
    "  frame BLOB NOT NULL, PRIMARY KEY(peer, seq)) WITHOUT ROWID;"
    "CREATE TABLE seen(origin TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  PRIMARY KEY(origin, seq)) WITHOUT ROWID;"
    "CREATE TABLE seen_floor(origin TEXT PRIMARY KEY, floor INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE retained(topic TEXT PRIMARY KEY, frame BLOB NOT NULL,"
    "  updated_ms INTEGER NOT NULL);"
    "PRAGMA user_version = 1;";

/* ---- statement helpers ---- */

int queue_db_fail(queue_t *q, int src, const char *what)
{
    LOG_ERROR(WHO, "%s: %s (sqlite %d)", what, sqlite3_errmsg(q->db), src);
    if (q->depth > 0)
        q->poisoned = true; /* queue.h: the transaction's commit must fail */
    return src == SQLITE_BUSY || src == SQLITE_LOCKED ? BL_EAGAIN : BL_EIO;
}

sqlite3_stmt *queue_stmt(queue_t *q, int id)
{
    sqlite3_stmt *s = q->st[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Run a statement that returns no rows. */
int queue_run(queue_t *q, sqlite3_stmt *s, const char *what)
{
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    return src == SQLITE_DONE ? 0 : queue_db_fail(q, src, what);
}

void queue_bind_name(sqlite3_stmt *s, int i, const char *name)
{
    sqlite3_bind_text(s, i, name, -1, SQLITE_STATIC);
}

int queue_bind_frame(sqlite3_stmt *s, int i, const bl_msg_t *m)
{
    uint8_t *frame;
    size_t len;
    int rc = queue_frame_encode(m, &frame, &len);
    if (!rc)
        sqlite3_bind_blob(s, i, frame, (int)len, free);
    return rc;
}

void *queue_grow(void *arr, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return arr;
    size_t c = *cap ? 2 * *cap : 8;
    void *p = realloc(arr, c * size);
    if (p)
        *cap = c;
    return p;
}

/* SQLite integers are signed 64-bit; sequences above that cannot be stored. */
bool queue_seq_ok(uint64_t seq)
{
    return seq > 0 && seq <= (uint64_t)INT64_MAX;
}

/* Forget everything cached: after a rollback the database is the only truth. The origin
 * sequence is kept while a transaction is still open (a failed statement inside it does
 * not undo the others): its messages may still commit, and their sequences must then
 * be stored and never handed out again. */
static int floors_flush(queue_t *q);
void queue_cache_reset(queue_t *q)
{
    if (sqlite3_get_autocommit(q->db)) {
        q->seq_loaded = false;
        q->seq_dirty = false;
    } else {
        /* Likewise the dedupe floors moved in it (they are written at commit). One
         * that cannot be written now would be missing from the commit: fail it. */
        if (floors_flush(q))
            q->poisoned = true;
    }
    q->n_peers = 0;
    q->n_origins = 0;
    q->ret_loaded = false;
}

/* ---- open / close / transactions ---- */

void queue_close(queue_t *q)
{
    if (!q)
        return;
    if (q->depth > 0)
        LOG_WARN(WHO, "closed inside a transaction: its writes are rolled back");
    walsync_stop(q->ws);
    for (int i = 0; i < S_COUNT_STMTS; i++)
        sqlite3_finalize(q->st[i]);
    sqlite3_close_v2(q->db);
    free(q->peers);
    free(q->origins);
    free(q->ret_use);
    free(q);
}

static int read_user_version(queue_t *q, int *ver)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &s, NULL);
    if (src == SQLITE_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        *ver = sqlite3_column_int(s, 0);
        src = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return src == SQLITE_OK ? 0 : queue_db_fail(q, src, "reading schema version");
}

/* Create the schema on a new file, accept version 1, refuse anything newer. */
static int schema_setup(queue_t *q, const char *path)
{
    int ver = 0, rc;
    if ((rc = read_user_version(q, &ver)))
        return rc;
    if (ver == 0) {
        int src = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (src == SQLITE_OK && (rc = read_user_version(q, &ver)) == 0 && ver == 0)
            src = sqlite3_exec(q->db, schema_sql, NULL, NULL, NULL);
        if (src == SQLITE_OK && rc == 0)
            src = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
        if (src != SQLITE_OK || rc) {
            rc = rc ? rc : queue_db_fail(q, src, "creating schema");
            sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        if ((rc = read_user_version(q, &ver)))
            return rc;
    }
    if (ver != SCHEMA_VERSION) {
        LOG_ERROR(WHO,
                  "%s has schema version %d, this build knows only %d: refusing to open it "
                  "(run the newer brokerless, or move the file away to start empty)",
                  path, ver, SCHEMA_VERSION);
        return BL_EVERSION;
    }
    return 0;
}

static int configure(queue_t *q)
{
    sqlite3_stmt *s = NULL;
    const char *mode = NULL;
    /* The daemon is the database's only user: it takes the file lock once and keeps
     * it, instead of two fcntl() per transaction, and WAL keeps its index in our heap
     * rather than a shared-memory file (set before WAL is first used). A second
     * daemon started on the same state directory gets SQLITE_BUSY, not a share. */
    int src = sqlite3_exec(q->db, "PRAGMA locking_mode=EXCLUSIVE", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return queue_db_fail(q, src, "setting locking_mode=EXCLUSIVE");
    /* WAL: a commit appends to the log; readers never block the writer. */
    src = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    if (src == SQLITE_OK && (src = sqlite3_step(s)) == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(s, 0);
    if (src == SQLITE_BUSY || src == SQLITE_LOCKED) {
        sqlite3_finalize(s);
        LOG_ERROR(WHO,
                  "%s is in use by another process (another brokerless with the same "
                  "state directory?): a queue has one owner",
                  sqlite3_db_filename(q->db, "main"));
        return BL_EAGAIN;
    }
    q->wal = mode && strcmp(mode, "wal") == 0;
    if (!q->wal)
        LOG_WARN(WHO, "journal mode is %s, not wal: commits will be slower",
                 mode ? mode : "unknown");
    sqlite3_finalize(s);
    /* NORMAL in WAL mode: no fsync per commit, only at checkpoints. A commit survives
     * a crash of this process; the last commits may be lost on power loss. */
    src = sqlite3_exec(q->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return queue_db_fail(q, src, "setting synchronous=NORMAL");
    /* Checkpoint every ~16 MiB of log instead of every ~4 MiB: a queue rewrites the
     * same few pages over and over, and each checkpoint copies them (and syncs). */
    src =
        sqlite3_exec(q->db, "PRAGMA wal_autocheckpoint=" BL_STR(QUEUE_WAL_PAGES), NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return queue_db_fail(q, src, "setting wal_autocheckpoint");
    /* Debian builds SQLite with secure_delete on: every deleted row's pages are
     * overwritten with zeros, so an acknowledged 1 MiB message was written three times
     * (queued, zeroed, checkpointed). FAST zeroes what it can without more writes (the
     * b-tree pages) and leaves freed overflow pages, a large payload's, as they were
     * until reused; the file is the daemon's alone (0600 in a 0700 directory).
     * Measured: queue, commit and acknowledge 1 MiB 6.4 -> 4.8 ms, 64 KiB 0.25 -> 0.14
     * ms (docs/QUEUE.md). */
    src = sqlite3_exec(q->db, "PRAGMA secure_delete=FAST", NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return queue_db_fail(q, src, "setting secure_delete=FAST");
    sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
    return 0;
}

int queue_open(const char *path, queue_t **out)
{
    if (!path || !out)
        return BL_EINVAL;
    *out = NULL;
    queue_t *q = calloc(1, sizeof(*q));
    if (!q)
        return BL_ENOMEM;
    int rc, src = sqlite3_open_v2(path, &q->db,
                                  SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                  NULL);
    if (src != SQLITE_OK) {
        LOG_ERROR(WHO, "cannot open %s: %s", path, q->db ? sqlite3_errmsg(q->db) : "no memory");
        rc = BL_EIO;
        goto error;
    }
    sqlite3_extended_result_codes(q->db, 0);
    q->in1_n = -1;
    if ((rc = configure(q)) || (rc = schema_setup(q, path)))
        goto error;
    /* Added after schema 1 shipped: created on demand, harmless if present (an older
     * build ignores them). */
    src = sqlite3_exec(
        q->db,
        "CREATE TABLE IF NOT EXISTS indoubt(origin TEXT NOT NULL, seq INTEGER NOT NULL,"
        " key BLOB NOT NULL, PRIMARY KEY(origin, seq)) WITHOUT ROWID;"
        "CREATE TABLE IF NOT EXISTS mqin(pid INTEGER PRIMARY KEY);"
        "CREATE TABLE IF NOT EXISTS mqout(pid INTEGER PRIMARY KEY, origin TEXT NOT NULL,"
        " seq INTEGER NOT NULL, released INTEGER NOT NULL, frame BLOB NOT NULL);"
        "CREATE TABLE IF NOT EXISTS mqin1(pid INTEGER PRIMARY KEY, key BLOB NOT NULL,"
        " n INTEGER NOT NULL)",
        NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        rc = queue_db_fail(q, src, "creating the in-doubt table");
        goto error;
    }
    for (int i = 0; i < S_COUNT_STMTS; i++) {
        src =
            sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL);
        if (src != SQLITE_OK) {
            rc = queue_db_fail(q, src, "preparing statements");
            goto error;
        }
    }
    if (q->wal)
        q->ws = walsync_start(sqlite3_filename_wal(sqlite3_db_filename(q->db, "main")),
                              QUEUE_WALSYNC_MS);
    *out = q;
    return 0;
error:
    queue_close(q);
    return rc;
}

static int floor_store(queue_t *q, origin_ent_t *e)
{
    sqlite3_stmt *s = queue_stmt(q, S_FLOOR_SET);
    queue_bind_name(s, 1, e->name);
    sqlite3_bind_int64(s, 2, (int64_t)e->floor);
    return queue_run(q, s, "storing a dedupe floor");
}

/* The dedupe floors that moved in the open transaction, stored once (in-order
 * delivery moves one per message; writing each move would cost a statement each). */
static int floors_flush(queue_t *q)
{
    int rc = 0;
    for (size_t i = 0; i < q->n_origins; i++) {
        origin_ent_t *e = &q->origins[i];
        if (!e->floor_dirty)
            continue;
        int r = floor_store(q, e);
        if (r == 0)
            e->floor_dirty = false;
        else if (!rc)
            rc = r;
    }
    return rc;
}

int queue_begin(queue_t *q)
{
    if (q->depth == 0) {
        int rc = queue_run(q, queue_stmt(q, S_BEGIN), "BEGIN");
        if (rc)
            return rc;
    }
    q->depth++;
    return 0;
}

int queue_commit(queue_t *q)
{
    if (q->depth <= 0)
        return BL_ESTATE;
    if (--q->depth > 0)
        return 0;
    int rc = 0;
    if (q->poisoned) {
        LOG_ERROR(WHO, "a write of this transaction was lost: rolling it back");
        q->poisoned = false;
        rc = BL_EIO;
    }
    if (!rc && q->seq_dirty) { /* the sequences taken in this transaction, stored once */
        sqlite3_stmt *s = queue_stmt(q, S_SEQ_SET);
        sqlite3_bind_int64(s, 1, (int64_t)q->last_seq);
        rc = queue_run(q, s, "storing the origin sequence");
        q->seq_dirty = false;
    }
    if (!rc)
        rc = floors_flush(q);
#ifdef BL_FAULTS
    if (!rc && queue_fault("commit"))
        rc = queue_db_fail(q, SQLITE_FULL, "injected fault in commit");
#endif
    if (!rc)
        rc = queue_run(q, queue_stmt(q, S_COMMIT), "COMMIT");
    if (!rc)
        walsync_kick(q->ws); /* the log grew: flush it within the interval */
    if (rc) {
        /* The transaction is gone either way; drop caches that may hold its writes. */
        if (!sqlite3_get_autocommit(q->db))
            queue_run(q, queue_stmt(q, S_ROLLBACK), "ROLLBACK");
        queue_cache_reset(q);
    }
    return rc;
}

/* Close an internal begin: commit on success, otherwise keep the error and still
 * unwind the nesting (the outermost caller decides about its own transaction). */
int queue_end_internal(queue_t *q, int rc)
{
    if (rc)
        queue_cache_reset(q); /* the cache may be ahead of what reached the database */
    int crc = queue_commit(q);
    return rc ? rc : crc;
}

/* ---- lists of messages read back ---- */

int queue_list_add(queue_list_t *o, bl_msg_t *m, int64_t enq_ms)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 16;
        bl_msg_t **nm = realloc(o->msgs, cap * sizeof(*nm));
        if (!nm)
            return BL_ENOMEM;
        o->msgs = nm;
        int64_t *ne = realloc(o->enq, cap * sizeof(*ne));
        if (!ne)
            return BL_ENOMEM;
        o->enq = ne;
        o->cap = cap;
    }
    o->msgs[o->n] = m;
    o->enq[o->n++] = enq_ms;
    return 0;
}
