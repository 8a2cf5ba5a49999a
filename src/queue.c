/* SPDX-License-Identifier: MIT */
/* queue.c - durable state in one SQLite database (WAL). See docs/QUEUE.md for the
 * schema, why each key exists and what "durable" means here. */
#include "queue.h"

#include "log.h"
#include "walsync.h"

#include <inttypes.h>
#include <stdio.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define WHO "queue"
#define SCHEMA_VERSION 1
#define FRAME_VERSION 1
#define BUSY_TIMEOUT_MS 5000
#define QUEUE_WAL_PAGES 4000
#define QUEUE_WALSYNC_MS 100 /* the log is flushed this often by a helper thread */

#ifdef BL_FAULTS
/* Test builds only: BL_FAULT=NAME[:N] makes the N-th (default first) call of the write
 * NAME fail as a full disk would, so that a test can show what the daemon does with a
 * lost write at each place an acknowledgement relies on (tests/lab/t26). */
static bool fault(const char *name)
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
#define FAULT(q, name)                                                                             \
    do {                                                                                           \
        if (fault(name))                                                                           \
            return db_fail(q, SQLITE_FULL, "injected fault in " name);                             \
    } while (0)
#else
#define FAULT(q, name) (void)0
#endif
#define BL_STR_(x) #x
#define BL_STR(x) BL_STR_(x)

enum {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SEQ_GET,
    S_SEQ_SET,
    S_PUSH,
    S_PEEK,
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
    bool poisoned; /* the open transaction lost a write it needs: its commit must fail */
    int64_t in1_n; /* number of the last QoS 1 message recorded in mqin1, -1 unknown */
    walsync_t *ws; /* flushes the log between checkpoints (walsync.h) */
    ret_use_t *ret_use; /* retained entries and bytes per origin, loaded at first use */
    size_t n_ret_use;
    bool ret_loaded;
    bool wal;      /* journal_mode is WAL (else there is no log to flush) */
};

/* ---- frame: the private row serialisation of a bl_msg_t ----
 *
 * u8 version, u8 flags, u8 qos, u8 payload_format (0xff = absent), varint seq,
 * [varint expiry], str topic, [str origin], [str content_type], [str response_topic],
 * [bytes correlation], varint n_user_props, n x (str key, str value), bytes payload.
 * varint = LEB128; str/bytes = varint length + data. Optional fields by flag. */
enum {
    F_RETAIN = 1,
    F_DUP = 2,
    F_EXPIRY = 4,
    F_ORIGIN = 8,
    F_CTYPE = 16,
    F_RTOPIC = 32,
    F_CORR = 64,
    F_ALL = 127
};

static uint8_t *put_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_bytes(uint8_t *p, const void *data, size_t len)
{
    p = put_varint(p, len);
    if (len)
        memcpy(p, data, len);
    return p + len;
}

static uint8_t *put_str(uint8_t *p, const char *s)
{
    return put_bytes(p, s, strlen(s));
}

static size_t str_bound(const char *s)
{
    return s ? 10 + strlen(s) : 0;
}

static int frame_check(const bl_msg_t *m)
{
    if (!m->topic || m->qos > 2 || m->payload_format < -1 || m->payload_format > 1 ||
        (m->payload_len && !m->payload) || (m->correlation_len && !m->correlation) ||
        (m->n_user_props && !m->user_props))
        return BL_EINVAL;
    for (size_t i = 0; i < m->n_user_props; i++)
        if (!m->user_props[i].key || !m->user_props[i].value)
            return BL_EINVAL;
    return 0;
}

static int frame_encode(const bl_msg_t *m, uint8_t **out, size_t *out_len)
{
    int rc = frame_check(m);
    if (rc)
        return rc;
    size_t bound = 4 + 10 + 10 + str_bound(m->topic) + str_bound(m->origin) +
                   str_bound(m->content_type) + str_bound(m->response_topic) + 10 +
                   m->correlation_len + 10 + 10 + m->payload_len;
    for (size_t i = 0; i < m->n_user_props; i++)
        bound += str_bound(m->user_props[i].key) + str_bound(m->user_props[i].value);
    if (bound > INT32_MAX) /* SQLite binds blob lengths as int */
        return BL_ETOOBIG;
    uint8_t *buf = malloc(bound), *p = buf;
    if (!buf)
        return BL_ENOMEM;
    uint8_t flags = (m->retain ? F_RETAIN : 0) | (m->dup ? F_DUP : 0) |
                    (m->has_expiry ? F_EXPIRY : 0) | (m->origin ? F_ORIGIN : 0) |
                    (m->content_type ? F_CTYPE : 0) | (m->response_topic ? F_RTOPIC : 0) |
                    (m->correlation ? F_CORR : 0);
    *p++ = FRAME_VERSION;
    *p++ = flags;
    *p++ = m->qos;
    *p++ = m->payload_format < 0 ? 0xff : (uint8_t)m->payload_format;
    p = put_varint(p, m->seq);
    if (m->has_expiry)
        p = put_varint(p, m->expiry_s);
    p = put_str(p, m->topic);
    if (m->origin)
        p = put_str(p, m->origin);
    if (m->content_type)
        p = put_str(p, m->content_type);
    if (m->response_topic)
        p = put_str(p, m->response_topic);
    if (m->correlation)
        p = put_bytes(p, m->correlation, m->correlation_len);
    p = put_varint(p, m->n_user_props);
    for (size_t i = 0; i < m->n_user_props; i++) {
        p = put_str(p, m->user_props[i].key);
        p = put_str(p, m->user_props[i].value);
    }
    p = put_bytes(p, m->payload, m->payload_len);
    *out = buf;
    *out_len = (size_t)(p - buf);
    return 0;
}

typedef struct {
    const uint8_t *p;
    size_t len, off;
} rd_t;

static int rd_varint(rd_t *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->off >= r->len)
            return BL_ETRUNC;
        uint8_t b = r->p[r->off++];
        if (shift == 63 && (b & 0xfe)) /* would overflow 64 bits */
            return BL_EINVAL;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return BL_EINVAL;
}

/* Owned copy of a length-prefixed field; `text` refuses embedded NULs (C strings). */
static int rd_field(rd_t *r, bool text, uint8_t **out, size_t *out_len)
{
    uint64_t n;
    int rc = rd_varint(r, &n);
    if (rc)
        return rc;
    if (n > r->len - r->off)
        return BL_ETRUNC;
    if (text && memchr(r->p + r->off, 0, n))
        return BL_EINVAL;
    uint8_t *d = malloc(n + 1);
    if (!d)
        return BL_ENOMEM;
    memcpy(d, r->p + r->off, n);
    d[n] = 0;
    r->off += n;
    *out = d;
    if (out_len)
        *out_len = n;
    return 0;
}

static int rd_str(rd_t *r, char **out)
{
    return rd_field(r, true, (uint8_t **)out, NULL);
}

static int frame_decode_props(rd_t *r, bl_msg_t *m)
{
    uint64_t n;
    int rc = rd_varint(r, &n);
    if (rc)
        return rc;
    if (n > (r->len - r->off) / 2) /* each pair takes at least two bytes */
        return BL_ETRUNC;
    if (n) {
        m->user_props = calloc(n, sizeof(*m->user_props));
        if (!m->user_props)
            return BL_ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        msg_user_prop_t *up = &m->user_props[i];
        if ((rc = rd_str(r, &up->key)) || (rc = rd_str(r, &up->value))) {
            free(up->key);
            up->key = NULL;
            return rc;
        }
        m->n_user_props++;
    }
    return 0;
}

static int frame_decode_body(rd_t *r, bl_msg_t *m)
{
    if (r->len < 4)
        return BL_ETRUNC;
    uint8_t ver = r->p[0], flags = r->p[1], qos = r->p[2], pf = r->p[3];
    if (ver != FRAME_VERSION || (flags & ~F_ALL) || qos > 2 || (pf > 1 && pf != 0xff))
        return BL_EINVAL;
    r->off = 4;
    m->qos = qos;
    m->retain = flags & F_RETAIN;
    m->dup = flags & F_DUP;
    m->payload_format = pf == 0xff ? -1 : pf;
    uint64_t v;
    int rc = rd_varint(r, &m->seq);
    if (!rc && (flags & F_EXPIRY) && !(rc = rd_varint(r, &v))) {
        if (v > UINT32_MAX)
            return BL_EINVAL;
        m->has_expiry = true;
        m->expiry_s = (uint32_t)v;
    }
    if (rc || (rc = rd_str(r, &m->topic)) || ((flags & F_ORIGIN) && (rc = rd_str(r, &m->origin))) ||
        ((flags & F_CTYPE) && (rc = rd_str(r, &m->content_type))) ||
        ((flags & F_RTOPIC) && (rc = rd_str(r, &m->response_topic))) ||
        ((flags & F_CORR) && (rc = rd_field(r, false, &m->correlation, &m->correlation_len))) ||
        (rc = frame_decode_props(r, m)) || (rc = rd_field(r, false, &m->payload, &m->payload_len)))
        return rc;
    return r->off == r->len ? 0 : BL_EINVAL; /* trailing bytes: not our frame */
}

/* The origin of a stored frame without decoding the rest ("" when it has none). */
static int frame_origin(const void *buf, size_t len, char origin[BL_SITE_NAME_MAX + 1])
{
    rd_t r = {.p = buf, .len = len, .off = 4};
    uint64_t v;
    origin[0] = '\0';
    if (!buf || len < 4)
        return BL_ETRUNC;
    uint8_t flags = r.p[1];
    int rc = rd_varint(&r, &v);
    if (!rc && (flags & F_EXPIRY))
        rc = rd_varint(&r, &v);
    for (int i = 0; !rc && i < ((flags & F_ORIGIN) ? 2 : 1); i++) { /* topic, origin */
        if (!(rc = rd_varint(&r, &v)) && v > r.len - r.off)
            rc = BL_ETRUNC;
        if (!rc && i == 1) {
            if (v > BL_SITE_NAME_MAX)
                return BL_EINVAL;
            memcpy(origin, r.p + r.off, v);
            origin[v] = '\0';
        }
        r.off += rc ? 0 : v;
    }
    return rc;
}

static int frame_decode(const void *buf, size_t len, bl_msg_t **out)
{
    bl_msg_t *m = msg_new();
    if (!m)
        return BL_ENOMEM;
    rd_t r = {.p = buf, .len = len, .off = 0};
    int rc = buf ? frame_decode_body(&r, m) : BL_ETRUNC;
    if (rc) {
        msg_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- statement helpers ---- */

static int db_fail(queue_t *q, int src, const char *what)
{
    LOG_ERROR(WHO, "%s: %s (sqlite %d)", what, sqlite3_errmsg(q->db), src);
    if (q->depth > 0)
        q->poisoned = true; /* queue.h: the transaction's commit must fail */
    return src == SQLITE_BUSY || src == SQLITE_LOCKED ? BL_EAGAIN : BL_EIO;
}

static sqlite3_stmt *stmt(queue_t *q, int id)
{
    sqlite3_stmt *s = q->st[id];
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
}

/* Run a statement that returns no rows. */
static int run(queue_t *q, sqlite3_stmt *s, const char *what)
{
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    return src == SQLITE_DONE ? 0 : db_fail(q, src, what);
}

static void bind_name(sqlite3_stmt *s, int i, const char *name)
{
    sqlite3_bind_text(s, i, name, -1, SQLITE_STATIC);
}

/* SQLite integers are signed 64-bit; sequences above that cannot be stored. */
static bool seq_ok(uint64_t seq)
{
    return seq > 0 && seq <= (uint64_t)INT64_MAX;
}

/* Forget everything cached: after a rollback the database is the only truth. The origin
 * sequence is kept while a transaction is still open (a failed statement inside it does
 * not undo the others): its messages may still commit, and their sequences must then
 * be stored and never handed out again. */
static int floors_flush(queue_t *q);
static void cache_reset(queue_t *q)
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
    return src == SQLITE_OK ? 0 : db_fail(q, src, "reading schema version");
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
            rc = rc ? rc : db_fail(q, src, "creating schema");
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
        return db_fail(q, src, "setting locking_mode=EXCLUSIVE");
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
        return db_fail(q, src, "setting synchronous=NORMAL");
    /* Checkpoint every ~16 MiB of log instead of every ~4 MiB: a queue rewrites the
     * same few pages over and over, and each checkpoint copies them (and syncs). */
    src =
        sqlite3_exec(q->db, "PRAGMA wal_autocheckpoint=" BL_STR(QUEUE_WAL_PAGES), NULL, NULL, NULL);
    if (src != SQLITE_OK)
        return db_fail(q, src, "setting wal_autocheckpoint");
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
        rc = db_fail(q, src, "creating the in-doubt table");
        goto error;
    }
    for (int i = 0; i < S_COUNT_STMTS; i++) {
        src =
            sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL);
        if (src != SQLITE_OK) {
            rc = db_fail(q, src, "preparing statements");
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

static int floor_store(queue_t *q, origin_ent_t *e);

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
        int rc = run(q, stmt(q, S_BEGIN), "BEGIN");
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
        sqlite3_stmt *s = stmt(q, S_SEQ_SET);
        sqlite3_bind_int64(s, 1, (int64_t)q->last_seq);
        rc = run(q, s, "storing the origin sequence");
        q->seq_dirty = false;
    }
    if (!rc)
        rc = floors_flush(q);
#ifdef BL_FAULTS
    if (!rc && fault("commit"))
        rc = db_fail(q, SQLITE_FULL, "injected fault in commit");
#endif
    if (!rc)
        rc = run(q, stmt(q, S_COMMIT), "COMMIT");
    if (!rc)
        walsync_kick(q->ws); /* the log grew: flush it within the interval */
    if (rc) {
        /* The transaction is gone either way; drop caches that may hold its writes. */
        if (!sqlite3_get_autocommit(q->db))
            run(q, stmt(q, S_ROLLBACK), "ROLLBACK");
        cache_reset(q);
    }
    return rc;
}

/* Close an internal begin: commit on success, otherwise keep the error and still
 * unwind the nesting (the outermost caller decides about its own transaction). */
static int end_internal(queue_t *q, int rc)
{
    if (rc)
        cache_reset(q); /* the cache may be ahead of what reached the database */
    int crc = queue_commit(q);
    return rc ? rc : crc;
}

/* ---- origin sequence ---- */

int queue_next_seq(queue_t *q, uint64_t *seq)
{
    FAULT(q, "next_seq");
    if (!q || !seq)
        return BL_EINVAL;
    if (!q->seq_loaded) {
        sqlite3_stmt *s = stmt(q, S_SEQ_GET);
        int src = sqlite3_step(s);
        if (src != SQLITE_ROW && src != SQLITE_DONE)
            return db_fail(q, src, "reading the origin sequence");
        q->last_seq = src == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
        sqlite3_reset(s);
        q->seq_loaded = true;
    }
    if (!seq_ok(q->last_seq + 1))
        return BL_ETOOBIG;
    if (q->depth > 0) { /* stored by the commit that makes the message durable */
        q->seq_dirty = true;
        *seq = ++q->last_seq;
        return 0;
    }
    sqlite3_stmt *s = stmt(q, S_SEQ_SET);
    sqlite3_bind_int64(s, 1, (int64_t)(q->last_seq + 1));
    int rc = run(q, s, "storing the origin sequence");
    if (rc) {
        q->seq_loaded = false;
        return rc;
    }
    *seq = ++q->last_seq;
    return 0;
}

/* ---- outbound queues ---- */

static peer_ent_t *peer_get(queue_t *q, const char *peer)
{
    for (size_t i = 0; i < q->n_peers; i++)
        if (strcmp(q->peers[i].name, peer) == 0)
            return &q->peers[i];
    if (q->n_peers == q->cap_peers) {
        size_t cap = q->cap_peers ? 2 * q->cap_peers : 8;
        peer_ent_t *np = realloc(q->peers, cap * sizeof(*np));
        if (!np)
            return NULL;
        q->peers = np;
        q->cap_peers = cap;
    }
    /* First use since open (or since a rollback): count what the file holds. */
    sqlite3_stmt *s = stmt(q, S_COUNT);
    bind_name(s, 1, peer);
    int src = sqlite3_step(s);
    int64_t count = src == SQLITE_ROW ? sqlite3_column_int64(s, 0) : -1;
    sqlite3_reset(s);
    if (count < 0) {
        db_fail(q, src, "counting a peer's queue");
        return NULL;
    }
    peer_ent_t *e = &q->peers[q->n_peers++];
    snprintf(e->name, sizeof(e->name), "%s", peer);
    e->count = (size_t)count;
    return e;
}

int queue_push(queue_t *q, const char *peer, const bl_msg_t *m, int64_t enq_ms, size_t max_messages)
{
    FAULT(q, "push");
    if (!q || !bl_site_name_valid(peer) || !m || !seq_ok(m->seq))
        return BL_EINVAL;
    peer_ent_t *e = peer_get(q, peer);
    if (!e)
        return BL_EIO;
    if (max_messages && e->count >= max_messages)
        return BL_ETOOBIG;
    uint8_t *frame;
    size_t len;
    int rc = frame_encode(m, &frame, &len);
    if (rc)
        return rc;
    sqlite3_stmt *s = stmt(q, S_PUSH);
    bind_name(s, 1, peer);
    sqlite3_bind_int64(s, 2, (int64_t)m->seq);
    sqlite3_bind_int64(s, 3, enq_ms);
    sqlite3_bind_blob(s, 4, frame, (int)len, SQLITE_STATIC);
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    free(frame);
    if (src == SQLITE_CONSTRAINT) {
        LOG_WARN(WHO, "peer %s: seq %" PRIu64 " is already queued", peer, m->seq);
        return BL_EINVAL;
    }
    if (src != SQLITE_DONE)
        return db_fail(q, src, "queueing a message");
    e->count++;
    return 0;
}

/* Narrow [first, last] to the sequences a row can hold (seq_ok); false if none is left. */
static bool seq_range(uint64_t *first, uint64_t *last)
{
    if (*first == 0)
        *first = 1;
    if (*last > (uint64_t)INT64_MAX)
        *last = (uint64_t)INT64_MAX;
    return *first <= *last;
}

int queue_ack_range(queue_t *q, const char *peer, uint64_t first, uint64_t last)
{
    FAULT(q, "ack");
    if (!q || !bl_site_name_valid(peer) || first > last)
        return BL_EINVAL;
    if (!seq_range(&first, &last))
        return 0; /* no sequence that can be queued: nothing to remove */
    peer_ent_t *e = peer_get(q, peer);
    if (!e)
        return BL_EIO;
    sqlite3_stmt *s = stmt(q, S_ACK);
    bind_name(s, 1, peer);
    sqlite3_bind_int64(s, 2, (int64_t)first);
    sqlite3_bind_int64(s, 3, (int64_t)last);
    int rc = run(q, s, "removing acknowledged messages");
    if (rc == 0) {
        size_t gone = (size_t)sqlite3_changes(q->db);
        e->count = e->count > gone ? e->count - gone : 0;
    }
    return rc;
}

int queue_ack(queue_t *q, const char *peer, uint64_t seq)
{
    return queue_ack_range(q, peer, seq, seq);
}

size_t queue_depth(queue_t *q, const char *peer)
{
    if (!q || !bl_site_name_valid(peer))
        return 0;
    peer_ent_t *e = peer_get(q, peer);
    return e ? e->count : 0;
}

void queue_msgs_free(bl_msg_t **msgs, int64_t *enq_ms, size_t n)
{
    for (size_t i = 0; msgs && i < n; i++)
        msg_free(msgs[i]);
    free(msgs);
    free(enq_ms);
}

typedef struct {
    bl_msg_t **msgs;
    int64_t *enq;
    size_t n, cap;
} peek_out_t;

static int peek_add(peek_out_t *o, bl_msg_t *m, int64_t enq_ms)
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

/* One LIMITed page of rows. Rows that do not decode are logged and collected in bad[]
 * so the caller can delete them once the statement is reset. */
static int peek_page(queue_t *q, const char *peer, uint64_t *after, size_t limit, peek_out_t *o,
                     uint64_t *bad, size_t *n_bad, size_t *rows)
{
    sqlite3_stmt *s = stmt(q, S_PEEK);
    bind_name(s, 1, peer);
    sqlite3_bind_int64(s, 2, (int64_t)*after);
    sqlite3_bind_int64(s, 3, (int64_t)BL_MIN(limit, (size_t)INT64_MAX));
    int src = SQLITE_DONE, rc = 0;
    *rows = 0;
    while (rc == 0 && (src = sqlite3_step(s)) == SQLITE_ROW) {
        uint64_t seq = (uint64_t)sqlite3_column_int64(s, 0);
        int64_t enq_ms = sqlite3_column_int64(s, 1);
        const void *blob = sqlite3_column_blob(s, 2);
        size_t len = (size_t)sqlite3_column_bytes(s, 2);
        bl_msg_t *m = NULL;
        (*rows)++;
        *after = seq;
        rc = frame_decode(blob, len, &m);
        if (rc == 0 && m->seq != seq)
            rc = BL_EINVAL;
        if (rc == 0) {
            if ((rc = peek_add(o, m, enq_ms)))
                msg_free(m);
        } else if (rc != BL_ENOMEM) {
            LOG_ERROR(WHO, "peer %s: queued seq %" PRIu64 " is corrupt (%s, %zu bytes): dropped",
                      peer, seq, bl_strerror(rc), len);
            msg_free(m);
            bad[(*n_bad)++] = seq;
            rc = 0;
            if (*n_bad == 16) /* delete these before reading on */
                break;
        }
    }
    if (rc == 0 && src != SQLITE_ROW && src != SQLITE_DONE)
        rc = db_fail(q, src, "reading a peer's queue");
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc;
}

int queue_peek(queue_t *q, const char *peer, uint64_t after_seq, size_t max, bl_msg_t ***msgs,
               int64_t **enq_ms, size_t *n)
{
    if (!q || !bl_site_name_valid(peer) || !msgs || !enq_ms || !n)
        return BL_EINVAL;
    *msgs = NULL;
    *enq_ms = NULL;
    *n = 0;
    peek_out_t o = {0};
    int rc = 0;
    /* A corrupt row does not count against `max`: read on until max are found or the
     * queue ends, in pages of at most what is still wanted. */
    while (rc == 0 && o.n < max) {
        uint64_t bad[16];
        size_t n_bad = 0, rows, want = max - o.n;
        rc = peek_page(q, peer, &after_seq, want, &o, bad, &n_bad, &rows);
        for (size_t i = 0; rc == 0 && i < n_bad; i++)
            rc = queue_ack(q, peer, bad[i]);
        if (rows == 0 || (n_bad == 0 && rows < want))
            break;
    }
    if (rc) {
        queue_msgs_free(o.msgs, o.enq, o.n);
        return rc;
    }
    *msgs = o.msgs;
    *enq_ms = o.enq;
    *n = o.n;
    return 0;
}

/* ---- inbound dedupe ----
 *
 * Per origin: a floor (every seq <= floor counts as seen) plus one row per seen seq
 * above it. The floor advances over contiguous rows, and never trails the highest seen
 * seq by more than QUEUE_SEEN_WINDOW, so an origin costs at most that many rows however
 * many sequences this site never receives (docs/QUEUE.md explains why that is safe). */

static int origin_load(queue_t *q, const char *origin, origin_ent_t *e)
{
    sqlite3_stmt *s = stmt(q, S_FLOOR_GET);
    bind_name(s, 1, origin);
    int src = sqlite3_step(s);
    e->floor = src == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return db_fail(q, src, "reading a dedupe floor");
    s = stmt(q, S_SEEN_MAX);
    bind_name(s, 1, origin);
    src = sqlite3_step(s);
    uint64_t max = src == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (src != SQLITE_ROW)
        return db_fail(q, src, "reading the dedupe window");
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
    if (q->n_origins == q->cap_origins) {
        size_t cap = q->cap_origins ? 2 * q->cap_origins : 8;
        origin_ent_t *no = realloc(q->origins, cap * sizeof(*no));
        if (!no)
            return BL_ENOMEM;
        q->origins = no;
        q->cap_origins = cap;
    }
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
    sqlite3_stmt *s = stmt(q, S_SEEN_AFTER);
    bind_name(s, 1, e->name);
    sqlite3_bind_int64(s, 2, (int64_t)floor);
    int src;
    while ((src = sqlite3_step(s)) == SQLITE_ROW &&
           (uint64_t)sqlite3_column_int64(s, 0) == floor + 1)
        floor++;
    sqlite3_reset(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return db_fail(q, src, "reading the dedupe window");
    s = stmt(q, S_SEEN_PRUNE);
    bind_name(s, 1, e->name);
    sqlite3_bind_int64(s, 2, (int64_t)floor);
    int rc = run(q, s, "pruning the dedupe window");
    if (rc)
        return rc;
    e->floor = floor;
    e->floor_dirty = true;
    return 0;
}

static int floor_store(queue_t *q, origin_ent_t *e)
{
    sqlite3_stmt *s = stmt(q, S_FLOOR_SET);
    bind_name(s, 1, e->name);
    sqlite3_bind_int64(s, 2, (int64_t)e->floor);
    return run(q, s, "storing a dedupe floor");
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
        sqlite3_stmt *s = stmt(q, S_SEEN_ADD);
        bind_name(s, 1, e->name);
        sqlite3_bind_int64(s, 2, (int64_t)seq);
        int rc = run(q, s, "storing a seen sequence");
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
    if (!q || !bl_site_name_valid(origin) || !seq_ok(seq))
        return BL_EINVAL;
    int rc = queue_begin(q);
    if (rc)
        return rc;
    origin_ent_t *e;
    if ((rc = origin_get(q, origin, &e)) == 0)
        rc = mark(q, e, seq);
    return end_internal(q, rc);
}

int queue_seen(queue_t *q, const char *origin, uint64_t seq)
{
    if (!q || !bl_site_name_valid(origin) || !seq_ok(seq))
        return BL_EINVAL;
    origin_ent_t *e;
    int rc = origin_get(q, origin, &e);
    if (rc)
        return rc;
    if (seq <= e->floor)
        return 1;
    if (seq > e->max)
        return 0;
    sqlite3_stmt *s = stmt(q, S_SEEN_GET);
    bind_name(s, 1, origin);
    sqlite3_bind_int64(s, 2, (int64_t)seq);
    int src = sqlite3_step(s);
    sqlite3_reset(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return db_fail(q, src, "looking up a seen sequence");
    return src == SQLITE_ROW;
}

/* ---- retained store ---- */

static ret_use_t *ret_use_of(queue_t *q, const char *origin)
{
    for (size_t i = 0; i < q->n_ret_use; i++)
        if (!strcmp(q->ret_use[i].name, origin))
            return &q->ret_use[i];
    ret_use_t *n = realloc(q->ret_use, (q->n_ret_use + 1) * sizeof(*n));
    if (!n)
        return NULL;
    q->ret_use = n;
    n = &q->ret_use[q->n_ret_use++];
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", origin);
    return n;
}

/* Count every stored entry by its origin, once (and again after a rollback). */
static int ret_use_load(queue_t *q)
{
    if (q->ret_loaded)
        return 0;
    q->n_ret_use = 0;
    sqlite3_stmt *s = stmt(q, S_RET_ALL);
    int src, rc = 0;
    char origin[BL_SITE_NAME_MAX + 1];
    while (rc == 0 && (src = sqlite3_step(s)) == SQLITE_ROW) {
        size_t len = (size_t)sqlite3_column_bytes(s, 1);
        frame_origin(sqlite3_column_blob(s, 1), len, origin);
        ret_use_t *u = ret_use_of(q, origin);
        if (!u)
            rc = BL_ENOMEM;
        else
            u->topics++, u->bytes += len;
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(q, src, "reading the retained store");
    sqlite3_reset(s);
    q->ret_loaded = rc == 0;
    return rc;
}

/* The stored entry of topic: its origin and length (*len 0 when there is none). */
static int ret_old(queue_t *q, const char *topic, char origin[BL_SITE_NAME_MAX + 1], size_t *len)
{
    sqlite3_stmt *s = stmt(q, S_RET_GET);
    bind_name(s, 1, topic);
    int src = sqlite3_step(s), rc = 0;
    *len = 0;
    if (src == SQLITE_ROW) {
        *len = (size_t)sqlite3_column_bytes(s, 0);
        frame_origin(sqlite3_column_blob(s, 0), *len, origin);
    } else if (src != SQLITE_DONE) {
        rc = db_fail(q, src, "reading a retained message");
    }
    sqlite3_reset(s);
    return rc;
}

int queue_retained_usage(queue_t *q, const char *origin, size_t *topics, size_t *bytes)
{
    int rc = q && origin ? ret_use_load(q) : BL_EINVAL;
    ret_use_t *u = rc ? NULL : ret_use_of(q, origin);
    if (!rc && !u)
        rc = BL_ENOMEM;
    *topics = u ? u->topics : 0;
    *bytes = u ? u->bytes : 0;
    return rc;
}

int queue_retained_put_max(queue_t *q, const bl_msg_t *m, size_t max_topics, size_t max_bytes)
{
    FAULT(q, "retained_put");
    if (!q || !m || !m->topic)
        return BL_EINVAL;
    uint8_t *frame;
    size_t len, old_len;
    char old[BL_SITE_NAME_MAX + 1];
    const char *origin = m->origin ? m->origin : "";
    int rc = frame_encode(m, &frame, &len);
    if (!rc)
        rc = ret_use_load(q);
    if (!rc)
        rc = ret_old(q, m->topic, old, &old_len);
    /* Both entries made first: making one may move the array. */
    if (!rc && (!ret_use_of(q, origin) || (old_len && !ret_use_of(q, old))))
        rc = BL_ENOMEM;
    if (rc) {
        free(frame);
        return rc;
    }
    ret_use_t *u = ret_use_of(q, origin), *o = old_len ? ret_use_of(q, old) : NULL;
    /* What the origin would hold with m in place of the topic's entry. Only growth is
     * refused: a store over a cap lowered since may still replace its entries. */
    bool same = old_len && u == o;
    size_t topics = u->topics + !same, bytes = u->bytes - (same ? old_len : 0) + len;
    if ((max_topics && topics > max_topics && topics > u->topics) ||
        (max_bytes && bytes > max_bytes && bytes > u->bytes)) {
        free(frame);
        return BL_ETOOBIG;
    }
    /* An empty payload is stored like any other: the tombstone lets a site that was
     * offline learn of the clear later (MQTT 5 section 3.3.1.3). */
    sqlite3_stmt *s = stmt(q, S_RET_PUT);
    bind_name(s, 1, m->topic);
    sqlite3_bind_blob(s, 2, frame, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, bl_wall_ms());
    rc = run(q, s, "storing a retained message");
    sqlite3_clear_bindings(s);
    free(frame);
    if (rc)
        return rc;
    if (old_len) {
        o->topics--;
        o->bytes -= BL_MIN(o->bytes, old_len);
    }
    u->topics++;
    u->bytes += len;
    return 0;
}

int queue_retained_put(queue_t *q, const bl_msg_t *m)
{
    return queue_retained_put_max(q, m, 0, 0);
}

int queue_retained_all(queue_t *q, bl_msg_t ***msgs, size_t *n)
{
    if (!q || !msgs || !n)
        return BL_EINVAL;
    *msgs = NULL;
    *n = 0;
    peek_out_t o = {0};
    sqlite3_stmt *s = stmt(q, S_RET_ALL);
    int src, rc = 0;
    while (rc == 0 && (src = sqlite3_step(s)) == SQLITE_ROW) {
        const char *topic = (const char *)sqlite3_column_text(s, 0);
        bl_msg_t *m = NULL;
        rc = frame_decode(sqlite3_column_blob(s, 1), (size_t)sqlite3_column_bytes(s, 1), &m);
        if (rc == 0 && (!topic || strcmp(topic, m->topic) != 0))
            rc = BL_EINVAL;
        if (rc == 0) {
            if ((rc = peek_add(&o, m, 0)))
                msg_free(m);
        } else if (rc != BL_ENOMEM) {
            LOG_ERROR(WHO, "retained topic %s is corrupt (%s): skipped", topic ? topic : "?",
                      bl_strerror(rc));
            msg_free(m);
            rc = 0;
        }
    }
    if (rc == 0 && src != SQLITE_DONE)
        rc = db_fail(q, src, "reading the retained store");
    sqlite3_reset(s);
    free(o.enq);
    if (rc) {
        queue_msgs_free(o.msgs, NULL, o.n);
        return rc;
    }
    *msgs = o.msgs;
    *n = o.n;
    return 0;
}

/* ---- meta values and origin epochs ---- */

int queue_meta_get(queue_t *q, const char *key, char *buf, size_t len)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL);
    if (src != SQLITE_OK)
        return db_fail(q, src, "reading a meta value");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    src = sqlite3_step(s);
    int rc = BL_ENOTFOUND;
    if (src == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(s, 0);
        if ((size_t)sqlite3_column_bytes(s, 0) >= len) {
            rc = BL_ETOOBIG; /* never a silently cut value */
        } else {
            snprintf(buf, len, "%s", v ? (const char *)v : "");
            rc = 0;
        }
    } else if (src != SQLITE_DONE) {
        rc = db_fail(q, src, "reading a meta value");
    }
    sqlite3_finalize(s);
    return rc;
}

int queue_meta_set(queue_t *q, const char *key, const char *value)
{
    FAULT(q, "meta_set");
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db,
                                 "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) "
                                 "DO UPDATE SET value = excluded.value",
                                 -1, &s, NULL);
    if (src != SQLITE_OK)
        return db_fail(q, src, "storing a meta value");
    sqlite3_bind_text(s, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_TRANSIENT);
    src = sqlite3_step(s);
    sqlite3_finalize(s);
    return src == SQLITE_DONE ? 0 : db_fail(q, src, "storing a meta value");
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
        sqlite3_stmt *s = stmt(q, S_SEEN_PRUNE);
        bind_name(s, 1, origin);
        sqlite3_bind_int64(s, 2, INT64_MAX);
        rc = run(q, s, "clearing a dedupe window");
        if (!rc) {
            s = stmt(q, S_FLOOR_SET);
            bind_name(s, 1, origin);
            sqlite3_bind_int64(s, 2, 0);
            rc = run(q, s, "clearing a dedupe floor");
        }
        if (!rc) {
            e->floor = e->max = 0;
            e->floor_dirty = false;
        }
    }
    return end_internal(q, rc);
}

int queue_retained_get(queue_t *q, const char *topic, bl_msg_t **out)
{
    *out = NULL;
    sqlite3_stmt *s = stmt(q, S_RET_GET);
    bind_name(s, 1, topic);
    int src = sqlite3_step(s);
    int rc = BL_ENOTFOUND;
    if (src == SQLITE_ROW)
        rc = frame_decode(sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0), out);
    else if (src != SQLITE_DONE)
        rc = db_fail(q, src, "reading a retained message");
    sqlite3_reset(s);
    return rc;
}

/* ---- in-doubt deliveries ---- */

int queue_indoubt_add(queue_t *q, const char *origin, uint64_t seq, const void *key, size_t key_len)
{
    FAULT(q, "indoubt_add");
    sqlite3_stmt *s = stmt(q, S_INDOUBT_ADD);
    bind_name(s, 1, origin);
    sqlite3_bind_int64(s, 2, (int64_t)seq);
    if (key)
        sqlite3_bind_blob(s, 3, key, (int)key_len, SQLITE_STATIC);
    int rc = run(q, s, "storing an in-doubt delivery");
    sqlite3_clear_bindings(s);
    return rc;
}

int queue_indoubt_del_range(queue_t *q, const char *origin, uint64_t first, uint64_t last)
{
    if (!q || !bl_site_name_valid(origin) || first > last)
        return BL_EINVAL;
    if (!seq_range(&first, &last))
        return 0; /* no sequence a record can have: nothing to remove */
    sqlite3_stmt *s = stmt(q, S_INDOUBT_DEL);
    bind_name(s, 1, origin);
    sqlite3_bind_int64(s, 2, (int64_t)first);
    sqlite3_bind_int64(s, 3, (int64_t)last);
    return run(q, s, "removing in-doubt deliveries");
}

int queue_indoubt_del(queue_t *q, const char *origin, uint64_t seq)
{
    return queue_indoubt_del_range(q, origin, seq, seq);
}

int queue_indoubt_each(queue_t *q, queue_indoubt_cb cb, void *ud)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db, "SELECT origin, seq, key FROM indoubt", -1, &s, NULL);
    if (src != SQLITE_OK)
        return db_fail(q, src, "reading in-doubt deliveries");
    while ((src = sqlite3_step(s)) == SQLITE_ROW) {
        const char *origin = (const char *)sqlite3_column_text(s, 0);
        if (origin)
            cb(ud, origin, (uint64_t)sqlite3_column_int64(s, 1), sqlite3_column_blob(s, 2),
               (size_t)sqlite3_column_bytes(s, 2));
    }
    sqlite3_finalize(s);
    return src == SQLITE_DONE ? 0 : db_fail(q, src, "reading in-doubt deliveries");
}

/* ---- the local broker session's QoS 2 state ---- */

static int mq_pid(queue_t *q, int id, uint16_t pid, const char *what)
{
    if (!q || !pid)
        return BL_EINVAL;
    sqlite3_stmt *s = stmt(q, id);
    sqlite3_bind_int(s, 1, pid);
    return run(q, s, what);
}

int queue_mq_in_add(queue_t *q, uint16_t pid)
{
    FAULT(q, "mq_in_add");
    return mq_pid(q, S_MQIN_ADD, pid, "storing a received QoS 2 packet id");
}

int queue_mq_in_del(queue_t *q, uint16_t pid)
{
    FAULT(q, "mq_in_del");
    return mq_pid(q, S_MQIN_DEL, pid, "removing a received QoS 2 packet id");
}

int queue_mq_out_add(queue_t *q, uint16_t pid, const char *origin, uint64_t seq, const bl_msg_t *m)
{
    FAULT(q, "mq_out_add");
    if (!q || !pid || !m || (seq && !seq_ok(seq)))
        return BL_EINVAL;
    uint8_t *frame;
    size_t len;
    int rc = frame_encode(m, &frame, &len);
    if (rc)
        return rc;
    sqlite3_stmt *s = stmt(q, S_MQOUT_ADD);
    sqlite3_bind_int(s, 1, pid);
    bind_name(s, 2, origin ? origin : "");
    sqlite3_bind_int64(s, 3, (int64_t)seq);
    sqlite3_bind_blob(s, 4, frame, (int)len, SQLITE_STATIC);
    rc = run(q, s, "storing a QoS 2 publish");
    sqlite3_clear_bindings(s);
    free(frame);
    return rc;
}

int queue_mq_out_rec(queue_t *q, uint16_t pid)
{
    FAULT(q, "mq_out_rec");
    return mq_pid(q, S_MQOUT_REC, pid, "storing a QoS 2 publish's PUBREC");
}

int queue_mq_out_del(queue_t *q, uint16_t pid)
{
    return mq_pid(q, S_MQOUT_DEL, pid, "removing a QoS 2 publish's packet id");
}

int queue_mq_reset(queue_t *q)
{
    int src = sqlite3_exec(q->db, "DELETE FROM mqin; DELETE FROM mqout; DELETE FROM mqin1", NULL,
                           NULL, NULL);
    return src == SQLITE_OK ? 0 : db_fail(q, src, "forgetting the local session's packet ids");
}

int queue_mq_each(queue_t *q, queue_mq_in_cb in, queue_mq_out_cb out, void *ud)
{
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db, "SELECT pid FROM mqin", -1, &s, NULL);
    if (src == SQLITE_OK)
        while ((src = sqlite3_step(s)) == SQLITE_ROW)
            in(ud, (uint16_t)sqlite3_column_int(s, 0));
    sqlite3_finalize(s);
    if (src != SQLITE_DONE)
        return db_fail(q, src, "reading the local session's packet ids");
    src = sqlite3_prepare_v2(q->db, "SELECT pid, origin, seq, released, frame FROM mqout", -1, &s,
                             NULL);
    while (src == SQLITE_OK && (src = sqlite3_step(s)) == SQLITE_ROW) {
        src = SQLITE_OK;
        const char *origin = (const char *)sqlite3_column_text(s, 1);
        uint16_t pid = (uint16_t)sqlite3_column_int(s, 0);
        bool released = sqlite3_column_int(s, 3) != 0;
        bl_msg_t *m = NULL;
        if (frame_decode(sqlite3_column_blob(s, 4), (size_t)sqlite3_column_bytes(s, 4), &m) &&
            !released) {
            /* It cannot go again: the broker keeps its id until the session expires. */
            LOG_ERROR(WHO, "a stored QoS 2 publish (packet id %u) is corrupt: left out", pid);
            continue;
        }
        out(ud, pid, origin ? origin : "", (uint64_t)sqlite3_column_int64(s, 2), released, m);
        msg_free(m);
    }
    sqlite3_finalize(s);
    return src == SQLITE_DONE ? 0 : db_fail(q, src, "reading the local session's packet ids");
}

/* QoS 1 packet ids taken from the broker (exactly-once): a resend of one of them can
 * only be among the last QUEUE_MQIN1_WINDOW, since the broker has at most our Receive
 * Maximum unacknowledged and gives an id anew only after its PUBACK. */
#define QUEUE_MQIN1_WINDOW 4096

static int in1_counter(queue_t *q)
{
    if (q->in1_n >= 0)
        return 0;
    sqlite3_stmt *s = NULL;
    int src = sqlite3_prepare_v2(q->db, "SELECT COALESCE(MAX(n), 0) FROM mqin1", -1, &s, NULL);
    if (src == SQLITE_OK && (src = sqlite3_step(s)) == SQLITE_ROW)
        q->in1_n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return q->in1_n >= 0 ? 0 : db_fail(q, src, "reading the QoS 1 packet ids");
}

int queue_mq_in1_add(queue_t *q, uint16_t pid, const void *key, size_t key_len)
{
    FAULT(q, "mq_in1_add");
    if (!q || !pid || !key)
        return BL_EINVAL;
    int rc = in1_counter(q);
    if (rc)
        return rc;
    sqlite3_stmt *s = stmt(q, S_MQIN1_ADD);
    sqlite3_bind_int(s, 1, pid);
    sqlite3_bind_blob(s, 2, key, (int)key_len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, ++q->in1_n);
    rc = run(q, s, "storing a QoS 1 packet id");
    sqlite3_clear_bindings(s);
    if (!rc && q->in1_n % 1024 == 0) {
        s = stmt(q, S_MQIN1_PRUNE);
        sqlite3_bind_int64(s, 1, q->in1_n - QUEUE_MQIN1_WINDOW);
        rc = run(q, s, "pruning the QoS 1 packet ids");
    }
    return rc;
}

int queue_mq_in1_seen(queue_t *q, uint16_t pid, const void *key, size_t key_len)
{
    if (!q || !pid || !key)
        return BL_EINVAL;
    int rc = in1_counter(q);
    if (rc)
        return rc;
    sqlite3_stmt *s = stmt(q, S_MQIN1_GET);
    sqlite3_bind_int(s, 1, pid);
    int src = sqlite3_step(s);
    int seen = 0;
    if (src == SQLITE_ROW)
        seen = sqlite3_column_int64(s, 1) > q->in1_n - QUEUE_MQIN1_WINDOW &&
               (size_t)sqlite3_column_bytes(s, 0) == key_len &&
               !memcmp(sqlite3_column_blob(s, 0), key, key_len);
    sqlite3_reset(s);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return db_fail(q, src, "reading a QoS 1 packet id");
    return seen;
}
