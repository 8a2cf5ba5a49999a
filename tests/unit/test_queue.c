/* SPDX-License-Identifier: MIT */
/* test_queue.c - the durable queue: order, properties, persistence, crash durability,
 * caps, dedupe window, retained store, corrupt rows, schema version, memory bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "queue.h"

typedef struct {
    char *dir;
    char *db;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    fx->dir = fixture_tmpdir("bl-queue");
    fx->db = g_build_filename(fx->dir, "queue.db", NULL);
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *fx = *state;
    fixture_rmdir(fx->dir);
    g_free(fx->db);
    free(fx);
    return 0;
}

static queue_t *open_q(const fx_t *fx)
{
    queue_t *q = NULL;
    assert_int_equal(queue_open(fx->db, &q), 0);
    assert_non_null(q);
    return q;
}

static bl_msg_t *mk(uint64_t seq, const char *topic, const char *payload)
{
    bl_msg_t *m = msg_new();
    m->seq = seq;
    m->qos = 1;
    assert_int_equal(msg_set_topic(m, topic), 0);
    assert_int_equal(msg_set_payload(m, payload, strlen(payload)), 0);
    m->origin = strdup("home");
    return m;
}

static void push(queue_t *q, const char *peer, uint64_t seq, size_t cap, int want)
{
    char body[32];
    snprintf(body, sizeof(body), "m%llu", (unsigned long long)seq);
    bl_msg_t *m = mk(seq, "t/x", body);
    assert_int_equal(queue_push(q, peer, m, 1000 + (int64_t)seq, cap), want);
    msg_free(m);
}

/* Peek and check the returned seqs are exactly `want` (n_want of them). */
static void expect_seqs(queue_t *q, const char *peer, uint64_t after, size_t max,
                        const uint64_t *want, size_t n_want)
{
    bl_msg_t **msgs;
    int64_t *enq;
    size_t n;
    assert_int_equal(queue_peek(q, peer, after, max, &msgs, &enq, &n), 0);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msgs[i]->seq, want[i]);
        assert_int_equal(enq[i], 1000 + (int64_t)want[i]);
        char body[32];
        snprintf(body, sizeof(body), "m%llu", (unsigned long long)want[i]);
        assert_int_equal(msgs[i]->payload_len, strlen(body));
        assert_memory_equal(msgs[i]->payload, body, strlen(body));
    }
    queue_msgs_free(msgs, enq, n);
}

/* A second, raw connection: what another process (or a disk fault) could do. */
static sqlite3 *raw_open(const fx_t *fx)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
    return db;
}

static int64_t raw_int(const fx_t *fx, const char *sql)
{
    sqlite3 *db = raw_open(fx);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

/* raw_int while q is open: the queue holds its file exclusively, so look between a
 * close and a reopen (what is on disk is what survives either). */
static int64_t on_disk(const fx_t *fx, queue_t **q, const char *sql)
{
    queue_close(*q);
    int64_t v = raw_int(fx, sql);
    *q = open_q(fx);
    return v;
}

static void raw_exec(const fx_t *fx, const char *sql)
{
    sqlite3 *db = raw_open(fx);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* stderr into a file, so a test can read the log lines a call printed. */
static int capture_start(const fx_t *fx, char **path)
{
    *path = g_build_filename(fx->dir, "stderr.log", NULL);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(*path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static char *capture_end(int saved, char *path)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *text = NULL;
    assert_true(g_file_get_contents(path, &text, NULL, NULL));
    g_free(path);
    return text;
}

static void test_order_and_paging(void **state)
{
    queue_t *q = open_q(*state);
    for (uint64_t s = 1; s <= 10; s++)
        push(q, "alpha", s, 0, 0);
    for (uint64_t s = 20; s >= 11; s--) /* pushed out of order: peek still sorts */
        push(q, "beta", s, 0, 0);
    assert_int_equal(queue_depth(q, "alpha"), 10);
    assert_int_equal(queue_depth(q, "beta"), 10);
    assert_int_equal(queue_depth(q, "gamma"), 0);

    const uint64_t all[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    expect_seqs(q, "alpha", 0, 100, all, 10);
    expect_seqs(q, "alpha", 4, 3, (const uint64_t[]){5, 6, 7}, 3);
    expect_seqs(q, "alpha", 10, 5, NULL, 0);
    expect_seqs(q, "alpha", 0, 0, NULL, 0);
    expect_seqs(q, "beta", 15, 100, (const uint64_t[]){16, 17, 18, 19, 20}, 5);

    assert_int_equal(queue_ack(q, "alpha", 1), 0);
    assert_int_equal(queue_ack(q, "alpha", 5), 0);
    assert_int_equal(queue_ack(q, "alpha", 5), 0);   /* twice: not an error */
    assert_int_equal(queue_ack(q, "alpha", 999), 0); /* unknown: not an error */
    assert_int_equal(queue_ack(q, "beta", 2), 0);    /* beta never had 2 */
    assert_int_equal(queue_depth(q, "alpha"), 8);
    assert_int_equal(queue_depth(q, "beta"), 10);
    expect_seqs(q, "alpha", 0, 4, (const uint64_t[]){2, 3, 4, 6}, 4);

    /* the same seq may sit in two peers' queues, but not twice in one */
    push(q, "beta", 3, 0, 0);
    push(q, "beta", 3, 0, BL_EINVAL);
    assert_int_equal(queue_depth(q, "beta"), 11);
    /* bad arguments */
    push(q, "no spaces", 1, 0, BL_EINVAL);
    push(q, "alpha", 0, 0, BL_EINVAL);
    bl_msg_t *m = mk(77, "t", "x");
    free(m->topic);
    m->topic = NULL;
    assert_int_equal(queue_push(q, "alpha", m, 0, 0), BL_EINVAL);
    msg_free(m);
    queue_close(q);
}

/* The full test message (fixture.h) on a non-ASCII topic, with an expiry that does not
 * fit a signed 32-bit integer. */
static bl_msg_t *full_msg(void)
{
    bl_msg_t *m = msg_new();
    fixture_full_msg(m, "sensors/äöü/temp");
    m->expiry_s = 4000000000u;
    return m;
}

static void same_msg(const bl_msg_t *a, const bl_msg_t *b)
{
    assert_true(msg_equal(a, b));
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->dup, b->dup);
    assert_int_equal(a->origin == NULL, b->origin == NULL);
    if (a->origin)
        assert_string_equal(a->origin, b->origin);
    assert_int_equal(a->correlation == NULL, b->correlation == NULL);
    for (size_t i = 0; i < a->n_user_props; i++) {
        assert_string_equal(a->user_props[i].key, b->user_props[i].key);
        assert_string_equal(a->user_props[i].value, b->user_props[i].value);
    }
}

/* queue_peek_small takes the rows of at most max_row bytes in (after, upto], in order;
 * queue_row_size is a row's size exactly: a row of max_row bytes is in, one more is out. */
static void test_peek_small(void **state)
{
    queue_t *q = open_q(*state);
    char body[64];
    memset(body, 'b', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    size_t edge = 0;
    for (uint64_t s = 1; s <= 8; s++) {
        /* Odd seqs 40 bytes of payload, even ones 41 + s: 2 is the edge, 4..8 larger. */
        size_t len = s % 2 ? 40 : 41 + s - 2;
        body[len] = '\0';
        bl_msg_t *m = mk(s, "t/x", body);
        body[len] = 'b';
        if (s == 2)
            edge = queue_row_size(m);
        assert_int_equal(queue_push(q, "alpha", m, 0, 0), 0);
        msg_free(m);
    }
    bl_msg_t **msgs;
    int64_t *enq;
    size_t n = 0;
    assert_int_equal(queue_peek_small(q, "alpha", 0, 100, edge, 100, &msgs, &enq, &n), 0);
    const uint64_t want[] = {1, 2, 3, 5, 7};
    assert_int_equal(n, BL_ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(msgs[i]->seq, want[i]);
    queue_msgs_free(msgs, enq, n);
    assert_int_equal(queue_peek_small(q, "alpha", 2, 5, edge - 1, 100, &msgs, &enq, &n), 0);
    assert_int_equal(n, 2); /* 3 and 5 */
    assert_int_equal(msgs[0]->seq, 3);
    assert_int_equal(msgs[1]->seq, 5);
    queue_msgs_free(msgs, enq, n);
    assert_int_equal(queue_peek_small(q, "alpha", 0, 100, 0, 100, &msgs, &enq, &n), BL_EINVAL);
    queue_close(q);
}

static void test_all_properties(void **state)
{
    queue_t *q = open_q(*state);
    bl_msg_t *in[3];
    in[0] = full_msg();
    /* bare: empty payload, every optional absent, no origin */
    in[1] = msg_new();
    msg_set_topic(in[1], "bare");
    in[1]->seq = 2;
    /* empty but present correlation data; payload format 0; expiry 0 */
    in[2] = msg_new();
    msg_set_topic(in[2], "c");
    in[2]->seq = 3;
    in[2]->correlation = malloc(1);
    in[2]->correlation_len = 0;
    in[2]->payload_format = 0;
    in[2]->has_expiry = true;
    in[2]->expiry_s = 0;
    in[2]->content_type = strdup("");

    for (int i = 0; i < 3; i++)
        assert_int_equal(queue_push(q, "peer1", in[i], 42 + i, 0), 0);
    bl_msg_t **out;
    int64_t *enq;
    size_t n;
    assert_int_equal(queue_peek(q, "peer1", 0, 10, &out, &enq, &n), 0);
    assert_int_equal(n, 3);
    /* seq order: 2, 3, then the big one */
    same_msg(in[1], out[0]);
    same_msg(in[2], out[1]);
    same_msg(in[0], out[2]);
    assert_int_equal(enq[0], 43);
    assert_int_equal(enq[2], 42);
    assert_null(out[0]->origin);
    assert_int_equal(out[0]->payload_format, -1);
    assert_false(out[0]->has_expiry);
    assert_null(out[0]->correlation);
    assert_null(out[0]->content_type);
    assert_int_equal(out[0]->payload_len, 0);
    assert_non_null(out[1]->correlation);
    assert_int_equal(out[1]->correlation_len, 0);
    assert_string_equal(out[1]->content_type, "");
    assert_int_equal(out[2]->n_user_props, 4);
    assert_string_equal(out[2]->user_props[3].key, ""); /* empty key and value kept */
    assert_string_equal(out[2]->user_props[3].value, "");
    assert_int_equal(out[2]->expiry_s, 4000000000u);
    queue_msgs_free(out, enq, n);
    for (int i = 0; i < 3; i++)
        msg_free(in[i]);
    queue_close(q);
}

static void test_persistence(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_q(fx);
    uint64_t s;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(queue_next_seq(q, &s), 0);
        assert_int_equal(s, (uint64_t)i);
        push(q, "p", s, 0, 0);
    }
    assert_int_equal(queue_mark_seen(q, "other", 7), 0);
    assert_int_equal(queue_mark_seen(q, "other", 1), 0);
    queue_close(q);

    q = open_q(fx);
    assert_int_equal(queue_depth(q, "p"), 3);
    expect_seqs(q, "p", 0, 10, (const uint64_t[]){1, 2, 3}, 3);
    assert_int_equal(queue_next_seq(q, &s), 0);
    assert_int_equal(s, 4); /* continues, never reused */
    assert_int_equal(queue_seen(q, "other", 7), 1);
    assert_int_equal(queue_seen(q, "other", 1), 1);
    assert_int_equal(queue_seen(q, "other", 2), 0);
    queue_close(q);

    q = open_q(fx);
    assert_int_equal(queue_next_seq(q, &s), 0);
    assert_int_equal(s, 5);
    /* Taken inside a transaction, the sequence is stored by its commit... */
    assert_int_equal(queue_begin(q), 0);
    assert_int_equal(queue_next_seq(q, &s), 0);
    assert_int_equal(queue_next_seq(q, &s), 0);
    assert_int_equal(s, 7);
    assert_int_equal(queue_commit(q), 0);
    /* ...and is not stored without it (no frame carrying it can have left). */
    assert_int_equal(queue_begin(q), 0);
    assert_int_equal(queue_next_seq(q, &s), 0);
    assert_int_equal(s, 8);
    queue_close(q);

    q = open_q(fx);
    assert_int_equal(queue_next_seq(q, &s), 0);
    assert_int_equal(s, 8);
    queue_close(q);
}

static void test_transactions(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_q(fx);
    assert_int_equal(queue_commit(q), BL_ESTATE);
    assert_int_equal(queue_begin(q), 0);
    assert_int_equal(queue_begin(q), 0);
    push(q, "p", 1, 0, 0);
    assert_int_equal(queue_commit(q), 0); /* inner: nothing committed yet */
    queue_close(q);                       /* so closing now drops it */
    assert_int_equal(raw_int(fx, "SELECT COUNT(*) FROM outq"), 0);
    q = open_q(fx);
    assert_int_equal(queue_begin(q), 0);
    assert_int_equal(queue_begin(q), 0);
    push(q, "p", 1, 0, 0);
    assert_int_equal(queue_commit(q), 0);
    assert_int_equal(queue_commit(q), 0); /* the outer commit writes it */
    assert_int_equal(on_disk(fx, &q, "SELECT COUNT(*) FROM outq"), 1);
    /* closing with an open transaction drops it */
    assert_int_equal(queue_begin(q), 0);
    push(q, "p", 2, 0, 0);
    queue_close(q);
    q = open_q(fx);
    assert_int_equal(queue_depth(q, "p"), 1);
    queue_close(q);
}

/* A queue whose database refuses every seen mark of origin "bad" (a trigger): a
 * statement that fails inside a transaction. */
static queue_t *open_refusing(const fx_t *fx)
{
    queue_t *q = open_q(fx);
    queue_close(q); /* creates the schema */
    raw_exec(fx, "CREATE TRIGGER refuse BEFORE INSERT ON seen WHEN NEW.origin = 'bad' "
                 "BEGIN SELECT RAISE(ABORT, 'refused'); END;");
    return open_q(fx);
}

/* A statement that fails inside a transaction (here a trigger refuses one seen mark)
 * poisons it (queue.h): its commit fails and rolls everything back, the writes that
 * worked included, so nothing acknowledged on the strength of that transaction can
 * pass for stored. The sequences it took were never stored, so none of them was sent:
 * the queue may hand them out again. A new transaction works as usual. */
static void test_failed_statement_poisons_commit(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_refusing(fx);
    uint64_t a, b, c;
    assert_int_equal(queue_begin(q), 0);
    assert_int_equal(queue_next_seq(q, &a), 0);
    push(q, "p", a, 0, 0);
    assert_int_not_equal(queue_mark_seen(q, "bad", 5), 0);
    assert_int_equal(queue_next_seq(q, &b), 0);
    assert_true(b > a);
    push(q, "p", b, 0, 0);
    assert_int_equal(queue_commit(q), BL_EIO);
    assert_int_equal(queue_depth(q, "p"), 0);
    assert_int_equal(queue_begin(q), 0);
    assert_int_equal(queue_next_seq(q, &c), 0);
    assert_int_equal(c, a); /* never stored, never sent */
    push(q, "p", c, 0, 0);
    assert_int_equal(queue_commit(q), 0);
    queue_close(q);
    q = open_q(fx);
    assert_int_equal(queue_depth(q, "p"), 1);
    assert_int_equal(queue_next_seq(q, &c), 0);
    assert_true(c > a);
    queue_close(q);
}

/* For crash_child: m (freed here) under the next seq, pushed for peer "p" and marked seen
 * from origin "o". Not 0 when any of it failed. */
static int push_seen(queue_t *q, bl_msg_t *m)
{
    uint64_t s;
    int rc = queue_next_seq(q, &s);
    if (!rc) {
        m->seq = s;
        rc = queue_push(q, "p", m, 0, 0) || queue_mark_seen(q, "o", s);
    }
    msg_free(m);
    return rc;
}

/* The child pushes in committed transactions, then leaves one open and dies without
 * closing anything, as under kill -9. Large uncommitted payloads make SQLite spill
 * pages of the open transaction into the WAL before the "crash". */
static int crash_child(const char *path)
{
    queue_t *q;
    if (queue_open(path, &q))
        return 1;
    for (int t = 0; t < 10; t++) {
        if (queue_begin(q))
            return 2;
        for (int i = 0; i < 10; i++)
            if (push_seen(q, mk(0, "t/x", "committed")))
                return 3;
        if (queue_commit(q))
            return 5;
    }
    static uint8_t big[1 << 20];
    memset(big, 'u', sizeof(big));
    if (queue_begin(q))
        return 6;
    for (int i = 0; i < 8; i++) {
        bl_msg_t *m = mk(0, "t/x", "");
        msg_set_payload(m, big, sizeof(big));
        if (push_seen(q, m))
            return 7;
    }
    _exit(0); /* no commit, no close */
}

static void test_crash_durability(void **state)
{
    fx_t *fx = *state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(crash_child(fx->db));
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    queue_t *q = open_q(fx);
    assert_int_equal(queue_depth(q, "p"), 100);
    bl_msg_t **msgs;
    int64_t *enq;
    size_t n;
    assert_int_equal(queue_peek(q, "p", 0, 1000, &msgs, &enq, &n), 0);
    assert_int_equal(n, 100);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msgs[i]->seq, i + 1);
        assert_int_equal(msgs[i]->payload_len, strlen("committed"));
    }
    queue_msgs_free(msgs, enq, n);
    assert_int_equal(queue_seen(q, "o", 100), 1);
    assert_int_equal(queue_seen(q, "o", 101), 0);
    /* The uncommitted seqs never left the site, so handing them out again is safe. */
    uint64_t s;
    assert_int_equal(queue_next_seq(q, &s), 0);
    assert_int_equal(s, 101);
    queue_close(q);
}

static void test_cap(void **state)
{
    queue_t *q = open_q(*state);
    for (uint64_t s = 1; s <= 5; s++)
        push(q, "p", s, 5, 0);
    push(q, "p", 6, 5, BL_ETOOBIG);
    push(q, "p", 7, 5, BL_ETOOBIG);
    assert_int_equal(queue_depth(q, "p"), 5);
    push(q, "other", 6, 5, 0); /* per peer */
    assert_int_equal(queue_ack(q, "p", 2), 0);
    assert_int_equal(queue_depth(q, "p"), 4);
    push(q, "p", 6, 5, 0);
    push(q, "p", 7, 5, BL_ETOOBIG);
    push(q, "p", 7, 0, 0); /* 0 = no cap */
    queue_close(q);
    /* the count is rebuilt from the file */
    q = open_q(*state);
    push(q, "p", 8, 6, BL_ETOOBIG);
    assert_int_equal(queue_depth(q, "p"), 6);
    queue_close(q);
}

/* A list of seqs for mark_seen and expect_seen: the array and its length. */
#define SEQS(...)                                                                                  \
    (const uint64_t[]){__VA_ARGS__}, sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t)

/* Origin "o"'s messages seqs[0..n) marked seen, each successfully. */
static void mark_seen(queue_t *q, const uint64_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(queue_mark_seen(q, "o", seqs[i]), 0);
}

/* queue_seen says `want` for each of origin "o"'s seqs[0..n). */
static void expect_seen(queue_t *q, int want, const uint64_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(queue_seen(q, "o", seqs[i]), want);
}

/* Origin "o"'s messages 1..upto are seen, upto + 1 is not. */
static void expect_seen_upto(queue_t *q, uint64_t upto)
{
    for (uint64_t s = 1; s <= upto; s++)
        assert_int_equal(queue_seen(q, "o", s), 1);
    assert_int_equal(queue_seen(q, "o", upto + 1), 0);
}

static void test_dedupe(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_q(fx);
    assert_int_equal(queue_seen(q, "o", 1), 0);
    assert_int_equal(queue_seen(q, "bad origin", 1), BL_EINVAL);
    assert_int_equal(queue_mark_seen(q, "o", 0), BL_EINVAL);
    /* out of order with gaps: 3, 5, 1; then 3 again: harmless */
    mark_seen(q, SEQS(3, 5, 1, 3));
    expect_seen(q, 1, SEQS(1, 3, 5));
    expect_seen(q, 0, SEQS(2, 4, 6));
    assert_int_equal(queue_seen(q, "x", 1), 0); /* origins are independent */
    assert_int_equal(on_disk(fx, &q, "SELECT floor FROM seen_floor WHERE origin='o'"), 1);
    /* filling the gaps moves the floor over them and prunes their rows */
    assert_int_equal(queue_mark_seen(q, "o", 2), 0);
    assert_int_equal(on_disk(fx, &q, "SELECT floor FROM seen_floor WHERE origin='o'"), 3);
    assert_int_equal(queue_mark_seen(q, "o", 4), 0);
    assert_int_equal(on_disk(fx, &q, "SELECT floor FROM seen_floor WHERE origin='o'"), 5);
    assert_int_equal(on_disk(fx, &q, "SELECT COUNT(*) FROM seen WHERE origin='o'"), 0);
    assert_int_equal(queue_mark_seen(q, "o", 9), 0);
    queue_close(q);

    q = open_q(fx);
    expect_seen_upto(q, 5);
    assert_int_equal(queue_seen(q, "o", 9), 1);
    assert_int_equal(queue_seen(q, "o", 10), 0);
    queue_close(q);
}

static void test_dedupe_bounded(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_q(fx);
    /* 300k in order: the floor follows, no row is kept */
    for (uint64_t s = 1; s <= 300000; s++) {
        if (s % 1000 == 1)
            assert_int_equal(queue_begin(q), 0);
        assert_int_equal(queue_mark_seen(q, "inorder", s), 0);
        if (s % 1000 == 0)
            assert_int_equal(queue_commit(q), 0);
    }
    assert_int_equal(on_disk(fx, &q, "SELECT COUNT(*) FROM seen WHERE origin='inorder'"), 0);
    assert_int_equal(queue_seen(q, "inorder", 1), 1);
    assert_int_equal(queue_seen(q, "inorder", 300000), 1);
    assert_int_equal(queue_seen(q, "inorder", 300001), 0);

    /* every other seq (this site gets only some topics): the window bounds the rows */
    for (uint64_t s = 1; s <= 300000; s += 2) {
        if (s % 2000 == 1)
            assert_int_equal(queue_begin(q), 0);
        assert_int_equal(queue_mark_seen(q, "gappy", s), 0);
        if (s % 2000 == 1999)
            assert_int_equal(queue_commit(q), 0);
    }
    int64_t rows = on_disk(fx, &q, "SELECT COUNT(*) FROM seen WHERE origin='gappy'");
    assert_true(rows > 0 && rows <= QUEUE_SEEN_WINDOW / 2 + 1);
    assert_int_equal(on_disk(fx, &q, "SELECT floor FROM seen_floor WHERE origin='gappy'"),
                     299999 - QUEUE_SEEN_WINDOW);
    assert_int_equal(queue_seen(q, "gappy", 299999), 1);
    assert_int_equal(queue_seen(q, "gappy", 299998), 0); /* a gap inside the window */
    assert_int_equal(queue_seen(q, "gappy", 2), 1);      /* below it: treated as seen */
    queue_close(q);
}

static void test_retained(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_q(fx);
    bl_msg_t *a = mk(1, "r/a", "one"), *b = mk(2, "r/b", "two");
    a->retain = b->retain = true;
    assert_int_equal(queue_retained_put(q, a), 0);
    assert_int_equal(queue_retained_put(q, b), 0);
    assert_int_equal(msg_set_payload(a, "uno", 3), 0);
    assert_int_equal(queue_retained_put(q, a), 0); /* overwrite */
    assert_int_equal(msg_set_payload(b, NULL, 0), 0);
    assert_int_equal(queue_retained_put(q, b), 0); /* clear: kept as a tombstone */
    queue_close(q);

    q = open_q(fx);
    bl_msg_t **all;
    size_t n;
    assert_int_equal(queue_retained_all(q, &all, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(all[0]->topic, "r/a");
    assert_memory_equal(all[0]->payload, "uno", 3);
    assert_true(all[0]->retain);
    same_msg(a, all[0]);
    assert_string_equal(all[1]->topic, "r/b");
    assert_int_equal(all[1]->payload_len, 0);
    same_msg(b, all[1]);
    queue_msgs_free(all, NULL, n);
    msg_free(a);
    msg_free(b);
    queue_close(q);
}

static bl_msg_t *retained_from(const char *origin, const char *topic, size_t payload_len)
{
    bl_msg_t *m = mk(1, topic, "");
    char *body = calloc(1, payload_len + 1);
    memset(body, 'p', payload_len);
    assert_int_equal(msg_set_payload(m, body, payload_len), 0);
    free(body);
    free(m->origin);
    m->origin = strdup(origin);
    m->retain = true;
    return m;
}

static int put_max(queue_t *q, const char *origin, const char *topic, size_t len, size_t max_topics,
                   size_t max_bytes)
{
    bl_msg_t *m = retained_from(origin, topic, len);
    int rc = queue_retained_put_max(q, m, max_topics, max_bytes);
    msg_free(m);
    return rc;
}

/* Issue 12 item 4: a peer filling the retained store (up to the disk) is stopped at its
 * caps; other origins, and replacements of its own topics, are not. */
static void test_retained_caps(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_q(fx);
    char topic[32];
    size_t topics, bytes, one;
    for (int i = 0; i < 1000; i++) {
        snprintf(topic, sizeof(topic), "flood/%d", i);
        int rc = put_max(q, "mallory", topic, 10, 50, 0);
        assert_int_equal(rc, i < 50 ? 0 : BL_ETOOBIG);
    }
    assert_int_equal(queue_retained_usage(q, "mallory", &topics, &bytes), 0);
    assert_int_equal(topics, 50);
    one = bytes / 50;
    assert_true(one > 10 && one < 64);
    /* Its own topics can still change, and be cleared (tombstones count as topics). */
    assert_int_equal(put_max(q, "mallory", "flood/7", 10, 50, 0), 0);
    assert_int_equal(put_max(q, "mallory", "flood/8", 0, 50, 0), 0);
    /* Another origin is not affected; a topic it takes over leaves mallory's count. */
    assert_int_equal(put_max(q, "home", "flood/9", 10, 50, 0), 0);
    assert_int_equal(queue_retained_usage(q, "mallory", &topics, &bytes), 0);
    assert_int_equal(topics, 49);
    assert_int_equal(put_max(q, "mallory", "flood/new", 10, 50, 0), 0);
    assert_int_equal(put_max(q, "mallory", "flood/new2", 10, 50, 0), BL_ETOOBIG);
    queue_close(q);

    /* The usage survives a restart (counted again from the store) and caps bytes. */
    q = open_q(fx);
    assert_int_equal(queue_retained_usage(q, "mallory", &topics, &bytes), 0);
    assert_int_equal(topics, 50);
    size_t before = bytes;
    assert_int_equal(put_max(q, "mallory", "big/1", 100000, 0, before + 100100), 0);
    assert_int_equal(put_max(q, "mallory", "big/2", 100000, 0, before + 100100), BL_ETOOBIG);
    /* A smaller replacement of its own entry frees room. */
    assert_int_equal(put_max(q, "mallory", "big/1", 10, 0, before + 100100), 0);
    assert_int_equal(put_max(q, "mallory", "big/2", 50000, 0, before + 100100), 0);
    assert_int_equal(queue_retained_usage(q, "mallory", &topics, &bytes), 0);
    assert_int_equal(topics, 52);
    assert_true(bytes <= before + 100100);
    /* A cap lowered below what is held refuses growth, not replacement. */
    assert_int_equal(put_max(q, "mallory", "big/2", 40000, 10, 0), 0);
    assert_int_equal(put_max(q, "mallory", "big/3", 1, 10, 0), BL_ETOOBIG);
    queue_close(q);
}

static void test_corrupt_rows(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_q(fx);
    for (uint64_t s = 1; s <= 6; s++)
        push(q, "p", s, 0, 0);
    bl_msg_t *r1 = mk(1, "r/1", "x"), *r2 = mk(2, "r/2", "y");
    assert_int_equal(queue_retained_put(q, r1), 0);
    assert_int_equal(queue_retained_put(q, r2), 0);
    msg_free(r1);
    msg_free(r2);
    queue_close(q);

    raw_exec(fx, "UPDATE outq SET frame = x'deadbeef' WHERE seq = 2;"
                 "UPDATE outq SET frame = substr(frame, 1, length(frame) - 1) WHERE seq = 3;"
                 "UPDATE outq SET frame = x'' WHERE seq = 4;"
                 "UPDATE retained SET frame = x'01ff' WHERE topic = 'r/1';");
    q = open_q(fx);
    char *logpath;
    int saved = capture_start(fx, &logpath);
    /* the corrupt rows do not count against max: 1, 5, 6 come back */
    expect_seqs(q, "p", 0, 3, (const uint64_t[]){1, 5, 6}, 3);
    bl_msg_t **all;
    size_t n;
    assert_int_equal(queue_retained_all(q, &all, &n), 0);
    char *log = capture_end(saved, logpath);
    assert_int_equal(n, 1);
    assert_string_equal(all[0]->topic, "r/2");
    queue_msgs_free(all, NULL, n);
    assert_non_null(strstr(log, "seq 2 is corrupt"));
    assert_non_null(strstr(log, "seq 3 is corrupt"));
    assert_non_null(strstr(log, "seq 4 is corrupt"));
    assert_non_null(strstr(log, "retained topic r/1 is corrupt"));
    g_free(log);
    /* dropped, so they neither block the queue nor get logged again */
    assert_int_equal(queue_depth(q, "p"), 3);
    queue_close(q);
}

/* queue_open of fx's database fails with rc, and its log line says `why`. */
static void expect_open_refused(const fx_t *fx, int rc, const char *why)
{
    char *logpath;
    int saved = capture_start(fx, &logpath);
    queue_t *q = (queue_t *)1;
    int got = queue_open(fx->db, &q);
    char *log = capture_end(saved, logpath);
    assert_int_equal(got, rc);
    assert_null(q);
    assert_non_null(strstr(log, why));
    g_free(log);
}

/* Two daemons on one state directory would each send the other's queue: the second
 * is refused at once, saying why, and the first goes on unharmed. */
static void test_one_owner(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_q(fx);
    push(q, "p", 1, 0, 0);
    expect_open_refused(fx, BL_EAGAIN, "in use by another process");
    push(q, "p", 2, 0, 0);
    assert_int_equal(queue_depth(q, "p"), 2);
    queue_close(q);
    q = open_q(fx);
    assert_int_equal(queue_depth(q, "p"), 2);
    queue_close(q);
}

static void test_version_refused(void **state)
{
    fx_t *fx = *state;
    raw_exec(fx, "PRAGMA user_version = 99");
    expect_open_refused(fx, BL_EVERSION, "schema version 99");
    /* left as it was */
    assert_int_equal(raw_int(fx, "PRAGMA user_version"), 99);

    /* not a database at all: a clean error too */
    char *junk = g_build_filename(fx->dir, "junk.db", NULL);
    assert_true(g_file_set_contents(junk,
                                    "this is not sqlite, just text, long enough to "
                                    "fill a header of one hundred bytes or so ......",
                                    -1, NULL));
    char *logpath;
    int saved = capture_start(fx, &logpath);
    queue_t *q = (queue_t *)1;
    int rc = queue_open(junk, &q);
    g_free(capture_end(saved, logpath));
    assert_int_equal(rc, BL_EIO);
    assert_null(q);
    g_free(junk);
}

static void test_peek_memory_bounded(void **state)
{
    queue_t *q = open_q(*state);
    enum { N = 2000, SZ = 16 * 1024 }; /* 32 MiB queued */
    static uint8_t body[SZ];
    assert_int_equal(queue_begin(q), 0);
    for (uint64_t s = 1; s <= N; s++) {
        memset(body, (int)s, sizeof(body));
        bl_msg_t *m = mk(s, "big", "");
        msg_set_payload(m, body, sizeof(body));
        assert_int_equal(queue_push(q, "p", m, 0, 0), 0);
        msg_free(m);
    }
    assert_int_equal(queue_commit(q), 0);

    sqlite3_int64 cur, hi;
    sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 1); /* reset high water */
    bl_msg_t **msgs;
    int64_t *enq;
    size_t n;
    assert_int_equal(queue_peek(q, "p", 500, 10, &msgs, &enq, &n), 0);
    sqlite3_int64 before = cur;
    sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &hi, 0);
    print_message("sqlite memory: %lld bytes before peek, high water %lld during\n",
                  (long long)before, (long long)hi);
    /* SQLite's page cache is ~2 MiB by default; a full load would be > 32 MiB */
    assert_true(hi - before < 8 * 1024 * 1024);
    assert_int_equal(n, 10);
    assert_int_equal(msgs[0]->seq, 501);
    assert_int_equal(msgs[0]->payload[SZ - 1], (uint8_t)501);
    queue_msgs_free(msgs, enq, n);

    /* paging through everything in order */
    uint64_t after = 0, seen = 0;
    do {
        assert_int_equal(queue_peek(q, "p", after, 128, &msgs, &enq, &n), 0);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(msgs[i]->seq, ++seen);
        if (n)
            after = msgs[n - 1]->seq;
        queue_msgs_free(msgs, enq, n);
    } while (n);
    assert_int_equal(seen, N);
    queue_close(q);
}

/* Throughput with 100 pushes per transaction; prints, asserts no time (machines vary).
 * BL_QUEUE_BENCH_N sets the number of push+ack pairs. */
static void test_bench(void **state)
{
    queue_t *q = open_q(*state);
    const char *env = getenv("BL_QUEUE_BENCH_N");
    long total = env ? atol(env) : 20000;
    total = total < 100 ? 100 : total - total % 100;
    bl_msg_t *m = mk(0, "bench/topic/value", "{\"temperature\": 21.5, \"unit\": \"C\"}");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long b = 0; b < total / 100; b++) {
        uint64_t first = 0;
        assert_int_equal(queue_begin(q), 0);
        for (int i = 0; i < 100; i++) {
            assert_int_equal(queue_next_seq(q, &m->seq), 0);
            first = first ? first : m->seq;
            assert_int_equal(queue_push(q, "peer", m, 0, 100000), 0);
        }
        assert_int_equal(queue_commit(q), 0);
        assert_int_equal(queue_begin(q), 0);
        for (int i = 0; i < 100; i++)
            assert_int_equal(queue_ack(q, "peer", first + (uint64_t)i), 0);
        assert_int_equal(queue_commit(q), 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("queue bench: %ld push+ack pairs in %.3f s = %.0f pairs/s (batches of 100)\n",
                  total, secs, (double)total / secs);
    assert_int_equal(queue_depth(q, "peer"), 0);
    msg_free(m);
    queue_close(q);
}

/* Acks for a run of consecutive sequences remove exactly that run, once. */
static void test_ack_range(void **state)
{
    queue_t *q = open_q(*state);
    for (uint64_t s = 1; s <= 10; s++)
        push(q, "p", s, 0, 0);
    push(q, "other", 4, 0, 0);
    assert_int_equal(queue_ack_range(q, "p", 3, 6), 0);
    assert_int_equal(queue_depth(q, "p"), 6);
    expect_seqs(q, "p", 0, 20, (const uint64_t[]){1, 2, 7, 8, 9, 10}, 6);
    assert_int_equal(queue_ack_range(q, "p", 3, 6), 0);  /* again: nothing left to remove */
    assert_int_equal(queue_ack_range(q, "p", 9, 40), 0); /* past the end */
    assert_int_equal(queue_depth(q, "p"), 4);
    assert_int_equal(queue_ack_range(q, "p", 2, 2), 0);
    expect_seqs(q, "p", 0, 20, (const uint64_t[]){1, 7, 8}, 3);
    assert_int_equal(queue_ack_range(q, "p", 5, 4), BL_EINVAL);
    assert_int_equal(queue_depth(q, "other"), 1); /* another peer's queue is untouched */
    queue_close(q);
    q = open_q(*state);
    assert_int_equal(queue_depth(q, "p"), 3);
    queue_close(q);
}

/* In-order seen marks only move the floor in memory; it is written by the commit. A
 * failed statement in the same transaction makes the commit fail, floor and all (a
 * resend is then delivered again rather than lost); no commit, no mark. */
static void test_dedupe_floor_commit(void **state)
{
    fx_t *fx = *state;
    queue_t *q = open_refusing(fx);
    assert_int_equal(queue_begin(q), 0);
    for (uint64_t s = 1; s <= 50; s++)
        assert_int_equal(queue_mark_seen(q, "o", s), 0);
    assert_int_not_equal(queue_mark_seen(q, "bad", 5), 0); /* drops the caches */
    assert_int_equal(queue_seen(q, "o", 50), 1);
    assert_int_equal(queue_mark_seen(q, "o", 51), 0);
    assert_int_equal(queue_commit(q), BL_EIO);
    assert_int_equal(queue_seen(q, "o", 1), 0);
    assert_int_equal(queue_begin(q), 0);
    for (uint64_t s = 1; s <= 51; s++)
        assert_int_equal(queue_mark_seen(q, "o", s), 0);
    assert_int_equal(queue_commit(q), 0);
    queue_close(q);

    q = open_q(fx);
    assert_int_equal(queue_seen(q, "o", 51), 1);
    assert_int_equal(queue_seen(q, "o", 52), 0);
    /* Not committed: forgotten, so a resend is delivered again rather than lost. */
    assert_int_equal(queue_begin(q), 0);
    for (uint64_t s = 52; s <= 60; s++)
        assert_int_equal(queue_mark_seen(q, "o", s), 0);
    assert_int_equal(queue_seen(q, "o", 60), 1);
    queue_close(q);

    q = open_q(fx);
    assert_int_equal(queue_seen(q, "o", 51), 1);
    assert_int_equal(queue_seen(q, "o", 52), 0);
    /* Out of order, then the gap filled: the floor moves over the rows. */
    mark_seen(q, SEQS(54, 52, 53, 55));
    queue_close(q);
    q = open_q(fx);
    expect_seen_upto(q, 55);
    assert_int_equal(queue_seen_reset(q, "o"), 0);
    assert_int_equal(queue_seen(q, "o", 1), 0);
    queue_close(q);
    q = open_q(fx);
    assert_int_equal(queue_seen(q, "o", 1), 0);
    queue_close(q);
}

static void collect_indoubt(void *ud, const char *origin, uint64_t seq, const void *key,
                            size_t key_len)
{
    char *buf = ud;
    size_t len = strlen(buf);
    snprintf(buf + len, 256 - len, "%s:%llu:%.*s ", origin, (unsigned long long)seq, (int)key_len,
             (const char *)key);
}

/* In-doubt records: added, listed, and removed one by one or as a run of one origin. */
static void test_indoubt(void **state)
{
    queue_t *q = open_q(*state);
    for (uint64_t s = 1; s <= 6; s++)
        assert_int_equal(queue_indoubt_add(q, "o", s, "k", 1), 0);
    assert_int_equal(queue_indoubt_add(q, "p", 3, "kp", 2), 0);
    assert_int_equal(queue_indoubt_del_range(q, "o", 2, 4), 0);
    assert_int_equal(queue_indoubt_del(q, "o", 5), 0);
    assert_int_equal(queue_indoubt_del(q, "o", 99), 0); /* unknown: not an error */
    assert_int_equal(queue_indoubt_del_range(q, "o", 4, 2), BL_EINVAL);
    queue_close(q);
    q = open_q(*state);
    char buf[256] = "";
    assert_int_equal(queue_indoubt_each(q, collect_indoubt, buf), 0);
    assert_string_equal(buf, "o:1:k o:6:k p:3:kp ");
    queue_close(q);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_order_and_paging),
        T(test_peek_small),
        T(test_all_properties),
        T(test_persistence),
        T(test_transactions),
        T(test_crash_durability),
        T(test_failed_statement_poisons_commit),
        T(test_cap),
        T(test_dedupe),
        T(test_dedupe_bounded),
        T(test_ack_range),
        T(test_dedupe_floor_commit),
        T(test_indoubt),
        T(test_retained),
        T(test_retained_caps),
        T(test_corrupt_rows),
        T(test_one_owner),
        T(test_version_refused),
        T(test_peek_memory_bounded),
        T(test_bench),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
