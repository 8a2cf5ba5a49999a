#!/usr/bin/env bash
# A dead peer holds nobody back and costs bounded storage. Three sites in a mesh; alpha's
# queue cap is 500 messages per peer (queue_max_messages). charlie's daemon is stopped,
# then alpha publishes 2,000 QoS 1 messages (at a rate bravo keeps up with):
#   - bravo's subscriber gets all 2,000, once, in order, while charlie is away;
#   - alpha logs that charlie's queue is full, counts the 1,500 it refused
#     ("queue_full" in brokerless/alpha/stats) and shows 500 queued for charlie
#     (brokerless/alpha/peers/charlie);
#   - when charlie is back it gets exactly the 500 that were queued, once, in order.
set -euo pipefail
. "$(dirname "$0")/sites.sh"
N=${BL_TEST_N:-2000}
CAP=500

# retained_match SITE TOPIC PATTERN: the retained value of TOPIC at SITE matches PATTERN.
retained_match() { grep -qE "$3" <<<"$(bl_retained "$1" "$2")"; }

bl_lab 3 cone "test/# both 2" both
sed -i "s/^\[site\]$/[site]\nqueue_max_messages = $CAP/" "$LAB_DIR/site1.conf"
bl_up 3
bl_wait_open 1 charlie 30 && pass "alpha's link to charlie is open" || fail "alpha-charlie link did not open"
bl_sub 2 subB 'test/bp' -F '%p'
bl_sub 3 subC 'test/bp' -F '%p'
bl_stop 3

# Paced (about 200 msg/s) so that bravo, which is there, never falls $CAP behind (it
# would take a 2.5 s stall): the cap is for a peer that is away or too slow for good,
# and it applies to every peer.
bl_pub_seq_paced 1 test/bp 1 "$N" 10
bl_expect_seq subB "$N" 60 0 "bravo gets all $N, once, in order, while charlie's daemon is down"
assert_ok "alpha logs that charlie's queue is full" \
  grep -q "peer charlie: queue is full ($CAP messages)" "$(bl_log 1)"
refused=$((N - CAP))
lab_wait_for 30 retained_match 1 brokerless/alpha/stats "\"queue_full\":$refused[,}]" &&
  pass "alpha counts the $refused it refused for charlie" ||
  fail "alpha's stats: $(bl_retained 1 brokerless/alpha/stats)"
lab_wait_for 30 retained_match 1 brokerless/alpha/peers/charlie "\"queued\":$CAP[,}]" &&
  pass "alpha shows $CAP queued for charlie" ||
  fail "alpha's view of charlie: $(bl_retained 1 brokerless/alpha/peers/charlie)"

bl_start 3
bl_wait_open 3 alpha 60 2 && pass "charlie is back" || fail "charlie's link did not come back"
bl_expect_seq subC "$CAP" 60 3 "charlie gets exactly the $CAP that were queued for it, once, in order"
lab_wait_for 30 retained_match 1 brokerless/alpha/peers/charlie '"queued":0[,}]' &&
  pass "alpha's queue for charlie has drained" ||
  fail "alpha's view of charlie: $(bl_retained 1 brokerless/alpha/peers/charlie)"
lab_finish
