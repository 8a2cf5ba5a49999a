#!/usr/bin/env bash
# Cut site B's WAN for 20 s, restore it: the link notices, comes back by itself, and
# messages flow again. The log tells the failure and the recovery.
set -euo pipefail
. "$(dirname "$0")/sites.sh"

bl_lab_up 2
bl_sub 2 subB 'test/#'
bl_pub 1 -t test/before -m before -q 1
bl_wait_got subB 1 10 && pass "message before the cut" || fail "no message before the cut"

lab_wan_cut 2
t0=$(_lab_now_us)
if lab_wait_for 30 bash -c "grep -qE 'peer bravo: link down' '$(bl_log 1)'"; then
  pass "alpha noticed the dead path after $(lab_elapsed "$t0") s"
else
  fail "alpha did not notice the dead path within 30 s"
fi
# Keep the WAN cut for 20 s in all.
rest=$(awk -v e="$(lab_elapsed "$t0")" 'BEGIN { r = 20 - e; print (r > 0 ? r : 0) }')
sleep "$rest"
bl_pub 1 -t test/during -m during -q 1
lab_wan_restore 2
t1=$(_lab_now_us)
if bl_wait_open 1 bravo 90 2 && bl_wait_open 2 alpha 90 2; then
  pass "link back $(lab_elapsed "$t1") s after the WAN returned"
else
  fail "link did not come back within 90 s"
fi
bl_wait_got subB 2 30 || true
assert_eq "$(bl_got subB | tr '\n' ' ')" "test/before before test/during during " "the message published during the cut arrives after recovery"
bl_pub 1 -t test/after -m after -q 1
bl_wait_got subB 3 15 || true
assert_eq "$(bl_got subB | tail -1)" "test/after after" "messages flow again"
lab_finish
