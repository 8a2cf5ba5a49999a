#!/usr/bin/env bash
# Both sites switched from delivery = exactly-once to at-least-once (no
# echo), keeping their brokers' persistent sessions: both modes subscribe alike (No
# Local), so nothing is renewed, and messages of QoS 0 and 1 cross both ways once and do
# not loop; a WAN cut
# still duplicates nothing (the dedupe window); a kill -9 of the receiver loses nothing
# and duplicates at most what was in flight to its broker.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-10000}
CUT_S=${BL_TEST_CUT_S:-10}

# First exactly-once: bravo is killed in the middle of a stream, so that it stops with
# messages in doubt whose echoes wait in its broker session.
M=3000
BL_DELIVERY=exactly-once bl_lab 2 cone "test/# both 2" both
assert_ok "the config says exactly-once" grep -q '^delivery = exactly-once' "$LAB_DIR/site1.conf"
bl_up 2
bl_sub 2 firstB 'test/first' -F '%p'
bl_sub 1 firstA 'test/first' -F '%p'
bl_flood firstB test/first "$M" 1 0 3 bl_stop 2 KILL
pass "exactly-once bravo killed after $(bl_got firstB | wc -l) messages"

# Then at-least-once, same state dirs, same broker sessions.
for i in 1 2; do
  bl_stop "$i" 2>/dev/null || true
  mv "$(bl_log "$i")" "$LAB_DIR/bl$i-exactly-once.log"
  BL_DELIVERY=at-least-once bl_config "$i" "test/# both 2" both
done
assert_ok "the config says at-least-once" grep -q '^delivery = at-least-once' "$LAB_DIR/site1.conf"
for i in 1 2; do bl_start "$i"; done
bl_wait_open 1 bravo 30 && bl_wait_open 2 alpha 30 && pass "links open again" || fail "links did not open"
assert_fails "alpha keeps its test/# subscription (no gap in which the broker would not keep messages for it)" \
  grep -q 'renewing the subscription' "$(bl_log 1)"
assert_fails "bravo too" grep -q 'renewing the subscription' "$(bl_log 2)"
bl_wait_seq firstB "$M" 60 || true
sleep 2
r=$(bl_seq_report firstB 1 "$M")
echo "bravo across the kill and the switch: $r"
assert_eq "$(cut -d' ' -f3-4,7-8 <<<"$r")" "unique $M missing 0" "bravo's subscriber gets all $M"
bl_expect_seq firstA "$M" 0 0 \
  "alpha's own subscriber gets each of its $M once: the echoes waiting in bravo's session were not routed back" any-order
lab_kill firstB
lab_kill firstA

# Both ways, QoS 0 and 1, subscribers at both sites: each message once everywhere, no
# loop (with the old subscription left in place, each would come back to its sender).
for q in 0 1; do
  bl_sub 1 "subA$q" "test/ping$q" -F '%p'
  bl_sub 2 "subB$q" "test/ping$q" -F '%p'
  bl_pub_seq 1 "test/ping$q" 1 100 "$q"
  bl_pub_seq 2 "test/ping$q" 101 200 "$q"
  bl_wait_seq "subB$q" 200 30 || true
  bl_expect_seq "subA$q" 200 30 2 "QoS $q: alpha's subscriber gets both sites' 200 messages once" any-order
  bl_expect_seq "subB$q" 200 30 0 "QoS $q: bravo's subscriber gets both sites' 200 messages once" any-order
  lab_kill "subA$q"
  lab_kill "subB$q"
done

# A WAN cut: the peer resends what was not acknowledged, the dedupe window drops repeats.
bl_sub 2 subC 'test/cut' -F '%p'
bl_flood_wan_cut subC test/cut "$N" 1 $((CUT_S + 6)) 10 "$CUT_S"
bl_expect_seq subC "$N" 120 2 "all $N arrive once, in order, across a ${CUT_S} s WAN cut"

# kill -9 of the receiver: nothing lost; the duplicates, if any, were in flight.
bl_sub 2 subD 'test/kill' -F '%p'
bl_flood_kill_receiver subD test/kill "$N" 1
bl_wait_seq subD "$N" 120 || true
sleep 2
r=$(bl_seq_report subD 1 "$N")
echo "after the kill: $r"
assert_eq "$(cut -d' ' -f3-4,7-8 <<<"$r")" "unique $N missing 0" "all $N arrive across a kill -9 of the receiver"
dups=$(awk '{ print $6 }' <<<"$r")
# In flight to bravo's broker at the kill: at most the daemon's window of unacknowledged
# publishes, the broker's Receive Maximum capped at 1000 by mqtt.c (mosquitto: 20).
assert_ok "duplicates ($dups) are at most what can be in flight (1000)" test "$dups" -le 1000
lab_finish
