/* SPDX-License-Identifier: MIT */
/* queue.h - the site's durable state in one SQLite database (WAL), state_dir/queue.db:
 *
 *   - the origin sequence counter (survives restarts, never reused);
 *   - one outbound queue per peer: messages not yet acknowledged by that peer, in order;
 *   - the inbound dedupe window per origin site: sequences already delivered to the
 *     local broker, so a resend after a crash or reconnect is only acknowledged;
 *   - the retained store: the last retained message per topic that crossed a link.
 *
 * All calls are synchronous and cheap (prepared statements). Writes between
 * queue_begin() and queue_commit() share one transaction, so a burst costs one commit.
 * synchronous=NORMAL: a committed message survives a crash of the daemon (kill -9);
 * surviving power loss would need FULL (config, later). */
#ifndef BL_QUEUE_H
#define BL_QUEUE_H

#include "common.h"
#include "msg.h"

typedef struct queue queue_t;

/* Every result says whether a write that an acknowledgement may rely on happened:
 * ignoring one is a compile error (-Werror). One policy for failures: a failed
 * statement poisons the open transaction, whose commit then fails (and rolls back), so
 * nothing written with it, nor anything acknowledged after it, can pass for stored. */
#define QUEUE_MUST_USE __attribute__((warn_unused_result))

QUEUE_MUST_USE int queue_open(const char *path, queue_t **out);
void queue_close(queue_t *q);

QUEUE_MUST_USE int queue_begin(queue_t *q); /* nests: only the outermost begin/commit pair counts */
QUEUE_MUST_USE int queue_commit(queue_t *q);

/* The last origin sequence given out (0: none yet): every queued seq is at most this. */
QUEUE_MUST_USE int queue_last_seq(queue_t *q, uint64_t *seq);
/* Next origin sequence (1, 2, ...), persisted. */
QUEUE_MUST_USE int queue_next_seq(queue_t *q, uint64_t *seq);

/* Append m (its seq set) to peer's queue. enq_ms = wall clock when taken in, so expiry
 * can be reduced by the time spent queued. BL_ETOOBIG when the peer's queue is at
 * `max_messages` (0 = no cap). */
QUEUE_MUST_USE int queue_push(queue_t *q, const char *peer, const bl_msg_t *m, int64_t enq_ms,
                              size_t max_messages);
/* Up to `max` messages of peer's queue with seq > after_seq, in seq order; *msgs is
 * an array of owned messages (free with queue_msgs_free), enq_ms filled alongside. */
QUEUE_MUST_USE int queue_peek(queue_t *q, const char *peer, uint64_t after_seq, size_t max,
                              bl_msg_t ***msgs, int64_t **enq_ms, size_t *n);
/* The same for only the messages whose row is at most max_row bytes (queue_row_size),
 * with after_seq < seq <= upto_seq: what may overtake larger ones (site_out.c). */
QUEUE_MUST_USE int queue_peek_small(queue_t *q, const char *peer, uint64_t after_seq,
                                    uint64_t upto_seq, size_t max_row, size_t max, bl_msg_t ***msgs,
                                    int64_t **enq_ms, size_t *n);
/* The bytes m takes as a queued row, exactly (the size queue_peek_small compares). */
size_t queue_row_size(const bl_msg_t *m);
void queue_msgs_free(bl_msg_t **msgs, int64_t *enq_ms, size_t n);
/* The peer's broker has it: remove. Unknown seq is not an error. */
QUEUE_MUST_USE int queue_ack(queue_t *q, const char *peer, uint64_t seq);
/* The same for every queued seq in [first, last] (one statement for a run of acks). */
QUEUE_MUST_USE int queue_ack_range(queue_t *q, const char *peer, uint64_t first, uint64_t last);
size_t queue_depth(queue_t *q, const char *peer);

/* Inbound dedupe: 1 if (origin, seq) was already delivered, 0 if not. A sequence more
 * than QUEUE_SEEN_WINDOW below the highest one marked for that origin counts as
 * delivered (bounds the rows kept; docs/QUEUE.md). seq 0 or a bad origin: BL_EINVAL. */
#define QUEUE_SEEN_WINDOW 100000u
QUEUE_MUST_USE int queue_seen(queue_t *q, const char *origin, uint64_t seq);
QUEUE_MUST_USE int queue_mark_seen(queue_t *q, const char *origin, uint64_t seq);

/* Retained store: set (payload_len > 0) or clear (payload_len == 0) the topic. */
QUEUE_MUST_USE int queue_retained_put(queue_t *q, const bl_msg_t *m);
/* The same, but BL_ETOOBIG (nothing stored) when m would take the entries of its origin
 * over max_topics or their stored bytes over max_bytes (0: no cap). Replacing the
 * topic's entry counts the difference; only growth is refused. */
QUEUE_MUST_USE int queue_retained_put_max(queue_t *q, const bl_msg_t *m, size_t max_topics,
                                          size_t max_bytes);
/* Entries (clears included) and their stored bytes held for `origin`. */
QUEUE_MUST_USE int queue_retained_usage(queue_t *q, const char *origin, size_t *topics,
                                        size_t *bytes);
/* All retained entries (including clears, kept as tombstones with empty payload). */
QUEUE_MUST_USE int queue_retained_all(queue_t *q, bl_msg_t ***msgs, size_t *n);

/* The retained entry of one topic (owned, msg_free), BL_ENOTFOUND when none. */
QUEUE_MUST_USE int queue_retained_get(queue_t *q, const char *topic, bl_msg_t **out);

/* In-doubt deliveries: a message from a peer that we handed to our local broker but
 * have not yet seen come back (site_in.c). Written before the publish, removed at its
 * echo, read once at start to recognise echoes of what the broker took before a crash. */
QUEUE_MUST_USE int queue_indoubt_add(queue_t *q, const char *origin, uint64_t seq, const void *key,
                                     size_t key_len);
QUEUE_MUST_USE int queue_indoubt_del(queue_t *q, const char *origin, uint64_t seq);
/* The same for every seq of origin in [first, last] (one statement for a run). */
QUEUE_MUST_USE int queue_indoubt_del_range(queue_t *q, const char *origin, uint64_t first,
                                           uint64_t last);
typedef void (*queue_indoubt_cb)(void *ud, const char *origin, uint64_t seq, const void *key,
                                 size_t key_len);
QUEUE_MUST_USE int queue_indoubt_each(queue_t *q, queue_indoubt_cb cb, void *ud);

/* The local broker session's QoS 2 state (mqtt.h, mqtt_store_t), kept with the rest so
 * that it commits with what it depends on: packet ids of QoS 2 messages received and not
 * yet released; our QoS 2 publishes by packet id, each with its message, the peer
 * message it carries (origin, seq; "" and 0 for none), and whether its PUBREC came. */
QUEUE_MUST_USE int queue_mq_in_add(queue_t *q, uint16_t pid);
QUEUE_MUST_USE int queue_mq_in_del(queue_t *q, uint16_t pid);
QUEUE_MUST_USE int queue_mq_out_add(queue_t *q, uint16_t pid, const char *origin, uint64_t seq,
                                    const bl_msg_t *m);
QUEUE_MUST_USE int queue_mq_out_rec(queue_t *q, uint16_t pid);
QUEUE_MUST_USE int queue_mq_out_del(queue_t *q, uint16_t pid);
/* QoS 1 messages taken from the broker, by packet id, with a key of their content
 * (delivery = exactly-once): seen is 1 when pid was recorded, among the last few
 * thousand, with the same key. */
QUEUE_MUST_USE int queue_mq_in1_add(queue_t *q, uint16_t pid, const void *key, size_t key_len);
QUEUE_MUST_USE int queue_mq_in1_seen(queue_t *q, uint16_t pid, const void *key, size_t key_len);
/* The broker has no session for us: forget all of them. */
QUEUE_MUST_USE int queue_mq_reset(queue_t *q);
typedef void (*queue_mq_in_cb)(void *ud, uint16_t pid);
/* m: the message published (borrowed; NULL when its row could not be read back, which
 * is left out unless it was released). */
typedef void (*queue_mq_out_cb)(void *ud, uint16_t pid, const char *origin, uint64_t seq,
                                bool released, const bl_msg_t *m);
QUEUE_MUST_USE int queue_mq_each(queue_t *q, queue_mq_in_cb in, queue_mq_out_cb out, void *ud);

/* Small persisted values in the meta table (e.g. "epoch", "epoch:<origin>"). */
/* BL_ENOTFOUND, or BL_ETOOBIG when the value does not fit in len (with its NUL). */
QUEUE_MUST_USE int queue_meta_get(queue_t *q, const char *key, char *buf, size_t len);
QUEUE_MUST_USE int queue_meta_set(queue_t *q, const char *key, const char *value);
/* Forget every seen sequence of `origin`: it started numbering anew (new epoch). */
QUEUE_MUST_USE int queue_seen_reset(queue_t *q, const char *origin);

#endif
