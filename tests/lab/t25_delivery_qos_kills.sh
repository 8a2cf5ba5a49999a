#!/usr/bin/env bash
# The default delivery (delivery = qos) keeps each message's own promise across kill -9
# of either daemon at random instants, with alpha's broker's in-flight limit lifted:
#   1. 20,000 QoS 2 messages, alpha to bravo; bravo's daemon killed 10 times, then
#      alpha's 10 times (each restarted 0.3 s later): bravo's subscriber gets exactly
#      20,000, none twice, in order, all at QoS 2.
#   2. The same at QoS 1, each daemon killed 5 times: none lost; duplicates are allowed
#      for what was in flight between a killed daemon and its broker (at most the
#      Receive Maximum, 1000, per kill), printed and bounded.
#   3. 20,000 QoS 2 messages while bravo's broker (persistent, as one that must keep
#      sessions is, with its default in-flight window: see below) restarts mid-stream:
#      exactly 20,000.
#   4. The sender's window: 20,000 QoS 2 messages at 2,000 msg/s, rule "# both 2",
#      alpha's daemon killed 5 times at random 0.1-0.9 s gaps, restarted 0.3 s after
#      each: exactly 20,000 (a message caught between the broker's PUBREC and PUBREL
#      was lost here before the session state was kept on disk).
#   5. A full window waiting at reconnect: alpha's daemon is killed in a flood, and
#      5,000 more QoS 2 messages are published while it is down, so that its broker
#      holds QoS 2 exchanges half done (PUBREC sent, PUBREL not) and a queue far past
#      our Receive Maximum for the restarted session. The session must take them all
#      (libmosquitto once lost such a session for good: every reconnect ended in a
#      protocol error): exactly 5,000 more arrive.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-20000}
LAB_BROKER_EXTRA="max_queued_messages 0
max_inflight_messages 0"

# kill_loop SITE TIMES MIN_S SPAN_S: kill -9 site SITE's daemon TIMES times, MIN_S +
# random(0..SPAN_S) seconds apart, restarting it 0.3 s after each kill.
kill_loop() {
  local i=$1 k
  for ((k = 1; k <= $2; k++)); do
    sleep "$(awk -v r="$RANDOM" -v a="$3" -v s="$4" 'BEGIN { printf "%.2f", a + s * r / 32768 }')"
    bl_stop "$i" KILL
    sleep 0.3
    bl_start "$i"
  done
  pass "${BL_NAMES[$i]}'s daemon killed -9 and restarted $2 times"
}

# expect_exact SUB QOS WHAT: subscriber SUB has 1..N once each, in order, at QOS.
expect_exact() {
  bl_expect_seq "$1" "$N" 180 2 "$3"
  assert_eq "$(bl_got "$1" | awk -v q="$2" '$2 != q' | wc -l)" 0 "every one arrives at QoS $2"
}

bl_lab_sites 2 cone
# bravo's broker keeps mosquitto's default in-flight window (20): with
# max_inflight_messages 0, mosquitto 2.0.11 restores every in-flight QoS 2 message of a
# session into its queue at start (persist_read.c: an unlimited window has a quota of
# 0) and sends it to its subscriber again, also one that waited only for a PUBCOMP:
# duplicates of its own, whoever published.
bl_persistent_broker 2
bl_config 1 "# both 2" both
bl_config 2 "# both 2" both
bl_up 2
# MQTT 3.1.1 subscribers with persistent sessions: mosquitto_sub 2.0.11 over MQTT 5
# stops on a flood of QoS 2 (t28), and part 3 restarts their broker.
BL_SUB_PROTO="-V 311" bl_sub 2 sub2 'test/q2' -F '%p %q' -c -i t25-sub2
BL_SUB_PROTO="-V 311" bl_sub 2 sub1 'test/q1' -F '%p %q' -c -i t25-sub1 -q 1
BL_SUB_PROTO="-V 311" bl_sub 2 sub3 'test/q2b' -F '%p %q' -c -i t25-sub3
BL_SUB_PROTO="-V 311" bl_sub 2 sub4 'test/q2w' -F '%p %q' -c -i t25-sub4
BL_SUB_PROTO="-V 311" bl_sub 2 sub5 'test/q2r' -F '%p %q' -c -i t25-sub5

# ---- 1. QoS 2, each daemon killed 10 times
bl_pub_seq_paced 1 test/q2 1 "$N" 60 2 &
pubpid=$!
kill_loop 2 10 1.0 2.0
kill_loop 1 10 1.0 2.0
wait "$pubpid" && pass "alpha's broker took all $N at QoS 2" || fail "publisher failed"
expect_exact sub2 2 "QoS 2: all $N arrive exactly once, in order, across 20 kills of either daemon"

# ---- 2. QoS 1, each daemon killed 5 times
bl_pub_seq_paced 1 test/q1 1 "$N" 30 1 &
pubpid=$!
kill_loop 2 5 1.0 2.0
kill_loop 1 5 1.0 2.0
wait "$pubpid" && pass "alpha's broker took all $N at QoS 1" || fail "publisher failed"
bl_assert_none_lost sub1 "$N" "QoS 1: none of $N lost across 10 kills" 180
echo "note: QoS 1 duplicates across 10 kills: $BL_DUPS (allowed: what was in flight to a broker)"
assert_ok "QoS 1 duplicates stay within 10 kills x Receive Maximum 1000" test "$BL_DUPS" -le 10000

# ---- 3. QoS 2 across a restart of bravo's broker
bl_flood sub3 test/q2b "$N" 2 20 3 bl_broker_restart 2 sub3
expect_exact sub3 2 "QoS 2: all $N arrive exactly once, in order, across a restart of bravo's broker"

# ---- 4. the sender's window
bl_flood sub4 test/q2w "$N" 2 10 20 kill_loop 1 5 0.1 0.8 # the kills once 1000 of 20,000 are in
expect_exact sub4 2 "QoS 2: all $N arrive exactly once across 5 quick kills of the sender"

# ---- 5. a full window at reconnect
N5=5000
bl_flood sub5 test/q2r "$N5" 2 0 10 bl_stop 1 KILL # most published while alpha's daemon is down
bl_start 1
N=$N5 expect_exact sub5 2 "QoS 2: all $N5 arrive exactly once after a restart into a full window"

reused=$(cat "$LAB_DIR"/site*-broker.log | grep -c 'Reused message ID' || true)
assert_eq "$reused" 0 "neither broker saw a packet id reused while it held it"
lab_finish
